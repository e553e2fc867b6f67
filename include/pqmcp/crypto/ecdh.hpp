// Elliptic-curve Diffie-Hellman on P-256 (SP 800-56A), the classical
// baseline `pqmcp bench` sets beside ML-KEM and X25519.
#pragma once

#include "pqmcp/core/bytes.hpp"
#include "pqmcp/core/error.hpp"
#include "pqmcp/crypto/errors.hpp"
#include "pqmcp/crypto/ossl.hpp"
#include "pqmcp/crypto/secret.hpp"

namespace pqmcp::crypto {

[[nodiscard]] Result<PkeyPtr> ecdh_p256_generate();
// The shared x-coordinate (32 bytes); both keys must be P-256.
[[nodiscard]] Result<SecretBytes> ecdh_p256_derive(EVP_PKEY* own, EVP_PKEY* peer);
// The public key as it travels in a TLS key share: the uncompressed point
// (65 bytes for P-256).
[[nodiscard]] Result<Bytes> ec_public_point(const EVP_PKEY* key);

}  // namespace pqmcp::crypto
