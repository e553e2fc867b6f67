// An operator's one-time enrollment (issue 17, item 4): the OAuth 2.1
// authorization code grant with PKCE (RFC 7636, S256) for a protected
// resource (RFC 8707), its authorization server discovered from the
// resource's metadata (RFC 9728, RFC 8414), the browser sent back to a
// listener on loopback (RFC 8252 section 7.3). What it yields is the
// refresh token the gateway then uses (TokenSource with a TokenFile).
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include <openssl/ssl.h>

#include "pqmcp/core/error.hpp"
#include "pqmcp/oauth/token_store.hpp"

namespace pqmcp::oauth {

struct LoginOptions {
    std::string resource;  // the protected resource's URL
    std::string issuer;    // "": the first of its authorization_servers
    std::string client_id;
    std::string client_secret;  // "": a public client
    std::vector<std::string> scopes;
    SSL_CTX* resource_tls = nullptr;            // for the resource's metadata
    SSL_CTX* tls = nullptr;                     // for an https authorization server
    std::chrono::milliseconds timeout{10'000};  // each exchange with a server
    std::uint16_t port = 0;                     // the redirect's port on 127.0.0.1; 0: any
    std::chrono::seconds wait{300};             // for the person at the browser
    // Told where the person should go, and where the browser will come back.
    std::function<void(const std::string& authorization_url, const std::string& redirect_uri)> show;
};

// Blocking. login_failed: the server has no authorization endpoint or no
// S256 PKCE, the person refused (the server's error in the detail), the
// answer named another issuer (RFC 9207), no answer within `wait`, or no
// refresh token issued; discovery_failed, grant_refused as the token
// endpoint answered.
[[nodiscard]] Result<StoredGrant> login(const LoginOptions& options);

// login(), then the grant written to `file` under its lock (a gateway
// refreshing the old enrollment at that moment does not write over it).
[[nodiscard]] Result<StoredGrant> login_and_store(const LoginOptions& options,
                                                  const TokenFile& file);

}  // namespace pqmcp::oauth
