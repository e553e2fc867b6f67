#include "pqmcp/oauth/client.hpp"

#include <algorithm>
#include <cctype>
#include <future>
#include <mutex>
#include <optional>
#include <utility>

#include <spdlog/spdlog.h>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/json.hpp>
#include <boost/url/url.hpp>

#include "fetch.hpp"

namespace pqmcp::oauth {

namespace json = boost::json;
namespace asio = boost::asio;
using Steady = std::chrono::steady_clock;

namespace {

std::optional<std::string> string_field(const json::value& doc, const char* name) {
    if (!doc.is_object()) {
        return std::nullopt;
    }
    const auto* v = doc.as_object().if_contains(name);
    return v != nullptr && v->is_string() ? std::optional<std::string>(std::string(v->as_string()))
                                          : std::nullopt;
}

}  // namespace

struct TokenSource::Impl : std::enable_shared_from_this<Impl> {
    Impl(asio::any_io_executor ex, ClientCredentials c)
        : executor(std::move(ex)), credentials(std::move(c)), refresh(executor) {}

    asio::any_io_executor executor;
    ClientCredentials credentials;
    asio::steady_timer refresh;

    mutable std::mutex mutex;
    std::string token;
    std::string issuer;
    std::string token_endpoint;
    std::string resource;  // as the upstream's metadata names it
    Steady::time_point expires{};
    std::chrono::seconds lifetime{0};
    std::chrono::seconds backoff{1};
    bool failed = false;  // the last attempt failed: wait the back-off

    using Done = std::function<void(Status)>;

    // The upstream's metadata (RFC 9728), then the server's (RFC 8414).
    void discover(const asio::any_io_executor& ex, Done done) {
        if (!credentials.issuer.empty()) {
            {
                const std::lock_guard lock(mutex);
                issuer = credentials.issuer;
                resource = credentials.resource;
            }
            server_metadata(ex, detail::metadata_urls(credentials.issuer), 0, std::move(done));
            return;
        }
        const std::string url = detail::resource_metadata_url(credentials.resource);
        detail::get_json(
            ex, url, credentials.resource_tls, credentials.timeout,
            [self = shared_from_this(), ex, url, done = std::move(done)](Result<std::string> body) {
                if (!body) {
                    done(fail(Errc::discovery_failed, body.error().detail));
                    return;
                }
                boost::system::error_code ec;
                const json::value doc = json::parse(*body, ec);
                const auto* servers = !ec && doc.is_object()
                                          ? doc.as_object().if_contains("authorization_servers")
                                          : nullptr;
                if (servers == nullptr || !servers->is_array() || servers->as_array().empty() ||
                    !servers->as_array().front().is_string()) {
                    done(fail(Errc::discovery_failed, url + ": no authorization_servers"));
                    return;
                }
                // RFC 9728 section 3.3: "the "resource" value returned MUST be
                // identical to the protected resource's resource identifier
                // value into which the well-known URI path suffix was inserted".
                const auto named = string_field(doc, "resource");
                if (named != self->credentials.resource) {
                    done(fail(Errc::discovery_failed, url + ": its resource is " +
                                                          named.value_or("missing") + ", not " +
                                                          self->credentials.resource));
                    return;
                }
                const std::string found(servers->as_array().front().as_string());
                {
                    const std::lock_guard lock(self->mutex);
                    self->issuer = found;
                    self->resource = *named;
                }
                self->server_metadata(ex, detail::metadata_urls(found), 0, done);
            });
    }

    void server_metadata(const asio::any_io_executor& ex, std::vector<std::string> urls,
                         std::size_t index, Done done) {
        if (index >= urls.size()) {
            done(fail(Errc::discovery_failed, "no metadata for its authorization server"));
            return;
        }
        const std::string url = urls[index];
        detail::get_json(
            ex, url, credentials.tls, credentials.timeout,
            [self = shared_from_this(), ex, url, urls = std::move(urls), index,
             done = std::move(done)](Result<std::string> body) mutable {
                boost::system::error_code ec;
                const json::value doc = body ? json::parse(*body, ec) : json::value(nullptr);
                if (!body || ec) {
                    self->server_metadata(ex, std::move(urls), index + 1, std::move(done));
                    return;
                }
                std::string wanted;
                {
                    const std::lock_guard lock(self->mutex);
                    wanted = self->issuer;
                }
                // RFC 8414 section 3.3: the issuer must be the one asked for.
                if (string_field(doc, "issuer") != wanted) {
                    done(fail(Errc::discovery_failed, url + ": its issuer is not " + wanted));
                    return;
                }
                const auto endpoint = string_field(doc, "token_endpoint");
                if (!endpoint) {
                    done(fail(Errc::discovery_failed, url + ": no token_endpoint"));
                    return;
                }
                {
                    const std::lock_guard lock(self->mutex);
                    self->token_endpoint = *endpoint;
                }
                done({});
            });
    }

    // RFC 6749 section 4.4.2, with the resource (RFC 8707 section 2).
    void request_token(const asio::any_io_executor& ex, Done done) {
        std::string endpoint;
        std::string for_resource;
        {
            const std::lock_guard lock(mutex);
            endpoint = token_endpoint;
            for_resource = resource;
        }
        boost::urls::url form;
        form.params().append({"grant_type", "client_credentials"});
        form.params().append({"resource", for_resource});
        if (!credentials.scopes.empty()) {
            std::string scope;
            for (const auto& s : credentials.scopes) {
                scope += (scope.empty() ? "" : " ") + s;
            }
            form.params().append({"scope", scope});
        }
        transport::RestRequest req;
        req.method = "POST";
        req.body = std::string(form.encoded_query());
        req.content_type = "application/x-www-form-urlencoded";
        req.headers.emplace_back("Accept", "application/json");
        req.headers.emplace_back(
            "Authorization",
            detail::basic_credentials(credentials.client_id, credentials.client_secret));
        detail::exchange(
            ex, endpoint, credentials.tls, credentials.timeout, std::move(req),
            [self = shared_from_this(), endpoint,
             done = std::move(done)](Result<transport::RestResponse> r) {
                if (!r) {
                    done(fail(Errc::discovery_failed, endpoint + ": " + r.error().message()));
                    return;
                }
                boost::system::error_code ec;
                const json::value doc = json::parse(r->body, ec);
                if (r->status != 200 || ec) {
                    // RFC 6749 section 5.2: the error and its description.
                    done(fail(Errc::invalid_token,
                              endpoint + ": HTTP " + std::to_string(r->status) + " " +
                                  string_field(doc, "error").value_or("") + " " +
                                  string_field(doc, "error_description").value_or("")));
                    return;
                }
                const auto access = string_field(doc, "access_token");
                const auto type = string_field(doc, "token_type");
                // RFC 6749 section 7.1: the token type is case-insensitive.
                std::string lower = type.value_or("");
                std::transform(lower.begin(), lower.end(), lower.begin(),
                               [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
                if (!access || lower != "bearer") {
                    done(fail(Errc::invalid_token, endpoint + ": no bearer access_token"));
                    return;
                }
                std::int64_t expires_in = 3600;  // RFC 6749: RECOMMENDED, not required
                if (const auto* e = doc.as_object().if_contains("expires_in");
                    e != nullptr && e->is_number()) {
                    boost::system::error_code ne;
                    const double seconds = e->to_number<double>(ne);
                    expires_in = ne ? 3600
                                    : std::clamp<std::int64_t>(static_cast<std::int64_t>(seconds),
                                                               1, 86'400);
                }
                {
                    const std::lock_guard lock(self->mutex);
                    self->token = *access;
                    self->lifetime = std::chrono::seconds{expires_in};
                    self->expires = Steady::now() + self->lifetime;
                    self->backoff = std::chrono::seconds{1};
                    self->failed = false;
                }
                done({});
            });
    }

    void fetch(const asio::any_io_executor& ex, Done done) {
        bool known = false;
        {
            const std::lock_guard lock(mutex);
            known = !token_endpoint.empty();
        }
        if (known) {
            request_token(ex, std::move(done));
            return;
        }
        discover(ex, [self = shared_from_this(), ex, done = std::move(done)](const Status& found) {
            if (!found) {
                done(found);
                return;
            }
            self->request_token(ex, done);
        });
    }

    void schedule() {
        std::chrono::seconds wait{1};
        {
            const std::lock_guard lock(mutex);
            const auto left =
                std::chrono::duration_cast<std::chrono::seconds>(expires - Steady::now());
            // Two thirds of the way, or the back-off after a failure.
            wait = failed || token.empty() || left <= std::chrono::seconds{0}
                       ? backoff
                       : std::max(std::chrono::seconds{1}, left - lifetime / 3);
        }
        refresh.expires_after(wait);
        refresh.async_wait([weak = weak_from_this()](const boost::system::error_code& ec) {
            auto self = weak.lock();
            if (ec || !self) {
                return;
            }
            self->fetch(self->executor, [self](Status got) {
                if (!got) {
                    spdlog::warn("oauth: a token for {}: {}", self->credentials.resource,
                                 got.error().detail);
                    const std::lock_guard lock(self->mutex);
                    if (self->failed) {
                        self->backoff = std::min(self->backoff * 2, std::chrono::seconds{60});
                    }
                    self->failed = true;
                    if (Steady::now() >= self->expires) {
                        self->token.clear();  // expired: better none than a refused one
                    }
                }
                self->schedule();
            });
        });
    }
};

TokenSource::TokenSource(asio::any_io_executor executor, ClientCredentials credentials)
    : impl_(std::make_shared<Impl>(std::move(executor), std::move(credentials))) {}

TokenSource::~TokenSource() {
    impl_->refresh.cancel();
}

Status TokenSource::fetch_now() {
    asio::io_context io(1);
    std::optional<Status> result;
    impl_->fetch(io.get_executor(), [&result](Status s) { result = std::move(s); });
    io.run_for(impl_->credentials.timeout * 4);
    if (!result) {
        return fail(Errc::discovery_failed,
                    "no token within " +
                        std::to_string(impl_->credentials.timeout.count() * 4 / 1000) + " s");
    }
    return *result;
}

void TokenSource::keep_fresh() {
    asio::post(impl_->executor, [impl = impl_] { impl->schedule(); });
}

std::string TokenSource::authorization() const {
    const std::lock_guard lock(impl_->mutex);
    return impl_->token.empty() ? std::string{} : "Bearer " + impl_->token;
}

std::string TokenSource::issuer() const {
    const std::lock_guard lock(impl_->mutex);
    return impl_->issuer;
}

}  // namespace pqmcp::oauth
