#include "pqmcp/tls/echo_server.hpp"
#include "pqmcp/tls/listener.hpp"

#include <exception>
#include <vector>

#include "asio.hpp"

#include "asio_detail.hpp"

namespace pqmcp::tls {
namespace {

namespace asio = boost::asio;
using asio::ip::tcp;
using Stream = asio::ssl::stream<tcp::socket>;

struct Server {
    const EchoServerOptions& options;
    asio::ssl::context& context;
    tcp::acceptor& acceptor;
    std::size_t& active;  // open connections (the io_context runs on one thread)
};

// Gives back the slot accept_loop took for a connection when it ends. The
// slot is taken at accept time, not here: a spawned coroutine starts later,
// and connections accepted in between must already count.
class ConnectionSlot final {
  public:
    explicit ConnectionSlot(std::size_t& active) : active_(active) {}
    ~ConnectionSlot() { --active_; }
    ConnectionSlot(const ConnectionSlot&) = delete;
    ConnectionSlot& operator=(const ConnectionSlot&) = delete;
    ConnectionSlot(ConnectionSlot&&) = delete;
    ConnectionSlot& operator=(ConnectionSlot&&) = delete;

  private:
    std::size_t& active_;
};

asio::awaitable<void> serve_connection(Server server, tcp::socket socket) {
    const ConnectionSlot slot(server.active);
    constexpr auto use = asio::as_tuple(asio::use_awaitable);
    const EchoServerOptions& options = server.options;
    boost::system::error_code ignored;
    const auto remote_endpoint = socket.remote_endpoint(ignored);
    const std::string remote = detail::endpoint_string(remote_endpoint);
    socket.set_option(tcp::no_delay(true), ignored);

    Stream stream(std::move(socket), server.context);
    auto executor = co_await asio::this_coro::executor;
    detail::Deadline deadline(executor, stream.next_layer());

    deadline.arm(options.handshake_timeout);
    auto [hec] = co_await stream.async_handshake(asio::ssl::stream_base::server, use);
    deadline.disarm();
    SSL* ssl = stream.native_handle();
    if (hec) {
        if (options.on_handshake) {
            options.on_handshake(HandshakeEvent{
                remote, tl::unexpected(detail::handshake_error(ssl, hec, deadline.fired(),
                                                               options.handshake_timeout, false))});
        }
        co_return;
    }
    if (options.on_handshake) {
        options.on_handshake(HandshakeEvent{remote, handshake_info(ssl)});
    }

    std::vector<char> buffer(options.max_record > 0 ? options.max_record : 16'384);
    boost::system::error_code ec;
    for (;;) {
        deadline.arm(options.idle_timeout);
        auto [rec, n] = co_await stream.async_read_some(asio::buffer(buffer), use);
        if (rec) {
            ec = rec;
            break;
        }
        auto [wec, written] =
            co_await asio::async_write(stream, asio::buffer(buffer.data(), n), use);
        if (wec) {
            ec = wec;
            break;
        }
    }
    if (ec == asio::error::eof) {
        // The peer sent close_notify: answer with ours (bounded).
        deadline.arm(options.handshake_timeout);
        (void)co_await stream.async_shutdown(use);
    }
    deadline.disarm();
}

asio::awaitable<void> accept_loop(Server server) {
    auto executor = co_await asio::this_coro::executor;
    std::size_t accepted = 0;
    co_await accept_each(server.acceptor, [&](tcp::socket socket) {
        ++accepted;
        if (server.active >= server.options.max_concurrent) {
            // Over the limit: refuse at once rather than queue without bound.
            boost::system::error_code ignored;
            socket.close(ignored);
        } else {
            ++server.active;
            asio::co_spawn(executor, serve_connection(server, std::move(socket)), asio::detached);
        }
        return server.options.max_connections == 0 || accepted < server.options.max_connections;
    });
    boost::system::error_code ignored;
    server.acceptor.close(ignored);
}

}  // namespace

Status run_tls_echo_server(SSL_CTX* ctx, const EchoServerOptions& options,
                           const std::stop_token& stop) {
    if (ctx == nullptr) {
        return fail(Errc::invalid_options, "no server context");
    }
    asio::io_context io(1);
    SSL_CTX_up_ref(ctx);
    asio::ssl::context context(ctx);  // owns the extra reference

    tcp::acceptor acceptor(io);
    const auto port = listen_on(acceptor, options.host, options.port);
    if (!port) {
        return fail(Errc::listen_failed, port.error());
    }

    const std::stop_callback on_stop(stop, [&io] { io.stop(); });
    std::size_t active = 0;
    const Server server{options, context, acceptor, active};
    asio::co_spawn(io, accept_loop(server), [](const std::exception_ptr& error) {
        if (error) {
            std::rethrow_exception(error);  // a bug: let it surface from io.run()
        }
    });
    if (options.on_ready) {
        options.on_ready(*port);
    }
    io.run();
    return {};
}

}  // namespace pqmcp::tls
