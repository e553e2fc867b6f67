// Internal: the Streamable HTTP client's state, shared by its files: the
// connection pool and one exchange (http_client.cpp) and the MCP session over
// it: posts, SSE, resumption, the GET stream (http_client_session.cpp).
#pragma once

#include <spdlog/spdlog.h>
#include <boost/asio/ip/address.hpp>
#include <boost/json/parse.hpp>
#include <deque>
#include <map>
#include <optional>
#include <set>
#include "beast.hpp"
#include "pqmcp/core/descriptor.hpp"
#include "pqmcp/mcp/protocol.hpp"
#include "pqmcp/tls/context.hpp"
#include "pqmcp/transport/http_client.hpp"
#include "pqmcp/transport/param_headers.hpp"
#include "pqmcp/transport/sse.hpp"

namespace pqmcp::transport {

using namespace detail;  // NOLINT(google-build-using-namespace): this component's own helpers
namespace json = boost::json;

constexpr std::string_view k_session_header = "Mcp-Session-Id";
constexpr std::string_view k_version_header = "MCP-Protocol-Version";
constexpr std::size_t k_error_body_limit = 64U << 10U;

struct Connection {
    std::unique_ptr<beast::tcp_stream> plain;
    std::unique_ptr<TlsStream> tls;
    beast::flat_buffer buffer;
    bool reused = false;

    beast::tcp_stream& lowest() { return tls ? beast::get_lowest_layer(*tls) : *plain; }
    void close() {
        boost::system::error_code ignored;
        lowest().socket().shutdown(tcp::socket::shutdown_both, ignored);
        lowest().socket().close(ignored);
    }
};

inline bool is_ip_address(const std::string& host) {
    boost::system::error_code ec;
    (void)asio::ip::make_address(host, ec);
    return !ec;
}

inline const json::value* member(const json::object& o, std::string_view key) {
    return o.if_contains(key);
}

inline bool is_request(const json::object& m) {
    return m.contains("method") && m.contains("id");
}

// Whether a message carries the 2026-07-28 envelope (params._meta's version).
inline bool carries_stateless_envelope(const json::object& m) {
    return mcp::envelope_version(m) == mcp::k_stateless_version;
}

inline std::string method_of(const json::object& m) {
    const auto* v = member(m, "method");
    return v != nullptr && v->is_string() ? std::string(v->get_string()) : std::string{};
}

// TLS 1.3: a server that refuses the client's certificate says so after the
// handshake, with an alert the client meets on its first read or write.
inline std::optional<Error> refusal(Connection& conn) {
    if (!conn.tls) {
        return std::nullopt;
    }
    const auto alerts = tls::last_alerts(conn.tls->native_handle());
    // close_notify is a server ending the connection (an idle keep-alive one,
    // say), not refusing it: the caller may try again on a new one.
    if (alerts.received.empty() || alerts.received == "close notify") {
        return std::nullopt;
    }
    std::string detail = "the server refused the connection (TLS alert: " + alerts.received + ")";
    if (alerts.received.find("certificate") != std::string::npos ||
        alerts.received == "unknown CA" || alerts.received == "access denied") {
        detail +=
            "; it does not accept this client's identity (is it in the server's known_peers?)";
    }
    return Error{make_error_code(Errc::connect_failed), std::move(detail)};
}

// What one HTTP exchange produced.
struct Exchange {
    unsigned status = 0;
    bool response_seen = false;  // the request's own response arrived
    bool keep_alive = false;
    std::string last_event_id;  // of an SSE stream that ended without the response
    std::string session_header;
    std::string error_body;  // non-2xx: the body (bounded)
    std::uint64_t retry_ms = 0;
};

inline std::string describe_status(unsigned status, std::string_view reason,
                                   std::string_view body) {
    std::string text = "HTTP " + std::to_string(status);
    if (!reason.empty()) {
        text += " " + std::string(reason);
    }
    // Prefer the JSON-RPC error message of the body.
    boost::system::error_code ec;
    const json::value v = json::parse(body, ec);
    if (!ec && v.is_object()) {
        if (const auto* e = v.as_object().if_contains("error"); e != nullptr && e->is_object()) {
            if (const auto* m = e->as_object().if_contains("message");
                m != nullptr && m->is_string()) {
                return text + ": " + std::string(m->get_string());
            }
        }
    }
    std::string excerpt(body.substr(0, 300));
    while (!excerpt.empty() && (excerpt.back() == '\n' || excerpt.back() == '\r')) {
        excerpt.pop_back();
    }
    return excerpt.empty() ? text : text + ": " + excerpt;
}

struct McpHttpClient::Impl : std::enable_shared_from_this<McpHttpClient::Impl> {
    Impl(const asio::any_io_executor& executor, HttpClientOptions opts, HttpClientCallbacks cbs)
        : ex(executor),
          options(std::move(opts)),
          callbacks(std::move(cbs)),
          resolver(executor),
          listen_signal(executor),
          listen_wait(executor) {
        if (options.url.tls && options.tls != nullptr) {
            SSL_CTX_up_ref(options.tls);
            ssl.emplace(options.tls);
        }
        if (options.server_name.empty() && !is_ip_address(options.url.host)) {
            options.server_name = options.url.host;
        }
    }

    asio::any_io_executor ex;
    HttpClientOptions options;
    HttpClientCallbacks callbacks;  // cleared when the owner goes
    std::optional<asio::ssl::context> ssl;
    // The latest resumable TLS session: new connections resume it (an
    // abbreviated handshake, still with a fresh ML-KEM key exchange).
    std::unique_ptr<SSL_SESSION, decltype(&SSL_SESSION_free)> resumable{nullptr, SSL_SESSION_free};
    tcp::resolver resolver;
    std::vector<std::unique_ptr<Connection>> idle;
    std::size_t busy = 0;
    // Requests waiting for a connection slot, first come first served; each
    // waits on a timer of its own that release() cancels.
    std::deque<asio::steady_timer*> slot_waiters;
    void wake_one_waiter() {
        if (!slot_waiters.empty()) {
            slot_waiters.front()->cancel();
            slot_waiters.pop_front();
        }
    }
    std::set<Connection*> open;  // every live connection, for close()
    // Requests whose exchange is under way, by id (JSON text): the
    // connection carrying them, for cancel() and the overall deadline.
    std::map<std::string, Connection*> active;
    std::set<std::string> cancelled;  // given up by the caller: no failure reported
    std::set<std::string> posted;     // requests between send() and their end

    std::string session_id;
    std::string version;
    std::optional<json::object> init_request;  // the client's initialize, for re-initialization
    bool closed = false;

    // Internal requests (re-initialization) whose responses are ours.
    std::uint64_t internal_counter = 0;
    std::set<std::string> internal_ids;
    bool reinitializing = false;
    // Messages wait while the session is being (re-)initialized, so that none
    // overtakes notifications/initialized on another connection.
    bool holding = false;
    std::vector<json::object> held;

    // 2026-07-28 (options.revision): whether this client speaks it (decided
    // at the caller's initialize), and the server/discover answer.
    bool stateless = false;
    std::string discover_id;
    std::optional<json::object> discovered;
    // Requests posted in stateless mode, for a retry after input_required.
    std::map<std::string, json::object> stateless_sent;
    struct Round {
        json::object request;                     // to retry, with the answers
        json::value state;                        // requestState, echoed
        std::map<std::string, std::string> keys;  // our question id -> the server's key
        json::object answers;
    };
    std::map<std::string, Round> rounds;           // by the request's id text
    std::map<std::string, std::string> questions;  // question id -> the request's id text
    // Tools whose inputSchema marks properties with x-mcp-header (from the
    // tools/list results seen), so that tools/call carries Mcp-Param-{Name}
    // as the specification asks.
    std::map<std::string, std::vector<ParamHeader>> param_headers;
    // What a stateless request carries until its final answer, failure or
    // cancellation: the Mcp-Param-* headers of the gateway's client (a retry
    // after input_required sends them again), and its input_required rounds.
    struct StatelessRequest {
        ParamHeaderValues forward;
        unsigned rounds = 0;
    };
    std::map<std::string, StatelessRequest> stateless_requests;  // by the request's id text
    static constexpr std::size_t k_max_stateless_requests = 4'096;
    static constexpr unsigned k_max_input_rounds = 32;  // per request
    static constexpr std::size_t k_max_rounds = 256;    // waiting for answers at once
    // Drops what is kept for the request with this id text (its round, its
    // questions, its headers).
    void forget_request(const std::string& key);
    // A retry after input_required goes out once the post it retries has
    // ended (it reuses the request's id, and the post's bookkeeping with it).
    std::map<std::string, json::object> retries;
    void send_retry(const std::string& key, json::object retry);
    // Learns the marks of a tools/list result, and takes out the tools whose
    // marks are invalid.
    void learn_param_headers(json::object& result);
    void add_param_headers(http::request<http::string_body>& req,
                           const json::object& message) const;
    // Those of the request's forwarded headers that the tool's marks do not name.
    void add_forwarded(http::request<http::string_body>& req, const json::object& message,
                       const std::string& key) const;
    // Adds the revision's _meta envelope and headers to a stateless message.
    void stateless_envelope(json::object& message) const;
    static void stateless_headers(http::request<http::string_body>& req,
                                  const json::object& message);
    // An input_required result: its questions go to the caller as requests.
    bool stateless_input_required(const mcp::Message& m);
    // A caller's answer to one of those questions (false: not one of them).
    bool stateless_answer(const json::object& message);

    // The GET stream.
    bool listening = false;
    bool listen_opened = false;  // the current GET got its response header (or failed)
    Signal listen_signal;
    std::uint64_t listen_generation = 0;
    std::string listen_cursor;
    Connection* listener = nullptr;
    asio::steady_timer listen_wait;

    void deliver(json::value&& value, const json::value* request_id, Exchange& exchange);
    void fail(const json::object& message, const Error& error, const json::object* server_error) {
        if (const auto* id = member(message, "id"); id != nullptr) {
            forget_request(mcp::id_text(*id));
        }
        if (callbacks.on_failure && !is_internal(message)) {
            callbacks.on_failure(message, error, server_error);
        }
    }
    bool is_internal(const json::object& message) const {
        const auto* id = member(message, "id");
        return id != nullptr && id->is_string() &&
               internal_ids.contains(std::string(id->get_string()));
    }

    asio::awaitable<Result<std::unique_ptr<Connection>>> connect();
    asio::awaitable<Result<std::unique_ptr<Connection>>> acquire();
    void release(std::unique_ptr<Connection> conn, bool reusable);

    template <typename Stream>
    asio::awaitable<Result<Exchange>> exchange(Stream& stream, Connection& conn,
                                               http::request<http::string_body>& req,
                                               const json::value* request_id, bool sse_only);
    asio::awaitable<Result<Exchange>> round_trip(Connection& conn,
                                                 http::request<http::string_body>& req,
                                                 const json::value* request_id, bool sse_only) {
        if (conn.tls) {
            co_return co_await exchange(*conn.tls, conn, req, request_id, sse_only);
        }
        co_return co_await exchange(*conn.plain, conn, req, request_id, sse_only);
    }

    http::request<http::string_body> make_request(http::verb verb, std::string body) const;
    asio::awaitable<void> post(json::object message, bool bypass = false);
    void release_hold() {
        holding = false;
        auto waiting = std::move(held);
        held.clear();
        for (auto& m : waiting) {
            asio::co_spawn(ex, post(std::move(m)), asio::detached);
        }
    }
    asio::awaitable<bool> resume(const json::object& message, std::string cursor);
    asio::awaitable<void> reinitialize();
    asio::awaitable<void> listen(std::uint64_t generation);
    // 2026-07-28: what a subscriptions/listen asks for (the list changes the
    // server's discovered capabilities offer), and its request.
    [[nodiscard]] json::object listen_filter() const;
    std::set<std::string> listen_uris;  // resources subscribed to (resourceSubscriptions)
    std::string listen_id;              // the open subscriptions/listen request's (internal)
    // resources/subscribe or unsubscribe of a 2026-07-28 server: the set
    // changes, the listen stream is reopened with it, and the request answered.
    void resubscribe(const json::object& message);
    http::request<http::string_body> listen_request();
    asio::awaitable<void> terminate(std::function<void()> done);
    void start_listening() {
        if (!options.listen || listening || closed || (session_id.empty() && !stateless) ||
            (stateless && listen_filter().empty())) {
            return;
        }
        listening = true;
        listen_opened = false;
        asio::co_spawn(ex, listen(++listen_generation), asio::detached);
    }
    // Opens the GET stream and waits (briefly) until the server has answered
    // it, so that what the server sends on `notifications/initialized` has a
    // stream to go to.
    asio::awaitable<void> open_listener() {
        if (!options.listen || session_id.empty()) {
            co_return;
        }
        start_listening();
        const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds{2'000};
        while (!listen_opened && listening && !closed &&
               std::chrono::steady_clock::now() < deadline) {
            (void)co_await listen_signal.wait(std::chrono::milliseconds{100});
        }
    }
    // Closes every connection: busy ones fail their pending operation (their
    // owners free them), idle ones are freed here.
    void close_all() {
        for (Connection* c : open) {
            c->close();
        }
        for (const auto& c : idle) {
            open.erase(c.get());
        }
        idle.clear();
        listen_wait.cancel();
        while (!slot_waiters.empty()) {
            wake_one_waiter();
        }
    }
};

inline http::request<http::string_body> McpHttpClient::Impl::make_request(http::verb verb,
                                                                          std::string body) const {
    http::request<http::string_body> req{verb, options.url.target, 11};
    req.set(http::field::host, options.url.authority());
    req.set(http::field::user_agent, "pqmcp");
    if (verb == http::verb::get) {
        req.set(http::field::accept, "text/event-stream");
    } else {
        req.set(http::field::accept, "application/json, text/event-stream");
    }
    if (verb == http::verb::post) {
        req.set(http::field::content_type, "application/json");
    }
    if (!session_id.empty()) {
        req.set(beast::string_view(k_session_header.data(), k_session_header.size()), session_id);
    }
    if (!version.empty()) {
        req.set(beast::string_view(k_version_header.data(), k_version_header.size()), version);
    }
    for (const auto& [name, value] : options.headers) {
        req.set(name, value);
    }
    if (options.authorization) {
        if (std::string value = options.authorization(); !value.empty()) {
            req.set(http::field::authorization, value);
        }
    }
    req.keep_alive(true);
    req.body() = std::move(body);
    req.prepare_payload();
    return req;
}

}  // namespace pqmcp::transport
