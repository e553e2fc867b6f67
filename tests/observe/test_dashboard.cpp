// The dashboard's access rules, its data and its page.
#include <gtest/gtest.h>

#include <atomic>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

#include "pqmcp/observe/dashboard.hpp"

namespace pqmcp::observe {
namespace {

namespace json = boost::json;
using Clock = std::chrono::system_clock;

const std::string k_token = "0123456789abcdef0123456789abcdef";

Dashboard make(DashboardAccess access) {
    DashboardOptions o;
    o.access = access;
    o.token = k_token;
    return Dashboard(o);
}

unsigned status(const Dashboard& d, std::string_view target, std::string_view auth = {},
                bool verified = false) {
    const auto r = d.serve(target, auth, verified, Clock::now());
    return r ? r->status : 404;
}

TEST(Dashboard, TokenAccess) {
    const auto d = make(DashboardAccess::token);
    EXPECT_EQ(status(d, "/dashboard"), 401U);
    EXPECT_EQ(status(d, "/dashboard/data"), 401U);
    EXPECT_EQ(status(d, "/dashboard/data?token=wrong"), 401U);
    EXPECT_EQ(status(d, "/dashboard/data?token=" + k_token.substr(0, 31)), 401U);
    EXPECT_EQ(status(d, "/dashboard/data?token="), 401U);
    EXPECT_EQ(status(d, "/dashboard?token=" + k_token), 200U);
    EXPECT_EQ(status(d, "/?x=1&token=" + k_token), 200U);
    EXPECT_EQ(status(d, "/dashboard/data", "Bearer " + k_token), 200U);
    EXPECT_EQ(status(d, "/dashboard/data", "Bearer nope"), 401U);
    // The script holds nothing secret; unknown paths are not the dashboard's.
    EXPECT_EQ(status(d, "/dashboard/app.js"), 200U);
    EXPECT_FALSE(d.serve("/elsewhere", {}, false, Clock::now()));
    const auto refused = d.serve("/dashboard", {}, false, Clock::now());
    ASSERT_TRUE(refused);
    EXPECT_NE(refused->body.find("token"), std::string::npos);
}

TEST(Dashboard, IdentityOpenAndOff) {
    const auto id = make(DashboardAccess::identity);
    EXPECT_EQ(status(id, "/dashboard", {}, false), 403U);
    EXPECT_EQ(status(id, "/dashboard?token=" + k_token, {}, false), 403U);
    EXPECT_EQ(status(id, "/dashboard", {}, true), 200U);
    EXPECT_EQ(status(make(DashboardAccess::open), "/dashboard/data"), 200U);
    const auto off = make(DashboardAccess::off);
    EXPECT_EQ(status(off, "/dashboard?token=" + k_token), 404U);
    EXPECT_EQ(status(off, "/dashboard/app.js"), 404U);
}

TEST(Dashboard, PageAndScriptAreSelfContained) {
    const auto d = make(DashboardAccess::open);
    const auto page = d.serve("/", {}, false, Clock::now());
    ASSERT_TRUE(page);
    EXPECT_EQ(page->content_type, "text/html; charset=utf-8");
    EXPECT_NE(page->body.find("id=\"sessions\""), std::string::npos);
    EXPECT_NE(page->body.find("<script src=\"/dashboard/app.js\">"), std::string::npos);
    // Offline: nothing from elsewhere.
    for (const auto& body : {std::string(dashboard_page()), std::string(dashboard_script())}) {
        for (const char* remote : {"src=\"http", "href=\"http", "url(http", "@import", "//cdn"}) {
            EXPECT_EQ(body.find(remote), std::string::npos) << remote;
        }
    }
    bool csp = false;
    for (const auto& [name, value] : page->headers) {
        csp = csp || (name == "Content-Security-Policy" &&
                      value.find("default-src 'none'") != std::string::npos);
    }
    EXPECT_TRUE(csp);
}

// An open dashboard keeping `recent` entries of each list.
DashboardOptions open_options(std::size_t recent) {
    DashboardOptions o;
    o.access = DashboardAccess::open;
    o.recent = recent;
    return o;
}

DashboardSession session_at(std::string id, Clock::time_point opened) {
    DashboardSession s;
    s.id = std::move(id);
    s.opened = opened;
    return s;
}

TEST(Dashboard, DataHasSessionsPostureDecisionsAlertsAndSeries) {
    Dashboard d(open_options(3));
    const auto now = Clock::now();
    DashboardSession s = session_at("1a2b3c4d", now - std::chrono::seconds{90});
    s.peer_id = "pq1client";
    s.group = "X25519MLKEM768";
    s.signature = "mldsa65";
    d.session_opened(s);
    d.connection(json::object{{"result", "ok"},
                              {"group", "X25519MLKEM768"},
                              {"quantum_safe", true},
                              {"own_signature", "mldsa65"}});
    d.connection(json::object{{"result", "ok"},
                              {"group", "X25519MLKEM768"},
                              {"quantum_safe", true},
                              {"own_signature", "ecdsa_secp256r1_sha256"}});
    d.connection(json::object{{"result", "ok"}, {"group", "X25519"}, {"quantum_safe", false}});
    d.connection(json::object{{"result", "failed"}, {"error", "no shared group"}});
    for (int i = 0; i < 5; ++i) {
        json::object r{{"method", "tools/call"},
                       {"decision", i == 4 ? "deny" : "allow"},
                       {"target", "t" + std::to_string(i)},
                       {"args", json::object{{"big", std::string(100, 'x')}}}};
        if (i < 2) {
            // Only the first two have a rule: the entries reused for the
            // last ones must not show it.
            r["rule"] = "allow-reads-from-a-long-rule-name";
        }
        d.request(r, "1a2b3c4d", i == 4, now);
    }
    d.alert(json::object{{"event", "rug_pull"}, {"item", "demo__echo"}});
    const auto v = json::parse(d.data_json(now)).as_object();
    const auto& sessions = v.at("sessions").as_array();
    ASSERT_EQ(sessions.size(), 1U);
    EXPECT_EQ(sessions[0].at("peer_id").as_string(), "pq1client");
    EXPECT_EQ(sessions[0].at("age_s").as_int64(), 90);
    EXPECT_EQ(sessions[0].at("requests").to_number<std::uint64_t>(), 5U);
    EXPECT_EQ(sessions[0].at("denied").to_number<std::uint64_t>(), 1U);
    const auto& posture = v.at("posture").as_object();
    EXPECT_EQ(posture.at("handshakes").to_number<std::uint64_t>(), 3U);
    EXPECT_EQ(posture.at("failed").to_number<std::uint64_t>(), 1U);
    EXPECT_EQ(posture.at("classical").to_number<std::uint64_t>(), 1U);
    EXPECT_EQ(posture.at("classical_signatures").to_number<std::uint64_t>(), 1U);
    EXPECT_EQ(posture.at("by_group").at("X25519MLKEM768").to_number<std::uint64_t>(), 2U);
    // Recent lists are bounded and newest first.
    const auto& decisions = v.at("decisions").as_array();
    ASSERT_EQ(decisions.size(), 3U);
    EXPECT_EQ(decisions[0].at("target").as_string(), "t4");
    EXPECT_EQ(decisions[0].at("decision").as_string(), "deny");
    EXPECT_FALSE(decisions[0].as_object().contains("args")) << "only what the page shows";
    for (const auto& decision : decisions) {
        EXPECT_TRUE(decision.at("rule").is_null()) << json::serialize(decision);
    }
    EXPECT_EQ(v.at("alerts").as_array().size(), 1U);
    const auto& points = v.at("series").at("points").as_array();
    EXPECT_EQ(points.size(), 60U);
    EXPECT_EQ(points.back().as_array()[1].to_number<std::uint64_t>(), 5U);
    EXPECT_EQ(points.back().as_array()[2].to_number<std::uint64_t>(), 1U);
    EXPECT_EQ(points.front().as_array()[1].to_number<std::uint64_t>(), 0U);
    d.session_closed("1a2b3c4d");
    EXPECT_TRUE(json::parse(d.data_json(now)).at("sessions").as_array().empty());
}

// Requests from several threads at once (each counting into its own shard):
// the counts, the chart and the recent list add up, and a session's counts go
// when it closes.
TEST(Dashboard, RequestsFromSeveralThreadsAddUp) {
    Dashboard d(open_options(10));
    const auto now = Clock::now();
    for (const char* id : {"s0", "s1"}) {
        d.session_opened(session_at(id, now));
    }
    constexpr int k_threads = 4;
    constexpr int k_each = 5'000;
    std::atomic<bool> counting{true};
    std::thread viewer([&] {
        while (counting.load()) {
            EXPECT_FALSE(d.data_json(Clock::now()).empty());
        }
    });
    std::vector<std::thread> threads;
    threads.reserve(k_threads);
    for (int t = 0; t < k_threads; ++t) {
        threads.emplace_back([&, t] {
            for (int i = 0; i < k_each; ++i) {
                d.request(json::object{{"target", "t" + std::to_string(t)}},
                          t % 2 == 0 ? "s0" : "s1", i % 10 == 0,
                          now + std::chrono::microseconds{i});
            }
        });
    }
    for (auto& t : threads) {
        t.join();
    }
    counting = false;
    viewer.join();
    const auto v = json::parse(d.data_json(now)).as_object();
    const auto& sessions = v.at("sessions").as_array();
    ASSERT_EQ(sessions.size(), 2U);
    for (const auto& s : sessions) {
        EXPECT_EQ(s.at("requests").to_number<std::uint64_t>(), 2U * k_each) << json::serialize(s);
        EXPECT_EQ(s.at("denied").to_number<std::uint64_t>(), 2U * k_each / 10);
    }
    const auto& points = v.at("series").at("points").as_array();
    std::uint64_t requests = 0;
    for (const auto& p : points) {
        requests += p.as_array()[1].to_number<std::uint64_t>();
    }
    EXPECT_EQ(requests, static_cast<std::uint64_t>(k_threads * k_each));
    // The newest ten of all threads: the last request of each thread is at
    // the same instant, and nothing older than the tenth newest is shown.
    const auto& decisions = v.at("decisions").as_array();
    ASSERT_EQ(decisions.size(), 10U);
    std::set<std::string> targets;
    for (const auto& dec : decisions) {
        targets.insert(std::string(dec.at("target").as_string()));
    }
    EXPECT_EQ(targets.size(), static_cast<std::size_t>(k_threads));
    d.session_closed("s0");
    d.session_opened(session_at("s0", now));
    const auto again = json::parse(d.data_json(now)).as_object();
    for (const auto& s : again.at("sessions").as_array()) {
        if (s.at("id").as_string() == "s0") {
            EXPECT_EQ(s.at("requests").to_number<std::uint64_t>(), 0U) << "its counts went";
        }
    }
}

TEST(Dashboard, AccessNames) {
    EXPECT_EQ(parse_dashboard_access("token"), DashboardAccess::token);
    EXPECT_EQ(parse_dashboard_access("identity"), DashboardAccess::identity);
    EXPECT_FALSE(parse_dashboard_access("public"));
    EXPECT_EQ(to_string(DashboardAccess::off), "off");
}

}  // namespace
}  // namespace pqmcp::observe
