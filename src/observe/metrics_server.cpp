#include "pqmcp/observe/metrics_server.hpp"

#include <chrono>
#include <set>

#include <fmt/format.h>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/empty_body.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>

#include "pqmcp/core/scope.hpp"
#include "pqmcp/tls/listener.hpp"

namespace pqmcp::observe {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = boost::beast::http;
using tcp = asio::ip::tcp;

namespace {
constexpr auto use = asio::as_tuple(asio::use_awaitable);
constexpr std::chrono::seconds k_read_timeout{10};
constexpr std::chrono::seconds k_idle_timeout{60};
constexpr std::size_t k_max_header_bytes = 8U << 10U;
}  // namespace

struct MetricsServer::Impl : std::enable_shared_from_this<Impl> {
    Impl(asio::io_context& i, MetricsServerOptions o) : io(i), options(std::move(o)), acceptor(i) {}

    asio::io_context& io;
    MetricsServerOptions options;
    tcp::acceptor acceptor;
    std::set<beast::tcp_stream*> open;
    bool stopped = false;

    asio::awaitable<void> accept_loop();
    asio::awaitable<void> serve(tcp::socket socket);
};

asio::awaitable<void> MetricsServer::Impl::accept_loop() {
    auto self = shared_from_this();
    co_await tls::accept_each(acceptor, [this](tcp::socket socket) {
        if (stopped) {
            return false;
        }
        if (open.size() >= options.max_connections) {
            boost::system::error_code ignored;
            socket.close(ignored);
            return true;
        }
        asio::co_spawn(io, serve(std::move(socket)), asio::detached);
        return true;
    });
}

asio::awaitable<void> MetricsServer::Impl::serve(tcp::socket socket) {
    auto self = shared_from_this();
    beast::tcp_stream stream(std::move(socket));
    open.insert(&stream);
    // However the frame ends (destroyed with its context, say), stop() must
    // not find the stream.
    const OnExit forget([this, s = &stream] { open.erase(s); });
    beast::flat_buffer buffer;
    bool first = true;
    while (!stopped) {
        http::request_parser<http::empty_body> parser;
        parser.header_limit(k_max_header_bytes);
        parser.body_limit(0);
        stream.expires_after(first ? k_read_timeout : k_idle_timeout);
        first = false;
        auto [ec, n] = co_await http::async_read(stream, buffer, parser, use);
        if (ec) {
            if (ec != http::error::end_of_stream && ec != asio::error::eof &&
                ec != asio::error::operation_aborted && ec != beast::error::timeout) {
                http::response<http::string_body> bad{http::status::bad_request, 11};
                bad.set(http::field::content_type, "text/plain");
                bad.set(http::field::connection, "close");
                bad.body() = fmt::format("bad request: {}\n", ec.message());
                bad.prepare_payload();
                stream.expires_after(k_read_timeout);
                (void)co_await http::async_write(stream, bad, use);
            }
            break;
        }
        const auto& req = parser.get();
        const std::string_view target(req.target().data(), req.target().size());
        const std::string_view path = target.substr(0, target.find('?'));
        http::response<http::string_body> res{http::status::ok, req.version()};
        res.set(http::field::server, "pqmcp");
        if (req.method() != http::verb::get && req.method() != http::verb::head) {
            res.result(http::status::method_not_allowed);
            res.set(http::field::allow, "GET, HEAD");
            res.set(http::field::content_type, "text/plain");
            res.body() = "method not allowed\n";
        } else if (path == "/metrics") {
            res.set(http::field::content_type, "text/plain; version=0.0.4; charset=utf-8");
            res.body() = options.render ? options.render() : std::string{};
        } else if (path == "/") {
            res.set(http::field::content_type, "text/plain");
            res.body() = "pqmcp metrics: GET /metrics\n";
        } else {
            res.result(http::status::not_found);
            res.set(http::field::content_type, "text/plain");
            res.body() = "not found\n";
        }
        res.keep_alive(req.keep_alive());
        res.prepare_payload();
        if (req.method() == http::verb::head) {
            res.body().clear();
        }
        stream.expires_after(k_read_timeout);
        auto [wec, written] = co_await http::async_write(stream, res, use);
        if (wec || !req.keep_alive()) {
            break;
        }
    }
    boost::system::error_code ignored;
    stream.socket().shutdown(tcp::socket::shutdown_both, ignored);
}

MetricsServer::MetricsServer(asio::io_context& io, MetricsServerOptions options)
    : impl_(std::make_shared<Impl>(io, std::move(options))) {}

MetricsServer::~MetricsServer() {
    stop();
}

Result<std::uint16_t> MetricsServer::start() {
    Impl& s = *impl_;
    const auto port = tls::listen_on(s.acceptor, s.options.host, s.options.port);
    if (!port) {
        return fail(std::errc::address_not_available, "metrics " + port.error());
    }
    asio::co_spawn(s.io, s.accept_loop(), asio::detached);
    return *port;
}

void MetricsServer::stop() {
    Impl& s = *impl_;
    if (s.stopped) {
        return;
    }
    s.stopped = true;
    boost::system::error_code ignored;
    s.acceptor.close(ignored);
    for (auto* stream : s.open) {
        stream->socket().close(ignored);
    }
}

}  // namespace pqmcp::observe
