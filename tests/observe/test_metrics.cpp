// The Prometheus exposition: names, labels, escaping, histogram buckets.
#include <gtest/gtest.h>

#include <atomic>
#include <mutex>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "pqmcp/observe/metrics.hpp"

namespace pqmcp::observe {
namespace {

TEST(Metrics, CountersWithLabelsInTheTextFormat) {
    Registry r;
    auto& c = r.counter("pqmcp_requests_total", "Requests", {"method", "decision"});
    c.inc({"tools/call", "allow"});
    c.inc({"tools/call", "allow"});
    c.inc({"tools/call", "deny"});
    EXPECT_EQ(c.value({"tools/call", "allow"}), 2);
    EXPECT_EQ(c.value({"tools/list", "allow"}), 0);
    const std::string text = r.expose();
    EXPECT_NE(text.find("# HELP pqmcp_requests_total Requests\n"), std::string::npos);
    EXPECT_NE(text.find("# TYPE pqmcp_requests_total counter\n"), std::string::npos);
    EXPECT_NE(text.find("pqmcp_requests_total{method=\"tools/call\",decision=\"allow\"} 2\n"),
              std::string::npos);
    EXPECT_NE(text.find("pqmcp_requests_total{method=\"tools/call\",decision=\"deny\"} 1\n"),
              std::string::npos);
}

TEST(Metrics, AnUnlabelledCounterIsExposedAtZero) {
    Registry r;
    r.counter("pqmcp_drops_total", "Drops");
    EXPECT_NE(r.expose().find("\npqmcp_drops_total 0\n"), std::string::npos);
}

TEST(Metrics, LabelValuesAreEscaped) {
    EXPECT_EQ(escape_label("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    Registry r;
    r.counter("x_total", "x", {"v"}).inc({"say \"hi\""});
    EXPECT_NE(r.expose().find("x_total{v=\"say \\\"hi\\\"\"} 1"), std::string::npos);
}

TEST(Metrics, HistogramBucketsAreCumulativeWithInfSumAndCount) {
    Registry r;
    auto& h = r.histogram("pqmcp_latency_seconds", "Latency", {"upstream"}, {0.001, 0.01, 0.1});
    h.observe({"demo"}, 0.0005);
    h.observe({"demo"}, 0.005);
    h.observe({"demo"}, 0.005);
    h.observe({"demo"}, 5.0);
    EXPECT_EQ(h.count({"demo"}), 4U);
    const std::string text = r.expose();
    EXPECT_NE(text.find("# TYPE pqmcp_latency_seconds histogram"), std::string::npos);
    EXPECT_NE(text.find("pqmcp_latency_seconds_bucket{upstream=\"demo\",le=\"0.001\"} 1\n"),
              std::string::npos);
    EXPECT_NE(text.find("pqmcp_latency_seconds_bucket{upstream=\"demo\",le=\"0.01\"} 3\n"),
              std::string::npos);
    EXPECT_NE(text.find("pqmcp_latency_seconds_bucket{upstream=\"demo\",le=\"0.1\"} 3\n"),
              std::string::npos);
    EXPECT_NE(text.find("pqmcp_latency_seconds_bucket{upstream=\"demo\",le=\"+Inf\"} 4\n"),
              std::string::npos);
    EXPECT_NE(text.find("pqmcp_latency_seconds_count{upstream=\"demo\"} 4\n"), std::string::npos);
    EXPECT_NE(text.find("pqmcp_latency_seconds_sum{upstream=\"demo\"} 5.0105\n"),
              std::string::npos);
}

// Each thread counts into its own shard; value(), count() and a scrape (one
// running while they count, too) add the shards up, exactly.
TEST(Metrics, ThreadsCountInTheirOwnShardsAndAScrapeAddsThemUp) {
    Registry r;
    auto& c = r.counter("pqmcp_requests_total", "Requests", {"decision"});
    auto& h = r.histogram("pqmcp_latency_seconds", "Latency", {"upstream"}, {0.001, 0.01});
    constexpr int k_threads = 4;
    constexpr int k_each = 20'000;
    std::set<std::size_t> shards;
    std::mutex shards_mutex;
    std::atomic<bool> counting{true};
    std::thread scraper([&] {
        std::size_t scrapes = 0;
        while (counting.load() || scrapes == 0) {
            EXPECT_NE(r.expose().find("# TYPE pqmcp_requests_total counter"), std::string::npos);
            ++scrapes;
        }
    });
    std::vector<std::thread> threads;
    threads.reserve(k_threads);
    for (int t = 0; t < k_threads; ++t) {
        threads.emplace_back([&, t] {
            {
                const std::lock_guard lock(shards_mutex);
                shards.insert(thread_shard());
            }
            for (int i = 0; i < k_each; ++i) {
                c.inc({i % 2 == 0 ? "allow" : "deny"});
                h.observe({"demo"}, t == 0 ? 0.0005 : 0.005);
            }
        });
    }
    for (auto& t : threads) {
        t.join();
    }
    counting = false;
    scraper.join();
    EXPECT_EQ(shards.size(), static_cast<std::size_t>(k_threads));  // one each
    EXPECT_EQ(c.value({"allow"}), k_threads * k_each / 2);
    EXPECT_EQ(c.value({"deny"}), k_threads * k_each / 2);
    EXPECT_EQ(h.count({"demo"}), static_cast<std::uint64_t>(k_threads * k_each));
    const std::string text = r.expose();
    EXPECT_NE(text.find("pqmcp_requests_total{decision=\"allow\"} 40000\n"), std::string::npos)
        << text;
    EXPECT_NE(text.find("pqmcp_latency_seconds_bucket{upstream=\"demo\",le=\"0.001\"} 20000\n"),
              std::string::npos)
        << text;
    EXPECT_NE(text.find("pqmcp_latency_seconds_bucket{upstream=\"demo\",le=\"0.01\"} 80000\n"),
              std::string::npos)
        << text;
    EXPECT_NE(text.find("pqmcp_latency_seconds_count{upstream=\"demo\"} 80000\n"),
              std::string::npos)
        << text;
    // A series appears once in the scrape, however many shards hold it.
    const auto first = text.find("pqmcp_requests_total{decision=\"allow\"}");
    EXPECT_EQ(text.find("pqmcp_requests_total{decision=\"allow\"}", first + 1), std::string::npos);
}

TEST(Metrics, GaugesAndExternalCountersAreReadWhenScraped) {
    Registry r;
    double open = 3;
    r.gauge("pqmcp_sessions_open", "Sessions", [&open] { return open; });
    r.counter_fn("pqmcp_written_total", "Written", [] { return 42.0; });
    std::string text = r.expose();
    EXPECT_NE(text.find("# TYPE pqmcp_sessions_open gauge\npqmcp_sessions_open 3\n"),
              std::string::npos);
    EXPECT_NE(text.find("# TYPE pqmcp_written_total counter\npqmcp_written_total 42\n"),
              std::string::npos);
    open = 0;
    EXPECT_NE(r.expose().find("pqmcp_sessions_open 0\n"), std::string::npos);
}

TEST(Metrics, InvalidNamesAndUnsortedBucketsAreRefused) {
    Registry r;
    EXPECT_THROW(r.counter("9bad", "x"), std::invalid_argument);
    EXPECT_THROW(r.counter("has-dash_total", "x"), std::invalid_argument);
    EXPECT_THROW(r.histogram("h_seconds", "x", {}, {1.0, 0.5}), std::invalid_argument);
}

}  // namespace
}  // namespace pqmcp::observe
