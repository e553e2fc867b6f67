// Fuzz target: the HTTP request path in front of the Streamable HTTP
// handler, from raw bytes: Beast's parser with the listener's limits, then
// the gateway's own routing, header, Origin, session and JSON-RPC checks, as
// a request read from a TLS connection meets them (HttpServer::answer). The
// input is up to 8 requests back to back; "@SID@" in a later one stands for
// the session the last initialize opened, so session paths are reached.
// Needs the transport library (coroutines): replayed in every test run,
// not built by `make fuzz`.
#include <openssl/ssl.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include <boost/asio/io_context.hpp>

#include "pqmcp/mcp/jsonrpc.hpp"
#include "pqmcp/transport/http_server.hpp"

namespace {

namespace transport = pqmcp::transport;

// Answers every request at once with an empty result.
class Answering final : public transport::SessionHandler {
  public:
    explicit Answering(transport::ServerSession& session) : session_(session) {}
    void on_message(pqmcp::mcp::Message message, transport::StreamId stream) override {
        if (message.is_request()) {
            (void)session_.send(stream, pqmcp::mcp::make_result(message.id, boost::json::object{}));
        }
    }
    void on_closed(std::string_view /*reason*/) override {}

  private:
    transport::ServerSession& session_;
};

SSL_CTX* context() {
    static SSL_CTX* ctx = SSL_CTX_new(TLS_server_method());
    return ctx;
}

}  // namespace

// NOLINTNEXTLINE(readability-identifier-naming): the name libFuzzer calls
extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    boost::asio::io_context io;
    transport::HttpServerOptions options;
    options.limits.max_header_bytes = 4096;
    options.limits.max_body_bytes = 65536;
    options.limits.max_sessions = 4;
    options.allowed_origins = {"https://app.example"};
    options.open_session = [](transport::ServerSession& s)
        -> pqmcp::Result<std::unique_ptr<transport::SessionHandler>> {
        return std::make_unique<Answering>(s);
    };
    transport::HttpServer server(io, context(), options);
    const transport::PeerInfo peer{"127.0.0.1:40000", {}, std::nullopt};
    std::string rest(reinterpret_cast<const char*>(data), size);
    std::string session;
    for (int i = 0; i < 8 && !rest.empty(); ++i) {
        for (auto at = rest.find("@SID@"); !session.empty() && at != std::string::npos;
             at = rest.find("@SID@", at + session.size())) {
            rest.replace(at, 5, session);
        }
        const auto answer = server.answer(rest, peer);
        io.poll();
        io.restart();
        if (!answer.session_id.empty()) {
            session = answer.session_id;
        }
        if (answer.used == 0 || answer.used >= rest.size()) {
            break;
        }
        rest.erase(0, answer.used);
    }
    server.stop();
    io.poll();
    return 0;
}
