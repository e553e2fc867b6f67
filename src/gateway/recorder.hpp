// Internal: where the gateway's events go. Each connection, request decision,
// integrity event and policy (re)load becomes an audit record (when the audit
// trail is on), updates the Prometheus metrics and feeds the dashboard.
// Called from every thread of the gateway: the metrics and the dashboard lock
// inside, the audit writer takes records through its queue.
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <string>

#include <boost/json/object.hpp>

#include "pqmcp/audit/audit.hpp"
#include "pqmcp/core/error.hpp"
#include "pqmcp/gateway/config.hpp"
#include "pqmcp/observe/dashboard.hpp"
#include "pqmcp/observe/metrics.hpp"
#include "pqmcp/sandbox/sandbox.hpp"
#include "pqmcp/tls/handshake_info.hpp"
#include "pqmcp/transport/http_server.hpp"

namespace pqmcp::gateway {

// What a finished request contributes to metrics and the dashboard besides
// its audit record.
struct RequestOutcome {
    std::string_view method;
    std::string_view upstream;
    std::string_view decision;  // allow, deny, ask-approved, ask-denied, blocked, invalid
    std::string_view session;   // the dashboard's short session id
    bool refused = false;       // decision other than allow / ask-approved
};

class Recorder final {
  public:
    struct Gauges {
        std::function<double()> sessions;
        std::function<double()> connections;
        std::function<double()> children;
        std::function<double()> evicted;   // connections closed to make room
        std::function<double()> refused;   // connections closed on arrival (all at work)
        std::function<double()> moved;     // connections moved to their session's thread
        std::function<double()> overload;  // the deadline scale now
        std::function<double()> buffered;  // bytes waiting in streams
    };
    // `audit` and `dashboard` may be null (turned off).
    Recorder(const GatewayConfig& config, audit::Writer* audit, observe::Dashboard* dashboard,
             Gauges gauges);

    [[nodiscard]] observe::Registry& metrics() noexcept { return registry_; }
    [[nodiscard]] observe::Dashboard* dashboard() noexcept { return dashboard_; }
    [[nodiscard]] const AuditConfig& audit_config() const noexcept { return audit_config_; }

    void handshake(const std::string& remote, const Result<tls::HandshakeInfo>& result,
                   std::chrono::nanoseconds elapsed);
    void session_opened(const transport::ServerSession& session);
    void session_closed(const std::string& session_id);
    // A request's audit record (kind "request", complete) and its outcome.
    // `then` (if given) runs once the record is committed when the answer
    // waits for it (audit.acknowledge: committed), on the writer's thread;
    // else at once, here.
    void request(boost::json::object record, const RequestOutcome& outcome,
                 std::function<void()> then = nullptr);
    // The record of a request still in flight ("phase": "started"): audit only.
    void request_started(boost::json::object record);
    void upstream_latency(const std::string& upstream, std::string_view method,
                          std::chrono::nanoseconds elapsed);
    void rule_hit(std::string_view rule, std::string_view effect, std::string_view mode);
    // An integrity event's record (kind "integrity").
    void integrity(boost::json::object record);
    // Whether a tools/call may go on as far as the audit trail is concerned:
    // false while it cannot commit and audit.on_failure is refuse. Logs (at
    // error level) and counts the change.
    [[nodiscard]] bool audit_allows_calls();
    // Something an upstream's sandbox refused (kind "sandbox"), logged too.
    void sandbox(const sandbox::Violation& v);
    // "loaded", "reloaded" or "reload_failed".
    void policy(std::string_view event, std::string_view source, std::string_view fingerprint,
                std::string_view error);

    // The audit record's view of a request's arguments, per configuration:
    // {"args_sha256": ...}, {"args": <redacted copy>} or nothing.
    void describe_arguments(boost::json::object& record, const boost::json::value* arguments) const;

    // Answers wait for their record's commit (audit.acknowledge: committed).
    [[nodiscard]] bool holds_answers() const noexcept {
        return audit_ != nullptr && audit_config_.acknowledge_committed;
    }

  private:
    static void stamp(boost::json::object& record);  // "ts" now, unless it has one
    void write(boost::json::object record);

    AuditConfig audit_config_;
    audit::Writer* audit_;
    observe::Dashboard* dashboard_;
    observe::Registry registry_;
    observe::Counter* handshakes_;
    observe::Histogram* handshake_seconds_;
    observe::Counter* requests_;
    observe::Histogram* upstream_seconds_;
    observe::Counter* rule_hits_;
    observe::Counter* integrity_;
    observe::Counter* policy_reloads_;
    observe::Counter* audit_refused_;  // append() returned false
    observe::Counter* sandbox_;
    observe::Counter* audit_refusals_;
    std::atomic<bool> audit_was_healthy_{true};  // every thread asks; one logs each change
};

}  // namespace pqmcp::gateway
