// X25519 (RFC 7748) through OpenSSL's EVP_PKEY derive interface.
#include "pqmcp/crypto/x25519.hpp"

#include <string>

namespace pqmcp::crypto {
namespace {

// RFC 7748 section 5: "The X25519 function ... takes a 32-byte scalar and a
// 32-byte u-coordinate as inputs and produces 32 bytes as output."
constexpr std::size_t k_x25519_size = 32;

Status require_x25519(const EVP_PKEY* key, const char* which) {
    if (key == nullptr || EVP_PKEY_is_a(key, "X25519") != 1) {
        return fail(Errc::invalid_key, std::string(which) + " is not an X25519 key");
    }
    return {};
}

}  // namespace

Result<PkeyPtr> x25519_generate() {
    PkeyCtxPtr ctx(EVP_PKEY_CTX_new_from_name(nullptr, "X25519", nullptr));
    if (!ctx) {
        return openssl_fail(Errc::unsupported_algorithm, "X25519 is not available");
    }
    EVP_PKEY* raw = nullptr;
    if (EVP_PKEY_keygen_init(ctx.get()) != 1 || EVP_PKEY_generate(ctx.get(), &raw) != 1) {
        return openssl_fail(Errc::operation_failed, "X25519 key generation");
    }
    return PkeyPtr(raw);
}

Result<PkeyPtr> x25519_private_key(ByteView sk) {
    if (sk.size() != k_x25519_size) {
        return fail(Errc::invalid_key, "X25519 private key has " + std::to_string(sk.size()) +
                                           " bytes, 32 are required");
    }
    PkeyPtr key(EVP_PKEY_new_raw_private_key_ex(nullptr, "X25519", nullptr, sk.data(), sk.size()));
    if (!key) {
        return openssl_fail(Errc::invalid_key, "X25519 private key rejected");
    }
    return key;
}

Result<PkeyPtr> x25519_public_key(ByteView pk) {
    // RFC 7748 section 5: "implementations of X25519 ... MUST mask the most
    // significant bit in the final byte" and accept non-canonical values; OpenSSL
    // does both, so any 32 bytes import.
    if (pk.size() != k_x25519_size) {
        return fail(Errc::invalid_key, "X25519 public key has " + std::to_string(pk.size()) +
                                           " bytes, 32 are required");
    }
    PkeyPtr key(EVP_PKEY_new_raw_public_key_ex(nullptr, "X25519", nullptr, pk.data(), pk.size()));
    if (!key) {
        return openssl_fail(Errc::invalid_key, "X25519 public key rejected");
    }
    return key;
}

Result<Bytes> raw_public_bytes(const EVP_PKEY* key) {
    if (key == nullptr) {
        return fail(Errc::invalid_key, "no key");
    }
    std::size_t len = 0;
    if (EVP_PKEY_get_raw_public_key(key, nullptr, &len) != 1) {
        return openssl_fail(Errc::invalid_key, "key has no raw public encoding");
    }
    Bytes out(len);
    if (EVP_PKEY_get_raw_public_key(key, out.data(), &len) != 1) {
        return openssl_fail(Errc::invalid_key, "raw public key export");
    }
    out.resize(len);
    return out;
}

Result<SecretBytes> x25519_derive(EVP_PKEY* own, EVP_PKEY* peer) {
    if (auto k = require_x25519(own, "own key"); !k) {
        return tl::unexpected(k.error());
    }
    if (auto k = require_x25519(peer, "peer key"); !k) {
        return tl::unexpected(k.error());
    }
    PkeyCtxPtr ctx(EVP_PKEY_CTX_new_from_pkey(nullptr, own, nullptr));
    if (!ctx) {
        return openssl_fail(Errc::operation_failed, "EVP_PKEY_CTX_new_from_pkey");
    }
    if (EVP_PKEY_derive_init(ctx.get()) != 1) {
        return openssl_fail(Errc::invalid_key, "X25519 derive init (no private key?)");
    }
    if (EVP_PKEY_derive_set_peer(ctx.get(), peer) != 1) {
        return openssl_fail(Errc::invalid_key, "X25519 peer key rejected");
    }
    // RFC 7748 section 6.1: "Both MAY check, without leaking extra information
    // about the value of K, whether K is the all-zero value and abort if so."
    // OpenSSL's X25519 derive performs this check (in constant time) and fails;
    // that failure is reported as operation_failed.
    SecretBytes shared(k_x25519_size);
    std::size_t len = shared.size();
    if (EVP_PKEY_derive(ctx.get(), shared.data(), &len) != 1) {
        return openssl_fail(Errc::operation_failed,
                            "X25519 derive failed (all-zero shared secret from a low-order "
                            "public key?)");
    }
    if (len != k_x25519_size) {
        return fail(Errc::operation_failed, "X25519 derive returned an unexpected size");
    }
    return shared;
}

}  // namespace pqmcp::crypto
