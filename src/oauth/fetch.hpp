// HTTP for the oauth component: metadata, keys and tokens, over the
// transport's RestClient, with the rules both sides share.
#pragma once

#include <chrono>
#include <functional>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <openssl/ssl.h>
#include <boost/asio/any_io_executor.hpp>
#include <boost/json/value.hpp>

#include "pqmcp/core/error.hpp"
#include "pqmcp/oauth/client.hpp"
#include "pqmcp/transport/http_util.hpp"
#include "pqmcp/transport/rest_client.hpp"

namespace pqmcp::oauth::detail {

// RFC 8414 section 3.1 (the well-known segment between the host and the
// issuer's path), then OpenID Connect discovery.
[[nodiscard]] std::vector<std::string> metadata_urls(const std::string& issuer);

// RFC 9728 section 3.1: the same insertion for a resource's metadata.
[[nodiscard]] std::string resource_metadata_url(const std::string& resource);

// One exchange with `url` (https, or http on loopback only), bounded by
// `timeout`; `done` runs on the executor with the response, any status.
void exchange(const boost::asio::any_io_executor& executor, const std::string& url, SSL_CTX* tls,
              std::chrono::milliseconds timeout, transport::RestRequest request,
              std::function<void(Result<transport::RestResponse>)> done);

// A GET of a JSON document: its body when the status is 200.
void get_json(const boost::asio::any_io_executor& executor, const std::string& url, SSL_CTX* tls,
              std::chrono::milliseconds timeout, std::function<void(Result<std::string>)> done);

// RFC 6749 section 2.3.1 (client_secret_basic): the client id and secret
// are form-urlencoded before they are joined and base64-encoded for HTTP
// Basic. The Authorization header's value.
[[nodiscard]] std::string basic_credentials(const std::string& id, const std::string& secret);

// What a client needs of an authorization server, found from a protected
// resource: its metadata (RFC 9728) names the server, whose own metadata
// (RFC 8414, then OpenID Connect discovery) names the endpoints.
struct ServerMetadata {
    std::string issuer;
    std::string resource;                      // as the resource's metadata names it
    std::vector<std::string> resource_scopes;  // its scopes_supported (RFC 9728), if it was read
    std::string authorization_endpoint;
    std::string token_endpoint;
    std::vector<std::string> code_challenge_methods;  // code_challenge_methods_supported
    bool iss_parameter = false;  // RFC 9207 authorization_response_iss_parameter_supported
};

struct Discovery {
    std::string resource;  // the protected resource's URL
    std::string issuer;    // "": the first of its authorization_servers
    SSL_CTX* resource_tls = nullptr;
    SSL_CTX* tls = nullptr;
    std::chrono::milliseconds timeout{10'000};
};

// Errc::discovery_failed with the URL and what was wrong.
void discover(const boost::asio::any_io_executor& executor, Discovery what,
              std::function<void(Result<ServerMetadata>)> done);

// A token endpoint's answer (RFC 6749 section 5.1).
struct TokenResponse {
    std::string access_token;
    std::string refresh_token;  // "" when none was issued
    std::string scope;
    std::chrono::seconds expires_in{3600};  // RECOMMENDED in the answer; 1 h when absent
};

struct TokenClient {
    std::string id;
    std::string secret;  // "": a public client (its id in the form, RFC 6749 section 2.3.1)
};

// One POST to a token endpoint with `form` (grant_type first) and the
// client's authentication. Errc::grant_refused with the server's error and
// description (section 5.2), discovery_failed when it cannot be reached,
// invalid_token for an answer without a bearer access_token.
void request_token(const boost::asio::any_io_executor& executor, const std::string& endpoint,
                   SSL_CTX* tls, std::chrono::milliseconds timeout, const TokenClient& client,
                   const std::vector<std::pair<std::string, std::string>>& form,
                   std::function<void(Result<TokenResponse>)> done);

// A resource's metadata document (RFC 9728) read from `url`: it names at
// least one authorization server, and `resource` as its resource.
// Errc::discovery_failed otherwise.
[[nodiscard]] Result<ResourceMetadata> parse_resource_metadata(const std::string& body,
                                                               const std::string& url,
                                                               const std::string& resource);

// The string elements of an array member of a JSON object (none if absent).
[[nodiscard]] std::vector<std::string> string_array(const boost::json::value& doc,
                                                    const char* name);

// A string member of a JSON object, if there is one.
[[nodiscard]] std::optional<std::string> string_field(const boost::json::value& doc,
                                                      const char* name);

}  // namespace pqmcp::oauth::detail
