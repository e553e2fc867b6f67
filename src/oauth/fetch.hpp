// HTTP for the oauth component: metadata, keys and tokens, over the
// transport's RestClient, with the rules both sides share.
#pragma once

#include <chrono>
#include <functional>
#include <string>
#include <vector>

#include <openssl/ssl.h>
#include <boost/asio/any_io_executor.hpp>

#include "pqmcp/core/error.hpp"
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

}  // namespace pqmcp::oauth::detail
