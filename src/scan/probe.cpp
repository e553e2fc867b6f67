// The TLS posture of a server: its URL parsed, the endpoint probed once.
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
}

}  // namespace pqmcp::scan
