#include "pqmcp/tls/listener.hpp"
#include "pqmcp/transport/http_server.hpp"

#include <malloc.h>
#include <sys/socket.h>

#include <charconv>
#include <deque>
#include <map>
#include <set>
#include <unordered_map>
#include <variant>

#include <spdlog/spdlog.h>
#include <boost/json/serialize.hpp>

#include "beast.hpp"
#include "pqmcp/core/bytes.hpp"
#include "pqmcp/core/descriptor.hpp"
#include "pqmcp/crypto/util.hpp"
#include "pqmcp/mcp/protocol.hpp"
#include "pqmcp/tls/context.hpp"
#include "pqmcp/transport/http_util.hpp"
#include "pqmcp/transport/sse.hpp"

namespace pqmcp::transport {

using namespace detail;  // NOLINT(google-build-using-namespace): this file's own helpers
namespace json = boost::json;
using Clock = std::chrono::steady_clock;

namespace {

constexpr std::string_view k_session_header = "Mcp-Session-Id";
constexpr std::string_view k_version_header = "MCP-Protocol-Version";
constexpr std::string_view k_last_event_header = "Last-Event-ID";
// How long a stream whose client went away is kept for Last-Event-ID.
constexpr auto k_stream_linger = std::chrono::minutes{5};

struct Event {
    std::uint64_t seq = 0;
    std::string data;  // one serialised JSON-RPC message
    bool response = false;
};

struct Stream {
    StreamId id = 0;
    bool standalone = false;
    bool batch = false;
    std::size_t pending = 0;   // responses still owed to the client
    std::deque<Event> events;  // replay buffer, ascending seq
    std::size_t bytes = 0;
    std::uint64_t next_seq = 1;
    std::uint64_t delivered = 0;  // highest seq written to some connection
    Signal* writer = nullptr;     // the attached connection, if any
    Clock::time_point detached_at = Clock::now();

    [[nodiscard]] bool finished() const noexcept { return !standalone && pending == 0; }
    [[nodiscard]] std::uint64_t last_seq() const noexcept { return next_seq - 1; }
};

std::string event_id(StreamId stream, std::uint64_t seq) {
    return std::to_string(stream) + "-" + std::to_string(seq);
}

// "<stream>-<seq>" -> (stream, seq)
std::optional<std::pair<StreamId, std::uint64_t>> parse_event_id(std::string_view text) {
    const auto dash = text.find('-');
    if (dash == std::string_view::npos) {
        return std::nullopt;
    }
    StreamId stream = 0;
    std::uint64_t seq = 0;
    const char* s_end = text.data() + dash;
    const char* q_end = text.data() + text.size();
    if (std::from_chars(text.data(), s_end, stream).ptr != s_end ||
        std::from_chars(s_end + 1, q_end, seq).ptr != q_end) {
        return std::nullopt;
    }
    return std::pair{stream, seq};
}

std::string new_session_id() {
    // "The session ID SHOULD be globally unique and cryptographically secure"
    // and "MUST only contain visible ASCII characters".
    auto bytes = crypto::random_bytes(16);
    return bytes ? to_hex(*bytes) : std::string{};
}

}  // namespace

class Session;

struct HttpServer::Impl : std::enable_shared_from_this<HttpServer::Impl> {
    Impl(asio::io_context& io_context, SSL_CTX* ctx, HttpServerOptions opts)
        : io(io_context),
          ssl(adopt(ctx)),
          options(std::move(opts)),
          origins(options.allowed_origins),
          acceptor(io_context),
          sweeper(io_context) {}

    static asio::ssl::context adopt(SSL_CTX* ctx) {
        SSL_CTX_up_ref(ctx);
        return asio::ssl::context(ctx);  // owns the extra reference
    }

    asio::io_context& io;
    asio::ssl::context ssl;
    HttpServerOptions options;
    OriginPolicy origins;
    tcp::acceptor acceptor;
    asio::steady_timer sweeper;
    std::unordered_map<std::string, std::shared_ptr<Session>> sessions;
    enum class Phase { handshake, idle, reading, busy };
    struct Conn {
        std::string address;
        Clock::time_point since = Clock::now();
        Phase phase = Phase::handshake;
        bool evicted = false;
    };
    std::map<beast::tcp_stream*, Conn> connections;
    std::map<std::string, std::size_t> handshaking;  // by address
    std::uint64_t evicted = 0;

    void set_phase(beast::tcp_stream* tcp, Phase phase) {
        const auto it = connections.find(tcp);
        if (it == connections.end() || it->second.phase == phase) {
            return;
        }
        if (it->second.phase == Phase::handshake) {
            forget_handshake(it->second.address);
        }
        it->second.phase = phase;
        it->second.since = Clock::now();
    }
    void forget_handshake(const std::string& address) {
        const auto h = handshaking.find(address);
        if (h != handshaking.end() && --h->second == 0) {
            handshaking.erase(h);
        }
    }
    // Closes the connection that has been in `phase` longest (of `address`
    // when given). False when there is none.
    bool evict_oldest(Phase phase, const std::string* address = nullptr) {
        beast::tcp_stream* victim = nullptr;
        Clock::time_point oldest = Clock::time_point::max();
        for (auto& [tcp, c] : connections) {
            if (!c.evicted && c.phase == phase && (address == nullptr || c.address == *address) &&
                c.since < oldest) {
                oldest = c.since;
                victim = tcp;
            }
        }
        if (victim == nullptr) {
            return false;
        }
        connections.at(victim).evicted = true;
        ++evicted;
        boost::system::error_code ignored;
        victim->socket().close(ignored);
        return true;
    }
    // Envoy's overload manager, in small: past half the connection limit the
    // deadlines of connections that do nothing yet shrink, to a tenth at the limit.
    [[nodiscard]] double overload() const {
        const double load =
            static_cast<double>(connections.size()) /
            static_cast<double>(std::max<std::size_t>(options.limits.max_connections, 1));
        return load <= 0.5 ? 1.0 : std::max(0.1, 1.0 - (load - 0.5) * 1.8);
    }
    [[nodiscard]] std::chrono::milliseconds scaled(std::chrono::milliseconds d) const {
        const auto ms = static_cast<std::int64_t>(static_cast<double>(d.count()) * overload());
        return std::max(std::chrono::milliseconds{std::min<std::int64_t>(ms, d.count())},
                        std::min(d, std::chrono::milliseconds{250}));
    }
    std::size_t open_streams = 0;
    std::size_t buffered = 0;            // bytes of events held in every session's streams
    std::size_t closed_since_sweep = 0;  // connections that ended since the last sweep
    bool stopped = false;

    asio::awaitable<void> accept_loop();
    asio::awaitable<void> sweep_loop();
    // Under pressure, connections that have not started a request are held
    // to the shrunken deadlines too, not only new ones.
    asio::awaitable<void> pressure_loop();
    asio::steady_timer pressure{io};
    // Over the buffer budget: drops the streams no client reads, largest first.
    void shed();
    static void account_standalone_drop(Session& session, Stream& stream);
    asio::awaitable<void> serve(tcp::socket socket, std::string address);
    Clock::time_point last_refusal_log{};
};

class Session final : public ServerSession {
  public:
    Session(std::weak_ptr<HttpServer::Impl> server, std::string id, PeerInfo peer)
        : server_(std::move(server)), id_(std::move(id)), peer_(std::move(peer)) {
        Stream standalone;
        standalone.id = k_standalone_stream;
        standalone.standalone = true;
        streams_.emplace(k_standalone_stream, std::move(standalone));
    }

    [[nodiscard]] const std::string& id() const noexcept override { return id_; }
    [[nodiscard]] const PeerInfo& peer() const noexcept override { return peer_; }
    [[nodiscard]] const std::string& protocol_version() const noexcept override { return version_; }

    bool send(StreamId stream_id, json::object message) override {
        if (closed_) {
            return false;
        }
        const auto it = streams_.find(stream_id);
        if (it == streams_.end()) {
            spdlog::debug("session {}: stream {} is gone; message dropped", short_id(), stream_id);
            return false;
        }
        Stream& stream = it->second;
        const bool response = !message.contains("method");
        if (response && stream_id == init_stream_) {
            if (const auto* result = message.if_contains("result"); result != nullptr) {
                if (const auto* v = result->as_object().if_contains("protocolVersion");
                    v != nullptr && v->is_string()) {
                    version_ = std::string(v->get_string());
                }
            } else {
                init_failed_ = true;
            }
        }
        push(stream, mcp::serialize(message), response);
        if (auto server = server_.lock();
            server && server->buffered > server->options.limits.buffer_bytes) {
            server->shed();
        }
        return true;
    }

    void close(std::string_view reason) override;

    void forgo_response(StreamId stream_id) override {
        const auto it = streams_.find(stream_id);
        if (it == streams_.end() || it->second.pending == 0) {
            return;
        }
        --it->second.pending;
        if (it->second.writer != nullptr) {
            it->second.writer->notify();
        }
    }

    ~Session() override {
        for (const auto& [id, stream] : streams_) {
            account(-static_cast<std::ptrdiff_t>(stream.bytes));
        }
    }
    Session(const Session&) = delete;
    Session& operator=(const Session&) = delete;
    Session(Session&&) = delete;
    Session& operator=(Session&&) = delete;

    // Appends an event to a stream and wakes its writer.
    void push(Stream& stream, std::string data, bool response) {
        const auto& bounds = limits();
        Event event{stream.next_seq++, std::move(data), response};
        stream.bytes += event.data.size();
        account(static_cast<std::ptrdiff_t>(event.data.size()));
        stream.events.push_back(std::move(event));
        if (response && stream.pending > 0) {
            --stream.pending;
        }
        // Bounded replay, oldest first: what was delivered, and notifications
        // and requests nobody read (a GET stream never opened). A response
        // not yet delivered is never dropped here: the client is owed it (a
        // batch's answers are all there, whatever their size); the gateway's
        // buffer budget bounds what unread responses can hold.
        for (auto it = stream.events.begin();
             it != stream.events.end() && stream.events.size() > 1 &&
             (stream.events.size() > bounds.replay_events || stream.bytes > bounds.replay_bytes);) {
            const bool undelivered = it->seq > stream.delivered;
            if (undelivered && it->response) {
                ++it;
                continue;
            }
            if (undelivered) {
                spdlog::warn(
                    "session {}: stream {} dropped an undelivered notification (replay buffer "
                    "full, no client reading)",
                    short_id(), stream.id);
            }
            stream.bytes -= it->data.size();
            account(-static_cast<std::ptrdiff_t>(it->data.size()));
            it = stream.events.erase(it);
        }
        if (stream.writer != nullptr) {
            stream.writer->notify();
        }
    }

    void erase_stream(std::map<StreamId, Stream>::iterator it) {
        account(-static_cast<std::ptrdiff_t>(it->second.bytes));
        streams_.erase(it);
    }

    // The gateway-wide count of bytes waiting in streams.
    void account(std::ptrdiff_t delta);

    [[nodiscard]] const HttpServerLimits& limits() const;

    [[nodiscard]] std::string short_id() const { return id_.substr(0, 8); }

    std::weak_ptr<HttpServer::Impl> server_;
    std::string id_;
    PeerInfo peer_;
    std::string version_;
    std::unique_ptr<SessionHandler> handler_;
    std::map<StreamId, Stream> streams_;
    StreamId next_stream_ = 1;
    StreamId init_stream_ = 0;
    bool init_failed_ = false;
    bool closed_ = false;
    Clock::time_point last_activity_ = Clock::now();
    std::size_t attached_ = 0;
};

void Session::account(std::ptrdiff_t delta) {
    if (const auto server = server_.lock()) {
        server->buffered =
            static_cast<std::size_t>(static_cast<std::ptrdiff_t>(server->buffered) + delta);
    }
}

void HttpServer::Impl::shed() {
    std::vector<std::pair<std::size_t, std::pair<Session*, StreamId>>> idle;
    for (auto& [sid, session] : sessions) {
        for (auto& [id, stream] : session->streams_) {
            if (stream.writer == nullptr && stream.bytes > 0) {
                idle.push_back({stream.bytes, {session.get(), id}});
            }
        }
    }
    std::sort(idle.begin(), idle.end(),
              [](const auto& a, const auto& b) { return a.first > b.first; });
    for (const auto& [bytes, where] : idle) {
        if (buffered <= options.limits.buffer_bytes) {
            break;
        }
        auto& [session, id] = where;
        const auto it = session->streams_.find(id);
        if (it == session->streams_.end()) {
            continue;
        }
        spdlog::warn(
            "session {}: stream {} dropped with {} bytes nobody read: the gateway's stream "
            "buffers are full (limits.buffer_bytes {})",
            session->short_id(), id, bytes, options.limits.buffer_bytes);
        if (it->second.standalone) {
            account_standalone_drop(*session, it->second);
        } else {
            session->erase_stream(it);
        }
    }
}

void HttpServer::Impl::account_standalone_drop(Session& session, Stream& stream) {
    // The GET stream stays (the session needs it); what it held goes.
    session.account(-static_cast<std::ptrdiff_t>(stream.bytes));
    stream.bytes = 0;
    stream.delivered = stream.last_seq();
    stream.events.clear();
}

const HttpServerLimits& Session::limits() const {
    static const HttpServerLimits k_defaults;
    const auto server = server_.lock();
    return server ? server->options.limits : k_defaults;
}

void Session::close(std::string_view reason) {
    if (closed_) {
        return;
    }
    closed_ = true;
    auto server = server_.lock();
    if (server) {
        server->sessions.erase(id_);
    }
    for (auto& [id, stream] : streams_) {
        if (stream.writer != nullptr) {
            stream.writer->notify();
        }
    }
    spdlog::debug("session {} closed: {}", short_id(), reason);
    // The handler may be what called close(): end it from the event loop.
    if (handler_ && server) {
        asio::post(server->io, [handler = std::move(handler_), why = std::string(reason)] {
            handler->on_closed(why);
        });
    }
}

namespace {

using Request = http::request<http::string_body>;

// What the request handler decided: an immediate response, or a stream for
// the connection to write.
struct Outcome {
    Outcome() = default;
    ~Outcome() = default;
    Outcome(Outcome&&) = default;
    Outcome(const Outcome&) = delete;
    Outcome& operator=(const Outcome&) = delete;
    Outcome& operator=(Outcome&&) = delete;

    http::response<http::string_body> response;
    std::shared_ptr<Session> session;  // with a stream to serve
    StreamId stream = 0;
    std::optional<std::uint64_t> resume_after;  // GET with Last-Event-ID
    bool sse_only = false;                      // GET: SSE from the first byte
    bool with_session_header = false;           // initialize
};

http::response<http::string_body> make_response(const Request& req, http::status status,
                                                std::string_view content_type, std::string body) {
    http::response<http::string_body> res{status, req.version()};
    res.set(http::field::server, "pqmcp");
    if (!content_type.empty()) {
        res.set(http::field::content_type, content_type);
    }
    res.set(http::field::cache_control, "no-store");
    res.body() = std::move(body);
    res.keep_alive(req.keep_alive());
    res.prepare_payload();
    return res;
}

// An HTTP error with a JSON-RPC error body that has no id, as the transport
// section allows ("The HTTP response body MAY comprise a JSON-RPC error response
// that has no id").
Outcome http_error(const Request& req, http::status status, int rpc_code,
                   const std::string& message) {
    Outcome out;
    out.response = make_response(req, status, "application/json",
                                 mcp::serialize(mcp::make_error(nullptr, rpc_code, message)));
    return out;
}

Outcome plain(const Request& req, http::status status, std::string body) {
    Outcome out;
    out.response = make_response(req, status, "text/plain; charset=utf-8", std::move(body));
    return out;
}

std::string_view header(const Request& req, std::string_view name) {
    const auto it = req.find(beast::string_view(name.data(), name.size()));
    return it == req.end() ? std::string_view{} : sv(it->value());
}

bool is_json_content(std::string_view content_type) {
    const auto semi = content_type.find(';');
    std::string_view type = content_type.substr(0, semi);
    while (!type.empty() && type.back() == ' ') {
        type.remove_suffix(1);
    }
    if (type.size() != 16) {
        return false;
    }
    for (std::size_t i = 0; i < type.size(); ++i) {
        if (std::tolower(static_cast<unsigned char>(type[i])) != "application/json"[i]) {
            return false;
        }
    }
    return true;
}

bool same_peer(const PeerInfo& a, const PeerInfo& b) {
    return a.handshake.peer_id == b.handshake.peer_id;
}

// Finds the session a request names; an Outcome with the HTTP error otherwise.
std::variant<std::shared_ptr<Session>, Outcome> find_session(HttpServer::Impl& server,
                                                             const Request& req,
                                                             const PeerInfo& peer) {
    const std::string_view id = header(req, k_session_header);
    if (id.empty()) {
        // "Servers that require a session ID SHOULD respond to requests without an
        // MCP-Session-Id header (other than initialization) with HTTP 400 Bad Request."
        return http_error(req, http::status::bad_request, mcp::code::invalid_request,
                          "Bad Request: the Mcp-Session-Id header is required");
    }
    const auto it = server.sessions.find(std::string(id));
    // A session belongs to the TLS identity that opened it; for anyone else it
    // does not exist.
    if (it == server.sessions.end() || !same_peer(it->second->peer_, peer)) {
        // "...after which it MUST respond to requests containing that session ID
        // with HTTP 404 Not Found."
        return http_error(req, http::status::not_found, mcp::code::invalid_request,
                          "Session not found");
    }
    const std::shared_ptr<Session>& session = it->second;
    const std::string_view version = header(req, k_version_header);
    // "If the server receives a request with an invalid or unsupported
    // MCP-Protocol-Version, it MUST respond with 400 Bad Request."
    if (!version.empty() && (!mcp::is_supported_version(version) ||
                             (!session->version_.empty() && version != session->version_))) {
        return http_error(req, http::status::bad_request, mcp::code::invalid_request,
                          "Bad Request: unsupported MCP-Protocol-Version " + std::string(version) +
                              (session->version_.empty()
                                   ? std::string{}
                                   : " (this session negotiated " + session->version_ + ")"));
    }
    session->last_activity_ = Clock::now();
    return session;
}

Outcome handle_post(HttpServer::Impl& server, const Request& req, const PeerInfo& peer) {
    if (!is_json_content(header(req, "Content-Type"))) {
        return http_error(req, http::status::unsupported_media_type, mcp::code::invalid_request,
                          "Unsupported Media Type: the body must be application/json");
    }
    // "The client MUST include an Accept header, listing both application/json
    // and text/event-stream as supported content types."
    const std::string_view accept = header(req, "Accept");
    if (!accepts(accept, "application/json") || !accepts(accept, "text/event-stream")) {
        return http_error(req, http::status::not_acceptable, mcp::code::invalid_request,
                          "Not Acceptable: the client must accept both application/json and "
                          "text/event-stream");
    }
    auto parsed = mcp::parse(req.body(), server.options.message_limits);
    if (!parsed) {
        Outcome out;
        out.response = make_response(req, http::status::bad_request, "application/json",
                                     mcp::serialize(mcp::make_error(parsed.error())));
        return out;
    }
    const bool is_initialize = !parsed->batch && parsed->items.front() &&
                               parsed->items.front()->is_request() &&
                               parsed->items.front()->method == mcp::method::initialize;
    std::shared_ptr<Session> session;
    if (is_initialize) {
        if (!header(req, k_session_header).empty()) {
            return http_error(req, http::status::bad_request, mcp::code::invalid_request,
                              "Bad Request: initialize starts a new session and must not carry "
                              "an Mcp-Session-Id");
        }
        std::size_t own = 0;
        for (const auto& [sid, s] : server.sessions) {
            own += same_peer(s->peer_, peer) ? 1U : 0U;
        }
        if (own >= server.options.limits.max_sessions_per_identity) {
            Outcome out = http_error(
                req, http::status::too_many_requests, mcp::code::over_limit,
                "Too Many Requests: this identity has " + std::to_string(own) +
                    " sessions open, its limit (limits.max_sessions_per_identity); end one "
                    "(DELETE) or let it expire");
            out.response.set(http::field::retry_after, "5");
            return out;
        }
        if (server.sessions.size() >= server.options.limits.max_sessions) {
            Outcome out =
                http_error(req, http::status::service_unavailable, mcp::code::over_limit,
                           "Service Unavailable: the gateway has " +
                               std::to_string(server.sessions.size()) + " sessions, its limit");
            out.response.set(http::field::retry_after, "5");
            return out;
        }
        std::string id = new_session_id();
        if (id.empty()) {
            return http_error(req, http::status::internal_server_error, mcp::code::internal_error,
                              "cannot draw a session id from the random number generator");
        }
        session = std::make_shared<Session>(server.weak_from_this(), std::move(id), peer);
        if (!server.options.open_session) {
            return http_error(req, http::status::internal_server_error, mcp::code::internal_error,
                              "no session handler");
        }
        auto handler = server.options.open_session(*session);
        if (!handler) {
            Outcome out;
            const int rpc = handler.error().code == transport::Errc::too_large
                                ? mcp::code::over_limit
                                : mcp::code::internal_error;
            out.response =
                make_response(req, http::status::ok, "application/json",
                              mcp::serialize(mcp::make_error(parsed->items.front()->id, rpc,
                                                             handler.error().message())));
            return out;
        }
        session->handler_ = std::move(*handler);
        server.sessions.emplace(session->id_, session);
    } else {
        auto found = find_session(server, req, peer);
        if (auto* error = std::get_if<Outcome>(&found)) {
            return std::move(*error);
        }
        session = std::get<std::shared_ptr<Session>>(std::move(found));
        if (parsed->batch) {
            const std::string& v = session->version_.empty()
                                       ? std::string(mcp::k_default_http_version)
                                       : session->version_;
            if (!mcp::allows_batches(v)) {
                return http_error(req, http::status::bad_request, mcp::code::invalid_request,
                                  "Invalid Request: JSON-RPC batches are not part of protocol "
                                  "version " +
                                      v);
            }
        }
        for (const auto& item : parsed->items) {
            if (item && item->is_request() && item->method == mcp::method::initialize) {
                return http_error(req, http::status::bad_request, mcp::code::invalid_request,
                                  "Invalid Request: the session is already initialized");
            }
        }
    }

    std::size_t requests = 0;
    std::size_t invalid = 0;
    for (const auto& item : parsed->items) {
        if (!item) {
            ++invalid;
        } else if (item->is_request()) {
            ++requests;
        }
    }
    if (requests == 0) {
        if (invalid > 0) {
            // "If the server cannot accept the input, it MUST return an HTTP
            // error status code (e.g., 400 Bad Request)."
            json::array errors;
            for (const auto& item : parsed->items) {
                if (!item) {
                    errors.push_back(mcp::make_error(item.error()));
                }
            }
            Outcome out;
            out.response = make_response(
                req, http::status::bad_request, "application/json",
                parsed->batch ? json::serialize(errors) : json::serialize(errors.front()));
            return out;
        }
        for (auto& item : parsed->items) {
            session->handler_->on_message(std::move(*item), k_standalone_stream);
        }
        // "If the server accepts the input, the server MUST return HTTP status
        // code 202 Accepted with no body."
        return plain(req, http::status::accepted, {});
    }
    if (session->attached_ >= server.options.limits.max_streams_per_session) {
        return http_error(req, http::status::too_many_requests, mcp::code::over_limit,
                          "Too Many Requests: " + std::to_string(session->attached_) +
                              " streams open on this session, its limit");
    }
    const StreamId id = session->next_stream_++;
    Stream stream;
    stream.id = id;
    stream.batch = parsed->batch;
    stream.pending = requests;
    session->streams_.emplace(id, std::move(stream));
    if (is_initialize) {
        session->init_stream_ = id;
    }
    Outcome out;
    out.session = session;
    out.stream = id;
    out.with_session_header = is_initialize;
    // The handler runs after the connection has attached to the stream (see
    // serve()); answers given synchronously are queued until then.
    for (auto& item : parsed->items) {
        if (!item) {
            session->push(session->streams_.at(id), mcp::serialize(mcp::make_error(item.error())),
                          true);
        }
    }
    // Hand the valid messages over now: the stream exists, the writer attaches next.
    std::vector<mcp::Message> messages;
    for (auto& item : parsed->items) {
        if (item) {
            messages.push_back(std::move(*item));
        }
    }
    asio::post(server.io, [session, id, messages = std::move(messages)]() mutable {
        for (auto& m : messages) {
            if (session->closed_) {
                return;
            }
            session->handler_->on_message(std::move(m), id);
        }
    });
    return out;
}

Outcome handle_get(HttpServer::Impl& server, const Request& req, const PeerInfo& peer) {
    // "The client MUST include an Accept header, listing text/event-stream as a
    // supported content type."
    if (!accepts(header(req, "Accept"), "text/event-stream")) {
        return http_error(req, http::status::not_acceptable, mcp::code::invalid_request,
                          "Not Acceptable: the client must accept text/event-stream");
    }
    auto found = find_session(server, req, peer);
    if (auto* error = std::get_if<Outcome>(&found)) {
        return std::move(*error);
    }
    auto session = std::get<std::shared_ptr<Session>>(std::move(found));
    Outcome out;
    out.session = session;
    out.sse_only = true;
    out.stream = k_standalone_stream;
    const std::string_view last = header(req, k_last_event_header);
    if (!last.empty()) {
        // "The server MAY use this header to replay messages that would have been
        // sent after the last event ID, on the stream that was disconnected".
        const auto cursor = parse_event_id(last);
        if (cursor && session->streams_.contains(cursor->first)) {
            out.stream = cursor->first;
            out.resume_after = cursor->second;
            return out;
        }
        if (cursor && cursor->first != k_standalone_stream) {
            // A finished stream already delivered and gone: nothing to replay.
            return http_error(req, http::status::not_found, mcp::code::invalid_request,
                              "No stream to resume for Last-Event-ID " + std::string(last));
        }
    }
    Stream& standalone = session->streams_.at(k_standalone_stream);
    if (standalone.writer != nullptr) {
        return http_error(req, http::status::conflict, mcp::code::invalid_request,
                          "Conflict: this session already has an open GET stream");
    }
    if (session->attached_ >= server.options.limits.max_streams_per_session) {
        return http_error(req, http::status::too_many_requests, mcp::code::over_limit,
                          "Too Many Requests: too many streams open on this session");
    }
    return out;
}

Outcome handle_delete(HttpServer::Impl& server, const Request& req, const PeerInfo& peer) {
    auto found = find_session(server, req, peer);
    if (auto* error = std::get_if<Outcome>(&found)) {
        return std::move(*error);
    }
    std::get<std::shared_ptr<Session>>(found)->close("deleted by the client");
    return plain(req, http::status::ok, {});
}

Outcome handle(HttpServer::Impl& server, const Request& req, const PeerInfo& peer) {
    const std::string_view target = sv(req.target());
    const std::string_view path = target.substr(0, target.find('?'));
    // "Servers MUST validate the Origin header on all incoming connections to
    // prevent DNS rebinding attacks. If the Origin header is present and
    // invalid, servers MUST respond with HTTP 403 Forbidden."
    if (!server.origins.allows(header(req, "Origin"))) {
        return http_error(
            req, http::status::forbidden, mcp::code::invalid_request,
            "Forbidden: Origin " + std::string(header(req, "Origin")) + " is not allowed");
    }
    if (path != server.options.path) {
        if (req.method() == http::verb::get && server.options.get_page) {
            const HttpServerOptions::PageRequest page_request{target, header(req, "Authorization"),
                                                              peer};
            if (auto page = server.options.get_page(page_request)) {
                Outcome out;
                out.response = make_response(req, static_cast<http::status>(page->status),
                                             page->content_type, std::move(page->body));
                for (const auto& [name, value] : page->headers) {
                    out.response.set(name, value);
                }
                return out;
            }
        }
        return plain(req, http::status::not_found, "not found\n");
    }
    switch (req.method()) {
        case http::verb::post:
            return handle_post(server, req, peer);
        case http::verb::get:
            return handle_get(server, req, peer);
        case http::verb::delete_:
            return handle_delete(server, req, peer);
        default: {
            Outcome out = plain(req, http::status::method_not_allowed, "method not allowed\n");
            out.response.set(http::field::allow, "GET, POST, DELETE");
            return out;
        }
    }
}

// Writes one chunk of an SSE body with the write timeout; an empty `data`
// writes the last chunk, which ends the body.
asio::awaitable<bool> write_chunk(TlsStream& stream, std::string_view data,
                                  std::chrono::milliseconds timeout) {
    beast::get_lowest_layer(stream).expires_after(timeout);
    if (data.empty()) {
        auto [ec, n] = co_await asio::async_write(stream, http::make_chunk_last(), use);
        co_return !ec;
    }
    auto [ec, n] = co_await asio::async_write(
        stream, http::make_chunk(asio::buffer(data.data(), data.size())), use);
    co_return !ec;
}

// Serves a stream on a connection: a JSON response when the stream finishes
// with nothing but responses before the keep-alive interval, SSE otherwise.
// Returns whether the connection can be reused.
asio::awaitable<bool> serve_stream(HttpServer::Impl& server, TlsStream& stream, const Request& req,
                                   Outcome& outcome) {
    Session& session = *outcome.session;
    const auto& timeouts = server.options.timeouts;
    auto executor = co_await asio::this_coro::executor;
    Signal signal(executor);
    // A client that goes away while the stream waits (it closed the
    // connection: a cancelled request, a crash) is noticed now, not at the
    // next keep-alive write: the socket turns readable and shows end of file.
    struct Watch {
        bool gone = false;
        Signal* signal = nullptr;
    };
    auto watch = std::make_shared<Watch>();
    watch->signal = &signal;
    auto& socket = beast::get_lowest_layer(stream).socket();
    socket.async_wait(tcp::socket::wait_read,
                      [watch, fd = socket.native_handle()](const boost::system::error_code& ec) {
                          if (ec || watch->signal == nullptr) {
                              return;
                          }
                          char c = 0;
                          const ssize_t n = ::recv(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
                          if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK)) {
                              watch->gone = true;
                              watch->signal->notify();
                          }
                      });
    struct Unwatch {
        std::shared_ptr<Watch> w;
        tcp::socket& s;
        ~Unwatch() {
            w->signal = nullptr;
            boost::system::error_code ignored;
            s.cancel(ignored);
        }
        Unwatch(std::shared_ptr<Watch> watch_state, tcp::socket& sock)
            : w(std::move(watch_state)), s(sock) {}
        Unwatch(const Unwatch&) = delete;
        Unwatch& operator=(const Unwatch&) = delete;
        Unwatch(Unwatch&&) = delete;
        Unwatch& operator=(Unwatch&&) = delete;
    } unwatch(watch, socket);
    auto found = session.streams_.find(outcome.stream);
    if (found == session.streams_.end()) {
        co_return false;
    }
    // A GET that resumes a stream another connection still holds takes it over.
    if (found->second.writer != nullptr) {
        found->second.writer->notify();
    }
    found->second.writer = &signal;
    ++session.attached_;
    ++server.open_streams;
    std::uint64_t cursor = outcome.resume_after
                               ? *outcome.resume_after
                               : (found->second.standalone ? found->second.delivered : 0);
    bool sse = outcome.sse_only;
    bool headers_sent = false;
    bool ok = true;
    bool reusable = req.keep_alive();

    const auto detach = [&] {
        auto it = session.streams_.find(outcome.stream);
        if (it != session.streams_.end() && it->second.writer == &signal) {
            it->second.writer = nullptr;
            it->second.detached_at = Clock::now();
            if (it->second.finished() && it->second.delivered >= it->second.last_seq()) {
                session.erase_stream(it);
            }
        }
        --session.attached_;
        --server.open_streams;
        session.last_activity_ = Clock::now();
    };

    const auto send_headers = [&]() -> asio::awaitable<bool> {
        http::response<http::empty_body> res{http::status::ok, req.version()};
        res.set(http::field::server, "pqmcp");
        res.set(http::field::content_type, "text/event-stream");
        res.set(http::field::cache_control, "no-cache");
        if (outcome.with_session_header) {
            res.set(beast::string_view(k_session_header.data(), k_session_header.size()),
                    session.id_);
        }
        res.keep_alive(req.keep_alive());
        res.chunked(true);
        http::response_serializer<http::empty_body> serializer{res};
        beast::get_lowest_layer(stream).expires_after(timeouts.write);
        auto [ec, n] = co_await http::async_write_header(stream, serializer, use);
        if (ec) {
            co_return false;
        }
        headers_sent = true;
        // "The server SHOULD immediately send an SSE event consisting of an event
        // ID and an empty data field in order to prime the client to reconnect".
        const std::string& version =
            session.version_.empty() ? std::string(mcp::k_latest_version) : session.version_;
        if (mcp::primes_sse_streams(version)) {
            co_return co_await write_chunk(
                stream,
                format_sse_event(event_id(outcome.stream, cursor), "", server.options.retry_ms),
                timeouts.write);
        }
        co_return true;
    };

    for (;;) {
        auto it = session.streams_.find(outcome.stream);
        if (it == session.streams_.end() || it->second.writer != &signal) {
            // The stream is gone or another connection took it over.
            if (headers_sent) {
                (void)co_await write_chunk(stream, {}, timeouts.write);
            }
            ok = headers_sent;
            break;
        }
        Stream& s = it->second;
        if (!sse) {
            bool only_responses = true;
            for (const auto& e : s.events) {
                only_responses = only_responses && e.response;
            }
            if (!only_responses || (s.finished() && s.events.empty() && !s.batch)) {
                // Related messages first; or nothing at all to say (its
                // request was cancelled): an event stream that just ends.
                sse = true;
            } else if (s.finished()) {
                // All answered with nothing in between: one JSON response.
                std::string body;
                if (s.batch) {
                    body = "[";
                    for (const auto& e : s.events) {
                        body += (body.size() > 1 ? "," : "") + e.data;
                    }
                    body += "]";
                } else if (!s.events.empty()) {
                    body = s.events.back().data;
                }
                s.delivered = s.last_seq();
                auto res =
                    make_response(req, http::status::ok, "application/json", std::move(body));
                if (outcome.with_session_header && !session.init_failed_) {
                    res.set(beast::string_view(k_session_header.data(), k_session_header.size()),
                            session.id_);
                }
                detach();
                beast::get_lowest_layer(stream).expires_after(timeouts.write);
                auto [ec, n] = co_await http::async_write(stream, res, use);
                if (outcome.with_session_header && session.init_failed_) {
                    session.close("initialize failed");
                }
                co_return !ec && reusable;
            }
        }
        if (sse && !headers_sent) {
            if (!co_await send_headers()) {
                ok = false;
                break;
            }
        }
        if (sse) {
            // Everything after the cursor that is still in the buffer.
            std::string batch;
            std::uint64_t last = cursor;
            for (const auto& e : s.events) {
                if (e.seq > cursor) {
                    batch += format_sse_event(event_id(s.id, e.seq), e.data);
                    last = e.seq;
                }
            }
            if (!batch.empty()) {
                if (!co_await write_chunk(stream, batch, timeouts.write)) {
                    ok = false;
                    break;
                }
                // The stream may have changed while we wrote.
                auto again = session.streams_.find(outcome.stream);
                if (again == session.streams_.end()) {
                    break;
                }
                cursor = last;
                again->second.delivered = std::max(again->second.delivered, last);
                continue;
            }
            if (s.finished() && cursor >= s.last_seq()) {
                // "After the JSON-RPC response has been sent, the server SHOULD
                // terminate the SSE stream."
                ok = co_await write_chunk(stream, {}, timeouts.write);
                break;
            }
        }
        if (session.closed_) {
            if (headers_sent) {
                (void)co_await write_chunk(stream, {}, timeouts.write);
            } else {
                // The session ended before anything was written (e.g. DELETE).
                auto res =
                    make_response(req, http::status::not_found, "application/json",
                                  mcp::serialize(mcp::make_error(
                                      nullptr, mcp::code::invalid_request, "Session not found")));
                beast::get_lowest_layer(stream).expires_after(timeouts.write);
                (void)co_await http::async_write(stream, res, use);
            }
            ok = false;
            break;
        }
        if (server.stopped) {
            ok = false;
            break;
        }
        const bool woken = co_await signal.wait(timeouts.keepalive);
        if (watch->gone) {
            ok = false;
            reusable = false;
            break;
        }
        if (!woken) {
            if (!sse) {
                sse = true;  // no answer yet: switch to SSE and keep the line warm
            } else if (!co_await write_chunk(stream, format_sse_comment("keep-alive"),
                                             timeouts.write)) {
                ok = false;
                break;
            }
        }
    }
    detach();
    co_return ok&& reusable;
}

asio::awaitable<bool> write_response(TlsStream& stream, http::response<http::string_body>& res,
                                     std::chrono::milliseconds timeout) {
    beast::get_lowest_layer(stream).expires_after(timeout);
    auto [ec, n] = co_await http::async_write(stream, res, use);
    co_return !ec;
}

// Registers a connection for stop() and counts it against the limit.
class ConnectionGuard final {
  public:
    ConnectionGuard(HttpServer::Impl& server, beast::tcp_stream& tcp, std::string address)
        : server_(server), tcp_(tcp) {
        ++server_.handshaking[address];
        server_.connections.emplace(&tcp_, HttpServer::Impl::Conn{std::move(address)});
    }
    ~ConnectionGuard() {
        if (const auto it = server_.connections.find(&tcp_); it != server_.connections.end()) {
            if (it->second.phase == HttpServer::Impl::Phase::handshake) {
                server_.forget_handshake(it->second.address);
            }
            server_.connections.erase(it);
        }
        ++server_.closed_since_sweep;
    }
    ConnectionGuard(const ConnectionGuard&) = delete;
    ConnectionGuard& operator=(const ConnectionGuard&) = delete;
    ConnectionGuard(ConnectionGuard&&) = delete;
    ConnectionGuard& operator=(ConnectionGuard&&) = delete;

  private:
    HttpServer::Impl& server_;
    beast::tcp_stream& tcp_;
};

// The answer to a request that could not be read, or none when the client
// simply went away. The connection closes after it.
std::optional<http::response<http::string_body>> read_failure(const boost::system::error_code& ec,
                                                              bool timed_out,
                                                              const HttpServerOptions& options) {
    Request dummy;
    dummy.version(11);
    dummy.keep_alive(false);
    const auto closing = [](Outcome out) {
        out.response.keep_alive(false);
        return std::move(out.response);
    };
    if (timed_out) {
        return closing(plain(dummy, http::status::request_timeout,
                             "request not received within " +
                                 std::to_string(options.timeouts.read.count()) + " ms\n"));
    }
    if (ec == http::error::header_limit) {
        return closing(plain(dummy, http::status::request_header_fields_too_large,
                             "request headers over " +
                                 std::to_string(options.limits.max_header_bytes) + " bytes\n"));
    }
    if (ec == http::error::body_limit) {
        return closing(http_error(dummy, http::status::payload_too_large,
                                  mcp::code::invalid_request,
                                  "Payload Too Large: the limit is " +
                                      std::to_string(options.limits.max_body_bytes) + " bytes"));
    }
    if (ec == http::error::end_of_stream || ec == asio::error::eof ||
        ec == asio::ssl::error::stream_truncated || ec == asio::error::operation_aborted) {
        return std::nullopt;
    }
    return closing(
        plain(dummy, http::status::bad_request, "malformed request: " + ec.message() + "\n"));
}

}  // namespace

asio::awaitable<void> HttpServer::Impl::serve(tcp::socket socket, std::string address) {
    auto self = shared_from_this();
    boost::system::error_code ignored;
    const auto endpoint = socket.remote_endpoint(ignored);
    PeerInfo peer;
    peer.remote = endpoint.address().to_string() + ":" + std::to_string(endpoint.port());
    socket.set_option(tcp::no_delay(true), ignored);
    TlsStream stream(beast::tcp_stream(std::move(socket)), ssl);
    auto* tcp = &beast::get_lowest_layer(stream);
    const ConnectionGuard guard(*this, *tcp, std::move(address));
    const auto& t = options.timeouts;

    const auto accepted = Clock::now();
    const auto handshake_deadline = scaled(t.handshake);
    beast::get_lowest_layer(stream).expires_after(handshake_deadline);
    auto [hec] = co_await stream.async_handshake(asio::ssl::stream_base::server, use);
    if (hec) {
        if (options.on_handshake) {
            std::string detail =
                hec == beast::error::timeout
                    ? "no handshake within " + std::to_string(handshake_deadline.count()) + " ms"
                    : hec.message();
            const std::string reason = tls::verification_failure(stream.native_handle());
            if (!reason.empty()) {
                detail = reason;
            }
            const auto me = connections.find(tcp);
            const bool evicted_here = me != connections.end() && me->second.evicted;
            const bool closed =
                evicted_here || (reason.empty() &&
                                 (hec == asio::ssl::error::stream_truncated ||
                                  hec == asio::error::eof || hec == asio::error::connection_reset));
            if (evicted_here) {
                detail = "closed before its handshake ended, to make room for other connections";
            } else if (closed) {
                detail = "the client closed the connection during the handshake";
            }
            options.on_handshake(peer.remote,
                                 fail(closed ? Errc::closed : Errc::connect_failed, detail),
                                 Clock::now() - accepted);
        }
        co_return;
    }
    peer.handshake = tls::handshake_info(stream.native_handle());
    set_phase(tcp, Phase::idle);
    if (options.on_handshake) {
        options.on_handshake(peer.remote, peer.handshake, Clock::now() - accepted);
    }

    beast::flat_buffer buffer;
    asio::steady_timer read_timer(io);
    for (;;) {
        if (stopped) {
            break;
        }
        // Keep-alive: wait (at most `idle`) for the first byte of the next request.
        if (buffer.size() == 0) {
            set_phase(tcp, Phase::idle);
            beast::get_lowest_layer(stream).expires_after(scaled(t.idle));
            auto [ec, n] = co_await stream.async_read_some(buffer.prepare(4096), use);
            if (ec) {
                break;
            }
            buffer.commit(n);
        }
        // Then the whole request within `read`; on expiry the read is cancelled
        // (not the connection) so that the client still gets its 408.
        set_phase(tcp, Phase::reading);
        beast::get_lowest_layer(stream).expires_never();
        http::request_parser<http::string_body> parser;
        parser.header_limit(static_cast<std::uint32_t>(options.limits.max_header_bytes));
        parser.body_limit(options.limits.max_body_bytes);
        bool timed_out = false;
        read_timer.expires_after(t.read);
        read_timer.async_wait([&timed_out, &stream](const boost::system::error_code& ec) {
            if (!ec) {
                timed_out = true;
                boost::system::error_code ignore;
                beast::get_lowest_layer(stream).socket().cancel(ignore);
            }
        });
        auto [rec, n] = co_await http::async_read(stream, buffer, parser, use);
        read_timer.cancel();
        if (rec) {
            auto failure = read_failure(rec, timed_out, options);
            if (failure) {
                spdlog::debug("{}: {} ({})", peer.remote, failure->result_int(), rec.message());
                (void)co_await write_response(stream, *failure, t.write);
            }
            break;
        }
        Request req = parser.release();
        set_phase(tcp, Phase::busy);
        Outcome out = handle(*this, req, peer);
        bool keep = false;
        if (out.session) {
            keep = co_await serve_stream(*this, stream, req, out);
        } else {
            keep =
                out.response.keep_alive() && co_await write_response(stream, out.response, t.write);
        }
        if (!keep) {
            break;
        }
    }
    // close_notify, bounded.
    beast::get_lowest_layer(stream).expires_after(std::chrono::milliseconds{1'000});
    (void)co_await stream.async_shutdown(use);
}

asio::awaitable<void> HttpServer::Impl::accept_loop() {
    auto self = shared_from_this();
    co_await tls::accept_each(acceptor, [this](tcp::socket socket) {
        if (stopped) {
            return false;
        }
        boost::system::error_code ignored;
        std::string address = socket.remote_endpoint(ignored).address().to_string();
        // One address cannot hold more than its share of handshakes: its
        // oldest unfinished one makes room.
        if (const auto h = handshaking.find(address);
            h != handshaking.end() && h->second >= options.limits.max_handshakes_per_address) {
            (void)evict_oldest(Phase::handshake, &address);
        }
        if (connections.size() >= options.limits.max_connections &&
            !evict_oldest(Phase::handshake) && !evict_oldest(Phase::idle)) {
            const auto now = Clock::now();
            if (now - last_refusal_log > std::chrono::seconds{5}) {
                last_refusal_log = now;
                spdlog::warn(
                    "connection limit ({}) reached with every connection at work; "
                    "closing new ones",
                    options.limits.max_connections);
            }
            socket.close(ignored);
            return true;
        }
        asio::co_spawn(io, serve(std::move(socket), std::move(address)), asio::detached);
        return true;
    });
}

asio::awaitable<void> HttpServer::Impl::pressure_loop() {
    auto self = shared_from_this();
    while (!stopped) {
        pressure.expires_after(std::chrono::milliseconds{250});
        auto [ec] = co_await pressure.async_wait(use);
        if (ec || stopped) {
            break;
        }
        if (overload() >= 1.0) {
            continue;
        }
        const auto now = Clock::now();
        const auto handshake = scaled(options.timeouts.handshake);
        const auto idle = scaled(options.timeouts.idle);
        std::vector<beast::tcp_stream*> late;
        for (auto& [tcp, c] : connections) {
            if (!c.evicted && ((c.phase == Phase::handshake && now - c.since > handshake) ||
                               (c.phase == Phase::idle && now - c.since > idle))) {
                late.push_back(tcp);
            }
        }
        for (auto* tcp : late) {
            connections.at(tcp).evicted = true;
            ++evicted;
            boost::system::error_code ignored;
            tcp->socket().close(ignored);
        }
    }
}

asio::awaitable<void> HttpServer::Impl::sweep_loop() {
    auto self = shared_from_this();
    const auto period =
        std::clamp(options.timeouts.session_idle / 4, std::chrono::milliseconds{100},
                   std::chrono::milliseconds{30'000});
    while (!stopped) {
        sweeper.expires_after(period);
        auto [ec] = co_await sweeper.async_wait(use);
        if (ec || stopped) {
            break;
        }
        const auto now = Clock::now();
        std::vector<std::shared_ptr<Session>> expired;
        for (auto& [id, session] : sessions) {
            if (session->attached_ == 0 &&
                now - session->last_activity_ > options.timeouts.session_idle) {
                expired.push_back(session);
                continue;
            }
            // Streams whose client left and never came back.
            for (auto it = session->streams_.begin(); it != session->streams_.end();) {
                if (!it->second.standalone && it->second.writer == nullptr &&
                    now - it->second.detached_at > k_stream_linger) {
                    const auto gone = it++;
                    session->erase_stream(gone);
                } else {
                    ++it;
                }
            }
        }
        for (auto& session : expired) {
            session->close("idle for longer than the session timeout");
        }
#ifdef __GLIBC__
        // After a wave of connections ended, hand the heap they used back to
        // the system: glibc keeps freed memory in its arenas otherwise, and a
        // gateway that once held many connections would keep their footprint.
        if (closed_since_sweep >= 64) {
            (void)malloc_trim(0);
        }
#endif
        closed_since_sweep = 0;
    }
}

HttpServer::HttpServer(asio::io_context& io, SSL_CTX* ctx, HttpServerOptions options)
    : impl_(std::make_shared<Impl>(io, ctx, std::move(options))) {}

HttpServer::~HttpServer() {
    try {
        stop();
    } catch (...) {  // NOLINT(bugprone-empty-catch): out of memory while closing
    }
}

Result<std::uint16_t> HttpServer::start() {
    Impl& s = *impl_;
    const auto port = tls::listen_on(s.acceptor, s.options.host, s.options.port);
    if (!port) {
        return fail(Errc::listen_failed, port.error());
    }
    asio::co_spawn(s.io, s.accept_loop(), asio::detached);
    asio::co_spawn(s.io, s.sweep_loop(), asio::detached);
    asio::co_spawn(s.io, s.pressure_loop(), asio::detached);
    return *port;
}

void HttpServer::stop() {
    Impl& s = *impl_;
    if (s.stopped) {
        return;
    }
    s.stopped = true;
    boost::system::error_code ignored;
    s.acceptor.close(ignored);
    s.sweeper.cancel();
    s.pressure.cancel();
    std::vector<std::shared_ptr<Session>> all;
    all.reserve(s.sessions.size());
    for (auto& [id, session] : s.sessions) {
        all.push_back(session);
    }
    for (auto& session : all) {
        session->close("the gateway is shutting down");
    }
    for (auto& [tcp, c] : s.connections) {
        tcp->socket().close(ignored);
    }
}

HttpServer::RawAnswer HttpServer::answer(std::string_view bytes, const PeerInfo& peer) {
    const auto& options = impl_->options;
    http::request_parser<http::string_body> parser;
    parser.header_limit(static_cast<std::uint32_t>(options.limits.max_header_bytes));
    parser.body_limit(options.limits.max_body_bytes);
    RawAnswer out;
    boost::system::error_code ec;
    while (!ec && !parser.is_done() && out.used < bytes.size()) {
        out.used += parser.put(asio::buffer(bytes.data() + out.used, bytes.size() - out.used), ec);
        if (ec == http::error::need_more) {
            ec = {};
            break;
        }
    }
    if (ec) {
        const auto failure = read_failure(ec, false, options);
        out.status = failure ? static_cast<int>(failure->result_int()) : 0;
        out.used = bytes.size();
        return out;
    }
    if (!parser.is_done()) {
        out.used = bytes.size();
        return out;
    }
    const Request req = parser.release();
    const Outcome answer = handle(*impl_, req, peer);
    out.status = static_cast<int>(answer.response.result_int());
    if (answer.with_session_header && answer.session) {
        out.session_id = answer.session->id();
    }
    return out;
}

HttpServerStats HttpServer::stats() const {
    return {impl_->connections.size(), impl_->sessions.size(), impl_->open_streams,
            impl_->buffered,           impl_->evicted,         impl_->overload()};
}

}  // namespace pqmcp::transport
