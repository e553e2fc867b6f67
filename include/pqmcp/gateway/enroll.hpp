// `pqmcp auth login UPSTREAM` and `pqmcp auth logout UPSTREAM`: an operator
// enrolls the gateway once with an OAuth-protected HTTP upstream whose
// oauth.grant is authorization_code (issue 17, item 4). The person signs in
// at the authorization server in a browser; the refresh token that comes
// back is kept sealed under the gateway's identity in
// GatewayConfig::upstream_token_file(), where `pqmcp serve` finds it (a
// running gateway picks it up at its next attempt, without a restart).
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>
#include <utility>

#include "pqmcp/core/error.hpp"
#include "pqmcp/gateway/config.hpp"

namespace pqmcp::gateway {

struct EnrollOptions {
    std::uint16_t port = 0;          // the browser's way back: 127.0.0.1:PORT; 0: any free port
    std::chrono::seconds wait{300};  // for the person at the browser
    std::function<void(const std::string& authorization_url, const std::string& redirect_uri)> show;
};

struct Enrolled {
    std::filesystem::path file;  // where the sealed refresh token is
    std::string issuer;
    std::string client_id;
};

// invalid_config: no such HTTP upstream, or it does not take
// authorization_code; startup_failed: the identity or a TLS context; the
// oauth errors of the flow (login_failed, grant_refused, ...) as they are.
[[nodiscard]] Result<Enrolled> enroll_upstream(const GatewayConfig& config, const std::string& name,
                                               const EnrollOptions& options);

// Removes the upstream's stored token: its path, and whether there was one.
[[nodiscard]] Result<std::pair<std::filesystem::path, bool>> forget_upstream(
    const GatewayConfig& config, const std::string& name);

}  // namespace pqmcp::gateway
