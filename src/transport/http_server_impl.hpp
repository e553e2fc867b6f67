// Internal: the Streamable HTTP server's state, shared by its files: the
// listener and connections (http_server.cpp) and the MCP transport rules
// for each request and stream (http_requests.cpp).
#pragma once

#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <atomic>
#include <boost/asio/bind_executor.hpp>
#include <boost/asio/post.hpp>
#include <boost/json/serialize.hpp>
#include <charconv>
#include <deque>
#include <functional>
#include <map>
#include <mutex>
#include <set>
#include <unordered_map>
#include <variant>
#include "beast.hpp"
#include "pqmcp/core/bytes.hpp"
#include "pqmcp/core/descriptor.hpp"
#include "pqmcp/crypto/aead.hpp"
#include "pqmcp/crypto/util.hpp"
#include "pqmcp/mcp/protocol.hpp"
#include "pqmcp/tls/context.hpp"
#include "pqmcp/tls/listener.hpp"
#include "pqmcp/transport/http_server.hpp"
#include "pqmcp/transport/http_util.hpp"
#include "pqmcp/transport/sse.hpp"
#include "server_tls.hpp"

namespace pqmcp::transport {

using namespace detail;  // NOLINT(google-build-using-namespace): this file's own helpers
namespace json = boost::json;
using Clock = std::chrono::steady_clock;
using Request = http::request<http::string_body>;

constexpr std::string_view k_session_header = "Mcp-Session-Id";
constexpr std::string_view k_version_header = "MCP-Protocol-Version";
constexpr std::string_view k_last_event_header = "Last-Event-ID";
// How long a stream whose client went away is kept for Last-Event-ID.
constexpr auto k_stream_linger = std::chrono::minutes{5};
// How long a stream waits for its answer before it watches its connection
// for a client that went away.
constexpr auto k_watch_after = std::chrono::milliseconds{20};

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
    // A 2026-07-28 request's method: its result is shaped for that revision
    // (resultType, and the cache hints of list results). "" otherwise.
    std::string stateless_method;
    json::value stateless_id;      // its request's id
    std::string stateless_digest;  // of its method and params (what a retry must repeat)
    // The HTTP status its answer gets when it goes as one JSON object (a
    // 2026-07-28 error may call for 400 or 404).
    unsigned status = 200;

    [[nodiscard]] bool finished() const noexcept { return !standalone && pending == 0; }
    [[nodiscard]] std::uint64_t last_seq() const noexcept { return next_seq - 1; }
};

inline std::string event_id(StreamId stream, std::uint64_t seq) {
    return std::to_string(stream) + "-" + std::to_string(seq);
}

// "<stream>-<seq>" -> (stream, seq)
inline std::optional<std::pair<StreamId, std::uint64_t>> parse_event_id(std::string_view text) {
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

// A new session id for a session whose home is shard `home` of `shards`.
inline std::string new_session_id(std::size_t home, std::size_t shards) {
    // "The session ID SHOULD be globally unique and cryptographically secure"
    // and "MUST only contain visible ASCII characters".
    auto bytes = crypto::random_bytes(16);
    if (!bytes) {
        return {};
    }
    // Its first byte, modulo the number of shards, is the home shard: a
    // request on any shard's connection finds the session without asking
    // the others. The other 15 bytes (and what is left of the first) stay random.
    const std::size_t first = (*bytes)[0];
    std::size_t v = first - first % shards + home;
    if (v > 0xFFU) {
        v -= shards;
    }
    (*bytes)[0] = static_cast<std::uint8_t>(v);
    return to_hex(*bytes);
}

// The home shard a session id names (nullopt: not one of ours).
inline std::optional<std::size_t> home_of(std::string_view id, std::size_t shards) {
    unsigned first = 0;
    if (id.size() < 2 ||
        std::from_chars(id.data(), id.data() + 2, first, 16).ptr != id.data() + 2) {
        return std::nullopt;
    }
    return first % shards;
}

class Session;
class ConnectionGuard;

// What the shards of one server share: each other, and the session counts
// behind the server-wide session limits (taken at initialize and given back
// at close, never on another request).
struct ServerGroup {
    explicit ServerGroup(std::size_t n) : count(n) {}
    const std::size_t count;
    std::vector<std::weak_ptr<HttpServer::Impl>> shards;  // fixed once the server is built
    std::atomic<std::size_t> next{0};                     // the shard the next connection goes to
    std::atomic<std::size_t> next_session{0};             // the home of the next new session
    std::atomic<std::size_t> lent{0};                     // requests answered on another shard now
    std::atomic<std::uint64_t> connections_moved{0};      // connections moved to another shard
    std::atomic<std::size_t> closed{0};  // connections ended since the last sweep of shard 0
    std::mutex mutex;
    std::size_t sessions = 0;
    std::map<std::string, std::size_t> by_identity;  // key: identity_key()

    [[nodiscard]] std::size_t size() const noexcept { return count; }
};

// The key a session counts under for limits.max_sessions_per_identity.
// A verified client identity, else a token's subject (a self-made key per
// connection must not make a fresh identity), else an unverified key.
inline std::string identity_key(const PeerInfo& peer) {
    if (peer.handshake.peer_id && (peer.handshake.peer_verified || !peer.token)) {
        return peer.handshake.peer_id->str();
    }
    return peer.token ? "token " + peer.token->issuer + " " + peer.token->subject : std::string{};
}

// A 2026-07-28 caller: its peer id, or an anonymous caller's connection. Its
// kept sessions, their shard and the binding of its requestState go by it.
inline std::string stateless_caller(const PeerInfo& peer) {
    std::string token;
    if (peer.token) {
        token = " token " + peer.token->issuer + " " + peer.token->subject + " " +
                peer.token->client_id;
        for (const auto& s : peer.token->scopes) {
            token.append(" ").append(s);
        }
        for (const auto& [name, value] : peer.token->claims) {
            token.append(" ").append(name).append("=").append(value);
        }
    }
    if (peer.handshake.peer_id) {
        return "id " + peer.handshake.peer_id->str() + token;
    }
    // A caller known by its token is that caller on any connection.
    return peer.token ? token.substr(1) : "anonymous " + peer.remote;
}

struct HttpServer::Impl : std::enable_shared_from_this<HttpServer::Impl> {
    Impl(asio::io_context& io_context, SSL_CTX* ctx, HttpServerOptions opts,
         std::shared_ptr<ServerGroup> shards, std::size_t shard)
        : io(io_context),
          ssl(adopt(ctx)),
          options(share_out(std::move(opts), shards->size())),
          origins(options.allowed_origins),
          group(std::move(shards)),
          index(shard),
          acceptor(io_context),
          sweeper(io_context) {}

    // This shard's part of the limits that are shared out (see HttpServerLimits).
    static HttpServerOptions share_out(HttpServerOptions o, std::size_t shards) {
        const auto part = [shards](std::size_t n) {
            return std::max<std::size_t>(1, (n + shards - 1) / shards);
        };
        o.limits.max_connections = part(o.limits.max_connections);
        o.limits.buffer_bytes = part(o.limits.buffer_bytes);
        return o;
    }

    static asio::ssl::context adopt(SSL_CTX* ctx) {
        SSL_CTX_up_ref(ctx);
        return asio::ssl::context(ctx);  // owns the extra reference
    }

    asio::io_context& io;
    asio::ssl::context ssl;
    HttpServerOptions options;
    OriginPolicy origins;
    std::shared_ptr<ServerGroup> group;
    std::size_t index;       // which shard this is
    tcp::acceptor acceptor;  // open on shard 0 only
    asio::steady_timer sweeper;
    std::unordered_map<std::string, std::shared_ptr<Session>> sessions;
    // 2026-07-28: the sessions this shard keeps for stateless callers:
    // caller (peer id, or an anonymous caller's connection) -> declared
    // capabilities (their JSON) -> id in `sessions`. An entry goes when its
    // session does (remove_session).
    std::unordered_map<std::string, std::map<std::string, std::string>> stateless;
    // Seals the requestState of this shard's input_required results (a
    // caller's requests always come to the same shard).
    crypto::Sealer sealer;
    enum class Phase { handshake, idle, reading, busy };
    struct Conn {
        std::string address;
        Clock::time_point since = Clock::now();
        Phase phase = Phase::handshake;
        bool evicted = false;
        // Its stream is in use on another shard (a request of a session
        // there): only that shard touches it until it comes back.
        bool lent = false;
    };
    // Every connection whose serve() is running, evicted ones included
    // until their coroutine has seen the close.
    std::map<DeadlineSocket*, Conn> connections;
    // Evicted entries of `connections`: their sockets are closed and they
    // count toward no limit. Under load their coroutines may run long after
    // the close; counting them would let closed connections crowd out new
    // ones (each admit then evicts a live one, and at last refuses).
    std::size_t closing = 0;
    std::map<std::string, std::size_t> handshaking;  // live handshakes, by address
    // Read by stats() from other threads; written here only.
    std::atomic<std::uint64_t> evicted{0};
    std::atomic<std::uint64_t> refused{0};         // closed at once: every connection at work
    std::atomic<std::size_t> connection_count{0};  // open: connections less closing

    [[nodiscard]] std::size_t live() const { return connections.size() - closing; }
    void count_connections() { connection_count.store(live(), std::memory_order_relaxed); }
    std::atomic<std::size_t> session_count{0};

    void set_phase(DeadlineSocket* tcp, Phase phase) {
        const auto it = connections.find(tcp);
        if (it == connections.end() || it->second.phase == phase) {
            return;
        }
        if (it->second.phase == Phase::handshake && !it->second.evicted) {
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
        DeadlineSocket* victim = nullptr;
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
        evict(victim);
        return true;
    }
    // Closes a connection to make room. Its entry stays until its
    // coroutine ends, marked, out of every count.
    void evict(DeadlineSocket* tcp) {
        auto& c = connections.at(tcp);
        if (c.evicted) {
            return;
        }
        if (c.phase == Phase::handshake) {
            forget_handshake(c.address);
        }
        c.evicted = true;
        ++closing;
        count_connections();
        ++evicted;
        boost::system::error_code ignored;
        tcp->socket().close(ignored);
    }
    // Envoy's overload manager, in small: past half the connection limit the
    // deadlines of connections that do nothing yet shrink, to a tenth at the limit.
    [[nodiscard]] double overload() const {
        const double load =
            static_cast<double>(connection_count.load(std::memory_order_relaxed)) /
            static_cast<double>(std::max<std::size_t>(options.limits.max_connections, 1));
        return load <= 0.5 ? 1.0 : std::max(0.1, 1.0 - (load - 0.5) * 1.8);
    }
    [[nodiscard]] std::chrono::milliseconds scaled(std::chrono::milliseconds d) const {
        const auto ms = static_cast<std::int64_t>(static_cast<double>(d.count()) * overload());
        return std::max(std::chrono::milliseconds{std::min<std::int64_t>(ms, d.count())},
                        std::min(d, std::chrono::milliseconds{250}));
    }
    std::atomic<std::size_t> open_streams{0};
    std::atomic<std::size_t> buffered{0};  // bytes of events held in this shard's sessions' streams
    bool stopped = false;

    // Shard `shard` (< the group's size), or this one if that one is gone.
    [[nodiscard]] std::shared_ptr<Impl> shard_at(std::size_t shard);
    // The shard a request belongs on: the home of the session it names
    // (this one when it names none, or one that cannot be ours).
    [[nodiscard]] std::shared_ptr<Impl> home(std::string_view session_id);
    // Where a 2026-07-28 caller's kept session lives: its identity (or, for
    // an anonymous caller, its address and port) hashed over the shards.
    [[nodiscard]] std::shared_ptr<Impl> stateless_home(const PeerInfo& peer);
    // Where a request that may open a session (a POST to the MCP path
    // without one) is answered: new sessions are dealt to the shards in
    // turn, whichever connection brings their initialize.
    [[nodiscard]] std::shared_ptr<Impl> new_session_home();
    asio::awaitable<void> accept_loop();
    // Takes a connection dealt to this shard: the limits, then serve().
    void admit(tcp::socket socket, std::string address);
    // Answers one request read from `stream` (on the session's home shard).
    asio::awaitable<bool> respond(ServerTls& stream, const Request& req, const PeerInfo& peer);
    asio::awaitable<AuthDecision> authorize(const Request& req, const PeerInfo& peer);
    void stop_here();  // stop(), on this shard's thread
    void lend(DeadlineSocket* tcp, bool out);
    void add_session(const std::shared_ptr<Session>& session);
    void remove_session(const std::string& id);
    asio::awaitable<void> sweep_loop();
    // Under pressure, connections that have not started a request are held
    // to the shrunken deadlines too, not only new ones.
    asio::awaitable<void> pressure_loop();
    asio::steady_timer pressure{io};
    // Over the buffer budget: drops the streams no client reads, largest first.
    void shed();
    static void account_standalone_drop(Session& session, Stream& stream);
    // Serves one admitted connection; `guard` holds its place in `connections`.
    asio::awaitable<void> serve(std::unique_ptr<ServerTls> owned, ConnectionGuard guard);
    // A request read on a connection that another shard handed over, with
    // who sent it (its token's identity included).
    struct Arrived {
        Request request;
        PeerInfo who;
    };
    // Its requests, once the handshake is done; with `arrived`, a connection
    // another shard handed over, which answers that request first (and is
    // not handed over again).
    asio::awaitable<void> serve_requests(std::unique_ptr<ServerTls> owned, ConnectionGuard guard,
                                         PeerInfo peer, beast::flat_buffer buffer,
                                         std::optional<Arrived> arrived);
    // On this shard's thread: hands the connection, with the request just
    // read on it, to `to` (that request's session's home), where it goes on.
    // False when it stays here (its request is then lent to `to`).
    bool handover(const std::shared_ptr<Impl>& to, std::unique_ptr<ServerTls>& owned,
                  ConnectionGuard& guard, PeerInfo& peer, beast::flat_buffer& buffer, Request& req,
                  const PeerInfo& who);
    // On this shard's thread: a connection another shard handed over, its
    // socket made on this shard's context.
    void adopt(std::unique_ptr<ServerTls> stream, tcp::socket socket, std::string address,
               PeerInfo peer, beast::flat_buffer buffer, Arrived arrived);
    Clock::time_point last_refusal_log{};
};

class Session final : public ServerSession, public std::enable_shared_from_this<Session> {
  public:
    Session(const std::shared_ptr<HttpServer::Impl>& server, std::string id, PeerInfo peer)
        : server_(server),
          io_(&server->io),
          group_(server->group),
          id_(std::move(id)),
          peer_(std::move(peer)) {
        Stream standalone;
        standalone.id = k_standalone_stream;
        standalone.standalone = true;
        streams_.emplace(k_standalone_stream, std::move(standalone));
    }

    [[nodiscard]] const std::string& id() const noexcept override { return id_; }
    [[nodiscard]] const PeerInfo& peer() const noexcept override { return peer_; }
    [[nodiscard]] const std::string& protocol_version() const noexcept override { return version_; }
    [[nodiscard]] asio::io_context& context() const noexcept override { return *io_; }

    bool send(StreamId stream_id, json::object message) override {
        if (closed_) {
            return false;
        }
        if (stateless_ && !stateless_route(stream_id, message)) {
            return true;  // held for a retry, or turned into input_required
        }
        if (stateless_ && stream_id == init_stream_ && !message.contains("method")) {
            stateless_initialized(std::move(message));
            return true;
        }
        if (stateless_ && stream_id == k_standalone_stream) {
            // No GET stream in 2026-07-28: what the server says outside a
            // request reaches the caller's subscriptions/listen streams.
            stateless_fan_out(std::move(message));
            return true;
        }
        const auto it = streams_.find(stream_id);
        if (it == streams_.end()) {
            spdlog::debug("session {}: stream {} is gone; message dropped", short_id(), stream_id);
            return false;
        }
        Stream& stream = it->second;
        const bool response = !message.contains("method");
        if (response && !stream.stateless_method.empty()) {
            shape_stateless_result(message, stream.stateless_method);
            stream.status = stateless_status(message);
        }
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
        release();
    }
    // Takes this session's place in the server-wide session limits; false
    // (and an answer for the client in `refusal`) when there is none.
    enum class Refusal { none, identity, total };
    // `count`: the sessions the limit that refused counts.
    Refusal reserve(const HttpServerLimits& limits, std::size_t& count);
    // Gives it back (once; at close, or when the session never opened).
    void release();
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
    asio::io_context* io_;
    std::shared_ptr<ServerGroup> group_;
    bool reserved_ = false;
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

    // 2026-07-28 (http_stateless.cpp): a session the server keeps for a
    // caller of the stateless revision, opened with an initialize of its own
    // and never named to the client (a request naming its id gets 404).
    bool stateless_ = false;
    std::string stateless_caller_;  // its keys in HttpServer::Impl::stateless
    std::string stateless_caps_;
    bool stateless_ready_ = false;
    json::object init_result_;  // the handler's answer to that initialize
    // Requests that came before that answer, in order.
    std::vector<std::pair<mcp::Message, StreamId>> waiting_;
    void stateless_initialized(json::object response);
    // Hands `message` of `stream` to the handler (server/discover is answered here).
    void stateless_deliver(mcp::Message message, StreamId stream);
    // resultType on every result; ttlMs and cacheScope on cacheable ones.
    static void shape_stateless_result(json::object& message, std::string_view method);
    // The HTTP status of a 2026-07-28 answer: 400 for HeaderMismatch and an
    // unsupported version, 404 for an unknown method, 200 otherwise.
    static unsigned stateless_status(const json::object& message);
    // subscriptions/listen: a stream that stays open, acknowledged first,
    // carrying only the notification types it asked for (and the server has).
    struct Listener {
        StreamId stream = 0;
        json::value id;  // the listen request's id: the subscription's
        bool tools = false;
        bool prompts = false;
        bool resources = false;
        std::set<std::string> uris;
    };
    std::vector<Listener> listeners_;
    // Multi round-trip requests. A server request (an upstream's
    // elicitation or sampling, the policy's ask) on a stateless request's
    // stream answers that request with input_required; what comes for it
    // until the client retries is held; the retry's stream then takes over
    // (redirected, the final response given the retry's id).
    struct Pending {
        StreamId stream = 0;  // the stream the input_required answered
        std::vector<std::pair<std::string, json::value>> inputs;  // key -> the server request's id
        Clock::time_point expires;
    };
    std::map<std::string, Pending> pending_;              // by the requestState's token id
    std::map<StreamId, std::vector<json::object>> held_;  // what came for an answered stream
    struct Redirect {
        StreamId to = 0;
        json::value id;
    };
    std::map<StreamId, Redirect> redirects_;
    // False when `message` was taken care of (held, or sent as input_required);
    // otherwise `stream_id` and `message` are where and what to deliver.
    bool stateless_route(StreamId& stream_id, json::object& message);
    void stateless_input_required(Stream& stream, json::object request);
    // A retry with requestState: checks it, gives the answers to the
    // handler and redirects what remains of the first request to `stream`.
    // An error message for the client otherwise.
    std::optional<std::string> stateless_resume(const std::string& token_id,
                                                const json::object& params, StreamId stream,
                                                const json::value& id);
    void stateless_expire();
    std::uint64_t internal_ids_ = 0;
    void stateless_listen(const mcp::Message& message, StreamId stream);
    void stateless_fan_out(json::object message);
    // Ends the listen whose request id is `id` (notifications/cancelled);
    // false when there is none.
    bool stateless_unlisten(const json::value& id);
};

// ---- http_requests.cpp ----

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
    // The request's messages for the session's handler: run by
    // serve_stream() once the connection has attached to the stream (so
    // that answers given at once are written by it), on the session's
    // shard and without a turn of the event loop in between; posted there
    // by deliver_later() when the outcome is not served.
    std::function<void()> deliver;
};

// Posts what `out` still has to deliver to `io` (see Outcome::deliver).
void deliver_later(asio::io_context& io, Outcome& out);

Outcome handle(HttpServer::Impl& server, const Request& req, const PeerInfo& peer);
http::response<http::string_body> make_response(const Request& req, http::status status,
                                                std::string_view content_type, std::string body);
// An HTTP error with a JSON-RPC error body without an id.
Outcome http_error(const Request& req, http::status status, int rpc_code,
                   const std::string& message, json::value data = nullptr);
// A new session for `peer` (not yet added to the server) and its place in
// the session limits, or the HTTP answer that refuses it: 429 when the
// peer's identity is at limits.max_sessions_per_identity, 503 at
// limits.max_sessions, 500 without a random id.
std::variant<std::shared_ptr<Session>, Outcome> new_session(HttpServer::Impl& server,
                                                            const Request& req,
                                                            const PeerInfo& peer);
// http_stateless.cpp: a POST of the 2026-07-28 revision (MCP-Protocol-Version
// 2026-07-28), already parsed.
Outcome handle_stateless(HttpServer::Impl& server, const Request& req, const PeerInfo& peer,
                         mcp::Parsed parsed);
// A header's value ("" when the request has none).
std::string_view header(const Request& req, std::string_view name);
asio::awaitable<bool> serve_stream(HttpServer::Impl& server, ServerTls& stream, const Request& req,
                                   Outcome& outcome);
asio::awaitable<bool> write_response(ServerTls& stream, http::response<http::string_body>& res,
                                     std::chrono::milliseconds timeout);
// The path of a request's target, without its query.
std::string_view target_path(const Request& req);
std::optional<http::response<http::string_body>> read_failure(const boost::system::error_code& ec,
                                                              bool timed_out,
                                                              const HttpServerOptions& options);

// Registers a connection for stop() and counts it against the limits,
// from its admission (not from when its coroutine first runs: a burst of
// admissions queued on a busy shard must see each other) until the guard,
// a parameter of serve(), goes with the coroutine's frame, whether or not
// the coroutine ever ran. It keeps the shard alive until then: a frame that
// never ran may be destroyed with the io_context, after the server.
class ConnectionGuard final {
  public:
    ConnectionGuard(std::shared_ptr<HttpServer::Impl> server, DeadlineSocket& tcp,
                    std::string address)
        : server_(std::move(server)), tcp_(&tcp) {
        ++server_->handshaking[address];
        server_->connections.emplace(tcp_, HttpServer::Impl::Conn{std::move(address)});
        server_->count_connections();
    }
    ~ConnectionGuard() {
        if (server_ == nullptr) {
            return;
        }
        if (const auto it = server_->connections.find(tcp_); it != server_->connections.end()) {
            if (it->second.evicted) {
                --server_->closing;
            } else if (it->second.phase == HttpServer::Impl::Phase::handshake) {
                server_->forget_handshake(it->second.address);
            }
            server_->connections.erase(it);
            server_->count_connections();
        }
        server_->group->closed.fetch_add(1, std::memory_order_relaxed);
    }
    // A connection another shard handed over, at work on a request.
    struct HandedOver {};
    ConnectionGuard(std::shared_ptr<HttpServer::Impl> server, DeadlineSocket& tcp,
                    std::string address, HandedOver /*tag*/)
        : server_(std::move(server)), tcp_(&tcp) {
        HttpServer::Impl::Conn c{std::move(address)};
        c.phase = HttpServer::Impl::Phase::busy;
        server_->connections.emplace(tcp_, std::move(c));
        server_->count_connections();
    }
    // The connection leaves for another shard: out of `connections` here, not
    // counted as closed. Its address; nothing when it is being closed here.
    std::optional<std::string> leave() {
        const auto it = server_->connections.find(tcp_);
        if (it == server_->connections.end() || it->second.evicted) {
            return std::nullopt;
        }
        std::string address = std::move(it->second.address);
        server_->connections.erase(it);
        server_->count_connections();
        server_.reset();
        return address;
    }
    ConnectionGuard(ConnectionGuard&& other) noexcept
        : server_(std::move(other.server_)), tcp_(other.tcp_) {}
    ConnectionGuard(const ConnectionGuard&) = delete;
    ConnectionGuard& operator=(const ConnectionGuard&) = delete;
    ConnectionGuard& operator=(ConnectionGuard&&) = delete;

  private:
    std::shared_ptr<HttpServer::Impl> server_;  // null once moved from
    DeadlineSocket* tcp_;
};

}  // namespace pqmcp::transport
