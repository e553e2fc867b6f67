// What the transport tests serve with: a fresh ML-DSA identity and a TLS
// server context for it that asks no client certificate.
#pragma once

#include <memory>

#include <boost/asio/ssl/context.hpp>

#include "pqmcp/crypto/algorithms.hpp"
#include "pqmcp/identity/identity.hpp"

namespace pqmcp::transport::test {

struct ServerIdentity {
    std::unique_ptr<identity::Identity> identity;
    std::unique_ptr<boost::asio::ssl::context> context;
};

// Fills `out`; a failure fails the calling test (wrap the call in
// ASSERT_NO_FATAL_FAILURE).
void make_server_identity(crypto::SigAlg alg, ServerIdentity& out);

}  // namespace pqmcp::transport::test
