// Signed lists and tool manifests. The gateway signs the tools/list,
// prompts/list and resources/templates/list results it serves with its ML-DSA
// identity; publishers sign tool manifests at rest. The signature covers the
// RFC 8785 form of the result without its own signature block, with its
// lists (tools, prompts, resourceTemplates, resources) in the order of their
// items' canonical forms, so member and item order, whitespace and number
// spelling do not matter (order inside an item does). The block sits in the
// result's `_meta` under "pqmcp/signature":
//
//   {"alg": "ML-DSA-65", "kid": "<peer id>", "pub": "<SPKI DER, base64>",
//    "ts": "<UTC RFC 3339>", "sig": "<base64>"}
//
// The signed bytes are the canonical form of
//   {"alg", "kid", "method", "pub", "result", "ts"}
// with ML-DSA's context string "pqmcp signed list v1", so a signature for one
// method (or a manifest, method "manifest") never verifies for another. A
// verifier checks that `pub` hashes to `kid`, that `kid` is the identity it
// pinned, and the signature.
#pragma once

#include <string>
#include <string_view>

#include <boost/json/object.hpp>

#include "pqmcp/core/bytes.hpp"
#include "pqmcp/core/error.hpp"
#include "pqmcp/crypto/algorithms.hpp"
#include "pqmcp/crypto/ossl.hpp"
#include "pqmcp/identity/identity.hpp"
#include "pqmcp/integrity/errors.hpp"

namespace pqmcp::integrity {

inline constexpr std::string_view k_signature_member = "pqmcp/signature";
inline constexpr std::string_view k_manifest_method = "manifest";

struct Signer {
    EVP_PKEY* key = nullptr;  // non-owning; the identity outlives the signer
    crypto::SigAlg algorithm = crypto::SigAlg::ml_dsa_65;
    std::string kid;         // the signer's peer id
    std::string public_b64;  // its SubjectPublicKeyInfo, DER, base64
};

[[nodiscard]] Result<Signer> make_signer(const identity::Identity& id);

// Adds (or replaces) result._meta["pqmcp/signature"].
[[nodiscard]] Status sign_result(boost::json::object& result, std::string_view method,
                                 const Signer& signer, std::string_view timestamp);

struct Verified {
    identity::PeerId kid;
    std::string algorithm;
    std::string timestamp;
};

// Errc::unsigned_list without a block; bad_signature for a malformed one or a
// `pub` that is not `kid`'s key; signature_invalid when it does not verify.
// `expected` (when given) is the only identity accepted as signer.
[[nodiscard]] Result<Verified> verify_result(const boost::json::object& result,
                                             std::string_view method,
                                             const identity::PeerId* expected);

}  // namespace pqmcp::integrity
