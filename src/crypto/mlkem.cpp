// ML-KEM (FIPS 203) through OpenSSL's EVP_PKEY / EVP_KEM interfaces. No
// arithmetic here: this file checks sizes, builds OSSL_PARAMs and maps
// failures to crypto::Errc.
#include "pqmcp/crypto/mlkem.hpp"

#include <array>
#include <optional>
#include <string>

#include <openssl/core_names.h>
#include <openssl/params.h>

namespace pqmcp::crypto {
namespace {

constexpr std::array<KemAlg, 3> k_all_kems{KemAlg::ml_kem_512, KemAlg::ml_kem_768,
                                           KemAlg::ml_kem_1024};

std::string name_of(KemAlg alg) {
    return std::string(openssl_name(alg));
}

std::optional<KemAlg> kem_alg_of(const EVP_PKEY* key) {
    if (key == nullptr) {
        return std::nullopt;
    }
    // Fast path: the key type's primary name, one lookup instead of three.
    if (const char* type = EVP_PKEY_get0_type_name(key); type != nullptr) {
        for (const KemAlg alg : k_all_kems) {
            if (openssl_name(alg) == type) {
                return alg;
            }
        }
    }
    for (const KemAlg alg : k_all_kems) {
        if (EVP_PKEY_is_a(key, name_of(alg).c_str()) == 1) {
            return alg;
        }
    }
    return std::nullopt;
}

Result<KemAlg> require_kem_key(const EVP_PKEY* key) {
    if (auto alg = kem_alg_of(key)) {
        return *alg;
    }
    return fail(Errc::invalid_key, "not an ML-KEM key");
}

std::string size_detail(std::string_view what, std::size_t got, std::size_t want, KemAlg alg) {
    return std::string(what) + " has " + std::to_string(got) + " bytes, " +
           std::string(openssl_name(alg)) + " requires " + std::to_string(want);
}

// Key generation, optionally from the 64-byte seed d || z.
Result<PkeyPtr> generate(KemAlg alg, const ByteView* seed) {
    const std::string name = name_of(alg);
    PkeyCtxPtr ctx(EVP_PKEY_CTX_new_from_name(nullptr, name.c_str(), nullptr));
    if (!ctx) {
        return openssl_fail(Errc::unsupported_algorithm, name + " is not available");
    }
    if (EVP_PKEY_keygen_init(ctx.get()) != 1) {
        return openssl_fail(Errc::unsupported_algorithm, name + " key generation");
    }
    if (seed != nullptr) {
        std::array<OSSL_PARAM, 2> params{
            OSSL_PARAM_construct_octet_string(
                OSSL_PKEY_PARAM_ML_KEM_SEED, const_cast<std::uint8_t*>(seed->data()), seed->size()),
            OSSL_PARAM_construct_end()};
        if (EVP_PKEY_CTX_set_params(ctx.get(), params.data()) != 1) {
            return openssl_fail(Errc::invalid_argument, name + ": seed rejected");
        }
    }
    EVP_PKEY* raw = nullptr;
    if (EVP_PKEY_generate(ctx.get(), &raw) != 1) {
        return openssl_fail(Errc::operation_failed, name + " key generation");
    }
    return PkeyPtr(raw);
}

Result<Encapsulated> encapsulate(EVP_PKEY* ek, const ByteView* m) {
    auto alg = require_kem_key(ek);
    if (!alg) {
        return tl::unexpected(alg.error());
    }
    const KemSizes sizes = kem_sizes(*alg);
    PkeyCtxPtr ctx(EVP_PKEY_CTX_new_from_pkey(nullptr, ek, nullptr));
    if (!ctx) {
        return openssl_fail(Errc::operation_failed, "EVP_PKEY_CTX_new_from_pkey");
    }
    std::array<OSSL_PARAM, 2> params{OSSL_PARAM_construct_end(), OSSL_PARAM_construct_end()};
    if (m != nullptr) {
        params[0] = OSSL_PARAM_construct_octet_string(
            OSSL_KEM_PARAM_IKME, const_cast<std::uint8_t*>(m->data()), m->size());
    }
    if (EVP_PKEY_encapsulate_init(ctx.get(), params.data()) != 1) {
        return openssl_fail(Errc::invalid_key, "ML-KEM encapsulation init");
    }
    Encapsulated out{Bytes(sizes.ciphertext), SecretBytes(sizes.shared_secret)};
    std::size_t ct_len = out.ciphertext.size();
    std::size_t ss_len = out.shared_secret.size();
    if (EVP_PKEY_encapsulate(ctx.get(), out.ciphertext.data(), &ct_len, out.shared_secret.data(),
                             &ss_len) != 1) {
        return openssl_fail(Errc::operation_failed, "ML-KEM encapsulation");
    }
    if (ct_len != sizes.ciphertext || ss_len != sizes.shared_secret) {
        return fail(Errc::operation_failed, "ML-KEM encapsulation returned unexpected sizes");
    }
    return out;
}

}  // namespace

Result<PkeyPtr> mlkem_generate(KemAlg alg) {
    return generate(alg, nullptr);
}

Result<PkeyPtr> mlkem_generate_from_seed(KemAlg alg, ByteView seed) {
    // FIPS 203 section 6.1, Algorithm 16: ML-KEM.KeyGen_internal(d, z) takes two
    // 32-byte seeds; the 64-byte seed here is d || z.
    if (seed.size() != kem_sizes(alg).seed) {
        return fail(Errc::invalid_argument,
                    size_detail("seed", seed.size(), kem_sizes(alg).seed, alg));
    }
    return generate(alg, &seed);
}

Result<PkeyPtr> mlkem_public_key(KemAlg alg, ByteView ek) {
    // FIPS 203 section 7.2, input checking: "(Type check) If ek is not an array
    // of bytes of length 384k + 32 ..., then input checking has failed."
    const std::size_t want = kem_sizes(alg).encapsulation_key;
    if (ek.size() != want) {
        return fail(Errc::invalid_key, size_detail("encapsulation key", ek.size(), want, alg));
    }
    // FIPS 203 section 7.2: "(Modulus check) If ByteEncode12(ByteDecode12(ek))
    // != ek, then input checking has failed." OpenSSL performs this check when
    // it decodes the key and refuses the import.
    const std::string name = name_of(alg);
    PkeyPtr key(
        EVP_PKEY_new_raw_public_key_ex(nullptr, name.c_str(), nullptr, ek.data(), ek.size()));
    if (!key) {
        return openssl_fail(Errc::invalid_key, name + " encapsulation key rejected");
    }
    return key;
}

Result<PkeyPtr> mlkem_private_key(KemAlg alg, ByteView dk) {
    // FIPS 203 section 7.3, input checking: "(Decapsulation key type check) If dk
    // is not an array of bytes of length 768k + 96 ..., then input checking has
    // failed."
    const std::size_t want = kem_sizes(alg).decapsulation_key;
    if (dk.size() != want) {
        return fail(Errc::invalid_key, size_detail("decapsulation key", dk.size(), want, alg));
    }
    // FIPS 203 section 7.3: "(Hash check) If H(dk[384k : 768k + 32]) !=
    // dk[768k + 32 : 768k + 64], then input checking has failed." OpenSSL
    // checks the embedded hash (and the embedded ek's modulus) on import.
    const std::string name = name_of(alg);
    PkeyPtr key(
        EVP_PKEY_new_raw_private_key_ex(nullptr, name.c_str(), nullptr, dk.data(), dk.size()));
    if (!key) {
        return openssl_fail(Errc::invalid_key, name + " decapsulation key rejected");
    }
    return key;
}

Result<Bytes> mlkem_public_bytes(const EVP_PKEY* key) {
    auto alg = require_kem_key(key);
    if (!alg) {
        return tl::unexpected(alg.error());
    }
    Bytes out(kem_sizes(*alg).encapsulation_key);
    std::size_t len = out.size();
    if (EVP_PKEY_get_raw_public_key(key, out.data(), &len) != 1 || len != out.size()) {
        return openssl_fail(Errc::invalid_key, "ML-KEM encapsulation key export");
    }
    return out;
}

Result<SecretBytes> mlkem_private_bytes(const EVP_PKEY* key) {
    auto alg = require_kem_key(key);
    if (!alg) {
        return tl::unexpected(alg.error());
    }
    SecretBytes out(kem_sizes(*alg).decapsulation_key);
    std::size_t len = out.size();
    if (EVP_PKEY_get_raw_private_key(key, out.data(), &len) != 1 || len != out.size()) {
        return openssl_fail(Errc::invalid_key, "ML-KEM decapsulation key export (no private key?)");
    }
    return out;
}

Result<Encapsulated> mlkem_encapsulate(EVP_PKEY* ek) {
    return encapsulate(ek, nullptr);
}

Result<Encapsulated> mlkem_encapsulate_derand(EVP_PKEY* ek, ByteView m) {
    // FIPS 203 section 6.2, Algorithm 17: ML-KEM.Encaps_internal(ek, m) takes a
    // 32-byte m.
    if (m.size() != 32) {
        return fail(Errc::invalid_argument, "encapsulation randomness m has " +
                                                std::to_string(m.size()) +
                                                " bytes, ML-KEM requires 32");
    }
    return encapsulate(ek, &m);
}

Result<SecretBytes> mlkem_decapsulate(EVP_PKEY* dk, ByteView ciphertext) {
    auto alg = require_kem_key(dk);
    if (!alg) {
        return tl::unexpected(alg.error());
    }
    const KemSizes sizes = kem_sizes(*alg);
    // FIPS 203 section 7.3: "(Ciphertext type check) If c is not a byte array of
    // length 32(du k + dv) ..., then input checking has failed."
    if (ciphertext.size() != sizes.ciphertext) {
        return fail(Errc::invalid_argument,
                    size_detail("ciphertext", ciphertext.size(), sizes.ciphertext, *alg));
    }
    PkeyCtxPtr ctx(EVP_PKEY_CTX_new_from_pkey(nullptr, dk, nullptr));
    if (!ctx) {
        return openssl_fail(Errc::operation_failed, "EVP_PKEY_CTX_new_from_pkey");
    }
    if (EVP_PKEY_decapsulate_init(ctx.get(), nullptr) != 1) {
        return openssl_fail(Errc::invalid_key, "ML-KEM decapsulation init (no private key?)");
    }
    // FIPS 203 section 6.3, Algorithm 18: when the re-encryption does not match,
    // "K <- K-bar" (implicit rejection): a well-formed but wrong ciphertext is not
    // an error, it yields the pseudorandom rejection secret J(z || c).
    SecretBytes shared(sizes.shared_secret);
    std::size_t len = shared.size();
    if (EVP_PKEY_decapsulate(ctx.get(), shared.data(), &len, ciphertext.data(),
                             ciphertext.size()) != 1) {
        return openssl_fail(Errc::operation_failed, "ML-KEM decapsulation");
    }
    if (len != sizes.shared_secret) {
        return fail(Errc::operation_failed, "ML-KEM decapsulation returned an unexpected size");
    }
    return shared;
}

}  // namespace pqmcp::crypto
