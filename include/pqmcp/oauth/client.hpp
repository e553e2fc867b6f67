// The gateway as an OAuth 2.1 client of an upstream that asks for a token
// (issue 17, item 4): its own access token for the upstream as the resource
// (RFC 8707), by the client_credentials grant (RFC 6749 section 4.4) or by
// a refresh token enrolled once with `pqmcp auth login` (section 6, the
// rotated token written back), the authorization server found from the
// upstream's Protected Resource Metadata (RFC 9728) and its own metadata
// (RFC 8414), fetched before the upstream is first called and again before
// it expires. The token is the gateway's: no client's token is ever passed on.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <openssl/ssl.h>
#include <boost/asio/any_io_executor.hpp>

#include "pqmcp/core/error.hpp"
#include "pqmcp/oauth/resource.hpp"
#include "pqmcp/oauth/token_store.hpp"

namespace pqmcp::oauth {

struct ClientCredentials {
    std::string resource;  // the upstream's URL: its metadata is found from it
    std::string issuer;    // "": the first of the upstream's authorization_servers
    std::string client_id;
    std::string client_secret;  // never logged; "" for a public client (refresh tokens only)
    std::vector<std::string> scopes;
    // Set: the refresh_token grant with the token kept there (read before
    // each refresh, under its lock; a rotated one written back), instead of
    // client_credentials.
    std::shared_ptr<const TokenFile> enrolled;
    SSL_CTX* resource_tls = nullptr;  // for the upstream's metadata (its own TLS context)
    SSL_CTX* tls = nullptr;           // for an https authorization server (a web context)
    std::chrono::milliseconds timeout{10'000};
};

// What a protected resource says of itself (RFC 9728 section 3): for
// reports (`pqmcp scan`).
struct ResourceMetadata {
    std::string url;  // where the document was
    std::string resource;
    std::vector<std::string> authorization_servers;
    std::vector<std::string> scopes_supported;
};

// Blocking, bounded by `timeout`. discovery_failed when there is no such
// document (any status but 200, not JSON, no authorization_servers) or its
// resource is not `resource` (section 3.3).
[[nodiscard]] Result<ResourceMetadata> read_resource_metadata(const std::string& resource,
                                                              SSL_CTX* tls,
                                                              std::chrono::milliseconds timeout);

class TokenSource final {
  public:
    // Refreshes run on `executor`.
    TokenSource(boost::asio::any_io_executor executor, ClientCredentials credentials);
    ~TokenSource();
    TokenSource(const TokenSource&) = delete;
    TokenSource& operator=(const TokenSource&) = delete;
    TokenSource(TokenSource&&) = delete;
    TokenSource& operator=(TokenSource&&) = delete;

    // Discovers the authorization server and gets a first token, blocking
    // (at most a few timeouts): for start-up. discovery_failed, grant_refused
    // (the server's error is in the detail), not_enrolled or store_failed.
    Status fetch_now();
    // From now on, a new token when two thirds of the current one's life
    // have passed (retried with back-off while it fails).
    void keep_fresh();
    // "Bearer <token>", or "" before the first token. Thread-safe.
    [[nodiscard]] std::string authorization() const;
    [[nodiscard]] std::string issuer() const;

    struct Impl;

  private:
    std::shared_ptr<Impl> impl_;
};

}  // namespace pqmcp::oauth
