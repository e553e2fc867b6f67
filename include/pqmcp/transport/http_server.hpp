// The MCP Streamable HTTP transport, server side (specification 2025-11-25,
// "Transports"), over the PQ TLS listener: POST with JSON or SSE responses,
// GET for the server-to-client stream, DELETE to end a session, session ids
// from the CSPRNG, protocol-version, Accept and Origin checks, resumable SSE
// streams with bounded replay buffers, limits and timeouts on everything.
//
// What a session does with the messages is not this layer's business: the
// owner supplies a SessionHandler per MCP session (the gateway).
//
// Threads: the server is given one io_context per thread it may use (its
// shards), each run by one thread. Connections are spread over the shards
// as they are accepted, and each does its TLS and HTTP on its shard. A
// session lives on one shard, its home (the one whose connection sent its
// initialize), and its id says which; a request for it that arrives on
// another shard's connection is answered on the home shard, so a session's
// state and its handler are only ever touched by one thread and need no lock.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <openssl/ssl.h>
#include <boost/asio/io_context.hpp>
#include <boost/json/object.hpp>

#include "pqmcp/core/error.hpp"
#include "pqmcp/mcp/jsonrpc.hpp"
#include "pqmcp/tls/handshake_info.hpp"
#include "pqmcp/transport/errors.hpp"

namespace pqmcp::transport {

// A stream within a session: where a request's response (and the messages
// related to it) go. k_standalone_stream is the GET stream.
using StreamId = std::uint64_t;
inline constexpr StreamId k_standalone_stream = 0;

// The caller an OAuth access token names (validated by the server's
// `authorize` hook; see pqmcp::oauth).
struct TokenIdentity {
    std::string issuer;
    std::string subject;    // "sub"
    std::string client_id;  // "client_id" (RFC 9068), else "azp"
    std::vector<std::string> scopes;
    // The token's other claims, for the policy (claim:NAME=VALUE): each
    // top-level string, number or boolean as NAME and its text, an array's
    // elements each as a pair of its own. Bounded (ResourceServer).
    std::vector<std::pair<std::string, std::string>> claims;
    friend bool operator==(const TokenIdentity&, const TokenIdentity&) = default;
};

// Who is on the other end of the connection a message arrived on.
struct PeerInfo {
    std::string remote;                  // "127.0.0.1:50412"
    tls::HandshakeInfo handshake;        // peer_id empty: the client sent no certificate
    std::optional<TokenIdentity> token;  // the request's access token, when one was checked
};

// The answer of HttpServerOptions::authorize for one request to the MCP path.
struct AuthDecision {
    unsigned status = 0;  // 0: allowed; else the HTTP status to answer with (401, 403, 503)
    std::vector<std::pair<std::string, std::string>> headers;  // WWW-Authenticate, ...
    std::string body;                                          // JSON
    std::optional<TokenIdentity> token;                        // allowed with this token
    // Set: not decided yet (keys to fetch). The server calls it with a
    // function to run (from any thread) once it is worth asking again, then
    // asks once more; a second `wait` is answered 503.
    std::function<void(std::function<void()>)> wait;
};

// The transport's side of one MCP session, as the handler sees it.
class ServerSession {
  public:
    ServerSession() = default;
    virtual ~ServerSession() = default;
    ServerSession(const ServerSession&) = delete;
    ServerSession& operator=(const ServerSession&) = delete;
    ServerSession(ServerSession&&) = delete;
    ServerSession& operator=(ServerSession&&) = delete;
    [[nodiscard]] virtual const std::string& id() const noexcept = 0;
    [[nodiscard]] virtual const PeerInfo& peer() const noexcept = 0;
    // The protocol version negotiated at initialize ("" before).
    [[nodiscard]] virtual const std::string& protocol_version() const noexcept = 0;
    // The session's home: its handler is called there, and must do its
    // asynchronous work (upstreams, timers) there too.
    [[nodiscard]] virtual boost::asio::io_context& context() const noexcept = 0;
    // Queues a message for the client on `stream`. A response to a request of
    // that stream counts towards finishing it. Messages for a stream that no
    // longer exists are dropped (false).
    virtual bool send(StreamId stream, boost::json::object message) = 0;
    // A request of `stream` will get no response (it was cancelled): the
    // stream no longer waits for it, and ends once nothing else is owed.
    virtual void forgo_response(StreamId stream) = 0;
    // Ends the session from the server side (the client gets 404 afterwards).
    virtual void close(std::string_view reason) = 0;
};

class SessionHandler {
  public:
    SessionHandler() = default;
    virtual ~SessionHandler() = default;
    SessionHandler(const SessionHandler&) = delete;
    SessionHandler& operator=(const SessionHandler&) = delete;
    SessionHandler(SessionHandler&&) = delete;
    SessionHandler& operator=(SessionHandler&&) = delete;
    // A message from the client. For a request, `stream` is where its response
    // belongs (send it with ServerSession::send); for notifications and
    // responses it is the stream of their POST, which needs nothing back.
    virtual void on_message(mcp::Message message, StreamId stream) = 0;
    // The session is over (DELETE, expiry, close(), shutdown); no calls follow.
    // It runs from the event loop after the session has been dropped; the
    // ServerSession it was given stays until it returns (closed: send()
    // returns false), and may be gone at any time after: keep copies of what
    // you need.
    virtual void on_closed(std::string_view reason) = 0;
};

// With several shards, max_connections and buffer_bytes are shared out
// evenly (rounded up): connections are dealt to the shards in turn, and each
// enforces its share. max_handshakes_per_address holds on each shard (a burst
// from one address queues on every shard at once; halving it would evict
// handshakes one thread would still have finished). The session limits hold
// for the whole server.
struct HttpServerLimits {
    std::size_t max_header_bytes = 16U << 10U;  // request line and headers: 431 beyond
    std::size_t max_body_bytes = 4U << 20U;     // 413 beyond
    // Connections at once. At the limit a new one takes the place of the
    // oldest that has not finished its handshake, else the oldest idle one;
    // only when every connection is at work is it refused. Beyond half of it,
    // the handshake and idle deadlines shrink (to a tenth at the limit).
    std::size_t max_connections = 1'024;
    // Connections from one address still in their TLS handshake: a new one
    // beyond it closes the oldest of them.
    std::size_t max_handshakes_per_address = 32;
    std::size_t max_sessions_per_identity = 64;  // by TLS peer id (all without one count as one)
    std::size_t max_sessions = 1'000;            // initialize beyond: 503
    std::size_t max_streams_per_session = 32;    // open SSE/POST streams: 429 beyond
    std::size_t replay_events = 256;             // per stream, kept for Last-Event-ID
    std::size_t replay_bytes = 4U << 20U;        // per stream
    // Every stream's events together (answers a client has not read yet,
    // replay buffers): beyond it, streams no client reads are dropped,
    // the largest first.
    std::size_t buffer_bytes = 256U << 20U;
};

struct HttpServerTimeouts {
    std::chrono::milliseconds handshake{10'000};
    // A whole request (headers and body) from its first byte: 408 after.
    std::chrono::milliseconds read{30'000};
    // Keep-alive: an idle connection between requests is closed after this.
    std::chrono::milliseconds idle{60'000};
    std::chrono::milliseconds write{30'000};  // each write
    // An SSE comment this often on a stream with nothing to say; a request
    // with no answer after this long switches from JSON to SSE.
    std::chrono::milliseconds keepalive{15'000};
    // A session with no request and no open stream for this long ends.
    std::chrono::milliseconds session_idle{30 * 60'000};
};

struct HttpServerOptions {
    std::string host = "127.0.0.1";  // numeric address
    std::uint16_t port = 0;          // 0: ephemeral (see on_ready)
    std::string path = "/mcp";
    HttpServerLimits limits{};
    HttpServerTimeouts timeouts{};
    mcp::Limits message_limits{};
    // Origins allowed in an Origin header ("*" for any); a request without
    // one is not from a browser and passes.
    std::vector<std::string> allowed_origins;
    // SSE `retry` advice to clients, in ms (sent with the priming event).
    std::uint64_t retry_ms = 1'000;

    // An initialize request without a session id: make the new session's
    // handler (it then receives the initialize message). An error refuses the
    // session: the client gets a JSON-RPC error with its code.
    std::function<Result<std::unique_ptr<SessionHandler>>(ServerSession&)> open_session;
    // Every handshake attempt, successful or not (logs, audit, metrics), with
    // the time from accept to its end. A client that closed the connection
    // before finishing the handshake (a browser's spare connection) fails
    // with Errc::closed; every other failure with Errc::connect_failed.
    std::function<void(const std::string& remote, const Result<tls::HandshakeInfo>&,
                       std::chrono::nanoseconds elapsed)>
        on_handshake;
    // Extra routes on the same listener (the dashboard): return a response
    // for a GET of `target`, or nullopt (404).
    struct Page {
        unsigned status = 200;
        std::string content_type;
        std::string body;
        std::vector<std::pair<std::string, std::string>> headers;  // extra response headers
    };
    struct PageRequest {
        std::string_view target;         // path and query
        std::string_view authorization;  // the Authorization header ("" if none)
        const PeerInfo& peer;
    };
    std::function<std::optional<Page>(const PageRequest&)> get_page;
    // Every request to `path`, before anything else of it is looked at: its
    // Authorization header and its connection. Unset: everyone passes. Called
    // on the connection's thread; must be thread-safe.
    std::function<AuthDecision(std::string_view authorization, const PeerInfo& peer)> authorize;
};

struct HttpServerStats {
    std::size_t connections = 0;
    std::size_t sessions = 0;
    std::size_t streams = 0;         // attached (open) streams
    std::size_t buffered_bytes = 0;  // events waiting in streams
    std::uint64_t evicted = 0;       // connections closed to make room for others
    std::uint64_t refused = 0;       // closed on arrival: the limit full of connections at work
    std::uint64_t connections_moved = 0;  // connections moved to their session's home thread
    double overload = 1.0;                // the factor deadlines are scaled by now (1: none)
};

// The listener. Construct, then start(); the listening socket is on the
// first shard.
class HttpServer final {
  public:
    // `ctx`: a server context (tls::make_server_context); shared, must outlive the server.
    HttpServer(boost::asio::io_context& io, SSL_CTX* ctx, const HttpServerOptions& options);
    // One shard per io_context (at least one, at most 256), each run by its own thread.
    HttpServer(const std::vector<boost::asio::io_context*>& shards, SSL_CTX* ctx,
               const HttpServerOptions& options);
    ~HttpServer();
    HttpServer(const HttpServer&) = delete;
    HttpServer& operator=(const HttpServer&) = delete;
    HttpServer(HttpServer&&) = delete;
    HttpServer& operator=(HttpServer&&) = delete;

    // Binds and starts accepting; returns the bound port. Errors: listen_failed.
    [[nodiscard]] Result<std::uint16_t> start();
    // Stops accepting, ends every session (handlers get on_closed) and closes
    // every connection, each shard on its own thread. Idempotent.
    void stop();
    // Callable from any thread: the shards' figures added up (overload: the
    // most loaded shard's).
    [[nodiscard]] HttpServerStats stats() const;
    // Requests being answered on another shard than their connection's now
    // (any thread): a shutdown waits for them before it stops the threads.
    [[nodiscard]] std::size_t lent() const;

    // What the listener answers to the first request in `bytes`, parsed with
    // its limits and handled as a request read from a connection would be,
    // without TLS or a socket (SSE answers give their status only). For the
    // fuzz target of the request path, tests/fuzz/fuzz_http_request.cpp.
    struct RawAnswer {
        int status = 0;          // 0: the bytes end before a whole request
        std::size_t used = 0;    // bytes that request took
        std::string session_id;  // the answer's Mcp-Session-Id, if any
    };
    [[nodiscard]] RawAnswer answer(std::string_view bytes, const PeerInfo& peer);

    struct Impl;

  private:
    std::vector<std::shared_ptr<Impl>> shards_;
};

}  // namespace pqmcp::transport
