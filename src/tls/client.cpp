#include "pqmcp/tls/client.hpp"

#include <exception>
#include <optional>

#include "asio.hpp"

#include "asio_detail.hpp"

namespace pqmcp::tls {
namespace {

namespace asio = boost::asio;
using asio::ip::tcp;
using Stream = asio::ssl::stream<tcp::socket>;

struct Job {
    std::string host;
    std::uint16_t port;
    const ClientOptions& options;
    Stream& stream;
    tcp::resolver& resolver;
    detail::Deadline& deadline;
};

asio::awaitable<Result<ClientResult>> run_client(Job job) {
    constexpr auto use = asio::as_tuple(asio::use_awaitable);
    const auto timed_out = [&job](Errc code, std::string what) {
        if (job.deadline.fired()) {
            return fail(Errc::timeout, what + ": no answer within " +
                                           std::to_string(job.options.timeout.count()) + " ms");
        }
        return fail(code, std::move(what));
    };

    auto [rec, endpoints] =
        co_await job.resolver.async_resolve(job.host, std::to_string(job.port), use);
    if (rec) {
        co_return timed_out(Errc::resolve_failed, job.host + ": " + rec.message());
    }
    auto& socket = job.stream.next_layer();
    auto [cec, endpoint] = co_await asio::async_connect(socket, endpoints, use);
    if (cec) {
        co_return timed_out(Errc::connect_failed,
                            job.host + ":" + std::to_string(job.port) + ": " + cec.message());
    }
    boost::system::error_code ignored;
    socket.set_option(tcp::no_delay(true), ignored);

    auto [hec] = co_await job.stream.async_handshake(asio::ssl::stream_base::client, use);
    SSL* ssl = job.stream.native_handle();
    if (hec) {
        co_return tl::unexpected(
            detail::handshake_error(ssl, hec, job.deadline.fired(), job.options.timeout, true));
    }
    ClientResult result;
    result.info = handshake_info(ssl);

    if (!job.options.payload.empty()) {
        auto [wec, written] =
            co_await asio::async_write(job.stream, asio::buffer(job.options.payload), use);
        if (wec) {
            co_return timed_out(Errc::io_error, "write: " + wec.message());
        }
        result.reply.resize(written);
        auto [rdec, read] = co_await asio::async_read(job.stream, asio::buffer(result.reply), use);
        if (rdec) {
            co_return timed_out(Errc::io_error, "read: " + rdec.message());
        }
        result.reply.resize(read);
    }
    // After the reply, any session ticket sent with the server's first flight
    // has been processed.
    result.session.reset(SSL_get1_session(ssl));
    if (!job.options.payload.empty()) {
        // close_notify both ways (bounded); without a payload the connection is
        // simply dropped, as a probe does.
        job.deadline.arm(
            std::chrono::milliseconds{std::min<long long>(job.options.timeout.count(), 1000)});
        (void)co_await job.stream.async_shutdown(use);
    }
    co_return result;
}

}  // namespace

Result<ClientResult> connect_once(SSL_CTX* ctx, std::string_view host, std::uint16_t port,
                                  const ClientOptions& options) {
    if (ctx == nullptr) {
        return fail(Errc::invalid_options, "no client context");
    }
    asio::io_context io;
    SSL_CTX_up_ref(ctx);
    asio::ssl::context context(ctx);  // owns the extra reference
    Stream stream(io, context);
    SSL* ssl = stream.native_handle();
    // SSL_set_tlsext_host_name, spelled out: the macro uses a C cast.
    if (!options.server_name.empty() &&
        SSL_ctrl(ssl, SSL_CTRL_SET_TLSEXT_HOSTNAME, TLSEXT_NAMETYPE_host_name,
                 const_cast<char*>(options.server_name.c_str())) != 1) {
        return fail(Errc::invalid_options, "server name " + options.server_name);
    }
    if (options.resume != nullptr && SSL_set_session(ssl, options.resume) != 1) {
        return fail(Errc::invalid_options, "session cannot be resumed with this context");
    }
    if (options.configure) {
        options.configure(ssl);
    }
    tcp::resolver resolver(io);
    detail::Deadline deadline(io.get_executor(), stream.next_layer());
    deadline.arm(options.timeout);
    // The resolver has no socket to close; cancel it when the deadline passes.
    asio::steady_timer resolve_deadline(io);
    resolve_deadline.expires_after(options.timeout);
    resolve_deadline.async_wait([&resolver](const boost::system::error_code& ec) {
        if (!ec) {
            resolver.cancel();
        }
    });

    std::optional<Result<ClientResult>> outcome;
    asio::co_spawn(io,
                   run_client(Job{std::string(host), port, options, stream, resolver, deadline}),
                   [&](const std::exception_ptr& error, Result<ClientResult> result) {
                       resolve_deadline.cancel();
                       deadline.disarm();
                       if (error) {
                           outcome = fail(Errc::io_error, "unexpected exception in TLS client");
                       } else {
                           outcome = std::move(result);
                       }
                   });
    io.run();
    if (!outcome) {
        return fail(Errc::io_error, "TLS client did not finish");
    }
    return std::move(*outcome);
}

}  // namespace pqmcp::tls
