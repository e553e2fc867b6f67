// Self-talk harness: a gateway on a thread of its own, and clients in the
// test's thread speaking raw HTTPS, SSE and MCP to it over loopback.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <boost/json/object.hpp>

#include "../common/temp_dir.hpp"
#include "pqmcp/crypto/ossl.hpp"
#include "pqmcp/gateway/config.hpp"
#include "pqmcp/gateway/gateway.hpp"
#include "pqmcp/identity/identity.hpp"
#include "pqmcp/mcp/jsonrpc.hpp"
#include "pqmcp/transport/sse.hpp"

namespace pqmcp::gateway::test {

inline constexpr auto k_wait = std::chrono::seconds{20};

// The fixture MCP server (tests/fixtures/mcp_fixture.cpp), as an upstream.
UpstreamConfig fixture_upstream(const std::string& name);
UpstreamConfig demo_upstream(const std::string& name = "demo");

using TempDir = pqmcp::test::TempDir;

struct HttpReply {
    unsigned status = 0;
    std::map<std::string, std::string> headers;  // names lower-cased
    std::string body;
    std::string error;  // transport failure (then status is 0)

    [[nodiscard]] std::string header(const std::string& name) const;
    [[nodiscard]] boost::json::value json() const;
};

struct Header {
    std::string name;
    std::string value;
};

// A client identity and its TLS context pinned to the gateway.
struct Client {
    identity::Identity identity;
    crypto::SslCtxPtr context;
};

class Harness final {
  public:
    // A gateway on 127.0.0.1:0 with the given upstreams (the demo server by
    // default); `tweak` adjusts the configuration before it starts.
    explicit Harness(std::vector<UpstreamConfig> upstreams = {demo_upstream()},
                     const std::function<void(GatewayConfig&)>& tweak = {});
    ~Harness();
    Harness(const Harness&) = delete;
    Harness& operator=(const Harness&) = delete;
    Harness(Harness&&) = delete;
    Harness& operator=(Harness&&) = delete;

    [[nodiscard]] std::uint16_t port() const { return gateway_->info().port; }
    [[nodiscard]] std::string url() const { return gateway_->info().url; }
    [[nodiscard]] std::string peer_id() const { return gateway_->info().peer_id; }
    [[nodiscard]] gateway::Gateway& gateway() { return *gateway_; }
    [[nodiscard]] const std::filesystem::path& dir() const { return dir_.path(); }

    // A new client identity pinned to this gateway.
    [[nodiscard]] Client make_client() const;
    [[nodiscard]] const Client& client() const { return *client_; }

    // One request on a fresh connection (the default client unless `who`).
    HttpReply http(const std::string& method, const std::string& target,
                   const std::vector<Header>& headers, const std::string& body,
                   const Client* who = nullptr) const;
    // POST a JSON-RPC body with the usual MCP headers (+ session and version when given).
    HttpReply post(const std::string& body, const std::string& session = {},
                   const std::string& version = {}, const Client* who = nullptr) const;
    // POSTs of JSON-RPC bodies, each to its session (id, body), one after the
    // other on one kept-alive connection; their replies, in order.
    std::vector<HttpReply> posts_on_one_connection(
        const std::vector<std::pair<std::string, std::string>>& posts,
        const std::string& version = "2025-11-25") const;
    // initialize + notifications/initialized; returns the session id.
    std::string open_session(const std::string& version = "2025-11-25",
                             const Client* who = nullptr) const;

    // Stops the gateway and waits for its thread (idempotent).
    void stop();

  private:
    TempDir dir_;
    std::unique_ptr<gateway::Gateway> gateway_;
    std::thread thread_;
    std::optional<Client> client_;
};

// A streaming response read piece by piece (GET streams, SSE POST responses).
class Stream final {
  public:
    Stream(const Harness& harness, const std::string& method, const std::vector<Header>& headers,
           const std::string& body, const Client* who = nullptr);
    ~Stream();
    Stream(const Stream&) = delete;
    Stream& operator=(const Stream&) = delete;
    Stream(Stream&&) = delete;
    Stream& operator=(Stream&&) = delete;

    [[nodiscard]] unsigned status() const;
    [[nodiscard]] std::string header(const std::string& name) const;
    // Reads until `count` events with data (or the end, or the timeout).
    std::vector<transport::SseEvent> events(std::size_t count,
                                            std::chrono::milliseconds timeout = k_wait);
    [[nodiscard]] bool ended() const;
    [[nodiscard]] const std::string& last_event_id() const;
    // Drops the connection without a goodbye.
    void cut();

    struct Impl;

  private:
    std::unique_ptr<Impl> impl_;
};

// An MCP client over McpHttpClient, driven from the test thread.
class McpClient final {
  public:
    explicit McpClient(const Harness& harness, const Client* who = nullptr,
                       boost::json::object capabilities = {});
    ~McpClient();
    McpClient(const McpClient&) = delete;
    McpClient& operator=(const McpClient&) = delete;
    McpClient(McpClient&&) = delete;
    McpClient& operator=(McpClient&&) = delete;

    // initialize + initialized; returns the initialize result (or error body).
    boost::json::object initialize(const std::string& version = "2025-11-25");
    // A request; returns its response (the whole message), or an object with
    // "error" when none came in time.
    boost::json::object request(const std::string& method, boost::json::object params = {},
                                std::chrono::milliseconds timeout = k_wait);
    // `count` requests sent at once; their responses, in order of the requests.
    std::vector<boost::json::object> concurrent(std::size_t count, const std::string& method,
                                                const boost::json::object& params);
    void notify(const std::string& method, boost::json::object params = {});
    // Every non-response message received so far (notifications, requests).
    [[nodiscard]] const std::vector<boost::json::object>& received() const;
    // Waits until a received message satisfies `pred`.
    bool wait_for(const std::function<bool(const boost::json::object&)>& pred,
                  std::chrono::milliseconds timeout = k_wait);
    // Answers server requests with this (default: an empty result).
    void on_request(std::function<boost::json::object(const boost::json::object&)> answer);
    [[nodiscard]] std::string session_id() const;
    // Whether a response with this id arrived (and was not collected by request()).
    [[nodiscard]] bool has_response(std::int64_t id) const;
    void close();

    struct Impl;

  private:
    std::unique_ptr<Impl> impl_;
};

}  // namespace pqmcp::gateway::test
