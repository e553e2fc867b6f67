// The Prometheus exposition: names, labels, escaping, histogram buckets.
#include <gtest/gtest.h>

#include <stdexcept>

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
