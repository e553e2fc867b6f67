// Signatures: ML-DSA (FIPS 204) with context strings and deterministic or
// hedged signing, and the classical Ed25519, ECDSA P-256 and RSA-PSS, all
// through OpenSSL's EVP interfaces.
#pragma once

#include <optional>

#include "pqmcp/core/bytes.hpp"
#include "pqmcp/core/error.hpp"
#include "pqmcp/crypto/algorithms.hpp"
#include "pqmcp/crypto/errors.hpp"
#include "pqmcp/crypto/ossl.hpp"
#include "pqmcp/crypto/secret.hpp"

namespace pqmcp::crypto {

struct SignOptions {
    ByteView context{};          // ML-DSA context string, at most 255 bytes
    bool deterministic = false;  // ML-DSA: rnd = 0^32 instead of hedged randomness
    // ML-DSA: a fixed 32-byte rnd (FIPS 204 Algorithm 2, line 5), overriding
    // `deterministic`. Known-answer tests only; never set it in production.
    ByteView test_rnd{};
};

// Any supported algorithm (RSA is 3072 bits, ECDSA on P-256).
[[nodiscard]] Result<PkeyPtr> generate_signing_key(SigAlg alg);
// ML-DSA.KeyGen_internal from the 32-byte seed xi.
[[nodiscard]] Result<PkeyPtr> mldsa_generate_from_seed(SigAlg alg, ByteView seed);
[[nodiscard]] Result<PkeyPtr> mldsa_public_key(SigAlg alg, ByteView pk);
[[nodiscard]] Result<PkeyPtr> mldsa_private_key(SigAlg alg, ByteView sk);
[[nodiscard]] Result<PkeyPtr> ed25519_public_key(ByteView pk);
[[nodiscard]] Result<PkeyPtr> ed25519_private_key(ByteView sk);

// Which algorithm a key is for, if any of ours.
[[nodiscard]] std::optional<SigAlg> signature_algorithm_of(const EVP_PKEY* key);

// ML-DSA.Sign (pure, with context) / Ed25519 / ECDSA-SHA256 / RSA-PSS-SHA256.
[[nodiscard]] Result<Bytes> sign(EVP_PKEY* key, ByteView message, const SignOptions& options = {});
// ML-DSA sign from the precomputed message representative mu (64 bytes).
[[nodiscard]] Result<Bytes> mldsa_sign_mu(EVP_PKEY* key, ByteView mu, bool deterministic);
// Errc::signature_invalid when the signature does not verify.
[[nodiscard]] Status verify(EVP_PKEY* key, ByteView message, ByteView signature,
                            ByteView context = {});

}  // namespace pqmcp::crypto
