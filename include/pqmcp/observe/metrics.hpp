// Metrics in the Prometheus text exposition format (version 0.0.4): counters
// and histograms with labels, and gauges read when scraped. Counters and
// histograms are thread-safe without a lock that the threads share: each
// family keeps a shard per thread (a thread's updates take its own shard's
// lock, which only a scrape also takes), and a scrape adds the shards up.
// Families are made before any thread uses the registry; a gauge's reader may
// look at other threads' atomics.
#pragma once

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "pqmcp/core/thread_shard.hpp"

namespace pqmcp::observe {

using Labels = std::vector<std::string>;  // values, in the family's label order
// Label values as callers give them: looked up without a copy; copied once,
// when the series is new.
using LabelValues = std::initializer_list<std::string_view>;

// Orders label sets whether they are kept (Labels) or asked for (LabelValues).
struct LabelsLess {
    using is_transparent = void;
    template <typename A, typename B>
    bool operator()(const A& a, const B& b) const {
        return std::lexicographical_compare(
            a.begin(), a.end(), b.begin(), b.end(),
            [](const auto& x, const auto& y) { return std::string_view(x) < std::string_view(y); });
    }
};

// One thread's share of a family, on cache lines of its own.
template <typename Series>
struct alignas(64) MetricShard {
    mutable std::mutex mutex;
    std::map<Labels, Series, LabelsLess> series;
};

class Counter final {
  public:
    Counter(std::string name, std::string help, std::vector<std::string> label_names);
    // Adds `by` to the series with these label values (created at 0).
    void inc(LabelValues values, double by = 1.0);
    // Creates the series (at 0) so that it is exposed before its first event.
    void touch(LabelValues values);
    [[nodiscard]] double value(LabelValues values) const;
    void expose(std::string& out) const;

  private:
    std::string name_;
    std::string help_;
    std::vector<std::string> label_names_;
    std::array<MetricShard<double>, k_thread_shards> shards_;
};

class Histogram final {
  public:
    // `bounds`: upper bounds of the buckets, ascending (+Inf is implied).
    Histogram(std::string name, std::string help, std::vector<std::string> label_names,
              std::vector<double> bounds);
    void observe(LabelValues values, double sample);
    [[nodiscard]] std::uint64_t count(LabelValues values) const;
    void expose(std::string& out) const;

  private:
    struct Series {
        std::vector<std::uint64_t> buckets;  // per bound, not cumulative
        std::uint64_t count = 0;
        double sum = 0;
    };
    std::string name_;
    std::string help_;
    std::vector<std::string> label_names_;
    std::vector<double> bounds_;
    std::array<MetricShard<Series>, k_thread_shards> shards_;
};

// A value read when scraped: a gauge, or a counter kept elsewhere (an atomic
// of another thread).
class Gauge final {
  public:
    Gauge(std::string name, std::string help, std::function<double()> read,
          std::string_view type = "gauge");
    void expose(std::string& out) const;

  private:
    std::string name_;
    std::string help_;
    std::function<double()> read_;
    std::string type_;
};

class Registry final {
  public:
    // Families are exposed in the order they were made. Names must follow
    // Prometheus conventions (checked: [a-zA-Z_:][a-zA-Z0-9_:]*).
    Counter& counter(std::string name, std::string help, std::vector<std::string> label_names = {});
    Histogram& histogram(std::string name, std::string help, std::vector<std::string> label_names,
                         std::vector<double> bounds);
    void gauge(std::string name, std::string help, std::function<double()> read);
    void counter_fn(std::string name, std::string help, std::function<double()> read);
    // The whole exposition, "# HELP" and "# TYPE" lines included.
    [[nodiscard]] std::string expose() const;

  private:
    struct Family {
        std::unique_ptr<Counter> counter;
        std::unique_ptr<Histogram> histogram;
        std::unique_ptr<Gauge> gauge;
    };
    std::vector<Family> families_;
};

// Latency buckets in seconds from 50 µs to 10 s.
[[nodiscard]] std::vector<double> latency_buckets();

// A label value escaped for the exposition format (\\, \" and \n).
[[nodiscard]] std::string escape_label(std::string_view value);

}  // namespace pqmcp::observe
