// RSA-OAEP (SHA-256) key transport, for the classical baseline in benchmarks.
#pragma once

#include "pqmcp/core/bytes.hpp"
#include "pqmcp/core/error.hpp"
#include "pqmcp/crypto/errors.hpp"
#include "pqmcp/crypto/ossl.hpp"
#include "pqmcp/crypto/secret.hpp"

namespace pqmcp::crypto {

[[nodiscard]] Result<PkeyPtr> rsa_generate(unsigned bits);
[[nodiscard]] Result<Bytes> rsa_oaep_encrypt(EVP_PKEY* key, ByteView plaintext);
[[nodiscard]] Result<SecretBytes> rsa_oaep_decrypt(EVP_PKEY* key, ByteView ciphertext);

}  // namespace pqmcp::crypto
