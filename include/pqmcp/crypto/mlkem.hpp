// ML-KEM (FIPS 203) through OpenSSL's EVP_KEM interface.
#pragma once

#include "pqmcp/core/bytes.hpp"
#include "pqmcp/core/error.hpp"
#include "pqmcp/crypto/algorithms.hpp"
#include "pqmcp/crypto/errors.hpp"
#include "pqmcp/crypto/ossl.hpp"
#include "pqmcp/crypto/secret.hpp"

namespace pqmcp::crypto {

struct Encapsulated {
    Bytes ciphertext;
    SecretBytes shared_secret;
};

// A fresh key pair from OpenSSL's CSPRNG.
[[nodiscard]] Result<PkeyPtr> mlkem_generate(KemAlg alg);
// FIPS 203 ML-KEM.KeyGen_internal from the 64-byte seed d || z.
[[nodiscard]] Result<PkeyPtr> mlkem_generate_from_seed(KemAlg alg, ByteView seed);
// Imports an encapsulation key; rejects a wrong length or a key that fails
// the FIPS 203 section 7.2 modulus check (Errc::invalid_key).
[[nodiscard]] Result<PkeyPtr> mlkem_public_key(KemAlg alg, ByteView ek);
// Imports an expanded decapsulation key; rejects a wrong length or a failed
// hash check (FIPS 203 section 7.3) with Errc::invalid_key.
[[nodiscard]] Result<PkeyPtr> mlkem_private_key(KemAlg alg, ByteView dk);

[[nodiscard]] Result<Bytes> mlkem_public_bytes(const EVP_PKEY* key);
[[nodiscard]] Result<SecretBytes> mlkem_private_bytes(const EVP_PKEY* key);

[[nodiscard]] Result<Encapsulated> mlkem_encapsulate(EVP_PKEY* ek);
// Deterministic encapsulation with the 32-byte randomness m (tests only).
[[nodiscard]] Result<Encapsulated> mlkem_encapsulate_derand(EVP_PKEY* ek, ByteView m);
// A ciphertext of the wrong length is an error; a well-formed but wrong
// ciphertext yields the implicit-rejection secret, as FIPS 203 requires.
[[nodiscard]] Result<SecretBytes> mlkem_decapsulate(EVP_PKEY* dk, ByteView ciphertext);

}  // namespace pqmcp::crypto
