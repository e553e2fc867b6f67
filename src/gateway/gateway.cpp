// Starting, running and stopping the gateway: identities and TLS contexts,
// the listener and its sessions, signals, the orderly shutdown.
#include "gateway_impl.hpp"
#include "openapi_upstream.hpp"

#include <openssl/crypto.h>

#include "pqmcp/tls/web.hpp"

namespace pqmcp::gateway {

namespace {

// A web TLS context for authorization servers (made once, when one is https).
Result<SSL_CTX*> oauth_web_context(Gateway::Impl& g) {
    if (!g.oauth_tls) {
        auto web = tls::make_web_client_context({});
        if (!web) {
            return fail(Errc::startup_failed, "OAuth: " + web.error().message());
        }
        g.oauth_tls = std::move(*web);
    }
    return g.oauth_tls.get();
}

// upstreams[].oauth: the gateway's own token for each, fetched now (an
// authorization server that does not answer yet is tried again in the
// background) and kept fresh.
Status start_upstream_tokens(Gateway::Impl& g) {
    for (const auto& u : g.config.upstreams) {
        if (u.kind != UpstreamKind::http || u.oauth.client_id.empty()) {
            continue;
        }
        auto secret = upstream_client_secret(u);
        if (!secret) {
            return tl::unexpected(secret.error());
        }
        auto web = oauth_web_context(g);
        if (!web) {
            return tl::unexpected(web.error());
        }
        oauth::ClientCredentials cc;
        cc.resource = u.url;
        cc.issuer = u.oauth.issuer;
        cc.client_id = u.oauth.client_id;
        cc.client_secret = std::move(*secret);
        cc.scopes = u.oauth.scopes;
        cc.tls = *web;
        if (const auto it = g.services.tls_contexts.find(u.name);
            it != g.services.tls_contexts.end()) {
            cc.resource_tls = it->second;
        }
        if (u.oauth.grant == "authorization_code") {
            auto file = oauth::TokenFile::open(g.config.upstream_token_file(u), g.own->key.get());
            if (!file) {
                return fail(Errc::startup_failed,
                            "upstream " + u.name + ": " + file.error().detail);
            }
            cc.enrolled = std::make_shared<const oauth::TokenFile>(std::move(*file));
        }
        auto source = std::make_shared<oauth::TokenSource>(g.io.get_executor(), std::move(cc));
        if (const Status got = source->fetch_now(); !got) {
            spdlog::warn("upstream {}: no OAuth token yet ({}); trying again in the background{}",
                         u.name, got.error().message(),
                         got.error().code == oauth::Errc::not_enrolled
                             ? " (enroll it with: pqmcp auth login " + u.name + ")"
                             : std::string{});
        } else {
            spdlog::info("upstream {}: OAuth token from {} (client {}{})", u.name, source->issuer(),
                         u.oauth.client_id,
                         u.oauth.grant == "authorization_code" ? ", enrolled refresh token" : "");
        }
        source->keep_fresh();
        g.services.upstream_tokens[u.name] = std::move(source);
    }
    return {};
}

// auth.require and auth.oauth (docs/gateway.md, Authorization): the resource
// server, and the hook that lets each request to /mcp through or not.
Status start_authorization(Gateway::Impl& g, transport::HttpServerOptions& http) {
    const GatewayConfig& c = g.config;
    const std::string mode = c.auth.mode();
    if (mode == "tls") {
        return {};
    }
    std::string introspection_secret;
    if (const auto& in = c.auth.oauth.introspection; !in.client_id.empty()) {
        auto secret =
            read_secret_line(in.client_secret_file, "auth.oauth.introspection.client_secret_file");
        if (!secret) {
            return fail(Errc::startup_failed, secret.error().detail);
        }
        introspection_secret = std::move(*secret);
    }
    oauth::ResourceOptions ro = resource_options(c.auth.oauth, std::move(introspection_secret));
    if (ro.issuer.starts_with("https:") || ro.jwks_uri.starts_with("https:") ||
        ro.introspection.endpoint.starts_with("https:")) {
        auto web = oauth_web_context(g);
        if (!web) {
            return tl::unexpected(web.error());
        }
        ro.tls = *web;
    }
    g.oauth = std::make_unique<oauth::ResourceServer>(g.io.get_executor(), std::move(ro));
    http.authorize = [&g, mode](std::string_view authorization,
                                const transport::PeerInfo& peer) -> transport::AuthDecision {
        // either: a known TLS client needs no token (one it sends is still checked).
        if (mode == "either" && authorization.empty() && peer.handshake.peer_verified) {
            return {};
        }
        // both: the listener already required a known client identity.
        return g.oauth->decide(authorization);
    };
    return {};
}

// The session-ticket secret the replicas share: 32 to 4096 bytes of a file
// only its owner may read.
Result<std::shared_ptr<const crypto::SecretBytes>> read_ticket_secret(
    const std::filesystem::path& file) {
    const auto where = "cluster.ticket_keys " + file.string() + ": ";
    struct stat st {};
    if (::stat(file.c_str(), &st) != 0) {
        return fail(Errc::invalid_config, where + std::strerror(errno));
    }
    if ((st.st_mode & 077U) != 0) {
        return fail(Errc::invalid_config,
                    where + "readable by others than its owner (chmod 600 it)");
    }
    std::ifstream in(file, std::ios::binary);
    std::string bytes(4097, '\0');
    in.read(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    bytes.resize(static_cast<std::size_t>(in.gcount()));
    if (bytes.size() < 32 || bytes.size() > 4096) {
        OPENSSL_cleanse(bytes.data(), bytes.size());
        return fail(Errc::invalid_config,
                    where + "expected 32 to 4096 random bytes (head -c 64 /dev/urandom > FILE)");
    }
    auto secret = std::make_shared<const crypto::SecretBytes>(as_bytes(bytes));
    OPENSSL_cleanse(bytes.data(), bytes.size());
    return secret;
}

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
    if (h.certificate_type == "raw_public_key") {
        peer += ", raw public key";
    }
    spdlog::info("TLS from {}: {} {} {}, {}{}", remote, h.protocol, h.group, h.cipher, peer,
                 h.resumed ? ", resumed" : "");
}

}  // namespace

Result<crypto::SslCtxPtr> upstream_context(const UpstreamConfig& u, const transport::Url& url,
                                           const identity::Identity& own,
                                           const identity::KnownPeers* known,
                                           bool raw_public_keys) {
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
    o.verify.raw_public_keys = raw_public_keys;
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

namespace {

// A new identity's: its algorithm, and the names it answers to.
identity::KeygenOptions keygen_for(const GatewayConfig& c, crypto::SigAlg algorithm) {
    identity::KeygenOptions keygen;
    keygen.algorithm = algorithm;
    keygen.names = {"localhost"};
    if (c.listen_host() != "localhost" && c.listen_host() != "0.0.0.0" && c.listen_host() != "::") {
        keygen.names.push_back(c.listen_host());
    }
    return keygen;
}

}  // namespace

Result<identity::Identity> own_identity(const GatewayConfig& c, bool* created) {
    auto profile = tls::parse_profile(c.profile);
    if (!profile) {
        return fail(Errc::invalid_config, "profile: " + profile.error().detail);
    }
    std::error_code ec;
    if (created != nullptr) {
        *created = !std::filesystem::exists(c.identity / identity::k_key_file, ec);
    }
    auto own = identity::load_or_create(c.identity,
                                        keygen_for(c, (*profile)->identity_algorithms.front()));
    if (!own) {
        return fail(Errc::startup_failed,
                    "identity " + c.identity.string() + ": " + own.error().message());
    }
    return own;
}

Result<std::string> upstream_client_secret(const UpstreamConfig& u) {
    if (u.oauth.client_secret_file.empty()) {
        return std::string{};  // a public client
    }
    auto secret = read_secret_line(u.oauth.client_secret_file,
                                   "upstream " + u.name + ": oauth.client_secret_file");
    if (!secret) {
        return fail(Errc::startup_failed, secret.error().detail);
    }
    return secret;
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
    // Session handlers end on the next turns; the shared upstreams now,
    // each on its own thread.
    for (const auto& shard : shards) {
        asio::post(shard->services.io, [s = shard.get()] {
            for (auto& [name, client] : s->shared_clients) {
                client->stop();
            }
        });
    }
    asio::co_spawn(
        io,
        [this]() -> asio::awaitable<void> {
            // Every child gets its MCP stdio shutdown (stdin closed, SIGTERM,
            // SIGKILL), each step bounded; wait for them to be reaped.
            asio::steady_timer timer(io);
            // Looks again every 10 ms while `busy` holds, for at most `limit`.
            const auto wait_while =
                [&timer](auto busy, std::chrono::milliseconds limit) -> asio::awaitable<void> {
                const auto deadline = std::chrono::steady_clock::now() + limit;
                while (busy() && std::chrono::steady_clock::now() < deadline) {
                    timer.expires_after(std::chrono::milliseconds{10});
                    (void)co_await timer.async_wait(asio::as_tuple(asio::use_awaitable));
                }
            };
            co_await wait_while([this] { return children.running() > 0; }, std::chrono::seconds{6});
            if (const auto left = children.running(); left > 0) {
                spdlog::warn("{} upstream processes did not end in time", left);
            }
            // Requests answered on another thread than their connection's
            // come back first (their streams ended with their sessions).
            co_await wait_while([this] { return server && server->lent() > 0; },
                                std::chrono::seconds{2});
            // The other threads end when they have nothing left to do (their
            // sessions closed, their connections said goodbye), bounded.
            keep_working.clear();
            co_await wait_while(
                [this] {
                    return std::any_of(workers.begin(), workers.end(),
                                       [](const auto& w) { return !w->stopped(); });
                },
                std::chrono::seconds{2});
            for (auto& w : workers) {
                w->stop();
            }
            io.stop();
        },
        asio::detached);
}

void Gateway::Impl::make_shards() {
    const std::size_t n =
        config.threads != 0 ? config.threads
                            : std::clamp<std::size_t>(std::thread::hardware_concurrency(), 1, 256);
    shards.push_back(std::make_unique<Shard>(services));
    for (std::size_t i = 1; i < n; ++i) {
        workers.push_back(std::make_unique<ShardContext>(1));
        keep_working.push_back(asio::make_work_guard(*workers.back()));
        shards.push_back(std::make_unique<Shard>(
            Services{*workers.back(), config, children, services.tls_contexts, services.supervisor,
                     services.tmp_root, services.openapi, services.upstream_tokens}));
    }
    if (!config.cluster.redis.empty()) {
        cluster::RedisOptions o;
        o.url = config.cluster.redis;
        o.timeout = config.cluster.redis_timeout;
        for (auto& shard : shards) {
            // validate() and start_cluster() checked the address already.
            if (auto counts = cluster::AsyncCounts::create(shard->services.io, o)) {
                shard->counts = std::move(*counts);
                shard->shared_baselines = config.cluster.behaviour == "shared";
            }
        }
    }
}

void Gateway::Impl::drain() {
    io.restart();
    io.poll();
    for (auto& w : workers) {
        w->restart();
        w->poll();
    }
}

Shard& Gateway::Impl::shard_of(const asio::io_context& context) {
    for (const auto& shard : shards) {
        if (&shard->services.io == &context) {
            return *shard;
        }
    }
    return *shards.front();
}

Gateway::Gateway(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

Gateway::~Gateway() {
    if (impl_->server) {
        impl_->server->stop();
    }
    // Requests waiting for the authorization server's keys let go of their
    // connections while the threads' contexts are still here.
    if (impl_->oauth) {
        impl_->oauth->stop();
    }
    // What the threads left in their queues (a closed session's on_closed,
    // say) runs now, here (they have ended), while what it refers to is
    // still here; then the shared upstreams go (their timers are on those
    // threads), then the other threads' queues.
    impl_->drain();
    impl_->server.reset();
    for (auto& shard : impl_->shards) {
        shard->shared_clients.clear();
    }
    impl_->drain();
    // The audit's last commit may post held answers (audit.acknowledge:
    // committed) to the threads' contexts: they must still be there.
    impl_->close_audit();
    impl_->keep_working.clear();
    // What is bound to the other threads' contexts goes while they are still
    // there: each shard's Redis connection and the OpenAPI upstreams' HTTP
    // clients (one per thread). Their destructors close sockets and cancel
    // timers of those contexts.
    for (auto& shard : impl_->shards) {
        shard->counts.reset();
        shard->services.openapi.clear();
    }
    impl_->services.openapi.clear();
    // Every context's queues go before any context does.
    for (auto& w : impl_->workers) {
        w->shutdown();
    }
    impl_->io.shutdown();
    impl_->workers.clear();
    impl_->supervisor.reset();
    if (!impl_->tmp_root.empty()) {
        std::error_code ec;
        std::filesystem::remove_all(impl_->tmp_root, ec);
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
    bool created = false;
    auto own = own_identity(c, &created);
    if (!own) {
        return tl::unexpected(own.error());
    }
    g.own = std::move(*own);
    g.info.identity_created = created;
    g.info.peer_id = g.own->id.str();

    if (!c.browser_certificate.empty()) {
        // A classical certificate for browsers without ML-DSA: self-signed in
        // IDENTITY/browser when "auto", else whatever the operator put there.
        const bool generated = c.browser_certificate == "auto";
        const auto dir =
            generated ? c.identity / "browser" : std::filesystem::path(c.browser_certificate);
        const identity::KeygenOptions browser_keygen = keygen_for(c, crypto::SigAlg::ecdsa_p256);
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
    if (auto ok = g.start_cluster(); !ok) {
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
    server_options.verify.raw_public_keys = c.raw_public_keys;
    if (g.browser) {
        server_options.browser_certificate = {g.browser->certificate.get(), g.browser->key.get()};
    }
    if (!c.cluster.ticket_keys.empty()) {
        auto secret = read_ticket_secret(c.cluster.ticket_keys);
        if (!secret) {
            return tl::unexpected(secret.error());
        }
        server_options.tickets.shared_secret = std::move(*secret);
        spdlog::info("session tickets: keys derived from {} (shared by the replicas that have it)",
                     c.cluster.ticket_keys.string());
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
            if (!transport::is_loopback_host(url->host)) {
                spdlog::warn("upstream {} is plain HTTP on {}: its traffic is not encrypted",
                             u.name, url->host);
            }
            continue;
        }
        auto ctx =
            upstream_context(u, *url, *g.own, g.known ? &*g.known : nullptr, c.raw_public_keys);
        if (!ctx) {
            return fail(Errc::startup_failed, ctx.error().message());
        }
        g.services.tls_contexts[u.name] = ctx->get();
        g.upstream_contexts.push_back(std::move(*ctx));
    }
    if (const Status tokens = start_upstream_tokens(g); !tokens) {
        return tl::unexpected(tokens.error());
    }
    // OpenAPI upstreams: their specs are read now; one that cannot be read
    // stops the start with its error.
    for (const auto& u : c.upstreams) {
        if (u.kind != UpstreamKind::openapi) {
            continue;
        }
        auto service = OpenApiService::create(u, c);
        if (!service) {
            return tl::unexpected(service.error());
        }
        g.services.openapi[u.name] = std::move(*service);
    }

    transport::HttpServerOptions http;
    http.host = c.listen_host();
    http.port = c.listen_port();
    http.limits = c.limits.http;
    http.limits.max_body_bytes =
        std::max(c.limits.http.max_body_bytes, c.limits.message.max_message_bytes);
    http.timeouts = c.timeouts.http;
    http.message_limits = c.limits.message;
    http.allowed_origins = c.allowed_origins;  // and its own origin (HttpServer::start)
    http.open_session = [&g](transport::ServerSession& session)
        -> Result<std::unique_ptr<transport::SessionHandler>> {
        const auto& peer = session.peer();
        spdlog::info("session {} opened from {} ({})", session.id().substr(0, 8), peer.remote,
                     peer.handshake.peer_id ? peer.handshake.peer_id->str() : "no client identity");
        g.recorder->session_opened(session);
        return std::unique_ptr<transport::SessionHandler>(
            std::make_unique<GatewaySession>(g.shared, g.shard_of(session.context()), session));
    };
    http.on_handshake = [&g](const std::string& remote, const Result<tls::HandshakeInfo>& result,
                             std::chrono::nanoseconds elapsed) {
        log_handshake(remote, result);
        g.recorder->handshake(remote, result, elapsed);
    };
    if (const Status auth = start_authorization(g, http); !auth) {
        return tl::unexpected(auth.error());
    }
    if (g.dashboard || g.oauth) {
        http.get_page = [&g](const transport::HttpServerOptions::PageRequest& request)
            -> std::optional<transport::HttpServerOptions::Page> {
            // RFC 9728 section 3: the metadata at its well-known path.
            if (g.oauth &&
                g.oauth->is_metadata_path(request.target.substr(0, request.target.find('?')))) {
                return transport::HttpServerOptions::Page{
                    200, "application/json", g.oauth->metadata(), {}};
            }
            if (!g.dashboard) {
                return std::nullopt;
            }
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
    g.make_shards();
    std::vector<asio::io_context*> contexts;
    for (const auto& shard : g.shards) {
        contexts.push_back(&shard->services.io);
    }
    g.info.threads = contexts.size();
    g.server =
        std::make_unique<transport::HttpServer>(contexts, g.server_context.get(), std::move(http));
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
    if (g.oauth) {
        g.oauth->set_resource(g.info.url);
        g.oauth->start();
        spdlog::info("oauth: resource {} trusts tokens of {} (auth.require {}; metadata {})",
                     g.oauth->resource(), c.auth.oauth.issuer, c.auth.mode(),
                     g.oauth->metadata_url());
    }
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

void Gateway::run(bool handle_signals, const std::function<void()>& on_ready) {
    Impl& g = *impl_;
    std::optional<asio::signal_set> signals;
    std::function<void(const boost::system::error_code&, int)> on_signal;
    if (handle_signals) {
        signals.emplace(g.io, SIGINT, SIGTERM, SIGHUP);
        on_signal = [&g, &signals, &on_signal](const boost::system::error_code& ec, int signal) {
            // A signal taken as the gateway stopped may run from ~Gateway's
            // drain, after run() (and `signals` with it) has gone.
            if (ec || g.stopping) {
                return;
            }
            if (signal == SIGHUP) {
                spdlog::info("SIGHUP: reading the policy again");
                (void)g.apply_policy(false);
                for (const auto& [name, service] : g.services.openapi) {
                    spdlog::info("SIGHUP: reading upstream {}'s OpenAPI description again", name);
                    (void)service->reload();
                }
                signals->async_wait(on_signal);
                return;
            }
            spdlog::info("signal {} received", signal == SIGINT ? "SIGINT" : "SIGTERM");
            g.begin_shutdown();
        };
        signals->async_wait(on_signal);
    }
    if (on_ready) {
        on_ready();
    }
    g.watch_policy();
    g.sweep_started();
    std::vector<std::thread> threads;
    threads.reserve(g.workers.size());
    for (auto& w : g.workers) {
        threads.emplace_back([&context = *w] { context.run(); });
    }
    g.io.run();
    g.ran = true;
    for (auto& t : threads) {
        t.join();
    }
    if (signals) {
        boost::system::error_code ignored;
        signals->cancel(ignored);
    }
    // Every record, decisions included, is committed and the chain's head
    // signed before run() returns (and `serve` reports a clean exit).
    if (g.audit) {
        g.close_audit();
        const auto st = g.audit->stats();
        spdlog::info("audit trail closed: {} records written, {} dropped, {} checkpoints",
                     st.written, st.dropped, st.checkpoints);
    }
}

void Gateway::shutdown() {
    asio::post(impl_->io, [impl = impl_.get()] { impl->begin_shutdown(); });
}

namespace {

constexpr std::chrono::seconds k_call_deadline{10};

// `f()` on the gateway's main thread, for a caller on another thread: waits
// for its value at most k_call_deadline. The promise is shared, so a
// handler that runs after the caller gave up (in ~Gateway's drain) is safe.
template <class T, class F>
Result<T> on_main_thread(Gateway::Impl& g, F f) {
    if (g.ran.load()) {
        return fail(Errc::not_running, "run() has returned");
    }
    auto promise = std::make_shared<std::promise<T>>();
    auto future = promise->get_future();
    asio::post(g.io, [promise, f = std::move(f)]() mutable { promise->set_value(f()); });
    if (future.wait_for(k_call_deadline) != std::future_status::ready) {
        return fail(Errc::not_running,
                    fmt::format("the gateway's thread did not answer within {} s",
                                k_call_deadline.count()));
    }
    return future.get();
}

}  // namespace

Status Gateway::reload_policy() {
    auto outcome =
        on_main_thread<Status>(*impl_, [g = impl_.get()] { return g->apply_policy(false); });
    if (!outcome) {
        return tl::unexpected(outcome.error());
    }
    return *outcome;
}

Result<GatewayStats> Gateway::stats() {
    return on_main_thread<GatewayStats>(*impl_, [g = impl_.get()] {
        const auto http = g->server->stats();
        return GatewayStats{http.sessions, http.connections, g->children.running(),
                            http.buffered_bytes, http.connections_moved};
    });
}

}  // namespace pqmcp::gateway
