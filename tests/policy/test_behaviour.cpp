// Behaviour baselines under an injected clock, and inputSchema validation.
#include <gtest/gtest.h>

#include <array>
#include <atomic>
#include <string>
#include <thread>
#include <vector>

#include <fmt/format.h>
#include <boost/container_hash/hash.hpp>
#include <boost/json/parse.hpp>

#include "pqmcp/demo/demo_server.hpp"
#include "pqmcp/policy/behaviour.hpp"
#include "pqmcp/policy/schema.hpp"
#include "seeded_hash.hpp"

namespace pqmcp::policy {
namespace {

namespace json = boost::json;
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;
using std::chrono::seconds;

bool has(const Behaviour::Assessment& a, const std::string& kind) {
    return std::any_of(a.findings.begin(), a.findings.end(),
                       [&kind](const Finding& f) { return f.kind == kind; });
}

BehaviourSettings settings() {
    BehaviourSettings s;
    s.warmup_calls = 5;
    s.burst_min_per_minute = 30;
    s.burst_factor = 5;
    s.enumeration_run = 4;
    s.size_min_bytes = 200;
    return s;
}

// The shard hash of Behaviour and Limiter: the same text hashes the same
// for the life of the process, and keys spread over shards about evenly.
TEST(ShardHash, StableInAProcessAndSpread) {
    EXPECT_EQ(detail::seeded_hash("pq1abc"), detail::seeded_hash(std::string("pq1abc")));
    EXPECT_NE(detail::seeded_hash("pq1abc"), detail::seeded_hash("pq1abd"));
    // Not the unseeded hash (a match by chance is one in 2^64).
    const std::string text = "pq1abc";
    std::size_t unseeded = 0;
    boost::hash_range(unseeded, text.begin(), text.end());
    EXPECT_NE(detail::seeded_hash(text), unseeded);
    constexpr std::size_t k_keys = 16'000;
    constexpr std::size_t k_bins = 16;
    std::array<std::size_t, k_bins> bins{};
    for (std::size_t i = 0; i < k_keys; ++i) {
        ++bins.at(detail::seeded_hash("identity-" + std::to_string(i)) % k_bins);
    }
    for (const std::size_t n : bins) {
        EXPECT_GT(n, k_keys / k_bins * 3 / 4);
        EXPECT_LT(n, k_keys / k_bins * 5 / 4);
    }
}

TEST(Behaviour, ABurstWellAboveTheBaselineIsFlagged) {
    Behaviour b(settings());
    const json::value args = json::parse(R"({"message":"x"})");
    auto t = Clock::time_point{} + std::chrono::hours{1};
    // A steady call a minute for an hour: no burst.
    for (int i = 0; i < 60; ++i) {
        t += seconds{60};
        EXPECT_FALSE(has(b.observe("pq1a", "demo__echo", &args, t), "burst")) << i;
    }
    // Then ten calls in a second.
    bool flagged = false;
    for (int i = 0; i < 10; ++i) {
        t += milliseconds{100};
        const auto a = b.observe("pq1a", "demo__echo", &args, t);
        flagged = flagged || has(a, "burst");
        if (has(a, "burst")) {
            EXPECT_GE(a.score, 0.6);
        }
    }
    EXPECT_TRUE(flagged);
    // Another identity is unaffected by pq1a's history.
    EXPECT_FALSE(has(b.observe("pq1b", "demo__echo", &args, t), "burst"));
}

TEST(Behaviour, FirstUseAfterWarmupAndLargeArguments) {
    Behaviour b(settings());
    const json::value small = json::parse(R"({"message":"hello"})");
    auto t = Clock::time_point{} + std::chrono::hours{1};
    for (int i = 0; i < 10; ++i) {
        t += seconds{30};
        const auto a = b.observe("pq1a", "demo__echo", &small, t);
        EXPECT_FALSE(has(a, "first_use"));
        EXPECT_FALSE(has(a, "large_argument"));
    }
    t += seconds{30};
    EXPECT_TRUE(has(b.observe("pq1a", "demo__add", &small, t), "first_use"));
    t += seconds{30};
    EXPECT_FALSE(has(b.observe("pq1a", "demo__add", &small, t), "first_use"));
    const json::value big = json::object{{"message", std::string(5'000, 'x')}};
    t += seconds{30};
    EXPECT_TRUE(has(b.observe("pq1a", "demo__echo", &big, t), "large_argument"));
    // During warm-up a new identity gets neither finding.
    EXPECT_FALSE(has(b.observe("pq1new", "demo__echo", &big, t), "large_argument"));
}

TEST(Behaviour, EnumerationOfSequentialIds) {
    Behaviour b(settings());
    auto t = Clock::time_point{} + std::chrono::hours{1};
    std::vector<bool> flags;
    for (int i = 1; i <= 6; ++i) {
        const json::value args =
            json::object{{"patient_id", "P000" + std::to_string(i)}, {"purpose", "x"}};
        t += seconds{20};
        flags.push_back(
            has(b.observe("pq1a", "demo__get_patient_record", &args, t), "enumeration"));
    }
    EXPECT_EQ(flags, (std::vector<bool>{false, false, false, true, true, true}));
    // A gap resets the run.
    const json::value jump = json::object{{"patient_id", "P0100"}};
    t += seconds{20};
    EXPECT_FALSE(has(b.observe("pq1a", "demo__get_patient_record", &jump, t), "enumeration"));
}

TEST(Behaviour, DeterministicUnderTheSameClock) {
    const auto run = [] {
        Behaviour b(settings());
        auto t = Clock::time_point{} + std::chrono::hours{1};
        std::vector<std::string> out;
        for (int i = 0; i < 40; ++i) {
            t += milliseconds{i % 7 == 0 ? 50 : 4'000};
            const json::value args = json::object{
                {"id", i}, {"pad", std::string(static_cast<std::size_t>(i) * 40, 'p')}};
            for (const auto& f :
                 b.observe("pq1a", i % 5 == 0 ? "t__b" : "t__a", &args, t).findings) {
                out.push_back(std::to_string(i) + f.kind + f.detail);
            }
        }
        return out;
    };
    EXPECT_EQ(run(), run());
}

TEST(Schema, ArgumentsAreCheckedAgainstTheToolsInputSchema) {
    SchemaCache cache;
    const json::object list = demo::DemoServer::tools_list();
    for (const auto& tool : list.at("tools").as_array()) {
        cache.learn("demo__" + std::string(tool.at("name").as_string()), tool.as_object());
    }
    const auto check = [&cache](const std::string& tool, const char* args) {
        return cache.check(tool, json::parse(args));
    };
    EXPECT_EQ(check("demo__process_refund",
                    R"({"order_id":"O1","amount":10,"currency":"USD","reason":"r"})"),
              "");
    EXPECT_NE(check("demo__process_refund",
                    R"({"order_id":"O1","amount":-10,"currency":"USD","reason":"r"})")
                  .find("/amount"),
              std::string::npos);
    EXPECT_NE(check("demo__process_refund",
                    R"({"order_id":"O1","amount":10,"currency":"usd","reason":"r"})")
                  .find("/currency"),
              std::string::npos);
    EXPECT_NE(check("demo__process_refund", R"({"order_id":"O1","amount":10,"currency":"USD"})"),
              "");
    EXPECT_NE(check("demo__process_refund",
                    R"({"order_id":"O1","amount":10,"currency":"USD","reason":"r","sneaky":1})"),
              "");
    EXPECT_NE(check("demo__add", R"({"a":"1","b":2})").find("/a"), std::string::npos);
    EXPECT_EQ(check("demo__add", R"({"a":1.5,"b":2})"), "");
    EXPECT_EQ(check("unknown__tool", R"({"anything":1})"),
              "");  // nothing learned: nothing to check
    // A schema that cannot be compiled refuses every call.
    cache.learn(
        "bad__tool",
        json::parse(
            R"({"name":"tool","inputSchema":{"type":"object","properties":{"a":{"$ref":"https://example.invalid/x"}}}})")
            .as_object());
    EXPECT_NE(check("bad__tool", R"({"a":1})"), "");
}

TEST(Schema, SessionsShareOneCompiledSchemaPerText) {
    const json::object list = demo::DemoServer::tools_list();
    const auto learn_all = [&list](SchemaCache& cache) {
        for (const auto& tool : list.at("tools").as_array()) {
            cache.learn("demo__" + std::string(tool.at("name").as_string()), tool.as_object());
        }
    };
    const std::size_t before = SchemaCache::compiled_schemas();
    std::size_t distinct = 0;
    {
        // A thousand sessions on four threads learn the same tools and check
        // calls at once: one compiled schema per distinct text.
        std::vector<SchemaCache> caches(1000);
        std::vector<std::thread> threads;
        threads.reserve(4);
        std::atomic<int> accepted{0};  // calls that should have been refused
        for (int t = 0; t < 4; ++t) {
            threads.emplace_back([&, t] {
                for (std::size_t i = static_cast<std::size_t>(t); i < caches.size(); i += 4) {
                    learn_all(caches[i]);
                    if (caches[i].check("demo__add", json::parse(R"({"a":"1","b":2})")).empty()) {
                        ++accepted;
                    }
                }
            });
        }
        for (auto& thread : threads) {
            thread.join();
        }
        EXPECT_EQ(accepted.load(), 0);
        distinct = SchemaCache::compiled_schemas() - before;
        EXPECT_GT(distinct, 0U);
        EXPECT_LE(distinct, list.at("tools").as_array().size());
        // A session whose server changed a schema gets its own; the others keep theirs.
        caches[0].learn(
            "demo__add",
            json::parse(
                R"({"name":"add","inputSchema":{"type":"object","properties":{"a":{"type":"string"}}}})")
                .as_object());
        EXPECT_EQ(caches[0].check("demo__add", json::parse(R"({"a":"1","b":2})")), "");
        EXPECT_NE(caches[1].check("demo__add", json::parse(R"({"a":"1","b":2})")), "");
        EXPECT_EQ(SchemaCache::compiled_schemas() - before, distinct + 1);
    }
    // Forgotten once no session holds them.
    EXPECT_EQ(SchemaCache::compiled_schemas(), before);
}

TEST(Behaviour, MemoryIsBoundedWhateverCallersSend) {
    Behaviour b;
    auto t = Clock::time_point{} + std::chrono::hours{1};
    const json::value args = json::parse(R"({"id":"x1"})");
    // 100,000 identities: the least recently seen go.
    for (int i = 0; i < 100'000; ++i) {
        (void)b.observe("pq1id" + std::to_string(i), "t__x", &args, t);
        t += milliseconds{1};
        if (i % 1000 == 0) {
            (void)b.observe("pq1regular", "t__x", &args, t);  // seen all along
        }
    }
    EXPECT_EQ(b.identities(), Behaviour::k_max_identities);
    EXPECT_GT(b.tools_of("pq1regular"), 0U);  // still there
    EXPECT_EQ(b.tools_of("pq1id0"), 0U);      // long gone
    EXPECT_GT(b.tools_of("pq1id99999"), 0U);  // the newest
    // 100,000 tool names (and numbered argument fields) for one identity.
    for (int i = 0; i < 100'000; ++i) {
        const json::value numbered =
            json::parse(R"({"f)" + std::to_string(i) + R"(":"a)" + std::to_string(i) + "\"}");
        (void)b.observe("pq1busy", "t__tool" + std::to_string(i), &numbered, t);
        t += milliseconds{1};
    }
    EXPECT_LE(b.tools_of("pq1busy"), Behaviour::k_max_tools);
}

// Request threads observe at once: each identity's baseline learns from
// every one of its calls, whichever thread made it (ThreadSanitizer checks
// the shards' locking in the TSan build).
TEST(Behaviour, ThreadsObserveAtOnceAndEveryCallIsLearned) {
    Behaviour b;
    constexpr int k_threads = 4;
    constexpr int k_calls = 400;
    const auto start = Clock::time_point{} + std::chrono::hours{1};
    const json::value args = json::parse(R"({"q":"x"})");
    std::vector<std::thread> threads;
    threads.reserve(k_threads);
    for (int t = 0; t < k_threads; ++t) {
        threads.emplace_back([&b, &args, start, t] {
            const std::string own = "pq1own" + std::to_string(t);
            for (int i = 0; i < k_calls; ++i) {
                const auto at = start + milliseconds{i};
                (void)b.observe(own, "t__own" + std::to_string(i % 7), &args, at);
                // One identity every thread calls for: a tool per thread and call slot.
                (void)b.observe("pq1shared", fmt::format("t__s{}_{}", t, i % 10), &args, at);
            }
        });
    }
    for (auto& th : threads) {
        th.join();
    }
    EXPECT_EQ(b.identities(), static_cast<std::size_t>(k_threads + 1));
    for (int t = 0; t < k_threads; ++t) {
        EXPECT_EQ(b.tools_of("pq1own" + std::to_string(t)), 7U);
    }
    EXPECT_EQ(b.tools_of("pq1shared"), static_cast<std::size_t>(k_threads * 10));
}

}  // namespace
}  // namespace pqmcp::policy
