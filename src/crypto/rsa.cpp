// RSA-OAEP with SHA-256 (RFC 8017 section 7.1) through OpenSSL's EVP_PKEY
// encrypt/decrypt, for the classical baseline in benchmarks.
#include "pqmcp/crypto/rsa.hpp"

#include <array>
#include <string>

#include <openssl/core_names.h>
#include <openssl/params.h>
#include <openssl/rsa.h>

namespace pqmcp::crypto {
namespace {

// Below 2048 bits RSA is not acceptable for anything (NIST SP 800-131A);
// above 16384 key generation takes minutes.
constexpr unsigned k_min_bits = 2048;
constexpr unsigned k_max_bits = 16384;
constexpr std::size_t k_sha256_size = 32;

const unsigned char* data_or_empty(ByteView v) noexcept {
    static const unsigned char empty = 0;
    return v.empty() ? &empty : v.data();
}

Status require_rsa(const EVP_PKEY* key) {
    if (key == nullptr || EVP_PKEY_is_a(key, "RSA") != 1) {
        return fail(Errc::invalid_key, "not an RSA key");
    }
    return {};
}

// OAEP with SHA-256 for both the label hash and MGF1, empty label.
class OaepParams final {
  public:
    OaepParams()
        : params_{
              OSSL_PARAM_construct_utf8_string(OSSL_ASYM_CIPHER_PARAM_PAD_MODE,
                                               const_cast<char*>(OSSL_PKEY_RSA_PAD_MODE_OAEP), 0),
              OSSL_PARAM_construct_utf8_string(OSSL_ASYM_CIPHER_PARAM_OAEP_DIGEST,
                                               const_cast<char*>("SHA256"), 0),
              OSSL_PARAM_construct_utf8_string(OSSL_ASYM_CIPHER_PARAM_MGF1_DIGEST,
                                               const_cast<char*>("SHA256"), 0),
              OSSL_PARAM_construct_end()} {}

    [[nodiscard]] const OSSL_PARAM* get() const noexcept { return params_.data(); }

  private:
    std::array<OSSL_PARAM, 4> params_;
};

std::size_t modulus_bytes(const EVP_PKEY* key) {
    const int size = EVP_PKEY_get_size(key);
    return size > 0 ? static_cast<std::size_t>(size) : 0;
}

}  // namespace

Result<PkeyPtr> rsa_generate(unsigned bits) {
    if (bits < k_min_bits || bits > k_max_bits) {
        return fail(Errc::invalid_argument,
                    "RSA key size " + std::to_string(bits) + " is outside [2048, 16384] bits");
    }
    PkeyCtxPtr ctx(EVP_PKEY_CTX_new_from_name(nullptr, "RSA", nullptr));
    if (!ctx) {
        return openssl_fail(Errc::unsupported_algorithm, "RSA is not available");
    }
    if (EVP_PKEY_keygen_init(ctx.get()) != 1 ||
        EVP_PKEY_CTX_set_rsa_keygen_bits(ctx.get(), static_cast<int>(bits)) != 1) {
        return openssl_fail(Errc::operation_failed, "RSA key generation init");
    }
    EVP_PKEY* raw = nullptr;
    if (EVP_PKEY_generate(ctx.get(), &raw) != 1) {
        return openssl_fail(Errc::operation_failed, "RSA key generation");
    }
    return PkeyPtr(raw);
}

Result<Bytes> rsa_oaep_encrypt(EVP_PKEY* key, ByteView plaintext) {
    if (auto ok = require_rsa(key); !ok) {
        return tl::unexpected(ok.error());
    }
    // RFC 8017 section 7.1.1, step 1b: "If mLen > k - 2hLen - 2, output
    // 'message too long' and stop."
    const std::size_t k = modulus_bytes(key);
    if (k < 2 * k_sha256_size + 2 || plaintext.size() > k - 2 * k_sha256_size - 2) {
        return fail(Errc::invalid_argument, "RSA-OAEP plaintext of " +
                                                std::to_string(plaintext.size()) +
                                                " bytes is too long for this key");
    }
    PkeyCtxPtr ctx(EVP_PKEY_CTX_new_from_pkey(nullptr, key, nullptr));
    if (!ctx) {
        return openssl_fail(Errc::operation_failed, "EVP_PKEY_CTX_new_from_pkey");
    }
    const OaepParams params;
    if (EVP_PKEY_encrypt_init_ex(ctx.get(), params.get()) != 1) {
        return openssl_fail(Errc::invalid_key, "RSA-OAEP encryption init");
    }
    Bytes out(k);
    std::size_t len = out.size();
    if (EVP_PKEY_encrypt(ctx.get(), out.data(), &len, data_or_empty(plaintext), plaintext.size()) !=
        1) {
        return openssl_fail(Errc::operation_failed, "RSA-OAEP encryption");
    }
    out.resize(len);
    return out;
}

Result<SecretBytes> rsa_oaep_decrypt(EVP_PKEY* key, ByteView ciphertext) {
    if (auto ok = require_rsa(key); !ok) {
        return tl::unexpected(ok.error());
    }
    // RFC 8017 section 7.1.2, step 1b: "If the length of the ciphertext C is not
    // k octets, output 'decryption error' and stop."
    const std::size_t k = modulus_bytes(key);
    if (ciphertext.size() != k) {
        return fail(Errc::invalid_argument, "RSA-OAEP ciphertext has " +
                                                std::to_string(ciphertext.size()) +
                                                " bytes, the key requires " + std::to_string(k));
    }
    PkeyCtxPtr ctx(EVP_PKEY_CTX_new_from_pkey(nullptr, key, nullptr));
    if (!ctx) {
        return openssl_fail(Errc::operation_failed, "EVP_PKEY_CTX_new_from_pkey");
    }
    const OaepParams params;
    if (EVP_PKEY_decrypt_init_ex(ctx.get(), params.get()) != 1) {
        return openssl_fail(Errc::invalid_key, "RSA-OAEP decryption init (no private key?)");
    }
    SecretBytes out(k);
    std::size_t len = out.size();
    if (EVP_PKEY_decrypt(ctx.get(), out.data(), &len, ciphertext.data(), ciphertext.size()) != 1) {
        return openssl_fail(Errc::operation_failed, "RSA-OAEP decryption error");
    }
    out.truncate(len);
    return out;
}

}  // namespace pqmcp::crypto
