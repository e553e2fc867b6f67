// What the request path pays to count a request, when every thread counts
// into the same families: pqmcp's Counter and Histogram (a shard per thread)
// against the baseline of one lock and one map per family, which is what
// they were before (kept here, as it was, to be measured in the same run).
// The label values are those of pqmcp_requests_total for a tools/call.
#include <benchmark/benchmark.h>

#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "pqmcp/observe/metrics.hpp"

namespace {

using pqmcp::observe::Labels;
using pqmcp::observe::LabelsLess;
using pqmcp::observe::LabelValues;

// The baseline: one lock, one map.
class OneLockCounter {
  public:
    void inc(LabelValues values, double by = 1.0) {
        const std::lock_guard lock(mutex_);
        auto it = series_.find(values);
        if (it == series_.end()) {
            it = series_.emplace(Labels(values.begin(), values.end()), 0.0).first;
        }
        it->second += by;
    }

  private:
    std::mutex mutex_;
    std::map<Labels, double, LabelsLess> series_;
};

class OneLockHistogram {
  public:
    explicit OneLockHistogram(std::vector<double> bounds) : bounds_(std::move(bounds)) {}
    void observe(LabelValues values, double sample) {
        const std::lock_guard lock(mutex_);
        auto it = series_.find(values);
        if (it == series_.end()) {
            it = series_.emplace(Labels(values.begin(), values.end()), Series{}).first;
            it->second.buckets.assign(bounds_.size(), 0);
        }
        const auto at = std::lower_bound(bounds_.begin(), bounds_.end(), sample);
        if (at != bounds_.end()) {
            ++it->second.buckets[static_cast<std::size_t>(at - bounds_.begin())];
        }
        ++it->second.count;
        it->second.sum += sample;
    }

  private:
    struct Series {
        std::vector<std::uint64_t> buckets;
        std::uint64_t count = 0;
        double sum = 0;
    };
    std::vector<double> bounds_;
    std::mutex mutex_;
    std::map<Labels, Series, LabelsLess> series_;
};

// What a tools/call counts: the request, and the upstream's latency.
template <typename C, typename H>
void count_calls(benchmark::State& state, C& counter, H& histogram) {
    for (auto _ : state) {
        counter.inc({"tools/call", "demo", "allow"});
        histogram.observe({"demo", "tools/call"}, 0.00012);
    }
    state.SetItemsProcessed(state.iterations());
}

pqmcp::observe::Registry g_registry;
auto& g_counter =
    g_registry.counter("pqmcp_requests_total", "Requests", {"method", "upstream", "decision"});
auto& g_histogram = g_registry.histogram("pqmcp_upstream_request_duration_seconds", "Latency",
                                         {"upstream", "method"}, pqmcp::observe::latency_buckets());
OneLockCounter g_one_counter;
OneLockHistogram g_one_histogram(pqmcp::observe::latency_buckets());

void bm_sharded(benchmark::State& state) {
    count_calls(state, g_counter, g_histogram);
}
void bm_one_lock(benchmark::State& state) {
    count_calls(state, g_one_counter, g_one_histogram);
}

BENCHMARK(bm_one_lock)->Threads(1)->Threads(2)->Threads(4)->UseRealTime();
BENCHMARK(bm_sharded)->Threads(1)->Threads(2)->Threads(4)->UseRealTime();

}  // namespace

BENCHMARK_MAIN();
