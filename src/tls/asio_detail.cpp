#include "asio_detail.hpp"

#include <openssl/err.h>

#include "pqmcp/crypto/errors.hpp"
#include "pqmcp/tls/context.hpp"
#include "pqmcp/tls/errors.hpp"

namespace pqmcp::tls::detail {

Deadline::Deadline(const boost::asio::any_io_executor& executor,
                   boost::asio::ip::tcp::socket& socket)
    : timer_(executor), state_(std::make_shared<State>()) {
    state_->socket = &socket;
}

Deadline::~Deadline() {
    state_->socket = nullptr;
    ++state_->generation;
    timer_.cancel();
}

void Deadline::arm(std::chrono::milliseconds duration) {
    const unsigned long generation = ++state_->generation;
    timer_.expires_after(duration);
    timer_.async_wait([state = state_, generation](const boost::system::error_code& ec) {
        if (ec || state->generation != generation || state->socket == nullptr) {
            return;
        }
        state->fired = true;
        boost::system::error_code ignored;
        state->socket->close(ignored);
    });
}

void Deadline::disarm() {
    ++state_->generation;
    timer_.cancel();
}

Error handshake_error(const SSL* ssl, const boost::system::error_code& ec, bool timed_out,
                      std::chrono::milliseconds timeout, bool drain_queue) {
    std::string queue = drain_queue ? crypto::drain_openssl_errors() : std::string{};
    if (!drain_queue) {
        ERR_clear_error();
    }
    if (std::string reason = verification_failure(ssl); !reason.empty()) {
        return Error{make_error_code(Errc::peer_rejected), std::move(reason)};
    }
    if (timed_out) {
        return Error{make_error_code(Errc::timeout), "TLS handshake did not complete within " +
                                                         std::to_string(timeout.count()) + " ms"};
    }
    std::string detail = ec.message();
    const AlertRecord alerts = last_alerts(ssl);
    if (!alerts.sent.empty()) {
        detail += "; alert sent: " + alerts.sent;
    }
    if (!alerts.received.empty()) {
        detail += "; alert received: " + alerts.received;
    }
    if (!queue.empty()) {
        detail += "; " + queue;
    }
    return Error{make_error_code(Errc::handshake_failed), std::move(detail)};
}

std::string endpoint_string(const boost::asio::ip::tcp::endpoint& endpoint) {
    const auto address = endpoint.address();
    std::string host = address.to_string();
    if (address.is_v6()) {
        host = "[" + host + "]";
    }
    return host + ":" + std::to_string(endpoint.port());
}

}  // namespace pqmcp::tls::detail
