// The TLS posture of a server: its URL parsed, the endpoint probed once;
// and whether it wants OAuth bearer tokens (its RFC 9728 metadata).
#include <spdlog/spdlog.h>

#include "pqmcp/tls/web.hpp"
#include "pqmcp/transport/http_util.hpp"
#include "steps.hpp"

namespace pqmcp::scan {

void Prober::check(ServerReport& r) {
    const std::string& url = r.tls_url;
    if (url.find("${") != std::string::npos) {
        r.networked = true;
        r.posture = Posture::unknown;
        r.notes.emplace_back("its URL uses variables that are not set; not probed");
        return;
    }
    auto parsed = transport::parse_url(url);
    if (!parsed) {
        r.networked = true;
        r.posture = Posture::unknown;
        r.tls_error = "url: " + parsed.error().detail;
        return;
    }
    r.networked = !is_loopback_host(parsed->host);
    if (!parsed->tls) {
        r.posture = Posture::plaintext;
        if (!r.networked) {
            read_oauth(r, false);  // OAuth endpoints over plain HTTP: loopback only
        }
        return;
    }
    if (!enabled_) {
        r.posture = Posture::unknown;
        r.notes.emplace_back("TLS not probed (--no-probe)");
        return;
    }
    const std::string key = parsed->authority();
    auto it = cache_.find(key);
    if (it == cache_.end()) {
        it = cache_.emplace(key, tls::probe(parsed->host, parsed->port, timeout_)).first;
    }
    if (!it->second) {
        r.posture = Posture::unknown;
        r.tls_error = "probe " + key + ": " + it->second.error().message();
        return;
    }
    r.probe = *it->second;
    r.posture = posture_of(it->second->verdict);
    read_oauth(r, true);
}

void Prober::read_oauth(ServerReport& r, bool https) {
    if (!enabled_ || r.transport == "stdio") {
        return;  // a bridge's URL may not be an MCP endpoint of its own
    }
    if (https && !web_) {
        auto web = tls::make_web_client_context({});
        if (!web) {
            spdlog::warn("scan: no TLS context for metadata: {}", web.error().message());
            return;
        }
        web_ = std::move(*web);
    }
    auto meta = oauth::read_resource_metadata(r.tls_url, web_.get(), timeout_);
    if (!meta) {
        return;  // most servers have none: not a problem to report
    }
    r.oauth = std::move(*meta);
    if (r.networked && r.posture != Posture::quantum_safe) {
        r.notes.emplace_back(
            "it takes OAuth bearer tokens: under this TLS they can be recorded today and used "
            "by whoever breaks its key exchange while they live (a refresh token lives "
            "longer); behind pqmcp serve (--upstream-oauth-login) only the gateway holds them");
    }
}

}  // namespace pqmcp::scan
