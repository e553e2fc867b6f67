#include "fetch.hpp"

#include <memory>
#include <utility>

#include <boost/url/encode.hpp>
#include <boost/url/rfc/unreserved_chars.hpp>

#include "pqmcp/core/bytes.hpp"
#include "pqmcp/crypto/util.hpp"
#include "pqmcp/oauth/resource.hpp"

namespace pqmcp::oauth::detail {

std::vector<std::string> metadata_urls(const std::string& issuer) {
    std::vector<std::string> out;
    const auto parsed = transport::parse_url(issuer);
    if (!parsed) {
        return out;
    }
    const std::string origin = (parsed->tls ? "https://" : "http://") + parsed->authority();
    const std::string path = parsed->target == "/" ? std::string{} : parsed->target;
    out.push_back(origin + "/.well-known/oauth-authorization-server" + path);
    out.push_back(origin + path + "/.well-known/openid-configuration");
    return out;
}

std::string resource_metadata_url(const std::string& resource) {
    const auto parsed = transport::parse_url(resource);
    if (!parsed) {
        return {};
    }
    const std::string origin = (parsed->tls ? "https://" : "http://") + parsed->authority();
    return origin + "/.well-known/oauth-protected-resource" +
           (parsed->target == "/" ? std::string{} : parsed->target);
}

void exchange(const boost::asio::any_io_executor& executor, const std::string& url, SSL_CTX* tls,
              std::chrono::milliseconds timeout, transport::RestRequest request,
              std::function<void(Result<transport::RestResponse>)> done) {
    auto parsed = transport::parse_url(url);
    if (!parsed) {
        done(tl::unexpected(parsed.error()));
        return;
    }
    if (!parsed->tls && !transport::is_loopback_host(parsed->host)) {
        done(fail(Errc::invalid_options, url + ": OAuth endpoints must be reached over https"));
        return;
    }
    if (parsed->tls && tls == nullptr) {
        done(fail(Errc::invalid_options, url + ": no TLS context for https"));
        return;
    }
    transport::RestClientOptions ro;
    ro.base = *parsed;
    ro.tls = tls;
    ro.request_timeout = timeout;
    ro.connect_timeout = timeout;
    ro.max_response_bytes = 1U << 20U;
    ro.max_connections = 1;
    auto client = std::make_shared<transport::RestClient>(executor, ro);
    request.target = parsed->target;
    client->send(std::move(request),
                 [client, done = std::move(done)](Result<transport::RestResponse> r) mutable {
                     done(std::move(r));
                 });
}

void get_json(const boost::asio::any_io_executor& executor, const std::string& url, SSL_CTX* tls,
              std::chrono::milliseconds timeout, std::function<void(Result<std::string>)> done) {
    transport::RestRequest req;
    req.method = "GET";
    req.headers.emplace_back("Accept", "application/json");
    exchange(executor, url, tls, timeout, std::move(req),
             [url, done = std::move(done)](Result<transport::RestResponse> r) {
                 if (!r) {
                     done(fail(Errc::jwks_failed, url + ": " + r.error().message()));
                     return;
                 }
                 if (r->status != 200 || r->truncated) {
                     done(fail(Errc::jwks_failed, url + ": HTTP " + std::to_string(r->status) +
                                                      (r->truncated ? " (too large)" : "")));
                     return;
                 }
                 done(std::move(r->body));
             });
}

std::string basic_credentials(const std::string& id, const std::string& secret) {
    const auto encode = [](const std::string& s) {
        return boost::urls::encode(s, boost::urls::unreserved_chars);
    };
    const std::string joined = encode(id) + ":" + encode(secret);
    return "Basic " + crypto::to_base64(as_bytes(joined));
}

}  // namespace pqmcp::oauth::detail
