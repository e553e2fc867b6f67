#include "pqmcp/gateway/gateway.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <future>

#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "pqmcp/audit/audit.hpp"
#include "pqmcp/core/bytes.hpp"
#include "pqmcp/crypto/util.hpp"
#include "pqmcp/identity/identity.hpp"
#include "pqmcp/identity/known_peers.hpp"
#include "pqmcp/observe/dashboard.hpp"
#include "pqmcp/observe/metrics_server.hpp"
#include "pqmcp/policy/policy.hpp"
#include "pqmcp/tls/context.hpp"
#include "pqmcp/tls/profile.hpp"
#include "pqmcp/transport/child.hpp"
#include "pqmcp/transport/http_server.hpp"
#include "pqmcp/transport/http_util.hpp"
#include "sandbox_policy.hpp"
#include "session.hpp"

namespace pqmcp::gateway {

namespace asio = boost::asio;

struct Gateway::Impl {
    explicit Impl(GatewayConfig c, std::string version)
        : config(std::move(c)),
          services{io, config, 0, {}, nullptr, {}, 0, {}},
          shared(services, std::move(version)) {}

    GatewayConfig config;
    asio::io_context io{1};
    Services services;
    SharedState shared;
    std::optional<identity::Identity> own;
    std::optional<identity::Identity> browser;  // the optional ECDSA P-256 certificate
    std::optional<identity::KnownPeers> known;
    std::unique_ptr<Guard> guard;  // tool integrity (null: turned off); signs with `own`
    crypto::SslCtxPtr server_context;
    std::vector<crypto::SslCtxPtr> upstream_contexts;
    std::unique_ptr<transport::HttpServer> server;
    std::unique_ptr<audit::Writer> audit;           // null: turned off
    std::unique_ptr<observe::Dashboard> dashboard;  // null: turned off
    std::unique_ptr<Recorder> recorder;
    std::unique_ptr<observe::MetricsServer> metrics;  // null: no --metrics
    std::unique_ptr<sandbox::Supervisor> supervisor;  // null: no sandboxed upstream
    std::filesystem::path tmp_root;                   // the children's TMPDIRs, removed at the end
    GatewayInfo info;
    bool stopping = false;
    asio::steady_timer policy_watch{io};
    asio::steady_timer audit_sweep{io};
    std::optional<std::pair<std::filesystem::file_time_type, std::uintmax_t>> policy_stamp;

    void begin_shutdown();
    Status start_observing();  // the audit writer, the dashboard, the recorder
    Status start_sandbox();    // checks every stdio upstream's sandbox; the supervisor
    Status apply_policy(bool initial);
    void watch_policy();
    void sweep_started();  // "started" audit records of requests in flight
};

namespace {

std::optional<std::pair<std::filesystem::file_time_type, std::uintmax_t>> stamp_of(
    const std::filesystem::path& file) {
    std::error_code ec;
    const auto time = std::filesystem::last_write_time(file, ec);
    if (ec) {
        return std::nullopt;
    }
    const auto size = std::filesystem::file_size(file, ec);
    if (ec) {
        return std::nullopt;
    }
    return std::pair{time, size};
}

Result<std::shared_ptr<const policy::Policy>> read_policy(const GatewayConfig& c, bool initial) {
    if (!c.policy_file.empty()) {
        return policy::load_policy(c.policy_file);
    }
    if (c.policy_inline.empty()) {
        return std::shared_ptr<const policy::Policy>{};
    }
    if (initial || c.config_file.empty()) {
        return policy::parse_policy(c.policy_inline, c.config_file.empty()
                                                         ? "policy"
                                                         : c.config_file.string() + " policy:");
    }
    // An inline policy is read again from the configuration file.
    auto again = load_config(c.config_file);
    if (!again) {
        return fail(policy::Errc::invalid_policy, again.error().detail);
    }
    if (again->policy_inline.empty()) {
        return fail(policy::Errc::invalid_policy,
                    c.config_file.string() + ": its policy: section is gone");
    }
    return policy::parse_policy(again->policy_inline, c.config_file.string() + " policy:");
}

std::string describe_policy(const policy::Policy& p) {
    return p.source + " (" + p.fingerprint + ", " + std::to_string(p.rules.size()) +
           " rules, default " + std::string(policy::to_string(p.default_effect)) + ")";
}

}  // namespace

Status Gateway::Impl::apply_policy(bool initial) {
    auto loaded = read_policy(config, initial);
    if (!loaded) {
        if (!initial) {
            spdlog::error(
                "policy not reloaded: {}; keeping {}", loaded.error().detail,
                shared.policy ? describe_policy(*shared.policy) : std::string("no policy"));
            if (recorder) {
                recorder->policy("reload_failed", shared.policy ? shared.policy->source : "",
                                 shared.policy ? shared.policy->fingerprint : "",
                                 loaded.error().detail);
            }
        }
        return tl::unexpected(loaded.error());
    }
    if (!config.policy_file.empty()) {
        policy_stamp = stamp_of(config.policy_file);
    }
    shared.policy = std::move(*loaded);
    if (shared.policy) {
        shared.behaviour.configure(shared.policy->behaviour);
        info.policy = describe_policy(*shared.policy);
        if (!initial) {
            spdlog::info("policy reloaded: {}", info.policy);
        }
        if (recorder) {
            recorder->policy(initial ? "loaded" : "reloaded", shared.policy->source,
                             shared.policy->fingerprint, {});
        }
    }
    return {};
}

// Every second: has the policy file changed? Also forgets idle rate state.
void Gateway::Impl::watch_policy() {
    policy_watch.expires_after(std::chrono::seconds{1});
    policy_watch.async_wait([this](const boost::system::error_code& ec) {
        if (ec || stopping) {
            return;
        }
        if (!config.policy_file.empty()) {
            const auto now = stamp_of(config.policy_file);
            if (now && now != policy_stamp) {
                policy_stamp = now;  // an invalid file is reported once per change
                (void)apply_policy(false);
            }
        }
        shared.limiter.sweep(shared.clock());
        watch_policy();
    });
}

// Every half flush interval, each request in flight for longer than that gets
// a "started" record: a kill -9 then loses at most the requests accepted in
// the last 1.5 flush intervals (plus one commit), answered or not.
void Gateway::Impl::sweep_started() {
    if (!audit) {
        return;
    }
    const auto half = std::max(config.audit.flush_interval / 2, std::chrono::milliseconds{5});
    audit_sweep.expires_after(half);
    audit_sweep.async_wait([this, half](const boost::system::error_code& ec) {
        if (ec || stopping) {
            return;
        }
        const auto older_than = std::chrono::steady_clock::now() - half;
        for (GatewaySession* s : shared.sessions) {
            s->note_started(older_than);
        }
        sweep_started();
    });
}

namespace {

void log_handshake(const std::string& remote, const Result<tls::HandshakeInfo>& result) {
    if (!result) {
        if (result.error().code == transport::Errc::closed) {
            spdlog::debug("TLS from {}: {}", remote, result.error().detail);
        } else {
            spdlog::warn("TLS handshake from {} failed: {}", remote, result.error().detail);
        }
        return;
    }
    const tls::HandshakeInfo& h = *result;
    std::string peer = "no client certificate";
    if (h.peer_id) {
        peer = "peer " + h.peer_id->str();
        if (h.peer_name) {
            peer += " (" + *h.peer_name + ")";
        }
    }
    spdlog::info("TLS from {}: {} {} {}, {}{}", remote, h.protocol, h.group, h.cipher, peer,
                 h.resumed ? ", resumed" : "");
}

Result<crypto::SslCtxPtr> upstream_context(const UpstreamConfig& u, const transport::Url& url,
                                           const identity::Identity& own,
                                           const identity::KnownPeers* known) {
    auto profile = tls::parse_profile(u.profile);
    if (!profile) {
        return tl::unexpected(profile.error());
    }
    tls::ContextOptions o;
    o.profile = (*profile)->id;
    // Our identity authenticates us to the upstream when its profile allows it.
    const auto& allowed = (*profile)->identity_algorithms;
    if (std::find(allowed.begin(), allowed.end(), own.algorithm) != allowed.end()) {
        o.identity = &own;
    }
    for (const auto& pin : u.pins) {
        auto id = identity::PeerId::parse(pin);
        if (!id) {
            return fail(Errc::invalid_config, "upstream " + u.name + ": pin: " + id.error().detail);
        }
        o.verify.pinned.push_back(*id);
    }
    o.verify.known_peers = known;
    o.verify.ca_file = u.ca;
    if (!u.ca.empty()) {
        o.verify.ca_host = url.host;
    }
    if (o.verify.pinned.empty() && u.ca.empty() && (known == nullptr || known->peers().empty())) {
        return fail(Errc::invalid_config, "upstream " + u.name +
                                              ": an https upstream needs pin:, ca: or the "
                                              "gateway's known_peers to be trusted");
    }
    return tls::make_client_context(o);
}

// The first line of a token file; a file others may read is refused.
Result<std::string> read_token_file(const std::filesystem::path& file) {
    struct stat st {};
    if (::stat(file.c_str(), &st) != 0) {
        return fail(Errc::invalid_config,
                    "dashboard.token_file " + file.string() + ": " + std::strerror(errno));
    }
    if ((st.st_mode & (S_IRWXG | S_IRWXO)) != 0) {
        return fail(Errc::invalid_config, "dashboard.token_file " + file.string() +
                                              ": readable by others (chmod 600 it)");
    }
    std::ifstream in(file);
    std::string line;
    if (!in || !std::getline(in, line)) {
        return fail(Errc::invalid_config,
                    "dashboard.token_file " + file.string() + ": cannot be read");
    }
    while (!line.empty() && (line.back() == '\r' || line.back() == ' ')) {
        line.pop_back();
    }
    if (auto ok = check_dashboard_token(line); !ok) {
        return fail(Errc::invalid_config,
                    "dashboard.token_file " + file.string() + ": " + ok.error().detail);
    }
    return line;
}

}  // namespace

Status Gateway::Impl::start_observing() {
    const GatewayConfig& c = config;
    if (c.audit.enabled) {
        audit::WriterOptions o;
        o.path = c.audit.path.empty() ? c.identity / "audit.db" : c.audit.path;
        o.queue_capacity = c.audit.queue;
        o.flush_interval = c.audit.flush_interval;
        o.checkpoint_records = c.audit.checkpoint_records;
        o.checkpoint_interval = c.audit.checkpoint_interval;
        o.sync_full = c.audit.sync_full;
        auto writer = audit::Writer::open(o, *own);
        if (!writer) {
            return fail(Errc::startup_failed,
                        "audit " + o.path.string() + ": " + writer.error().detail);
        }
        audit = std::move(*writer);
        info.audit = o.path.string();
        spdlog::info("audit trail: {} (checkpoint every {} records or {} ms, crash window {} ms)",
                     info.audit, o.checkpoint_records, o.checkpoint_interval.count(),
                     o.flush_interval.count());
    }
    const auto access = observe::parse_dashboard_access(c.observe.dashboard);
    if (access && *access != observe::DashboardAccess::off) {
        observe::DashboardOptions o;
        o.access = *access;
        o.token = c.observe.dashboard_token;
        if (o.token.empty() && !c.observe.dashboard_token_file.empty()) {
            auto token = read_token_file(c.observe.dashboard_token_file);
            if (!token) {
                return tl::unexpected(token.error());
            }
            o.token = std::move(*token);
        }
        if (o.token.empty()) {
            // NOLINTNEXTLINE(concurrency-mt-unsafe): read at start, before any thread
            if (const char* from_env = std::getenv("PQMCP_DASHBOARD_TOKEN");
                from_env != nullptr && *from_env != '\0') {
                o.token = from_env;
                if (auto ok = check_dashboard_token(o.token); !ok) {
                    return fail(Errc::invalid_config,
                                "PQMCP_DASHBOARD_TOKEN: " + ok.error().detail);
                }
            }
        }
        if (o.access == observe::DashboardAccess::token && o.token.empty()) {
            auto random = crypto::random_bytes(16);
            if (!random) {
                return fail(Errc::startup_failed, "dashboard token: " + random.error().detail);
            }
            o.token = to_hex(*random);
        }
        dashboard = std::make_unique<observe::Dashboard>(std::move(o));
    }
    Recorder::Gauges gauges;
    gauges.sessions = [this] {
        return server ? static_cast<double>(server->stats().sessions) : 0.0;
    };
    gauges.connections = [this] {
        return server ? static_cast<double>(server->stats().connections) : 0.0;
    };
    gauges.children = [this] { return static_cast<double>(services.children); };
    gauges.evicted = [this] { return server ? static_cast<double>(server->stats().evicted) : 0.0; };
    gauges.overload = [this] { return server ? server->stats().overload : 1.0; };
    gauges.buffered = [this] {
        return server ? static_cast<double>(server->stats().buffered_bytes) : 0.0;
    };
    recorder = std::make_unique<Recorder>(c, audit.get(), dashboard.get(), std::move(gauges));
    shared.recorder = recorder.get();
    return {};
}

Status Gateway::Impl::start_sandbox() {
    const GatewayConfig& c = config;
    std::vector<const UpstreamConfig*> boxed;
    for (const auto& u : c.upstreams) {
        if (u.kind == UpstreamKind::stdio) {
            if (u.sandbox.enabled) {
                boxed.push_back(&u);
            } else {
                spdlog::warn(
                    "upstream {} runs without a sandbox (sandbox: off): it can read and write "
                    "whatever this user can, the gateway's identity and databases included",
                    u.name);
            }
        }
    }
    if (boxed.empty()) {
        return {};
    }
    const auto& support = sandbox::probe();
    // Each sandbox is checked now, with the grants it will get: a kernel that
    // lacks a facility, or a grant that reaches the gateway's own files,
    // stops the start, not the first session.
    for (const UpstreamConfig* u : boxed) {
        const auto env = child_environment(*u, {}, {});
        std::string search_path;
        for (const auto& [key, value] : env) {
            if (key == "PATH") {
                search_path = value;
            }
        }
        auto exe = transport::find_executable(u->command, search_path);
        if (!exe) {
            return fail(Errc::startup_failed, "upstream " + u->name + ": " + exe.error().detail);
        }
        const auto policy = child_policy(c, *u, *exe, {});
        auto prepared = sandbox::prepare(policy, support);
        if (!prepared) {
            return fail(Errc::startup_failed,
                        "upstream " + u->name + ": sandbox: " + prepared.error().detail +
                            (prepared.error().code == sandbox::Errc::unsupported
                                 ? " (this kernel: " + sandbox::describe(support) +
                                       "); to run it without one, say sandbox: off for it "
                                       "(--sandbox " +
                                       u->name + "=off)"
                                 : std::string{}));
        }
        spdlog::info("upstream {}: sandboxed (read {} paths, write {}, network {}{})", u->name,
                     policy.read.size(), policy.write.size() + 1,
                     sandbox::to_string(policy.network),
                     policy.user.empty() ? "" : ", user " + policy.user);
    }
    spdlog::info("sandbox: {}", sandbox::describe(support));
    if (support.landlock_abi < 6) {
        spdlog::warn(
            "sandbox: Landlock ABI {} cannot scope signals: a sandboxed server can signal other "
            "processes of its user (never the gateway: seccomp refuses that)",
            support.landlock_abi);
    }
    // The children's private temporary directories, under one of the gateway's own.
    std::error_code ec;
    std::string pattern =
        (std::filesystem::temp_directory_path(ec) / "pqmcp-children-XXXXXX").string();
    if (::mkdtemp(pattern.data()) == nullptr) {
        return fail(Errc::startup_failed, "sandbox: cannot create a temporary directory: " +
                                              std::string(std::strerror(errno)));
    }
    tmp_root = pattern;
    services.tmp_root = tmp_root;
    supervisor = std::make_unique<sandbox::Supervisor>([this](sandbox::Violation v) {
        // From the supervisor's thread to the gateway's.
        asio::post(io, [this, v = std::move(v)] {
            if (recorder) {
                recorder->sandbox(v);
            }
        });
    });
    services.supervisor = supervisor.get();
    return {};
}

void Gateway::Impl::begin_shutdown() {
    if (stopping) {
        return;
    }
    stopping = true;
    policy_watch.cancel();
    audit_sweep.cancel();
    if (metrics) {
        metrics->stop();
    }
    spdlog::info("shutting down: ending sessions and stopping upstreams");
    if (server) {
        server->stop();
    }
    // Session handlers end on the next turns; the shared upstreams now.
    asio::post(io, [this] {
        for (auto& [name, client] : shared.shared_clients) {
            client->stop();
        }
        asio::co_spawn(
            io,
            [this]() -> asio::awaitable<void> {
                // Every child gets its MCP stdio shutdown (stdin closed, SIGTERM,
                // SIGKILL), each step bounded; wait for them to be reaped.
                const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds{6};
                asio::steady_timer timer(io);
                while (services.children > 0 && std::chrono::steady_clock::now() < deadline) {
                    timer.expires_after(std::chrono::milliseconds{20});
                    (void)co_await timer.async_wait(asio::as_tuple(asio::use_awaitable));
                }
                if (services.children > 0) {
                    spdlog::warn("{} upstream processes did not end in time", services.children);
                }
                io.stop();
            },
            asio::detached);
    });
}

Gateway::Gateway(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

Gateway::~Gateway() {
    if (impl_->server) {
        impl_->server->stop();
    }
    impl_->server.reset();
    impl_->supervisor.reset();
    if (!impl_->tmp_root.empty()) {
        std::error_code ec;
        std::filesystem::remove_all(impl_->tmp_root, ec);
    }
    if (impl_->audit) {
        impl_->audit->close();
    }
}

const GatewayInfo& Gateway::info() const noexcept {
    return impl_->info;
}

Result<std::unique_ptr<Gateway>> Gateway::create(GatewayConfig config, std::string version) {
    if (auto ok = validate(config); !ok) {
        return tl::unexpected(ok.error());
    }
    auto impl = std::make_unique<Impl>(std::move(config), std::move(version));
    Impl& g = *impl;
    const GatewayConfig& c = g.config;
    const auto profile = tls::parse_profile(c.profile);
    if (!profile) {
        return tl::unexpected(profile.error());
    }

    // The identity: created on first start.
    std::error_code ec;
    const bool exists = std::filesystem::exists(c.identity / identity::k_key_file, ec);
    identity::KeygenOptions keygen;
    keygen.algorithm = (*profile)->identity_algorithms.front();
    keygen.names = {"localhost"};
    if (c.listen_host() != "localhost" && c.listen_host() != "0.0.0.0" && c.listen_host() != "::") {
        keygen.names.push_back(c.listen_host());
    }
    auto own = identity::load_or_create(c.identity, keygen);
    if (!own) {
        return fail(Errc::startup_failed,
                    "identity " + c.identity.string() + ": " + own.error().message());
    }
    g.own = std::move(*own);
    g.info.identity_created = !exists;
    g.info.peer_id = g.own->id.str();

    if (!c.browser_certificate.empty()) {
        // A classical certificate for browsers without ML-DSA: self-signed in
        // IDENTITY/browser when "auto", else whatever the operator put there.
        const bool generated = c.browser_certificate == "auto";
        const auto dir =
            generated ? c.identity / "browser" : std::filesystem::path(c.browser_certificate);
        identity::KeygenOptions browser_keygen = keygen;
        browser_keygen.algorithm = crypto::SigAlg::ecdsa_p256;
        auto browser =
            generated ? identity::load_or_create(dir, browser_keygen) : identity::load(dir);
        if (!browser) {
            return fail(Errc::startup_failed,
                        "browser certificate " + dir.string() + ": " + browser.error().message());
        }
        if (browser->algorithm != crypto::SigAlg::ecdsa_p256) {
            return fail(Errc::startup_failed,
                        "browser certificate " + dir.string() +
                            ": an ECDSA P-256 key is needed, not " +
                            std::string(crypto::cli_name(browser->algorithm)));
        }
        g.browser = std::move(*browser);
        g.info.browser_certificate_id = g.browser->id.str();
    }

    if (!c.known_peers.empty()) {
        auto known = identity::KnownPeers::load(c.known_peers);
        if (!known) {
            return fail(Errc::startup_failed, "known_peers: " + known.error().message());
        }
        g.known = std::move(*known);
    }

    if (auto ok = g.start_observing(); !ok) {
        return tl::unexpected(ok.error());
    }
    if (auto ok = g.start_sandbox(); !ok) {
        return tl::unexpected(ok.error());
    }
    if (auto ok = g.apply_policy(true); !ok) {
        return fail(Errc::invalid_config, "policy: " + ok.error().detail);
    }
    if (c.integrity.enabled) {
        auto guard = Guard::create(c, *g.own);
        if (!guard) {
            return tl::unexpected(guard.error());
        }
        g.guard = std::move(*guard);
        g.guard->on_event = [&g](boost::json::object record) {
            g.recorder->integrity(std::move(record));
        };
        g.shared.guard = g.guard.get();
    }

    tls::ContextOptions server_options;
    server_options.profile = (*profile)->id;
    server_options.identity = &*g.own;
    server_options.verify.require_peer_certificate = c.clients_must_be_known();
    server_options.verify.accept_unknown_peers = !c.clients_must_be_known();
    server_options.verify.known_peers = g.known ? &*g.known : nullptr;
    server_options.verify.ca_file = c.ca;
    if (g.browser) {
        server_options.browser_certificate = {g.browser->certificate.get(), g.browser->key.get()};
    }
    auto server_context = tls::make_server_context(server_options);
    if (!server_context) {
        return fail(Errc::startup_failed, "TLS: " + server_context.error().message());
    }
    g.server_context = std::move(*server_context);

    for (const auto& u : c.upstreams) {
        if (u.kind != UpstreamKind::http) {
            continue;
        }
        auto url = transport::parse_url(u.url);
        if (!url) {
            return fail(Errc::invalid_config, "upstream " + u.name + ": " + url.error().detail);
        }
        if (!url->tls) {
            if (url->host != "127.0.0.1" && url->host != "::1" && url->host != "localhost") {
                spdlog::warn("upstream {} is plain HTTP on {}: its traffic is not encrypted",
                             u.name, url->host);
            }
            continue;
        }
        auto ctx = upstream_context(u, *url, *g.own, g.known ? &*g.known : nullptr);
        if (!ctx) {
            return fail(Errc::startup_failed, ctx.error().message());
        }
        g.services.tls_contexts[u.name] = ctx->get();
        g.upstream_contexts.push_back(std::move(*ctx));
    }

    transport::HttpServerOptions http;
    http.host = c.listen_host();
    http.port = c.listen_port();
    http.limits = c.limits.http;
    http.limits.max_body_bytes =
        std::max(c.limits.http.max_body_bytes, c.limits.message.max_message_bytes);
    http.timeouts = c.timeouts.http;
    http.message_limits = c.limits.message;
    http.allowed_origins = c.allowed_origins;
    if (http.port != 0) {
        // The gateway's own pages (a dashboard) may call it.
        const std::string port = std::to_string(http.port);
        http.allowed_origins.push_back("https://localhost:" + port);
        http.allowed_origins.push_back("https://" + c.listen);
    }
    http.open_session = [&g](transport::ServerSession& session)
        -> Result<std::unique_ptr<transport::SessionHandler>> {
        const auto& peer = session.peer();
        spdlog::info("session {} opened from {} ({})", session.id().substr(0, 8), peer.remote,
                     peer.handshake.peer_id ? peer.handshake.peer_id->str() : "no client identity");
        g.recorder->session_opened(session);
        return std::unique_ptr<transport::SessionHandler>(
            std::make_unique<GatewaySession>(g.shared, session));
    };
    http.on_handshake = [&g](const std::string& remote, const Result<tls::HandshakeInfo>& result,
                             std::chrono::nanoseconds elapsed) {
        log_handshake(remote, result);
        g.recorder->handshake(remote, result, elapsed);
    };
    if (g.dashboard) {
        http.get_page = [&g](const transport::HttpServerOptions::PageRequest& request)
            -> std::optional<transport::HttpServerOptions::Page> {
            auto page = g.dashboard->serve(request.target, request.authorization,
                                           request.peer.handshake.peer_verified,
                                           std::chrono::system_clock::now());
            if (!page) {
                return std::nullopt;
            }
            return transport::HttpServerOptions::Page{page->status, std::move(page->content_type),
                                                      std::move(page->body),
                                                      std::move(page->headers)};
        };
    }
    g.server =
        std::make_unique<transport::HttpServer>(g.io, g.server_context.get(), std::move(http));
    auto port = g.server->start();
    if (!port) {
        return fail(Errc::startup_failed, "listen " + c.listen + ": " + port.error().detail);
    }
    g.info.port = *port;
    std::string host = c.listen_host();
    if (host == "0.0.0.0") {
        host = "127.0.0.1";
    } else if (host == "::") {
        host = "::1";
    }
    if (host.find(':') != std::string::npos) {
        host = "[" + host + "]";
    }
    g.info.url = "https://" + host + ":" + std::to_string(*port) + "/mcp";
    g.info.profile = c.profile;
    for (const auto& u : c.upstreams) {
        g.info.upstreams.push_back(u.name);
    }
    if (g.dashboard) {
        const std::string base = g.info.url.substr(0, g.info.url.size() - std::strlen("/mcp"));
        g.info.dashboard_url = base + "/dashboard";
        if (g.dashboard->options().access == observe::DashboardAccess::token) {
            g.info.dashboard_url += "?token=" + g.dashboard->options().token;
        }
        g.dashboard->set_gateway(boost::json::object{{"peer_id", g.info.peer_id},
                                                     {"profile", c.profile},
                                                     {"version", g.shared.server_version},
                                                     {"url", g.info.url}});
    }
    if (!c.observe.metrics.empty()) {
        const auto colon = c.observe.metrics.rfind(':');
        observe::MetricsServerOptions mo;
        mo.host = c.observe.metrics.substr(0, colon);
        if (mo.host.size() > 2 && mo.host.front() == '[') {
            mo.host = mo.host.substr(1, mo.host.size() - 2);
        }
        const std::string port_text = c.observe.metrics.substr(colon + 1);
        std::uint16_t metrics_port = 0;
        const auto* end = port_text.data() + port_text.size();
        if (port_text.empty() || std::from_chars(port_text.data(), end, metrics_port).ptr != end) {
            return fail(Errc::invalid_config,
                        "metrics: expected HOST:PORT, not \"" + c.observe.metrics + "\"");
        }
        mo.port = metrics_port;
        mo.render = [&g] { return g.recorder->metrics().expose(); };
        g.metrics = std::make_unique<observe::MetricsServer>(g.io, std::move(mo));
        auto bound = g.metrics->start();
        if (!bound) {
            return fail(Errc::startup_failed, bound.error().detail);
        }
        g.info.metrics_url =
            fmt::format("http://{}:{}/metrics", c.observe.metrics.substr(0, colon), *bound);
    }
    return std::unique_ptr<Gateway>(new Gateway(std::move(impl)));
}

void Gateway::run(bool handle_signals) {
    Impl& g = *impl_;
    std::optional<asio::signal_set> signals;
    std::function<void(const boost::system::error_code&, int)> on_signal;
    if (handle_signals) {
        signals.emplace(g.io, SIGINT, SIGTERM, SIGHUP);
        on_signal = [&g, &signals, &on_signal](const boost::system::error_code& ec, int signal) {
            if (ec) {
                return;
            }
            if (signal == SIGHUP) {
                spdlog::info("SIGHUP: reading the policy again");
                (void)g.apply_policy(false);
                signals->async_wait(on_signal);
                return;
            }
            spdlog::info("signal {} received", signal == SIGINT ? "SIGINT" : "SIGTERM");
            g.begin_shutdown();
        };
        signals->async_wait(on_signal);
    }
    g.watch_policy();
    g.sweep_started();
    g.io.run();
    if (signals) {
        boost::system::error_code ignored;
        signals->cancel(ignored);
    }
    // Every record, decisions included, is committed and the chain's head
    // signed before run() returns (and `serve` reports a clean exit).
    if (g.audit) {
        g.audit->close();
        const auto st = g.audit->stats();
        spdlog::info("audit trail closed: {} records written, {} dropped, {} checkpoints",
                     st.written, st.dropped, st.checkpoints);
    }
}

void Gateway::shutdown() {
    asio::post(impl_->io, [impl = impl_.get()] { impl->begin_shutdown(); });
}

Status Gateway::reload_policy() {
    std::promise<Status> promise;
    auto future = promise.get_future();
    asio::post(impl_->io, [this, &promise] { promise.set_value(impl_->apply_policy(false)); });
    return future.get();
}

GatewayStats Gateway::stats() {
    std::promise<GatewayStats> promise;
    auto future = promise.get_future();
    asio::post(impl_->io, [this, &promise] {
        const auto http = impl_->server->stats();
        promise.set_value(GatewayStats{http.sessions, http.connections, impl_->services.children,
                                       http.buffered_bytes});
    });
    return future.get();
}

}  // namespace pqmcp::gateway
