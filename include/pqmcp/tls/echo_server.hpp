// A small TLS server that echoes what it reads: for `pqmcp tls-serve`, the
// interop tests against openssl s_client, and self-talk tests.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <stop_token>
#include <string>

#include <openssl/ssl.h>

#include "pqmcp/core/error.hpp"
#include "pqmcp/tls/errors.hpp"
#include "pqmcp/tls/handshake_info.hpp"

namespace pqmcp::tls {

// One handshake attempt: its outcome, or why it failed.
struct HandshakeEvent {
    std::string remote;  // "127.0.0.1:54321"
    Result<HandshakeInfo> result;
};

struct EchoServerOptions {
    std::string host = "127.0.0.1";  // address to listen on (numeric)
    std::uint16_t port = 0;          // 0: an ephemeral port (reported by on_ready)
    std::chrono::milliseconds handshake_timeout{10'000};
    std::chrono::milliseconds idle_timeout{30'000};  // per read/write after the handshake
    std::size_t max_record = 16'384;  // echo buffer: at most one record's plaintext per read
    // Accept this many connections, then stop accepting and return once they
    // are all closed. 0: until `stop` is requested.
    std::size_t max_connections = 0;
    // Connections served at the same time; one more is closed right after accept.
    std::size_t max_concurrent = 64;
    // Called once on the server thread when listening, with the bound port.
    std::function<void(std::uint16_t port)> on_ready;
    // Called on the server thread after every handshake attempt.
    std::function<void(const HandshakeEvent&)> on_handshake;
};

// Runs on the calling thread until max_connections are served or `stop` is
// requested (then open connections are dropped). `ctx` (non-owning) must be a
// server context and outlive the call. Errors: listen_failed.
[[nodiscard]] Status run_tls_echo_server(SSL_CTX* ctx, const EchoServerOptions& options,
                                         const std::stop_token& stop = {});

}  // namespace pqmcp::tls
