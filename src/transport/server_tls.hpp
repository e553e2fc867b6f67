// Internal: the server side's TLS connection, read and written straight on its
// socket. OpenSSL reads and writes the descriptor through a small BIO; Asio's
// reactor says when the socket is ready. Asio's ssl::stream instead keeps a
// BIO pair and two record-sized buffers per connection (about 80 KiB as
// allocated), which dominated an idle connection's memory; here an idle
// connection holds OpenSSL's state alone (its record buffers are released
// between records, SSL_MODE_RELEASE_BUFFERS).
//
// ServerTls is an AsyncStream for Beast (async_read_some, async_write_some)
// with async_handshake and async_shutdown, one operation at a time; its lowest layer,
// DeadlineSocket, keeps the part of beast::tcp_stream the server uses: the socket and a deadline
// (expires_after, expires_never) after which the operations in progress end with
// beast::error::timeout.
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <memory>
#include <type_traits>

#include <boost/asio/associated_executor.hpp>
#include <boost/asio/bind_executor.hpp>
#include <boost/asio/buffer.hpp>
#include <boost/asio/compose.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/ssl/stream_base.hpp>
#include <boost/asio/write.hpp>
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

    // As beast::tcp_stream: an operation in progress when `after` has passed,
    // or started later, ends with beast::error::timeout and the socket is
    // closed; a deadline that passes while nothing is in progress does nothing
    // until the next operation starts.
    void expires_after(std::chrono::steady_clock::duration after);
    void expires_never();
    [[nodiscard]] bool expired() const { return state_->expired; }

    // Before an operation on the socket from `executor`'s thread: false when
    // the deadline has passed; otherwise the deadline's timer is running
    // (its handler on that executor, which the connection may be lent to:
    // another shard's thread than the one that accepted it).
    template <class Executor>
    bool arm(const Executor& executor) {
        State& s = *state_;
        if (!s.expired && s.deadline != Clock::time_point::max() && Clock::now() >= s.deadline) {
            s.expired = true;
            boost::system::error_code ignored;
            s.socket.close(ignored);
        }
        if (s.expired) {
            return false;
        }
        if (s.deadline != Clock::time_point::max() && !s.armed) {
            s.armed = true;
            s.timer.expires_at(s.deadline);
            s.timer.async_wait(asio::bind_executor(
                executor, [weak = std::weak_ptr<State>(state_),
                           generation = s.generation.load()](const boost::system::error_code& ec) {
                    // A stopped timer's handler touches nothing: the
                    // connection may be back on its own shard's thread by then.
                    if (ec) {
                        return;
                    }
                    const auto state = weak.lock();
                    if (!state || state->generation != generation) {
                        return;
                    }
                    state->armed = false;
                    // As beast::tcp_stream: the connection ends with its deadline.
                    state->expired = true;
                    boost::system::error_code ignored;
                    state->socket.close(ignored);
                }));
        }
        return true;
    }
    // After the operation: its deadline's timer stops (the deadline stays).
    void disarm();

    // Moving the connection to another context (another shard's thread),
    // between operations: release() gives up the socket's descriptor (the
    // caller owns it then, -1 on failure) and the deadline, on the socket's
    // own thread; nothing may use this until adopt() gives it the descriptor
    // again as a socket of the new context, on that context's thread.
    [[nodiscard]] int release(tcp& protocol);
    void adopt(tcp::socket socket);

  private:
    using Clock = std::chrono::steady_clock;
    void set_deadline(Clock::time_point deadline);
    struct State {
        explicit State(tcp::socket s) : socket(std::move(s)), timer(socket.get_executor()) {}
        tcp::socket socket;
        asio::steady_timer timer;
        Clock::time_point deadline = Clock::time_point::max();
        // Of the deadline; a timer of an older one does nothing. Atomic: a timer
        // that fired as its operation ended on another shard's thread reads it
        // there (and finds it changed) while this shard may set a new deadline.
        std::atomic<std::uint64_t> generation{0};
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

    // To another context, between operations (DeadlineSocket::release and
    // adopt): the TLS connection stays as it is, on the same descriptor.
    [[nodiscard]] int release_socket(tcp& protocol) { return next_.release(protocol); }
    void adopt_socket(tcp::socket socket);

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

    // One call into OpenSSL: finished (with `bytes` or an error), or what it
    // waits for: input, or room for the output the BIO holds.
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

    // What the BIO left for the socket when it would have blocked, and room
    // for what the socket gives when OpenSSL waits for input.
    [[nodiscard]] bool has_output() const;
    [[nodiscard]] asio::const_buffer output() const;
    void output_sent();
    [[nodiscard]] asio::mutable_buffer input_space();
    void received(std::size_t bytes);
    void input_ended();

    // Repeats `step` until it is finished. Between tries it waits with Asio's
    // own socket operations (the BIO's pending output written, or some input
    // read for the BIO), whose reactor registration cannot miss a readiness
    // that arrives meanwhile, even when the connection is used from another
    // thread than its socket's. Never completes inside the initiating call.
    template <class StepFn, bool Bytes>
    struct Op {
        ServerTls* tls = nullptr;
        StepFn step;
        enum class Phase { start, reading, writing, finished } phase = Phase::start;
        Step result{};

        template <class Self>
        void operator()(Self& self, boost::system::error_code ec = {}, std::size_t n = 0) {
            switch (phase) {
                case Phase::finished:
                    finish(self);
                    return;
                case Phase::reading:
                    if (ec == asio::error::eof) {
                        tls->input_ended();  // OpenSSL meets it on its next read
                    } else if (ec) {
                        fail(self, ec);
                        return;
                    } else {
                        tls->received(n);
                    }
                    break;
                case Phase::writing:
                    tls->output_sent();
                    if (ec) {
                        fail(self, ec);
                        return;
                    }
                    if (result.ec || result.want == Step::Want::nothing) {
                        finish(self);  // the step had ended; its output is out now
                        return;
                    }
                    if (result.want == Step::Want::read) {
                        wait_for_input(self);
                        return;
                    }
                    break;  // room again for the BIO: try once more
                case Phase::start:
                    // One operation at a time (the server never reads and writes
                    // a connection at once): the BIO's held bytes are one op's.
                    if (tls->busy_) {
                        result = Step{asio::error::in_progress};
                        phase = Phase::finished;
                        asio::post(std::move(self));
                        return;
                    }
                    tls->busy_ = true;
                    break;
            }
            if (!tls->next_.arm(self.get_executor())) {
                fail(self, beast::error::timeout);
                return;
            }
            result = step();
            // What OpenSSL wrote goes out first, an alert ending a failed
            // handshake too.
            if (tls->has_output()) {
                phase = Phase::writing;
                asio::async_write(tls->next_.socket(), tls->output(), std::move(self));
                return;
            }
            if (result.want == Step::Want::read) {
                wait_for_input(self);
                return;
            }
            if (result.want == Step::Want::write) {  // not with output pending; as a failure
                result.ec = asio::error::would_block;
            }
            end(self);
        }

        template <class Self>
        void wait_for_input(Self& self) {
            if (!tls->next_.arm(self.get_executor())) {
                fail(self, beast::error::timeout);
                return;
            }
            phase = Phase::reading;
            tls->next_.socket().async_read_some(tls->input_space(), std::move(self));
        }

        template <class Self>
        void fail(Self& self, boost::system::error_code ec) {
            result =
                Step{tls->next_.expired() ? boost::system::error_code(beast::error::timeout) : ec};
            end(self);
        }

        // Completes now, or (still inside the initiating call) once posted.
        template <class Self>
        void end(Self& self) {
            if (phase == Phase::start) {
                phase = Phase::finished;
                asio::post(std::move(self));
                return;
            }
            finish(self);
        }

        template <class Self>
        void finish(Self& self) {
            if (result.ec != asio::error::in_progress) {
                tls->busy_ = false;
                tls->next_.disarm();
            }
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
    bool busy_ = false;  // an operation is in progress
    std::unique_ptr<SocketIo> io_;
};

}  // namespace pqmcp::transport::detail
