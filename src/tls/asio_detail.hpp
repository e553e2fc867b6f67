// Internal: Asio helpers shared by the client and the echo server.
#pragma once

#include <chrono>
#include <memory>
#include <string>

#include <openssl/ssl.h>

#include "asio.hpp"

#include "pqmcp/core/error.hpp"

namespace pqmcp::tls::detail {

// A deadline on a socket: when it passes, the socket is closed, which fails
// whatever operation is pending on it. Safe against a timer handler that is
// already queued when the deadline is re-armed or the owner is gone (the
// handler only touches shared state and checks a generation number).
class Deadline final {
  public:
    Deadline(const boost::asio::any_io_executor& executor, boost::asio::ip::tcp::socket& socket);
    ~Deadline();
    Deadline(const Deadline&) = delete;
    Deadline& operator=(const Deadline&) = delete;
    Deadline(Deadline&&) = delete;
    Deadline& operator=(Deadline&&) = delete;

    void arm(std::chrono::milliseconds duration);
    void disarm();
    [[nodiscard]] bool fired() const noexcept { return state_->fired; }

  private:
    struct State {
        boost::asio::ip::tcp::socket* socket = nullptr;
        unsigned long generation = 0;
        bool fired = false;
    };
    boost::asio::steady_timer timer_;
    std::shared_ptr<State> state_;
};

// The error for a failed handshake on `ssl`: peer_rejected if our verification
// rejected the peer (with its reason), timeout if `timed_out`, otherwise
// handshake_failed with OpenSSL's reason and the alerts sent and received.
// `drain_queue`: append what is left in this thread's OpenSSL error queue
// (only where one connection runs per thread).
[[nodiscard]] Error handshake_error(const SSL* ssl, const boost::system::error_code& ec,
                                    bool timed_out, std::chrono::milliseconds timeout,
                                    bool drain_queue);

[[nodiscard]] std::string endpoint_string(const boost::asio::ip::tcp::endpoint& endpoint);

}  // namespace pqmcp::tls::detail
