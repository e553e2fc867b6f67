#include "pqmcp/transport/http_client.hpp"

#include <deque>
#include <map>
#include <optional>
#include <set>

#include <spdlog/spdlog.h>
#include <boost/asio/ip/address.hpp>
#include <boost/json/parse.hpp>

#include "beast.hpp"
#include "pqmcp/core/descriptor.hpp"
#include "pqmcp/mcp/protocol.hpp"
#include "pqmcp/tls/context.hpp"
#include "pqmcp/transport/sse.hpp"

namespace pqmcp::transport {

using namespace detail;  // NOLINT(google-build-using-namespace): this file's own helpers
namespace json = boost::json;

namespace {

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

bool is_ip_address(const std::string& host) {
    boost::system::error_code ec;
    (void)asio::ip::make_address(host, ec);
    return !ec;
}

const json::value* member(const json::object& o, std::string_view key) {
    return o.if_contains(key);
}

bool is_request(const json::object& m) {
    return m.contains("method") && m.contains("id");
}

std::string method_of(const json::object& m) {
    const auto* v = member(m, "method");
    return v != nullptr && v->is_string() ? std::string(v->get_string()) : std::string{};
}

// TLS 1.3: a server that refuses the client's certificate says so after the
// handshake, with an alert the client meets on its first read or write.
std::optional<Error> refusal(Connection& conn) {
    if (!conn.tls) {
        return std::nullopt;
    }
    const auto alerts = tls::last_alerts(conn.tls->native_handle());
    if (alerts.received.empty()) {
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

std::string describe_status(unsigned status, std::string_view reason, std::string_view body) {
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

}  // namespace

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
    asio::awaitable<void> terminate(std::function<void()> done);
    void start_listening() {
        if (!options.listen || listening || closed || session_id.empty()) {
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

http::request<http::string_body> McpHttpClient::Impl::make_request(http::verb verb,
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
    req.keep_alive(true);
    req.body() = std::move(body);
    req.prepare_payload();
    return req;
}

asio::awaitable<Result<std::unique_ptr<Connection>>> McpHttpClient::Impl::connect() {
    const auto self = shared_from_this();
    const std::string where = options.url.authority();
    auto [rec, endpoints] =
        co_await resolver.async_resolve(options.url.host, std::to_string(options.url.port), use);
    if (rec) {
        co_return pqmcp::fail(Errc::connect_failed, where + ": cannot resolve: " + rec.message());
    }
    auto conn = std::make_unique<Connection>();
    beast::tcp_stream tcp_stream(ex);
    tcp_stream.expires_after(options.connect_timeout);
    auto [cec, endpoint] = co_await tcp_stream.async_connect(endpoints, use);
    if (cec) {
        co_return pqmcp::fail(Errc::connect_failed,
                              where + ": " +
                                  (cec == beast::error::timeout
                                       ? "no TCP connection within " +
                                             std::to_string(options.connect_timeout.count()) + " ms"
                                       : cec.message()));
    }
    keep_from_children(tcp_stream.socket().native_handle());
    boost::system::error_code ignored;
    tcp_stream.socket().set_option(tcp::no_delay(true), ignored);
    if (!options.url.tls) {
        conn->plain = std::make_unique<beast::tcp_stream>(std::move(tcp_stream));
        co_return conn;
    }
    if (!ssl) {
        co_return pqmcp::fail(Errc::connect_failed, where + ": https needs a TLS context");
    }
    conn->tls = std::make_unique<TlsStream>(std::move(tcp_stream), *ssl);
    SSL* native = conn->tls->native_handle();
    if (resumable) {
        (void)SSL_set_session(native, resumable.get());
    }
    if (!options.server_name.empty()) {
        // SSL_set_tlsext_host_name, spelled out: the macro uses a C cast.
        (void)SSL_ctrl(native, SSL_CTRL_SET_TLSEXT_HOSTNAME, TLSEXT_NAMETYPE_host_name,
                       const_cast<char*>(options.server_name.c_str()));
    }
    beast::get_lowest_layer(*conn->tls).expires_after(options.connect_timeout);
    auto [hec] = co_await conn->tls->async_handshake(asio::ssl::stream_base::client, use);
    if (hec) {
        std::string detail;
        if (std::string reason = tls::verification_failure(native); !reason.empty()) {
            detail = "the server's identity is refused: " + reason;
        } else if (hec == beast::error::timeout) {
            detail = "no TLS handshake within " + std::to_string(options.connect_timeout.count()) +
                     " ms";
        } else {
            detail = "TLS handshake failed: " + hec.message();
            const auto alerts = tls::last_alerts(native);
            if (!alerts.received.empty()) {
                detail += "; alert received: " + alerts.received;
            }
            if (!alerts.sent.empty()) {
                detail += "; alert sent: " + alerts.sent;
            }
            if (alerts.received == "handshake failure" || alerts.sent == "handshake failure" ||
                hec.message().find("no suitable") != std::string::npos) {
                const auto* p = tls::context_profile(options.tls);
                detail +=
                    " (the server shares no key exchange group or signature algorithm "
                    "with profile " +
                    std::string(p != nullptr ? p->name : "?") +
                    "; a classical-only server is refused)";
            }
        }
        co_return pqmcp::fail(Errc::connect_failed, where + ": " + detail);
    }
    if (callbacks.on_connected) {
        callbacks.on_connected(tls::handshake_info(native));
    }
    co_return conn;
}

asio::awaitable<Result<std::unique_ptr<Connection>>> McpHttpClient::Impl::acquire() {
    const auto self = shared_from_this();
    const auto deadline = std::chrono::steady_clock::now() + options.pool_wait;
    while (busy >= options.max_connections && !closed) {
        const auto now = std::chrono::steady_clock::now();
        if (now >= deadline) {
            co_return pqmcp::fail(Errc::timeout, "no connection to " + options.url.authority() +
                                                     " became free within " +
                                                     std::to_string(options.pool_wait.count()) +
                                                     " ms (" + std::to_string(busy) +
                                                     " requests in flight, the limit)");
        }
        asio::steady_timer turn(ex, std::min<std::chrono::steady_clock::duration>(
                                        deadline - now, std::chrono::seconds{1}));
        slot_waiters.push_back(&turn);
        (void)co_await turn.async_wait(use);
        std::erase(slot_waiters, &turn);
    }
    if (closed) {
        co_return pqmcp::fail(Errc::closed, "the client is closed");
    }
    ++busy;
    if (!idle.empty()) {
        auto conn = std::move(idle.back());
        idle.pop_back();
        conn->reused = true;
        co_return conn;
    }
    auto conn = co_await connect();
    if (!conn) {
        --busy;
        wake_one_waiter();
    } else {
        open.insert(conn->get());
    }
    co_return conn;
}

void McpHttpClient::Impl::release(std::unique_ptr<Connection> conn, bool reusable) {
    --busy;
    wake_one_waiter();
    if (conn->tls) {
        // Tickets arrive after the handshake; by now they have been read.
        SSL_SESSION* session = SSL_get1_session(conn->tls->native_handle());
        if (session != nullptr && SSL_SESSION_is_resumable(session) == 1) {
            resumable.reset(session);
        } else if (session != nullptr) {
            SSL_SESSION_free(session);
        }
    }
    if (reusable && !closed && conn->buffer.size() == 0) {
        conn->reused = false;
        idle.push_back(std::move(conn));
        return;
    }
    open.erase(conn.get());
    conn->close();
}

void McpHttpClient::Impl::deliver(json::value&& value, const json::value* request_id,
                                  Exchange& exchange) {
    auto item = mcp::classify(std::move(value));
    if (!item) {
        spdlog::warn("{}: ignoring an invalid message from the server: {}", options.url.str(),
                     item.error().reason);
        return;
    }
    mcp::Message& m = *item;
    if (m.is_response()) {
        if (request_id != nullptr && m.id == *request_id) {
            exchange.response_seen = true;
        }
        if (m.id.is_string() && internal_ids.erase(std::string(m.id.get_string())) > 0) {
            // The answer to our own re-initialization.
            if (const auto* r = m.body.if_contains("result"); r != nullptr && r->is_object()) {
                if (const auto* v = r->as_object().if_contains("protocolVersion");
                    v != nullptr && v->is_string()) {
                    version = std::string(v->get_string());
                }
            }
            return;
        }
        if (init_request && m.id == init_request->at("id")) {
            if (const auto* r = m.body.if_contains("result"); r != nullptr && r->is_object()) {
                if (const auto* v = r->as_object().if_contains("protocolVersion");
                    v != nullptr && v->is_string()) {
                    version = std::string(v->get_string());
                }
            }
        }
    }
    if (callbacks.on_message) {
        callbacks.on_message(std::move(m));
    }
}

template <typename Stream>
asio::awaitable<Result<Exchange>> McpHttpClient::Impl::exchange(
    Stream& stream, Connection& conn, http::request<http::string_body>& req,
    const json::value* request_id, bool sse_only) {
    const auto self = shared_from_this();
    Exchange out;
    conn.lowest().expires_after(options.write_timeout);
    auto [wec, written] = co_await http::async_write(stream, req, use);
    if (wec) {
        if (auto refused = refusal(conn)) {
            co_return tl::unexpected(*refused);
        }
        co_return pqmcp::fail(Errc::io_error, "sending the request: " + wec.message());
    }
    http::response_parser<http::buffer_body> parser;
    parser.header_limit(64U << 10U);
    parser.body_limit(boost::none);
    conn.lowest().expires_after(options.response_timeout);
    auto [hec, hn] = co_await http::async_read_header(stream, conn.buffer, parser, use);
    if (hec) {
        if (auto refused = refusal(conn)) {
            co_return tl::unexpected(*refused);
        }
        co_return pqmcp::fail(
            hec == beast::error::timeout ? Errc::timeout : Errc::io_error,
            hec == beast::error::timeout
                ? "no response within " + std::to_string(options.response_timeout.count()) + " ms"
                : "reading the response: " + hec.message());
    }
    const auto& head = parser.get();
    out.status = head.result_int();
    if (sse_only) {
        listen_opened = true;
        listen_signal.notify();
    }
    out.keep_alive = head.keep_alive();
    if (const auto it =
            head.find(beast::string_view(k_session_header.data(), k_session_header.size()));
        it != head.end()) {
        out.session_header = std::string(sv(it->value()));
        // An answer to a request without a session (initialize) that opens one:
        // known before any message of the response is delivered, since the
        // client may react to the initialize result at once.
        if (out.status == 200 &&
            req.find(beast::string_view(k_session_header.data(), k_session_header.size())) ==
                req.end()) {
            session_id = out.session_header;
        }
    }
    const std::string content_type = [&] {
        const auto it = head.find(http::field::content_type);
        return it == head.end() ? std::string{} : std::string(sv(it->value()));
    }();
    const bool is_sse = content_type.rfind("text/event-stream", 0) == 0;

    // Reads the body in pieces; `sink` gets each piece and may stop (false).
    std::array<char, 16'384> chunk{};
    const auto read_body = [&](auto&& sink, bool timed) -> asio::awaitable<Status> {
        while (!parser.is_done()) {
            parser.get().body().data = chunk.data();
            parser.get().body().size = chunk.size();
            if (timed) {
                conn.lowest().expires_after(options.response_timeout);
            } else {
                conn.lowest().expires_never();
            }
            auto [ec, n] = co_await http::async_read_some(stream, conn.buffer, parser, use);
            if (ec == http::error::need_buffer) {
                ec = {};
            }
            if (ec) {
                co_return pqmcp::fail(ec == beast::error::timeout ? Errc::timeout : Errc::io_error,
                                      ec == beast::error::timeout
                                          ? "no data within " +
                                                std::to_string(options.response_timeout.count()) +
                                                " ms"
                                          : ec.message());
            }
            const std::size_t got = chunk.size() - parser.get().body().size;
            if (!sink(std::string_view(chunk.data(), got))) {
                co_return pqmcp::fail(Errc::too_large, "response over the size limit");
            }
        }
        co_return Status{};
    };

    if (out.status == 202 || out.status == 204 || head.result() == http::status::not_modified) {
        std::string ignored_body;
        (void)co_await read_body([&](std::string_view) { return true; }, true);
        co_return out;
    }
    if (out.status != 200) {
        auto st = co_await read_body(
            [&](std::string_view piece) {
                if (out.error_body.size() < k_error_body_limit) {
                    out.error_body.append(
                        piece.substr(0, k_error_body_limit - out.error_body.size()));
                }
                return true;
            },
            true);
        out.keep_alive = out.keep_alive && st.has_value();
        co_return out;
    }
    if (is_sse) {
        SseParser sse(options.message_limits.max_message_bytes + 1'024);
        std::vector<SseEvent> events;
        Status parse_status;
        auto st = co_await read_body(
            [&](std::string_view piece) {
                parse_status = sse.feed(piece, events);
                for (auto& e : events) {
                    if (e.retry) {
                        out.retry_ms = *e.retry;
                    }
                    if (e.data.empty() || (e.type != "message")) {
                        continue;  // priming events, other event types
                    }
                    auto parsed = mcp::parse(e.data, options.message_limits);
                    if (!parsed) {
                        spdlog::warn("{}: ignoring an SSE event that is not JSON-RPC: {}",
                                     options.url.str(), parsed.error().message());
                        continue;
                    }
                    for (auto& it : parsed->items) {
                        if (it) {
                            deliver(json::value(std::move(it->body)), request_id, out);
                        }
                    }
                }
                events.clear();
                return parse_status.has_value();
            },
            !sse_only);
        out.last_event_id = sse.last_event_id();
        if (!st) {
            out.keep_alive = false;
            if (!out.response_seen && request_id != nullptr && st.error().code == Errc::timeout) {
                co_return tl::unexpected(st.error());
            }
        }
        co_return out;
    }
    // application/json: one message or a batch, bounded.
    std::string body;
    const std::size_t limit = options.message_limits.max_message_bytes;
    auto st = co_await read_body(
        [&](std::string_view piece) {
            if (body.size() + piece.size() > limit) {
                return false;
            }
            body.append(piece);
            return true;
        },
        true);
    if (!st) {
        co_return tl::unexpected(st.error());
    }
    auto parsed = mcp::parse(body, options.message_limits);
    if (!parsed) {
        co_return pqmcp::fail(Errc::protocol_error,
                              "the response is not JSON-RPC: " + parsed.error().message());
    }
    for (auto& it : parsed->items) {
        if (it) {
            deliver(json::value(std::move(it->body)), request_id, out);
        }
    }
    co_return out;
}

asio::awaitable<void> McpHttpClient::Impl::post(json::object message, bool bypass) {
    const auto self = shared_from_this();
    const bool internal = is_internal(message);
    const std::string method = method_of(message);
    if (holding && !bypass && !internal) {
        held.push_back(std::move(message));
        co_return;
    }
    if (method == mcp::method::initialize && !internal) {
        // A new session from the client itself.
        init_request = message;
        session_id.clear();
        version.clear();
    }
    // Until this notification is through, later messages wait (the server may
    // act on it: server-everything registers tools then).
    struct Hold {
        Impl* impl = nullptr;
        ~Hold() {
            if (impl != nullptr) {
                try {
                    impl->release_hold();
                } catch (...) {  // NOLINT(bugprone-empty-catch): out of memory; held messages stay
                }
            }
        }
        Hold() = default;
        Hold(const Hold&) = delete;
        Hold& operator=(const Hold&) = delete;
        Hold(Hold&&) = delete;
        Hold& operator=(Hold&&) = delete;
    } hold;
    if (method == mcp::method::initialized) {
        holding = true;
        hold.impl = this;
        co_await open_listener();
    }
    const json::value* request_id = is_request(message) ? member(message, "id") : nullptr;
    const std::string key = request_id != nullptr ? mcp::id_text(*request_id) : std::string{};
    auto req = make_request(http::verb::post, mcp::serialize(message));
    // The overall deadline of a request: its connection is closed when it
    // passes, whatever keeps the stream alive.
    std::optional<asio::steady_timer> deadline;
    auto expired = std::make_shared<bool>(false);
    if (request_id != nullptr) {
        deadline.emplace(ex, options.request_deadline);
        deadline->async_wait(
            [this, key, expired, weak = weak_from_this()](const boost::system::error_code& ec) {
                const auto alive = weak.lock();
                if (ec || !alive) {
                    return;
                }
                *expired = true;
                if (const auto it = active.find(key); it != active.end()) {
                    it->second->close();
                }
            });
    }
    struct Untrack {
        Impl* impl;
        std::string key;
        ~Untrack() {
            if (!key.empty()) {
                impl->active.erase(key);
                impl->cancelled.erase(key);
                impl->posted.erase(key);
            }
        }
        Untrack(Impl* i, std::string k) : impl(i), key(std::move(k)) {
            if (!key.empty()) {
                impl->posted.insert(key);
            }
        }
        Untrack(const Untrack&) = delete;
        Untrack& operator=(const Untrack&) = delete;
        Untrack(Untrack&&) = delete;
        Untrack& operator=(Untrack&&) = delete;
    } untrack(this, key);
    const auto given_up = [this, &key, &expired, &message]() -> bool {
        if (!key.empty() && cancelled.contains(key)) {
            return true;  // the caller does not want to hear of it
        }
        if (*expired) {
            fail(message,
                 Error{make_error_code(Errc::timeout),
                       "no response within the request deadline of " +
                           std::to_string(options.request_deadline.count()) + " ms"},
                 nullptr);
            return true;
        }
        return false;
    };

    Result<Exchange> result = pqmcp::fail(Errc::closed, "not sent");
    for (int attempt = 0; attempt < 2; ++attempt) {
        auto conn = co_await acquire();
        if (!conn) {
            if (!given_up()) {
                fail(message, conn.error(), nullptr);
            }
            co_return;
        }
        if (given_up()) {
            release(std::move(*conn), true);
            co_return;
        }
        const bool reused = (*conn)->reused;
        if (!key.empty()) {
            active[key] = conn->get();
        }
        result = co_await round_trip(**conn, req, request_id, false);
        active.erase(key);
        if (given_up()) {
            release(std::move(*conn), false);
            co_return;
        }
        release(std::move(*conn), result && result->keep_alive);
        // A kept-alive connection the server closed meanwhile: once more, fresh.
        if (!result && reused && result.error().code == Errc::io_error) {
            continue;
        }
        break;
    }
    if (!result) {
        fail(message, result.error(), nullptr);
        co_return;
    }
    Exchange& ex_result = *result;
    if (method == mcp::method::initialize && ex_result.status == 200) {
        session_id = ex_result.session_header;
    }
    if (ex_result.status == 404 && !session_id.empty() && method != mcp::method::initialize) {
        if (options.reinitialize && init_request && !internal) {
            held.push_back(std::move(message));
            if (!reinitializing) {
                reinitializing = true;
                holding = true;
                asio::co_spawn(ex, reinitialize(), asio::detached);
            }
            co_return;
        }
        fail(message,
             Error{make_error_code(Errc::session_expired),
                   describe_status(404, "Not Found", ex_result.error_body)},
             nullptr);
        co_return;
    }
    if (ex_result.status != 200 && ex_result.status != 202 && ex_result.status != 204) {
        boost::system::error_code ec;
        json::value body = json::parse(ex_result.error_body, ec);
        const json::object* server_error =
            !ec && body.is_object() && body.as_object().contains("error") ? &body.as_object()
                                                                          : nullptr;
        fail(message,
             Error{make_error_code(Errc::http_status),
                   describe_status(ex_result.status, "", ex_result.error_body)},
             server_error);
        co_return;
    }
    if (request_id != nullptr && !ex_result.response_seen) {
        // The SSE stream ended before the response: resume it (GET Last-Event-ID).
        bool resumed = false;
        if (!ex_result.last_event_id.empty()) {
            resumed = co_await resume(message, ex_result.last_event_id);
        }
        if (given_up()) {
            co_return;
        }
        if (!resumed) {
            fail(message,
                 Error{make_error_code(Errc::protocol_error),
                       "the server ended the response stream without answering the request"},
                 nullptr);
        }
        co_return;
    }
}

asio::awaitable<bool> McpHttpClient::Impl::resume(const json::object& message, std::string cursor) {
    const auto self = shared_from_this();
    const json::value* request_id = member(message, "id");
    for (std::size_t attempt = 0; attempt < options.resume_attempts && !closed; ++attempt) {
        auto conn = co_await acquire();
        if (!conn) {
            continue;
        }
        auto req = make_request(http::verb::get, {});
        req.set("Last-Event-ID", cursor);
        const std::string key = request_id != nullptr ? mcp::id_text(*request_id) : std::string{};
        if (!key.empty()) {
            active[key] = conn->get();
        }
        auto result = co_await round_trip(**conn, req, request_id, false);
        active.erase(key);
        if (!key.empty() && cancelled.contains(key)) {
            release(std::move(*conn), false);
            co_return true;  // given up: nobody waits for it
        }
        release(std::move(*conn), result && result->keep_alive);
        if (result && result->response_seen) {
            co_return true;
        }
        if (result && !result->last_event_id.empty()) {
            cursor = result->last_event_id;
        }
        if (result && result->status != 200) {
            break;
        }
    }
    co_return false;
}

asio::awaitable<void> McpHttpClient::Impl::reinitialize() {
    const auto self = shared_from_this();
    spdlog::info("{}: the session expired; starting a new one", options.url.str());
    session_id.clear();
    version.clear();
    ++listen_generation;  // the old GET stream belongs to the old session
    listening = false;
    json::object init = *init_request;
    const std::string id = "pqmcp-reinit-" + std::to_string(++internal_counter);
    internal_ids.insert(id);
    init["id"] = id;
    auto req = make_request(http::verb::post, mcp::serialize(init));
    const json::value request_id(id);
    auto conn = co_await acquire();
    Result<Exchange> result =
        conn ? Result<Exchange>(pqmcp::fail(Errc::closed, "")) : tl::unexpected(conn.error());
    if (conn) {
        result = co_await round_trip(**conn, req, &request_id, false);
        release(std::move(*conn), result && result->keep_alive);
    }
    internal_ids.erase(id);
    reinitializing = false;
    if (!result || result->status != 200 || result->session_header.empty()) {
        std::vector<json::object> waiting = std::move(held);
        held.clear();
        holding = false;
        const Error error =
            !result ? result.error()
                    : Error{make_error_code(Errc::session_expired),
                            "a new session could not be started: " +
                                describe_status(result->status, "", result->error_body)};
        for (const auto& m : waiting) {
            fail(m, error, nullptr);
        }
        co_return;
    }
    session_id = result->session_header;
    // The new session needs its initialized notification before anything
    // else; post() opens the GET stream first and releases what waited.
    co_await post(mcp::make_notification(mcp::method::initialized, {}), true);
}

asio::awaitable<void> McpHttpClient::Impl::listen(std::uint64_t generation) {
    const auto self = shared_from_this();
    auto backoff = std::chrono::milliseconds{500};
    while (!closed && generation == listen_generation && !session_id.empty()) {
        auto conn = co_await connect();
        bool got_events = false;
        std::uint64_t retry = 0;
        if (!conn) {
            listen_opened = true;  // nobody should wait for it
            listen_signal.notify();
        }
        if (conn) {
            open.insert(conn->get());
            listener = conn->get();
            auto req = make_request(http::verb::get, {});
            if (!listen_cursor.empty()) {
                req.set("Last-Event-ID", listen_cursor);
            }
            boost::system::error_code ignored;
            (*conn)->lowest().socket().set_option(asio::socket_base::keep_alive(true), ignored);
            auto result = co_await round_trip(**conn, req, nullptr, true);
            listener = nullptr;
            open.erase(conn->get());
            (*conn)->close();
            if (result) {
                if (!result->last_event_id.empty()) {
                    listen_cursor = result->last_event_id;
                    got_events = true;
                }
                retry = result->retry_ms;
                // "...or else return HTTP 405 Method Not Allowed, indicating that
                // the server does not offer an SSE stream at this endpoint."
                if (result->status == 405) {
                    spdlog::debug("{}: no GET stream offered", options.url.str());
                    break;
                }
                if (result->status == 404) {
                    break;  // the session is gone; a re-initialization restarts us
                }
                if (result->status == 200) {
                    got_events = true;
                }
            }
        }
        if (closed || generation != listen_generation) {
            break;
        }
        backoff = got_events ? std::chrono::milliseconds{500}
                             : std::min(backoff * 2, options.reconnect_max);
        // "The client MUST respect the retry field, waiting the given number of
        // milliseconds before attempting to reconnect."
        const auto wait = retry > 0 ? std::chrono::milliseconds{retry} : backoff;
        listen_wait.expires_after(wait);
        (void)co_await listen_wait.async_wait(use);
    }
    if (generation == listen_generation) {
        listening = false;
    }
}

asio::awaitable<void> McpHttpClient::Impl::terminate(std::function<void()> done) {
    const auto self = shared_from_this();
    if (!session_id.empty() && !closed) {
        // "Clients that no longer need a particular session ... SHOULD send an HTTP
        // DELETE to the MCP endpoint with the MCP-Session-Id header".
        auto conn = co_await acquire();
        if (conn) {
            auto req = make_request(http::verb::delete_, {});
            auto saved = options.response_timeout;
            options.response_timeout = std::min(options.response_timeout, options.write_timeout);
            auto result = co_await round_trip(**conn, req, nullptr, false);
            options.response_timeout = saved;
            release(std::move(*conn), false);
        }
    }
    closed = true;
    ++listen_generation;
    close_all();
    if (done) {
        done();
    }
}

McpHttpClient::McpHttpClient(const asio::any_io_executor& executor, HttpClientOptions options,
                             HttpClientCallbacks callbacks)
    : impl_(std::make_shared<Impl>(executor, std::move(options), std::move(callbacks))) {}

McpHttpClient::~McpHttpClient() {
    impl_->callbacks = {};
    impl_->closed = true;
    ++impl_->listen_generation;
    impl_->close_all();
}

void McpHttpClient::send(json::object message) {
    Impl& s = *impl_;
    if (s.closed) {
        s.fail(message, Error{make_error_code(Errc::closed), "the client is closed"}, nullptr);
        return;
    }
    // A request the sender cancels gets no answer ("SHOULD NOT send a
    // response"): its exchange is given up, and its connection freed.
    std::optional<json::value> cancelled;
    if (method_of(message) == mcp::method::cancelled && !message.contains("id")) {
        if (const auto* p = message.if_contains("params"); p != nullptr && p->is_object()) {
            if (const auto* rid = p->as_object().if_contains("requestId")) {
                cancelled = *rid;
            }
        }
    }
    asio::co_spawn(s.ex, s.post(std::move(message)), asio::detached);
    if (cancelled) {
        cancel(*cancelled);
    }
}

void McpHttpClient::cancel(const json::value& id) {
    Impl& s = *impl_;
    const std::string key = mcp::id_text(id);
    if (const auto it = s.active.find(key); it != s.active.end()) {
        s.cancelled.insert(key);
        it->second->close();  // its read fails; post() frees the connection
        return;
    }
    // Not yet on a connection (waiting for one, or held): it will not be reported.
    if (s.posted.contains(key)) {
        s.cancelled.insert(key);
    }
    std::erase_if(s.held, [&key](const json::object& m) {
        const auto* v = m.if_contains("id");
        return v != nullptr && mcp::id_text(*v) == key;
    });
}

void McpHttpClient::close(std::function<void()> done) {
    asio::co_spawn(impl_->ex, impl_->terminate(std::move(done)), asio::detached);
}

const std::string& McpHttpClient::session_id() const noexcept {
    return impl_->session_id;
}

const std::string& McpHttpClient::protocol_version() const noexcept {
    return impl_->version;
}

}  // namespace pqmcp::transport
