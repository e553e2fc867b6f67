// Internal: the Boost.Beast and Asio headers the transport sources use, in one
// place (Beast is compiled once, in beast_impl.cpp).
#pragma once

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/buffer_body.hpp>
#include <boost/beast/http/chunk_encode.hpp>
#include <boost/beast/http/empty_body.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>
#include <boost/beast/ssl/ssl_stream.hpp>

namespace pqmcp::transport::detail {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = boost::beast::http;
using tcp = boost::asio::ip::tcp;
using TlsStream = beast::ssl_stream<beast::tcp_stream>;
inline constexpr auto use = asio::as_tuple(asio::use_awaitable);

inline std::string_view sv(beast::string_view s) {
    return {s.data(), s.size()};
}

// A steady_timer used as a wake-up signal for one waiting coroutine: wait()
// returns when notify() is called or the timeout passes (true: notified).
class Signal final {
  public:
    explicit Signal(const asio::any_io_executor& executor) : timer_(executor) {}
    asio::awaitable<bool> wait(std::chrono::milliseconds timeout) {
        if (notified_) {
            notified_ = false;
            co_return true;
        }
        timer_.expires_after(timeout);
        auto [ec] = co_await timer_.async_wait(use);
        const bool woken = notified_ || ec == asio::error::operation_aborted;
        notified_ = false;
        co_return woken;
    }
    void notify() {
        notified_ = true;
        timer_.cancel();
    }

  private:
    asio::steady_timer timer_;
    bool notified_ = false;
};

}  // namespace pqmcp::transport::detail
