#include "pqmcp/crypto/algorithms.hpp"

#include <array>
#include <cctype>
#include <string>

namespace pqmcp::crypto {
namespace {

struct KemNames {
    KemAlg alg;
    std::string_view openssl;
    std::string_view cli;
};
constexpr std::array<KemNames, 3> k_kems{{
    {KemAlg::ml_kem_512, "ML-KEM-512", "ml-kem-512"},
    {KemAlg::ml_kem_768, "ML-KEM-768", "ml-kem-768"},
    {KemAlg::ml_kem_1024, "ML-KEM-1024", "ml-kem-1024"},
}};

struct SigNames {
    SigAlg alg;
    std::string_view openssl;
    std::string_view cli;
};
constexpr std::array<SigNames, 6> k_sigs{{
    {SigAlg::ml_dsa_44, "ML-DSA-44", "ml-dsa-44"},
    {SigAlg::ml_dsa_65, "ML-DSA-65", "ml-dsa-65"},
    {SigAlg::ml_dsa_87, "ML-DSA-87", "ml-dsa-87"},
    {SigAlg::ed25519, "ED25519", "ed25519"},
    {SigAlg::ecdsa_p256, "EC", "ecdsa-p256"},
    {SigAlg::rsa_3072_pss, "RSA", "rsa-3072-pss"},
}};

std::string lower(std::string_view s) {
    std::string out(s);
    for (char& c : out) {
        c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    }
    return out;
}

}  // namespace

std::string_view openssl_name(KemAlg alg) noexcept {
    for (const auto& k : k_kems) {
        if (k.alg == alg) {
            return k.openssl;
        }
    }
    return {};
}

std::string_view openssl_name(SigAlg alg) noexcept {
    for (const auto& s : k_sigs) {
        if (s.alg == alg) {
            return s.openssl;
        }
    }
    return {};
}

std::string_view cli_name(KemAlg alg) noexcept {
    for (const auto& k : k_kems) {
        if (k.alg == alg) {
            return k.cli;
        }
    }
    return {};
}

std::string_view cli_name(SigAlg alg) noexcept {
    for (const auto& s : k_sigs) {
        if (s.alg == alg) {
            return s.cli;
        }
    }
    return {};
}

std::optional<KemAlg> parse_kem_alg(std::string_view name) noexcept {
    const std::string n = lower(name);
    for (const auto& k : k_kems) {
        if (n == k.cli || n == lower(k.openssl)) {
            return k.alg;
        }
    }
    return std::nullopt;
}

std::optional<SigAlg> parse_sig_alg(std::string_view name) noexcept {
    const std::string n = lower(name);
    for (const auto& s : k_sigs) {
        if (n == s.cli || (is_ml_dsa(s.alg) && n == lower(s.openssl))) {
            return s.alg;
        }
    }
    if (n == "mldsa44") {
        return SigAlg::ml_dsa_44;
    }
    if (n == "mldsa65") {
        return SigAlg::ml_dsa_65;
    }
    if (n == "mldsa87") {
        return SigAlg::ml_dsa_87;
    }
    return std::nullopt;
}

}  // namespace pqmcp::crypto
