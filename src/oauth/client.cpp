#include "pqmcp/oauth/client.hpp"

#include <algorithm>
#include <memory>
#include <mutex>
#include <optional>
#include <utility>

#include <spdlog/spdlog.h>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>

#include "fetch.hpp"

namespace pqmcp::oauth {

namespace asio = boost::asio;
using Steady = std::chrono::steady_clock;

namespace {

std::string join(const std::vector<std::string>& scopes) {
    std::string out;
    for (const auto& s : scopes) {
        out.append(out.empty() ? "" : " ").append(s);
    }
    return out;
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
    std::optional<detail::ServerMetadata> server;
    Steady::time_point expires{};
    std::chrono::seconds lifetime{0};
    std::chrono::seconds backoff{1};
    bool failed = false;  // the last attempt failed: wait the back-off
    // A rotated refresh token the file could not take (used on the fetch
    // strand only, like the file).
    std::optional<StoredGrant> unsaved;

    using Done = std::function<void(Status)>;

    void took(const detail::TokenResponse& got) {
        const std::lock_guard lock(mutex);
        token = got.access_token;
        lifetime = got.expires_in;
        expires = Steady::now() + lifetime;
        backoff = std::chrono::seconds{1};
        failed = false;
    }

    [[nodiscard]] std::string issuer_locked() const {
        const std::lock_guard lock(mutex);
        return server ? server->issuer : std::string{};
    }

    [[nodiscard]] detail::TokenClient client() const {
        return {credentials.client_id, credentials.client_secret};
    }

    // RFC 6749 section 4.4.2, with the resource (RFC 8707 section 2).
    void client_credentials(const asio::any_io_executor& ex, const detail::ServerMetadata& at,
                            Done done) {
        std::vector<std::pair<std::string, std::string>> form{{"grant_type", "client_credentials"},
                                                              {"resource", at.resource}};
        if (!credentials.scopes.empty()) {
            form.emplace_back("scope", join(credentials.scopes));
        }
        detail::request_token(
            ex, at.token_endpoint, credentials.tls, credentials.timeout, client(), form,
            [self = shared_from_this(), done = std::move(done)](Result<detail::TokenResponse> got) {
                if (!got) {
                    done(tl::unexpected(got.error()));
                    return;
                }
                self->took(*got);
                done({});
            });
    }

    // RFC 6749 section 6, with the resource: the enrolled refresh token,
    // read under the file's lock (another gateway sharing it may have
    // rotated it), and the new one written back before the lock goes.
    void refresh_grant(const asio::any_io_executor& ex, const detail::ServerMetadata& at, Done done,
                       int attempt = 0) {
        const TokenFile& file = *credentials.enrolled;
        auto lock = file.try_lock();
        if (!lock) {
            // Busy: another process is refreshing; try again shortly (about 5 s at most).
            if (attempt >= 100) {
                done(tl::unexpected(lock.error()));
                return;
            }
            auto timer = std::make_shared<asio::steady_timer>(ex, std::chrono::milliseconds{50});
            timer->async_wait([self = shared_from_this(), ex, at, done = std::move(done), attempt,
                               timer](const boost::system::error_code&) mutable {
                self->refresh_grant(ex, at, std::move(done), attempt + 1);
            });
            return;
        }
        auto stored = file.read();
        if (!stored) {
            done(tl::unexpected(stored.error()));
            return;
        }
        // A rotated token that could not be written last time: the one the
        // file holds is spent; write it now, and use it in any case.
        if (unsaved && unsaved->resource == stored->resource && unsaved->issuer == stored->issuer &&
            unsaved->client_id == stored->client_id) {
            stored = *unsaved;
            if (file.write(*unsaved)) {
                unsaved.reset();
            }
        }
        if (stored->issuer != at.issuer || stored->resource != at.resource ||
            stored->client_id != credentials.client_id) {
            done(fail(Errc::not_enrolled, file.path().string() + " was enrolled for " +
                                              stored->resource + " with " + stored->issuer +
                                              " as " + stored->client_id +
                                              ": run pqmcp auth login again"));
            return;
        }
        std::vector<std::pair<std::string, std::string>> form{
            {"grant_type", "refresh_token"},
            {"refresh_token", stored->refresh_token},
            {"resource", at.resource}};
        auto held = std::make_shared<TokenFile::Lock>(std::move(*lock));
        detail::request_token(
            ex, at.token_endpoint, credentials.tls, credentials.timeout, client(), form,
            [self = shared_from_this(), held, grant = std::move(*stored),
             done = std::move(done)](Result<detail::TokenResponse> got) mutable {
                if (!got) {
                    done(tl::unexpected(got.error()));
                    return;
                }
                // OAuth 2.1 section 4.3.1: a public client's refresh token is
                // rotated; the old one is then spent.
                if (!got->refresh_token.empty() && got->refresh_token != grant.refresh_token) {
                    grant.refresh_token = got->refresh_token;
                    if (const Status saved = self->credentials.enrolled->write(grant); !saved) {
                        // Kept here and written at the next refresh: the old
                        // one in the file is spent.
                        spdlog::error(
                            "oauth: the rotated refresh token for {} is only in "
                            "memory: {}",
                            self->credentials.resource, saved.error().detail);
                        self->unsaved = grant;
                    } else {
                        self->unsaved.reset();
                    }
                }
                held.reset();
                self->took(*got);
                done({});
            });
    }

    void fetch(const asio::any_io_executor& ex, Done done) {
        std::optional<detail::ServerMetadata> known;
        {
            const std::lock_guard lock(mutex);
            known = server;
        }
        auto with = [self = shared_from_this(), ex](const detail::ServerMetadata& at, Done d) {
            if (self->credentials.enrolled) {
                self->refresh_grant(ex, at, std::move(d));
            } else {
                self->client_credentials(ex, at, std::move(d));
            }
        };
        if (known) {
            with(*known, std::move(done));
            return;
        }
        detail::Discovery what{credentials.resource, credentials.issuer, credentials.resource_tls,
                               credentials.tls, credentials.timeout};
        detail::discover(ex, std::move(what),
                         [self = shared_from_this(), with,
                          done = std::move(done)](Result<detail::ServerMetadata> found) mutable {
                             if (!found) {
                                 done(tl::unexpected(found.error()));
                                 return;
                             }
                             {
                                 const std::lock_guard lock(self->mutex);
                                 self->server = *found;
                             }
                             with(*found, std::move(done));
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
            bool had_token = false;
            {
                const std::lock_guard lock(self->mutex);
                had_token = !self->token.empty();
            }
            self->fetch(self->executor, [self, had_token](Status got) {
                if (got && !had_token) {
                    spdlog::info("oauth: a token for {} from {}", self->credentials.resource,
                                 self->issuer_locked());
                }
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

Result<ResourceMetadata> read_resource_metadata(const std::string& resource, SSL_CTX* tls,
                                                std::chrono::milliseconds timeout) {
    asio::io_context io(1);
    std::optional<Result<ResourceMetadata>> result;
    // Only the resource's own document: the authorization server is not asked.
    const std::string url = detail::resource_metadata_url(resource);
    detail::get_json(io.get_executor(), url, tls, timeout,
                     [&result, &url, &resource](Result<std::string> body) {
                         if (body) {
                             result = detail::parse_resource_metadata(*body, url, resource);
                         } else {
                             result = fail(Errc::discovery_failed, body.error().detail);
                         }
                     });
    io.run_for(timeout * 2);
    if (!result) {
        return fail(Errc::discovery_failed, url + ": no answer in time");
    }
    return std::move(*result);
}

TokenSource::TokenSource(asio::any_io_executor executor, ClientCredentials credentials)
    : impl_(std::make_shared<Impl>(std::move(executor), std::move(credentials))) {}

TokenSource::~TokenSource() {
    impl_->refresh.cancel();
}

Status TokenSource::fetch_now() {
    asio::io_context io(1);
    std::optional<Status> result;
    impl_->fetch(io.get_executor(), [&result](Status s) { result = std::move(s); });
    // Each exchange is bounded by the timeout (discovery takes up to three,
    // the lock up to 5 s): stopping before the last one ends could lose a
    // rotated refresh token the server has already issued.
    const auto bound = impl_->credentials.timeout * 5 + std::chrono::seconds{10};
    io.run_for(bound);
    if (!result) {
        return fail(
            Errc::discovery_failed,
            "no token within " +
                std::to_string(std::chrono::duration_cast<std::chrono::seconds>(bound).count()) +
                " s");
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
    return impl_->issuer_locked();
}

}  // namespace pqmcp::oauth
