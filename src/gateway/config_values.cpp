// What a gateway configuration means beyond its YAML: its listen address,
// the small value parsers the flags share, and the whole configuration
// checked before the gateway starts (validate()).
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <charconv>
#include <limits>

#include <fmt/format.h>

#include "pqmcp/core/duration.hpp"
#include "pqmcp/gateway/config.hpp"
#include "pqmcp/identity/identity.hpp"
#include "pqmcp/integrity/scanner.hpp"
#include "pqmcp/mcp/protocol.hpp"
#include "pqmcp/oauth/resource.hpp"
#include "pqmcp/observe/dashboard.hpp"
#include "pqmcp/observe/log.hpp"
#include "pqmcp/tls/profile.hpp"
#include "pqmcp/transport/http_util.hpp"

namespace pqmcp::gateway {

namespace {

bool valid_upstream_name(std::string_view name) {
    return !name.empty() && name.size() <= 64 && std::all_of(name.begin(), name.end(), [](char ch) {
        return std::isalnum(static_cast<unsigned char>(ch)) != 0 || ch == '-' || ch == '_';
    });
}

std::vector<std::string> split_command(std::string_view text) {
    std::vector<std::string> out;
    std::string current;
    bool in_word = false;
    char quote = 0;
    for (const char ch : text) {
        if (quote != 0) {
            if (ch == quote) {
                quote = 0;
            } else {
                current.push_back(ch);
            }
            continue;
        }
        if (ch == '"' || ch == '\'') {
            quote = ch;
            in_word = true;
        } else if (ch == ' ' || ch == '\t') {
            if (in_word) {
                out.push_back(std::move(current));
                current.clear();
                in_word = false;
            }
        } else {
            current.push_back(ch);
            in_word = true;
        }
    }
    if (in_word) {
        out.push_back(std::move(current));
    }
    return out;
}

}  // namespace

std::string GatewayConfig::listen_host() const {
    const auto colon = listen.rfind(':');
    std::string host = listen.substr(0, colon);
    if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
        host = host.substr(1, host.size() - 2);
    }
    return host;
}

bool GatewayConfig::listens_on_loopback() const {
    const std::string host = listen_host();
    return host == "localhost" || host == "::1" || host.rfind("127.", 0) == 0;
}

bool GatewayConfig::clients_must_be_known() const {
    const std::string mode = auth.mode();
    if (mode == "oauth" || mode == "either") {
        return require_client_identity;
    }
    return require_client_identity || mode == "both" ||
           (!listens_on_loopback() && !allow_any_client);
}

oauth::ResourceOptions resource_options(const OAuthConfig& o, std::string introspection_secret) {
    oauth::ResourceOptions ro;
    ro.issuer = o.issuer;
    ro.jwks_uri = o.jwks_uri;
    ro.resource = o.resource;
    ro.required_scopes = o.scopes;
    ro.leeway = o.clock_skew;
    if (!o.introspection.client_id.empty()) {
        ro.introspection.client_id = o.introspection.client_id;
        ro.introspection.client_secret = std::move(introspection_secret);
        ro.introspection.endpoint = o.introspection.endpoint;
        ro.introspection.cache = o.introspection.cache;
    }
    return ro;
}

std::string AuthConfig::mode() const {
    if (!require.empty()) {
        return require;
    }
    return oauth.issuer.empty() ? "tls" : "oauth";
}

std::string GatewayConfig::replica_name() const {
    if (!cluster.replica.empty()) {
        return cluster.replica;
    }
    std::array<char, 256> host{};
    if (gethostname(host.data(), host.size() - 1) != 0) {
        host.fill(0);
    }
    std::string name = host.data();
    return (name.empty() ? std::string("gateway") : name) + "-" + std::to_string(listen_port());
}

std::filesystem::path GatewayConfig::local_dir() const {
    if (!cluster.shared() && cluster.replica.empty()) {
        return identity;
    }
    return identity / "replicas" / replica_name();
}

std::filesystem::path GatewayConfig::audit_path() const {
    return audit.path.empty() ? local_dir() / "audit.db" : audit.path;
}

std::filesystem::path GatewayConfig::upstream_token_file(const UpstreamConfig& u) const {
    return u.oauth.token_file.empty() ? identity / "oauth" / (u.name + ".token")
                                      : u.oauth.token_file;
}

std::string GatewayConfig::state_spec() const {
    if (!integrity.state.empty()) {
        return integrity.state.string();
    }
    if (!cluster.postgres.empty()) {
        return cluster.postgres;
    }
    return (identity / "state.db").string();
}

std::uint16_t GatewayConfig::listen_port() const {
    const auto colon = listen.rfind(':');
    unsigned port = 0;
    if (colon != std::string::npos) {
        const char* begin = listen.data() + colon + 1;
        const char* end = listen.data() + listen.size();
        if (std::from_chars(begin, end, port).ptr != end || port > 65535) {
            port = 0;
        }
    }
    return static_cast<std::uint16_t>(port);
}

std::optional<ArgumentAccess> parse_argument_access(std::string_view text) noexcept {
    if (text == "write") {
        return ArgumentAccess::write;
    }
    if (text == "read") {
        return ArgumentAccess::read;
    }
    if (text == "none") {
        return ArgumentAccess::none;
    }
    return std::nullopt;
}

std::optional<AuditArguments> parse_audit_arguments(std::string_view text) noexcept {
    if (text == "digest") {
        return AuditArguments::digest;
    }
    if (text == "redacted") {
        return AuditArguments::redacted;
    }
    if (text == "none") {
        return AuditArguments::none;
    }
    return std::nullopt;
}

Result<std::chrono::milliseconds> parse_duration(std::string_view text) {
    auto d = pqmcp::parse_duration(text);
    if (!d) {
        return fail(Errc::invalid_config, d.error());
    }
    return *d;
}

std::string_view to_string(IntegrityAction a) noexcept {
    switch (a) {
        case IntegrityAction::block:
            return "block";
        case IntegrityAction::strip:
            return "strip";
        case IntegrityAction::alert:
            return "alert";
    }
    return "block";
}

std::optional<IntegrityAction> parse_integrity_action(std::string_view text) noexcept {
    for (const auto a : {IntegrityAction::block, IntegrityAction::strip, IntegrityAction::alert}) {
        if (to_string(a) == text) {
            return a;
        }
    }
    return std::nullopt;
}

Result<UpstreamConfig> parse_upstream_flag(std::string_view text) {
    const auto eq = text.find('=');
    if (eq == std::string_view::npos || eq == 0) {
        return fail(Errc::invalid_config, "--upstream " + std::string(text) +
                                              ": expected NAME=stdio:COMMAND ARGS..., NAME=URL "
                                              "or NAME=openapi:SPEC [BASE_URL]");
    }
    UpstreamConfig u;
    u.name = std::string(text.substr(0, eq));
    const std::string_view spec = text.substr(eq + 1);
    if (spec.rfind("stdio:", 0) == 0) {
        auto words = split_command(spec.substr(6));
        if (words.empty()) {
            return fail(Errc::invalid_config, "--upstream " + u.name + ": no command after stdio:");
        }
        u.kind = UpstreamKind::stdio;
        u.command = words.front();
        u.args.assign(words.begin() + 1, words.end());
    } else if (spec.rfind("openapi:", 0) == 0) {
        auto words = split_command(spec.substr(8));
        if (words.empty() || words.size() > 2) {
            return fail(Errc::invalid_config,
                        "--upstream " + u.name + ": expected openapi:SPEC [BASE_URL]");
        }
        u.kind = UpstreamKind::openapi;
        u.openapi.spec = words.front();
        if (words.size() == 2) {
            u.openapi.base_url = words[1];
        }
    } else if (spec.rfind("http://", 0) == 0 || spec.rfind("https://", 0) == 0) {
        u.kind = UpstreamKind::http;
        u.url = std::string(spec);
    } else {
        return fail(
            Errc::invalid_config,
            "--upstream " + u.name +
                ": expected stdio:COMMAND ARGS..., an http(s) URL or openapi:SPEC [BASE_URL]");
    }
    return u;
}

Status check_dashboard_token(std::string_view token) {
    for (const char ch : token) {
        if (std::isalnum(static_cast<unsigned char>(ch)) == 0 && ch != '-' && ch != '_') {
            return fail(Errc::invalid_config, "use letters, digits, - and _ only");
        }
    }
    if (token.size() < 16) {
        return fail(Errc::invalid_config, "at least 16 characters");
    }
    return {};
}

Status validate(const GatewayConfig& c) {
    const auto bad = [](std::string why) { return fail(Errc::invalid_config, std::move(why)); };
    {
        const auto colon = c.listen.rfind(':');
        unsigned port = 0;
        const char* end = c.listen.data() + c.listen.size();
        if (colon == std::string::npos || colon == 0 ||
            std::from_chars(c.listen.data() + colon + 1, end, port).ptr != end || port > 65535) {
            return bad("listen: expected HOST:PORT with a numeric host, not \"" + c.listen + "\"");
        }
    }
    if (c.identity.empty()) {
        return bad("identity: a directory is required (created with a new identity if missing)");
    }
    {
        const ClusterConfig& k = c.cluster;
        if (k.fail != "closed" && k.fail != "local") {
            return bad("cluster.fail: expected closed or local, not \"" + k.fail + "\"");
        }
        if (k.behaviour != "shared" && k.behaviour != "local") {
            return bad("cluster.behaviour: expected shared or local, not \"" + k.behaviour + "\"");
        }
        if (k.redis_timeout.count() <= 0 || k.redis_timeout > std::chrono::seconds{5}) {
            return bad(
                "cluster.redis_timeout: from 1ms to 5s (a decision waits this long at most)");
        }
        if (!k.redis.empty() && !k.redis.starts_with("redis://") && !k.redis.starts_with("unix:")) {
            return bad("cluster.redis: expected redis://HOST[:PORT][/DB] or unix:///PATH, not \"" +
                       k.redis + "\"");
        }
        if (!k.postgres.empty() && !k.postgres.starts_with("postgresql://") &&
            !k.postgres.starts_with("postgres://")) {
            return bad("cluster.postgres: expected a postgresql:// address, not \"" + k.postgres +
                       "\"");
        }
        const auto name_ok = [](char ch) {
            return std::isalnum(static_cast<unsigned char>(ch)) != 0 || ch == '-' || ch == '_' ||
                   ch == '.';
        };
        if (!k.replica.empty() && (k.replica.size() > 64 || k.replica.front() == '.' ||
                                   !std::all_of(k.replica.begin(), k.replica.end(), name_ok))) {
            return bad(
                "cluster.replica: 1 to 64 of A-Z a-z 0-9 - _ . (not starting with a dot), "
                "not \"" +
                k.replica + "\"");
        }
    }
    const auto profile = tls::parse_profile(c.profile);
    if (!profile) {
        return bad("profile: " + profile.error().detail);
    }
    if (!c.browser_certificate.empty() && (*profile)->browser_sigalgs.empty()) {
        return bad(fmt::format(
            "browser_certificate: profile {} allows no classical certificate (pq-hybrid does)",
            (*profile)->name));
    }
    if (const std::string mode = c.auth.mode();
        mode != "tls" && mode != "oauth" && mode != "both" && mode != "either") {
        return bad("auth.require: \"" + mode + "\" is not tls, oauth, both or either");
    } else if (mode != "tls" && c.auth.oauth.issuer.empty()) {
        return bad("auth.require: " + mode + " needs auth.oauth.issuer (--oauth-issuer)");
    } else if (mode == "tls" && !c.auth.oauth.issuer.empty()) {
        return bad("auth.oauth is configured but auth.require is tls: tokens would be ignored");
    }
    if (!c.auth.oauth.issuer.empty()) {
        const auto& in = c.auth.oauth.introspection;
        // The secret's file is only named here; it is read when the gateway starts.
        const auto ro = resource_options(c.auth.oauth, in.client_secret_file.empty() ? "" : "-");
        if (in.client_id.empty() != in.client_secret_file.empty()) {
            return bad(
                "auth.oauth.introspection: client_id and client_secret_file go together "
                "(--oauth-introspection CLIENT_ID:SECRET_FILE)");
        }
        if (auto ok = oauth::ResourceServer::validate(ro); !ok) {
            return bad("auth.oauth: " + ok.error().detail);
        }
        // The default resource is the listener's address as this machine
        // names it: what remote clients use must be said.
        if (c.auth.oauth.resource.empty() && !c.listens_on_loopback()) {
            return bad(
                "auth.oauth.resource (--oauth-resource): the URL clients reach this "
                "gateway at, which their tokens must name, is needed on a listener that is "
                "not loopback");
        }
    }
    if (c.require_client_identity && c.allow_any_client) {
        return bad("require_client_identity and allow_any_client contradict each other");
    }
    if (c.clients_must_be_known() && c.known_peers.empty() && c.ca.empty()) {
        if (!c.require_client_identity) {
            return bad("listen " + c.listen +
                       " is not loopback: clients must be known there (give known_peers or ca, "
                       "--known-peers or --ca), or say allow_any_client (--allow-any-client) to "
                       "accept any client that proves a key");
        }
        return bad(
            "require_client_identity needs known_peers or ca to say which clients are "
            "accepted");
    }
    for (const auto& origin : c.allowed_origins) {
        if (origin != "*" && transport::normalize_origin(origin).empty()) {
            return bad("allowed_origins: \"" + origin +
                       "\" is not an origin (scheme://host[:port])");
        }
    }
    if (c.log_level != "trace" && c.log_level != "debug" && c.log_level != "info" &&
        c.log_level != "warn" && c.log_level != "error" && c.log_level != "off") {
        return bad("log_level: expected trace, debug, info, warn, error or off");
    }
    if (c.upstreams.empty()) {
        return bad("no upstream: give --upstream NAME=..., --demo, or upstreams: in the file");
    }
    if (c.threads > 256) {
        return bad("threads: at most 256 (a session id names its thread in one byte)");
    }
    if (c.namespacing && c.separator.empty()) {
        return bad("namespacing.separator must not be empty");
    }
    if (!c.namespacing && c.upstreams.size() > 1) {
        return bad(
            "namespacing can be turned off only with a single upstream (names would collide)");
    }
    std::vector<std::string> names;
    for (const auto& u : c.upstreams) {
        if (!valid_upstream_name(u.name)) {
            return bad("upstream \"" + u.name + "\": a name is 1-64 of A-Z a-z 0-9 - _");
        }
        if (std::find(names.begin(), names.end(), u.name) != names.end()) {
            return bad("upstream \"" + u.name + "\" is defined twice");
        }
        names.push_back(u.name);
        if (c.namespacing && u.name.find(c.separator) != std::string::npos) {
            return bad("upstream \"" + u.name +
                       "\": a name must not contain the namespace separator \"" + c.separator +
                       "\" (its tools' names would be ambiguous)");
        }
        if (u.kind == UpstreamKind::stdio && u.command.empty()) {
            return bad("upstream " + u.name + ": no command");
        }
        if (u.kind == UpstreamKind::openapi) {
            const auto& o = u.openapi;
            const std::string at = "upstream " + u.name + ": openapi.";
            if (o.spec.empty()) {
                return bad(at + "spec: the OpenAPI description's file is required");
            }
            if (o.base_url.empty() && !o.follow_servers) {
                return bad(at +
                           "base_url: where the API is (the spec's servers are followed "
                           "only with follow_servers: true)");
            }
            if (!o.base_url.empty()) {
                if (auto url = transport::parse_url(o.base_url); !url) {
                    return bad(at + "base_url: " + url.error().detail);
                }
            }
            for (const auto& a : o.auth) {
                if (a.type != "api_key" && a.type != "bearer" && a.type != "basic") {
                    return bad(at + "auth.type: expected api_key, bearer or basic, not \"" +
                               a.type + "\"");
                }
                if (a.type == "api_key" &&
                    (a.name.empty() || (a.in != "header" && a.in != "query" && a.in != "cookie"))) {
                    return bad(at +
                               "auth: an api_key needs a name and in: header, query or cookie");
                }
                if (a.type == "basic" && a.username.empty()) {
                    return bad(at + "auth: basic needs a username");
                }
                const int sources = (a.value.empty() ? 0 : 1) + (a.value_file.empty() ? 0 : 1) +
                                    (a.value_env.empty() ? 0 : 1);
                if (sources != 1) {
                    return bad(at + "auth: give the secret once: value, value_file or value_env");
                }
            }
            if (o.name_max_length < 16 + u.name.size() + c.separator.size()) {
                return bad(at +
                           "name_max_length: leaves fewer than 16 characters after the "
                           "prefix " +
                           u.name + c.separator);
            }
        }
        if (u.kind == UpstreamKind::http) {
            auto url = transport::parse_url(u.url);
            if (!url) {
                return bad("upstream " + u.name + ": " + url.error().detail);
            }
            if (url->tls && !tls::parse_profile(u.profile)) {
                return bad("upstream " + u.name +
                           ": profile: " + tls::parse_profile(u.profile).error().detail);
            }
            const auto& o = u.oauth;
            if (o.grant != "client_credentials" && o.grant != "authorization_code") {
                return bad("upstream " + u.name + ": oauth.grant: \"" + o.grant +
                           "\" is not client_credentials or authorization_code");
            }
            if (o.client_id.empty() && (!o.client_secret_file.empty() || !o.token_file.empty() ||
                                        o.grant != "client_credentials")) {
                return bad("upstream " + u.name + ": oauth needs client_id");
            }
            // A public client (no secret) can only hold a refresh token.
            if (!o.client_id.empty() && o.client_secret_file.empty() &&
                o.grant == "client_credentials") {
                return bad("upstream " + u.name +
                           ": oauth.client_id needs oauth.client_secret_file (or grant: "
                           "authorization_code, enrolled with pqmcp auth login)");
            }
        } else if (!u.oauth.client_id.empty()) {
            return bad("upstream " + u.name + ": oauth is for HTTP upstreams");
        }
    }
    // "a" and "a__b": is "a__b__x" the tool b__x of a, or x of a__b? Every
    // prefix must not start another.
    if (c.namespacing) {
        for (const auto& a : c.upstreams) {
            for (const auto& b : c.upstreams) {
                const std::string pa = a.name + c.separator;
                const std::string pb = b.name + c.separator;
                if (&a != &b && pb.size() > pa.size() && pb.compare(0, pa.size(), pa) == 0) {
                    return bad(
                        fmt::format("upstreams \"{}\" and \"{}\": federated names would be "
                                    "ambiguous ({}x is {}... too); rename one",
                                    a.name, b.name, pb, pa));
                }
            }
        }
    }
    if (!integrity::parse_severity(c.integrity.threshold)) {
        return bad("integrity.threshold: expected info, low, medium, high or critical, not \"" +
                   c.integrity.threshold + "\"");
    }
    if (c.integrity.on_change == IntegrityAction::strip) {
        return bad("integrity.on_change: expected block or alert");
    }
    for (const auto& u : c.upstreams) {
        if (u.publisher.empty() != u.manifest.empty()) {
            return bad("upstream " + u.name + ": publisher and manifest go together");
        }
        if (!u.publisher.empty()) {
            if (auto id = identity::PeerId::parse(u.publisher); !id) {
                return bad("upstream " + u.name + ": publisher: " + id.error().detail);
            }
            if (!c.integrity.enabled) {
                return bad("upstream " + u.name + ": a publisher needs integrity enabled");
            }
        }
    }
    for (const auto& pointer : c.audit.redact) {
        if (!pointer.empty() && pointer.front() != '/') {
            return bad("audit.redact: \"" + pointer +
                       "\" is not a JSON Pointer (it starts with /)");
        }
    }
    if (c.audit.flush_interval.count() <= 0 || c.audit.checkpoint_interval.count() <= 0) {
        return bad("audit intervals must be positive");
    }
    if (!observe::parse_log_format(c.observe.log_format)) {
        return bad("log_format: expected text or json, not \"" + c.observe.log_format + "\"");
    }
    if (!observe::parse_dashboard_access(c.observe.dashboard)) {
        return bad("dashboard.access: expected off, open, token or identity, not \"" +
                   c.observe.dashboard + "\"");
    }
    if (!c.observe.dashboard_token.empty()) {
        if (auto ok = check_dashboard_token(c.observe.dashboard_token); !ok) {
            return bad("dashboard.token: " + ok.error().detail);
        }
    }
    if (!c.observe.metrics.empty()) {
        const auto colon = c.observe.metrics.rfind(':');
        if (colon == std::string::npos || colon == 0) {
            return bad("metrics: expected HOST:PORT, not \"" + c.observe.metrics + "\"");
        }
    }
    const auto& t = c.timeouts;
    for (const auto d : {t.http.handshake, t.http.read, t.http.idle, t.http.write, t.http.keepalive,
                         t.http.session_idle, t.upstream_request, t.upstream_deadline,
                         t.upstream_pool_wait, t.upstream_start, t.child_idle}) {
        if (d.count() <= 0) {
            return bad("timeouts must be positive");
        }
    }
    if (c.limits.message.max_message_bytes > c.limits.http.max_body_bytes) {
        return bad("limits.max_message_bytes must not exceed limits.max_body_bytes");
    }
    return {};
}

}  // namespace pqmcp::gateway
