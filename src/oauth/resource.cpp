#include "pqmcp/oauth/resource.hpp"

#include <cjose/cjose.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <cstdlib>
#include <map>
#include <mutex>
#include <optional>
#include <unordered_map>
#include <utility>

#include <spdlog/spdlog.h>
#include <boost/asio/post.hpp>
#include <boost/json.hpp>
#include <boost/url/url.hpp>

#include "fetch.hpp"
#include "pqmcp/core/bytes.hpp"
#include "pqmcp/crypto/util.hpp"

namespace pqmcp::oauth {

namespace json = boost::json;
namespace asio = boost::asio;
using SysClock = std::chrono::system_clock;
using Steady = std::chrono::steady_clock;

namespace {

class OauthCategory final : public std::error_category {
  public:
    [[nodiscard]] const char* name() const noexcept override { return "oauth"; }
    [[nodiscard]] std::string message(int code) const override {
        switch (static_cast<Errc>(code)) {
            case Errc::no_token:
                return "no bearer token";
            case Errc::invalid_token:
                return "invalid token";
            case Errc::insufficient_scope:
                return "insufficient scope";
            case Errc::unknown_key:
                return "token signed with an unknown key";
            case Errc::discovery_failed:
                return "authorization server metadata unavailable";
            case Errc::jwks_failed:
                return "authorization server keys unavailable";
            case Errc::introspection_failed:
                return "token introspection unavailable";
            case Errc::invalid_options:
                return "invalid OAuth options";
            case Errc::grant_refused:
                return "the authorization server refused the grant";
            case Errc::login_failed:
                return "the authorization did not complete";
            case Errc::not_enrolled:
                return "no enrolled refresh token";
            case Errc::store_failed:
                return "the stored token cannot be used";
        }
        return "unknown oauth error";
    }
};

struct JwkDeleter {
    void operator()(cjose_jwk_t* k) const noexcept { cjose_jwk_release(k); }
};
struct JwsDeleter {
    void operator()(cjose_jws_t* j) const noexcept { cjose_jws_release(j); }
};
using JwkPtr = std::unique_ptr<cjose_jwk_t, JwkDeleter>;
using JwsPtr = std::unique_ptr<cjose_jws_t, JwsDeleter>;

struct Key {
    std::string kid;
    std::string kty;  // "RSA", "EC"
    std::string alg;  // "" when the key does not say
    JwkPtr jwk;
};

struct KeySet {
    std::vector<Key> keys;
};

// RFC 9068 section 2.1 and 4: asymmetric signatures only ("none" and the
// HMAC algorithms never: a public key must not become a shared secret).
std::optional<std::string_view> key_type_for(std::string_view alg) {
    static const std::map<std::string_view, std::string_view> types{
        {"RS256", "RSA"}, {"RS384", "RSA"}, {"RS512", "RSA"}, {"PS256", "RSA"}, {"PS384", "RSA"},
        {"PS512", "RSA"}, {"ES256", "EC"},  {"ES384", "EC"},  {"ES512", "EC"}};
    const auto it = types.find(alg);
    if (it == types.end()) {
        return std::nullopt;
    }
    return it->second;
}

// RFC 6750 section 3: an auth-param value holds %x20-21 / %x23-5B / %x5D-7E
// only. Anything else (a quote, a backslash, CR or LF from a token's header)
// becomes '?': a token's text never shapes the response's headers.
std::string quote_param(std::string_view text) {
    std::string out = "\"";
    for (const char c : text) {
        const auto u = static_cast<unsigned char>(c);
        const bool allowed =
            u == 0x20 || u == 0x21 || (u >= 0x23 && u <= 0x5B) || (u >= 0x5D && u <= 0x7E);
        out += allowed ? c : '?';
    }
    return out + "\"";
}

// RFC 7515 section 7.1: three base64url parts without padding (RFC 7515
// section 2), dots between them. A part of 4k+1 characters is no encoding.
bool canonical_compact(std::string_view token) {
    std::size_t dots = 0;
    std::size_t part = 0;
    for (const char c : token) {
        if (c == '.') {
            if (part % 4 == 1) {
                return false;
            }
            ++dots;
            part = 0;
            continue;
        }
        if (std::isalnum(static_cast<unsigned char>(c)) == 0 && c != '-' && c != '_') {
            return false;
        }
        ++part;
    }
    return dots == 2 && part % 4 != 1;
}

// RFC 6750 section 2.1: b64token = 1*( ALPHA / DIGIT / "-" / "." / "_" /
// "~" / "+" / "/" ) *"=". Only such a token is sent to be introspected.
bool b64token(std::string_view token) {
    const auto end = token.find_last_not_of('=');
    if (end == std::string_view::npos) {
        return false;
    }
    return std::all_of(token.begin(), token.begin() + static_cast<std::ptrdiff_t>(end) + 1,
                       [](char c) {
                           return std::isalnum(static_cast<unsigned char>(c)) != 0 || c == '-' ||
                                  c == '.' || c == '_' || c == '~' || c == '+' || c == '/';
                       });
}

// The length of the third part once decoded.
std::size_t signature_bytes(std::string_view token) {
    const std::size_t chars = token.size() - token.rfind('.') - 1;
    return chars * 3 / 4;
}

std::vector<std::string> split_scopes(std::string_view text) {
    std::vector<std::string> out;
    std::size_t i = 0;
    while (i < text.size()) {
        const auto j = text.find(' ', i);
        const auto part = text.substr(i, j == std::string_view::npos ? j : j - i);
        if (!part.empty()) {
            out.emplace_back(part);
        }
        if (j == std::string_view::npos) {
            break;
        }
        i = j + 1;
    }
    return out;
}

// A token's claims as the policy matches them (claim:NAME=VALUE): every
// top-level string, integer or boolean, and each such element of an array,
// except the ones the gateway reads itself. At most 64 pairs, names of at
// most 64 bytes and values of at most 256; the rest is not kept.
std::vector<std::pair<std::string, std::string>> policy_claims(const json::object& claims) {
    static constexpr std::array<std::string_view, 9> k_read{
        "iss", "sub", "aud", "exp", "nbf", "iat", "jti", "client_id", "scope"};
    constexpr std::size_t k_max_pairs = 64;
    constexpr std::size_t k_max_name = 64;
    constexpr std::size_t k_max_value = 256;
    std::vector<std::pair<std::string, std::string>> out;
    const auto text = [](const json::value& v) -> std::optional<std::string> {
        if (v.is_string()) {
            return std::string(v.as_string());
        }
        if (v.is_bool()) {
            return v.as_bool() ? "true" : "false";
        }
        if (v.is_int64() || v.is_uint64()) {
            return json::serialize(v);
        }
        return std::nullopt;  // objects, null and fractions are not matched
    };
    const auto add = [&out](std::string_view name, std::optional<std::string> value) {
        if (value && value->size() <= k_max_value && out.size() < k_max_pairs) {
            out.emplace_back(std::string(name), std::move(*value));
        }
    };
    for (const auto& [name, value] : claims) {
        if (name.size() > k_max_name ||
            std::find(k_read.begin(), k_read.end(), std::string_view(name)) != k_read.end()) {
            continue;
        }
        if (value.is_array()) {
            for (const auto& element : value.as_array()) {
                add(name, text(element));
            }
        } else {
            add(name, text(value));
        }
    }
    return out;
}

std::string join(const std::vector<std::string>& parts) {
    std::string out;
    for (const auto& p : parts) {
        out += (out.empty() ? "" : " ") + p;
    }
    return out;
}

}  // namespace

const std::error_category& oauth_category() noexcept {
    static const OauthCategory category;
    return category;
}

struct ResourceServer::Impl : std::enable_shared_from_this<Impl> {
    Impl(asio::any_io_executor ex, ResourceOptions o)
        : executor(std::move(ex)), options(std::move(o)) {
        if (!options.now) {
            options.now = [] { return SysClock::now(); };
        }
        if (options.scopes_supported.empty()) {
            options.scopes_supported = options.required_scopes;
        }
    }

    asio::any_io_executor executor;
    ResourceOptions options;

    mutable std::mutex mutex;
    std::string resource;
    std::shared_ptr<const KeySet> keys;  // null until the first fetch
    std::string jwks_uri;                // from the options or the metadata
    bool fetching = false;
    // When an unknown key last made the keys be fetched (not counting the
    // first fetch and the periodic ones).
    std::optional<Steady::time_point> last_unknown_fetch;
    // A failed fetch is not tried again before this back-off (1 s, doubling
    // to 60 s): a failing server is not hammered by every request.
    std::optional<Steady::time_point> failed_at;
    std::chrono::seconds fetch_backoff{1};
    std::uint64_t generation = 0;  // counts key sets: a verification under an old one is not kept
    bool stopped = false;
    Steady::time_point fetched{};  // when keys were last replaced
    std::vector<std::function<void()>> waiters;
    // Tokens already verified, by their text: a client sends the same token
    // with every request until it expires, and the signature check is most
    // of the cost. Only expiry is checked again; the set is emptied when the
    // keys change (a key withdrawn ends its tokens at once).
    struct Verified {
        transport::TokenIdentity identity;
        std::int64_t exp = 0;
        std::optional<std::int64_t> nbf;
    };
    std::unordered_map<std::string, Verified> verified;
    static constexpr std::size_t k_max_verified = 4096;
    // RFC 7662: opaque tokens asked about, by their SHA-256 (a token's text
    // is not kept): the answer (an identity or why not) until `until`, or the
    // requests waiting for it. At most k_max_asking questions are out at
    // once: a flood of made-up tokens cannot make the gateway flood the
    // authorization server (503 beyond it).
    std::string introspection_endpoint;  // from the options or the metadata
    struct Asked {
        bool done = false;
        Result<transport::TokenIdentity> identity = fail(Errc::introspection_failed, "asking");
        std::int64_t exp = 0;
        std::optional<std::int64_t> nbf;
        Steady::time_point until{};
        std::vector<std::function<void()>> waiters;
    };
    std::unordered_map<std::string, Asked> asked;
    static constexpr std::size_t k_max_asked = 4096;
    static constexpr std::size_t k_max_asking = 64;
    std::size_t asking = 0;

    static std::string token_key(std::string_view token) {
        return to_hex(crypto::sha256(as_bytes(token)));
    }

    // ---- fetching (on the executor) ----------------------------------------

    // Starts a fetch unless one is under way or failed too recently.
    bool fetch_locked() {
        if (fetching) {
            return true;
        }
        if (stopped || (failed_at && Steady::now() - *failed_at < fetch_backoff)) {
            return false;
        }
        fetching = true;
        asio::post(executor, [self = shared_from_this()] { self->fetch_start(); });
        return true;
    }

    void fetch_start() {
        std::string uri;
        {
            const std::lock_guard lock(mutex);
            uri = jwks_uri;
        }
        if (!uri.empty()) {
            get(uri, [self = shared_from_this()](Result<std::string> body) {
                self->on_jwks(std::move(body));
            });
            return;
        }
        discover(detail::metadata_urls(options.issuer), 0);
    }

    void discover(std::vector<std::string> urls, std::size_t index) {
        if (index >= urls.size()) {
            finish(fail(Errc::discovery_failed, "no metadata for issuer " + options.issuer));
            return;
        }
        const std::string url = urls[index];
        get(url, [self = shared_from_this(), urls = std::move(urls), index,
                  url](Result<std::string> body) mutable {
            if (!body) {
                spdlog::debug("oauth: {}: {}", url, body.error().message());
                self->discover(std::move(urls), index + 1);
                return;
            }
            boost::system::error_code ec;
            const json::value doc = json::parse(*body, ec);
            if (ec || !doc.is_object()) {
                self->discover(std::move(urls), index + 1);
                return;
            }
            const auto& o = doc.as_object();
            // RFC 8414 section 3.3: "The "issuer" value returned MUST be
            // identical to the authorization server's issuer identifier value
            // into which the well-known URI string was inserted".
            const auto* iss = o.if_contains("issuer");
            if (iss == nullptr || !iss->is_string() || iss->as_string() != self->options.issuer) {
                self->finish(fail(Errc::discovery_failed,
                                  url + ": its issuer is not " + self->options.issuer));
                return;
            }
            const auto* jwks = o.if_contains("jwks_uri");
            if (jwks == nullptr || !jwks->is_string()) {
                self->finish(fail(Errc::discovery_failed, url + ": no jwks_uri"));
                return;
            }
            const std::string uri(jwks->as_string());
            {
                const std::lock_guard lock(self->mutex);
                self->jwks_uri = uri;
                const auto* endpoint = o.if_contains("introspection_endpoint");
                if (self->introspection_endpoint.empty() && endpoint != nullptr &&
                    endpoint->is_string()) {
                    self->introspection_endpoint = std::string(endpoint->as_string());
                }
            }
            self->get(uri, [self](Result<std::string> jwks_body) {
                self->on_jwks(std::move(jwks_body));
            });
        });
    }

    void get(const std::string& url, std::function<void(Result<std::string>)> done) {
        detail::get_json(executor, url, options.tls, options.fetch_timeout, std::move(done));
    }

    void on_jwks(Result<std::string> body) {
        if (!body) {
            finish(tl::unexpected(body.error()));
            return;
        }
        auto set = parse_keys(*body);
        if (!set) {
            finish(tl::unexpected(set.error()));
            return;
        }
        {
            const std::lock_guard lock(mutex);
            keys = std::move(*set);
            ++generation;
            verified.clear();
            fetched = Steady::now();
        }
        finish({});
    }

    static Result<std::shared_ptr<const KeySet>> parse_keys(std::string_view body) {
        boost::system::error_code ec;
        const json::value doc = json::parse(body, ec);
        if (ec || !doc.is_object() || !doc.as_object().contains("keys") ||
            !doc.at("keys").is_array()) {
            return fail(Errc::jwks_failed, "the JWKS is not a JSON object with \"keys\"");
        }
        auto set = std::make_shared<KeySet>();
        for (const auto& k : doc.at("keys").as_array()) {
            if (!k.is_object()) {
                continue;
            }
            const auto& o = k.as_object();
            const auto str = [&o](const char* name) {
                const auto* v = o.if_contains(name);
                return v != nullptr && v->is_string() ? std::string(v->as_string()) : std::string{};
            };
            // Keys for other uses (encryption) are not signing keys.
            if (const std::string use = str("use"); !use.empty() && use != "sig") {
                continue;
            }
            const std::string serialized = json::serialize(o);
            cjose_err err{};
            JwkPtr jwk(cjose_jwk_import(serialized.c_str(), serialized.size(), &err));
            if (!jwk) {
                spdlog::warn("oauth: a key of the JWKS is not usable: {}",
                             err.message != nullptr ? err.message : "?");
                continue;
            }
            set->keys.push_back(Key{str("kid"), str("kty"), str("alg"), std::move(jwk)});
        }
        if (set->keys.empty()) {
            return fail(Errc::jwks_failed, "the JWKS has no usable signing key");
        }
        return std::shared_ptr<const KeySet>(std::move(set));
    }

    void finish(Status status) {
        if (!status) {
            spdlog::warn("oauth: {}", status.error().message());
        }
        std::vector<std::function<void()>> ready;
        {
            const std::lock_guard lock(mutex);
            fetching = false;
            if (status) {
                failed_at.reset();
                fetch_backoff = std::chrono::seconds{1};
            } else {
                if (failed_at) {
                    fetch_backoff = std::min(fetch_backoff * 2, std::chrono::seconds{60});
                }
                failed_at = Steady::now();
            }
            ready.swap(waiters);
        }
        for (auto& r : ready) {
            r();
        }
    }

    // ---- checking (any thread) -------------------------------------------

    // RFC 6750 section 2.1: "Authorization: Bearer <token>"; the scheme is
    // case-insensitive (RFC 9110 section 11.1). nullopt: no bearer token.
    static std::optional<std::string_view> bearer(std::string_view authorization) {
        constexpr std::string_view scheme = "bearer ";
        if (authorization.size() <= scheme.size() ||
            !std::equal(scheme.begin(), scheme.end(), authorization.begin(), [](char a, char b) {
                return a == std::tolower(static_cast<unsigned char>(b));
            })) {
            return std::nullopt;
        }
        std::string_view token = authorization.substr(scheme.size());
        while (!token.empty() && token.front() == ' ') {
            token.remove_prefix(1);
        }
        return token;
    }

    Check check(std::string_view authorization) {
        const auto given = bearer(authorization);
        if (!given) {
            return {fail(Errc::no_token, "no bearer token"), false};
        }
        const std::string_view token = *given;
        if (token.empty() || token.size() > options.max_token_bytes) {
            return {fail(Errc::invalid_token, "the token is empty or too long"), false};
        }
        if (!canonical_compact(token)) {
            if (!options.introspection.client_id.empty() && b64token(token)) {
                return introspect(std::string(token));
            }
            return {fail(Errc::invalid_token, "not a signed JWT"), false};
        }
        const std::string text(token);
        {
            const std::lock_guard lock(mutex);
            if (const auto it = verified.find(text); it != verified.end()) {
                if (auto time = times_check(it->second.exp, it->second.nbf); !time) {
                    verified.erase(it);
                    return {tl::unexpected(time.error()), false};
                }
                return {it->second.identity, false};
            }
        }
        cjose_err err{};
        JwsPtr jws(cjose_jws_import(token.data(), token.size(), &err));
        if (!jws) {
            return {fail(Errc::invalid_token, "not a signed JWT"), false};
        }
        cjose_header_t* header = cjose_jws_get_protected(jws.get());
        const auto header_str = [header](const char* name) {
            cjose_err e{};
            const char* v = cjose_header_get(header, name, &e);
            return v != nullptr ? std::string(v) : std::string{};
        };
        const std::string alg = header_str("alg");
        const auto kty = key_type_for(alg);
        if (!kty) {
            return {fail(Errc::invalid_token, "signature algorithm \"" + alg + "\" not accepted"),
                    false};
        }
        // RFC 9068 section 4: "Resource servers receiving a JWT access token
        // MUST validate it ... verify that the "typ" header value is "at+jwt"
        // or "application/at+jwt" and reject tokens carrying any other value."
        std::string typ = header_str("typ");
        std::transform(typ.begin(), typ.end(), typ.begin(),
                       [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
        if (typ != "at+jwt" && typ != "application/at+jwt") {
            return {fail(Errc::invalid_token, "not a JWT access token (typ \"" + typ + "\")"),
                    false};
        }
        // RFC 7515 section 4.1.11: "If any of the listed extension Header
        // Parameters are not understood and supported by the recipient, then
        // the JWS is invalid." This resource server understands none.
        {
            cjose_err e{};
            if (char* crit = cjose_header_get_raw(header, "crit", &e); crit != nullptr) {
                cjose_get_dealloc()(crit);
                return {fail(Errc::invalid_token,
                             "the token names critical header parameters (crit) this gateway "
                             "does not understand"),
                        false};
            }
        }
        const std::string kid = header_str("kid");
        // RFC 7518 section 3.4: an ECDSA JWS signature is R and S, each as
        // long as the curve's order, concatenated (64, 96, 132 bytes). cjose
        // ignores bytes beyond them; a token with more is not that token.
        if (const auto bytes = signature_bytes(token);
            alg.starts_with("ES") && bytes != (alg == "ES256"   ? 64U
                                               : alg == "ES384" ? 96U
                                                                : 132U)) {
            return {fail(Errc::invalid_token, "the signature does not verify"), false};
        }

        std::shared_ptr<const KeySet> set;
        std::uint64_t set_generation = 0;
        {
            const std::lock_guard lock(mutex);
            set = keys;
            set_generation = generation;
            if (set && Steady::now() - fetched > options.max_age) {
                (void)fetch_locked();  // in the background; these keys still serve
            }
        }
        const Key* key = nullptr;
        if (set) {
            for (const auto& k : set->keys) {
                if (k.kty == *kty && (kid.empty() || k.kid == kid) &&
                    (k.alg.empty() || k.alg == alg)) {
                    key = &k;
                    break;
                }
            }
        }
        if (key == nullptr) {
            const std::lock_guard lock(mutex);
            if (fetching) {
                return {fail(Errc::unknown_key, "keys are being fetched"), true};
            }
            const auto now = Steady::now();
            if (!set || !last_unknown_fetch ||
                now - *last_unknown_fetch >= options.refetch_interval) {
                if (fetch_locked()) {
                    last_unknown_fetch = now;
                    return {fail(Errc::unknown_key, "keys are being fetched"), true};
                }
                if (!set) {
                    return {
                        fail(Errc::jwks_failed, "the authorization server's keys are unavailable"),
                        false};
                }
            }
            return {fail(Errc::unknown_key, "no key \"" + kid + "\" for " + alg +
                                                " in the authorization server's JWKS"),
                    false};
        }
        if (!cjose_jws_verify(jws.get(), key->jwk.get(), &err)) {
            return {fail(Errc::invalid_token, "the signature does not verify"), false};
        }
        std::uint8_t* plain = nullptr;
        std::size_t plain_len = 0;
        if (!cjose_jws_get_plaintext(jws.get(), &plain, &plain_len, &err)) {
            return {fail(Errc::invalid_token, "no payload"), false};
        }
        boost::system::error_code ec;
        const json::value claims =
            json::parse(std::string_view(reinterpret_cast<const char*>(plain), plain_len), ec);
        if (ec || !claims.is_object()) {
            return {fail(Errc::invalid_token, "the payload is not a JSON object"), false};
        }
        Verified entry;
        auto identity = claims_check(claims.as_object(), entry);
        if (identity) {
            entry.identity = *identity;
            const std::lock_guard lock(mutex);
            if (generation == set_generation) {
                if (verified.size() >= k_max_verified) {
                    verified.clear();
                }
                verified.emplace(text, std::move(entry));
            }
        }
        return {std::move(identity), false};
    }

    // ---- introspection (RFC 7662) ---------------------------------------

    // An opaque token: the remembered answer, or a question to the
    // authorization server (the request waits for it).
    Check introspect(const std::string& text) {
        const std::string key = token_key(text);
        const std::lock_guard lock(mutex);
        if (const auto it = asked.find(key); it != asked.end()) {
            Asked& a = it->second;
            if (!a.done) {
                return {fail(Errc::introspection_failed, "asking the authorization server"), true};
            }
            if (Steady::now() < a.until) {
                if (!a.identity) {
                    return {tl::unexpected(a.identity.error()), false};
                }
                if (auto time = times_check(a.exp, a.nbf); !time) {
                    return {tl::unexpected(time.error()), false};
                }
                return {a.identity, false};
            }
            asked.erase(it);
        }
        if (stopped) {
            return {fail(Errc::introspection_failed, "shutting down"), false};
        }
        if (introspection_endpoint.empty()) {
            // Not discovered yet: wait for the metadata, then ask again.
            if (!keys) {
                if (fetch_locked()) {
                    return {
                        fail(Errc::introspection_failed, "discovering the authorization server"),
                        true};
                }
                return {fail(Errc::introspection_failed,
                             "the authorization server's metadata is unavailable"),
                        false};
            }
            return {fail(Errc::introspection_failed,
                         "the authorization server's metadata names no introspection_endpoint"),
                    false};
        }
        if (asking >= k_max_asking) {
            return {
                fail(Errc::introspection_failed, "too many tokens are being asked about at once"),
                false};
        }
        if (asked.size() >= k_max_asked) {
            std::erase_if(asked, [](const auto& entry) { return entry.second.done; });
        }
        asked.emplace(key, Asked{});
        ++asking;
        asio::post(executor, [self = shared_from_this(), text, endpoint = introspection_endpoint] {
            self->ask(text, endpoint);
        });
        return {fail(Errc::introspection_failed, "asking the authorization server"), true};
    }

    // RFC 7662 section 2.1: a POST of the token, form-encoded, by an
    // authenticated client.
    void ask(const std::string& text, const std::string& endpoint) {
        boost::urls::url form;
        form.params().append({"token", text});
        form.params().append({"token_type_hint", "access_token"});
        transport::RestRequest req;
        req.method = "POST";
        req.body = std::string(form.encoded_query());
        req.content_type = "application/x-www-form-urlencoded";
        req.headers.emplace_back("Accept", "application/json");
        req.headers.emplace_back("Authorization",
                                 detail::basic_credentials(options.introspection.client_id,
                                                           options.introspection.client_secret));
        detail::exchange(
            executor, endpoint, options.tls, options.fetch_timeout, std::move(req),
            [self = shared_from_this(), text, endpoint](Result<transport::RestResponse> r) {
                self->answered(text, endpoint, std::move(r));
            });
    }

    void answered(const std::string& text, const std::string& endpoint,
                  Result<transport::RestResponse> r) {
        Asked answer;
        answer.done = true;
        const auto now = Steady::now();
        answer.until = now + options.introspection.cache;
        boost::system::error_code ec;
        const json::value doc = r ? json::parse(r->body, ec) : json::value();
        if (!r || r->status != 200 || ec || !doc.is_object()) {
            // Not an answer about the token: a short memory, so that a
            // failing server is not asked by every request.
            const std::string why =
                !r ? r.error().message()
                   : "HTTP " + std::to_string(r->status) + (ec ? " (not JSON)" : "");
            spdlog::warn("oauth: token introspection at {}: {}", endpoint, why);
            answer.identity = fail(Errc::introspection_failed, endpoint + ": " + why);
            answer.until = now + std::chrono::seconds{1};
        } else if (const auto* active = doc.as_object().if_contains("active");
                   active == nullptr || !active->is_bool() || !active->as_bool()) {
            // RFC 7662 section 2.2: "active" is REQUIRED; false for a token
            // that is expired, revoked, unknown or not for this client.
            answer.identity =
                fail(Errc::invalid_token, "the authorization server says the token is not active");
        } else {
            // RFC 7662 makes the other members optional. The answer comes
            // from the issuer itself; a token for no one in particular
            // (client credentials) is its client's (RFC 9068 section 2.2);
            // without exp it is used for the cache's time. The audience
            // (RFC 8707), the scopes and the times are checked as for a JWT.
            json::object claims = doc.as_object();
            if (!claims.contains("iss")) {
                claims["iss"] = options.issuer;
            }
            if (const auto* client = claims.if_contains("client_id");
                !claims.contains("sub") && client != nullptr && client->is_string()) {
                // A copy first: inserting may move the members `client` points into.
                json::value subject = *client;
                claims["sub"] = std::move(subject);
            }
            if (!claims.contains("exp")) {
                claims["exp"] =
                    std::chrono::duration_cast<std::chrono::seconds>(
                        (options.now() + options.introspection.cache).time_since_epoch())
                        .count();
            }
            Verified times;
            answer.identity = claims_check(claims, times);
            answer.exp = times.exp;
            answer.nbf = times.nbf;
        }
        std::vector<std::function<void()>> ready;
        {
            const std::lock_guard lock(mutex);
            --asking;
            Asked& entry = asked[token_key(text)];
            ready.swap(entry.waiters);
            entry = std::move(answer);
        }
        for (auto& f : ready) {
            f();
        }
    }

    // Where a request that was told to wait waits: for the answer about its
    // token, or for the keys. False: nothing to wait for, ask again now.
    bool wait_for(std::string_view authorization, std::function<void()>& ready) {
        const std::lock_guard lock(mutex);
        if (stopped) {
            ready = nullptr;  // shutting down: dropped with its connection
            return true;
        }
        if (const auto token = bearer(authorization)) {
            if (const auto it = asked.find(token_key(*token));
                it != asked.end() && !it->second.done) {
                it->second.waiters.push_back(std::move(ready));
                return true;
            }
        }
        if (fetching) {
            waiters.push_back(std::move(ready));
            return true;
        }
        return false;
    }

    // RFC 9068 section 4: "The current time MUST be before the time
    // represented by the "exp" claim."
    Status times_check(std::int64_t exp, std::optional<std::int64_t> nbf) const {
        const auto now =
            std::chrono::duration_cast<std::chrono::seconds>(options.now().time_since_epoch())
                .count();
        const auto leeway = options.leeway.count();
        if (now >= exp + leeway) {
            return fail(Errc::invalid_token, "expired");
        }
        if (nbf && now + leeway < *nbf) {
            return fail(Errc::invalid_token, "not valid yet");
        }
        return {};
    }

    Result<transport::TokenIdentity> claims_check(const json::object& c, Verified& times) const {
        const auto str = [&c](const char* name) -> std::optional<std::string> {
            const auto* v = c.if_contains(name);
            if (v == nullptr || !v->is_string()) {
                return std::nullopt;
            }
            return std::string(v->as_string());
        };
        const auto number = [&c](const char* name) -> std::optional<std::int64_t> {
            const auto* v = c.if_contains(name);
            if (v == nullptr || !v->is_number()) {
                return std::nullopt;
            }
            boost::system::error_code e;
            const auto n = v->to_number<std::int64_t>(e);
            return e ? std::nullopt : std::optional<std::int64_t>(n);
        };
        // RFC 9068 section 4: "The issuer identifier for the authorization
        // server ... MUST exactly match the value of the "iss" claim."
        if (str("iss") != options.issuer) {
            return fail(Errc::invalid_token,
                        "issued by " + str("iss").value_or("nobody") + ", not " + options.issuer);
        }
        // MCP authorization, token handling: "MCP servers MUST validate that
        // access tokens were issued specifically for them as the intended
        // audience, according to RFC 8707 Section 2."
        std::string own;
        {
            const std::lock_guard lock(mutex);
            own = resource;
        }
        bool for_us = false;
        if (const auto* aud = c.if_contains("aud")) {
            if (aud->is_string()) {
                for_us = aud->as_string() == own;
            } else if (aud->is_array()) {
                for (const auto& a : aud->as_array()) {
                    for_us = for_us || (a.is_string() && a.as_string() == own);
                }
            }
        }
        if (!for_us || own.empty()) {
            return fail(Errc::invalid_token, "not issued for " + own);
        }
        const auto exp = number("exp");
        if (!exp) {
            return fail(Errc::invalid_token, "no exp claim");
        }
        times.exp = *exp;
        times.nbf = number("nbf");
        if (auto time = times_check(times.exp, times.nbf); !time) {
            return tl::unexpected(time.error());
        }
        transport::TokenIdentity id;
        id.issuer = options.issuer;
        id.subject = str("sub").value_or("");
        id.client_id = str("client_id").value_or(str("azp").value_or(""));
        if (id.subject.empty()) {
            return fail(Errc::invalid_token, "no sub claim");
        }
        id.scopes = split_scopes(str("scope").value_or(""));
        id.claims = policy_claims(c);
        std::vector<std::string> missing;
        for (const auto& s : options.required_scopes) {
            if (std::find(id.scopes.begin(), id.scopes.end(), s) == id.scopes.end()) {
                missing.push_back(s);
            }
        }
        if (!missing.empty()) {
            return fail(Errc::insufficient_scope, join(options.required_scopes));
        }
        return id;
    }

    // ---- answers ---------------------------------------------------------

    [[nodiscard]] std::string metadata_url_locked() const {
        return detail::resource_metadata_url(resource);
    }

    transport::AuthDecision refuse(unsigned status, std::string_view error,
                                   const std::string& description) const {
        std::string url;
        {
            const std::lock_guard lock(mutex);
            url = metadata_url_locked();
        }
        transport::AuthDecision d;
        d.status = status;
        // MCP authorization: "MCP servers MUST use the HTTP header
        // WWW-Authenticate when returning a 401 Unauthorized to indicate the
        // location of the resource server metadata URL".
        std::string challenge = "Bearer resource_metadata=" + quote_param(url);
        const std::string scope = join(options.required_scopes);
        if (!scope.empty()) {
            challenge += ", scope=" + quote_param(scope);
        }
        if (!error.empty()) {
            challenge +=
                ", error=" + quote_param(error) + ", error_description=" + quote_param(description);
        }
        d.headers.emplace_back("WWW-Authenticate", std::move(challenge));
        json::object body;
        body["error"] = error.empty() ? "invalid_request" : error;
        body["error_description"] = description;
        d.body = json::serialize(body);
        return d;
    }
};

ResourceServer::ResourceServer(asio::any_io_executor executor, ResourceOptions options)
    : impl_(std::make_shared<Impl>(std::move(executor), std::move(options))) {
    impl_->resource = impl_->options.resource;
    impl_->jwks_uri = impl_->options.jwks_uri;
    impl_->introspection_endpoint = impl_->options.introspection.endpoint;
}

ResourceServer::~ResourceServer() = default;

Status ResourceServer::validate(const ResourceOptions& options) {
    const auto issuer = transport::parse_url(options.issuer);
    if (options.issuer.empty() || !issuer) {
        return fail(Errc::invalid_options, "oauth.issuer must be the authorization server's URL");
    }
    if (!issuer->tls && !transport::is_loopback_host(issuer->host)) {
        return fail(Errc::invalid_options, "oauth.issuer must be https (http only on loopback)");
    }
    if (!options.jwks_uri.empty()) {
        const auto jwks = transport::parse_url(options.jwks_uri);
        if (!jwks || (!jwks->tls && !transport::is_loopback_host(jwks->host))) {
            return fail(Errc::invalid_options, "oauth.jwks_uri must be an https URL");
        }
    }
    if (const auto& in = options.introspection; !in.client_id.empty()) {
        if (in.client_secret.empty()) {
            return fail(Errc::invalid_options, "oauth.introspection needs the client's secret");
        }
        if (!in.endpoint.empty()) {
            const auto url = transport::parse_url(in.endpoint);
            if (!url || (!url->tls && !transport::is_loopback_host(url->host))) {
                return fail(Errc::invalid_options,
                            "oauth.introspection.endpoint must be an https URL");
            }
        } else if (!options.jwks_uri.empty()) {
            return fail(Errc::invalid_options,
                        "oauth.introspection.endpoint is needed with oauth.jwks_uri (the "
                        "metadata that would name it is not read)");
        }
        if (in.cache.count() < 1 || in.cache.count() > 3600) {
            return fail(Errc::invalid_options, "oauth.introspection.cache: from 1s to 1h");
        }
    }
    if (!options.resource.empty() && !transport::parse_url(options.resource)) {
        return fail(Errc::invalid_options, "oauth.resource must be an absolute URL");
    }
    return {};
}

void ResourceServer::set_resource(const std::string& resource) {
    const std::lock_guard lock(impl_->mutex);
    if (impl_->resource.empty()) {
        impl_->resource = resource;
    }
}

std::string ResourceServer::resource() const {
    const std::lock_guard lock(impl_->mutex);
    return impl_->resource;
}

void ResourceServer::start() {
    const std::lock_guard lock(impl_->mutex);
    (void)impl_->fetch_locked();
}

void ResourceServer::stop() {
    std::vector<std::function<void()>> dropped;
    {
        const std::lock_guard lock(impl_->mutex);
        impl_->stopped = true;
        dropped.swap(impl_->waiters);
        for (auto& [token, a] : impl_->asked) {
            for (auto& w : a.waiters) {
                dropped.push_back(std::move(w));
            }
            a.waiters.clear();
        }
    }
}

Status ResourceServer::use_keys(std::string_view jwks) {
    auto set = Impl::parse_keys(jwks);
    if (!set) {
        return fail(Errc::invalid_options, set.error().detail);
    }
    const std::lock_guard lock(impl_->mutex);
    impl_->keys = std::move(*set);
    ++impl_->generation;
    impl_->verified.clear();
    impl_->fetched = Steady::now();
    return {};
}

Check ResourceServer::check(std::string_view authorization) {
    return impl_->check(authorization);
}

transport::AuthDecision ResourceServer::decide(std::string_view authorization) {
    auto checked = impl_->check(authorization);
    if (checked.wait) {
        transport::AuthDecision d;
        std::weak_ptr<Impl> weak = impl_;
        d.wait = [weak, authorization = std::string(authorization)](std::function<void()> ready) {
            if (auto impl = weak.lock(); impl && impl->wait_for(authorization, ready)) {
                return;
            }
            ready();
        };
        return d;
    }
    if (checked.identity) {
        transport::AuthDecision d;
        d.token = std::move(*checked.identity);
        return d;
    }
    const Error& e = checked.identity.error();
    const auto code = static_cast<Errc>(e.code.value());
    if (code == Errc::no_token) {
        // RFC 6750 section 3.1: a request without authentication information
        // gets a challenge without an error code.
        return impl_->refuse(401, "", "a bearer token is required");
    }
    if (code == Errc::jwks_failed || code == Errc::introspection_failed) {
        transport::AuthDecision d;
        d.status = 503;
        d.headers.emplace_back("Retry-After", "5");
        json::object body{{"error", "temporarily_unavailable"},
                          {"error_description", code == Errc::jwks_failed
                                                    ? "the authorization server's keys could not "
                                                      "be fetched"
                                                    : "the authorization server could not be "
                                                      "asked about the token"}};
        d.body = json::serialize(body);
        return d;
    }
    if (code == Errc::insufficient_scope) {
        // RFC 6750 section 3.1 and MCP authorization (scope challenge): 403
        // with the scopes needed.
        return impl_->refuse(403, "insufficient_scope", "the token lacks a required scope");
    }
    return impl_->refuse(401, "invalid_token", e.detail);
}

transport::AuthDecision ResourceServer::challenge() const {
    return impl_->refuse(401, "", "a bearer token is required");
}

std::string ResourceServer::metadata() const {
    std::string resource;
    {
        const std::lock_guard lock(impl_->mutex);
        resource = impl_->resource;
    }
    json::array scopes;
    for (const auto& s : impl_->options.scopes_supported) {
        scopes.emplace_back(s);
    }
    json::object doc{{"resource", resource},
                     {"authorization_servers", json::array{json::value(impl_->options.issuer)}},
                     {"bearer_methods_supported", json::array{"header"}},
                     {"resource_name", "pqmcp gateway"}};
    if (!scopes.empty()) {
        doc["scopes_supported"] = std::move(scopes);
    }
    return json::serialize(doc);
}

bool ResourceServer::is_metadata_path(std::string_view path) const {
    constexpr std::string_view base = "/.well-known/oauth-protected-resource";
    if (path == base) {
        return true;
    }
    const std::lock_guard lock(impl_->mutex);
    const auto parsed = transport::parse_url(impl_->resource);
    return parsed && path.starts_with(base) && path.substr(base.size()) == parsed->target;
}

std::string ResourceServer::metadata_url() const {
    const std::lock_guard lock(impl_->mutex);
    return impl_->metadata_url_locked();
}

}  // namespace pqmcp::oauth
