// Algorithm names shared by the crypto wrappers, identities and TLS profiles.
#pragma once

#include <cstddef>
#include <optional>
#include <string_view>

namespace pqmcp::crypto {

enum class KemAlg { ml_kem_512, ml_kem_768, ml_kem_1024 };

enum class SigAlg { ml_dsa_44, ml_dsa_65, ml_dsa_87, ed25519, ecdsa_p256, rsa_3072_pss };

// OpenSSL's algorithm name: "ML-KEM-768", "ML-DSA-65", "ED25519", "EC", "RSA".
[[nodiscard]] std::string_view openssl_name(KemAlg alg) noexcept;
[[nodiscard]] std::string_view openssl_name(SigAlg alg) noexcept;

// The name users type and pqmcp prints: "ml-kem-768", "ml-dsa-65", "ed25519",
// "ecdsa-p256", "rsa-3072-pss".
[[nodiscard]] std::string_view cli_name(KemAlg alg) noexcept;
[[nodiscard]] std::string_view cli_name(SigAlg alg) noexcept;

// Parses either spelling, case-insensitively.
[[nodiscard]] std::optional<KemAlg> parse_kem_alg(std::string_view name) noexcept;
[[nodiscard]] std::optional<SigAlg> parse_sig_alg(std::string_view name) noexcept;

[[nodiscard]] constexpr bool is_ml_dsa(SigAlg alg) noexcept {
    return alg == SigAlg::ml_dsa_44 || alg == SigAlg::ml_dsa_65 || alg == SigAlg::ml_dsa_87;
}

// FIPS 203 table 3 sizes (bytes).
struct KemSizes {
    std::size_t encapsulation_key;
    std::size_t decapsulation_key;
    std::size_t ciphertext;
    std::size_t shared_secret;
    std::size_t seed;  // d || z
};
[[nodiscard]] constexpr KemSizes kem_sizes(KemAlg alg) noexcept {
    switch (alg) {
        case KemAlg::ml_kem_512:
            return {800, 1632, 768, 32, 64};
        case KemAlg::ml_kem_768:
            return {1184, 2400, 1088, 32, 64};
        case KemAlg::ml_kem_1024:
            return {1568, 3168, 1568, 32, 64};
    }
    return {0, 0, 0, 0, 0};
}

// FIPS 204 table 2 sizes (bytes).
struct MlDsaSizes {
    std::size_t public_key;
    std::size_t private_key;
    std::size_t signature;
    std::size_t seed;  // xi
};
[[nodiscard]] constexpr MlDsaSizes ml_dsa_sizes(SigAlg alg) noexcept {
    switch (alg) {
        case SigAlg::ml_dsa_44:
            return {1312, 2560, 2420, 32};
        case SigAlg::ml_dsa_65:
            return {1952, 4032, 3309, 32};
        case SigAlg::ml_dsa_87:
            return {2592, 4896, 4627, 32};
        default:
            return {0, 0, 0, 0};
    }
}

}  // namespace pqmcp::crypto
