#include "server_identity.hpp"

#include <gtest/gtest.h>

#include <utility>

#include "pqmcp/tls/context.hpp"

namespace pqmcp::transport::test {

void make_server_identity(crypto::SigAlg alg, ServerIdentity& out) {
    identity::KeygenOptions keygen;
    keygen.algorithm = alg;
    auto id = identity::generate(keygen);
    ASSERT_TRUE(id.has_value()) << id.error().message();
    out.identity = std::make_unique<identity::Identity>(std::move(*id));
    tls::ContextOptions server;
    server.identity = out.identity.get();
    server.verify.require_peer_certificate = false;
    auto ctx = tls::make_server_context(server);
    ASSERT_TRUE(ctx.has_value()) << ctx.error().message();
    out.context = std::make_unique<boost::asio::ssl::context>(ctx->release());
}

}  // namespace pqmcp::transport::test
