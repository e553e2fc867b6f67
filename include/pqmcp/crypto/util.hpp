// Hashes, randomness, key encodings and what the running OpenSSL offers.
#pragma once

#include <array>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "pqmcp/core/bytes.hpp"
#include "pqmcp/core/error.hpp"
#include "pqmcp/crypto/errors.hpp"
#include "pqmcp/crypto/ossl.hpp"
#include "pqmcp/crypto/secret.hpp"

namespace pqmcp::crypto {

using Digest32 = std::array<std::uint8_t, 32>;

[[nodiscard]] Digest32 sha256(ByteView data);
[[nodiscard]] Digest32 sha3_256(ByteView data);

// RFC 4648 Base64 with padding (OpenSSL's EVP_EncodeBlock/EVP_DecodeBlock);
// nullopt for text that is not a whole number of Base64 quanta.
[[nodiscard]] std::string to_base64(ByteView data);
[[nodiscard]] std::optional<Bytes> from_base64(std::string_view text);

// From OpenSSL's CSPRNG; Errc::operation_failed if it is not seeded.
[[nodiscard]] Result<Bytes> random_bytes(std::size_t n);
[[nodiscard]] Result<SecretBytes> random_secret(std::size_t n);

// HKDF-SHA256 (RFC 5869, OpenSSL's EVP_KDF): `length` bytes from `key`.
[[nodiscard]] Result<SecretBytes> hkdf_sha256(ByteView key, ByteView salt, ByteView info,
                                              std::size_t length);
// A 32-byte key for `purpose` that only the holder of `private_key` can
// derive: HKDF-SHA256 of its PKCS#8 encoding. The same key file gives the
// same key on every load.
[[nodiscard]] Result<SecretBytes> derive_key(const EVP_PKEY* private_key, std::string_view purpose);
// DER SubjectPublicKeyInfo of any key.
[[nodiscard]] Result<Bytes> public_key_der(const EVP_PKEY* key);
// PKCS#8 PEM of a private key (unencrypted), kept in secret memory.
[[nodiscard]] Result<SecretBytes> private_key_pem(const EVP_PKEY* key);
[[nodiscard]] Result<PkeyPtr> load_private_key_pem(ByteView pem);
[[nodiscard]] Result<PkeyPtr> load_public_key_pem(ByteView pem);

struct OpensslInfo {
    std::string version;      // "OpenSSL 3.5.7 ..."
    std::string openssl_dir;  // OPENSSLDIR of the library in use
    std::string modules_dir;
    std::vector<std::string> kems;        // provided KEM algorithm names
    std::vector<std::string> signatures;  // provided signature algorithm names
};
[[nodiscard]] OpensslInfo openssl_info();

}  // namespace pqmcp::crypto
