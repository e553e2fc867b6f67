#include "recorder.hpp"

#include <spdlog/spdlog.h>
#include <boost/json/value.hpp>

#include "pqmcp/integrity/jcs.hpp"
#include "pqmcp/mcp/protocol.hpp"

namespace pqmcp::gateway {

namespace json = boost::json;

namespace {

json::value optional_string(const std::optional<std::string>& s) {
    return s ? json::value(*s) : json::value(nullptr);
}

// Replaces the value at `pointer` (RFC 6901) with "[redacted]" if present.
void redact(json::value& root, std::string_view pointer) {
    if (pointer.empty()) {
        root = "[redacted]";
        return;
    }
    boost::system::error_code ec;
    json::value* at = root.find_pointer(pointer, ec);
    if (at != nullptr && !ec) {
        *at = "[redacted]";
    }
}

}  // namespace

Recorder::Recorder(const GatewayConfig& config, audit::Writer* audit, observe::Dashboard* dashboard,
                   Gauges gauges)
    : audit_config_(config.audit), audit_(audit), dashboard_(dashboard) {
    auto& r = registry_;
    handshakes_ = &r.counter("pqmcp_tls_handshakes_total",
                             "TLS handshakes on the gateway's listener by key-exchange group, the "
                             "signature scheme the gateway signed with, and result",
                             {"group", "signature", "result"});
    handshake_seconds_ =
        &r.histogram("pqmcp_tls_handshake_duration_seconds",
                     "Time from accepting a connection to the end of its TLS handshake", {"group"},
                     observe::latency_buckets());
    requests_ = &r.counter("pqmcp_requests_total",
                           "MCP requests by method, upstream and the gateway's decision",
                           {"method", "upstream", "decision"});
    upstream_seconds_ = &r.histogram("pqmcp_upstream_request_duration_seconds",
                                     "Time an upstream took to answer a forwarded request",
                                     {"upstream", "method"}, observe::latency_buckets());
    rule_hits_ = &r.counter("pqmcp_policy_rule_hits_total",
                            "Policy rules that decided a request (or would have, in shadow mode)",
                            {"rule", "effect", "mode"});
    integrity_ = &r.counter("pqmcp_integrity_findings_total",
                            "Tool integrity events: rug pulls, scanner findings, manifest failures",
                            {"upstream", "event", "severity"});
    policy_reloads_ =
        &r.counter("pqmcp_policy_loads_total", "Policy loads and reloads by result", {"result"});
    r.gauge("pqmcp_sessions_open", "MCP sessions open", std::move(gauges.sessions));
    r.gauge("pqmcp_connections_open", "TLS connections open", std::move(gauges.connections));
    r.gauge("pqmcp_upstream_children", "Upstream server processes running",
            std::move(gauges.children));
    if (gauges.evicted) {
        r.counter_fn("pqmcp_connections_evicted_total",
                     "Connections closed before their handshake (or while idle) to make room",
                     std::move(gauges.evicted));
        r.counter_fn("pqmcp_connections_refused_total",
                     "Connections closed on arrival: the connection limit was full of "
                     "connections at work",
                     std::move(gauges.refused));
        r.counter_fn("pqmcp_connections_moved_total",
                     "Connections moved to the thread of the session their request was for",
                     std::move(gauges.moved));
        r.gauge("pqmcp_overload_scale",
                "The factor handshake and idle deadlines are scaled by (1: no pressure)",
                std::move(gauges.overload));
        r.gauge("pqmcp_stream_buffered_bytes", "Bytes of messages waiting in SSE streams",
                std::move(gauges.buffered));
    }
    audit_refused_ = &r.counter("pqmcp_audit_records_refused_total",
                                "Audit records the queue refused (full or writer failed)");
    audit_refused_->touch({});
    audit_refusals_ = &r.counter("pqmcp_audit_refused_calls_total",
                                 "tools/call refused because the audit trail could not be written "
                                 "(audit.on_failure: refuse)");
    audit_refusals_->touch({});
    sandbox_ = &r.counter("pqmcp_sandbox_denials_total",
                          "What the sandbox of a stdio upstream refused, by upstream and kind "
                          "(protected: the gateway's own files)",
                          {"upstream", "access", "protected"});
    if (audit_ != nullptr) {
        r.gauge("pqmcp_audit_queue_depth", "Audit records waiting for the writer",
                [a = audit_] { return static_cast<double>(a->stats().depth); });
        r.counter_fn("pqmcp_audit_records_written_total", "Audit records committed",
                     [a = audit_] { return static_cast<double>(a->stats().written); });
        r.counter_fn("pqmcp_audit_records_dropped_total",
                     "Audit records dropped (must stay 0 in normal operation)",
                     [a = audit_] { return static_cast<double>(a->stats().dropped); });
        r.counter_fn("pqmcp_audit_checkpoints_total", "Signed audit checkpoints written",
                     [a = audit_] { return static_cast<double>(a->stats().checkpoints); });
        r.counter_fn("pqmcp_audit_commit_failures_total",
                     "Audit commits that failed (retried; the records waited)",
                     [a = audit_] { return static_cast<double>(a->stats().failures); });
        r.gauge("pqmcp_audit_healthy", "1 while the audit trail commits what it is given, else 0",
                [a = audit_] { return a->healthy() ? 1.0 : 0.0; });
    }
}

void Recorder::stamp(json::object& record) {
    if (!record.contains("ts")) {
        record["ts"] = audit::format_time(std::chrono::system_clock::now());
    }
}

void Recorder::write(json::object record) {
    if (audit_ != nullptr && !audit_->append(std::move(record))) {
        audit_refused_->inc({});
    }
}

void Recorder::handshake(const std::string& remote, const Result<tls::HandshakeInfo>& result,
                         std::chrono::nanoseconds elapsed) {
    const double seconds = std::chrono::duration<double>(elapsed).count();
    const auto micros = std::chrono::duration_cast<std::chrono::microseconds>(elapsed).count();
    json::object record{{"kind", "connection"}, {"remote", remote}, {"handshake_us", micros}};
    stamp(record);
    if (!result) {
        const bool aborted = result.error().code == transport::Errc::closed;
        record["result"] = aborted ? "aborted" : "failed";
        record["error"] = result.error().detail;
        handshakes_->inc({"", "", aborted ? "aborted" : "failed"});
        if (dashboard_ != nullptr && !aborted) {
            dashboard_->connection(record);  // a browser's spare connection is no news
        }
        write(std::move(record));
        return;
    }
    const tls::HandshakeInfo& h = *result;
    record["result"] = "ok";
    record["protocol"] = h.protocol;
    record["cipher"] = h.cipher;
    record["group"] = h.group;
    record["quantum_safe"] = h.quantum_safe_group;
    record["own_signature"] = h.own_signature;
    record["peer_signature"] = h.peer_signature;
    record["peer_certificate_key"] = h.peer_certificate_key;
    record["certificate_type"] = h.certificate_type;
    record["peer_id"] = h.peer_id ? json::value(h.peer_id->str()) : json::value(nullptr);
    record["peer_name"] = optional_string(h.peer_name);
    record["peer_verified"] = h.peer_verified;
    record["resumed"] = h.resumed;
    handshakes_->inc({h.group, h.own_signature, "ok"});
    handshake_seconds_->observe({h.group}, seconds);
    if (dashboard_ != nullptr) {
        dashboard_->connection(record);
    }
    write(std::move(record));
}

void Recorder::session_opened(const transport::ServerSession& session) {
    if (dashboard_ == nullptr) {
        return;
    }
    const auto& peer = session.peer();
    const auto& h = peer.handshake;
    observe::DashboardSession s;
    s.id = session.id().substr(0, 8);
    s.remote = peer.remote;
    s.peer_id = h.peer_id ? h.peer_id->str() : std::string{};
    s.peer_name = h.peer_name.value_or("");
    s.peer_verified = h.peer_verified;
    s.group = h.group;
    s.signature = h.own_signature;
    s.cipher = h.cipher;
    s.opened = std::chrono::system_clock::now();
    dashboard_->session_opened(std::move(s));
}

void Recorder::session_closed(const std::string& session_id) {
    if (dashboard_ != nullptr) {
        dashboard_->session_closed(session_id.substr(0, 8));
    }
}

void Recorder::request(json::object record, const RequestOutcome& outcome,
                       std::function<void()> then) {
    stamp(record);
    // Labels from a bounded set only: a client's own method names count as "other".
    requests_->inc(
        {mcp::method::known_or_other(outcome.method), outcome.upstream, outcome.decision});
    if (dashboard_ != nullptr) {
        dashboard_->request(record, std::string(outcome.session), outcome.refused,
                            std::chrono::system_clock::now());
    }
    if (then && holds_answers()) {
        // Committed or not (a record the trail refused is counted there and
        // refused calls follow), the answer goes once the writer is done with it.
        if (!audit_->append_then(std::move(record), [then = std::move(then)](bool) { then(); })) {
            audit_refused_->inc({});
        }
        return;
    }
    write(std::move(record));
    if (then) {
        then();
    }
}

void Recorder::request_started(json::object record) {
    stamp(record);
    write(std::move(record));
}

void Recorder::upstream_latency(const std::string& upstream, std::string_view method,
                                std::chrono::nanoseconds elapsed) {
    upstream_seconds_->observe({upstream, mcp::method::known_or_other(method)},
                               std::chrono::duration<double>(elapsed).count());
}

void Recorder::rule_hit(std::string_view rule, std::string_view effect, std::string_view mode) {
    rule_hits_->inc({rule, effect, mode});
}

void Recorder::integrity(json::object record) {
    const auto field = [&record](std::string_view key) {
        const auto* v = record.if_contains(key);
        return v != nullptr && v->is_string() ? std::string(v->get_string()) : std::string{};
    };
    integrity_->inc({field("upstream"), field("event"), field("severity")});
    stamp(record);
    if (dashboard_ != nullptr) {
        dashboard_->alert(record);
    }
    write(std::move(record));
}

bool Recorder::audit_allows_calls() {
    if (audit_ == nullptr) {
        return true;
    }
    const bool healthy = audit_->healthy();
    // Read first: every thread asks on every tools/call, and an exchange
    // would write the shared flag each time.
    if (audit_was_healthy_.load(std::memory_order_relaxed) != healthy &&
        audit_was_healthy_.exchange(healthy) != healthy) {
        if (healthy) {
            spdlog::warn("audit trail: commits again; calls are accepted");
        } else {
            spdlog::error("audit trail: records cannot be committed ({}); {}",
                          audit_->last_error().empty() ? "the queue is full" : audit_->last_error(),
                          audit_config_.refuse_on_failure
                              ? "tools/call is refused until they can (audit.on_failure: refuse)"
                              : "calls go on unrecorded (audit.on_failure: continue)");
        }
    }
    if (healthy || !audit_config_.refuse_on_failure) {
        return true;
    }
    audit_refusals_->inc({});
    return false;
}

void Recorder::sandbox(const sandbox::Violation& v) {
    if (v.protected_path) {
        spdlog::warn(
            "upstream {} (pid {}): the sandbox refused {} of {} ({}): it is the gateway's own",
            v.label, v.pid, v.access, v.what, v.syscall);
    } else {
        spdlog::warn(
            "upstream {} (pid {}): the sandbox refused {} {} ({}); grant it with "
            "sandbox.{} if the server needs it",
            v.label, v.pid, v.access, v.what, v.syscall,
            v.access == "network" || v.access == "accept" ? "network"
            : v.access == "read" || v.access == "execute" ? "read"
                                                          : "write");
    }
    sandbox_->inc({v.label, v.access, v.protected_path ? "yes" : "no"});
    json::object record{{"kind", "sandbox"},    {"event", "denied"},
                        {"upstream", v.label},  {"pid", v.pid},
                        {"syscall", v.syscall}, {"access", v.access},
                        {"target", v.what},     {"protected", v.protected_path}};
    stamp(record);
    if (dashboard_ != nullptr) {
        dashboard_->alert(record);
    }
    write(std::move(record));
}

void Recorder::policy(std::string_view event, std::string_view source, std::string_view fingerprint,
                      std::string_view error) {
    policy_reloads_->inc({event == "reload_failed" ? "failed" : "ok"});
    json::object record{{"kind", "policy"}, {"event", event}, {"source", source}};
    if (!fingerprint.empty()) {
        record["fingerprint"] = fingerprint;
    }
    if (!error.empty()) {
        record["error"] = error;
    }
    write(std::move(record));
}

void Recorder::describe_arguments(json::object& record, const json::value* arguments) const {
    if (arguments == nullptr) {
        return;
    }
    switch (audit_config_.arguments) {
        case AuditArguments::none:
            return;
        case AuditArguments::digest: {
            if (auto digest = integrity::canonical_digest(*arguments)) {
                record["args_sha256"] = *digest;
            }
            return;
        }
        case AuditArguments::redacted: {
            json::value copy = *arguments;
            for (const auto& pointer : audit_config_.redact) {
                redact(copy, pointer);
            }
            record["args"] = std::move(copy);
            return;
        }
    }
}

}  // namespace pqmcp::gateway
