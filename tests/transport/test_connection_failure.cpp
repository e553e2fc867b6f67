// A session handler that throws (a bug: handlers report errors as values)
// ends the connection it was called for, is logged, and leaves the server
// serving every other connection.
#include <gtest/gtest.h>

#include <chrono>
#include <memory>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>

#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/spdlog.h>
#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>

#include "../common/socket_watchdog.hpp"
#include "pqmcp/transport/http_server.hpp"
#include "server_identity.hpp"

namespace pqmcp::transport {
namespace {

namespace asio = boost::asio;
namespace http = boost::beast::http;

class ThrowingHandler final : public SessionHandler {
  public:
    void on_message(mcp::Message /*message*/, StreamId /*stream*/) override {
        throw std::runtime_error("a handler's bug");
    }
    void on_closed(std::string_view /*reason*/) override {}
};

// One request on a connection of its own; the response, or the error that
// ended the connection instead. Bounded: the connection is shut after 10 s.
struct Reply {
    boost::system::error_code ec;
    unsigned status = 0;
};

Reply exchange(std::uint16_t port, http::request<http::string_body> req) {
    asio::io_context io;
    asio::ssl::context ssl(asio::ssl::context::tls_client);
    ssl.set_verify_mode(asio::ssl::verify_none);
    asio::ssl::stream<asio::ip::tcp::socket> tls(io, ssl);
    Reply out;
    tls.next_layer().connect({asio::ip::make_address("127.0.0.1"), port}, out.ec);
    if (!out.ec) {
        tls.handshake(asio::ssl::stream_base::client, out.ec);
    }
    if (out.ec) {
        return out;
    }
    const pqmcp::test::SocketWatchdog watchdog(tls.next_layer().native_handle(),
                                               std::chrono::seconds{10});
    req.set(http::field::host, "127.0.0.1");
    req.prepare_payload();
    http::write(tls, req, out.ec);
    if (!out.ec) {
        boost::beast::flat_buffer buffer;
        http::response<http::string_body> res;
        http::read(tls, buffer, res, out.ec);
        out.status = out.ec ? 0 : res.result_int();
    }
    return out;
}

TEST(ConnectionFailure, AHandlerThatThrowsEndsItsConnectionOnlyAndIsLogged) {
    std::ostringstream logged;
    const auto previous = spdlog::default_logger();
    spdlog::set_default_logger(std::make_shared<spdlog::logger>(
        "test", std::make_shared<spdlog::sinks::ostream_sink_mt>(logged)));

    test::ServerIdentity served;
    ASSERT_NO_FATAL_FAILURE(test::make_server_identity(crypto::SigAlg::ml_dsa_44, served));
    asio::io_context io;
    HttpServerOptions options;
    options.open_session = [](ServerSession&) -> Result<std::unique_ptr<SessionHandler>> {
        return std::make_unique<ThrowingHandler>();
    };
    HttpServer server(io, served.context->native_handle(), options);
    const auto port = server.start();
    ASSERT_TRUE(port) << port.error().message();
    std::thread runner([&io] { io.run(); });

    http::request<http::string_body> initialize{http::verb::post, "/mcp", 11};
    initialize.set(http::field::content_type, "application/json");
    initialize.set(http::field::accept, "application/json, text/event-stream");
    initialize.body() =
        R"({"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"t","version":"1"}}})";
    const Reply failed = exchange(*port, initialize);
    EXPECT_TRUE(failed.ec) << "answered " << failed.status;
    // The server goes on: another connection is answered.
    const Reply other = exchange(*port, {http::verb::get, "/elsewhere", 11});
    EXPECT_FALSE(other.ec) << other.ec.message();
    EXPECT_EQ(other.status, 404U);

    server.stop();
    io.stop();
    runner.join();
    spdlog::set_default_logger(previous);
    EXPECT_NE(logged.str().find("a connection ended on an exception: a handler's bug"),
              std::string::npos)
        << logged.str();
}

}  // namespace
}  // namespace pqmcp::transport
