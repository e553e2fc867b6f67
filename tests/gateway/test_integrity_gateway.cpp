// Tool integrity in the gateway, as a client meets it: a rug pull blocked
// until approved (or let through with an alert), poisoned, tag-character and
// shadowing tools caught with the configured action, signed lists, and an
// upstream held to its publisher's signed manifest.
#include <gtest/gtest.h>

#include <fstream>

#include <boost/json.hpp>

#include "harness.hpp"
#include "pqmcp/audit/audit.hpp"
#include "pqmcp/integrity/pins.hpp"
#include "pqmcp/integrity/scanner.hpp"
#include "pqmcp/integrity/signing.hpp"

namespace pqmcp::gateway::test {
namespace {

namespace json = boost::json;

UpstreamConfig fixture_in_mode(const std::string& name, const std::string& mode) {
    UpstreamConfig u = fixture_upstream(name);
    u.env.emplace_back("FIXTURE_MODE", mode);
    return u;
}

std::vector<std::string> tool_names(const json::object& response) {
    std::vector<std::string> out;
    for (const auto& t : response.at("result").at("tools").as_array()) {
        out.emplace_back(t.at("name").as_string());
    }
    return out;
}

bool has(const std::vector<std::string>& names, const std::string& name) {
    return std::find(names.begin(), names.end(), name) != names.end();
}

int code(const json::object& r) {
    return r.contains("error") ? static_cast<int>(r.at("error").at("code").as_int64()) : 0;
}

std::string data(const json::object& r, const char* key) {
    if (!r.contains("error") || !r.at("error").as_object().contains("data")) {
        return "(no data)";
    }
    const auto* v = r.at("error").at("data").as_object().if_contains(key);
    return v != nullptr && v->is_string() ? std::string(v->get_string()) : "(none)";
}

json::object call(McpClient& c, const std::string& tool) {
    return c.request("tools/call",
                     json::object{{"name", tool}, {"arguments", json::object{{"text", "hi"}}}});
}

TEST(IntegrityGateway, RugPullIsBlockedUntilApproved) {
    TempDir state;
    const auto db = state.path() / "state.db";
    Harness h({fixture_in_mode("fx", "rugpull")},
              [&db](GatewayConfig& c) { c.integrity.state = db; });
    McpClient c(h);
    c.initialize();
    // First sight: pinned and listed.
    EXPECT_TRUE(has(tool_names(c.request("tools/list")), "fx__whoami"));
    ASSERT_TRUE(call(c, "fx__whoami").contains("result"));
    // The second listing changes whoami's description: hidden, and refused.
    const auto second = tool_names(c.request("tools/list"));
    EXPECT_FALSE(has(second, "fx__whoami"));
    EXPECT_TRUE(has(second, "fx__log"));
    const auto refused = call(c, "fx__whoami");
    EXPECT_EQ(code(refused), mcp::code::tool_blocked);
    EXPECT_EQ(data(refused, "integrity"), "rug_pull");
    EXPECT_NE(refused.at("error").at("message").as_string().find(
                  "pqmcp tools approve --upstream fx --tool whoami"),
              std::string::npos);

    // The operator reads the diff and approves (another connection to the database).
    {
        auto store = integrity::PinStore::open(db);
        ASSERT_TRUE(store);
        auto n = store->approve("fx", std::string_view("whoami"));
        ASSERT_TRUE(n);
        EXPECT_EQ(*n, 1U);
    }
    EXPECT_TRUE(has(tool_names(c.request("tools/list")), "fx__whoami"));
    EXPECT_TRUE(call(c, "fx__whoami").contains("result"));
}

TEST(IntegrityGateway, RugPullWithAlertStaysUsable) {
    Harness h({fixture_in_mode("fx", "rugpull")},
              [](GatewayConfig& c) { c.integrity.on_change = IntegrityAction::alert; });
    const auto db = h.dir() / "gateway" / "audit.db";
    {
        McpClient c(h);
        c.initialize();
        (void)c.request("tools/list");
        EXPECT_TRUE(has(tool_names(c.request("tools/list")), "fx__whoami"));
        EXPECT_TRUE(call(c, "fx__whoami").contains("result"));
    }
    h.stop();  // every record committed
    // Let through, but not silently: the change is in the audit trail as an alert.
    audit::Query q;
    q.kind = "integrity";
    const auto stored = audit::read(db, q);
    ASSERT_TRUE(stored) << stored.error().message();
    int alerts = 0;
    for (const auto& r : *stored) {
        const auto body = json::parse(r.body).as_object();
        if (body.at("event") == "rug_pull") {
            EXPECT_EQ(body.at("action"), "alert");
            EXPECT_EQ(body.at("upstream"), "fx");
            EXPECT_FALSE(body.at("detail").as_string().empty());
            ++alerts;
        }
    }
    EXPECT_GE(alerts, 1);
}

TEST(IntegrityGateway, PoisonedToolIsBlocked) {
    Harness h({fixture_in_mode("fx", "poisoned")});
    McpClient c(h);
    c.initialize();
    // Called before any listing: the gateway reviews the tools first.
    const auto refused = call(c, "fx__weather");
    EXPECT_EQ(code(refused), mcp::code::tool_blocked);
    EXPECT_EQ(data(refused, "integrity"), "finding");
    const std::string severity = data(refused, "severity");
    EXPECT_TRUE(severity == "high" || severity == "critical") << severity;
    EXPECT_NE(data(refused, "pointer"), "(none)");
    const auto names = tool_names(c.request("tools/list"));
    EXPECT_FALSE(has(names, "fx__weather"));
    EXPECT_TRUE(has(names, "fx__whoami"));
    EXPECT_TRUE(call(c, "fx__whoami").contains("result"));
}

// What reaches the model besides tools: an upstream's instructions and its
// resources are pinned and scanned the same way, and what is blocked never
// reaches the client (a blocked resource cannot be read either).
TEST(IntegrityGateway, InstructionsAndResourcesAreReviewedLikeTools) {
    Harness h({fixture_in_mode("fx", "context"), fixture_upstream("ok")});
    McpClient c(h);
    const auto init = c.initialize();
    ASSERT_TRUE(init.contains("result")) << json::serialize(init);
    const auto& result = init.at("result").as_object();
    ASSERT_TRUE(result.contains("instructions"));
    const std::string instructions(result.at("instructions").as_string());
    EXPECT_EQ(instructions.find("id_rsa"), std::string::npos) << instructions;
    EXPECT_NE(instructions.find("[ok] A scripted test server."), std::string::npos) << instructions;

    const auto listed = c.request("resources/list");
    ASSERT_TRUE(listed.contains("result")) << json::serialize(listed);
    std::vector<std::string> uris;
    for (const auto& r : listed.at("result").at("resources").as_array()) {
        uris.emplace_back(r.at("uri").as_string());
    }
    EXPECT_TRUE(has(uris, "file:///public/readme.txt"));
    EXPECT_FALSE(has(uris, "file:///public/notes.txt"));
    // The list is signed like the others.
    EXPECT_TRUE(listed.at("result").as_object().contains("_meta"));

    const auto read = [&c](const char* uri) {
        return c.request("resources/read", json::object{{"uri", uri}});
    };
    EXPECT_TRUE(read("file:///public/readme.txt").contains("result"));
    const auto refused = read("file:///public/notes.txt");
    EXPECT_EQ(code(refused), mcp::code::tool_blocked) << json::serialize(refused);
    EXPECT_EQ(data(refused, "integrity"), "finding");
}

TEST(IntegrityGateway, StripHidesAndAlertLists) {
    {
        Harness h({fixture_in_mode("fx", "poisoned")},
                  [](GatewayConfig& c) { c.integrity.on_finding = IntegrityAction::strip; });
        McpClient c(h);
        c.initialize();
        EXPECT_FALSE(has(tool_names(c.request("tools/list")), "fx__weather"));
        EXPECT_TRUE(call(c, "fx__weather").contains("result"));  // by name, still callable
    }
    {
        Harness h({fixture_in_mode("fx", "poisoned")},
                  [](GatewayConfig& c) { c.integrity.on_finding = IntegrityAction::alert; });
        McpClient c(h);
        c.initialize();
        EXPECT_TRUE(has(tool_names(c.request("tools/list")), "fx__weather"));
        EXPECT_TRUE(call(c, "fx__weather").contains("result"));
    }
    {
        // Nothing reaches the threshold: listed.
        Harness h({fixture_in_mode("fx", "poisoned")},
                  [](GatewayConfig& c) { c.integrity.threshold = "critical"; });
        McpClient c(h);
        c.initialize();
        const auto refused = call(c, "fx__weather");
        // A poisoned description may still rate critical; then it stays blocked.
        if (code(refused) == mcp::code::tool_blocked) {
            EXPECT_EQ(data(refused, "severity"), "critical");
        }
    }
}

TEST(IntegrityGateway, TagCharactersAreCaught) {
    Harness h({fixture_in_mode("fx", "tags")});
    McpClient c(h);
    c.initialize();
    EXPECT_FALSE(has(tool_names(c.request("tools/list")), "fx__translate"));
    const auto refused = call(c, "fx__translate");
    EXPECT_EQ(code(refused), mcp::code::tool_blocked);
    EXPECT_EQ(data(refused, "severity"), "critical");
}

TEST(IntegrityGateway, ShadowingAnotherUpstreamsToolIsCaught) {
    Harness h({demo_upstream(), fixture_in_mode("fx", "shadow")});
    McpClient c(h);
    c.initialize();
    const auto names = tool_names(c.request("tools/list"));
    EXPECT_FALSE(has(names, "fx__refund_helper"));
    EXPECT_TRUE(has(names, "demo__process_refund"));
    EXPECT_TRUE(has(names, "fx__whoami"));
    EXPECT_EQ(code(call(c, "fx__refund_helper")), mcp::code::tool_blocked);
}

TEST(IntegrityGateway, ListsAreSignedByTheGateway) {
    Harness h({demo_upstream()});
    McpClient c(h);
    const auto init = c.initialize();
    auto gateway = identity::PeerId::parse(h.peer_id());
    ASSERT_TRUE(gateway);
    ASSERT_TRUE(init.contains("result")) << json::serialize(init);
    auto signed_init =
        integrity::verify_result(init.at("result").as_object(), "initialize", &*gateway);
    EXPECT_TRUE(signed_init) << signed_init.error().message();
    // Signed as an initialize result, it does not pass as a list.
    EXPECT_FALSE(integrity::verify_result(init.at("result").as_object(), "tools/list", &*gateway));
    for (const std::string method :
         {"tools/list", "prompts/list", "resources/list", "resources/templates/list"}) {
        const auto r = c.request(method);
        ASSERT_TRUE(r.contains("result")) << method << ": " << json::serialize(r);
        auto v = integrity::verify_result(r.at("result").as_object(), method, &*gateway);
        EXPECT_TRUE(v) << method << ": " << v.error().message();
    }
}

TEST(IntegrityGateway, TurnedOffMeansUnsignedAndUnchecked) {
    Harness h({fixture_in_mode("fx", "poisoned")},
              [](GatewayConfig& c) { c.integrity.enabled = false; });
    McpClient c(h);
    c.initialize();
    const auto r = c.request("tools/list");
    EXPECT_TRUE(has(tool_names(r), "fx__weather"));
    EXPECT_FALSE(r.at("result").as_object().contains("_meta"));
}

TEST(IntegrityGateway, PublisherManifestAdmitsOnlyItsDefinitions) {
    // The publisher's manifest: the demo's own tools as it lists them, with
    // search_records left out and echo's description changed.
    json::array tools;
    {
        Harness plain({demo_upstream()}, [](GatewayConfig& c) { c.integrity.enabled = false; });
        McpClient c(plain);
        c.initialize();
        const auto listed = c.request("tools/list");
        for (auto t : listed.at("result").at("tools").as_array()) {
            auto& o = t.as_object();
            const std::string name(o.at("name").as_string());
            o["name"] = name.substr(std::string("demo__").size());
            if (o["name"] == "search_records") {
                continue;
            }
            if (o["name"] == "echo") {
                o["description"] = "Something else.";
            }
            tools.push_back(std::move(t));
        }
    }
    TempDir dir;
    identity::KeygenOptions keygen;
    auto publisher = identity::generate(keygen);
    ASSERT_TRUE(publisher);
    auto signer = integrity::make_signer(*publisher);
    ASSERT_TRUE(signer);
    json::object manifest{{"tools", tools}};
    ASSERT_TRUE(integrity::sign_result(manifest, integrity::k_manifest_method, *signer,
                                       "2026-11-24T00:00:00Z"));
    const auto file = dir.path() / "manifest.json";
    std::ofstream(file) << json::serialize(manifest);

    Harness h({demo_upstream()}, [&](GatewayConfig& c) {
        c.upstreams.front().publisher = publisher->id.str();
        c.upstreams.front().manifest = file;
    });
    McpClient c(h);
    c.initialize();
    const auto names = tool_names(c.request("tools/list"));
    EXPECT_TRUE(has(names, "demo__add"));
    EXPECT_TRUE(has(names, "demo__process_refund"));
    EXPECT_FALSE(has(names, "demo__search_records"));
    EXPECT_FALSE(has(names, "demo__echo"));
    const auto refused = call(c, "demo__search_records");
    EXPECT_EQ(code(refused), mcp::code::tool_blocked);
    EXPECT_EQ(data(refused, "integrity"), "manifest");
}

TEST(IntegrityGateway, AManifestSignedByAnotherKeyStopsTheStart) {
    TempDir dir;
    identity::KeygenOptions keygen;
    auto publisher = identity::generate(keygen);
    auto intruder = identity::generate(keygen);
    ASSERT_TRUE(publisher && intruder);
    auto signer = integrity::make_signer(*intruder);
    ASSERT_TRUE(signer);
    json::object manifest{{"tools", json::array{}}};
    ASSERT_TRUE(integrity::sign_result(manifest, integrity::k_manifest_method, *signer,
                                       "2026-11-24T00:00:00Z"));
    const auto file = dir.path() / "manifest.json";
    std::ofstream(file) << json::serialize(manifest);
    GatewayConfig c;
    c.identity = dir.path() / "gateway";
    c.listen = "127.0.0.1:0";
    c.upstreams = {demo_upstream()};
    c.upstreams.front().publisher = publisher->id.str();
    c.upstreams.front().manifest = file;
    auto g = Gateway::create(c, "test");
    ASSERT_FALSE(g);
    EXPECT_EQ(g.error().code, Errc::startup_failed);
    EXPECT_NE(g.error().detail.find("not by the pinned " + publisher->id.str()), std::string::npos)
        << g.error().detail;
}

}  // namespace
}  // namespace pqmcp::gateway::test
