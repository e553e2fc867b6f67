// Internal: one downstream MCP session of the gateway. It initializes every
// upstream with the client's parameters, merges their tools, prompts and
// resources under namespaced names, routes each request to its owner with ids
// of its own, and relays the upstreams' own requests and notifications back
// to the client on the right stream.
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

#include "guard.hpp"
#include "pqmcp/gateway/config.hpp"
#include "pqmcp/policy/behaviour.hpp"
#include "pqmcp/policy/limiter.hpp"
#include "pqmcp/policy/policy.hpp"
#include "pqmcp/policy/schema.hpp"
#include "pqmcp/transport/http_server.hpp"
#include "recorder.hpp"
#include "upstream.hpp"

namespace pqmcp::gateway {

class GatewaySession;

// Gateway-wide state the sessions share.
struct SharedState {
    Services& services;
    // Upstreams with `isolation: shared`: one client for every session.
    std::map<std::string, std::shared_ptr<UpstreamClient>> shared_clients;
    std::string server_version;
    // The policy in force (null: none). Replaced whole on reload; a decision
    // holds the one it started with. Rates, quotas and baselines outlive it.
    std::shared_ptr<const policy::Policy> policy;
    policy::Limiter limiter;
    policy::Behaviour behaviour;
    std::function<std::chrono::steady_clock::time_point()> clock;
    Guard* guard = nullptr;              // tool integrity; null when turned off
    Recorder* recorder = nullptr;        // audit, metrics, dashboard; null in bare tests
    std::uint64_t calls = 0;             // requests traced so far: each its "call" number
    std::set<GatewaySession*> sessions;  // the live ones (for the audit's started records)
};

class GatewaySession final : public transport::SessionHandler, public Subscriber {
  public:
    GatewaySession(SharedState& shared, transport::ServerSession& downstream);
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
    enum class Names { prefixed, resources, templates };

    using Proceed = std::function<void(mcp::Message)>;

    void handle_request(mcp::Message m, transport::StreamId stream);
    // Applies the policy to a routed request and runs `proceed` if it may go
    // on (now, or after a person approved it); answers it otherwise.
    void admit(mcp::Message m, transport::StreamId stream, std::optional<std::size_t> link,
               Proceed proceed);
    void decide(mcp::Message m, transport::StreamId stream, std::optional<std::size_t> link,
                Proceed proceed);
    void ask_person(mcp::Message m, transport::StreamId stream, const policy::Decision& decision,
                    Proceed proceed);
    // Records an integrity verdict for "<kind>:<gateway name>"; false when the
    // item must not be listed.
    bool note_verdict(const std::string& key, const Verdict& v);
    // Answers -32011 when the item under `key` was blocked by integrity.
    bool refuse_if_blocked(transport::StreamId stream, const boost::json::value& id,
                           const std::string& key, std::string_view what);
    // Learns the tool definitions of `link` (tools/list) for schema checks.
    // Learns the tools (or prompts) `link` lists: reviewed, their names
    // noted, tools' schemas learned.
    void fetch_listing(std::size_t link, bool tools, std::function<void()> then);
    void note_listed(const std::string& key);
    void deny(const mcp::Message& m, transport::StreamId stream, const policy::Decision& decision,
              const policy::Policy& policy, std::string_view label = "deny");
    void handle_notification(mcp::Message m);
    void handle_response(mcp::Message m);
    void initialize(mcp::Message m, transport::StreamId stream);
    void finish_initialize(const boost::json::value& id, transport::StreamId stream);
    void list(const mcp::Message& m, transport::StreamId stream, std::string_view key,
              std::string_view capability, Names names);
    void forward(std::size_t link, mcp::Message m, transport::StreamId stream,
                 std::function<void(const mcp::Message&)> on_success = {});
    void fan_out_set_level(const mcp::Message& m, transport::StreamId stream);

    [[nodiscard]] std::optional<std::pair<std::size_t, std::string>> route_name(
        std::string_view name) const;
    [[nodiscard]] std::optional<std::size_t> route_uri(std::string_view uri) const;
    [[nodiscard]] std::optional<std::size_t> link_of(const UpstreamClient& client) const;
    [[nodiscard]] bool usable(std::size_t link) const;

    // Every response to the client goes through respond(): it finishes the
    // request's trace (audit record, metrics, dashboard).
    void respond(transport::StreamId stream, boost::json::object message);
    void reply(transport::StreamId stream, const boost::json::value& id, boost::json::value result);
    void reply_error(transport::StreamId stream, const boost::json::value& id, int code,
                     const std::string& message);

    SharedState& shared_;
    // Not to be touched from on_closed(): the transport may have freed it.
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
    std::map<std::string, std::size_t> resource_owner_;                // uri -> link
    std::vector<std::pair<std::string, std::size_t>> template_owner_;  // uri prefix -> link
    std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);

    // Policy state of the session.
    policy::Caller caller_;
    std::set<std::string> used_tags_;        // tags of the tools it called successfully
    policy::SchemaCache schemas_;            // by the gateway's tool names
    std::set<std::size_t> tools_fetched_;    // links whose tools/list was learned
    std::set<std::size_t> prompts_fetched_;  // and prompts/list
    // Calls waiting for a listing under way, by link.
    std::map<std::size_t, std::vector<std::function<void()>>> tools_waiting_;
    std::map<std::size_t, std::vector<std::function<void()>>> prompts_waiting_;
    // "<kind>:<gateway name>" of every tool and prompt an upstream listed to this session.
    std::set<std::string> listed_;
    static constexpr std::size_t k_max_listed = 20'000;
    // Integrity: items blocked for this session, by "<kind>:<gateway name>".
    std::map<std::string, Verdict> blocked_;
    struct OwnRequest {  // the gateway's own requests to the client (elicitation)
        std::function<void(tl::expected<mcp::Message, std::string>)> done;
        std::unique_ptr<boost::asio::steady_timer> timer;
    };
    std::map<std::int64_t, OwnRequest> own_requests_;
    std::map<std::string, std::chrono::steady_clock::time_point> finding_logged_;  // by kind

    // What the gateway did with each request in flight, for its audit record.
    struct Trace {
        std::chrono::steady_clock::time_point start;
        std::uint64_t call = 0;        // unique in this gateway's run; in every record of it
        bool started_written = false;  // a "started" record went to the audit
        std::string method;
        std::string target;  // tool or prompt name, or resource URI
        std::string upstream;
        std::string decision = "allow";
        std::string rule;
        std::string mode = "enforce";
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
    // Sets the decision of the request with this id (if traced).
    void mark(const boost::json::value& id, std::string_view decision, std::string_view rule = {},
              std::string_view mode = {});
    void finish_trace(const std::string& key, const boost::json::object& message);
};

}  // namespace pqmcp::gateway
