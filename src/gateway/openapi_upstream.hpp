// Internal: an upstream made from an OpenAPI description (docs/openapi.md).
// OpenApiService holds what every session of it shares: the catalog of tools
// (read at start and again on SIGHUP; swapped whole, so a call uses the
// catalog it started with), the API's address and credentials, and one REST
// client per gateway thread. open_openapi() makes the in-process MCP server
// a session talks to: initialize, tools/list, tools/call (the HTTP request
// to the API, its answer as the result), ping.
#pragma once

#include <atomic>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include <boost/asio/io_context.hpp>

#include "pqmcp/crypto/ossl.hpp"
#include "pqmcp/crypto/secret.hpp"
#include "pqmcp/gateway/config.hpp"
#include "pqmcp/openapi/openapi.hpp"
#include "pqmcp/transport/rest_client.hpp"
#include "upstream.hpp"

namespace pqmcp::gateway {

class OpenApiService final {
  public:
    // Reads the spec and the credentials, makes the TLS context for an https
    // API. Errors: invalid_config (the spec, the base URL, the secret),
    // startup_failed (TLS).
    [[nodiscard]] static Result<std::shared_ptr<OpenApiService>> create(
        const UpstreamConfig& upstream, const GatewayConfig& config);

    // Reads the spec again; on an error the catalog in use stays (and the
    // error is returned).
    Status reload();

    [[nodiscard]] std::shared_ptr<const openapi::Catalog> catalog() const {
        return catalog_.load(std::memory_order_acquire);
    }
    [[nodiscard]] const std::string& name() const noexcept { return upstream_.name; }
    [[nodiscard]] const std::string& base_url() const noexcept { return base_url_; }
    // The API's path prefix ("" or "/v2"), to put before an operation's path.
    [[nodiscard]] const std::string& base_path() const noexcept { return base_path_; }
    // This thread's client to the API.
    [[nodiscard]] transport::RestClient& client(boost::asio::io_context& io);
    // The request as sent: the credentials added (never before this point).
    void authorize(transport::RestRequest& request) const;

  private:
    OpenApiService(UpstreamConfig upstream, openapi::Options options)
        : upstream_(std::move(upstream)), options_(std::move(options)) {}
    [[nodiscard]] Result<openapi::Catalog> read() const;

    UpstreamConfig upstream_;
    openapi::Options options_;
    std::string base_url_;
    std::string base_path_;
    transport::Url base_;
    crypto::SslCtxPtr tls_;
    std::vector<crypto::SecretBytes> secrets_;  // by credential: the key, token or password
    std::atomic<std::shared_ptr<const openapi::Catalog>> catalog_;
    std::mutex mutex_;
    std::map<boost::asio::io_context*, std::unique_ptr<transport::RestClient>> clients_;
};

[[nodiscard]] std::unique_ptr<Channel> open_openapi(boost::asio::io_context& io,
                                                    std::shared_ptr<OpenApiService> service,
                                                    ChannelEvents events);

}  // namespace pqmcp::gateway
