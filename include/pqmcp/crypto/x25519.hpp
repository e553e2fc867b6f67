// X25519 (RFC 7748) key agreement, the classical half of the hybrid groups.
#pragma once

#include "pqmcp/core/bytes.hpp"
#include "pqmcp/core/error.hpp"
#include "pqmcp/crypto/errors.hpp"
#include "pqmcp/crypto/ossl.hpp"
#include "pqmcp/crypto/secret.hpp"

namespace pqmcp::crypto {

[[nodiscard]] Result<PkeyPtr> x25519_generate();
[[nodiscard]] Result<PkeyPtr> x25519_private_key(ByteView sk);
[[nodiscard]] Result<PkeyPtr> x25519_public_key(ByteView pk);
[[nodiscard]] Result<Bytes> raw_public_bytes(const EVP_PKEY* key);
// Fails (Errc::operation_failed) when the result is all zero (RFC 7748 section 6.1).
[[nodiscard]] Result<SecretBytes> x25519_derive(EVP_PKEY* own, EVP_PKEY* peer);

}  // namespace pqmcp::crypto
