// Error codes of the tls component.
#pragma once

#include <system_error>

#include "pqmcp/core/error.hpp"

namespace pqmcp::tls {

enum class Errc {
    unknown_profile = 1,  // parse_profile: not the name of a profile
    invalid_options,   // options inconsistent with the profile (identity algorithm, trust anchors)
    context_failed,    // OpenSSL refused a setting (details in Error::detail)
    resolve_failed,    // the host name does not resolve
    connect_failed,    // the TCP connection could not be established
    listen_failed,     // bind/listen on the requested endpoint failed
    timeout,           // a connect, handshake, read or write deadline passed
    handshake_failed,  // the TLS handshake failed (alert, no shared group, bad record MAC, ...)
    peer_rejected,     // the peer certificate is neither pinned, known nor CA-verified
    io_error,          // reading or writing application data failed after the handshake
};

const std::error_category& tls_category() noexcept;

inline std::error_code make_error_code(Errc e) noexcept {
    return {static_cast<int>(e), tls_category()};
}

}  // namespace pqmcp::tls

template <>
struct std::is_error_code_enum<pqmcp::tls::Errc> : std::true_type {};
