// The policy: loading (errors with lines), every operator and effect, first
// match and shadow mode, identities, rates and quotas, purposes, data flow,
// tools/list visibility, and the example of issue 4 as written.
#include <gtest/gtest.h>

// Designated initializers leave the other members at their defaults (GCC 12
// warns about that even where the members have default initializers).
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"

#include <atomic>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include <boost/json/parse.hpp>

#include "pqmcp/policy/limiter.hpp"
#include "pqmcp/policy/policy.hpp"
#include "test_paths.hpp"

namespace pqmcp::policy {
namespace {

namespace json = boost::json;
using Clock = std::chrono::steady_clock;

std::shared_ptr<const Policy> load(const std::string& yaml) {
    auto p = parse_policy(yaml, "test.yaml");
    EXPECT_TRUE(p) << (p ? "" : p.error().detail) << "\n" << yaml;
    return p ? *p : nullptr;
}

std::string example() {
    std::ifstream in(std::string(pqmcp::test_paths::source_dir()) + "/examples/policies/demo.yaml");
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

struct Call {
    std::string tool;
    std::string arguments = "{}";
    std::string purpose;
    Caller caller{};
    std::string method = "tools/call";
    std::string upstream;
    std::string uri;
    std::set<std::string> used;
    std::vector<Finding> findings;
    double score = 0;
};

Decision decide(const Policy& p, const Call& c, Limiter* limiter = nullptr,
                Clock::time_point now = Clock::time_point{}) {
    const json::value args = json::parse(c.arguments);
    Request r;
    r.caller = c.caller;
    r.session = "s1";
    r.method = c.method;
    r.tool = c.tool;
    // The Request holds views: the upstream's name must outlive it.
    const std::string upstream =
        c.upstream.empty() ? c.tool.substr(0, c.tool.find("__")) : c.upstream;
    r.upstream = upstream;
    r.uri = c.uri;
    r.arguments = &args;
    r.call_purpose = c.purpose;
    const std::string session = session_purpose(p, c.caller);
    r.session_purpose = session;
    r.used_tags = &c.used;
    r.findings = &c.findings;
    r.anomaly_score = c.score;
    return evaluate(p, r, limiter, now);
}

TEST(PolicyExample, TheIssuesExampleDecidesAsWritten) {
    const auto p = load(example());
    ASSERT_TRUE(p);
    struct Case {
        std::string tool;
        std::string args;
        std::string purpose;
        Effect effect;
        std::string rule;
        Caller caller{};
    };
    const Caller clinician{"pq1clinic", "clinician", true};
    const Case cases[] = {
        {"demo__process_refund",
         R"({"order_id":"O1","amount":100,"currency":"USD","reason":"damaged on arrival"})", "",
         Effect::allow, "refunds-limited"},
        {"demo__process_refund",
         R"({"order_id":"O1","amount":100,"currency":"USD","reason":"short"})", "", Effect::ask,
         "refunds-large-need-a-human"},
        {"demo__process_refund",
         R"({"order_id":"O1","amount":5000,"currency":"EUR","reason":"damaged on arrival"})", "",
         Effect::ask, "refunds-large-need-a-human"},
        {"demo__process_refund",
         R"({"order_id":"O1","amount":50000,"currency":"USD","reason":"damaged on arrival"})", "",
         Effect::deny, ""},
        {"demo__process_refund",
         R"({"order_id":"O1","amount":1,"currency":"XYZ","reason":"damaged on arrival"})", "",
         Effect::deny, "refunds-known-currencies-only"},
        // Records go to clinicians (their identity's purpose), whatever they claim...
        {"demo__get_patient_record", R"({"patient_id":"P0001","purpose":"treatment"})", "",
         Effect::allow, "patient-records-for-treatment", clinician},
        {"demo__get_patient_record", R"({"patient_id":"P0001","purpose":"x"})", "billing",
         Effect::allow, "patient-records-for-treatment", clinician},
        // ...and never to a caller that only claims the purpose.
        {"demo__get_patient_record", R"({"patient_id":"P0001","purpose":"treatment"})", "treatment",
         Effect::deny, ""},
        {"demo__get_patient_record", R"({"patient_id":"P0001","purpose":"treatment"})", "treatment",
         Effect::deny, "", Caller{"pq1someone", "", false}},
        {"demo__get_patient_record", R"({"patient_id":"P0001","purpose":"treatment"})", "",
         Effect::deny, ""},
        {"demo__get_patient_record", R"({"patient_id":"P0001","purpose":"treatment"})", "billing",
         Effect::deny, ""},
        {"demo__echo", R"({"message":"hi"})", "", Effect::allow, "echo-and-add"},
        {"demo__add", R"({"a":1,"b":2})", "", Effect::allow, "echo-and-add"},
        {"demo__search_records", R"({"query":"x"})", "", Effect::deny, ""},
    };
    for (const auto& c : cases) {
        const auto d = decide(
            *p, {.tool = c.tool, .arguments = c.args, .purpose = c.purpose, .caller = c.caller});
        EXPECT_EQ(d.effect, c.effect) << c.tool << " " << c.args << " " << d.reason;
        EXPECT_EQ(d.rule, c.rule) << c.tool << " " << c.args;
        EXPECT_EQ(d.mode, Mode::enforce);
    }
}

TEST(PolicyExample, TheTwentyFirstPatientRecordInAnHourIsDenied) {
    const auto p = load(example());
    Limiter limiter;
    const Caller alice{"pq1alice", "clinician", true};
    const Caller bob{"pq1bob", "clinician", true};
    const auto t0 = Clock::time_point{} + std::chrono::hours{1};
    const Call call{.tool = "demo__get_patient_record",
                    .arguments = R"({"patient_id":"P1","purpose":"t"})",
                    .purpose = "treatment",
                    .caller = alice};
    for (int i = 0; i < 20; ++i) {
        EXPECT_EQ(decide(*p, call, &limiter, t0 + std::chrono::seconds{i}).effect, Effect::allow)
            << i;
    }
    const auto refused = decide(*p, call, &limiter, t0 + std::chrono::seconds{20});
    EXPECT_EQ(refused.effect, Effect::deny);
    EXPECT_EQ(refused.rule, "patient-records-for-treatment");
    EXPECT_EQ(refused.reason,
              "rate limit of rule patient-records-for-treatment reached: 20 per 1h");
    // Per identity: bob has his own twenty.
    Call bobs = call;
    bobs.caller = bob;
    EXPECT_EQ(decide(*p, bobs, &limiter, t0 + std::chrono::seconds{21}).effect, Effect::allow);
    // The bucket refills at 20 per hour: one token after three minutes.
    EXPECT_EQ(
        decide(*p, call, &limiter, t0 + std::chrono::seconds{20} + std::chrono::minutes{3}).effect,
        Effect::allow);
}

struct OpCase {
    const char* condition;
    const char* arguments;
    bool matches;
};

TEST(PolicyOperators, EveryOperatorBothWays) {
    const OpCase cases[] = {
        {"{ arg: /a, equals: 5 }", R"({"a":5})", true},
        {"{ arg: /a, equals: 5 }", R"({"a":5.0})", true},
        {"{ arg: /a, equals: 5 }", R"({"a":"5"})", false},
        {"{ arg: /a, equals: \"5\" }", R"({"a":"5"})", true},
        {"{ arg: /a, equals: true }", R"({"a":true})", true},
        {"{ arg: /a, equals: x }", R"({})", false},
        {"{ arg: /a, one_of: [x, y] }", R"({"a":"y"})", true},
        {"{ arg: /a, one_of: [x, y] }", R"({"a":"z"})", false},
        {"{ arg: /a, not_one_of: [x, y] }", R"({"a":"z"})", true},
        {"{ arg: /a, not_one_of: [x, y] }", R"({"a":"x"})", false},
        {"{ arg: /a, not_one_of: [x, y] }", R"({})", false},  // absent: no value to test
        {"{ arg: /a, min: 10 }", R"({"a":10})", true},
        {"{ arg: /a, min: 10 }", R"({"a":9.99})", false},
        {"{ arg: /a, min: 10 }", R"({"a":"20"})", false},  // not a number
        {"{ arg: /a, max: 10 }", R"({"a":-3})", true},
        {"{ arg: /a, max: 10 }", R"({"a":10.5})", false},
        {"{ arg: /a, max_length: 3 }", R"({"a":"héé"})", true},  // characters, not bytes
        {"{ arg: /a, max_length: 3 }", R"({"a":"abcd"})", false},
        {"{ arg: /a, max_length: 2 }", R"({"a":[1,2]})", true},
        {"{ arg: /a, max_length: 2 }", R"({"a":[1,2,3]})", false},
        {"{ arg: /a, regex: \"^P[0-9]+$\" }", R"({"a":"P0042"})", true},
        {"{ arg: /a, regex: \"^P[0-9]+$\" }", R"({"a":"X0042"})", false},
        {"{ arg: /a, regex: \"[0-9]\" }", R"({"a":"ab3"})", true},  // search, not full match
        {"{ arg: /a, not_regex: \"(?i)ignore previous\" }", R"({"a":"please IGNORE previous"})",
         false},
        {"{ arg: /a, not_regex: \"(?i)ignore previous\" }", R"({"a":"hello"})", true},
        {"{ arg: /a, type: integer }", R"({"a":3})", true},
        {"{ arg: /a, type: integer }", R"({"a":3.5})", false},
        {"{ arg: /a, type: string }", R"({"a":3})", false},
        {"{ arg: /a, type: object }", R"({"a":{}})", true},
        {"{ arg: /a/b/0, equals: 1 }", R"({"a":{"b":[1]}})", true},
        {"{ arg: /a~1b, equals: 1 }", R"({"a/b":1})", true},
        {"{ required: [a, b] }", R"({"a":1,"b":2})", true},
        {"{ required: [a, b] }", R"({"a":1})", false},
        {"{ arg: /o, required: [x] }", R"({"o":{"x":1}})", true},
        {"{ forbidden: [debug] }", R"({"a":1})", true},
        {"{ forbidden: [debug] }", R"({"debug":true})", false},
        {"{ arg: /a, absent: true }", R"({})", true},
        {"{ arg: /a, absent: true }", R"({"a":null})", false},
    };
    for (const auto& c : cases) {
        const auto p = load(
            std::string(
                "default: deny\nrules:\n  - id: r\n    match: { tool: t }\n    when:\n      - ") +
            c.condition + "\n    effect: allow\n");
        ASSERT_TRUE(p);
        const auto d = decide(*p, {.tool = "t", .arguments = c.arguments});
        EXPECT_EQ(d.effect == Effect::allow, c.matches) << c.condition << " on " << c.arguments;
    }
}

TEST(PolicyOperators, PurposeAfterAndAnomaly) {
    const auto p = load(R"(
default: deny
tags:
  secret: [vault__*]
  egress: [web__*]
rules:
  - id: exfil
    match: { tag: egress }
    when: [ { after: secret } ]
    effect: deny
  - id: enum
    match: { tool: "*" }
    when: [ { anomaly: [enumeration] } ]
    effect: deny
  - id: scored
    match: { tool: "*" }
    when: [ { anomaly_score: 0.5 } ]
    effect: ask
  - id: care
    match: { tool: records__get }
    when: [ { purpose: [treatment, care] } ]
    effect: allow
  - id: rest
    match: { tool: "*" }
    effect: allow
)");
    ASSERT_TRUE(p);
    EXPECT_EQ(decide(*p, {.tool = "web__post"}).rule, "rest");
    EXPECT_EQ(decide(*p, {.tool = "web__post", .used = {"secret"}}).rule, "exfil");
    EXPECT_EQ(decide(*p, {.tool = "vault__read", .used = {"secret"}}).rule, "rest");
    EXPECT_EQ(decide(*p, {.tool = "x__y", .findings = {{"enumeration", 0.7, ""}}}).rule, "enum");
    EXPECT_EQ(decide(*p, {.tool = "x__y", .findings = {{"burst", 0.6, ""}}, .score = 0.6}).rule,
              "scored");
    EXPECT_EQ(decide(*p, {.tool = "x__y", .score = 0.49}).rule, "rest");
    EXPECT_EQ(decide(*p, {.tool = "records__get", .purpose = "care"}).rule, "care");
    // records__get without a purpose falls through to "rest" here: first match.
    EXPECT_EQ(decide(*p, {.tool = "records__get"}).rule, "rest");
    EXPECT_EQ(tags_of(*p, "vault__read"), std::set<std::string>{"secret"});
}

TEST(PolicyMatching, IdentitiesGroupsUpstreamsMethodsResources) {
    const auto p = load(R"(
default: deny
groups:
  ops: [pq1ops, alice]
rules:
  - id: by-group
    match: { identity: group:ops, tool: "admin__*" }
    effect: allow
  - id: anonymous-echo
    match: { identity: anonymous, tool: demo__echo }
    effect: allow
  - id: verified-only
    match: { identity: verified, upstream: "fs*", method: "resources/read", resource: "file:///public/*" }
    effect: allow
  - id: prompts
    match: { method: prompts/get, tool: "demo__*" }
    effect: allow
)");
    ASSERT_TRUE(p);
    const Caller alice{"pq1a", "alice", true};
    const Caller mallory_as_alice{"pq1m", "alice", false};  // a name counts only when verified
    const Caller ops{"pq1ops", "", false};
    EXPECT_EQ(decide(*p, {.tool = "admin__reset", .caller = alice}).effect, Effect::allow);
    EXPECT_EQ(decide(*p, {.tool = "admin__reset", .caller = mallory_as_alice}).effect,
              Effect::deny);
    EXPECT_EQ(decide(*p, {.tool = "admin__reset", .caller = ops}).effect, Effect::allow);
    EXPECT_EQ(decide(*p, {.tool = "demo__echo"}).effect, Effect::allow);
    EXPECT_EQ(decide(*p, {.tool = "demo__echo", .caller = alice}).effect, Effect::deny);
    EXPECT_EQ(decide(*p, {.caller = alice,
                          .method = "resources/read",
                          .upstream = "fs1",
                          .uri = "file:///public/a.txt"})
                  .rule,
              "verified-only");
    EXPECT_EQ(decide(*p, {.caller = alice,
                          .method = "resources/read",
                          .upstream = "fs1",
                          .uri = "file:///private/a.txt"})
                  .effect,
              Effect::deny);
    EXPECT_EQ(decide(*p, {.caller = alice,
                          .method = "resources/read",
                          .upstream = "db",
                          .uri = "file:///public/a.txt"})
                  .effect,
              Effect::deny);
    EXPECT_EQ(decide(*p, {.tool = "demo__greet", .method = "prompts/get"}).rule, "prompts");
    // A rule naming tools is about tools/call only.
    EXPECT_EQ(decide(*p, {.tool = "admin__x", .caller = alice, .method = "prompts/get"}).effect,
              Effect::deny);
    // Listing is not subject to the default.
    const auto list = decide(*p, {.method = "tools/list"});
    EXPECT_EQ(list.effect, Effect::allow);
    EXPECT_TRUE(list.rule.empty());
}

TEST(PolicyMatching, AccessTokensSubjectClientScopesAndClaims) {
    const auto p = load(R"(
default: deny
groups:
  acme-writers: ["claim:groups=writers"]
rules:
  - id: by-subject
    match: { identity: "oauth:alice", tool: demo__add }
    effect: allow
  - id: by-client
    match: { identity: "client:app", tool: demo__greet }
    effect: allow
  - id: by-scope
    match: { identity: "scope:tools:admin", tool: "admin__*" }
    effect: allow
  - id: by-claim
    match: { identity: ["claim:tenant=acme"], tool: demo__echo }
    effect: allow
  - id: by-claim-in-a-group
    match: { identity: group:acme-writers, tool: demo__write }
    effect: allow
)");
    ASSERT_TRUE(p);
    Caller alice;
    alice.token_subject = "alice";
    alice.token_client = "app";
    alice.token_scopes = {"tools:call"};
    alice.token_claims = {{"tenant", "acme"}, {"groups", "readers"}, {"groups", "writers"}};
    Caller bob;
    bob.token_subject = "bob";
    bob.token_client = "other";
    bob.token_scopes = {"tools:call", "tools:admin"};
    bob.token_claims = {{"tenant", "acme-labs"}, {"groups", "readers"}};
    EXPECT_EQ(decide(*p, {.tool = "demo__add", .caller = alice}).rule, "by-subject");
    EXPECT_EQ(decide(*p, {.tool = "demo__add", .caller = bob}).effect, Effect::deny);
    EXPECT_EQ(decide(*p, {.tool = "demo__greet", .caller = alice}).rule, "by-client");
    EXPECT_EQ(decide(*p, {.tool = "demo__greet", .caller = bob}).effect, Effect::deny);
    EXPECT_EQ(decide(*p, {.tool = "admin__reset", .caller = bob}).rule, "by-scope");
    EXPECT_EQ(decide(*p, {.tool = "admin__reset", .caller = alice}).effect, Effect::deny);
    // A claim's value exactly (not a prefix), an array's elements each.
    EXPECT_EQ(decide(*p, {.tool = "demo__echo", .caller = alice}).rule, "by-claim");
    EXPECT_EQ(decide(*p, {.tool = "demo__echo", .caller = bob}).effect, Effect::deny);
    EXPECT_EQ(decide(*p, {.tool = "demo__write", .caller = alice}).rule, "by-claim-in-a-group");
    EXPECT_EQ(decide(*p, {.tool = "demo__write", .caller = bob}).effect, Effect::deny);
    // A caller without a token has no claims.
    EXPECT_EQ(decide(*p, {.tool = "demo__echo", .caller = Caller{"pq1x", "", true}}).effect,
              Effect::deny);
}

TEST(PolicyModes, ShadowRulesAreRecordedAndSkipped) {
    const auto p = load(R"(
default: allow
rules:
  - id: would-block
    mode: shadow
    match: { tool: demo__echo }
    effect: deny
  - id: real
    match: { tool: demo__echo }
    when: [ { arg: /message, equals: stop } ]
    effect: deny
)");
    ASSERT_TRUE(p);
    auto d = decide(*p, {.tool = "demo__echo", .arguments = R"({"message":"hi"})"});
    EXPECT_EQ(d.effect, Effect::allow);
    ASSERT_EQ(d.shadowed.size(), 1U);
    EXPECT_EQ(d.shadowed[0], (std::pair<std::string, Effect>{"would-block", Effect::deny}));
    d = decide(*p, {.tool = "demo__echo", .arguments = R"({"message":"stop"})"});
    EXPECT_EQ(d.rule, "real");
    EXPECT_EQ(d.effect, Effect::deny);
    // A policy whose default is shadow: the default decision is not enforced.
    const auto trial = load("default: deny\nmode: shadow\nrules: []\n");
    const auto t = decide(*trial, {.tool = "x__y"});
    EXPECT_EQ(t.effect, Effect::deny);
    EXPECT_EQ(t.mode, Mode::shadow);
}

TEST(PolicyLimits, QuotasSlideAndStateSurvivesAReload) {
    const std::string text = R"(
default: deny
rules:
  - id: q
    match: { tool: t }
    quota: { per: identity+tool, limit: 3, window: 10s }
    effect: allow
)";
    const auto p = load(text);
    Limiter limiter;
    const auto t0 = Clock::time_point{} + std::chrono::hours{1};
    const Call c{.tool = "t", .caller = Caller{"pq1x", "", true}};
    for (int i = 0; i < 3; ++i) {
        EXPECT_EQ(decide(*p, c, &limiter, t0 + std::chrono::seconds{i}).effect, Effect::allow);
    }
    EXPECT_EQ(decide(*p, c, &limiter, t0 + std::chrono::seconds{3}).effect, Effect::deny);
    // A reloaded policy (a new object, the same rule id) keeps counting.
    const auto reloaded = load(text + "# reloaded\n");
    EXPECT_NE(p->fingerprint, reloaded->fingerprint);
    EXPECT_EQ(decide(*reloaded, c, &limiter, t0 + std::chrono::seconds{4}).effect, Effect::deny);
    // The first use leaves the window after 10 s.
    EXPECT_EQ(decide(*reloaded, c, &limiter, t0 + std::chrono::seconds{10}).effect, Effect::allow);
    limiter.sweep(t0 + std::chrono::hours{2});
    EXPECT_EQ(limiter.size(), 0U);
}

// Request threads count at once: a quota and a rate that every thread
// counts are exact, and each thread's own slots are counted apart.
TEST(PolicyLimiter, ThreadsCountingAtOnceStayExact) {
    Limiter limiter;
    constexpr int k_threads = 4;
    constexpr int k_tries = 300;
    const Quota shared_quota{.limit = 100, .window = std::chrono::seconds{10}};
    const Rate shared_rate{.limit = 150, .window = std::chrono::hours{1}};
    const Quota own_quota{.limit = 40, .window = std::chrono::seconds{10}};
    const auto t0 = Clock::time_point{} + std::chrono::hours{1};
    std::atomic<int> quota_allowed{0};
    std::atomic<int> rate_allowed{0};
    std::vector<int> own_allowed(k_threads, 0);
    std::vector<std::thread> threads;
    threads.reserve(k_threads);
    for (int t = 0; t < k_threads; ++t) {
        threads.emplace_back([&, t] {
            const std::string own = "identity:pq1own" + std::to_string(t);
            for (int i = 0; i < k_tries; ++i) {
                const auto at = t0 + std::chrono::milliseconds{i};
                if (limiter.count("q", "tool:t", shared_quota, at) == Verdict::allowed) {
                    ++quota_allowed;
                }
                if (limiter.take("r", "tool:t", shared_rate, at) == Verdict::allowed) {
                    ++rate_allowed;
                }
                if (limiter.count("q", own, own_quota, at) == Verdict::allowed) {
                    ++own_allowed[static_cast<std::size_t>(t)];
                }
            }
        });
    }
    for (auto& th : threads) {
        th.join();
    }
    EXPECT_EQ(quota_allowed.load(), 100);
    // 150 tokens, and the 300 ms the calls span refill 150 per hour: none.
    EXPECT_EQ(rate_allowed.load(), 150);
    for (int t = 0; t < k_threads; ++t) {
        EXPECT_EQ(own_allowed[static_cast<std::size_t>(t)], 40) << t;
    }
    EXPECT_EQ(limiter.size(), static_cast<std::size_t>(2 + k_threads));
}

TEST(PolicyVisibility, ToolsListShowsOnlyWhatSomeCallCouldPass) {
    const auto p = load(example());
    const Caller anyone{};
    EXPECT_TRUE(may_call(*p, anyone, "demo", "demo__process_refund"));
    EXPECT_TRUE(may_call(*p, anyone, "demo", "demo__get_patient_record"));
    EXPECT_TRUE(may_call(*p, anyone, "demo", "demo__echo"));
    EXPECT_FALSE(may_call(*p, anyone, "demo", "demo__search_records"));
    const auto blocked = load(R"(
default: allow
rules:
  - id: never
    match: { tool: "x__*" }
    effect: deny
  - id: sometimes
    match: { tool: "y__*" }
    when: [ { arg: /a, equals: 1 } ]
    effect: deny
)");
    EXPECT_FALSE(may_call(*blocked, anyone, "x", "x__a"));
    EXPECT_TRUE(may_call(*blocked, anyone, "y", "y__a"));
    EXPECT_TRUE(may_call(*blocked, anyone, "z", "z__a"));
}

TEST(PolicyPurpose, SessionPurposeFromTheIdentity) {
    const auto p = load(R"(
default: deny
groups:
  clinicians: [alice]
identities:
  group:clinicians: { purpose: treatment }
  pq1bob: { purpose: billing }
rules: []
)");
    EXPECT_EQ(session_purpose(*p, Caller{"pq1a", "alice", true}), "treatment");
    EXPECT_EQ(session_purpose(*p, Caller{"pq1bob", "", false}), "billing");
    EXPECT_EQ(session_purpose(*p, Caller{"pq1c", "", true}), "");
}

struct BadCase {
    const char* yaml;
    const char* error;
};

TEST(PolicyLoading, ErrorsNameTheLineAndTheProblem) {
    const BadCase cases[] = {
        {"default: maybe\n", "test.yaml:1: default: expected allow, deny or ask, not \"maybe\""},
        {"default: deny\nrulez: []\n", "test.yaml:2: rulez: unknown key (expected one of:"},
        {"rules:\n  - match: { tool: t }\n    effect: allow\n",
         "test.yaml:2: rules[0]: every rule needs an id"},
        {"rules:\n  - id: a\n    effect: allow\n  - id: a\n    effect: deny\n",
         "test.yaml:4: rules[1].id: \"a\" is used twice"},
        {"rules:\n  - id: a\n    match: { tool: t }\n",
         "test.yaml:2: rule a: effect: (allow, deny or ask) is required"},
        {"rules:\n  - id: a\n    when:\n      - { arg: /x, regex: \"(\" }\n    effect: allow\n",
         "test.yaml:4: rule a.when[0].regex: not a valid RE2 expression"},
        {"rules:\n  - id: a\n    when:\n      - { arg: x, max: 1 }\n    effect: allow\n",
         "test.yaml:4: rule a.when[0].arg: \"x\" is not a JSON Pointer"},
        {"rules:\n  - id: a\n    when:\n      - { max: 1 }\n    effect: allow\n",
         "test.yaml:4: rule a.when[0]: max needs arg:"},
        {"rules:\n  - id: a\n    when:\n      - { arg: /x, max: 1, min: 0 }\n    effect: allow\n",
         "test.yaml:4: rule a.when[0]: exactly one operator per condition"},
        {"rules:\n  - id: a\n    when:\n      - { after: secrets }\n    effect: ask\n",
         "test.yaml:4: rule a.when[0].after: no tag \"secrets\" in tags:"},
        {"rules:\n  - id: a\n    match: { identity: group:nobody }\n    effect: allow\n",
         "test.yaml:3: rule a.match.identity: no group \"nobody\" in groups:"},
        {"rules:\n  - id: a\n    rate: { per: identity, limit: 5, window: 1h }\n    effect: deny\n",
         "test.yaml:4: rule a: a rate or quota on a deny rule counts nothing"},
        {"rules:\n  - id: a\n    rate: { per: planet, limit: 5, window: 1h }\n    effect: allow\n",
         "test.yaml:3: rule a.rate.per: expected identity, tool, identity+tool, session or global"},
        {"rules:\n  - id: a\n    rate: { limit: 5, window: soon }\n    effect: allow\n",
         "test.yaml:3: rule a.rate.window: \"soon\" is not a duration"},
        {"rules:\n  - id: a\n    when:\n      - { anomaly: [weird] }\n    effect: deny\n",
         "test.yaml:4: rule a.when[0].anomaly: \"weird\" is not a finding"},
        {"rules: [\n", "test.yaml:"},
        {"", "test.yaml: empty policy"},
    };
    for (const auto& c : cases) {
        auto p = parse_policy(c.yaml, "test.yaml");
        ASSERT_FALSE(p) << c.yaml;
        EXPECT_EQ(p.error().code, Errc::invalid_policy);
        EXPECT_NE(p.error().detail.find(c.error), std::string::npos)
            << "got: " << p.error().detail << "\nwanted: " << c.error;
    }
}

TEST(PolicyPurpose, EachRuleSaysWhereItsPurposeComesFrom) {
    const auto p = parse_policy(R"(
default: deny
groups: { doctors: [doc] }
identities:
  group:doctors: { purpose: treatment }
rules:
  - id: by-identity
    match: { tool: "a__identity" }
    purpose_from: identity
    when: [{ purpose: [treatment] }]
    effect: allow
  - id: by-client
    match: { tool: "a__client" }
    purpose_from: client
    when: [{ purpose: [treatment] }]
    effect: allow
  - id: by-both
    match: { tool: "a__both" }
    purpose_from: both
    when: [{ purpose: [treatment] }]
    effect: allow
  - id: automatic
    match: { tool: "a__auto" }
    when: [{ purpose: [treatment] }]
    effect: allow
)");
    ASSERT_TRUE(p) << p.error().detail;
    const Caller doctor{"pq1doc", "doc", true};
    const Caller stranger{"pq1x", "", false};
    const auto rule = [&](const std::string& tool, const std::string& claim, const Caller& who) {
        return decide(**p, {.tool = tool, .purpose = claim, .caller = who}).rule;
    };
    EXPECT_EQ(rule("a__identity", "", doctor), "by-identity");
    EXPECT_EQ(rule("a__identity", "treatment", stranger), "");  // a claim never counts
    EXPECT_EQ(rule("a__identity", "billing", doctor), "by-identity");
    EXPECT_EQ(rule("a__client", "treatment", stranger), "by-client");
    EXPECT_EQ(rule("a__client", "", doctor), "");  // only the claim counts
    EXPECT_EQ(rule("a__both", "treatment", stranger), "by-both");
    EXPECT_EQ(rule("a__both", "", doctor), "by-both");
    EXPECT_EQ(rule("a__both", "billing", doctor), "");  // the call's own first
    // automatic: the identity's when it has one (a doctor's claim is ignored),
    // else the call's.
    EXPECT_EQ(rule("a__auto", "billing", doctor), "automatic");
    EXPECT_EQ(rule("a__auto", "treatment", stranger), "automatic");
    const auto bad = parse_policy(
        "default: deny\nrules:\n  - id: r\n    match: { tool: x }\n"
        "    purpose_from: somewhere\n    effect: allow\n");
    ASSERT_FALSE(bad);
    EXPECT_NE(bad.error().detail.find("expected client, identity, both or automatic"),
              std::string::npos)
        << bad.error().detail;
}

}  // namespace
}  // namespace pqmcp::policy
