// The gateway's configuration: one YAML file (`pqmcp serve --config FILE`),
// every option also a flag; flags win. Documented in docs/gateway.md.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#include "pqmcp/core/error.hpp"
#include "pqmcp/mcp/jsonrpc.hpp"
#include "pqmcp/sandbox/sandbox.hpp"
#include "pqmcp/transport/http_server.hpp"

namespace pqmcp::oauth {
struct ResourceOptions;
}  // namespace pqmcp::oauth

namespace pqmcp::gateway {

enum class Errc {
    invalid_config = 1,  // a configuration file or flag is wrong (detail: where and why)
    startup_failed,      // identity, TLS context, listener or an upstream could not start
    not_running,         // asked of a gateway whose run() is not serving, or did not answer in time
};

const std::error_category& gateway_category() noexcept;
inline std::error_code make_error_code(Errc e) noexcept {
    return {static_cast<int>(e), gateway_category()};
}

enum class UpstreamKind { stdio, http, demo, openapi };

// Which operations of an OpenAPI description become tools (docs/openapi.md):
// every non-empty list must match, globs for paths and operationIds.
struct OpenApiFilter {
    std::vector<std::string> tags;
    std::vector<std::string> paths;
    std::vector<std::string> methods;
    std::vector<std::string> operations;
};

// The API's credentials: never in a tool's schema, a result, a log line or
// the audit. Its secret comes from `value`, a file or the environment.
struct OpenApiAuth {
    std::string type;           // "" (none), api_key, bearer, basic
    std::string in = "header";  // api_key: header, query or cookie
    std::string name;           // api_key: the header, query or cookie name
    std::string username;       // basic
    std::string value;          // the key, token or password itself (prefer a file or variable)
    std::filesystem::path value_file;
    std::string value_env;
};

// An upstream made from an OpenAPI description: the gateway is its MCP server.
struct OpenApiUpstreamConfig {
    std::filesystem::path spec;  // OpenAPI 3.0/3.1 or Swagger 2.0, JSON or YAML
    // Where the API is: requests go here and nowhere else. Empty: the spec's
    // first server, only with follow_servers.
    std::string base_url;
    bool follow_servers = false;
    // Credentials, each sent with every request (an API that wants a key
    // for some operations and a token for others gets both).
    std::vector<OpenApiAuth> auth;
    OpenApiFilter include;
    OpenApiFilter exclude;
    std::size_t max_tools = 128;
    std::size_t name_max_length = 64;  // of a tool's name as clients see it, prefix included
    std::size_t description_max_length = 1'024;
    bool output_schema = true;
    std::size_t max_spec_bytes = 16U << 20U;
    std::size_t max_response_bytes = 8U << 20U;
    std::chrono::milliseconds timeout{30'000};  // one call to the API, connect included
    std::size_t max_connections = 8;            // to the API, per gateway thread
    std::filesystem::path ca;                   // https: CA file (default: the system's store)
};

// What paths named in a stdio server's arguments are granted by its sandbox.
enum class ArgumentAccess { write, read, none };

// The sandbox of a stdio upstream (docs/security.md): on by default.
struct SandboxConfig {
    bool enabled = true;
    std::vector<std::filesystem::path> read;   // in addition to the defaults
    std::vector<std::filesystem::path> write;  // in addition to its private TMPDIR
    sandbox::Network network = sandbox::Network::none;
    std::string user;  // run as this user (needs root)
    // Existing paths among the arguments: directories get `write` (or read),
    // files read; `none` grants nothing for them.
    ArgumentAccess arguments = ArgumentAccess::write;
};

struct UpstreamConfig {
    std::string name;  // [A-Za-z0-9_-]{1,64}; also the default namespace prefix
    UpstreamKind kind = UpstreamKind::stdio;

    // stdio: the server command, run as a child process.
    std::string command;
    std::vector<std::string> args;
    // The child's environment: PATH, HOME, LANG, then the gateway's own
    // variables named in env_passthrough, then `env` (nothing else of the gateway's).
    std::vector<std::pair<std::string, std::string>> env;
    std::vector<std::string> env_passthrough;
    std::filesystem::path cwd;
    bool shared = false;  // one child for every session (default: one per session)
    SandboxConfig sandbox{};

    // http: a Streamable HTTP server.
    std::string url;
    std::string profile = "pq-hybrid";  // https only: the TLS profile towards it
    std::vector<std::string> pins;      // https: pinned peer ids of the server
    std::filesystem::path ca;           // https: CA file for a server that is not pinned
    std::vector<std::pair<std::string, std::string>> headers;  // sent with every request
    // http: the gateway's own OAuth token for this upstream (client_id empty:
    // none), by the client_credentials grant, or by a refresh token an
    // operator enrolled once with `pqmcp auth login NAME` (authorization_code;
    // docs/gateway.md, Authorization).
    struct OAuth {
        std::string client_id;
        std::filesystem::path client_secret_file;  // its first line; never logged
        std::string issuer;  // "": from the upstream's Protected Resource Metadata
        std::vector<std::string> scopes;
        std::string grant = "client_credentials";  // or authorization_code
        // authorization_code: where the refresh token is kept, sealed under a
        // key derived from the identity; "": IDENTITY/oauth/NAME.token.
        std::filesystem::path token_file;
    } oauth;
    // The MCP revision to speak to it: "2025-11-25" (sessions), "2026-07-28"
    // (stateless; refused at start if server/discover does not offer it) or
    // "auto" (2026-07-28 when server/discover offers it, else sessions).
    std::string protocol = "2025-11-25";
    OpenApiUpstreamConfig openapi;  // openapi: the description and the API behind it

    // Publisher signature (docs/integrity.md): only tools, prompts and resource
    // templates whose definitions match this manifest, signed by `publisher`
    // (`pqmcp tools sign`), are admitted.
    std::string publisher;  // peer id
    std::filesystem::path manifest;
};

// What the gateway does about a rug pull or a scanner finding.
enum class IntegrityAction {
    block,  // not listed, and calls refused (-32011)
    strip,  // not listed; calls by name still pass
    alert,  // listed and callable; logged
};

[[nodiscard]] std::string_view to_string(IntegrityAction a) noexcept;
[[nodiscard]] std::optional<IntegrityAction> parse_integrity_action(std::string_view text) noexcept;

// Tool integrity (docs/integrity.md): pins, the poisoning scanner, signed lists.
struct IntegrityConfig {
    bool enabled = true;
    std::filesystem::path state;  // SQLite database; default <identity>/state.db
    IntegrityAction on_change = IntegrityAction::block;   // rug pulls: block or alert
    IntegrityAction on_finding = IntegrityAction::block;  // findings at or above `threshold`
    std::string threshold = "high";                       // info, low, medium, high, critical
    std::filesystem::path scanner_rules;                  // default: the built-in rule set
    bool sign_lists = true;  // sign tools/list, prompts/list, resources/templates/list
};

// The audit trail (docs/observability.md).
enum class AuditArguments {
    digest,    // SHA-256 of the arguments' canonical JSON (RFC 8785)
    redacted,  // the arguments, with the `redact` JSON Pointers replaced
    none,      // nothing about the arguments
};

struct AuditConfig {
    bool enabled = true;
    std::filesystem::path path;  // SQLite database; default <identity>/audit.db
    AuditArguments arguments = AuditArguments::digest;
    std::vector<std::string> redact;                // JSON Pointers (arguments: redacted)
    std::chrono::milliseconds flush_interval{100};  // what a crash can lose
    std::size_t checkpoint_records = 10'000;
    std::chrono::milliseconds checkpoint_interval{10'000};
    std::size_t queue = 65'536;
    bool sync_full = false;  // PRAGMA synchronous=FULL: committed records survive power loss
    // When records cannot be committed (a full disk, a failing database):
    // refuse tools/call (-32013) until they can again, or carry on.
    bool refuse_on_failure = true;
    // committed: an answer leaves only once its request's record is committed
    // (so every call a client saw answered is in the trail, kill -9 or not;
    // it costs the answer one group commit). queued: answers do not wait.
    bool acknowledge_committed = false;
};

// Metrics, logs and the dashboard (docs/observability.md).
struct ObserveConfig {
    std::string metrics;              // HOST:PORT of the Prometheus listener; "" for none
    std::string log_format = "text";  // text or json
    std::string dashboard = "token";  // off, open, token, identity
    std::string dashboard_token;      // with token: empty makes one at start
    // The token from a file (first line) instead of the command line, where
    // `ps` shows it; PQMCP_DASHBOARD_TOKEN in the environment also works.
    std::filesystem::path dashboard_token_file;
};

struct Timeouts {
    transport::HttpServerTimeouts http{};
    // An upstream request with no response (and no progress) for this long fails.
    std::chrono::milliseconds upstream_request{120'000};
    // HTTP upstreams: the whole of one request, progress or not; and the
    // wait for one of its pooled connections.
    std::chrono::milliseconds upstream_deadline{30 * 60'000};
    std::chrono::milliseconds upstream_pool_wait{10'000};
    // Starting an upstream: spawn (or connect) and its initialize.
    std::chrono::milliseconds upstream_start{30'000};
    // A per-session child with nothing pending for this long is stopped (it is
    // started again, and initialized again, when the session next needs it).
    std::chrono::milliseconds child_idle{10 * 60'000};
};

struct Limits {
    transport::HttpServerLimits http{};
    mcp::Limits message{};
    std::size_t max_children = 64;               // stdio upstream processes at once
    std::size_t max_children_per_identity = 16;  // of those, for one TLS peer id's sessions
    std::size_t max_pending_requests = 256;      // per session, towards upstreams
    std::size_t upstream_connections = 16;       // per HTTP upstream client, concurrent requests
};

// A tier of replicas behind one load balancer (docs/scale.md). Without a
// shared store a gateway keeps everything in its own files.
struct ClusterConfig {
    // This replica's name: its audit chain in PostgreSQL, its local files
    // (IDENTITY/replicas/NAME/). "" with a shared store set: HOSTNAME-PORT.
    std::string replica;
    std::string redis;  // redis://HOST[:PORT][/DB] or unix:///PATH: rates and quotas
    std::chrono::milliseconds redis_timeout{25};  // the longest a decision waits on Redis
    std::string fail = "closed";                  // when Redis does not answer: closed or local
    // Behaviour baselines with Redis set: "shared" (in Redis, one per caller
    // for the whole tier) or "local" (each replica its own, no round trip).
    std::string behaviour = "shared";
    // postgresql://...: pins, approvals and the audit trail's shipped copy.
    std::string postgres;
    // A file of at least 32 random bytes every replica has: session tickets
    // of one resume on all ("" : this process's own random keys).
    std::filesystem::path ticket_keys;
    [[nodiscard]] bool shared() const { return !redis.empty() || !postgres.empty(); }
};

// Who may call the MCP endpoint (docs/gateway.md, Authorization):
//   tls     the TLS client identity, as the listener requires it (the default
//           without oauth:)
//   oauth   a valid OAuth access token on every request (the default with oauth:)
//   both    a known TLS client identity and a valid token
//   either  a known TLS client identity, or a valid token
struct OAuthConfig {
    std::string issuer;                   // the authorization server (its tokens' "iss")
    std::string jwks_uri;                 // "": from the issuer's metadata
    std::string resource;                 // "": the listener's URL (https://HOST:PORT/mcp)
    std::vector<std::string> scopes;      // every token must carry these
    std::chrono::seconds clock_skew{30};  // allowed on a token's exp and nbf
    // RFC 7662: opaque tokens asked about at the authorization server, as
    // this OAuth client (auth.oauth.introspection; none: opaque tokens refused).
    struct Introspection {
        std::string client_id;
        std::filesystem::path client_secret_file;  // its first line
        std::string endpoint;                      // "": from the issuer's metadata
        std::chrono::seconds cache{60};            // an answer is used this long at most
    } introspection;
};
// The resource server's options as configured; `introspection_secret` is
// the secret file's line (read when the gateway starts).
[[nodiscard]] oauth::ResourceOptions resource_options(const OAuthConfig& o,
                                                      std::string introspection_secret);

struct AuthConfig {
    std::string require;  // tls, oauth, both, either; "": the default above
    OAuthConfig oauth{};
    [[nodiscard]] std::string mode() const;
};

struct GatewayConfig {
    std::string listen = "127.0.0.1:8443";  // HOST:PORT ([v6]:PORT), numeric host
    std::filesystem::path identity;         // created with a new ML-DSA identity if missing
    std::string profile = "pq-hybrid";
    // Only clients in known_peers or issued by the CA. The default on a
    // listener that is not loopback (validate() says so): accepting any client
    // that proves a key there takes allow_any_client.
    bool require_client_identity = false;
    bool allow_any_client = false;
    // RFC 7250 raw public keys with peers that trust by key, for clients and
    // pinned HTTPS upstreams alike (docs/tls.md); false: X.509 always.
    bool raw_public_keys = true;
    std::filesystem::path known_peers;
    std::filesystem::path ca;
    // An extra ECDSA P-256 certificate for browsers that cannot verify ML-DSA
    // (the key exchange stays hybrid): "" none, "auto" a self-signed one in
    // IDENTITY/browser (created if missing), or a directory with identity.key
    // and identity.crt. Clients that offer ML-DSA always get the ML-DSA one.
    std::string browser_certificate;
    std::vector<std::string> allowed_origins;  // in addition to the gateway's own
    std::string log_level = "info";
    // Threads serving connections and sessions (0: one per core; at most 256).
    std::size_t threads = 0;
    bool namespacing = true;  // prefix tool and prompt names with "<upstream><separator>"
    std::string separator = "__";
    std::vector<UpstreamConfig> upstreams;
    // The policy (docs/policy.md): a file (reloaded on SIGHUP and when it
    // changes), or written into this configuration (reloaded on SIGHUP from
    // `config_file`). Neither: no policy, everything routed.
    std::filesystem::path policy_file;
    std::string policy_inline;          // YAML text of an inline policy: section
    std::filesystem::path config_file;  // where this configuration was read from
    // More paths no sandboxed upstream may reach (beside the gateway's own files).
    std::vector<std::filesystem::path> protect;
    IntegrityConfig integrity{};
    AuditConfig audit{};
    ObserveConfig observe{};
    Timeouts timeouts{};
    Limits limits{};
    ClusterConfig cluster{};
    AuthConfig auth{};

    [[nodiscard]] std::string listen_host() const;
    // 127.0.0.0/8, ::1 or localhost.
    [[nodiscard]] bool listens_on_loopback() const;
    // What require_client_identity is in effect: as set, or, on a listener
    // that is not loopback, true unless allow_any_client or an access token
    // is what authenticates (auth.require oauth or either).
    [[nodiscard]] bool clients_must_be_known() const;
    [[nodiscard]] std::uint16_t listen_port() const;
    // The replica's name: cluster.replica, or HOSTNAME-PORT.
    [[nodiscard]] std::string replica_name() const;
    // Where this replica's own files go: IDENTITY, or IDENTITY/replicas/NAME
    // in a tier (replicas may share one identity directory).
    [[nodiscard]] std::filesystem::path local_dir() const;
    // audit.path, or LOCAL/audit.db.
    [[nodiscard]] std::filesystem::path audit_path() const;
    // The pin store: integrity.state, else cluster.postgres, else IDENTITY/state.db.
    [[nodiscard]] std::string state_spec() const;
    // Where an authorization_code upstream's refresh token is kept.
    [[nodiscard]] std::filesystem::path upstream_token_file(const UpstreamConfig& u) const;
};

// Reads a YAML configuration file. Errors: invalid_config naming the file,
// line and key ("gateway.yaml:12: timeouts.session_idle: ...").
//
// `overrides` are `--set KEY=VALUE` flags, applied to the document before it
// is read, so they meet the same checks as the file: KEY is a dotted path
// (`limits.buffer_bytes`; a number indexes a list, `upstreams.0.sandbox.network`),
// VALUE is YAML (`10s`, `[/srv/a, /srv/b]`, `{ network: none }`). An error in
// one names it ("--set limits.buffer_bytes: ...").
[[nodiscard]] Result<GatewayConfig> load_config(const std::filesystem::path& file,
                                                std::span<const std::string> overrides = {});
[[nodiscard]] Result<GatewayConfig> parse_config(std::string_view yaml,
                                                 std::string_view source = "config",
                                                 std::span<const std::string> overrides = {});

// "--upstream NAME=stdio:COMMAND ARGS...", "--upstream NAME=https://..." and
// "NAME=http://...". Arguments are split on spaces; single and double quotes group.
[[nodiscard]] Result<UpstreamConfig> parse_upstream_flag(std::string_view text);

// "write", "read", "none".
[[nodiscard]] std::optional<ArgumentAccess> parse_argument_access(std::string_view text) noexcept;

// "digest", "redacted", "none".
[[nodiscard]] std::optional<AuditArguments> parse_audit_arguments(std::string_view text) noexcept;

// "30s", "500ms", "10m", "2h", or a plain number of seconds.
[[nodiscard]] Result<std::chrono::milliseconds> parse_duration(std::string_view text);

// A dashboard token: 16 or more of A-Z a-z 0-9 - _.
[[nodiscard]] Status check_dashboard_token(std::string_view token);

// Checks the whole configuration (names unique and valid, listen address,
// profile names, namespacing possible, paths given). Errors: invalid_config.
[[nodiscard]] Status validate(const GatewayConfig& config);

}  // namespace pqmcp::gateway

template <>
struct std::is_error_code_enum<pqmcp::gateway::Errc> : std::true_type {};
