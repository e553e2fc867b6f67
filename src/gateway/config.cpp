#include "pqmcp/gateway/config.hpp"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <fstream>
#include <limits>
#include <sstream>

#include <fmt/format.h>
#include <yaml-cpp/yaml.h>

#include "pqmcp/core/duration.hpp"
#include "pqmcp/identity/identity.hpp"
#include "pqmcp/integrity/scanner.hpp"
#include "pqmcp/mcp/protocol.hpp"
#include "pqmcp/observe/dashboard.hpp"
#include "pqmcp/observe/log.hpp"
#include "pqmcp/tls/profile.hpp"
#include "pqmcp/transport/http_util.hpp"
#include "pqmcp/yaml/reader.hpp"

namespace pqmcp::gateway {
namespace {

class GatewayCategory final : public std::error_category {
  public:
    [[nodiscard]] const char* name() const noexcept override { return "gateway"; }
    [[nodiscard]] std::string message(int code) const override {
        switch (static_cast<Errc>(code)) {
            case Errc::invalid_config:
                return "invalid configuration";
            case Errc::startup_failed:
                return "cannot start";
            case Errc::not_running:
                return "not serving";
        }
        return "unknown gateway error";
    }
};

using yaml::Reader;

// `sandbox: off`, `sandbox: on`, or the mapping.
void read_sandbox(const Reader& r, const YAML::Node& node, const std::string& where,
                  SandboxConfig& out) {
    if (node.IsScalar()) {
        out.enabled = r.boolean(node, where);
        return;
    }
    r.only(node, where, {"enabled", "read", "write", "network", "user", "arguments"});
    if (node["enabled"]) {
        out.enabled = r.boolean(node["enabled"], where + ".enabled");
    }
    for (const auto& [key, list] : {std::pair{"read", &out.read}, std::pair{"write", &out.write}}) {
        if (node[key]) {
            for (auto& p : r.strings(node[key], where + "." + key)) {
                list->emplace_back(std::move(p));
            }
        }
    }
    if (node["network"]) {
        const std::string text = r.string(node["network"], where + ".network");
        const auto network = sandbox::parse_network(text);
        if (!network) {
            r.error(node["network"], where + ".network",
                    "expected none, loopback or any, not \"" + text + "\"");
        }
        out.network = *network;
    }
    if (node["user"]) {
        out.user = r.string(node["user"], where + ".user");
    }
    if (node["arguments"]) {
        const std::string text = r.string(node["arguments"], where + ".arguments");
        const auto access = parse_argument_access(text);
        if (!access) {
            r.error(node["arguments"], where + ".arguments",
                    "expected write, read or none, not \"" + text + "\"");
        }
        out.arguments = *access;
    }
}

OpenApiFilter read_filter(const Reader& r, const YAML::Node& node, const std::string& where) {
    r.only(node, where, {"tags", "paths", "methods", "operations"});
    OpenApiFilter f;
    if (node["tags"]) {
        f.tags = r.strings(node["tags"], where + ".tags");
    }
    if (node["paths"]) {
        f.paths = r.strings(node["paths"], where + ".paths");
    }
    if (node["methods"]) {
        f.methods = r.strings(node["methods"], where + ".methods");
    }
    if (node["operations"]) {
        f.operations = r.strings(node["operations"], where + ".operations");
    }
    return f;
}

void read_openapi(const Reader& r, const YAML::Node& node, const std::string& where,
                  OpenApiUpstreamConfig& o) {
    if (node.IsScalar()) {
        o.spec = r.string(node, where);  // openapi: spec.yaml
        return;
    }
    r.only(node, where,
           {"spec", "base_url", "follow_servers", "auth", "include", "exclude", "max_tools",
            "name_max_length", "description_max_length", "output_schema", "max_spec_bytes",
            "max_response_bytes", "timeout", "max_connections", "ca"});
    if (!node["spec"]) {
        r.error(node, where, "spec: the OpenAPI description's file is required");
    }
    o.spec = r.string(node["spec"], where + ".spec");
    if (node["base_url"]) {
        o.base_url = r.string(node["base_url"], where + ".base_url");
    }
    if (node["follow_servers"]) {
        o.follow_servers = r.boolean(node["follow_servers"], where + ".follow_servers");
    }
    if (const auto& list = node["auth"]) {
        // One credential, or a list of them.
        const auto read_auth = [&r](const YAML::Node& a, const std::string& at) {
            r.only(a, at, {"type", "in", "name", "username", "value", "value_file", "value_env"});
            OpenApiAuth auth;
            if (a["type"]) {
                auth.type = r.string(a["type"], at + ".type");
            }
            if (a["in"]) {
                auth.in = r.string(a["in"], at + ".in");
            }
            if (a["name"]) {
                auth.name = r.string(a["name"], at + ".name");
            }
            if (a["username"]) {
                auth.username = r.string(a["username"], at + ".username");
            }
            if (a["value"]) {
                auth.value = r.string(a["value"], at + ".value");
            }
            if (a["value_file"]) {
                auth.value_file = r.string(a["value_file"], at + ".value_file");
            }
            if (a["value_env"]) {
                auth.value_env = r.string(a["value_env"], at + ".value_env");
            }
            return auth;
        };
        if (list.IsSequence()) {
            for (std::size_t i = 0; i < list.size(); ++i) {
                o.auth.push_back(read_auth(list[i], where + ".auth[" + std::to_string(i) + "]"));
            }
        } else {
            o.auth.push_back(read_auth(list, where + ".auth"));
        }
    }
    if (node["include"]) {
        o.include = read_filter(r, node["include"], where + ".include");
    }
    if (node["exclude"]) {
        o.exclude = read_filter(r, node["exclude"], where + ".exclude");
    }
    if (node["max_tools"]) {
        o.max_tools = r.size(node["max_tools"], where + ".max_tools", 1, 10'000);
    }
    if (node["name_max_length"]) {
        o.name_max_length = r.size(node["name_max_length"], where + ".name_max_length", 16, 128);
    }
    if (node["description_max_length"]) {
        o.description_max_length =
            r.size(node["description_max_length"], where + ".description_max_length", 16, 65'536);
    }
    if (node["output_schema"]) {
        o.output_schema = r.boolean(node["output_schema"], where + ".output_schema");
    }
    if (node["max_spec_bytes"]) {
        o.max_spec_bytes =
            r.size(node["max_spec_bytes"], where + ".max_spec_bytes", 1'024, 256U << 20U);
    }
    if (node["max_response_bytes"]) {
        o.max_response_bytes =
            r.size(node["max_response_bytes"], where + ".max_response_bytes", 1'024, 256U << 20U);
    }
    if (node["timeout"]) {
        o.timeout = r.duration(node["timeout"], where + ".timeout");
    }
    if (node["max_connections"]) {
        o.max_connections = r.size(node["max_connections"], where + ".max_connections", 1, 1'024);
    }
    if (node["ca"]) {
        o.ca = r.string(node["ca"], where + ".ca");
    }
}

UpstreamConfig read_upstream(const Reader& r, const YAML::Node& node, std::size_t index) {
    const std::string where = "upstreams[" + std::to_string(index) + "]";
    r.only(node, where,
           {"name", "command", "args", "env", "env_passthrough", "cwd", "isolation", "sandbox",
            "url", "profile", "pin", "ca", "headers", "protocol", "builtin", "openapi", "publisher",
            "manifest", "oauth"});
    UpstreamConfig u;
    if (!node["name"]) {
        r.error(node, where, "every upstream needs a name");
    }
    u.name = r.string(node["name"], where + ".name");
    const int kinds = (node["command"] ? 1 : 0) + (node["url"] ? 1 : 0) +
                      (node["builtin"] ? 1 : 0) + (node["openapi"] ? 1 : 0);
    if (kinds != 1) {
        r.error(node, where,
                "give exactly one of command (stdio), url (HTTP), openapi and builtin");
    }
    if (node["command"]) {
        u.kind = UpstreamKind::stdio;
        u.command = r.string(node["command"], where + ".command");
        if (node["args"]) {
            u.args = r.strings(node["args"], where + ".args");
        }
        if (node["env"]) {
            u.env = r.map(node["env"], where + ".env");
        }
        if (node["env_passthrough"]) {
            u.env_passthrough = r.strings(node["env_passthrough"], where + ".env_passthrough");
        }
        if (node["cwd"]) {
            u.cwd = r.string(node["cwd"], where + ".cwd");
        }
        if (const auto& box = node["sandbox"]) {
            read_sandbox(r, box, where + ".sandbox", u.sandbox);
        }
        if (node["isolation"]) {
            const std::string iso = r.string(node["isolation"], where + ".isolation");
            if (iso != "per-session" && iso != "shared") {
                r.error(node["isolation"], where + ".isolation",
                        "expected per-session or shared, not \"" + iso + "\"");
            }
            u.shared = iso == "shared";
        }
    } else if (node["url"]) {
        u.kind = UpstreamKind::http;
        u.url = r.string(node["url"], where + ".url");
        if (node["profile"]) {
            u.profile = r.string(node["profile"], where + ".profile");
        }
        if (node["pin"]) {
            u.pins = r.strings(node["pin"], where + ".pin");
        }
        if (node["ca"]) {
            u.ca = r.string(node["ca"], where + ".ca");
        }
        if (const auto& o = node["oauth"]) {
            r.only(o, where + ".oauth",
                   {"client_id", "client_secret_file", "issuer", "scopes", "grant", "token_file"});
            if (o["grant"]) {
                u.oauth.grant = r.string(o["grant"], where + ".oauth.grant");
            }
            if (o["token_file"]) {
                u.oauth.token_file = r.string(o["token_file"], where + ".oauth.token_file");
            }
            if (o["client_id"]) {
                u.oauth.client_id = r.string(o["client_id"], where + ".oauth.client_id");
            }
            if (o["client_secret_file"]) {
                u.oauth.client_secret_file =
                    r.string(o["client_secret_file"], where + ".oauth.client_secret_file");
            }
            if (o["issuer"]) {
                u.oauth.issuer = r.string(o["issuer"], where + ".oauth.issuer");
            }
            if (o["scopes"]) {
                u.oauth.scopes = r.strings(o["scopes"], where + ".oauth.scopes");
            }
        }
        if (node["headers"]) {
            u.headers = r.map(node["headers"], where + ".headers");
        }
        if (node["protocol"]) {
            u.protocol = r.string(node["protocol"], where + ".protocol");
            if (u.protocol != "auto" && u.protocol != "2025-11-25" && u.protocol != "2026-07-28") {
                r.error(node["protocol"], where + ".protocol",
                        "expected auto, 2025-11-25 or 2026-07-28, not \"" + u.protocol + "\"");
            }
        }
    } else if (node["openapi"]) {
        u.kind = UpstreamKind::openapi;
        read_openapi(r, node["openapi"], where + ".openapi", u.openapi);
    } else {
        const std::string builtin = r.string(node["builtin"], where + ".builtin");
        if (builtin != "demo") {
            r.error(node["builtin"], where + ".builtin", "the only built-in server is demo");
        }
        u.kind = UpstreamKind::demo;
    }
    if (node["publisher"]) {
        u.publisher = r.string(node["publisher"], where + ".publisher");
    }
    if (node["manifest"]) {
        u.manifest = r.string(node["manifest"], where + ".manifest");
    }
    return u;
}

GatewayConfig read_config(const Reader& r, const YAML::Node& root) {
    GatewayConfig c;
    if (!root || root.IsNull()) {
        return c;
    }
    r.only(root, "",
           {"listen",
            "identity",
            "profile",
            "require_client_identity",
            "allow_any_client",
            "known_peers",
            "ca",
            "browser_certificate",
            "allowed_origins",
            "log_level",
            "threads",
            "namespacing",
            "upstreams",
            "limits",
            "timeouts",
            "policy",
            "integrity",
            "audit",
            "metrics",
            "log_format",
            "dashboard",
            "protect",
            "cluster",
            "raw_public_keys",
            "auth"});
    if (root["listen"]) {
        c.listen = r.string(root["listen"], "listen");
    }
    if (root["identity"]) {
        c.identity = r.string(root["identity"], "identity");
    }
    if (root["profile"]) {
        c.profile = r.string(root["profile"], "profile");
    }
    if (root["allow_any_client"]) {
        c.allow_any_client = r.boolean(root["allow_any_client"], "allow_any_client");
    }
    if (root["raw_public_keys"]) {
        c.raw_public_keys = r.boolean(root["raw_public_keys"], "raw_public_keys");
    }
    if (root["require_client_identity"]) {
        c.require_client_identity =
            r.boolean(root["require_client_identity"], "require_client_identity");
    }
    if (root["known_peers"]) {
        c.known_peers = r.string(root["known_peers"], "known_peers");
    }
    if (root["browser_certificate"]) {
        c.browser_certificate = r.string(root["browser_certificate"], "browser_certificate");
    }
    if (root["ca"]) {
        c.ca = r.string(root["ca"], "ca");
    }
    if (root["allowed_origins"]) {
        c.allowed_origins = r.strings(root["allowed_origins"], "allowed_origins");
    }
    if (root["log_level"]) {
        c.log_level = r.string(root["log_level"], "log_level");
    }
    if (root["threads"]) {
        c.threads = r.count(root["threads"], "threads");
    }
    if (const auto& auth = root["auth"]) {
        r.only(auth, "auth", {"require", "oauth"});
        if (auth["require"]) {
            c.auth.require = r.string(auth["require"], "auth.require");
        }
        if (const auto& o = auth["oauth"]) {
            r.only(o, "auth.oauth",
                   {"issuer", "jwks_uri", "resource", "scopes", "clock_skew", "introspection"});
            if (const auto& in = o["introspection"]) {
                const std::string at = "auth.oauth.introspection";
                r.only(in, at, {"client_id", "client_secret_file", "endpoint", "cache"});
                auto& ci = c.auth.oauth.introspection;
                if (in["client_id"]) {
                    ci.client_id = r.string(in["client_id"], at + ".client_id");
                }
                if (in["client_secret_file"]) {
                    ci.client_secret_file =
                        r.string(in["client_secret_file"], at + ".client_secret_file");
                }
                if (in["endpoint"]) {
                    ci.endpoint = r.string(in["endpoint"], at + ".endpoint");
                }
                if (in["cache"]) {
                    ci.cache = std::chrono::duration_cast<std::chrono::seconds>(
                        r.duration(in["cache"], at + ".cache"));
                }
            }
            if (o["clock_skew"]) {
                c.auth.oauth.clock_skew = std::chrono::duration_cast<std::chrono::seconds>(
                    r.duration(o["clock_skew"], "auth.oauth.clock_skew"));
            }
            if (o["issuer"]) {
                c.auth.oauth.issuer = r.string(o["issuer"], "auth.oauth.issuer");
            }
            if (o["jwks_uri"]) {
                c.auth.oauth.jwks_uri = r.string(o["jwks_uri"], "auth.oauth.jwks_uri");
            }
            if (o["resource"]) {
                c.auth.oauth.resource = r.string(o["resource"], "auth.oauth.resource");
            }
            if (o["scopes"]) {
                c.auth.oauth.scopes = r.strings(o["scopes"], "auth.oauth.scopes");
            }
        }
    }
    if (const auto& cl = root["cluster"]) {
        r.only(
            cl, "cluster",
            {"replica", "redis", "redis_timeout", "fail", "behaviour", "postgres", "ticket_keys"});
        auto& k = c.cluster;
        if (cl["replica"]) {
            k.replica = r.string(cl["replica"], "cluster.replica");
        }
        if (cl["redis"]) {
            k.redis = r.string(cl["redis"], "cluster.redis");
        }
        if (cl["redis_timeout"]) {
            k.redis_timeout = r.duration(cl["redis_timeout"], "cluster.redis_timeout");
        }
        if (cl["fail"]) {
            k.fail = r.string(cl["fail"], "cluster.fail");
        }
        if (cl["behaviour"]) {
            k.behaviour = r.string(cl["behaviour"], "cluster.behaviour");
        }
        if (cl["postgres"]) {
            k.postgres = r.string(cl["postgres"], "cluster.postgres");
        }
        if (cl["ticket_keys"]) {
            k.ticket_keys = r.string(cl["ticket_keys"], "cluster.ticket_keys");
        }
    }
    if (root["protect"]) {
        for (auto& p : r.strings(root["protect"], "protect")) {
            c.protect.emplace_back(std::move(p));
        }
    }
    if (const auto& pol = root["policy"]) {
        if (pol.IsScalar()) {
            c.policy_file = pol.Scalar();
        } else if (pol.IsMap()) {
            YAML::Emitter out;
            out << pol;
            c.policy_inline = out.c_str();
        } else {
            r.error(pol, "policy", "expected a file name or the policy itself (a mapping)");
        }
    }
    if (const auto& in = root["integrity"]) {
        r.only(in, "integrity",
               {"enabled", "state", "on_change", "on_finding", "threshold", "scanner_rules",
                "sign_lists"});
        auto& i = c.integrity;
        if (in["enabled"]) {
            i.enabled = r.boolean(in["enabled"], "integrity.enabled");
        }
        if (in["state"]) {
            i.state = r.string(in["state"], "integrity.state");
        }
        for (const auto* key : {"on_change", "on_finding"}) {
            if (!in[key]) {
                continue;
            }
            const std::string where = std::string("integrity.") + key;
            const auto action = parse_integrity_action(r.string(in[key], where));
            if (!action ||
                (std::string_view(key) == "on_change" && *action == IntegrityAction::strip)) {
                r.error(in[key], where,
                        std::string_view(key) == "on_change" ? "expected block or alert"
                                                             : "expected block, strip or alert");
            }
            (std::string_view(key) == "on_change" ? i.on_change : i.on_finding) = *action;
        }
        if (in["threshold"]) {
            i.threshold = r.string(in["threshold"], "integrity.threshold");
        }
        if (in["scanner_rules"]) {
            i.scanner_rules = r.string(in["scanner_rules"], "integrity.scanner_rules");
        }
        if (in["sign_lists"]) {
            i.sign_lists = r.boolean(in["sign_lists"], "integrity.sign_lists");
        }
    }
    if (const auto& au = root["audit"]) {
        r.only(au, "audit",
               {"enabled", "path", "arguments", "redact", "flush_interval", "checkpoint_records",
                "checkpoint_interval", "queue", "sync", "on_failure", "acknowledge"});
        auto& a = c.audit;
        if (au["enabled"]) {
            a.enabled = r.boolean(au["enabled"], "audit.enabled");
        }
        if (au["path"]) {
            a.path = r.string(au["path"], "audit.path");
        }
        if (au["acknowledge"]) {
            const std::string ack = r.string(au["acknowledge"], "audit.acknowledge");
            if (ack != "queued" && ack != "committed") {
                r.error(au["acknowledge"], "audit.acknowledge", "expected queued or committed");
            }
            a.acknowledge_committed = ack == "committed";
        }
        if (au["arguments"]) {
            const auto mode = parse_audit_arguments(r.string(au["arguments"], "audit.arguments"));
            if (!mode) {
                r.error(au["arguments"], "audit.arguments", "expected digest, redacted or none");
            }
            a.arguments = *mode;
        }
        if (au["redact"]) {
            a.redact = r.strings(au["redact"], "audit.redact");
        }
        if (au["flush_interval"]) {
            a.flush_interval = r.duration(au["flush_interval"], "audit.flush_interval");
        }
        if (au["checkpoint_records"]) {
            a.checkpoint_records = r.count(au["checkpoint_records"], "audit.checkpoint_records");
        }
        if (au["checkpoint_interval"]) {
            a.checkpoint_interval =
                r.duration(au["checkpoint_interval"], "audit.checkpoint_interval");
        }
        if (au["queue"]) {
            a.queue = r.count(au["queue"], "audit.queue");
        }
        if (au["on_failure"]) {
            const std::string what = r.string(au["on_failure"], "audit.on_failure");
            if (what != "refuse" && what != "continue") {
                r.error(au["on_failure"], "audit.on_failure", "expected refuse or continue");
            }
            a.refuse_on_failure = what == "refuse";
        }
        if (au["sync"]) {
            const std::string sync = r.string(au["sync"], "audit.sync");
            if (sync != "normal" && sync != "full") {
                r.error(au["sync"], "audit.sync", "expected normal or full");
            }
            a.sync_full = sync == "full";
        }
    }
    if (root["metrics"]) {
        c.observe.metrics = r.string(root["metrics"], "metrics");
    }
    if (root["log_format"]) {
        c.observe.log_format = r.string(root["log_format"], "log_format");
    }
    if (const auto& d = root["dashboard"]) {
        r.only(d, "dashboard", {"access", "token", "token_file"});
        if (d["access"]) {
            c.observe.dashboard = r.string(d["access"], "dashboard.access");
        }
        if (d["token"]) {
            c.observe.dashboard_token = r.string(d["token"], "dashboard.token");
        }
        if (d["token_file"]) {
            c.observe.dashboard_token_file = r.string(d["token_file"], "dashboard.token_file");
        }
    }
    if (const auto& ns = root["namespacing"]) {
        r.only(ns, "namespacing", {"enabled", "separator"});
        if (ns["enabled"]) {
            c.namespacing = r.boolean(ns["enabled"], "namespacing.enabled");
        }
        if (ns["separator"]) {
            c.separator = r.string(ns["separator"], "namespacing.separator");
        }
    }
    if (const auto& ups = root["upstreams"]) {
        if (!ups.IsSequence()) {
            r.error(ups, "upstreams", "expected a list");
        }
        std::size_t i = 0;
        for (const auto& u : ups) {
            c.upstreams.push_back(read_upstream(r, u, i++));
        }
    }
    if (const auto& l = root["limits"]) {
        r.only(l, "limits",
               {"max_message_bytes", "max_json_depth", "max_batch", "max_header_bytes",
                "max_body_bytes", "max_connections", "max_sessions", "max_streams_per_session",
                "replay_events", "replay_bytes", "buffer_bytes", "max_handshakes_per_address",
                "max_sessions_per_identity", "max_children_per_identity", "max_children",
                "max_pending_requests", "upstream_connections"});
        const auto set = [&](const char* key, std::size_t& field) {
            if (l[key]) {
                field = r.count(l[key], std::string("limits.") + key);
            }
        };
        set("max_message_bytes", c.limits.message.max_message_bytes);
        set("max_json_depth", c.limits.message.max_depth);
        set("max_batch", c.limits.message.max_batch);
        set("max_header_bytes", c.limits.http.max_header_bytes);
        set("max_body_bytes", c.limits.http.max_body_bytes);
        set("max_connections", c.limits.http.max_connections);
        set("max_sessions", c.limits.http.max_sessions);
        set("max_streams_per_session", c.limits.http.max_streams_per_session);
        set("replay_events", c.limits.http.replay_events);
        set("replay_bytes", c.limits.http.replay_bytes);
        set("buffer_bytes", c.limits.http.buffer_bytes);
        set("max_handshakes_per_address", c.limits.http.max_handshakes_per_address);
        set("max_sessions_per_identity", c.limits.http.max_sessions_per_identity);
        set("max_children_per_identity", c.limits.max_children_per_identity);
        set("max_children", c.limits.max_children);
        set("max_pending_requests", c.limits.max_pending_requests);
        set("upstream_connections", c.limits.upstream_connections);
    }
    if (const auto& t = root["timeouts"]) {
        r.only(t, "timeouts",
               {"handshake", "request_read", "keep_alive", "write", "sse_keepalive", "session_idle",
                "upstream_request", "upstream_deadline", "upstream_pool_wait", "upstream_start",
                "child_idle"});
        const auto set = [&](const char* key, std::chrono::milliseconds& field) {
            if (t[key]) {
                field = r.duration(t[key], std::string("timeouts.") + key);
            }
        };
        set("handshake", c.timeouts.http.handshake);
        set("request_read", c.timeouts.http.read);
        set("keep_alive", c.timeouts.http.idle);
        set("write", c.timeouts.http.write);
        set("sse_keepalive", c.timeouts.http.keepalive);
        set("session_idle", c.timeouts.http.session_idle);
        set("upstream_request", c.timeouts.upstream_request);
        set("upstream_deadline", c.timeouts.upstream_deadline);
        set("upstream_pool_wait", c.timeouts.upstream_pool_wait);
        set("upstream_start", c.timeouts.upstream_start);
        set("child_idle", c.timeouts.child_idle);
    }
    return c;
}

}  // namespace

const std::error_category& gateway_category() noexcept {
    static const GatewayCategory category;
    return category;
}

namespace {

// A copy of a node made in memory, without marks: the reader's errors in it
// then name --set rather than a line of the file.
YAML::Node detached(const YAML::Node& n) {
    switch (n.Type()) {
        case YAML::NodeType::Scalar:
            return YAML::Node(n.Scalar());
        case YAML::NodeType::Sequence: {
            YAML::Node out(YAML::NodeType::Sequence);
            for (const auto& e : n) {
                out.push_back(detached(e));
            }
            return out;
        }
        case YAML::NodeType::Map: {
            YAML::Node out(YAML::NodeType::Map);
            for (const auto& kv : n) {
                out[kv.first.Scalar()] = detached(kv.second);
            }
            return out;
        }
        default:
            return YAML::Node(YAML::NodeType::Null);
    }
}

// "An index of a list": digits only, below `size` (or equal, to append).
std::optional<std::size_t> list_index(const std::string& part, std::size_t size) {
    std::size_t i = 0;
    const auto* end = part.data() + part.size();
    if (part.empty() || std::from_chars(part.data(), end, i).ptr != end || i > size) {
        return std::nullopt;
    }
    return i;
}

// One --set KEY=VALUE, applied to the document before it is read.
void apply_override(YAML::Node& root, const std::string& flag) {
    const auto eq = flag.find('=');
    if (eq == std::string::npos || eq == 0) {
        throw yaml::Problem{"--set " + flag + ": expected KEY=VALUE (limits.max_sessions=100)"};
    }
    const std::string key = flag.substr(0, eq);
    std::vector<std::string> parts;
    for (std::size_t from = 0;;) {
        const auto dot = key.find('.', from);
        parts.push_back(key.substr(from, dot == std::string::npos ? dot : dot - from));
        if (parts.back().empty()) {
            throw yaml::Problem{"--set " + key + ": an empty part in the key"};
        }
        if (dot == std::string::npos) {
            break;
        }
        from = dot + 1;
    }
    YAML::Node value;
    try {
        value = detached(YAML::Load(flag.substr(eq + 1)));
    } catch (const YAML::Exception& e) {
        throw yaml::Problem{"--set " + key + ": " + e.msg};
    }
    if (!root.IsDefined() || root.IsNull()) {
        root = YAML::Node(YAML::NodeType::Map);  // an empty file (or none)
    }
    YAML::Node at = root;  // a handle on the same node
    std::string walked;
    for (std::size_t i = 0; i < parts.size(); ++i) {
        const std::string& part = parts[i];
        const bool last = i + 1 == parts.size();
        if (at.IsNull() || !at.IsDefined()) {
            at = YAML::Node(YAML::NodeType::Map);  // fills the node in place
        }
        if (at.IsSequence()) {
            const auto index = list_index(part, at.size());
            if (!index || (!last && *index == at.size())) {
                throw yaml::Problem{
                    fmt::format("--set {}: {} has no element {}", key, walked, part)};
            }
            if (last) {
                if (*index == at.size()) {
                    at.push_back(value);
                } else {
                    at[*index] = value;
                }
                return;
            }
            YAML::Node next = at[*index];
            at.reset(next);
        } else if (at.IsMap()) {
            if (last) {
                at[part] = value;
                return;
            }
            const YAML::Node& view = at;  // const: looking does not insert
            if (!view[part]) {
                at[part] = YAML::Node(YAML::NodeType::Map);
            }
            YAML::Node next = at[part];
            at.reset(next);
        } else {
            throw yaml::Problem{
                fmt::format("--set {}: {} is not a mapping or a list", key, walked)};
        }
        if (!walked.empty()) {
            walked += '.';
        }
        walked += part;
    }
}

}  // namespace

Result<GatewayConfig> parse_config(std::string_view yaml, std::string_view source,
                                   std::span<const std::string> overrides) {
    try {
        const Reader reader(source, "--set ");
        YAML::Node root = yaml::load(yaml, source);
        for (const auto& flag : overrides) {
            apply_override(root, flag);
        }
        return read_config(reader, root);
    } catch (const yaml::Problem& e) {
        return fail(Errc::invalid_config, e.message);
    }
}

Result<GatewayConfig> load_config(const std::filesystem::path& file,
                                  std::span<const std::string> overrides) {
    std::ifstream in(file, std::ios::binary);
    if (!in) {
        return fail(Errc::invalid_config, file.string() + ": cannot be read");
    }
    std::ostringstream text;
    text << in.rdbuf();
    auto config = parse_config(text.str(), file.string(), overrides);
    if (config) {
        config->config_file = file;
        // A relative policy file is relative to the configuration file.
        if (!config->policy_file.empty() && config->policy_file.is_relative()) {
            config->policy_file = file.parent_path() / config->policy_file;
        }
        // So are the rule file, the introspection secret and the upstreams' manifests.
        for (auto* path : {&config->integrity.scanner_rules,
                           &config->auth.oauth.introspection.client_secret_file}) {
            if (!path->empty() && path->is_relative()) {
                *path = file.parent_path() / *path;
            }
        }
        for (auto& u : config->upstreams) {
            if (!u.manifest.empty() && u.manifest.is_relative()) {
                u.manifest = file.parent_path() / u.manifest;
            }
            std::vector<std::filesystem::path*> paths{
                &u.openapi.spec, &u.openapi.ca, &u.oauth.client_secret_file, &u.oauth.token_file};
            for (auto& a : u.openapi.auth) {
                paths.push_back(&a.value_file);
            }
            for (auto* path : paths) {
                const std::string shown = path->string();
                if (shown.starts_with("https://") || shown.starts_with("http://")) {
                    continue;  // a spec served over HTTP
                }
                if (!path->empty() && path->is_relative()) {
                    *path = file.parent_path() / *path;
                }
            }
            for (auto* list : {&u.sandbox.read, &u.sandbox.write}) {
                for (auto& p : *list) {
                    if (p.is_relative()) {
                        p = std::filesystem::absolute(file.parent_path() / p).lexically_normal();
                    }
                }
            }
        }
    }
    return config;
}

}  // namespace pqmcp::gateway
