#include <gtest/gtest.h>

#include <cjose/cjose.h>

#include <cstdlib>
#include <memory>
#include <string>

#include <boost/asio/io_context.hpp>
#include <boost/json.hpp>

#include "pqmcp/oauth/resource.hpp"

namespace pqmcp::oauth {
namespace {

namespace json = boost::json;

constexpr const char* k_issuer = "https://as.example";
constexpr const char* k_resource = "https://gw.example:8443/mcp";
constexpr std::int64_t k_now = 1'800'000'000;

struct Jwk {
    cjose_jwk_t* key = nullptr;
    explicit Jwk(cjose_jwk_t* k) : key(k) {}
    ~Jwk() { cjose_jwk_release(key); }
    Jwk(const Jwk&) = delete;
    Jwk& operator=(const Jwk&) = delete;
    Jwk(Jwk&&) = delete;
    Jwk& operator=(Jwk&&) = delete;
};

std::unique_ptr<Jwk> ec_key(const char* kid) {
    cjose_err err{};
    auto jwk = std::make_unique<Jwk>(cjose_jwk_create_EC_random(CJOSE_JWK_EC_P_256, &err));
    EXPECT_NE(jwk->key, nullptr);
    EXPECT_TRUE(cjose_jwk_set_kid(jwk->key, kid, std::strlen(kid), &err));
    return jwk;
}

std::string jwks_of(std::initializer_list<const Jwk*> keys) {
    json::array out;
    for (const auto* k : keys) {
        cjose_err err{};
        char* text = cjose_jwk_to_json(k->key, false, &err);
        out.push_back(json::parse(text));
        std::free(text);  // NOLINT(cppcoreguidelines-no-malloc): cjose's allocation
    }
    return json::serialize(json::object{{"keys", out}});
}

std::string sign(const Jwk& key, const json::object& claims, const char* alg = "ES256",
                 const char* typ = "at+jwt", const char* kid = nullptr,
                 const char* crit = nullptr) {
    cjose_err err{};
    cjose_header_t* header = cjose_header_new(&err);
    cjose_header_set(header, "alg", alg, &err);
    if (crit != nullptr) {
        cjose_header_set_raw(header, "crit", crit, &err);
        cjose_header_set(header, "exp", "1", &err);
    }
    if (typ != nullptr) {
        cjose_header_set(header, "typ", typ, &err);
    }
    const char* own_kid = cjose_jwk_get_kid(key.key, &err);
    cjose_header_set(header, "kid", kid != nullptr ? kid : own_kid, &err);
    const std::string payload = json::serialize(claims);
    cjose_jws_t* jws =
        cjose_jws_sign(key.key, header, reinterpret_cast<const std::uint8_t*>(payload.data()),
                       payload.size(), &err);
    const char* compact = nullptr;
    EXPECT_TRUE(jws != nullptr && cjose_jws_export(jws, &compact, &err));
    std::string out = compact != nullptr ? compact : "";
    cjose_jws_release(jws);
    cjose_header_release(header);
    return out;
}

json::object claims() {
    return {{"iss", k_issuer},      {"aud", k_resource}, {"sub", "alice"},   {"client_id", "app"},
            {"scope", "mcp tools"}, {"exp", k_now + 60}, {"iat", k_now - 1}, {"jti", "1"}};
}

class Resource : public ::testing::Test {
  protected:
    boost::asio::io_context io_;
    std::shared_ptr<std::int64_t> clock_ = std::make_shared<std::int64_t>(k_now);
    std::unique_ptr<Jwk> key_ = ec_key("k1");
    std::unique_ptr<ResourceServer> server_ = make({"mcp"});

    std::unique_ptr<ResourceServer> make(std::vector<std::string> scopes) {
        ResourceOptions o;
        o.issuer = k_issuer;
        o.jwks_uri = "https://as.example/jwks";  // never fetched: keys are given
        o.resource = k_resource;
        o.required_scopes = std::move(scopes);
        o.leeway = std::chrono::seconds{10};
        o.now = [clock = clock_] {
            return std::chrono::system_clock::time_point(std::chrono::seconds{*clock});
        };
        auto s = std::make_unique<ResourceServer>(io_.get_executor(), o);
        EXPECT_TRUE(s->use_keys(jwks_of({key_.get()})).has_value());
        return s;
    }

    Check check(const std::string& token) { return server_->check("Bearer " + token); }
    std::string refused(const std::string& token) {
        auto c = check(token);
        EXPECT_FALSE(c.wait);
        return c.identity ? "accepted" : c.identity.error().detail;
    }
};

TEST_F(Resource, AValidTokenNamesItsCaller) {
    auto c = check(sign(*key_, claims()));
    ASSERT_TRUE(c.identity.has_value()) << c.identity.error().message();
    EXPECT_EQ(c.identity->subject, "alice");
    EXPECT_EQ(c.identity->client_id, "app");
    EXPECT_EQ(c.identity->issuer, k_issuer);
    EXPECT_EQ(c.identity->scopes, (std::vector<std::string>{"mcp", "tools"}));
    // The scheme is case-insensitive; the audience may be one of several.
    auto many = claims();
    many["aud"] = json::array{"https://other.example", k_resource};
    EXPECT_TRUE(server_->check("bearer " + sign(*key_, many)).identity.has_value());
}

TEST_F(Resource, EachClaimIsChecked) {
    auto c = claims();
    c["iss"] = "https://evil.example";
    EXPECT_EQ(refused(sign(*key_, c)), "issued by https://evil.example, not https://as.example");
    c = claims();
    c["aud"] = "https://gw.example:8443/other";
    EXPECT_EQ(refused(sign(*key_, c)), "not issued for https://gw.example:8443/mcp");
    c = claims();
    c.erase("aud");
    EXPECT_EQ(refused(sign(*key_, c)), "not issued for https://gw.example:8443/mcp");
    c = claims();
    c["exp"] = k_now - 10;  // exactly at the end of the leeway
    EXPECT_EQ(refused(sign(*key_, c)), "expired");
    c["exp"] = k_now - 9;
    EXPECT_EQ(refused(sign(*key_, c)), "accepted");
    c = claims();
    c.erase("exp");
    EXPECT_EQ(refused(sign(*key_, c)), "no exp claim");
    c = claims();
    c["nbf"] = k_now + 11;
    EXPECT_EQ(refused(sign(*key_, c)), "not valid yet");
    c = claims();
    c.erase("sub");
    EXPECT_EQ(refused(sign(*key_, c)), "no sub claim");
}

// A verified token is remembered (the signature is most of the cost), but
// its expiry is checked every time, and new keys forget it.
TEST_F(Resource, AVerifiedTokenIsRememberedUntilItExpires) {
    const std::string token = sign(*key_, claims());
    ASSERT_EQ(refused(token), "accepted");
    ASSERT_EQ(refused(token), "accepted");
    *clock_ = k_now + 60 + 10;
    EXPECT_EQ(refused(token), "expired");
    *clock_ = k_now;
    EXPECT_EQ(refused(token), "accepted");
    auto other = ec_key("k9");
    ASSERT_TRUE(server_->use_keys(jwks_of({other.get()})).has_value());
    EXPECT_TRUE(check(token).wait);  // its key is gone: fetched again first
    io_.run();
    EXPECT_EQ(refused(token), "no key \"k1\" for ES256 in the authorization server's JWKS");
}

TEST_F(Resource, AMissingScopeIsItsOwnError) {
    auto c = claims();
    c["scope"] = "tools";
    auto checked = check(sign(*key_, c));
    ASSERT_FALSE(checked.identity.has_value());
    EXPECT_EQ(checked.identity.error().code, Errc::insufficient_scope);
    const auto decision = server_->decide("Bearer " + sign(*key_, c));
    EXPECT_EQ(decision.status, 403U);
    ASSERT_EQ(decision.headers.size(), 1U);
    EXPECT_EQ(decision.headers[0].second,
              "Bearer resource_metadata=\"https://gw.example:8443/.well-known/"
              "oauth-protected-resource/mcp\", scope=\"mcp\", error=\"insufficient_scope\", "
              "error_description=\"the token lacks a required scope\"");
}

TEST_F(Resource, OnlyAsymmetricJwtAccessTokens) {
    // RFC 9068: typ at+jwt.
    EXPECT_EQ(refused(sign(*key_, claims(), "ES256", "JWT")),
              "not a JWT access token (typ \"jwt\")");
    EXPECT_EQ(refused(sign(*key_, claims(), "ES256", nullptr)),
              "not a JWT access token (typ \"\")");
    // An HMAC over the token with the public key as secret is not accepted.
    cjose_err err{};
    const std::string secret = "0123456789abcdef0123456789abcdef";
    Jwk hmac(cjose_jwk_create_oct_spec(reinterpret_cast<const std::uint8_t*>(secret.data()),
                                       secret.size(), &err));
    cjose_jwk_set_kid(hmac.key, "k1", 2, &err);
    EXPECT_EQ(refused(sign(hmac, claims(), "HS256")), "signature algorithm \"HS256\" not accepted");
    EXPECT_EQ(refused("a.b"), "not a signed JWT") << "two parts";
}

TEST_F(Resource, CriticalHeaderParametersAreNotUnderstood) {
    // RFC 7515 section 4.1.11: a JWS whose crit lists an extension the
    // recipient does not understand is invalid, however well it is signed.
    const auto* message =
        "the token names critical header parameters (crit) this gateway does not understand";
    EXPECT_EQ(refused(sign(*key_, claims(), "ES256", "at+jwt", nullptr, R"(["exp"])")), message);
    EXPECT_EQ(refused(sign(*key_, claims(), "ES256", "at+jwt", nullptr, "[]")), message);
    EXPECT_EQ(refused(sign(*key_, claims())), "accepted");
}

TEST_F(Resource, MalformedTokensAndSignatures) {
    const std::string good = sign(*key_, claims());
    EXPECT_EQ(refused(good + "x"), "the signature does not verify");  // 65 bytes of ES256
    EXPECT_EQ(refused(good.substr(0, good.size() - 3) + "AAA"), "the signature does not verify");
    EXPECT_EQ(refused("not a token"), "not a signed JWT");
    EXPECT_EQ(refused("a+b.c/d.e"), "not a signed JWT");  // base64, not base64url
    EXPECT_EQ(refused(std::string(20'000, 'a')), "the token is empty or too long");
    auto c = server_->check("Basic dXNlcjpwYXNz");
    ASSERT_FALSE(c.identity.has_value());
    EXPECT_EQ(c.identity.error().code, Errc::no_token);
    const auto none = server_->decide("");
    EXPECT_EQ(none.status, 401U);
    EXPECT_EQ(none.headers[0].second,
              "Bearer resource_metadata=\"https://gw.example:8443/.well-known/"
              "oauth-protected-resource/mcp\", scope=\"mcp\"");
}

TEST_F(Resource, AnUnknownKeyFetchesTheKeysOnceThenRefuses) {
    auto stranger = ec_key("k2");
    auto first = check(sign(*stranger, claims()));
    EXPECT_TRUE(first.wait);  // a fetch started: the caller waits for it
    io_.run();                // the fetch fails (no such host here) and ends
    io_.restart();
    auto second = check(sign(*stranger, claims()));
    EXPECT_FALSE(second.wait);  // not again within refetch_interval
    ASSERT_FALSE(second.identity.has_value());
    EXPECT_EQ(second.identity.error().code, Errc::unknown_key);
    // A key named by a kid the JWKS has, but of another type, is not used.
    EXPECT_EQ(refused(sign(*stranger, claims(), "ES256", "at+jwt", "k1")),
              "the signature does not verify");
}

// A token's header text reaches the challenge's error_description: nothing
// of it may break the header (RFC 6750 section 3 characters only).
TEST_F(Resource, TheChallengeCarriesNoTextOfTheTokenVerbatim) {
    const std::string token =
        sign(*key_, claims(), "ES256", "at+jwt", "x\r\nSet-Cookie: stolen=\"1\"");
    EXPECT_TRUE(check(token).wait);
    io_.run();
    const auto d = server_->decide("Bearer " + token);
    EXPECT_EQ(d.status, 401U);
    ASSERT_EQ(d.headers.size(), 1U);
    const std::string& h = d.headers[0].second;
    EXPECT_EQ(h.find('\r'), std::string::npos) << h;
    EXPECT_EQ(h.find('\n'), std::string::npos) << h;
    EXPECT_NE(h.find("no key ?x??Set-Cookie: stolen=?1??"), std::string::npos) << h;
}

// Keys that cannot be fetched: the request that started the fetch waits for
// it; afterwards requests get 503 at once, without a fetch each (back-off).
TEST_F(Resource, KeysThatCannotBeFetchedAre503WithoutHammering) {
    ResourceOptions o;
    o.issuer = k_issuer;
    o.jwks_uri = "https://as.example/jwks";
    o.resource = k_resource;
    ResourceServer bare(io_.get_executor(), o);
    const std::string token = sign(*key_, claims());
    EXPECT_TRUE(bare.check("Bearer " + token).wait);
    io_.run();
    io_.restart();
    const auto d = bare.decide("Bearer " + token);
    EXPECT_EQ(d.status, 503U);
    EXPECT_FALSE(d.wait);
    EXPECT_EQ(io_.poll(), 0U);  // no second fetch was queued
}

TEST_F(Resource, MetadataDocument) {
    const auto doc = json::parse(server_->metadata()).as_object();
    EXPECT_EQ(doc.at("resource").as_string(), k_resource);
    EXPECT_EQ(doc.at("authorization_servers").as_array().at(0).as_string(), k_issuer);
    EXPECT_EQ(doc.at("scopes_supported").as_array().at(0).as_string(), "mcp");
    EXPECT_TRUE(server_->is_metadata_path("/.well-known/oauth-protected-resource/mcp"));
    EXPECT_TRUE(server_->is_metadata_path("/.well-known/oauth-protected-resource"));
    EXPECT_FALSE(server_->is_metadata_path("/.well-known/oauth-protected-resource/other"));
}

TEST(ResourceOptionsCheck, RefusesWhatCannotBeSafe) {
    ResourceOptions o;
    EXPECT_FALSE(ResourceServer::validate(o).has_value());
    o.issuer = "http://as.example";
    EXPECT_FALSE(ResourceServer::validate(o).has_value());  // plain http off loopback
    o.issuer = "http://127.0.0.1:9000";
    EXPECT_TRUE(ResourceServer::validate(o).has_value());
    o.issuer = "https://as.example";
    o.jwks_uri = "http://as.example/jwks";
    EXPECT_FALSE(ResourceServer::validate(o).has_value());
}

TEST(ResourceOptionsCheck, IntrospectionNeedsItsSecretAndASafeEndpoint) {
    ResourceOptions o;
    o.issuer = "https://as.example";
    o.introspection.client_id = "gateway";
    const auto why = [&o] {
        auto s = ResourceServer::validate(o);
        return s ? std::string("ok") : s.error().detail;
    };
    EXPECT_EQ(why(), "oauth.introspection needs the client's secret");
    o.introspection.client_secret = "s";
    EXPECT_EQ(why(), "ok");  // the endpoint from the metadata
    o.introspection.endpoint = "http://as.example/introspect";
    EXPECT_EQ(why(), "oauth.introspection.endpoint must be an https URL");
    o.introspection.endpoint.clear();
    o.jwks_uri = "https://as.example/jwks";
    EXPECT_EQ(why(),
              "oauth.introspection.endpoint is needed with oauth.jwks_uri (the metadata that "
              "would name it is not read)");
    o.introspection.endpoint = "https://as.example/introspect";
    o.introspection.cache = std::chrono::seconds{0};
    EXPECT_EQ(why(), "oauth.introspection.cache: from 1s to 1h");
    o.introspection.cache = std::chrono::seconds{60};
    EXPECT_EQ(why(), "ok");
}

TEST_F(Resource, IntrospectionAsksAtMost64QuestionsAtOnce) {
    ResourceOptions o;
    o.issuer = k_issuer;
    o.jwks_uri = "https://as.example/jwks";
    o.resource = k_resource;
    o.introspection.client_id = "gateway";
    o.introspection.client_secret = "secret";
    o.introspection.endpoint = "http://127.0.0.1:9/introspect";
    // The executor is never run: every question stays out.
    ResourceServer s(io_.get_executor(), o);
    for (int i = 0; i < 64; ++i) {
        const auto c = s.check("Bearer opaque-" + std::to_string(i));
        EXPECT_TRUE(c.wait) << i;
    }
    EXPECT_TRUE(s.check("Bearer opaque-3").wait) << "the same token waits for the same answer";
    const auto c = s.check("Bearer opaque-64");
    EXPECT_FALSE(c.wait);
    ASSERT_FALSE(c.identity.has_value());
    EXPECT_EQ(c.identity.error().code, Errc::introspection_failed);
    EXPECT_EQ(c.identity.error().detail, "too many tokens are being asked about at once");
    EXPECT_EQ(s.decide("Bearer opaque-65").status, 503U);
    // Not b64token characters: refused here, never asked about.
    EXPECT_EQ(s.check("Bearer not;a;token").identity.error().detail, "not a signed JWT");
}

TEST_F(Resource, AnOpaqueTokenWithoutIntrospectionIsRefusedHere) {
    EXPECT_EQ(refused("2YotnFZFEjr1zCsicMWpAA"), "not a signed JWT");
}

}  // namespace
}  // namespace pqmcp::oauth
