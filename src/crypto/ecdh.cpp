// ECDH on P-256 through OpenSSL's EVP_PKEY derive interface.
#include "pqmcp/crypto/ecdh.hpp"

#include <openssl/core_names.h>

#include <array>
#include <string>

namespace pqmcp::crypto {
namespace {

// SEC 1 section 2.3.3: an uncompressed P-256 point is 0x04 || X || Y.
constexpr std::size_t k_p256_point = 65;
constexpr std::size_t k_p256_secret = 32;

Status require_p256(const EVP_PKEY* key, const char* which) {
    std::array<char, 32> group{};
    std::size_t len = 0;
    if (key == nullptr || EVP_PKEY_is_a(key, "EC") != 1 ||
        EVP_PKEY_get_utf8_string_param(key, OSSL_PKEY_PARAM_GROUP_NAME, group.data(), group.size(),
                                       &len) != 1 ||
        std::string(group.data(), len) != "prime256v1") {
        return fail(Errc::invalid_key, std::string(which) + " is not a P-256 key");
    }
    return {};
}

}  // namespace

Result<PkeyPtr> ecdh_p256_generate() {
    PkeyCtxPtr ctx(EVP_PKEY_CTX_new_from_name(nullptr, "EC", nullptr));
    if (!ctx) {
        return openssl_fail(Errc::unsupported_algorithm, "EC is not available");
    }
    EVP_PKEY* raw = nullptr;
    if (EVP_PKEY_keygen_init(ctx.get()) != 1 ||
        EVP_PKEY_CTX_set_group_name(ctx.get(), "P-256") != 1 ||
        EVP_PKEY_generate(ctx.get(), &raw) != 1) {
        return openssl_fail(Errc::operation_failed, "P-256 key generation");
    }
    return PkeyPtr(raw);
}

Result<SecretBytes> ecdh_p256_derive(EVP_PKEY* own, EVP_PKEY* peer) {
    if (auto k = require_p256(own, "own key"); !k) {
        return tl::unexpected(k.error());
    }
    if (auto k = require_p256(peer, "peer key"); !k) {
        return tl::unexpected(k.error());
    }
    PkeyCtxPtr ctx(EVP_PKEY_CTX_new_from_pkey(nullptr, own, nullptr));
    if (!ctx || EVP_PKEY_derive_init(ctx.get()) != 1) {
        return openssl_fail(Errc::invalid_key, "P-256 derive init (no private key?)");
    }
    if (EVP_PKEY_derive_set_peer(ctx.get(), peer) != 1) {
        return openssl_fail(Errc::invalid_key, "P-256 peer key rejected");
    }
    SecretBytes shared(k_p256_secret);
    std::size_t len = shared.size();
    if (EVP_PKEY_derive(ctx.get(), shared.data(), &len) != 1 || len != k_p256_secret) {
        return openssl_fail(Errc::operation_failed, "P-256 derive");
    }
    return shared;
}

Result<Bytes> ec_public_point(const EVP_PKEY* key) {
    Bytes out(k_p256_point);
    std::size_t len = 0;
    if (key == nullptr || EVP_PKEY_get_octet_string_param(key, OSSL_PKEY_PARAM_ENCODED_PUBLIC_KEY,
                                                          out.data(), out.size(), &len) != 1) {
        return openssl_fail(Errc::invalid_key, "no encoded public point");
    }
    out.resize(len);
    return out;
}

}  // namespace pqmcp::crypto
