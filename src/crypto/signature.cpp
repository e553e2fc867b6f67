// Signatures through OpenSSL's EVP interfaces: ML-DSA (FIPS 204) with the
// EVP_PKEY_sign_message_* API (context strings, deterministic signing, external
// mu), and Ed25519, ECDSA P-256 with SHA-256, RSA-PSS with SHA-256 through
// EVP_DigestSign*. Nothing here computes a signature itself.
#include "pqmcp/crypto/signature.hpp"

#include <array>
#include <string>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/params.h>

#include "pqmcp/crypto/rsa.hpp"

namespace pqmcp::crypto {
namespace {

constexpr std::array<SigAlg, 3> k_ml_dsa{SigAlg::ml_dsa_44, SigAlg::ml_dsa_65, SigAlg::ml_dsa_87};

// FIPS 204 section 5.2, Algorithm 2 (ML-DSA.Sign) and Algorithm 3
// (ML-DSA.Verify), line 1: "if |ctx| > 255 then return an error indication".
constexpr std::size_t k_max_context = 255;
// FIPS 204 section 6.2, Algorithm 7, line 6: mu = H(tr || M', 64), 64 bytes.
constexpr std::size_t k_mu_size = 64;
// FIPS 204 section 5.2, Algorithm 2, line 5: rnd is 32 bytes.
constexpr std::size_t k_rnd_size = 32;
// RFC 8032 section 5.1.5 / 5.1.6: 32-byte keys, 64-byte signatures.
constexpr std::size_t k_ed25519_key_size = 32;
constexpr std::size_t k_ed25519_sig_size = 64;
constexpr unsigned k_rsa_bits = 3072;

// OpenSSL may read a null pointer as "query the size" even with length 0.
const unsigned char* data_or_empty(ByteView v) noexcept {
    static const unsigned char empty = 0;
    return v.empty() ? &empty : v.data();
}

std::string name_of(SigAlg alg) {
    return std::string(openssl_name(alg));
}

std::string size_detail(std::string_view what, std::size_t got, std::size_t want,
                        std::string_view alg) {
    return std::string(what) + " has " + std::to_string(got) + " bytes, " + std::string(alg) +
           " requires " + std::to_string(want);
}

Result<PkeyPtr> generate(const char* name, const OSSL_PARAM* params) {
    PkeyCtxPtr ctx(EVP_PKEY_CTX_new_from_name(nullptr, name, nullptr));
    if (!ctx) {
        return openssl_fail(Errc::unsupported_algorithm, std::string(name) + " is not available");
    }
    if (EVP_PKEY_keygen_init(ctx.get()) != 1) {
        return openssl_fail(Errc::unsupported_algorithm, std::string(name) + " key generation");
    }
    if (params != nullptr && EVP_PKEY_CTX_set_params(ctx.get(), params) != 1) {
        return openssl_fail(Errc::invalid_argument,
                            std::string(name) + ": key generation parameters rejected");
    }
    EVP_PKEY* raw = nullptr;
    if (EVP_PKEY_generate(ctx.get(), &raw) != 1) {
        return openssl_fail(Errc::operation_failed, std::string(name) + " key generation");
    }
    return PkeyPtr(raw);
}

Result<PkeyPtr> raw_key(SigAlg alg, ByteView bytes, bool is_private) {
    const std::string name = name_of(alg);
    PkeyPtr key(is_private ? EVP_PKEY_new_raw_private_key_ex(nullptr, name.c_str(), nullptr,
                                                             bytes.data(), bytes.size())
                           : EVP_PKEY_new_raw_public_key_ex(nullptr, name.c_str(), nullptr,
                                                            bytes.data(), bytes.size()));
    if (!key) {
        return openssl_fail(Errc::invalid_key,
                            name + (is_private ? " private key rejected" : " public key rejected"));
    }
    return key;
}

// Whether `key` has no private half; asked only after signing failed, to tell
// a public key passed by mistake (invalid_key) from an OpenSSL failure.
bool lacks_private_key(const EVP_PKEY* key, SigAlg alg) {
    if (is_ml_dsa(alg) || alg == SigAlg::ed25519) {
        std::size_t len = 0;
        return EVP_PKEY_get_raw_private_key(key, nullptr, &len) != 1 || len == 0;
    }
    BIGNUM* secret = nullptr;
    const char* param =
        alg == SigAlg::ecdsa_p256 ? OSSL_PKEY_PARAM_PRIV_KEY : OSSL_PKEY_PARAM_RSA_D;
    const bool missing = EVP_PKEY_get_bn_param(key, param, &secret) != 1;
    BN_clear_free(secret);
    return missing;
}

Result<SigAlg> require_alg(const EVP_PKEY* key) {
    if (auto alg = signature_algorithm_of(key)) {
        return *alg;
    }
    return fail(Errc::invalid_key, "not a supported signature key");
}

// ML-DSA parameters for EVP_PKEY_{sign,verify}_message_init. The OSSL_PARAMs
// point into the caller's spans and into this object, so it must outlive the
// init call (it is copied by the provider there).
class MlDsaParams final {
  public:
    MlDsaParams(ByteView context, bool external_mu, bool deterministic, ByteView rnd)
        : external_mu_(external_mu ? 1 : 0), deterministic_(deterministic ? 1 : 0) {
        std::size_t n = 0;
        params_[n++] = OSSL_PARAM_construct_octet_string(
            OSSL_SIGNATURE_PARAM_CONTEXT_STRING, const_cast<unsigned char*>(data_or_empty(context)),
            context.size());
        params_[n++] = OSSL_PARAM_construct_int(OSSL_SIGNATURE_PARAM_MU, &external_mu_);
        params_[n++] =
            OSSL_PARAM_construct_int(OSSL_SIGNATURE_PARAM_DETERMINISTIC, &deterministic_);
        if (!rnd.empty()) {
            params_[n++] = OSSL_PARAM_construct_octet_string(OSSL_SIGNATURE_PARAM_TEST_ENTROPY,
                                                             const_cast<std::uint8_t*>(rnd.data()),
                                                             rnd.size());
        }
        params_[n] = OSSL_PARAM_construct_end();
    }
    // The OSSL_PARAMs point at members: neither copyable nor movable.
    MlDsaParams(const MlDsaParams&) = delete;
    MlDsaParams& operator=(const MlDsaParams&) = delete;
    MlDsaParams(MlDsaParams&&) = delete;
    MlDsaParams& operator=(MlDsaParams&&) = delete;
    ~MlDsaParams() = default;

    [[nodiscard]] const OSSL_PARAM* get() const noexcept { return params_.data(); }

  private:
    int external_mu_;
    int deterministic_;
    std::array<OSSL_PARAM, 5> params_{};
};

Result<SignaturePtr> fetch_ml_dsa(SigAlg alg) {
    SignaturePtr sig(EVP_SIGNATURE_fetch(nullptr, name_of(alg).c_str(), nullptr));
    if (!sig) {
        return openssl_fail(Errc::unsupported_algorithm, name_of(alg) + " is not available");
    }
    return sig;
}

// ML-DSA.Sign (external_mu = false, input = M) or ML-DSA.Sign_internal from mu
// (external_mu = true, input = mu).
Result<Bytes> ml_dsa_sign(EVP_PKEY* key, SigAlg alg, ByteView input, ByteView context,
                          bool external_mu, bool deterministic, ByteView rnd) {
    const std::string name = name_of(alg);
    if (context.size() > k_max_context) {
        return fail(Errc::invalid_argument, "ML-DSA context string has " +
                                                std::to_string(context.size()) +
                                                " bytes, at most 255 are allowed");
    }
    if (!rnd.empty() && rnd.size() != k_rnd_size) {
        return fail(Errc::invalid_argument, size_detail("rnd", rnd.size(), k_rnd_size, name));
    }
    auto sig_alg = fetch_ml_dsa(alg);
    if (!sig_alg) {
        return tl::unexpected(sig_alg.error());
    }
    PkeyCtxPtr ctx(EVP_PKEY_CTX_new_from_pkey(nullptr, key, nullptr));
    if (!ctx) {
        return openssl_fail(Errc::operation_failed, "EVP_PKEY_CTX_new_from_pkey");
    }
    const MlDsaParams params(context, external_mu, deterministic, rnd);
    if (EVP_PKEY_sign_message_init(ctx.get(), sig_alg->get(), params.get()) != 1) {
        return openssl_fail(Errc::invalid_key, name + " signing init");
    }
    Bytes sig(ml_dsa_sizes(alg).signature);
    std::size_t len = sig.size();
    if (EVP_PKEY_sign(ctx.get(), sig.data(), &len, data_or_empty(input), input.size()) != 1) {
        if (lacks_private_key(key, alg)) {
            return openssl_fail(Errc::invalid_key, name + " signing needs a private key");
        }
        return openssl_fail(Errc::operation_failed, name + " signing");
    }
    if (len != sig.size()) {
        return fail(Errc::operation_failed, name + " signature has an unexpected size");
    }
    return sig;
}

Status ml_dsa_verify(EVP_PKEY* key, SigAlg alg, ByteView message, ByteView signature,
                     ByteView context) {
    const std::string name = name_of(alg);
    if (context.size() > k_max_context) {
        return fail(Errc::invalid_argument, "ML-DSA context string has " +
                                                std::to_string(context.size()) +
                                                " bytes, at most 255 are allowed");
    }
    // FIPS 204 section 4, Table 2 fixes the signature size; a signature of any
    // other length cannot decode (Algorithm 27, sigDecode) and so does not verify.
    // It is reported as signature_invalid, like any other bad signature.
    const std::size_t want = ml_dsa_sizes(alg).signature;
    if (signature.size() != want) {
        return fail(Errc::signature_invalid,
                    size_detail("signature", signature.size(), want, name));
    }
    auto sig_alg = fetch_ml_dsa(alg);
    if (!sig_alg) {
        return tl::unexpected(sig_alg.error());
    }
    PkeyCtxPtr ctx(EVP_PKEY_CTX_new_from_pkey(nullptr, key, nullptr));
    if (!ctx) {
        return openssl_fail(Errc::operation_failed, "EVP_PKEY_CTX_new_from_pkey");
    }
    const MlDsaParams params(context, false, false, {});
    if (EVP_PKEY_verify_message_init(ctx.get(), sig_alg->get(), params.get()) != 1) {
        return openssl_fail(Errc::invalid_key, name + " verification init");
    }
    if (EVP_PKEY_verify(ctx.get(), signature.data(), signature.size(), data_or_empty(message),
                        message.size()) != 1) {
        return openssl_fail(Errc::signature_invalid, name + " signature does not verify");
    }
    return {};
}

// Ed25519 (pure, no digest), ECDSA with SHA-256, RSA-PSS with SHA-256, MGF1
// with SHA-256 and a salt as long as the digest (RFC 8017 section 9.1, the
// TLS 1.3 rsa_pss_rsae_sha256 profile).
class ClassicalParams final {
  public:
    explicit ClassicalParams(SigAlg alg) {
        std::size_t n = 0;
        if (alg == SigAlg::rsa_3072_pss) {
            params_[n++] = OSSL_PARAM_construct_utf8_string(
                OSSL_SIGNATURE_PARAM_PAD_MODE, const_cast<char*>(OSSL_PKEY_RSA_PAD_MODE_PSS), 0);
            params_[n++] = OSSL_PARAM_construct_utf8_string(
                OSSL_SIGNATURE_PARAM_PSS_SALTLEN,
                const_cast<char*>(OSSL_PKEY_RSA_PSS_SALT_LEN_DIGEST), 0);
            params_[n++] = OSSL_PARAM_construct_utf8_string(OSSL_SIGNATURE_PARAM_MGF1_DIGEST,
                                                            const_cast<char*>("SHA256"), 0);
        }
        params_[n] = OSSL_PARAM_construct_end();
        digest_ = alg == SigAlg::ed25519 ? nullptr : "SHA256";
    }

    [[nodiscard]] const OSSL_PARAM* get() const noexcept { return params_.data(); }
    [[nodiscard]] const char* digest() const noexcept { return digest_; }

  private:
    std::array<OSSL_PARAM, 4> params_{};
    const char* digest_ = nullptr;
};

Result<Bytes> classical_sign(EVP_PKEY* key, SigAlg alg, ByteView message) {
    const std::string name(cli_name(alg));
    MdCtxPtr md(EVP_MD_CTX_new());
    if (!md) {
        return openssl_fail(Errc::operation_failed, "EVP_MD_CTX_new");
    }
    const ClassicalParams params(alg);
    if (EVP_DigestSignInit_ex(md.get(), nullptr, params.digest(), nullptr, nullptr, key,
                              params.get()) != 1) {
        return openssl_fail(Errc::invalid_key, name + " signing init");
    }
    std::size_t len = 0;
    if (EVP_DigestSign(md.get(), nullptr, &len, data_or_empty(message), message.size()) != 1) {
        return openssl_fail(Errc::operation_failed, name + " signature size");
    }
    Bytes sig(len);
    if (EVP_DigestSign(md.get(), sig.data(), &len, data_or_empty(message), message.size()) != 1) {
        if (lacks_private_key(key, alg)) {
            return openssl_fail(Errc::invalid_key, name + " signing needs a private key");
        }
        return openssl_fail(Errc::operation_failed, name + " signing");
    }
    sig.resize(len);
    return sig;
}

Status classical_verify(EVP_PKEY* key, SigAlg alg, ByteView message, ByteView signature) {
    const std::string name(cli_name(alg));
    if (alg == SigAlg::ed25519 && signature.size() != k_ed25519_sig_size) {
        return fail(Errc::signature_invalid,
                    size_detail("signature", signature.size(), k_ed25519_sig_size, name));
    }
    if (signature.empty()) {
        return fail(Errc::signature_invalid, "empty signature");
    }
    MdCtxPtr md(EVP_MD_CTX_new());
    if (!md) {
        return openssl_fail(Errc::operation_failed, "EVP_MD_CTX_new");
    }
    const ClassicalParams params(alg);
    if (EVP_DigestVerifyInit_ex(md.get(), nullptr, params.digest(), nullptr, nullptr, key,
                                params.get()) != 1) {
        return openssl_fail(Errc::invalid_key, name + " verification init");
    }
    // 1 is success; 0 is a signature that does not verify and a negative value a
    // signature that does not even parse (an ECDSA DER error): both are a bad
    // signature from the caller's point of view.
    if (EVP_DigestVerify(md.get(), signature.data(), signature.size(), data_or_empty(message),
                         message.size()) != 1) {
        return openssl_fail(Errc::signature_invalid, name + " signature does not verify");
    }
    return {};
}

}  // namespace

Result<PkeyPtr> generate_signing_key(SigAlg alg) {
    switch (alg) {
        case SigAlg::ml_dsa_44:
        case SigAlg::ml_dsa_65:
        case SigAlg::ml_dsa_87:
            return generate(name_of(alg).c_str(), nullptr);
        case SigAlg::ed25519:
            return generate("ED25519", nullptr);
        case SigAlg::ecdsa_p256: {
            const std::array<OSSL_PARAM, 2> params{
                OSSL_PARAM_construct_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME,
                                                 const_cast<char*>("P-256"), 0),
                OSSL_PARAM_construct_end()};
            return generate("EC", params.data());
        }
        case SigAlg::rsa_3072_pss:
            return rsa_generate(k_rsa_bits);
    }
    return fail(Errc::unsupported_algorithm, "unknown signature algorithm");
}

Result<PkeyPtr> mldsa_generate_from_seed(SigAlg alg, ByteView seed) {
    if (!is_ml_dsa(alg)) {
        return fail(Errc::invalid_argument, name_of(alg) + " is not an ML-DSA algorithm");
    }
    // FIPS 204 section 6.1, Algorithm 6: ML-DSA.KeyGen_internal(xi) takes a
    // 32-byte seed xi.
    const std::size_t want = ml_dsa_sizes(alg).seed;
    if (seed.size() != want) {
        return fail(Errc::invalid_argument, size_detail("seed", seed.size(), want, name_of(alg)));
    }
    const std::array<OSSL_PARAM, 2> params{
        OSSL_PARAM_construct_octet_string(OSSL_PKEY_PARAM_ML_DSA_SEED,
                                          const_cast<std::uint8_t*>(seed.data()), seed.size()),
        OSSL_PARAM_construct_end()};
    return generate(name_of(alg).c_str(), params.data());
}

Result<PkeyPtr> mldsa_public_key(SigAlg alg, ByteView pk) {
    if (!is_ml_dsa(alg)) {
        return fail(Errc::invalid_argument, name_of(alg) + " is not an ML-DSA algorithm");
    }
    // FIPS 204 section 4, Table 2: the public key size of each parameter set.
    const std::size_t want = ml_dsa_sizes(alg).public_key;
    if (pk.size() != want) {
        return fail(Errc::invalid_key, size_detail("public key", pk.size(), want, name_of(alg)));
    }
    return raw_key(alg, pk, false);
}

Result<PkeyPtr> mldsa_private_key(SigAlg alg, ByteView sk) {
    if (!is_ml_dsa(alg)) {
        return fail(Errc::invalid_argument, name_of(alg) + " is not an ML-DSA algorithm");
    }
    // FIPS 204 section 4, Table 2: the private key size of each parameter set.
    // OpenSSL's skDecode (Algorithm 25) also rejects s1/s2 coefficients outside
    // [-eta, eta] and a tr that is not H(pk) of the recomputed public key.
    const std::size_t want = ml_dsa_sizes(alg).private_key;
    if (sk.size() != want) {
        return fail(Errc::invalid_key, size_detail("private key", sk.size(), want, name_of(alg)));
    }
    return raw_key(alg, sk, true);
}

Result<PkeyPtr> ed25519_public_key(ByteView pk) {
    if (pk.size() != k_ed25519_key_size) {
        return fail(Errc::invalid_key,
                    size_detail("public key", pk.size(), k_ed25519_key_size, "Ed25519"));
    }
    return raw_key(SigAlg::ed25519, pk, false);
}

Result<PkeyPtr> ed25519_private_key(ByteView sk) {
    if (sk.size() != k_ed25519_key_size) {
        return fail(Errc::invalid_key,
                    size_detail("private key", sk.size(), k_ed25519_key_size, "Ed25519"));
    }
    return raw_key(SigAlg::ed25519, sk, true);
}

namespace {

// `is(name)` says whether the key is of OpenSSL key type `name`.
template <typename Is>
std::optional<SigAlg> classify(const EVP_PKEY* key, const Is& is) {
    for (const SigAlg alg : k_ml_dsa) {
        if (is(name_of(alg).c_str())) {
            return alg;
        }
    }
    if (is("ED25519")) {
        return SigAlg::ed25519;
    }
    if (is("EC")) {
        std::array<char, 64> group{};
        std::size_t len = 0;
        if (EVP_PKEY_get_group_name(key, group.data(), group.size(), &len) != 1) {
            return std::nullopt;
        }
        const std::string_view g(group.data(), len);
        if (g == "prime256v1" || g == "P-256" || g == "secp256r1") {
            return SigAlg::ecdsa_p256;
        }
        return std::nullopt;
    }
    if ((is("RSA") || is("RSA-PSS")) && EVP_PKEY_get_bits(key) == static_cast<int>(k_rsa_bits)) {
        return SigAlg::rsa_3072_pss;
    }
    return std::nullopt;
}

}  // namespace

std::optional<SigAlg> signature_algorithm_of(const EVP_PKEY* key) {
    if (key == nullptr) {
        return std::nullopt;
    }
    // Fast path: the key type's primary name, as OpenSSL's own providers spell
    // it, answers without name-map lookups (this runs on every sign/verify).
    const char* type = EVP_PKEY_get0_type_name(key);
    if (type != nullptr) {
        const std::string_view type_name(type);
        if (auto alg = classify(key, [&](const char* name) { return type_name == name; })) {
            return alg;
        }
    }
    // Keys from other providers may use an alias as their primary name.
    return classify(key, [&](const char* name) { return EVP_PKEY_is_a(key, name) == 1; });
}

Result<Bytes> sign(EVP_PKEY* key, ByteView message, const SignOptions& options) {
    auto alg = require_alg(key);
    if (!alg) {
        return tl::unexpected(alg.error());
    }
    if (is_ml_dsa(*alg)) {
        return ml_dsa_sign(key, *alg, message, options.context, false, options.deterministic,
                           options.test_rnd);
    }
    // Ed25519, ECDSA and RSA-PSS as used here have no context string; silently
    // dropping one would drop the caller's domain separation.
    if (!options.context.empty()) {
        return fail(Errc::invalid_argument,
                    std::string(cli_name(*alg)) + " does not take a context string");
    }
    if (!options.test_rnd.empty()) {
        return fail(Errc::invalid_argument,
                    std::string(cli_name(*alg)) + " does not take a fixed rnd");
    }
    return classical_sign(key, *alg, message);
}

Result<Bytes> mldsa_sign_mu(EVP_PKEY* key, ByteView mu, bool deterministic) {
    auto alg = require_alg(key);
    if (!alg) {
        return tl::unexpected(alg.error());
    }
    if (!is_ml_dsa(*alg)) {
        return fail(Errc::invalid_key, "not an ML-DSA key");
    }
    // FIPS 204 section 6.2, Algorithm 7, line 6: mu is 64 bytes.
    if (mu.size() != k_mu_size) {
        return fail(Errc::invalid_argument, size_detail("mu", mu.size(), k_mu_size, name_of(*alg)));
    }
    return ml_dsa_sign(key, *alg, mu, {}, true, deterministic, {});
}

Status verify(EVP_PKEY* key, ByteView message, ByteView signature, ByteView context) {
    auto alg = require_alg(key);
    if (!alg) {
        return tl::unexpected(alg.error());
    }
    if (is_ml_dsa(*alg)) {
        return ml_dsa_verify(key, *alg, message, signature, context);
    }
    if (!context.empty()) {
        return fail(Errc::invalid_argument,
                    std::string(cli_name(*alg)) + " does not take a context string");
    }
    return classical_verify(key, *alg, message, signature);
}

}  // namespace pqmcp::crypto
