// A blocking one-shot TLS client: connect, handshake, optionally exchange one
// message, close. Used by probe, the tests and the benchmarks; the gateway's
// own transport builds on the same contexts.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include <openssl/ssl.h>

#include "pqmcp/core/error.hpp"
#include "pqmcp/crypto/ossl.hpp"
#include "pqmcp/tls/errors.hpp"
#include "pqmcp/tls/handshake_info.hpp"

namespace pqmcp::tls {

using SessionPtr = std::unique_ptr<SSL_SESSION, crypto::OsslDeleter<SSL_SESSION, SSL_SESSION_free>>;

struct ClientOptions {
    // One deadline for resolve + connect + handshake + message exchange.
    std::chrono::milliseconds timeout{10'000};
    std::string server_name;  // SNI; empty: none
    // Offer this session for resumption (non-owning; kept alive by the caller).
    SSL_SESSION* resume = nullptr;
    // Sent after the handshake; then exactly as many bytes are read back (an
    // echo). TLS 1.3 session tickets arrive after the handshake, so a payload is
    // needed to obtain a resumable session. Empty: close right after the handshake.
    std::string payload;
    // Adjusts the connection before the handshake (probe and tests: groups, ...).
    std::function<void(SSL*)> configure;
};

struct ClientResult {
    HandshakeInfo info;
    SessionPtr session;  // resumable if a ticket arrived
    std::string reply;
};

// Errors: resolve_failed, connect_failed, timeout, peer_rejected (with the
// reason and the peer id), handshake_failed (with the OpenSSL reason and the
// alerts sent/received), io_error.
[[nodiscard]] Result<ClientResult> connect_once(SSL_CTX* ctx, std::string_view host,
                                                std::uint16_t port, const ClientOptions& options);

}  // namespace pqmcp::tls
