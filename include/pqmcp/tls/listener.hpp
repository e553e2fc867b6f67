// The listening socket and accept loop every server of pqmcp uses (the
// gateway's TLS listener, the metrics listener, the TLS echo server). Lives
// in tls, the lowest layer with Asio; nothing in it is TLS.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <tl/expected.hpp>

#include "pqmcp/core/descriptor.hpp"

namespace pqmcp::tls {

// Opens `acceptor` on host:port (a numeric address; port 0 picks one),
// close-on-exec, and listens. Returns the port, or "host:port: why".
[[nodiscard]] tl::expected<std::uint16_t, std::string> listen_on(
    boost::asio::ip::tcp::acceptor& acceptor, const std::string& host, std::uint16_t port);

// Accepts connections until the acceptor is closed or `on_socket` returns
// false. A failed accept (out of descriptors, a connection reset before it
// was taken) backs off for `backoff` instead of spinning. Every socket is
// close-on-exec before `on_socket(tcp::socket)` sees it. A template, so that
// the callback is part of the coroutine (a coroutine created inside a
// std::function trips GCC 12's -Wmismatched-new-delete).
template <class OnSocket>
boost::asio::awaitable<void> accept_each(
    boost::asio::ip::tcp::acceptor& acceptor, OnSocket on_socket,
    std::chrono::milliseconds backoff = std::chrono::milliseconds{50}) {
    namespace asio = boost::asio;
    constexpr auto use = asio::as_tuple(asio::use_awaitable);
    auto executor = co_await asio::this_coro::executor;
    for (;;) {
        auto [ec, socket] = co_await acceptor.async_accept(use);
        if (ec == asio::error::operation_aborted || !acceptor.is_open()) {
            break;
        }
        if (ec) {
            asio::steady_timer pause(executor, backoff);
            (void)co_await pause.async_wait(use);
            continue;
        }
        keep_from_children(socket.native_handle());
        if (!on_socket(std::move(socket))) {
            break;
        }
    }
}

}  // namespace pqmcp::tls
