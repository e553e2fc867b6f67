// The gateway as an OAuth 2.1 resource server, as the MCP authorization
// specification (2025-11-25) asks of an MCP server: Protected Resource
// Metadata (RFC 9728), a WWW-Authenticate challenge pointing at it, and
// bearer tokens validated as JWT access tokens (RFC 9068) against the
// authorization server's JWKS (fetched, cached, fetched again for a key it
// does not know), bound to the gateway's resource URI (RFC 8707), with
// issuer, expiry and scopes checked. Signatures are checked by cjose (the
// JOSE library of mod_auth_openidc), never here.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include <openssl/ssl.h>
#include <boost/asio/any_io_executor.hpp>

#include "pqmcp/core/error.hpp"
#include "pqmcp/transport/http_server.hpp"

namespace pqmcp::oauth {

enum class Errc {
    no_token = 1,          // no bearer token in the request
    invalid_token,         // malformed, bad signature, wrong issuer or audience, expired, ...
    insufficient_scope,    // valid, but without a scope the gateway requires
    unknown_key,           // signed with a key the JWKS does not have
    discovery_failed,      // the authorization server's metadata could not be read
    jwks_failed,           // its JWKS could not be fetched or parsed
    introspection_failed,  // its introspection endpoint could not be asked (RFC 7662)
    invalid_options,       // the configuration cannot work (no issuer, ...)
    grant_refused,         // the authorization server refused a grant (its error in the detail)
    login_failed,          // an authorization code flow did not complete (denied, state, time)
    not_enrolled,          // no refresh token stored for this client (`pqmcp auth login`)
    store_failed,          // a stored token could not be read, written or opened
};
const std::error_category& oauth_category() noexcept;
inline std::error_code make_error_code(Errc e) noexcept {
    return {static_cast<int>(e), oauth_category()};
}

struct ResourceOptions {
    // The authorization server's issuer identifier (RFC 8414), exactly as its
    // tokens' "iss" carries it.
    std::string issuer;
    // Where its keys are; empty: from its metadata (RFC 8414, then OpenID
    // Connect discovery).
    std::string jwks_uri;
    // The gateway's resource identifier (RFC 8707): tokens must name it in
    // "aud". Empty until set_resource() (the listener's URL).
    std::string resource;
    // Scopes every request's token must carry (403 insufficient_scope otherwise).
    std::vector<std::string> required_scopes;
    // Advertised in the metadata; empty: the required ones.
    std::vector<std::string> scopes_supported;
    std::chrono::seconds leeway{30};  // clock skew allowed on exp and nbf
    // A token signed with an unknown key makes the keys be fetched again (a
    // rotation), at most this often; they are also fetched again after max_age.
    std::chrono::seconds refetch_interval{30};
    std::chrono::seconds max_age{3600};
    std::chrono::milliseconds fetch_timeout{10'000};
    std::size_t max_token_bytes = 16U << 10U;
    // For https metadata and JWKS (tls::make_web_client_context); shared,
    // must outlive the server. Plain http is refused unless the host is a
    // loopback address.
    SSL_CTX* tls = nullptr;
    // Time source (tests).
    std::function<std::chrono::system_clock::time_point()> now;
    // RFC 7662: a token that is not a JWT (an opaque token) is asked about at
    // the authorization server's introspection endpoint, this gateway
    // authenticating as an OAuth client (client_secret_basic). Without a
    // client id, opaque tokens are refused.
    struct Introspection {
        std::string endpoint;  // empty: the metadata's introspection_endpoint
        std::string client_id;
        std::string client_secret;
        // An answer is used for this long at most (never past the token's
        // exp): a token revoked at the authorization server stops working
        // within it.
        std::chrono::seconds cache{60};
    } introspection;
};

// The verdict on one token.
struct Check {
    Result<transport::TokenIdentity> identity;  // or the reason (Errc)
    bool wait = false;  // the keys are being fetched, or the token asked about: ask again then
};

class ResourceServer final {
  public:
    // Fetches run on `executor`.
    ResourceServer(boost::asio::any_io_executor executor, ResourceOptions options);
    ~ResourceServer();
    ResourceServer(const ResourceServer&) = delete;
    ResourceServer& operator=(const ResourceServer&) = delete;
    ResourceServer(ResourceServer&&) = delete;
    ResourceServer& operator=(ResourceServer&&) = delete;

    [[nodiscard]] static Status validate(const ResourceOptions& options);

    // The resource identifier, once the listener's address is known
    // (https://HOST:PORT/mcp), unless the options named one.
    void set_resource(const std::string& resource);
    [[nodiscard]] std::string resource() const;
    // Fetches the metadata and the keys now (the first request need not wait).
    void start();
    // No more fetches; requests waiting for one are dropped (shutdown: call
    // it while the threads' contexts still exist).
    void stop();
    // Uses this JWKS (a JSON document) as if fetched: for keys given out of
    // band, and tests. invalid_options when it has no usable signing key.
    Status use_keys(std::string_view jwks);

    // Checks the Authorization header's value ("Bearer <token>"). Thread-safe.
    [[nodiscard]] Check check(std::string_view authorization);

    // The server's decision for the HTTP layer: allowed with the identity,
    // or 401/403 with its WWW-Authenticate challenge and a JSON body.
    [[nodiscard]] transport::AuthDecision decide(std::string_view authorization);
    // A 401 challenge without an error (no token was sent).
    [[nodiscard]] transport::AuthDecision challenge() const;

    // RFC 9728: the metadata document and the paths it is served at
    // ("/.well-known/oauth-protected-resource" + the resource's path, and
    // the bare one).
    [[nodiscard]] std::string metadata() const;
    [[nodiscard]] bool is_metadata_path(std::string_view path) const;
    [[nodiscard]] std::string metadata_url() const;

    struct Impl;

  private:
    std::shared_ptr<Impl> impl_;
};

}  // namespace pqmcp::oauth

template <>
struct std::is_error_code_enum<pqmcp::oauth::Errc> : std::true_type {};
