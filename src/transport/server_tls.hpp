// Internal: the server side's TLS connection, read and written straight on its
// socket. OpenSSL reads and writes the descriptor through a small BIO; Asio's
// reactor says when the socket is ready. Asio's ssl::stream instead keeps a
// BIO pair and two record-sized buffers per connection (about 80 KiB as
// allocated), which dominated an idle connection's memory; here an idle
// connection holds OpenSSL's state alone (its record buffers are released
// between records, SSL_MODE_RELEASE_BUFFERS).
//
// ServerTls is an AsyncStream for Beast (async_read_some, async_write_some)
// with async_handshake and async_shutdown; its lowest layer, DeadlineSocket,
// keeps the part of beast::tcp_stream the server uses: the socket and a
// deadline (expires_after, expires_never) after which the operations in
// progress end with beast::error::timeout.
#pragma once

#include <chrono>
#include <cstddef>
#include <memory>
#include <type_traits>

#include <boost/asio/append.hpp>
#include <boost/asio/associated_executor.hpp>
#include <boost/asio/bind_executor.hpp>
#include <boost/asio/buffer.hpp>
#include <boost/asio/compose.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/ssl/stream_base.hpp>
#include <boost/beast/core/error.hpp>

#include <openssl/ssl.h>

#include "beast.hpp"

namespace pqmcp::transport::detail {

class DeadlineSocket {  // not final, as ServerTls
  public:
    using executor_type = tcp::socket::executor_type;

    explicit DeadlineSocket(tcp::socket socket);

    tcp::socket& socket() { return state_->socket; }
    executor_type get_executor() { return state_->socket.get_executor(); }

    // The operations in progress and those started later end with
    // beast::error::timeout once `after` has passed (until changed); the
    // socket is closed then, as beast::tcp_stream does.
    void expires_after(std::chrono::steady_clock::duration after);
    void expires_never();
    [[nodiscard]] bool expired() const { return state_->expired; }

    // Calls handler(error_code) once the socket is ready for `what`, or with
    // beast::error::timeout at the deadline, on the handler's executor.
    template <class Handler>
    void async_wait(tcp::socket::wait_type what, Handler&& handler) {
        State& s = *state_;
        if (!s.expired && s.deadline != Clock::time_point::max() && Clock::now() >= s.deadline) {
            s.expired = true;
        }
        if (s.expired) {
            asio::post(asio::append(std::forward<Handler>(handler),
                                    boost::system::error_code(beast::error::timeout)));
            return;
        }
        if (s.deadline != Clock::time_point::max() && !s.armed) {
            s.armed = true;
            s.timer.expires_at(s.deadline);
            // On the waiting operation's executor: the connection may be in
            // use on another shard's thread than the one it was accepted on.
            s.timer.async_wait(asio::bind_executor(
                asio::get_associated_executor(handler, s.socket.get_executor()),
                [weak = std::weak_ptr<State>(state_),
                 generation = s.generation](const boost::system::error_code& ec) {
                    const auto state = weak.lock();
                    if (!state || state->generation != generation) {
                        return;
                    }
                    state->armed = false;
                    if (ec) {
                        return;
                    }
                    // As beast::tcp_stream: the connection ends with its deadline.
                    state->expired = true;
                    boost::system::error_code ignored;
                    state->socket.close(ignored);
                }));
        }
        s.socket.async_wait(what, std::forward<Handler>(handler));
    }

  private:
    using Clock = std::chrono::steady_clock;
    struct State {
        explicit State(tcp::socket s) : socket(std::move(s)), timer(socket.get_executor()) {}
        tcp::socket socket;
        asio::steady_timer timer;
        Clock::time_point deadline = Clock::time_point::max();
        std::uint64_t generation = 0;  // of the deadline; a timer of an older one does nothing
        bool armed = false;
        bool expired = false;
    };
    std::shared_ptr<State> state_;
};

// What the BIO reads and writes through (server_tls.cpp).
struct SocketIo;

class ServerTls {  // not final: Asio derives from it to find its executor
  public:
    using executor_type = DeadlineSocket::executor_type;
    using next_layer_type = DeadlineSocket;

    // A server-side connection of `context` on `socket` (non-blocking from here on).
    ServerTls(tcp::socket socket, asio::ssl::context& context);
    ~ServerTls();
    ServerTls(const ServerTls&) = delete;
    ServerTls& operator=(const ServerTls&) = delete;
    ServerTls(ServerTls&&) = delete;
    ServerTls& operator=(ServerTls&&) = delete;

    DeadlineSocket& next_layer() { return next_; }
    executor_type get_executor() { return next_.get_executor(); }
    SSL* native_handle() { return ssl_; }

    template <class Token>
    auto async_handshake(asio::ssl::stream_base::handshake_type /*server*/, Token&& token) {
        return run<false>([this] { return handshake_step(); }, std::forward<Token>(token));
    }

    template <class Buffers, class Token>
    auto async_read_some(const Buffers& buffers, Token&& token) {
        asio::mutable_buffer into;
        for (auto it = asio::buffer_sequence_begin(buffers);
             it != asio::buffer_sequence_end(buffers); ++it) {
            into = asio::mutable_buffer(*it);
            if (into.size() > 0) {
                break;
            }
        }
        return run<true>([this, into] { return read_step(into); }, std::forward<Token>(token));
    }

    // Writes from the first buffer, or, when there are several, from up to
    // one record's worth of them gathered (one record, one system call,
    // where a header and its body would otherwise be two of each).
    template <class Buffers, class Token>
    auto async_write_some(const Buffers& buffers, Token&& token) {
        std::size_t count = 0;
        std::size_t total = 0;
        asio::const_buffer first;
        for (auto it = asio::buffer_sequence_begin(buffers);
             it != asio::buffer_sequence_end(buffers); ++it) {
            const asio::const_buffer b(*it);
            if (b.size() == 0) {
                continue;
            }
            if (count++ == 0) {
                first = b;
            }
            total += b.size();
        }
        std::unique_ptr<char[]> gathered;
        if (count > 1 && first.size() < k_record) {
            const std::size_t size = std::min(total, k_record);
            gathered = std::make_unique_for_overwrite<char[]>(size);
            asio::buffer_copy(asio::mutable_buffer(gathered.get(), size), buffers);
            first = asio::const_buffer(gathered.get(), size);
        }
        return run<true>(
            [this, first, gathered = std::move(gathered)] { return write_step(first); },
            std::forward<Token>(token));
    }

    // Sends close_notify (not waiting for the peer's).
    template <class Token>
    auto async_shutdown(Token&& token) {
        return run<false>([this] { return shutdown_step(); }, std::forward<Token>(token));
    }

  private:
    static constexpr std::size_t k_record = std::size_t{16} * 1024;

    // One call into OpenSSL: finished (with `bytes` or an error), or the
    // socket readiness it waits for.
    struct Step {
        boost::system::error_code ec;
        std::size_t bytes = 0;
        enum class Want { nothing, read, write } want = Want::nothing;
    };
    Step handshake_step();
    Step read_step(asio::mutable_buffer into);
    Step write_step(asio::const_buffer from);
    Step shutdown_step();
    Step outcome(int ret, std::size_t bytes);

    // Repeats `step` until it is finished, waiting for the socket between
    // tries; never completes inside the initiating call.
    template <class StepFn, bool Bytes>
    struct Op {
        ServerTls* tls = nullptr;
        StepFn step;
        enum class Phase { start, waiting, finished } phase = Phase::start;
        Step result{};

        template <class Self>
        void operator()(Self& self, boost::system::error_code ec = {}) {
            if (phase == Phase::finished) {
                finish(self);
                return;
            }
            if (phase == Phase::waiting && ec) {
                result.ec =
                    tls->next_.expired() ? boost::system::error_code(beast::error::timeout) : ec;
                finish(self);
                return;
            }
            // Past the deadline nothing more is tried (the socket is closed).
            result = tls->next_.expired() ? Step{boost::system::error_code(beast::error::timeout)}
                                          : step();
            if (result.want == Step::Want::nothing) {
                if (phase == Phase::start) {
                    phase = Phase::finished;
                    asio::post(std::move(self));
                    return;
                }
                finish(self);
                return;
            }
            phase = Phase::waiting;
            tls->next_.async_wait(
                result.want == Step::Want::read ? tcp::socket::wait_read : tcp::socket::wait_write,
                std::move(self));
        }

        template <class Self>
        void finish(Self& self) {
            if constexpr (Bytes) {
                self.complete(result.ec, result.bytes);
            } else {
                self.complete(result.ec);
            }
        }
    };

    template <bool Bytes, class StepFn, class Token>
    auto run(StepFn step, Token&& token) {
        using Signature = std::conditional_t<Bytes, void(boost::system::error_code, std::size_t),
                                             void(boost::system::error_code)>;
        return asio::async_compose<Token, Signature>(Op<StepFn, Bytes>{this, std::move(step)},
                                                     token, next_.socket());
    }

    DeadlineSocket next_;
    SSL* ssl_ = nullptr;
    std::unique_ptr<SocketIo> io_;
};

}  // namespace pqmcp::transport::detail
