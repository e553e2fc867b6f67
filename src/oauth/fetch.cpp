#include "fetch.hpp"

#include <algorithm>
#include <cctype>
#include <memory>
#include <utility>

#include <boost/json.hpp>
#include <boost/url/encode.hpp>
#include <boost/url/rfc/unreserved_chars.hpp>
#include <boost/url/url.hpp>

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

std::optional<std::string> string_field(const boost::json::value& doc, const char* name) {
    if (!doc.is_object()) {
        return std::nullopt;
    }
    const auto* v = doc.as_object().if_contains(name);
    return v != nullptr && v->is_string() ? std::optional<std::string>(std::string(v->as_string()))
                                          : std::nullopt;
}

std::vector<std::string> string_array(const boost::json::value& doc, const char* name) {
    std::vector<std::string> out;
    const auto* v = doc.is_object() ? doc.as_object().if_contains(name) : nullptr;
    if (v != nullptr && v->is_array()) {
        for (const auto& one : v->as_array()) {
            if (one.is_string()) {
                out.emplace_back(one.as_string());
            }
        }
    }
    return out;
}

Result<ResourceMetadata> parse_resource_metadata(const std::string& body, const std::string& url,
                                                 const std::string& resource) {
    boost::system::error_code ec;
    const boost::json::value doc = boost::json::parse(body, ec);
    ResourceMetadata out;
    out.url = url;
    out.authorization_servers =
        ec ? std::vector<std::string>{} : string_array(doc, "authorization_servers");
    if (out.authorization_servers.empty()) {
        return fail(Errc::discovery_failed, url + ": no authorization_servers");
    }
    // RFC 9728 section 3.3: "the "resource" value returned MUST be
    // identical to the protected resource's resource identifier value into
    // which the well-known URI path suffix was inserted".
    const auto named = string_field(doc, "resource");
    if (named != resource) {
        return fail(Errc::discovery_failed,
                    url + ": its resource is " + named.value_or("missing") + ", not " + resource);
    }
    out.resource = *named;
    out.scopes_supported = string_array(doc, "scopes_supported");
    return out;
}

namespace {

namespace json = boost::json;
using Found = std::function<void(Result<ServerMetadata>)>;

// The server's metadata from the first of `urls` that has it (RFC 8414
// section 3, then OpenID Connect discovery).
void server_metadata(const boost::asio::any_io_executor& ex,
                     const std::shared_ptr<const Discovery>& what, ServerMetadata found,
                     std::vector<std::string> urls, std::size_t index, Found done) {
    if (index >= urls.size()) {
        done(fail(Errc::discovery_failed,
                  "no metadata for the authorization server " + found.issuer));
        return;
    }
    const std::string url = urls[index];
    get_json(
        ex, url, what->tls, what->timeout,
        [ex, what, found = std::move(found), url, urls = std::move(urls), index,
         done = std::move(done)](Result<std::string> body) mutable {
            boost::system::error_code ec;
            const json::value doc = body ? json::parse(*body, ec) : json::value(nullptr);
            if (!body || ec) {
                server_metadata(ex, what, std::move(found), std::move(urls), index + 1,
                                std::move(done));
                return;
            }
            // RFC 8414 section 3.3: "The "issuer" value returned MUST be
            // identical to the authorization server's issuer identifier
            // value into which the well-known URI string was inserted".
            if (string_field(doc, "issuer") != found.issuer) {
                done(fail(Errc::discovery_failed, url + ": its issuer is not " + found.issuer));
                return;
            }
            const auto endpoint = string_field(doc, "token_endpoint");
            if (!endpoint) {
                done(fail(Errc::discovery_failed, url + ": no token_endpoint"));
                return;
            }
            found.token_endpoint = *endpoint;
            found.authorization_endpoint = string_field(doc, "authorization_endpoint").value_or("");
            found.code_challenge_methods = string_array(doc, "code_challenge_methods_supported");
            const auto* iss =
                doc.as_object().if_contains("authorization_response_iss_parameter_supported");
            found.iss_parameter = iss != nullptr && iss->is_bool() && iss->as_bool();
            done(std::move(found));
        });
}

}  // namespace

void discover(const boost::asio::any_io_executor& ex, Discovery what, Found done) {
    auto shared = std::make_shared<const Discovery>(std::move(what));
    if (!shared->issuer.empty()) {
        ServerMetadata found;
        found.issuer = shared->issuer;
        found.resource = shared->resource;
        server_metadata(ex, shared, std::move(found), metadata_urls(shared->issuer), 0,
                        std::move(done));
        return;
    }
    const std::string url = resource_metadata_url(shared->resource);
    get_json(ex, url, shared->resource_tls, shared->timeout,
             [ex, shared, url, done = std::move(done)](Result<std::string> body) mutable {
                 if (!body) {
                     done(fail(Errc::discovery_failed, body.error().detail));
                     return;
                 }
                 auto meta = parse_resource_metadata(*body, url, shared->resource);
                 if (!meta) {
                     done(tl::unexpected(meta.error()));
                     return;
                 }
                 ServerMetadata found;
                 found.issuer = meta->authorization_servers.front();
                 found.resource = std::move(meta->resource);
                 found.resource_scopes = std::move(meta->scopes_supported);
                 auto urls = metadata_urls(found.issuer);
                 server_metadata(ex, shared, std::move(found), std::move(urls), 0, std::move(done));
             });
}

void request_token(const boost::asio::any_io_executor& ex, const std::string& endpoint,
                   SSL_CTX* tls, std::chrono::milliseconds timeout, const TokenClient& client,
                   const std::vector<std::pair<std::string, std::string>>& form,
                   std::function<void(Result<TokenResponse>)> done) {
    boost::urls::url body;
    for (const auto& [name, value] : form) {
        body.params().append({name, value});
    }
    transport::RestRequest req;
    req.method = "POST";
    req.content_type = "application/x-www-form-urlencoded";
    req.headers.emplace_back("Accept", "application/json");
    if (client.secret.empty()) {
        body.params().append({"client_id", client.id});
    } else {
        req.headers.emplace_back("Authorization", basic_credentials(client.id, client.secret));
    }
    req.body = std::string(body.encoded_query());
    exchange(ex, endpoint, tls, timeout, std::move(req),
             [endpoint, done = std::move(done)](Result<transport::RestResponse> r) {
                 if (!r) {
                     done(fail(Errc::discovery_failed, endpoint + ": " + r.error().message()));
                     return;
                 }
                 boost::system::error_code ec;
                 const json::value doc = json::parse(r->body, ec);
                 if (r->status != 200 || ec || !doc.is_object()) {
                     // RFC 6749 section 5.2: a refusal is 400 (401 for the
                     // client), with the error and its description; any other
                     // answer is a server that is not available now.
                     const bool refused = (r->status == 400 || r->status == 401) &&
                                          string_field(doc, "error").has_value();
                     done(fail(refused ? Errc::grant_refused : Errc::discovery_failed,
                               endpoint + ": HTTP " + std::to_string(r->status) + " " +
                                   string_field(doc, "error").value_or("") + " " +
                                   string_field(doc, "error_description").value_or("")));
                     return;
                 }
                 const auto access = string_field(doc, "access_token");
                 // RFC 6749 section 7.1: the token type is case-insensitive.
                 std::string type = string_field(doc, "token_type").value_or("");
                 std::transform(type.begin(), type.end(), type.begin(),
                                [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
                 if (!access || type != "bearer") {
                     done(fail(Errc::invalid_token, endpoint + ": no bearer access_token"));
                     return;
                 }
                 TokenResponse out;
                 out.access_token = *access;
                 out.refresh_token = string_field(doc, "refresh_token").value_or("");
                 out.scope = string_field(doc, "scope").value_or("");
                 if (const auto* e = doc.as_object().if_contains("expires_in");
                     e != nullptr && e->is_number()) {
                     boost::system::error_code ne;
                     const double seconds = e->to_number<double>(ne);
                     if (!ne) {
                         // Clamped as a double: a cast of 1e300 would be undefined.
                         out.expires_in = std::chrono::seconds{
                             static_cast<std::int64_t>(std::clamp(seconds, 1.0, 86'400.0))};
                     }
                 }
                 done(std::move(out));
             });
}

}  // namespace pqmcp::oauth::detail
