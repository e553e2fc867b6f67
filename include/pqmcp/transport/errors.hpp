// Error codes of the transport component.
#pragma once

#include <system_error>

#include "pqmcp/core/error.hpp"

namespace pqmcp::transport {

enum class Errc {
    io_error = 1,     // read/write on a descriptor or socket failed
    closed,           // the peer closed the stream
    too_large,        // a line, header, body or event over its limit
    timeout,          // an operation did not finish within its deadline
    invalid_url,      // not an http:// or https:// URL
    spawn_failed,     // a child process could not be started
    http_status,      // the server answered with an HTTP error status
    protocol_error,   // the peer broke the Streamable HTTP rules
    connect_failed,   // TCP connect or TLS handshake failed (detail says which)
    session_expired,  // the server no longer knows the MCP session (404)
    listen_failed,    // cannot bind or listen
};

const std::error_category& transport_category() noexcept;
inline std::error_code make_error_code(Errc e) noexcept {
    return {static_cast<int>(e), transport_category()};
}

}  // namespace pqmcp::transport

template <>
struct std::is_error_code_enum<pqmcp::transport::Errc> : std::true_type {};
