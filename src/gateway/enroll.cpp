#include "pqmcp/gateway/enroll.hpp"

#include <algorithm>
#include <optional>
#include <utility>

#include "gateway_impl.hpp"
#include "pqmcp/oauth/login.hpp"
#include "pqmcp/oauth/token_store.hpp"
#include "pqmcp/tls/web.hpp"

namespace pqmcp::gateway {

namespace {

Result<const UpstreamConfig*> enrollable(const GatewayConfig& c, const std::string& name) {
    const auto it = std::find_if(c.upstreams.begin(), c.upstreams.end(),
                                 [&name](const UpstreamConfig& u) { return u.name == name; });
    if (it == c.upstreams.end() || it->kind != UpstreamKind::http) {
        return fail(Errc::invalid_config, "no HTTP upstream named " + name);
    }
    if (it->oauth.client_id.empty() || it->oauth.grant != "authorization_code") {
        return fail(Errc::invalid_config,
                    "upstream " + name +
                        " is not enrolled by a person: its oauth.grant is not authorization_code "
                        "(--upstream-oauth-login " +
                        name + "=CLIENT_ID)");
    }
    return &*it;
}

}  // namespace

Result<Enrolled> enroll_upstream(const GatewayConfig& c, const std::string& name,
                                 const EnrollOptions& options) {
    auto found = enrollable(c, name);
    if (!found) {
        return tl::unexpected(found.error());
    }
    const UpstreamConfig& u = **found;
    auto own = own_identity(c, nullptr);
    if (!own) {
        return tl::unexpected(own.error());
    }
    auto secret = upstream_client_secret(u);
    if (!secret) {
        return tl::unexpected(secret.error());
    }
    auto url = transport::parse_url(u.url);
    if (!url) {
        return fail(Errc::invalid_config, "upstream " + name + ": " + url.error().detail);
    }
    std::optional<identity::KnownPeers> known;
    if (!c.known_peers.empty()) {
        auto k = identity::KnownPeers::load(c.known_peers);
        if (!k) {
            return fail(Errc::startup_failed, "known_peers: " + k.error().message());
        }
        known = std::move(*k);
    }
    crypto::SslCtxPtr resource_tls;
    if (url->tls) {
        auto ctx = upstream_context(u, *url, *own, known ? &*known : nullptr, c.raw_public_keys);
        if (!ctx) {
            return fail(Errc::startup_failed, ctx.error().message());
        }
        resource_tls = std::move(*ctx);
    }
    auto web = tls::make_web_client_context({});
    if (!web) {
        return fail(Errc::startup_failed, "OAuth: " + web.error().message());
    }
    auto file = oauth::TokenFile::open(c.upstream_token_file(u), own->key.get());
    if (!file) {
        return tl::unexpected(file.error());
    }

    oauth::LoginOptions lo;
    lo.resource = u.url;
    lo.issuer = u.oauth.issuer;
    lo.client_id = u.oauth.client_id;
    lo.client_secret = std::move(*secret);
    lo.scopes = u.oauth.scopes;
    lo.resource_tls = resource_tls.get();
    lo.tls = web->get();
    lo.port = options.port;
    lo.wait = options.wait;
    lo.show = options.show;
    auto grant = oauth::login_and_store(lo, *file);
    if (!grant) {
        return tl::unexpected(grant.error());
    }
    return Enrolled{file->path(), grant->issuer, grant->client_id};
}

Result<std::pair<std::filesystem::path, bool>> forget_upstream(const GatewayConfig& c,
                                                               const std::string& name) {
    auto found = enrollable(c, name);
    if (!found) {
        return tl::unexpected(found.error());
    }
    const std::filesystem::path path = c.upstream_token_file(**found);
    auto held = oauth::TokenFile::lock_path(path, std::chrono::seconds{30});
    if (!held) {
        return tl::unexpected(held.error());
    }
    std::error_code ec;
    const bool removed = std::filesystem::remove(path, ec);
    if (ec) {
        return fail(Errc::startup_failed, path.string() + ": " + ec.message());
    }
    return std::pair{path, removed};
}

}  // namespace pqmcp::gateway
