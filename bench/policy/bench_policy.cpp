// Policy decision latency and allocations (Google Benchmark): the example
// policy of docs/policy.md over a mix of requests, and a generated policy of
// 1,000 rules with the deciding rule first, in the middle and last. Each
// decision is timed on its own for the p50/p99 counters (the timer adds some
// 20 ns to each); allocations are counted by a replaced operator new.
#include <benchmark/benchmark.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <new>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <boost/json/parse.hpp>

#include "pqmcp/policy/behaviour.hpp"
#include "pqmcp/policy/limiter.hpp"
#include "pqmcp/policy/policy.hpp"
#include "test_paths.hpp"

// The replaced operator new and delete below pair malloc with free; GCC's
// check cannot see that they are the pair.
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"

namespace {

// Per thread, so that counting is not itself contended in the threaded benchmarks.
thread_local std::uint64_t g_allocations = 0;

}  // namespace

void* operator new(std::size_t size) {
    ++g_allocations;
    if (void* p = std::malloc(size == 0 ? 1 : size)) {
        return p;
    }
    throw std::bad_alloc();
}
void operator delete(void* p) noexcept {
    std::free(p);
}
void operator delete(void* p, std::size_t /*size*/) noexcept {
    std::free(p);
}

namespace {

namespace json = boost::json;
using pqmcp::policy::Request;
using Clock = std::chrono::steady_clock;

struct Sample {
    std::string tool;
    json::value arguments;
    std::string purpose;
};

std::shared_ptr<const pqmcp::policy::Policy> load_file(const std::string& path) {
    std::ifstream in(path);
    const std::string text{std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
    auto p = pqmcp::policy::parse_policy(text, path);
    if (!p) {
        std::abort();
    }
    return *p;
}

void run(benchmark::State& state, const pqmcp::policy::Policy& policy,
         const std::vector<Sample>& samples) {
    pqmcp::policy::Limiter limiter;
    pqmcp::policy::Caller caller{"pq1benchbenchbenchbenchbenchbenchbenchbenchbenchbenchben", "",
                                 true};
    const std::set<std::string> used;
    std::vector<double> ns;
    ns.reserve(1U << 20U);
    auto now = Clock::now();
    std::size_t i = 0;
    const auto before = g_allocations;
    for (auto _ : state) {
        const Sample& s = samples[i++ % samples.size()];
        Request r;
        r.caller = caller;
        r.session = "s";
        r.method = "tools/call";
        r.upstream = "demo";
        r.tool = s.tool;
        r.arguments = &s.arguments;
        r.call_purpose = s.purpose;
        r.used_tags = &used;
        now += std::chrono::milliseconds{1};
        const auto t0 = Clock::now();
        auto d = pqmcp::policy::evaluate(policy, r, &limiter, now);
        const auto t1 = Clock::now();
        benchmark::DoNotOptimize(d);
        if (ns.size() < ns.capacity()) {
            ns.push_back(std::chrono::duration<double, std::nano>(t1 - t0).count());
        }
    }
    const auto allocations = g_allocations - before;
    std::sort(ns.begin(), ns.end());
    const auto pct = [&ns](double p) {
        return ns.empty() ? 0.0
                          : ns[static_cast<std::size_t>(p * static_cast<double>(ns.size() - 1))];
    };
    state.counters["p50_ns"] = pct(0.50);
    state.counters["p99_ns"] = pct(0.99);
    state.counters["allocs"] =
        static_cast<double>(allocations) /
        static_cast<double>(std::max<benchmark::IterationCount>(state.iterations(), 1));
}

std::vector<Sample> example_mix() {
    const auto refund = [](double amount, const char* currency, const char* reason) {
        return json::value(json::object{{"order_id", "ORD-1001"},
                                        {"amount", amount},
                                        {"currency", currency},
                                        {"reason", reason}});
    };
    return {
        {"demo__process_refund", refund(100, "USD", "parcel arrived damaged"),
         ""},  // allow (rule 2)
        {"demo__process_refund", refund(5000, "EUR", "parcel arrived damaged"),
         ""},                                                                       // ask (rule 3)
        {"demo__process_refund", refund(10, "XYZ", "parcel arrived damaged"), ""},  // deny (rule 1)
        {"demo__process_refund", refund(50000, "USD", "parcel arrived damaged"), ""},  // default
        {"demo__get_patient_record", json::object{{"patient_id", "P0042"}, {"purpose", "x"}},
         "treatment"},                                           // rate
        {"demo__echo", json::object{{"message", "hello"}}, ""},  // allow (rule 5)
    };
}

void decide_example_policy(benchmark::State& state) {
    static const auto policy =
        load_file(std::string(pqmcp::test_paths::source_dir()) + "/examples/policies/demo.yaml");
    static const auto samples = example_mix();
    run(state, *policy, samples);
}
BENCHMARK(decide_example_policy);

// 1,000 rules, each on its own tool with two argument conditions.
std::shared_ptr<const pqmcp::policy::Policy> thousand() {
    std::string text = "default: deny\nrules:\n";
    for (int i = 0; i < 1000; ++i) {
        const std::string n = std::to_string(i);
        text += fmt::format(
            "  - id: rule-{0}\n    match: {{ tool: \"svc{0}__*\" }}\n    when:\n"
            "      - {{ arg: /amount, max: {1} }}\n"
            "      - {{ arg: /note, regex: \"^[a-z ]{{1,80}}$\" }}\n"
            "    effect: allow\n",
            n, 100 + i);
    }
    auto p = pqmcp::policy::parse_policy(text, "generated");
    if (!p) {
        std::abort();
    }
    return *p;
}

void decide_1000_rules(benchmark::State& state) {
    static const auto policy = thousand();
    const int at = static_cast<int>(state.range(0));
    const std::vector<Sample> samples = {{"svc" + std::to_string(at) + "__pay",
                                          json::object{{"amount", 50}, {"note", "a small payment"}},
                                          ""}};
    run(state, *policy, samples);
}
BENCHMARK(decide_1000_rules)->Arg(0)->Arg(500)->Arg(999)->ArgName("deciding_rule");

// The behaviour analysis of one call (part of every tools/call decision).
void behaviour_observe(benchmark::State& state) {
    pqmcp::policy::Behaviour behaviour;
    const json::value args = json::object{{"patient_id", "P0042"}, {"purpose", "treatment"}};
    auto now = Clock::now();
    const auto before = g_allocations;
    for (auto _ : state) {
        now += std::chrono::milliseconds{500};
        benchmark::DoNotOptimize(
            behaviour.observe("pq1bench", "demo__get_patient_record", &args, now));
    }
    state.counters["allocs"] =
        static_cast<double>(g_allocations - before) /
        static_cast<double>(std::max<benchmark::IterationCount>(state.iterations(), 1));
}
BENCHMARK(behaviour_observe);

// The same from 1 and 2 threads at once, each for its own caller, on one
// Behaviour (as the request threads share the gateway's): calls/s over all
// threads. Without contention, 2 threads do twice the calls of 1 (on a
// machine with a core for each). The two callers share a shard in about one
// run in 16 (an identity's shard is seeded per process).
void behaviour_observe_threads(benchmark::State& state) {
    static pqmcp::policy::Behaviour behaviour;
    const json::value args = json::object{{"patient_id", "P0042"}, {"purpose", "treatment"}};
    const std::string caller = fmt::format("pq1bench{}", state.thread_index());
    auto now = Clock::now();
    for (auto _ : state) {
        now += std::chrono::milliseconds{500};
        benchmark::DoNotOptimize(behaviour.observe(caller, "demo__get_patient_record", &args, now));
    }
    state.SetItemsProcessed(state.iterations());
}
BENCHMARK(behaviour_observe_threads)->Threads(1)->Threads(2)->UseRealTime();

// A quota counted from 1 and 2 threads at once, each for its own key.
void limiter_count_threads(benchmark::State& state) {
    static pqmcp::policy::Limiter limiter;
    const pqmcp::policy::Quota quota{pqmcp::policy::Per::identity, 1'000'000'000,
                                     std::chrono::milliseconds{1}};
    const std::string key = fmt::format("identity:pq1bench{}", state.thread_index());
    auto now = Clock::now();
    for (auto _ : state) {
        now += std::chrono::milliseconds{2};  // a window each: the window stays short
        benchmark::DoNotOptimize(limiter.count("bench-rule", key, quota, now));
    }
    state.SetItemsProcessed(state.iterations());
}
BENCHMARK(limiter_count_threads)->Threads(1)->Threads(2)->UseRealTime();

}  // namespace

BENCHMARK_MAIN();
