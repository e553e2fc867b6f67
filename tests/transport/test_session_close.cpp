// A session closed while its handler still has work queued (an upstream's
// answer posted before a DELETE): that work finds the session closed, its
// send() refused, not freed; the handler hears on_closed after it, once.
#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include "http_server_impl.hpp"
#include "server_identity.hpp"

namespace pqmcp::transport {
namespace {

class RecordingHandler final : public SessionHandler {
  public:
    explicit RecordingHandler(std::vector<std::string>& log) : log_(log) {}
    void on_message(mcp::Message /*message*/, StreamId /*stream*/) override {
        log_.emplace_back("message");
    }
    void on_closed(std::string_view reason) override {
        log_.push_back("closed: " + std::string(reason));
    }

  private:
    std::vector<std::string>& log_;
};

TEST(SessionClose, WorkQueuedBeforeTheCloseFindsTheSessionClosedNotFreed) {
    asio::io_context io;
    test::ServerIdentity served;
    ASSERT_NO_FATAL_FAILURE(test::make_server_identity(crypto::SigAlg::ml_dsa_44, served));
    auto group = std::make_shared<ServerGroup>(1);
    auto server = std::make_shared<HttpServer::Impl>(io, served.context->native_handle(),
                                                     HttpServerOptions{}, group, 0);
    group->shards.push_back(server);
    std::vector<std::string> log;
    auto session = std::make_shared<Session>(server, "session-1", PeerInfo{});
    session->handler_ = std::make_unique<RecordingHandler>(log);
    server->add_session(session);
    // What a handler holds, and what it queued before the close.
    ServerSession& downstream = *session;
    bool sent = true;
    asio::post(io, [&downstream, &sent, &log] {
        sent =
            downstream.send(k_standalone_stream,
                            json::object{{"jsonrpc", "2.0"}, {"method", "notifications/message"}});
        log.emplace_back("answer");
    });

    session->close("DELETE");
    const std::weak_ptr<Session> watch = session;
    session.reset();  // the request that closed it lets go, as DELETE does
    ASSERT_FALSE(watch.expired()) << "the closed session was freed before its handler's on_closed";
    io.poll();
    EXPECT_FALSE(sent);
    EXPECT_EQ(log, (std::vector<std::string>{"answer", "closed: DELETE"}));
    EXPECT_TRUE(watch.expired()) << "the session outlived its handler's on_closed";
    server->stop_here();
    io.poll();
}

}  // namespace
}  // namespace pqmcp::transport
