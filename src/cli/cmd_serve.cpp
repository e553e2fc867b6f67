// `pqmcp serve` (the gateway) and `pqmcp demo-server` (the demo MCP server on stdio).
#include <sys/prctl.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <string_view>
#include <tuple>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "commands.hpp"
#include "paths.hpp"
#include "pqmcp/demo/demo_server.hpp"
#include "pqmcp/gateway/config.hpp"
#include "pqmcp/gateway/gateway.hpp"
#include "pqmcp/observe/log.hpp"
#include "pqmcp/sandbox/sandbox.hpp"
#include "serve_options.hpp"

namespace pqmcp::cli {
namespace {

// "NAME=VALUE" of a per-upstream flag: the upstream and the value.
Result<std::pair<gateway::UpstreamConfig*, std::string>> per_upstream(gateway::GatewayConfig& c,
                                                                      std::string_view flag,
                                                                      const std::string& text) {
    const auto eq = text.find('=');
    if (eq == std::string::npos || eq == 0) {
        return fail(gateway::Errc::invalid_config,
                    std::string(flag) + " " + text + ": expected UPSTREAM=VALUE");
    }
    const std::string name = text.substr(0, eq);
    for (auto& u : c.upstreams) {
        if (u.name == name) {
            if (u.kind != gateway::UpstreamKind::stdio) {
                return fail(
                    gateway::Errc::invalid_config,
                    fmt::format("{} {}: upstream {} is not a stdio server", flag, text, name));
            }
            return std::pair{&u, text.substr(eq + 1)};
        }
    }
    return fail(gateway::Errc::invalid_config,
                std::string(flag) + " " + text + ": no upstream named " + name);
}

// CLIENT_ID:SECRET_FILE, both present (an OAuth client of the gateway's own:
// --upstream-oauth, --oauth-introspection); the file made absolute.
std::optional<std::pair<std::string, std::filesystem::path>> client_and_secret(
    std::string_view text) {
    const auto colon = text.find(':');
    if (colon == std::string_view::npos || colon == 0 || colon + 1 == text.size()) {
        return std::nullopt;
    }
    return std::pair{std::string(text.substr(0, colon)),
                     std::filesystem::absolute(text.substr(colon + 1)).lexically_normal()};
}

// The per-upstream flags, once every upstream is known.
Status apply_upstream_flags(const ServeArgs& a, gateway::GatewayConfig& c) {
    if (a.no_sandbox) {
        for (auto& u : c.upstreams) {
            u.sandbox.enabled = false;
        }
    }
    const auto each = [&c](std::string_view flag, const std::vector<std::string>& values,
                           const auto& apply) -> Status {
        for (const auto& text : values) {
            auto target = per_upstream(c, flag, text);
            if (!target) {
                return tl::unexpected(target.error());
            }
            if (auto ok = apply(*target->first, target->second); !ok) {
                return fail(gateway::Errc::invalid_config,
                            std::string(flag) + " " + text + ": " + ok.error());
            }
        }
        return {};
    };
    using Outcome = tl::expected<void, std::string>;
    const auto absolute = [](const std::string& p) {
        return std::filesystem::absolute(p).lexically_normal();
    };
    for (const auto& ok : {
             each("--pass-env", a.pass_env,
                  [](gateway::UpstreamConfig&u, const std::string&v) -> Outcome {
                      u.env_passthrough.push_back(v);
                      return {};
                  }),
             each("--upstream-env", a.upstream_env,
                  [](gateway::UpstreamConfig&u, const std::string&v) -> Outcome {
                      const auto eq = v.find('=');
                      if (eq == std::string::npos || eq == 0) {
                          return tl::unexpected(std::string("expected UPSTREAM=KEY=VALUE"));
                      }
                      u.env.emplace_back(v.substr(0, eq), v.substr(eq + 1));
                      return {};
                  }),
             each("--sandbox", a.sandbox,
                  [](gateway::UpstreamConfig&u, const std::string&v) -> Outcome {
                      if (v != "on" && v != "off") {
                          return tl::unexpected(std::string("expected on or off"));
                      }
                      u.sandbox.enabled = v == "on";
                      return {};
                  }),
             each("--sandbox-read", a.sandbox_read,
                  [&absolute](gateway::UpstreamConfig&u, const std::string&v) -> Outcome {
                      u.sandbox.read.push_back(absolute(v));
                      return {};
                  }),
             each("--sandbox-write", a.sandbox_write,
                  [&absolute](gateway::UpstreamConfig&u, const std::string&v) -> Outcome {
                      u.sandbox.write.push_back(absolute(v));
                      return {};
                  }),
             each("--sandbox-network", a.sandbox_network,
                  [](gateway::UpstreamConfig&u, const std::string&v) -> Outcome {
                      const auto n = sandbox::parse_network(v);
                      if (!n) {
                          return tl::unexpected(std::string("expected none, loopback or any"));
                      }
                      u.sandbox.network = *n;
                      return {};
                  }),
             each("--sandbox-user", a.sandbox_user,
                  [](gateway::UpstreamConfig&u, const std::string&v) -> Outcome {
                      u.sandbox.user = v;
                      return {};
                  }),
             each("--sandbox-arguments", a.sandbox_arguments,
                  [](gateway::UpstreamConfig&u, const std::string&v) -> Outcome {
                      const auto access = gateway::parse_argument_access(v);
                      if (!access) {
                          return tl::unexpected(std::string("expected write, read or none"));
                      }
                      u.sandbox.arguments = *access;
                      return {};
                  }),
         }) {
        if (!ok) {
            return ok;
        }
    }
    // HTTP upstreams: the gateway's own OAuth client, by client credentials
    // or by an enrolled refresh token (whose client may be public).
    for (const auto& [flag, values, grant] :
         {std::tuple{"--upstream-oauth", &a.upstream_oauth, "client_credentials"},
          std::tuple{"--upstream-oauth-login", &a.upstream_oauth_login, "authorization_code"}}) {
        const bool needs_secret = std::string_view(grant) == "client_credentials";
        for (const auto& text : *values) {
            const auto eq = text.find('=');
            const std::string_view value = eq == std::string::npos
                                               ? std::string_view{}
                                               : std::string_view(text).substr(eq + 1);
            auto client = client_and_secret(value);
            if (!client && !needs_secret && !value.empty() &&
                value.find(':') == std::string_view::npos) {
                client = std::pair{std::string(value), std::filesystem::path{}};
            }
            if (eq == 0 || !client) {
                return fail(gateway::Errc::invalid_config,
                            fmt::format("{} {}: expected UPSTREAM=CLIENT_ID{}", flag, text,
                                        needs_secret ? ":SECRET_FILE" : "[:SECRET_FILE]"));
            }
            const std::string name = text.substr(0, eq);
            const auto it = std::find_if(c.upstreams.begin(), c.upstreams.end(),
                                         [&name](const auto& u) { return u.name == name; });
            if (it == c.upstreams.end() || it->kind != gateway::UpstreamKind::http) {
                return fail(gateway::Errc::invalid_config,
                            fmt::format("{} {}: no HTTP upstream named {}", flag, text, name));
            }
            it->oauth.client_id = client->first;
            it->oauth.client_secret_file = client->second;
            it->oauth.grant = grant;
        }
    }
    return {};
}

int fail_with(const std::string& what) {
    std::cerr << "pqmcp serve: " << what << "\n";
    return k_exit_error;
}

// Every connection and every child's three pipes is a descriptor: take what
// the system allows (the soft limit is often 1024) and say when it is short.
void raise_descriptor_limit(const gateway::GatewayConfig& c) {
    rlimit limit{};
    if (getrlimit(RLIMIT_NOFILE, &limit) != 0) {
        return;
    }
    if (limit.rlim_cur < limit.rlim_max) {
        limit.rlim_cur = limit.rlim_max;
        (void)setrlimit(RLIMIT_NOFILE, &limit);
    }
    const auto needed = c.limits.http.max_connections + 3 * c.limits.max_children + 64;
    if (limit.rlim_cur != RLIM_INFINITY && limit.rlim_cur < needed) {
        spdlog::warn(
            "the descriptor limit is {}; limits.max_connections and max_children may need {}",
            limit.rlim_cur, needed);
    }
}

int run_serve(const ServeArgs& args) {
    // Its memory holds the identity's private key: no core dumps, and no
    // ptrace or /proc/PID/mem by processes of the same user.
    (void)::prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
    auto config = build_config(args);
    if (!config) {
        return fail_with(config.error().message());
    }
    spdlog::set_level(spdlog::level::from_str(config->log_level));
    if (const auto format = observe::parse_log_format(config->observe.log_format)) {
        observe::set_log_format(*format);
    }
    raise_descriptor_limit(*config);
    if (!config->listens_on_loopback() && !config->clients_must_be_known()) {
        spdlog::warn(
            "listening on {} with --allow-any-client: any client that proves a key can open a "
            "session",
            config->listen);
    }
    auto gw = gateway::Gateway::create(std::move(*config), PQMCP_VERSION);
    if (!gw) {
        return fail_with(gw.error().message());
    }
    const auto& info = (*gw)->info();
    if (info.identity_created) {
        spdlog::info("created a new gateway identity {}", info.peer_id);
    }
    spdlog::info("{} thread{} serving connections and sessions", info.threads,
                 info.threads == 1 ? "" : "s");
    // The ready line once SIGTERM stops the gateway cleanly (a supervisor
    // may send it the moment it reads the line).
    (*gw)->run(true, [&info] {
        std::string upstreams;
        for (const auto& u : info.upstreams) {
            upstreams += (upstreams.empty() ? "" : ",") + u;
        }
        // The one ready line: where, who, and what a client runs.
        std::cout << "pqmcp serve: ready on " << info.url << " peer " << info.peer_id << " profile "
                  << info.profile << " upstreams " << upstreams
                  << "; connect with: " << self_executable() << " connect " << info.url
                  << " --identity " << default_identity_dir("client").string() << " --pin "
                  << info.peer_id << std::endl;
        // The dashboard's address carries its token: stdout only, never the log.
        if (!info.dashboard_url.empty()) {
            std::cout << "pqmcp serve: dashboard " << info.dashboard_url << std::endl;
        }
        if (!info.metrics_url.empty()) {
            std::cout << "pqmcp serve: metrics " << info.metrics_url << std::endl;
        }
        if (!info.browser_certificate_id.empty()) {
            spdlog::info(
                "browser certificate {} (ECDSA P-256) for clients that cannot verify ML-DSA; "
                "their connections are audited with that signature",
                info.browser_certificate_id);
        }
    });
    spdlog::info("stopped");
    return k_exit_ok;
}

}  // namespace

void add_config_source_options(CLI::App& cmd, ServeArgs& args) {
    cmd.add_option("--config", args.config_file, "YAML configuration file (docs/gateway.md)")
        ->check(CLI::ExistingFile);
    cmd.add_option("--set", args.sets,
                   "KEY=VALUE: set any key of the configuration file (repeatable; VALUE is "
                   "YAML: --set limits.buffer_bytes=67108864, --set protect=[/srv/keys], "
                   "--set upstreams.0.sandbox.network=loopback); the other flags win");
    cmd.add_option("--listen", args.listen, "HOST:PORT to listen on (default 127.0.0.1:8443)");
    cmd.add_option("--identity", args.identity,
                   "identity directory, created with a new ML-DSA identity if missing "
                   "(default ~/.config/pqmcp/gateway)");

    cmd.add_option("--upstream", args.upstreams,
                   "NAME=stdio:COMMAND ARGS... or NAME=URL (repeatable)");

    cmd.add_option("--upstream-oauth", args.upstream_oauth,
                   "UPSTREAM=CLIENT_ID:SECRET_FILE: the gateway's own OAuth token for an HTTP "
                   "upstream that asks for one (client_credentials; the secret is the file's "
                   "first line; upstreams[].oauth)");
    cmd.add_option("--upstream-oauth-login", args.upstream_oauth_login,
                   "UPSTREAM=CLIENT_ID[:SECRET_FILE]: the gateway's own OAuth token for an HTTP "
                   "upstream by a refresh token enrolled once with `pqmcp auth login UPSTREAM` "
                   "(authorization code with PKCE; upstreams[].oauth.grant authorization_code)");
}

Result<gateway::GatewayConfig> build_config(const ServeArgs& a) {
    gateway::GatewayConfig c;
    if (!a.config_file.empty() || !a.sets.empty()) {
        auto loaded = a.config_file.empty() ? gateway::parse_config("", "--set", a.sets)
                                            : gateway::load_config(a.config_file, a.sets);
        if (!loaded) {
            return loaded;
        }
        c = std::move(*loaded);
    }
    if (!a.listen.empty()) {
        c.listen = a.listen;
    }
    if (!a.identity.empty()) {
        c.identity = a.identity;
    }
    if (c.identity.empty()) {
        c.identity = default_identity_dir("gateway");
    }
    if (!a.profile.empty()) {
        c.profile = a.profile;
    }
    if (a.allow_any_client) {
        c.allow_any_client = true;
    }
    if (a.require_client_identity) {
        c.require_client_identity = true;
    }
    if (a.no_raw_public_keys) {
        c.raw_public_keys = false;
    }
    if (!a.auth_require.empty()) {
        c.auth.require = a.auth_require;
    }
    if (!a.oauth_issuer.empty()) {
        c.auth.oauth.issuer = a.oauth_issuer;
    }
    if (!a.oauth_jwks_uri.empty()) {
        c.auth.oauth.jwks_uri = a.oauth_jwks_uri;
    }
    if (!a.oauth_resource.empty()) {
        c.auth.oauth.resource = a.oauth_resource;
    }
    if (!a.oauth_scopes.empty()) {
        c.auth.oauth.scopes = a.oauth_scopes;
    }
    if (!a.oauth_clock_skew.empty()) {
        auto skew = gateway::parse_duration(a.oauth_clock_skew);
        if (!skew) {
            return fail(gateway::Errc::invalid_config,
                        "--oauth-clock-skew: " + skew.error().detail);
        }
        c.auth.oauth.clock_skew = std::chrono::duration_cast<std::chrono::seconds>(*skew);
    }
    if (!a.oauth_introspection.empty()) {
        const auto client = client_and_secret(a.oauth_introspection);
        if (!client) {
            return fail(gateway::Errc::invalid_config, "--oauth-introspection " +
                                                           a.oauth_introspection +
                                                           ": expected CLIENT_ID:SECRET_FILE");
        }
        c.auth.oauth.introspection.client_id = client->first;
        c.auth.oauth.introspection.client_secret_file = client->second;
    }
    if (!a.oauth_introspection_endpoint.empty()) {
        c.auth.oauth.introspection.endpoint = a.oauth_introspection_endpoint;
    }
    if (!a.oauth_introspection_cache.empty()) {
        auto cache = gateway::parse_duration(a.oauth_introspection_cache);
        if (!cache) {
            return fail(gateway::Errc::invalid_config,
                        "--oauth-introspection-cache: " + cache.error().detail);
        }
        c.auth.oauth.introspection.cache = std::chrono::duration_cast<std::chrono::seconds>(*cache);
    }
    if (!a.known_peers.empty()) {
        c.known_peers = a.known_peers;
    }
    if (!a.ca.empty()) {
        c.ca = a.ca;
    }
    if (!a.browser_certificate.empty()) {
        c.browser_certificate = a.browser_certificate;
    }
    for (const auto& o : a.origins) {
        c.allowed_origins.push_back(o);
    }
    if (a.no_namespace) {
        c.namespacing = false;
    }
    if (!a.separator.empty()) {
        c.separator = a.separator;
    }
    if (a.max_sessions > 0) {
        c.limits.http.max_sessions = a.max_sessions;
    }
    if (a.max_children > 0) {
        c.limits.max_children = a.max_children;
    }
    if (a.max_message_bytes > 0) {
        c.limits.message.max_message_bytes = a.max_message_bytes;
        c.limits.http.max_body_bytes = std::max(c.limits.http.max_body_bytes, a.max_message_bytes);
    }
    for (const auto& [text, field] :
         {std::pair{&a.request_timeout, &c.timeouts.upstream_request},
          std::pair{&a.session_timeout, &c.timeouts.http.session_idle}}) {
        if (!text->empty()) {
            auto d = gateway::parse_duration(*text);
            if (!d) {
                return tl::unexpected(d.error());
            }
            *field = *d;
        }
    }
    if (!a.log_level.empty()) {
        c.log_level = a.log_level;
    }
    if (a.threads > 0) {
        c.threads = a.threads;
    }
    auto& k = c.cluster;
    for (const auto& [flag, field] :
         {std::pair{&a.replica, &k.replica}, std::pair{&a.redis, &k.redis},
          std::pair{&a.redis_fail, &k.fail}, std::pair{&a.redis_behaviour, &k.behaviour},
          std::pair{&a.postgres, &k.postgres}}) {
        if (!flag->empty()) {
            *field = *flag;
        }
    }
    if (!a.ticket_keys.empty()) {
        k.ticket_keys = a.ticket_keys;
    }
    if (!a.redis_timeout.empty()) {
        auto d = gateway::parse_duration(a.redis_timeout);
        if (!d) {
            return tl::unexpected(d.error());
        }
        k.redis_timeout = *d;
    }
    if (!a.policy.empty()) {
        c.policy_file = a.policy;
        c.policy_inline.clear();
    }
    auto& in = c.integrity;
    if (a.no_integrity) {
        in.enabled = false;
    }
    if (a.no_sign_lists) {
        in.sign_lists = false;
    }
    if (!a.state.empty()) {
        in.state = a.state;
    }
    if (!a.scanner_rules.empty()) {
        in.scanner_rules = a.scanner_rules;
    }
    if (!a.threshold.empty()) {
        in.threshold = a.threshold;
    }
    for (const auto& [text, field, what] :
         {std::tuple{&a.on_change, &in.on_change, "--on-change"},
          std::tuple{&a.on_finding, &in.on_finding, "--on-finding"}}) {
        if (text->empty()) {
            continue;
        }
        const auto action = gateway::parse_integrity_action(*text);
        if (!action) {
            return fail(
                gateway::Errc::invalid_config,
                std::string(what) + ": expected block, strip or alert, not \"" + *text + "\"");
        }
        *field = *action;
    }
    if (!a.audit.empty()) {
        c.audit.path = a.audit;
    }
    if (a.no_audit) {
        c.audit.enabled = false;
    }
    if (!a.audit_arguments.empty()) {
        const auto mode = gateway::parse_audit_arguments(a.audit_arguments);
        if (!mode) {
            return fail(gateway::Errc::invalid_config,
                        "--audit-arguments: expected digest, redacted or none, not \"" +
                            a.audit_arguments + "\"");
        }
        c.audit.arguments = *mode;
    }
    if (!a.audit_on_failure.empty()) {
        if (a.audit_on_failure != "refuse" && a.audit_on_failure != "continue") {
            return fail(gateway::Errc::invalid_config,
                        "--audit-on-failure: expected refuse or continue, not \"" +
                            a.audit_on_failure + "\"");
        }
        c.audit.refuse_on_failure = a.audit_on_failure == "refuse";
    }
    if (!a.audit_acknowledge.empty()) {
        c.audit.acknowledge_committed = a.audit_acknowledge == "committed";
    }
    for (const auto& pointer : a.redact) {
        c.audit.redact.push_back(pointer);
    }
    if (!a.redact.empty() && a.audit_arguments.empty()) {
        c.audit.arguments = gateway::AuditArguments::redacted;
    }
    if (!a.metrics.empty()) {
        c.observe.metrics = a.metrics;
    }
    if (!a.log_format.empty()) {
        c.observe.log_format = a.log_format;
    }
    if (!a.dashboard.empty()) {
        c.observe.dashboard = a.dashboard;
    }
    if (!a.dashboard_token.empty()) {
        c.observe.dashboard_token = a.dashboard_token;
    }
    if (!a.dashboard_token_file.empty()) {
        c.observe.dashboard_token_file = a.dashboard_token_file;
    }
    for (const auto& flag : a.upstreams) {
        auto u = gateway::parse_upstream_flag(flag);
        if (!u) {
            return tl::unexpected(u.error());
        }
        c.upstreams.push_back(std::move(*u));
    }
    if (a.demo) {
        gateway::UpstreamConfig demo;
        demo.name = "demo";
        demo.kind = gateway::UpstreamKind::demo;
        c.upstreams.push_back(std::move(demo));
    }
    if (auto ok = apply_upstream_flags(a, c); !ok) {
        return tl::unexpected(ok.error());
    }
    return c;
}

void add_serve_commands(CLI::App& app, int& exit_code) {
    auto args = std::make_shared<ServeArgs>();
    CLI::App* serve = app.add_subcommand(
        "serve", "Run the gateway: PQ TLS with MCP Streamable HTTP at /mcp, in front of upstreams");
    serve->add_option("--profile", args->profile,
                      "security profile: pq-hybrid, pq-strict, classical");
    serve->add_flag("--demo", args->demo, "add the built-in demo MCP server as upstream 'demo'");
    serve->add_flag("--allow-any-client", args->allow_any_client,
                    "on a listener that is not loopback, accept any client that proves a key "
                    "(without it, only --known-peers and --ca clients are accepted there)");
    serve->add_flag("--require-client-identity", args->require_client_identity,
                    "accept only clients whose identity is in --known-peers or issued by --ca");
    serve->add_flag("--no-raw-public-keys", args->no_raw_public_keys,
                    "X.509 certificates even with peers that trust by key (YAML "
                    "raw_public_keys: false; default: RFC 7250 raw public keys with them)");
    serve
        ->add_option("--auth-require", args->auth_require,
                     "who may call /mcp: tls (the client's TLS identity), oauth (an access "
                     "token), both, or either (YAML auth.require; default tls, or oauth with "
                     "--oauth-issuer)")
        ->check(CLI::IsMember({"tls", "oauth", "both", "either"}));
    serve->add_option("--oauth-issuer", args->oauth_issuer,
                      "the OAuth authorization server whose JWT access tokens are accepted "
                      "(auth.oauth.issuer)");
    serve->add_option("--oauth-jwks-uri", args->oauth_jwks_uri,
                      "its keys (default: from its metadata; auth.oauth.jwks_uri)");
    serve->add_option("--oauth-resource", args->oauth_resource,
                      "this gateway's resource URI, the tokens' audience (default: the "
                      "listener's URL; auth.oauth.resource)");
    serve->add_option("--oauth-scope", args->oauth_scopes,
                      "a scope every token must carry (repeatable; auth.oauth.scopes)");
    serve->add_option("--oauth-clock-skew", args->oauth_clock_skew,
                      "clock skew allowed on a token's exp and nbf (default 30s)");
    serve->add_option("--oauth-introspection", args->oauth_introspection,
                      "CLIENT_ID:SECRET_FILE: ask the authorization server about opaque tokens "
                      "(RFC 7662) as this client, its secret the file's first line "
                      "(auth.oauth.introspection)");
    serve->add_option("--oauth-introspection-endpoint", args->oauth_introspection_endpoint,
                      "its introspection endpoint (default: from its metadata)");
    serve->add_option("--oauth-introspection-cache", args->oauth_introspection_cache,
                      "use an answer about a token this long at most (default 60s)");
    serve->add_option("--known-peers", args->known_peers, "known_peers file of trusted clients")
        ->check(CLI::ExistingFile);
    serve->add_option("--ca", args->ca, "CA certificates (PEM) that vouch for clients")
        ->check(CLI::ExistingFile);
    serve->add_option("--browser-cert", args->browser_certificate,
                      "an extra ECDSA P-256 certificate for browsers without ML-DSA: auto "
                      "(self-signed in IDENTITY/browser) or a directory with identity.key/.crt");
    serve->add_option("--allow-origin", args->origins,
                      "an Origin browsers may call from (repeatable; '*' for any)");
    serve->add_flag("--no-namespace", args->no_namespace,
                    "do not prefix tool and prompt names (one upstream only)");
    serve->add_option("--separator", args->separator, "namespace separator (default __)");
    serve->add_option("--max-sessions", args->max_sessions, "sessions at once (default 1000)");
    serve->add_option("--max-children", args->max_children,
                      "upstream processes at once (default 64)");
    serve->add_option("--max-message-bytes", args->max_message_bytes,
                      "largest JSON-RPC message (default 4 MiB)");
    serve->add_option(
        "--request-timeout", args->request_timeout,
        "an upstream request without answer or progress fails after this (default 120s)");
    serve->add_option("--session-timeout", args->session_timeout,
                      "an idle session ends after this (default 30m)");
    serve->add_option("--log-level", args->log_level, "trace, debug, info, warn, error, off");
    serve
        ->add_option("--threads", args->threads,
                     "threads serving connections and sessions (default: one per core)")
        ->check(CLI::Range(1, 256));
    serve->add_option("--replica", args->replica,
                      "this replica's name in a tier (its audit chain, its local files under "
                      "IDENTITY/replicas/NAME; default HOSTNAME-PORT)");
    serve->add_option("--redis", args->redis,
                      "redis://HOST[:PORT][/DB] or unix:///PATH: rates, quotas and behaviour "
                      "baselines shared with the other replicas");
    serve->add_option("--redis-timeout", args->redis_timeout,
                      "the longest a decision waits on Redis (default 25ms)");
    serve->add_option("--redis-fail", args->redis_fail,
                      "when Redis does not answer: closed (default; rated calls are refused) or "
                      "local (counted here alone)");
    serve->add_option("--redis-behaviour", args->redis_behaviour,
                      "behaviour baselines with --redis: shared (default; one per caller for the "
                      "whole tier, in Redis) or local (each replica its own)");
    serve->add_option("--postgres", args->postgres,
                      "postgresql://...: pins and approvals shared with the other replicas, the "
                      "audit trail shipped there");
    serve->add_option("--ticket-keys", args->ticket_keys,
                      "a file of 32+ random bytes the replicas share: their session tickets "
                      "resume on each other");
    serve
        ->add_option("--policy", args->policy,
                     "policy file (docs/policy.md); reloaded on SIGHUP and when it changes")
        ->check(CLI::ExistingFile);
    serve->add_option("--state", args->state,
                      "tool state: a SQLite file or postgresql://... (pins; default "
                      "IDENTITY/state.db, or --postgres)");
    serve->add_option("--on-change", args->on_change,
                      "a tool definition changed since it was pinned: block (default) or alert");
    serve->add_option("--on-finding", args->on_finding,
                      "a scanner finding at or above the threshold: block (default), strip, alert");
    serve->add_option("--finding-threshold", args->threshold,
                      "lowest severity --on-finding applies to (default high)");
    serve
        ->add_option("--scanner-rules", args->scanner_rules,
                     "poisoning scanner rule file (default: the built-in rules)")
        ->check(CLI::ExistingFile);
    serve->add_flag("--no-integrity", args->no_integrity,
                    "no pins, scanner or signed lists (not recommended)");
    serve->add_flag("--no-sign-lists", args->no_sign_lists,
                    "serve tools/list and the other lists unsigned");
    serve->add_option("--audit", args->audit,
                      "audit database (default IDENTITY/audit.db; in a tier "
                      "IDENTITY/replicas/NAME/audit.db)");
    serve->add_flag("--no-audit", args->no_audit, "no audit trail (not recommended)");
    serve->add_option("--audit-arguments", args->audit_arguments,
                      "what the audit keeps of tool arguments: digest (default), redacted, none");
    serve->add_option("--audit-on-failure", args->audit_on_failure,
                      "when audit records cannot be committed: refuse (default; tools/call gets "
                      "-32013 until they can) or continue");
    serve
        ->add_option("--audit-acknowledge", args->audit_acknowledge,
                     "queued (default): answers do not wait for the audit; committed: an answer "
                     "leaves once its record is committed (every answered call is in the trail)")
        ->check(CLI::IsMember({"queued", "committed"}));
    serve->add_option("--redact", args->redact,
                      "a JSON Pointer into tool arguments to blank in the audit (repeatable; "
                      "implies --audit-arguments redacted)");
    serve->add_option("--metrics", args->metrics,
                      "HOST:PORT for Prometheus metrics over plain HTTP (e.g. 127.0.0.1:9464)");
    serve->add_option("--log-format", args->log_format, "text (default) or json, one event a line");
    serve->add_option("--dashboard", args->dashboard,
                      "dashboard at / and /dashboard: token (default), identity, open, off");
    serve->add_option("--dashboard-token", args->dashboard_token,
                      "the dashboard's token (default: a new one each start; visible in ps: "
                      "prefer --dashboard-token-file or PQMCP_DASHBOARD_TOKEN)");
    serve
        ->add_option("--dashboard-token-file", args->dashboard_token_file,
                     "read the dashboard's token from the first line of this file")
        ->check(CLI::ExistingFile);
    serve->add_option("--pass-env", args->pass_env,
                      "UPSTREAM=VAR: pass the gateway's variable VAR to a stdio upstream "
                      "(repeatable; children get PATH, HOME, LANG and nothing else by default)");
    serve->add_option("--upstream-env", args->upstream_env,
                      "UPSTREAM=KEY=VALUE: set a variable for a stdio upstream (repeatable)");
    serve->add_option("--sandbox", args->sandbox,
                      "UPSTREAM=on|off: the sandbox of a stdio upstream (default on)");
    serve->add_flag("--no-sandbox", args->no_sandbox,
                    "run every stdio upstream without a sandbox (not recommended)");
    serve->add_option("--sandbox-read", args->sandbox_read,
                      "UPSTREAM=PATH: let a stdio upstream read beneath PATH (repeatable)");
    serve->add_option(
        "--sandbox-write", args->sandbox_write,
        "UPSTREAM=PATH: let a stdio upstream read and write beneath PATH (repeatable)");
    serve->add_option("--sandbox-network", args->sandbox_network,
                      "UPSTREAM=none|loopback|any: a stdio upstream's network (default none)");
    serve->add_option("--sandbox-user", args->sandbox_user,
                      "UPSTREAM=USER: run a stdio upstream as another user (needs root)");
    serve->add_option("--sandbox-arguments", args->sandbox_arguments,
                      "UPSTREAM=write|read|none: what the sandbox grants for paths among the "
                      "server's arguments (default write for directories, read for files)");
    add_config_source_options(*serve, *args);
    serve->callback([args, &exit_code] { exit_code = run_serve(*args); });

    auto limit = std::make_shared<std::size_t>(4U << 20U);
    CLI::App* demo = app.add_subcommand(
        "demo-server", "Run the built-in demo MCP server over stdio (newline-delimited JSON-RPC)");
    demo->add_option("--max-message-bytes", *limit, "largest message (default 4 MiB)");
    demo->callback([limit, &exit_code] {
        mcp::Limits limits;
        limits.max_message_bytes = *limit;
        exit_code = demo::run_stdio(STDIN_FILENO, STDOUT_FILENO, limits);
    });
}

}  // namespace pqmcp::cli
