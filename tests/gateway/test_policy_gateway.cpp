// The policy in the gateway: decisions as a client meets them (errors with
// the rule id, elicitation for ask), rates, tools/list filtering, inputSchema
// checks, shadow mode, data flow, behaviour, and reloads under load.
#include <gtest/gtest.h>

#include <atomic>
#include <fstream>
#include <set>

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

#include "harness.hpp"
#include "pqmcp/audit/audit.hpp"
#include "pqmcp/policy/policy.hpp"
#include "test_paths.hpp"

namespace pqmcp::gateway::test {
namespace {

namespace json = boost::json;

std::filesystem::path example(const std::string& name) {
    return std::filesystem::path(pqmcp::test_paths::source_dir()) / "examples" / "policies" / name;
}

void write(const std::filesystem::path& file, const std::string& text) {
    const auto tmp = file.string() + ".tmp";
    std::ofstream(tmp) << text;
    std::filesystem::rename(tmp, file);  // atomic, as editors and deploys do
}

json::object call(McpClient& c, const std::string& tool, json::object args,
                  json::object meta = {}) {
    json::object params{{"name", tool}, {"arguments", std::move(args)}};
    if (!meta.empty()) {
        params["_meta"] = std::move(meta);
    }
    return c.request("tools/call", std::move(params));
}

bool ok(const json::object& r) {
    return r.contains("result") && !r.at("result").as_object().contains("isError");
}

int code(const json::object& r) {
    return r.contains("error") ? static_cast<int>(r.at("error").at("code").as_int64()) : 0;
}

std::string rule(const json::object& r) {
    if (!r.contains("error") || !r.at("error").as_object().contains("data")) {
        return "(none)";
    }
    const auto& v = r.at("error").at("data").at("rule");
    return v.is_null() ? "" : std::string(v.as_string());
}

json::object refund(double amount, const std::string& currency,
                    const std::string& reason = "parcel arrived damaged") {
    return json::object{
        {"order_id", "ORD-1001"}, {"amount", amount}, {"currency", currency}, {"reason", reason}};
}

const json::object k_elicitation = json::object{{"elicitation", json::object{}}};

TEST(PolicyGateway, TheExamplePolicyEndToEnd) {
    TempDir dir;
    const auto policy_file = dir.path() / "demo.yaml";
    std::filesystem::copy_file(example("demo.yaml"), policy_file);
    Harness h({demo_upstream()}, [&](GatewayConfig& c) { c.policy_file = policy_file; });
    McpClient c(h, nullptr, k_elicitation);
    std::string answer = "accept";
    std::vector<json::object> asked;
    c.on_request([&answer, &asked](const json::object& request) {
        asked.push_back(request);
        return mcp::make_result(
            nullptr,
            json::object{{"action", answer}, {"content", json::object{{"approve", true}}}});
    });
    c.initialize();

    // 100 USD with a good reason: allowed.
    EXPECT_TRUE(ok(call(c, "demo__process_refund", refund(100, "USD"))));
    // 5,000 USD: a person is asked; accepted -> it runs.
    const auto approved = call(c, "demo__process_refund", refund(5000, "USD"));
    EXPECT_TRUE(ok(approved)) << json::serialize(approved);
    ASSERT_EQ(asked.size(), 1U);
    EXPECT_EQ(asked[0].at("method"), json::value("elicitation/create"));
    EXPECT_NE(std::string(asked[0].at("params").at("message").as_string())
                  .find("refunds-large-need-a-human"),
              std::string::npos);
    // Declined -> denied, with the rule id.
    answer = "decline";
    const auto declined = call(c, "demo__process_refund", refund(5000, "USD"));
    EXPECT_EQ(code(declined), policy::k_denied_code);
    EXPECT_EQ(rule(declined), "refunds-large-need-a-human");
    EXPECT_NE(
        std::string(declined.at("error").at("message").as_string()).find("not approved (decline)"),
        std::string::npos);
    // 50,000 USD: no rule matches, the default denies.
    const auto big = call(c, "demo__process_refund", refund(50000, "USD"));
    EXPECT_EQ(code(big), policy::k_denied_code);
    EXPECT_EQ(rule(big), "");
    EXPECT_EQ(big.at("error").at("data").at("decision"), json::value("deny"));
    // XYZ: denied by its rule, named.
    const auto xyz = call(c, "demo__process_refund", refund(10, "XYZ"));
    EXPECT_EQ(code(xyz), policy::k_denied_code);
    EXPECT_EQ(rule(xyz), "refunds-known-currencies-only");

    // Patient records: only for clinicians (their identity's purpose, never a
    // claimed one), twenty an hour.
    const json::object treatment{{std::string(policy::k_purpose_meta), "treatment"}};
    const auto claimed = call(c, "demo__get_patient_record",
                              {{"patient_id", "P0100"}, {"purpose", "treatment"}}, treatment);
    EXPECT_EQ(code(claimed), policy::k_denied_code) << json::serialize(claimed);
    // This client becomes a clinician: its peer id in the group.
    {
        std::ifstream in(policy_file);
        std::string text{std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
        const std::string from = "clinicians: [clinician]";
        text.replace(text.find(from), from.size(),
                     "clinicians: [" + h.client().identity.id.str() + "]");
        write(policy_file, text);
        ASSERT_TRUE(h.gateway().reload_policy());
    }
    const auto billing =
        call(c, "demo__get_patient_record", {{"patient_id", "P0100"}, {"purpose", "x"}},
             {{std::string(policy::k_purpose_meta), "billing"}});
    EXPECT_TRUE(ok(billing)) << json::serialize(billing);  // a claim does not count either way
    for (int i = 0; i < 19; ++i) {
        const auto r =
            call(c, "demo__get_patient_record", {{"patient_id", "P0200"}, {"purpose", "care"}});
        EXPECT_TRUE(ok(r)) << i << " " << json::serialize(r);
    }
    const auto twenty_first = call(c, "demo__get_patient_record",
                                   {{"patient_id", "P0200"}, {"purpose", "care"}}, treatment);
    EXPECT_EQ(code(twenty_first), policy::k_denied_code);
    EXPECT_EQ(rule(twenty_first), "patient-records-for-treatment");
    EXPECT_NE(std::string(twenty_first.at("error").at("message").as_string()).find("rate limit"),
              std::string::npos);

    // tools/list hides what can never be called.
    std::set<std::string> names;
    const auto listed = c.request("tools/list");
    for (const auto& t : listed.at("result").at("tools").as_array()) {
        names.insert(std::string(t.at("name").as_string()));
    }
    EXPECT_EQ(names, (std::set<std::string>{"demo__echo", "demo__add", "demo__process_refund",
                                            "demo__get_patient_record"}));
}

TEST(PolicyGateway, AskWithoutElicitationIsADenial) {
    Harness h({demo_upstream()}, [](GatewayConfig& c) { c.policy_file = example("demo.yaml"); });
    McpClient c(h);  // declares no elicitation
    c.initialize();
    const auto r = call(c, "demo__process_refund", refund(5000, "USD"));
    EXPECT_EQ(code(r), policy::k_denied_code);
    EXPECT_EQ(rule(r), "refunds-large-need-a-human");
    EXPECT_NE(
        std::string(r.at("error").at("message").as_string()).find("no elicitation capability"),
        std::string::npos);
}

TEST(PolicyGateway, MalformedArgumentsNeverReachTheTool) {
    Harness h({fixture_upstream("fx"), demo_upstream()},
              [](GatewayConfig& c) { c.policy_file = example("demo.yaml"); });
    McpClient c(h);
    c.initialize();
    // No tools/list first: the gateway learns the schemas itself.
    const auto r = call(
        c, "demo__process_refund",
        {{"order_id", "O1"}, {"amount", "lots"}, {"currency", "USD"}, {"reason", "a good reason"}});
    EXPECT_EQ(code(r), mcp::code::invalid_params);
    EXPECT_NE(std::string(r.at("error").at("message").as_string()).find("/amount"),
              std::string::npos)
        << json::serialize(r);
    const auto extra = call(c, "demo__echo", {{"message", "x"}, {"debug", true}});
    EXPECT_EQ(code(extra), mcp::code::invalid_params);
}

TEST(PolicyGateway, ShadowRulesLetTheCallThrough) {
    TempDir dir;
    write(dir.path() / "p.yaml", R"(
default: deny
rules:
  - id: would-stop-echo
    mode: shadow
    match: { tool: demo__echo }
    effect: deny
  - id: echo
    match: { tool: demo__echo }
    effect: allow
)");
    Harness h({demo_upstream()},
              [&dir](GatewayConfig& c) { c.policy_file = dir.path() / "p.yaml"; });
    McpClient c(h);
    c.initialize();
    EXPECT_TRUE(ok(call(c, "demo__echo", {{"message", "through"}})));
}

TEST(PolicyGateway, ReadingSensitiveDataThenEgressAsksAPerson) {
    Harness h({demo_upstream()},
              [](GatewayConfig& c) { c.policy_file = example("data-flow.yaml"); });
    McpClient c(h);  // cannot answer: ask -> deny
    c.initialize();
    EXPECT_TRUE(ok(call(c, "demo__search_records", {{"query", "before"}})));
    EXPECT_TRUE(ok(call(c, "demo__get_patient_record", {{"patient_id", "P0042"}, {"purpose", "x"}},
                        {{std::string(policy::k_purpose_meta), "treatment"}})));
    const auto after = call(c, "demo__search_records", {{"query", "after"}});
    EXPECT_EQ(code(after), policy::k_denied_code);
    EXPECT_EQ(rule(after), "no-exfiltration-without-approval");
    // Another session has read nothing sensitive.
    McpClient d(h);
    d.initialize();
    EXPECT_TRUE(ok(call(d, "demo__search_records", {{"query", "fresh"}})));
}

TEST(PolicyGateway, EnumeratingPatientIdsIsStopped) {
    Harness h({demo_upstream()},
              [](GatewayConfig& c) { c.policy_file = example("behaviour.yaml"); });
    McpClient c(h);
    c.initialize();
    std::vector<std::string> rules;
    for (int i = 1; i <= 5; ++i) {
        const auto r = call(c, "demo__get_patient_record",
                            {{"patient_id", "P000" + std::to_string(i)}, {"purpose", "x"}});
        rules.push_back(ok(r) ? "ok" : rule(r));
    }
    EXPECT_EQ(rules, (std::vector<std::string>{"ok", "ok", "ok", "stop-record-enumeration",
                                               "stop-record-enumeration"}));
    // The audit keeps what the baseline saw with each decision (kinds, never the ids).
    const std::filesystem::path db = h.gateway().info().audit;
    h.stop();
    audit::Query q;
    q.kind = "request";
    const auto stored = audit::read(db, q);
    ASSERT_TRUE(stored) << stored.error().message();
    std::vector<std::string> seen;
    for (const auto& r : *stored) {
        const auto body = json::parse(r.body).as_object();
        if (body.at("target") != "demo__get_patient_record") {
            continue;
        }
        EXPECT_EQ(r.body.find("P0004"), std::string::npos) << r.body;
        const auto* behaviour = body.if_contains("behaviour");
        seen.emplace_back(
            behaviour == nullptr ? "-" : std::string(behaviour->at(0).at("kind").as_string()));
    }
    EXPECT_EQ(seen, (std::vector<std::string>{"-", "-", "-", "enumeration", "enumeration"}));
}

TEST(PolicyGateway, ABurstIsFlaggedAndEscalated) {
    Harness h({demo_upstream()},
              [](GatewayConfig& c) { c.policy_file = example("behaviour.yaml"); });
    McpClient c(h);  // no elicitation: the escalation is a denial
    c.initialize();
    int escalated = 0;
    for (int i = 0; i < 30; ++i) {
        const auto r = call(c, "demo__echo", {{"message", "again"}});
        escalated += rule(r) == "bursts-need-a-human" ? 1 : 0;
    }
    EXPECT_GT(escalated, 0);
}

TEST(PolicyGateway, AnInvalidReloadKeepsThePolicyInForce) {
    TempDir dir;
    const auto file = dir.path() / "p.yaml";
    write(file,
          "default: deny\nrules:\n  - id: echo\n    match: { tool: demo__echo }\n    effect: "
          "allow\n");
    Harness h({demo_upstream()}, [&file](GatewayConfig& c) { c.policy_file = file; });
    McpClient c(h);
    c.initialize();
    EXPECT_TRUE(ok(call(c, "demo__echo", {{"message", "1"}})));
    write(file, "default: deny\nrules:\n  - id: echo\n    effect: perhaps\n");
    const auto reloaded = h.gateway().reload_policy();
    ASSERT_FALSE(reloaded);
    EXPECT_NE(
        reloaded.error().detail.find("p.yaml:4: rule echo.effect: expected allow, deny or ask"),
        std::string::npos)
        << reloaded.error().detail;
    EXPECT_TRUE(ok(call(c, "demo__echo", {{"message", "2"}})));
    // A valid change is picked up from the file by itself (checked every second).
    write(file,
          "default: deny\nrules:\n  - id: no-echo\n    match: { tool: demo__echo }\n    effect: "
          "deny\n");
    bool changed = false;
    for (int i = 0; i < 40 && !changed; ++i) {
        std::this_thread::sleep_for(std::chrono::milliseconds{100});
        changed = rule(call(c, "demo__echo", {{"message", "3"}})) == "no-echo";
    }
    EXPECT_TRUE(changed);
}

TEST(PolicyGateway, ReloadsUnderLoadLoseNothingAndMixNothing) {
    TempDir dir;
    const auto file = dir.path() / "p.yaml";
    const std::string a =
        "default: deny\nrules:\n  - id: rule-a\n    match: { tool: demo__echo }\n    effect: "
        "deny\n";
    const std::string b =
        "default: deny\nrules:\n  - id: rule-b\n    match: { tool: demo__echo }\n    effect: "
        "deny\n";
    write(file, a);
    const auto fa = (*policy::parse_policy(a))->fingerprint;
    const auto fb = (*policy::parse_policy(b))->fingerprint;
    Harness h({demo_upstream()}, [&file](GatewayConfig& c) { c.policy_file = file; });
    std::atomic<bool> done{false};
    std::atomic<int> reloads{0};
    std::thread reloader([&] {
        for (int i = 0; !done; ++i) {
            write(file, i % 2 == 0 ? b : a);
            if (h.gateway().reload_policy()) {
                ++reloads;
            }
        }
    });
    McpClient c(h);
    c.initialize();
    const int calls = 300;
    int answered = 0;
    for (int round = 0; round < calls / 30; ++round) {
        const auto replies = c.concurrent(
            30, "tools/call", {{"name", "demo__echo"}, {"arguments", {{"message", "x"}}}});
        for (const auto& r : replies) {
            ASSERT_EQ(code(r), policy::k_denied_code) << json::serialize(r);
            const std::string fingerprint(r.at("error").at("data").at("policy").as_string());
            const std::string which = rule(r);
            // One policy per decision: its rule and its fingerprint agree.
            EXPECT_TRUE((which == "rule-a" && fingerprint == fa) ||
                        (which == "rule-b" && fingerprint == fb))
                << which << " " << fingerprint;
            ++answered;
        }
    }
    done = true;
    reloader.join();
    EXPECT_EQ(answered, calls);
    EXPECT_GT(reloads.load(), 10);
}

}  // namespace
}  // namespace pqmcp::gateway::test
