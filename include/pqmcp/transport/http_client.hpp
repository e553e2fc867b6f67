// The MCP Streamable HTTP transport, client side: what `pqmcp connect` speaks
// to the gateway, and what the gateway speaks to an HTTP upstream.
//
// Each message is POSTed on a pooled keep-alive connection (plain HTTP or TLS
// with the caller's context: pinning and the PQ profile come with it); JSON
// and SSE responses are both read; the GET stream for server-initiated
// messages is opened after `notifications/initialized` and reopened with
// Last-Event-ID when it drops; a POST stream cut before its response arrived
// is resumed the same way; a session the server forgot (404) is initialized
// again with the client's own initialize request and the message resent.
// Everything runs on the executor given at construction.
#pragma once

#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <openssl/ssl.h>
#include <boost/asio/any_io_executor.hpp>
#include <boost/json/object.hpp>

#include "pqmcp/core/error.hpp"
#include "pqmcp/mcp/jsonrpc.hpp"
#include "pqmcp/tls/handshake_info.hpp"
#include "pqmcp/transport/errors.hpp"
#include "pqmcp/transport/http_util.hpp"

namespace pqmcp::transport {

struct HttpClientOptions {
    Url url;
    // Required for https: a client context (tls::make_client_context); shared,
    // must outlive the client. Ignored for http.
    SSL_CTX* tls = nullptr;
    std::string server_name;  // SNI; empty: the URL's host when it is a name
    std::chrono::milliseconds connect_timeout{10'000};  // TCP connect and TLS handshake
    // Silence on a response (no byte, not even an SSE comment) before the
    // request fails with a timeout.
    std::chrono::milliseconds response_timeout{120'000};
    std::chrono::milliseconds write_timeout{30'000};
    std::size_t max_connections = 16;  // concurrent requests beyond wait for one
    // A request waiting for one of those connections fails after this.
    std::chrono::milliseconds pool_wait{10'000};
    // The whole of one request's exchange (however much the server keeps the
    // stream alive with SSE comments or progress): it fails after this.
    std::chrono::milliseconds request_deadline{30 * 60'000};
    mcp::Limits message_limits{};
    std::vector<std::pair<std::string, std::string>> headers;  // added to every request
    // The Authorization header of each request, asked for each time (an
    // OAuth token that is refreshed); "" or unset: none. Thread-safe.
    std::function<std::string()> authorization;
    bool listen = true;               // open the GET stream after initialization
    bool reinitialize = true;         // on 404, start a new session and resend
    std::size_t resume_attempts = 3;  // GET Last-Event-ID retries for a cut POST stream
    std::chrono::milliseconds reconnect_max{30'000};  // GET stream back-off ceiling
    // Which revision to speak. sessions: initialize and a session (2025-11-25
    // and before). stateless: 2026-07-28 (server/discover instead of
    // initialize, every request with its version, capabilities and headers;
    // an input_required result is turned into requests of the server's,
    // answered by the caller, and the request retried with the answers).
    // discover: stateless if server/discover offers 2026-07-28, else sessions.
    enum class Revision { sessions, stateless, discover };
    Revision revision = Revision::sessions;
    // pqmcp connect: a message that already carries the 2026-07-28 envelope
    // (its caller speaks that revision) is posted as it is, with the headers
    // its body calls for and no session, whatever `revision` says.
    bool pass_stateless = false;
};

struct HttpClientCallbacks {
    // Every message the server sends (responses, its requests, notifications).
    std::function<void(mcp::Message)> on_message;
    // `message` could not be delivered, or its request got no response: the
    // error says why (connect_failed with the TLS reason, timeout, http_status
    // with the status and the server's text, session_expired, ...). When the
    // server answered with a JSON-RPC error body, `server_error` holds it.
    std::function<void(const boost::json::object& message, const Error& error,
                       const boost::json::object* server_error)>
        on_failure;
    // After every TLS handshake (first connection and reconnections).
    std::function<void(const tls::HandshakeInfo& info)> on_connected;
};

class McpHttpClient final {
  public:
    McpHttpClient(const boost::asio::any_io_executor& executor, HttpClientOptions options,
                  HttpClientCallbacks callbacks);
    // Callbacks stop; open connections are closed (no DELETE: use close()).
    ~McpHttpClient();
    McpHttpClient(const McpHttpClient&) = delete;
    McpHttpClient& operator=(const McpHttpClient&) = delete;
    McpHttpClient(McpHttpClient&&) = delete;
    McpHttpClient& operator=(McpHttpClient&&) = delete;

    // Sends one message (a request, notification or response) to the server.
    // notifications/cancelled also gives up on the request it names (cancel()).
    // `param_headers`: Mcp-Param-{Name} headers a 2026-07-28 client sent with
    // the request; to a 2026-07-28 server those the tool's marks do not name
    // are passed on as they came (the marked ones are the client's own, from
    // the arguments).
    void send(boost::json::object message,
              std::vector<std::pair<std::string, std::string>> param_headers = {});
    // Gives up on the request with this id: its exchange is aborted and its
    // connection closed (freed for others); no failure is reported for it.
    void cancel(const boost::json::value& id);
    // Ends the session (DELETE, bounded by the write timeout) and stops the GET
    // stream; `done` runs when finished. Pending requests fail with `closed`.
    void close(std::function<void()> done = {});

    // Requests sent and not yet answered or failed (held ones included).
    [[nodiscard]] std::size_t pending_requests() const;

    [[nodiscard]] const std::string& session_id() const noexcept;
    [[nodiscard]] const std::string& protocol_version() const noexcept;

    struct Impl;

  private:
    std::shared_ptr<Impl> impl_;
};

}  // namespace pqmcp::transport
