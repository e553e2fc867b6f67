// One TLS 1.3 handshake between two contexts in the calling thread: client
// and server SSL objects over a non-blocking AF_UNIX socket pair, driven in
// turn until both have finished. `pqmcp bench` and bench/handshake use it, so
// the time measured is the CPU of both ends together.
#pragma once

#include <cstdint>
#include <string>

#include "pqmcp/crypto/ossl.hpp"
#include "pqmcp/tls/client.hpp"

namespace pqmcp::measure {

struct HandshakeTweaks {
    SSL_SESSION* resume = nullptr;         // offer this session (a ticket)
    bool want_session = false;             // read the server's ticket; return the session
    const char* client_groups = nullptr;   // narrow the client's groups
    const char* client_sigalgs = nullptr;  // narrow the client's signature algorithms
};

struct HandshakeOutcome {
    bool ok = false;
    bool resumed = false;
    std::uint64_t client_to_server = 0;  // TLS record bytes, as the socket BIOs count them
    std::uint64_t server_to_client = 0;
    tls::SessionPtr session;
    std::string error;
};

[[nodiscard]] HandshakeOutcome handshake_once(SSL_CTX* client, SSL_CTX* server,
                                              const HandshakeTweaks& tweaks = {});

}  // namespace pqmcp::measure
