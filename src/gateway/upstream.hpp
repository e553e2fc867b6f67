// Internal: the gateway as an MCP client of its upstream servers.
//
// A Channel carries JSON-RPC messages to one running upstream (a child
// process over stdio, a Streamable HTTP server, the built-in demo server).
// An UpstreamClient speaks MCP over a channel: it initializes the server with
// the downstream client's parameters, gives every request an id of its own
// (and every progress token), times requests out, relays the server's own
// requests and notifications to its subscribers (gateway sessions), and starts
// the server again when it is needed after an exit or an idle stop.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include <openssl/ssl.h>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/json/object.hpp>

#include "pqmcp/core/error.hpp"
#include "pqmcp/gateway/config.hpp"
#include "pqmcp/mcp/jsonrpc.hpp"
#include "pqmcp/oauth/client.hpp"
#include "pqmcp/sandbox/sandbox.hpp"
#include "pqmcp/transport/param_headers.hpp"

namespace pqmcp::gateway {

using transport::ParamHeaderValues;

// The stdio children of every thread's upstreams, counted against
// limits.max_children and max_children_per_identity. Thread-safe; taken when a
// child starts and given back when it has been reaped, never per request.
class ChildCount {
  public:
    // A place for one more child of `owner` (nullptr: a shared upstream's);
    // the limit it meets otherwise, as a message.
    [[nodiscard]] tl::expected<std::uint64_t, std::string> reserve(const std::string* owner,
                                                                   const Limits& limits);
    void release(const std::optional<std::string>& owner);
    [[nodiscard]] std::size_t running() const;
    // Whether a child of `owner` would meet a limit now.
    [[nodiscard]] bool full(const std::optional<std::string>& owner, const Limits& limits) const;

  private:
    mutable std::mutex mutex_;
    std::size_t running_ = 0;
    std::uint64_t started_ = 0;  // numbers the children's TMPDIRs
    // Children running for the sessions of each TLS peer id (not shared ones).
    std::map<std::string, std::size_t> by_owner_;
};

class OpenApiService;

// What every upstream needs from the gateway: one per thread (its io), the
// rest shared and fixed once the gateway runs.
struct Services {
    boost::asio::io_context& io;
    const GatewayConfig& config;
    ChildCount& children;
    // https upstreams: the client context for each, by upstream name.
    std::map<std::string, SSL_CTX*> tls_contexts;
    // Answers the notifications of sandboxed children (null: no sandbox here).
    sandbox::Supervisor* supervisor = nullptr;
    // Where sandboxed children get their private TMPDIR ("" for none).
    std::filesystem::path tmp_root;
    // The OpenAPI upstreams' shared parts, by upstream name.
    std::map<std::string, std::shared_ptr<OpenApiService>> openapi;
    // HTTP upstreams that want an OAuth token: the gateway's own, by upstream name.
    std::map<std::string, std::shared_ptr<oauth::TokenSource>> upstream_tokens;
};

// The environment of a child of `u`: PATH, HOME, LANG, the passthrough
// variables, `tmpdir` as TMPDIR (when given), then `u.env`.
[[nodiscard]] std::vector<std::pair<std::string, std::string>> child_environment(
    const UpstreamConfig& u, const std::filesystem::path& tmpdir, const std::string& home);

struct ChannelEvents {
    std::function<void(mcp::Message)> on_message;
    // The upstream is gone (process exit): nothing more will arrive.
    std::function<void(std::string reason)> on_closed;
};

class Channel {
  public:
    Channel() = default;
    virtual ~Channel() = default;
    Channel(const Channel&) = delete;
    Channel& operator=(const Channel&) = delete;
    Channel(Channel&&) = delete;
    Channel& operator=(Channel&&) = delete;
    virtual void send(const boost::json::object& message) = 0;
    // A request with the Mcp-Param-* headers its 2026-07-28 client sent, for a
    // channel that passes on those it does not set itself (HTTP).
    virtual void send_request(const boost::json::object& message,
                              const ParamHeaderValues& /*param_headers*/) {
        send(message);
    }
    virtual void stop() = 0;  // graceful; on_closed may follow
    // The request with this id is given up (timeout, cancellation): a channel
    // that holds resources for it (an HTTP exchange) lets them go.
    virtual void abandon(const boost::json::value& /*id*/) {}
};

// Starts a channel for `upstream`. Errors: startup_failed (spawn, limits).
// `owner`: the TLS peer id of the session it is for (nullptr: shared by all).
[[nodiscard]] Result<std::unique_ptr<Channel>> open_channel(Services& services,
                                                            const UpstreamConfig& upstream,
                                                            ChannelEvents events,
                                                            const std::string* owner = nullptr);

class UpstreamClient;

// A gateway session, as an upstream client sees it.
class Subscriber {
  public:
    Subscriber() = default;
    virtual ~Subscriber() = default;
    Subscriber(const Subscriber&) = delete;
    Subscriber& operator=(const Subscriber&) = delete;
    Subscriber(Subscriber&&) = delete;
    Subscriber& operator=(Subscriber&&) = delete;
    // A request from the server for the client (sampling, elicitation, roots).
    virtual void upstream_request(UpstreamClient& from, mcp::Message request) = 0;
    // A notification that is not progress (list_changed, logging, cancelled, ...).
    virtual void upstream_notification(UpstreamClient& from, mcp::Message notification) = 0;
};

class UpstreamClient final : public std::enable_shared_from_this<UpstreamClient> {
  public:
    // The response (result or error) or why there is none (timeout,
    // upstream_unavailable as a JSON-RPC error code and text).
    struct Failure {
        int code;
        std::string message;
    };
    using Reply = std::function<void(tl::expected<mcp::Message, Failure>)>;
    using Progress = std::function<void(mcp::Message notification)>;

    // `owner`: the TLS peer id of the one session it serves (nullopt: shared).
    UpstreamClient(Services& services, const UpstreamConfig& config,
                   boost::json::object init_params, std::optional<std::string> owner = {});
    ~UpstreamClient();
    UpstreamClient(const UpstreamClient&) = delete;
    UpstreamClient& operator=(const UpstreamClient&) = delete;
    UpstreamClient(UpstreamClient&&) = delete;
    UpstreamClient& operator=(UpstreamClient&&) = delete;

    [[nodiscard]] const UpstreamConfig& config() const noexcept { return config_; }
    [[nodiscard]] const std::string& name() const noexcept { return config_.name; }

    // Starts the server and initializes it; `done` gets the outcome.
    void start(std::function<void(const tl::expected<void, Failure>&)> done);
    [[nodiscard]] bool ready() const noexcept { return state_ == State::ready; }
    // From the last successful initialize.
    [[nodiscard]] const boost::json::object& initialize_result() const noexcept {
        return init_result_;
    }
    [[nodiscard]] bool has_capability(std::string_view name) const;

    // Sends a request (its id replaced by one of ours; a progress token too).
    // Returns a handle for cancel(). `owner` is the session it is for.
    // `param_headers`: the client's Mcp-Param-* headers (2026-07-28), passed
    // on by an HTTP channel.
    std::uint64_t request(boost::json::object message, Subscriber* owner, Reply reply,
                          Progress progress = {}, ParamHeaderValues param_headers = {});
    // Every page of a list (`method` such as tools/list, its items under
    // `key`), following nextCursor up to `max_pages` pages. A cursor the
    // server repeats, or more pages than that, ends it with a note. Errors:
    // the request's failure, or the server's JSON-RPC error as a Failure, or
    // `key` that is not an array (-32603).
    struct Listed {
        boost::json::array items;
        std::string note;  // why it stopped early ("" when it did not)
    };
    using ListReply = std::function<void(tl::expected<Listed, Failure>)>;
    void list_all(std::string_view method, std::string_view key, Subscriber* owner,
                  std::size_t max_pages, ListReply done);
    // notifications/cancelled for a request sent with request(); its reply is dropped.
    void cancel(std::uint64_t handle, std::string_view reason);
    void notify(const boost::json::object& notification);
    // Answers a request the server made (`server_id` as the server sent it).
    void answer(const boost::json::value& server_id, boost::json::object response);

    void subscribe(Subscriber* s);
    // Removes `s` and every pending request it owns (without replies).
    void unsubscribe(Subscriber* s);
    [[nodiscard]] std::size_t pending_for(const Subscriber* s) const;
    // The subscriber whose request was sent most recently and is still pending.
    [[nodiscard]] Subscriber* latest_owner() const;

    void stop();

  private:
    enum class State { idle, starting, ready, failed, stopped };
    struct Pending {
        Reply reply;
        Progress progress;
        Subscriber* owner = nullptr;
        std::unique_ptr<boost::asio::steady_timer> timer;
        std::optional<std::string> token;  // our progress token
        boost::json::value client_token;   // the client's progress token
        std::uint64_t order = 0;
        bool internal = false;
        ParamHeaderValues param_headers;  // to send with it once the upstream is ready
    };

    void launch();
    void on_message(mcp::Message message);
    void on_closed(const std::string& reason);
    void send_now(const boost::json::object& message);
    void arm(std::int64_t id);
    void complete(std::int64_t id, tl::expected<mcp::Message, Failure> outcome);
    void fail_all(int code, const std::string& message);
    void flush_queue();
    void touch();

    Services& services_;
    UpstreamConfig config_;
    boost::json::object init_params_;
    std::optional<std::string> owner_;
    boost::json::object init_result_;
    State state_ = State::idle;
    std::unique_ptr<Channel> channel_;
    std::uint64_t channel_gen_ = 0;  // events of an older channel are ignored
    std::int64_t next_id_ = 1;
    std::uint64_t order_ = 0;
    std::map<std::int64_t, Pending> pending_;
    std::map<std::string, std::int64_t> tokens_;  // our progress token -> request id
    std::deque<std::pair<std::int64_t, boost::json::object>> queue_;  // waiting for ready
    std::vector<std::function<void(const tl::expected<void, Failure>&)>> on_ready_;
    std::vector<Subscriber*> subscribers_;
    std::deque<std::chrono::steady_clock::time_point> crashes_;
    std::string failure_;
    boost::asio::steady_timer idle_timer_;
    std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace pqmcp::gateway
