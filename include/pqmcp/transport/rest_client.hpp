// A plain HTTP/1.1 client for REST APIs (the gateway's OpenAPI upstreams):
// keep-alive connections in a bounded pool, plain or TLS (the caller's
// context: tls::make_web_client_context, with the host name verified against
// the certificate), a deadline for each exchange, and limits on the response.
// Redirects are never followed: a 3xx is an answer like any other. Nothing of
// the caller's own clients reaches the API: every header is the caller's choice.
// Everything runs on the executor given at construction.
#pragma once

#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <openssl/ssl.h>
#include <boost/asio/any_io_executor.hpp>

#include "pqmcp/core/error.hpp"
#include "pqmcp/tls/handshake_info.hpp"
#include "pqmcp/transport/errors.hpp"
#include "pqmcp/transport/http_util.hpp"

namespace pqmcp::transport {

struct RestClientOptions {
    Url base;                 // scheme, host and port; its path is the caller's to prefix
    SSL_CTX* tls = nullptr;   // required for https; shared, must outlive the client
    std::string server_name;  // SNI and the certificate's name; empty: the URL's host
    std::chrono::milliseconds connect_timeout{10'000};  // TCP connect and TLS handshake
    std::chrono::milliseconds request_timeout{30'000};  // one whole exchange, connect included
    std::size_t max_response_bytes = 8U << 20U;         // the body; beyond, `truncated`
    std::size_t max_header_bytes = 64U << 10U;
    std::size_t max_connections = 8;              // in use at once; more requests wait
    std::chrono::milliseconds pool_wait{10'000};  // for a connection to become free
};

struct RestRequest {
    std::string method;  // GET, POST, ...
    std::string target;  // path and query: "/v1/pets?limit=2"
    std::vector<std::pair<std::string, std::string>> headers;
    std::string body;
    std::string content_type;  // of the body ("" without one)
};

struct RestResponse {
    unsigned status = 0;
    std::string reason;
    std::string content_type;
    std::string location;  // of a redirect (not followed)
    std::string body;
    bool truncated = false;                 // over max_response_bytes: the body is empty
    std::optional<tls::HandshakeInfo> tls;  // of the connection (https)
    bool reused = false;                    // on a kept-alive connection
};

class RestClient final {
  public:
    using Done = std::function<void(Result<RestResponse>)>;
    RestClient(const boost::asio::any_io_executor& executor, RestClientOptions options);
    ~RestClient();  // requests under way end without their callbacks
    RestClient(const RestClient&) = delete;
    RestClient& operator=(const RestClient&) = delete;
    RestClient(RestClient&&) = delete;
    RestClient& operator=(RestClient&&) = delete;

    // Sends `request`; `done` runs once, on the executor, never from inside
    // send(). Errors: connect_failed (with the TLS reason), timeout, closed,
    // too_large (headers over the limit), http_status (not HTTP).
    void send(RestRequest request, Done done);

    struct Impl;

  private:
    std::shared_ptr<Impl> impl_;
};

}  // namespace pqmcp::transport
