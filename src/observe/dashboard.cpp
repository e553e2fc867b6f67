#include "pqmcp/observe/dashboard.hpp"

#include <algorithm>
#include <vector>

#include <openssl/crypto.h>
#include <boost/json/array.hpp>
#include <boost/json/serialize.hpp>

namespace pqmcp::observe {

namespace json = boost::json;
using Clock = std::chrono::system_clock;

namespace detail {
extern const std::string_view k_dashboard_html;
extern const std::string_view k_dashboard_js;
}  // namespace detail

std::string_view dashboard_page() noexcept {
    return detail::k_dashboard_html;
}

std::string_view dashboard_script() noexcept {
    return detail::k_dashboard_js;
}

std::optional<DashboardAccess> parse_dashboard_access(std::string_view text) noexcept {
    if (text == "off") {
        return DashboardAccess::off;
    }
    if (text == "open") {
        return DashboardAccess::open;
    }
    if (text == "token") {
        return DashboardAccess::token;
    }
    if (text == "identity") {
        return DashboardAccess::identity;
    }
    return std::nullopt;
}

std::string_view to_string(DashboardAccess access) noexcept {
    switch (access) {
        case DashboardAccess::off:
            return "off";
        case DashboardAccess::open:
            return "open";
        case DashboardAccess::token:
            return "token";
        case DashboardAccess::identity:
            return "identity";
    }
    return "?";
}

namespace {

void push_bounded(std::deque<json::object>& list, json::object item, std::size_t max) {
    list.push_back(std::move(item));
    while (list.size() > max) {
        list.pop_front();
    }
}

json::array newest_first(const std::deque<json::object>& list) {
    json::array out;
    out.reserve(list.size());
    for (auto it = list.rbegin(); it != list.rend(); ++it) {
        out.emplace_back(*it);
    }
    return out;
}

// Sessions a shard keeps counts for; beyond it (requests of sessions that
// were never opened here, which closing would not remove) it starts again.
constexpr std::size_t k_max_counted_sessions = 65'536;

std::int64_t epoch_seconds(Clock::time_point t) {
    return std::chrono::duration_cast<std::chrono::seconds>(t.time_since_epoch()).count();
}

std::string_view string_field(const json::object& o, std::string_view key) {
    const auto* v = o.if_contains(key);
    return v != nullptr && v->is_string() ? std::string_view(v->get_string()) : std::string_view{};
}

// The value of `name` in the query of `target` ("" if absent).
std::string_view query_param(std::string_view target, std::string_view name) {
    const auto q = target.find('?');
    if (q == std::string_view::npos) {
        return {};
    }
    std::string_view rest = target.substr(q + 1);
    while (!rest.empty()) {
        const auto amp = rest.find('&');
        const std::string_view pair = rest.substr(0, amp);
        const auto eq = pair.find('=');
        if (pair.substr(0, eq) == name && eq != std::string_view::npos) {
            return pair.substr(eq + 1);
        }
        if (amp == std::string_view::npos) {
            break;
        }
        rest = rest.substr(amp + 1);
    }
    return {};
}

bool same_secret(std::string_view a, std::string_view b) {
    return !a.empty() && a.size() == b.size() && CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

Dashboard::Response text(unsigned status, std::string body) {
    return {status, "text/plain; charset=utf-8", std::move(body), {{"Cache-Control", "no-store"}}};
}

}  // namespace

Dashboard::Dashboard(DashboardOptions options)
    : options_(std::move(options)), started_(Clock::now()) {}

void Dashboard::set_gateway(json::object info) {
    const std::lock_guard lock(mutex_);
    gateway_ = std::move(info);
}

void Dashboard::session_opened(DashboardSession session) {
    const std::lock_guard lock(mutex_);
    auto id = session.id;
    sessions_.insert_or_assign(std::move(id), std::move(session));
}

void Dashboard::session_closed(const std::string& id) {
    {
        const std::lock_guard lock(mutex_);
        sessions_.erase(id);
    }
    for (auto& shard : shards_) {
        const std::lock_guard lock(shard.mutex);
        shard.sessions.erase(id);
    }
}

void Dashboard::connection(const json::object& record) {
    const std::lock_guard lock(mutex_);
    push_bounded(connections_, record, options_.recent);
    if (string_field(record, "result") != "ok") {
        ++failed_handshakes_;
        return;
    }
    ++handshakes_;
    const std::string group(string_field(record, "group"));
    ++by_group_[group.empty() ? std::string("(resumed, no key exchange)") : group];
    const auto* safe = record.if_contains("quantum_safe");
    if (safe != nullptr && safe->is_bool() && !safe->get_bool()) {
        ++classical_;
    }
    // Our own signature: ML-DSA, none (resumed), or the classical browser certificate.
    const auto signature = string_field(record, "own_signature");
    if (!signature.empty() && !signature.starts_with("mldsa")) {
        ++classical_signatures_;
    }
}

void Dashboard::advance(RequestShard& shard, const DashboardOptions& options,
                        Clock::time_point now) {
    const std::int64_t width = options.interval.count();
    const std::int64_t start = epoch_seconds(now) / width * width;
    if (shard.series.empty() || shard.series.back().start < start) {
        shard.series.push_back(Bucket{start, 0, 0});
    }
    while (shard.series.size() > options.intervals) {
        shard.series.pop_front();
    }
}

void Dashboard::request(const json::object& record, const std::string& session, bool denied,
                        Clock::time_point now) {
    RequestShard& shard = shards_[thread_shard()];
    const std::lock_guard lock(shard.mutex);
    advance(shard, options_, now);
    ++shard.series.back().requests;
    if (denied) {
        ++shard.series.back().denied;
    }
    // Once the list is full the oldest entry is reused, its strings'
    // buffers with it: a request costs no allocation here.
    RecentDecision d;
    if (!shard.decisions.empty() && shard.decisions.size() >= options_.recent) {
        d = std::move(shard.decisions.front());
        shard.decisions.pop_front();
    }
    const auto text = [&record](std::string& into, std::string_view key) {
        const auto* v = record.if_contains(key);
        if (v != nullptr && v->is_string()) {
            into.assign(v->get_string().data(), v->get_string().size());
        } else {
            into.clear();
        }
    };
    d.at = now;
    text(d.ts, "ts");
    text(d.session, "session");
    text(d.identity, "identity");
    text(d.method, "method");
    text(d.target, "target");
    text(d.decision, "decision");
    text(d.rule, "rule");
    const auto* latency = record.if_contains("latency_us");
    d.latency_us =
        latency != nullptr && latency->is_int64() ? latency->get_int64() : std::int64_t{0};
    shard.decisions.push_back(std::move(d));
    while (shard.decisions.size() > options_.recent) {
        shard.decisions.pop_front();
    }
    // A session's counts, until it closes (then they go with it). Bounded
    // for requests of sessions the dashboard never saw open.
    if (shard.sessions.size() >= k_max_counted_sessions &&
        shard.sessions.find(session) == shard.sessions.end()) {
        shard.sessions.clear();
    }
    Counts& c = shard.sessions[session];
    ++c.requests;
    if (denied) {
        ++c.denied;
    }
}

void Dashboard::alert(const json::object& record) {
    const std::lock_guard lock(mutex_);
    push_bounded(alerts_, record, options_.recent);
}

std::string Dashboard::data_json(Clock::time_point now) const {
    // What the threads' shards hold, added up (each shard's lock in turn).
    const std::int64_t width = options_.interval.count();
    const std::int64_t last = epoch_seconds(now) / width * width;
    const std::int64_t first = last - (static_cast<std::int64_t>(options_.intervals) - 1) * width;
    std::map<std::int64_t, Bucket> buckets;
    std::vector<RecentDecision> recent;
    std::map<std::string, Counts, std::less<>> counts;
    for (const auto& shard : shards_) {
        const std::lock_guard lock(shard.mutex);
        for (const auto& b : shard.series) {
            if (b.start >= first && b.start <= last) {
                Bucket& into = buckets[b.start];
                into.requests += b.requests;
                into.denied += b.denied;
            }
        }
        recent.insert(recent.end(), shard.decisions.rbegin(), shard.decisions.rend());
        for (const auto& [id, c] : shard.sessions) {
            Counts& into = counts[id];
            into.requests += c.requests;
            into.denied += c.denied;
        }
    }
    // The newest `recent` of them, newest first (a shard's newest first
    // already, for requests of the same instant).
    std::stable_sort(recent.begin(), recent.end(),
                     [](const RecentDecision& a, const RecentDecision& b) { return a.at > b.at; });
    if (recent.size() > options_.recent) {
        recent.resize(options_.recent);
    }

    const std::lock_guard lock(mutex_);
    json::object out;
    json::object gw = gateway_;
    gw["uptime_s"] = std::chrono::duration_cast<std::chrono::seconds>(now - started_).count();
    out["gateway"] = std::move(gw);
    const auto counted = [&counts](const std::string& id) {
        const auto it = counts.find(id);
        return it == counts.end() ? Counts{} : it->second;
    };
    json::array sessions;
    for (const auto& [id, s] : sessions_) {
        sessions.emplace_back(json::object{
            {"id", s.id},
            {"remote", s.remote},
            {"peer_id", s.peer_id.empty() ? json::value(nullptr) : json::value(s.peer_id)},
            {"peer_name", s.peer_name.empty() ? json::value(nullptr) : json::value(s.peer_name)},
            {"peer_verified", s.peer_verified},
            {"group", s.group},
            {"signature", s.signature},
            {"cipher", s.cipher},
            {"age_s", std::chrono::duration_cast<std::chrono::seconds>(now - s.opened).count()},
            {"requests", s.requests + counted(id).requests},
            {"denied", s.denied + counted(id).denied}});
    }
    out["sessions"] = std::move(sessions);
    json::object groups;
    for (const auto& [group, n] : by_group_) {
        groups[group] = n;
    }
    out["posture"] = json::object{{"handshakes", handshakes_},
                                  {"failed", failed_handshakes_},
                                  {"classical", classical_},
                                  {"classical_signatures", classical_signatures_},
                                  {"by_group", std::move(groups)}};
    out["connections"] = newest_first(connections_);
    json::array decisions;
    decisions.reserve(recent.size());
    const auto or_null = [](const std::string& s) {
        return s.empty() ? json::value(nullptr) : json::value(s);
    };
    for (const auto& d : recent) {
        decisions.emplace_back(json::object{{"ts", d.ts},
                                            {"session", d.session},
                                            {"identity", or_null(d.identity)},
                                            {"method", d.method},
                                            {"target", d.target},
                                            {"decision", d.decision},
                                            {"rule", or_null(d.rule)},
                                            {"latency_us", d.latency_us}});
    }
    out["decisions"] = std::move(decisions);
    out["alerts"] = newest_first(alerts_);
    // The chart: every interval of the window, empty ones included.
    json::array points;
    for (std::int64_t t = first; t <= last; t += width) {
        const auto it = buckets.find(t);
        const bool hit = it != buckets.end();
        points.emplace_back(
            json::array{t, hit ? it->second.requests : 0, hit ? it->second.denied : 0});
    }
    out["series"] = json::object{{"interval_s", width}, {"points", std::move(points)}};
    return json::serialize(out);
}

bool Dashboard::authorized(std::string_view target, std::string_view authorization,
                           bool peer_verified) const {
    switch (options_.access) {
        case DashboardAccess::off:
            return false;
        case DashboardAccess::open:
            return true;
        case DashboardAccess::identity:
            return peer_verified;
        case DashboardAccess::token: {
            constexpr std::string_view k_bearer = "Bearer ";
            if (authorization.substr(0, k_bearer.size()) == k_bearer &&
                same_secret(authorization.substr(k_bearer.size()), options_.token)) {
                return true;
            }
            return same_secret(query_param(target, "token"), options_.token);
        }
    }
    return false;
}

std::optional<Dashboard::Response> Dashboard::serve(std::string_view target,
                                                    std::string_view authorization,
                                                    bool peer_verified,
                                                    Clock::time_point now) const {
    const std::string_view path = target.substr(0, target.find('?'));
    const bool page = path == "/" || path == "/dashboard" || path == "/dashboard/";
    const bool script = path == "/dashboard/app.js";
    const bool data = path == "/dashboard/data";
    if ((!page && !script && !data) || options_.access == DashboardAccess::off) {
        return std::nullopt;
    }
    // The script is static and holds nothing secret.
    if (!script && !authorized(target, authorization, peer_verified)) {
        if (options_.access == DashboardAccess::identity) {
            return text(403,
                        "forbidden: the dashboard needs a client certificate the gateway "
                        "verifies (pinned, known_peers or CA)\n");
        }
        Response r = text(401,
                          "unauthorized: open the dashboard with ?token=... (the "
                          "gateway prints the address at start)\n");
        r.headers.emplace_back("WWW-Authenticate", "Bearer realm=\"pqmcp dashboard\"");
        return r;
    }
    Response r;
    r.headers = {{"Cache-Control", "no-store"},
                 {"X-Content-Type-Options", "nosniff"},
                 {"Referrer-Policy", "no-referrer"},
                 {"Content-Security-Policy",
                  "default-src 'none'; script-src 'self'; style-src 'unsafe-inline'; "
                  "connect-src 'self'; img-src 'self' data:; frame-ancestors 'none'"}};
    if (page) {
        r.content_type = "text/html; charset=utf-8";
        r.body = std::string(dashboard_page());
    } else if (script) {
        r.content_type = "text/javascript; charset=utf-8";
        r.body = std::string(dashboard_script());
    } else {
        r.content_type = "application/json";
        r.body = data_json(now);
    }
    return r;
}

}  // namespace pqmcp::observe
