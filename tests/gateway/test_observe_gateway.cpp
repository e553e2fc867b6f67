// Audit, metrics and the dashboard in the gateway: what a scripted session
// leaves in the audit trail, the counters a Prometheus scrape sees, and the
// dashboard's data over the gateway's own TLS listener.
#include <gtest/gtest.h>

#include <algorithm>

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/write.hpp>
#include <boost/json/parse.hpp>

#include "harness.hpp"
#include "pqmcp/audit/audit.hpp"
#include "pqmcp/tls/context.hpp"
#include "test_paths.hpp"

namespace pqmcp::gateway::test {
namespace {

namespace json = boost::json;
namespace asio = boost::asio;

const std::string k_token = "feedfacefeedfacefeedfacefeedface";

std::filesystem::path example(const std::string& name) {
    return std::filesystem::path(pqmcp::test_paths::source_dir()) / "examples" / "policies" / name;
}

json::object call(McpClient& c, const std::string& tool, json::object args) {
    return c.request("tools/call", json::object{{"name", tool}, {"arguments", std::move(args)}});
}

json::object refund(double amount, const std::string& currency) {
    return json::object{{"order_id", "ORD-1001"},
                        {"amount", amount},
                        {"currency", currency},
                        {"reason", "parcel arrived damaged"}};
}

// GET over plain HTTP/1.1 (the metrics listener).
std::string http_get(const std::string& url) {
    const auto hostport = url.substr(std::string("http://").size());
    const auto colon = hostport.find(':');
    const auto slash = hostport.find('/');
    asio::io_context io;
    asio::ip::tcp::socket socket(io);
    asio::ip::tcp::resolver resolver(io);
    asio::connect(socket, resolver.resolve(hostport.substr(0, colon),
                                           hostport.substr(colon + 1, slash - colon - 1)));
    const std::string request = "GET " + hostport.substr(slash) +
                                " HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";
    asio::write(socket, asio::buffer(request));
    std::string response;
    boost::system::error_code ec;
    asio::read(socket, asio::dynamic_buffer(response), ec);
    return response;
}

// The value of one exposition line ("name{labels} value"), or -1.
double sample(const std::string& text, const std::string& series) {
    const auto at = text.find("\n" + series + " ");
    if (at == std::string::npos) {
        return -1;
    }
    const auto start = at + series.size() + 2;
    return std::stod(text.substr(start, text.find('\n', start) - start));
}

std::vector<json::object> records(const std::filesystem::path& db, const std::string& kind) {
    audit::Query q;
    q.kind = kind;
    auto stored = audit::read(db, q);
    EXPECT_TRUE(stored) << (stored ? "" : stored.error().message());
    std::vector<json::object> out;
    for (const auto& r : stored.value_or(std::vector<audit::Stored>{})) {
        out.push_back(json::parse(r.body).as_object());
    }
    return out;
}

TEST(ObserveGateway, MetricsAfterAScriptedSession) {
    Harness h({demo_upstream()}, [](GatewayConfig& c) {
        c.policy_file = example("demo.yaml");
        c.observe.metrics = "127.0.0.1:0";
    });
    const std::string url = h.gateway().info().metrics_url;
    ASSERT_FALSE(url.empty());
    McpClient c(h);
    c.initialize();
    (void)c.request("tools/list");
    EXPECT_TRUE(call(c, "demo__process_refund", refund(100, "USD")).contains("result"));
    EXPECT_TRUE(call(c, "demo__process_refund", refund(120, "EUR")).contains("result"));
    EXPECT_TRUE(call(c, "demo__echo", json::object{{"message", "hi"}}).contains("result"));
    EXPECT_TRUE(call(c, "demo__process_refund", refund(100, "XYZ")).contains("error"));

    const std::string text = http_get(url);
    ASSERT_EQ(text.rfind("HTTP/1.1 200", 0), 0U) << text;
    EXPECT_NE(text.find("Content-Type: text/plain; version=0.0.4"), std::string::npos);
    EXPECT_EQ(
        sample(text,
               R"(pqmcp_requests_total{method="tools/call",upstream="demo",decision="allow"})"),
        3);
    EXPECT_EQ(
        sample(text,
               R"(pqmcp_requests_total{method="tools/call",upstream="demo",decision="deny"})"),
        1);
    EXPECT_EQ(
        sample(text, R"(pqmcp_requests_total{method="initialize",upstream="",decision="allow"})"),
        1);
    EXPECT_EQ(
        sample(
            text,
            R"(pqmcp_policy_rule_hits_total{rule="refunds-limited",effect="allow",mode="enforce"})"),
        2);
    EXPECT_EQ(
        sample(
            text,
            R"(pqmcp_policy_rule_hits_total{rule="refunds-known-currencies-only",effect="deny",mode="enforce"})"),
        1);
    EXPECT_EQ(
        sample(
            text,
            R"(pqmcp_upstream_request_duration_seconds_count{upstream="demo",method="tools/call"})"),
        3);
    EXPECT_GE(
        sample(
            text,
            R"(pqmcp_tls_handshakes_total{group="X25519MLKEM768",signature="mldsa65",result="ok"})"),
        1);
    EXPECT_GE(sample(text, R"(pqmcp_tls_handshake_duration_seconds_count{group="X25519MLKEM768"})"),
              1);
    EXPECT_EQ(sample(text, "pqmcp_sessions_open"), 1);
    EXPECT_EQ(sample(text, "pqmcp_audit_records_dropped_total"), 0);
    EXPECT_EQ(sample(text, "pqmcp_audit_records_refused_total"), 0);
    EXPECT_GE(sample(text, "pqmcp_audit_queue_depth"), 0);
    EXPECT_EQ(http_get(url.substr(0, url.rfind('/')) + "/other").rfind("HTTP/1.1 404", 0), 0U);
}

TEST(ObserveGateway, TheAuditTrailOfASession) {
    // (The harness's directory, and the database in it, lives as long as the harness.)
    Harness h({demo_upstream()}, [](GatewayConfig& c) { c.policy_file = example("demo.yaml"); });
    const auto db = h.dir() / "gateway" / "audit.db";
    EXPECT_EQ(h.gateway().info().audit, db.string());
    const std::string client_id = h.client().identity.id.str();
    std::string session;
    {
        McpClient c(h);
        c.initialize();
        session = c.session_id();
        (void)call(c, "demo__process_refund", refund(100, "USD"));
        (void)call(c, "demo__process_refund", refund(100, "XYZ"));
        (void)call(c, "demo__nope", json::object{});
        ASSERT_TRUE(h.gateway().reload_policy());
    }
    h.stop();  // a clean shutdown: every record committed and signed
    const auto report = audit::verify(db);
    ASSERT_TRUE(report) << report.error().message();
    EXPECT_TRUE(report->ok());
    EXPECT_GE(report->checkpoints, 1);
    EXPECT_EQ(report->last_checkpoint_seq, report->last_seq);

    const auto connections = records(db, "connection");
    ASSERT_FALSE(connections.empty());
    bool identified = false;
    for (const auto& r : connections) {
        if (r.at("result") == "ok" && r.at("peer_id") == json::value(client_id) &&
            r.at("resumed") == false) {  // a resumed session signs nothing
            identified = true;
            EXPECT_EQ(r.at("group"), "X25519MLKEM768");
            EXPECT_EQ(r.at("own_signature"), "mldsa65");
            EXPECT_EQ(r.at("peer_signature"), "mldsa65");
            EXPECT_EQ(r.at("quantum_safe"), true);
            EXPECT_TRUE(r.at("cipher").is_string());
            EXPECT_TRUE(r.at("handshake_us").is_int64());
        }
    }
    EXPECT_TRUE(identified);

    const auto requests = records(db, "request");
    std::vector<json::object> calls;
    for (const auto& r : requests) {
        if (r.at("method") == "tools/call") {
            calls.push_back(r);
        }
    }
    ASSERT_EQ(calls.size(), 3U);
    EXPECT_EQ(calls[0].at("decision"), "allow");
    EXPECT_EQ(calls[0].at("rule"), "refunds-limited");
    EXPECT_EQ(calls[0].at("outcome"), "ok");
    EXPECT_EQ(calls[0].at("upstream"), "demo");
    EXPECT_EQ(calls[0].at("target"), "demo__process_refund");
    EXPECT_EQ(calls[0].at("identity"), json::value(client_id));
    EXPECT_EQ(calls[0].at("session"), json::value(session.substr(0, 16)));
    EXPECT_EQ(calls[0].at("args_sha256").as_string().size(), 64U);
    EXPECT_FALSE(calls[0].contains("args"));  // digest only by default
    EXPECT_TRUE(calls[0].at("latency_us").is_int64());
    EXPECT_EQ(calls[1].at("decision"), "deny");
    EXPECT_EQ(calls[1].at("rule"), "refunds-known-currencies-only");
    EXPECT_EQ(calls[1].at("error_code").as_int64(), -32010);
    EXPECT_NE(calls[0].at("args_sha256"), calls[1].at("args_sha256"));
    EXPECT_EQ(calls[2].at("outcome"), "error");  // an unknown tool: invalid params

    const auto policies = records(db, "policy");
    ASSERT_EQ(policies.size(), 2U);
    EXPECT_EQ(policies[0].at("event"), "loaded");
    EXPECT_EQ(policies[1].at("event"), "reloaded");
    EXPECT_EQ(policies[0].at("fingerprint"), policies[1].at("fingerprint"));
}

TEST(ObserveGateway, RedactedArguments) {
    Harness h({demo_upstream()}, [](GatewayConfig& c) {
        c.audit.arguments = AuditArguments::redacted;
        c.audit.redact = {"/reason", "/nested/secret"};
    });
    const auto db = h.dir() / "gateway" / "audit.db";
    {
        McpClient c(h);
        c.initialize();
        (void)call(c, "demo__process_refund", refund(7, "EUR"));
    }
    h.stop();
    const auto requests = records(db, "request");
    ASSERT_EQ(requests.size(), 2U);  // initialize, tools/call
    const auto& args = requests[1].at("args").as_object();
    EXPECT_EQ(args.at("reason"), "[redacted]");
    EXPECT_EQ(args.at("currency"), "EUR");
    EXPECT_FALSE(requests[1].contains("args_sha256"));
}

TEST(ObserveGateway, IntegrityEventsAreAudited) {
    Harness h({fixture_upstream("fx")}, [](GatewayConfig& c) {
        c.upstreams[0].env.emplace_back("FIXTURE_MODE", "poisoned");
        c.observe.metrics = "127.0.0.1:0";
    });
    const auto db = h.dir() / "gateway" / "audit.db";
    {
        McpClient c(h);
        c.initialize();
        (void)c.request("tools/list");
        const std::string text = http_get(h.gateway().info().metrics_url);
        EXPECT_NE(text.find(R"(pqmcp_integrity_findings_total{upstream="fx",event="finding")"),
                  std::string::npos)
            << text;
    }
    h.stop();
    const auto events = records(db, "integrity");
    ASSERT_FALSE(events.empty());
    EXPECT_EQ(events[0].at("event"), "finding");
    EXPECT_EQ(events[0].at("upstream"), "fx");
    EXPECT_TRUE(events[0].at("rule").is_string());
}

TEST(ObserveGateway, TheDashboardOverTheGatewaysListener) {
    Harness h({demo_upstream()}, [](GatewayConfig& c) { c.observe.dashboard_token = k_token; });
    EXPECT_EQ(h.gateway().info().dashboard_url,
              "https://127.0.0.1:" + std::to_string(h.port()) + "/dashboard?token=" + k_token);
    McpClient c(h);
    c.initialize();
    (void)call(c, "demo__echo", json::object{{"message", "hi"}});
    EXPECT_EQ(h.http("GET", "/dashboard", {}, {}).status, 401U);
    EXPECT_EQ(h.http("GET", "/dashboard/data?token=nope", {}, {}).status, 401U);
    const auto page = h.http("GET", "/?token=" + k_token, {}, {});
    EXPECT_EQ(page.status, 200U);
    EXPECT_NE(page.body.find("<table id=\"sessions\">"), std::string::npos);
    const auto data =
        h.http("GET", "/dashboard/data", {{"Authorization", "Bearer " + k_token}}, {});
    ASSERT_EQ(data.status, 200U) << data.body;
    const auto v = data.json().as_object();
    const auto& sessions = v.at("sessions").as_array();
    ASSERT_EQ(sessions.size(), 1U);
    EXPECT_EQ(sessions[0].at("id"), json::value(c.session_id().substr(0, 8)));
    EXPECT_EQ(sessions[0].at("peer_id"), json::value(h.client().identity.id.str()));
    EXPECT_EQ(sessions[0].at("group"), "X25519MLKEM768");
    EXPECT_EQ(v.at("posture").at("classical").as_int64(), 0);
    EXPECT_EQ(v.at("gateway").at("peer_id"), json::value(h.peer_id()));
    bool echoed = false;
    for (const auto& d : v.at("decisions").as_array()) {
        echoed = echoed || d.at("target") == "demo__echo";
    }
    EXPECT_TRUE(echoed);
    // The MCP endpoint is unaffected by the token.
    EXPECT_EQ(h.http("GET", "/other", {}, {}).status, 404U);
}

// --browser-cert: a client that offers no ML-DSA scheme (as a browser without
// ML-DSA would) is served the ECDSA P-256 certificate over X25519MLKEM768;
// everyone else still gets the ML-DSA identity. The audit says which it was.
TEST(ObserveGateway, ABrowserWithoutMlDsaGetsTheBrowserCertificate) {
    Harness h({demo_upstream()}, [](GatewayConfig& c) {
        c.observe.dashboard_token = k_token;
        c.browser_certificate = "auto";
    });
    const std::filesystem::path db = h.gateway().info().audit;
    const std::string browser_id = h.gateway().info().browser_certificate_id;
    {
        ASSERT_EQ(browser_id.rfind("ec1", 0), 0U) << browser_id;
        const auto dir = h.dir() / "gateway" / "browser";
        EXPECT_EQ(identity::peer_id_of_path(dir)->str(), browser_id);

        // The pinned MCP client verifies the ML-DSA identity as before.
        EXPECT_EQ(h.http("GET", "/dashboard/data?token=" + k_token, {}, {}).status, 200U);

        tls::ContextOptions o;
        o.verify.pinned = {*identity::PeerId::parse(browser_id)};
        auto ctx = tls::make_client_context(o);
        ASSERT_TRUE(ctx) << ctx.error().message();
        ASSERT_EQ(
            SSL_CTX_set1_sigalgs_list(ctx->get(), "ecdsa_secp256r1_sha256:rsa_pss_rsae_sha256"), 1);
        Client browser = h.make_client();
        browser.context = std::move(*ctx);
        const auto data = h.http("GET", "/dashboard/data?token=" + k_token, {}, {}, &browser);
        ASSERT_EQ(data.status, 200U) << data.error;
        const auto posture = data.json().at("posture").as_object();
        EXPECT_EQ(posture.at("classical_signatures").as_int64(), 1);
        EXPECT_EQ(posture.at("classical").as_int64(), 0);

        // The same client pinned to the ML-DSA identity cannot be fooled into it.
        tls::ContextOptions pinned;
        pinned.verify.pinned = {*identity::PeerId::parse(h.peer_id())};
        auto strict = tls::make_client_context(pinned);
        ASSERT_TRUE(strict);
        ASSERT_EQ(SSL_CTX_set1_sigalgs_list(strict->get(), "ecdsa_secp256r1_sha256"), 1);
        Client wrong = h.make_client();
        wrong.context = std::move(*strict);
        EXPECT_NE(h.http("GET", "/dashboard/data?token=" + k_token, {}, {}, &wrong).error, "");
    }
    h.stop();  // the audit is complete (the database goes with the harness's directory)
    std::vector<std::string> signatures;
    for (const auto& r : records(db, "connection")) {
        if (r.at("result") != "ok") {
            continue;
        }
        EXPECT_EQ(r.at("group"), "X25519MLKEM768");
        signatures.emplace_back(r.at("own_signature").as_string());
    }
    EXPECT_EQ(std::count(signatures.begin(), signatures.end(), "ecdsa_secp256r1_sha256"), 1);
    EXPECT_GE(std::count(signatures.begin(), signatures.end(), "mldsa65"), 1);
}

TEST(ObserveGateway, ABrowserCertificateMustBeEcdsaP256) {
    TempDir dir;
    ASSERT_TRUE(identity::save(*identity::generate({}), dir.path() / "mldsa", false));
    GatewayConfig c;
    c.listen = "127.0.0.1:0";
    c.identity = dir.path() / "gateway";
    c.upstreams = {demo_upstream()};
    c.browser_certificate = (dir.path() / "mldsa").string();
    auto gw = Gateway::create(c, "test");
    ASSERT_FALSE(gw);
    EXPECT_NE(gw.error().message().find("an ECDSA P-256 key is needed, not ml-dsa-65"),
              std::string::npos)
        << gw.error().message();
    c.browser_certificate = (dir.path() / "missing").string();
    gw = Gateway::create(c, "test");
    ASSERT_FALSE(gw);
    EXPECT_NE(gw.error().message().find("browser certificate"), std::string::npos);
}

TEST(ObserveGateway, TheDashboardCanBeOffOrNeedAVerifiedIdentity) {
    {
        Harness h({demo_upstream()}, [](GatewayConfig& c) { c.observe.dashboard = "off"; });
        EXPECT_TRUE(h.gateway().info().dashboard_url.empty());
        EXPECT_EQ(h.http("GET", "/dashboard", {}, {}).status, 404U);
    }
    {
        Harness h({demo_upstream()}, [](GatewayConfig& c) { c.observe.dashboard = "identity"; });
        // The harness client is let in without being vouched for: refused.
        EXPECT_EQ(h.http("GET", "/dashboard/data", {}, {}).status, 403U);
    }
}

TEST(ObserveGateway, AuditCanBeTurnedOff) {
    Harness h({demo_upstream()}, [](GatewayConfig& c) { c.audit.enabled = false; });
    EXPECT_TRUE(h.gateway().info().audit.empty());
    McpClient c(h);
    c.initialize();
    EXPECT_TRUE(call(c, "demo__echo", json::object{{"message", "hi"}}).contains("result"));
    h.stop();
    EXPECT_FALSE(std::filesystem::exists(h.dir() / "gateway" / "audit.db"));
}

}  // namespace
}  // namespace pqmcp::gateway::test
