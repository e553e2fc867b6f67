// Internal: one downstream MCP session of the gateway. It initializes every
// upstream with the client's parameters, puts each request through its filter
// chain (chain.hpp, filters/factory.hpp) and each list through the list
// chain, sends what passes to its owner with ids of its own, and relays the
// upstreams' own requests and notifications back to the client on the right
// stream. It keeps the session's state and routes; the filters decide.
#pragma once

#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include <boost/json/object.hpp>

#include "chain.hpp"
#include "filters/factory.hpp"
#include "pqmcp/gateway/config.hpp"
#include "pqmcp/transport/http_server.hpp"
#include "shared.hpp"
#include "upstream.hpp"

namespace pqmcp::gateway {

// A member of `o`, or `fallback` when `o` is null or lacks it.
inline boost::json::value member_or(const boost::json::object* o, std::string_view key,
                                    boost::json::value fallback) {
    if (o == nullptr) {
        return fallback;
    }
    const auto* v = o->if_contains(key);
    return v != nullptr ? *v : fallback;
}

class GatewaySession final : public transport::SessionHandler,
                             public Subscriber,
                             public Upstreams,
                             public Router,
                             public Lister,
                             public Asker,
                             public Forwarder,
                             public ChainSink {
  public:
    // `shard`: the thread `downstream` lives on (its context()).
    GatewaySession(SharedState& shared, Shard& shard, transport::ServerSession& downstream);
    ~GatewaySession() override;
    GatewaySession(const GatewaySession&) = delete;
    GatewaySession& operator=(const GatewaySession&) = delete;
    GatewaySession(GatewaySession&&) = delete;
    GatewaySession& operator=(GatewaySession&&) = delete;

    void on_message(mcp::Message message, transport::StreamId stream) override;
    void on_closed(std::string_view reason) override;
    // Audits a "started" record for each request in flight since before
    // `older_than` that has none yet (so that a crash cannot hide it).
    void note_started(std::chrono::steady_clock::time_point older_than);

    void upstream_request(UpstreamClient& from, mcp::Message request) override;
    void upstream_notification(UpstreamClient& from, mcp::Message notification) override;

    // Upstreams
    [[nodiscard]] std::size_t count() const override { return links_.size(); }
    [[nodiscard]] const std::string& name(std::size_t link) const override;
    [[nodiscard]] const std::string& prefix(std::size_t link) const override;
    [[nodiscard]] bool usable(std::size_t link) const override;
    [[nodiscard]] bool offers(std::size_t link, std::string_view capability) const override;
    // Router
    [[nodiscard]] std::optional<std::pair<std::size_t, std::string>> route_name(
        std::string_view name) const override;
    [[nodiscard]] std::optional<std::size_t> route_uri(std::string_view uri) const override;
    // Lister
    void fetch(std::size_t link, ListKind kind, std::function<void()> then) override;
    // Asker
    [[nodiscard]] bool can_ask() const override;
    void ask(transport::StreamId stream, boost::json::object params,
             std::function<void(tl::expected<mcp::Message, std::string>)> done) override;
    // Forwarder
    void dispatch(const std::shared_ptr<Exchange>& x) override;
    // ChainSink
    void note(const Exchange& x) override;
    void refuse(const Exchange& x, Step step) override;

  private:
    struct Link {
        const UpstreamConfig* config = nullptr;
        std::shared_ptr<UpstreamClient> client;
        std::string prefix;   // "<name><separator>", or "" without namespacing
        std::string failure;  // why it did not start ("" when it did)
    };
    struct InFlight {
        std::size_t link = 0;
        std::uint64_t handle = 0;
        transport::StreamId stream = 0;
        std::uint64_t order = 0;
    };
    struct Relayed {  // a request an upstream made of the client
        std::size_t link = 0;
        boost::json::value upstream_id;
    };

    void handle_request(mcp::Message m, transport::StreamId stream);
    void handle_notification(mcp::Message m);
    void handle_response(mcp::Message m);
    void initialize(mcp::Message m, transport::StreamId stream);
    void finish_initialize(const boost::json::value& id, transport::StreamId stream);
    // Every upstream's list of `kind`, through the list chain, to the client.
    void list(const mcp::Message& m, transport::StreamId stream, ListKind kind);
    void forward(std::size_t link, mcp::Message m, transport::StreamId stream,
                 std::function<void(const mcp::Message&)> on_success = {});
    void fan_out_set_level(const mcp::Message& m, transport::StreamId stream);
    [[nodiscard]] std::optional<std::size_t> link_of(const UpstreamClient& client) const;

    // Every response to the client goes through respond(): it finishes the
    // request's trace (audit record, metrics, dashboard).
    void respond(transport::StreamId stream, boost::json::object message);
    void reply(transport::StreamId stream, const boost::json::value& id, boost::json::value result);
    void reply_error(transport::StreamId stream, const boost::json::value& id, int code,
                     const std::string& message);

    SharedState& shared_;
    Shard& shard_;
    // Valid until on_closed() returns (the transport keeps the closed session
    // until then); never to be touched after.
    transport::ServerSession& downstream_;
    std::string session_id_;  // a copy of downstream_.id() that outlives it
    std::string log_id_;
    std::string version_;
    boost::json::object client_params_;
    std::vector<Link> links_;
    std::size_t starting_ = 0;
    std::map<std::string, InFlight> in_flight_;  // by the client's request id (JSON text)
    std::map<std::int64_t, Relayed> relayed_;    // by the id we gave the client
    std::int64_t next_relay_id_ = 1;
    std::uint64_t order_ = 0;
    ResourceRoutes routes_;
    std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
    policy::Caller caller_;
    std::unique_ptr<SessionChains> chains_;  // the filters and the state they share

    struct OwnRequest {  // the gateway's own requests to the client (elicitation)
        std::function<void(tl::expected<mcp::Message, std::string>)> done;
        std::unique_ptr<boost::asio::steady_timer> timer;
    };
    std::map<std::int64_t, OwnRequest> own_requests_;

    // What the gateway did with each request in flight, for its audit record.
    struct Trace {
        std::chrono::steady_clock::time_point start;
        std::uint64_t call = 0;        // unique in this gateway's run; in every record of it
        bool started_written = false;  // a "started" record went to the audit
        std::string method;
        std::string target;  // tool or prompt name, or resource URI
        std::string upstream;
        Decision decision;
        boost::json::object arguments;  // args_sha256 / args, per configuration
        boost::json::array behaviour;   // {kind, score} of each behaviour finding
        double behaviour_score = 0;
    };
    std::map<std::string, Trace> traces_;  // by the client's request id (JSON text)
    void begin_trace(const mcp::Message& m);
    [[nodiscard]] boost::json::object trace_record(const std::string& key, const Trace& t) const;
    void refuse_duplicate(const mcp::Message& m, transport::StreamId stream);
    // Ids of the client's requests accepted and not yet answered or cancelled.
    std::map<std::string, transport::StreamId> open_ids_;  // -> the stream owed its response
    // Cancellations of ids not (yet) in flight, the latest few.
    std::deque<std::string> early_cancels_;
    static constexpr std::size_t k_max_early_cancels = 256;
    void finish_trace(const std::string& key, const boost::json::object& message,
                      std::function<void()> then = nullptr);
};

}  // namespace pqmcp::gateway
