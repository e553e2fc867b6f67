// The gateway's live dashboard: a page at / and /dashboard on the gateway's
// own TLS listener, and the JSON it polls at /dashboard/data. The state is
// kept here (live sessions, recent connections, decisions and integrity
// alerts, per-group connection counts, requests and denials per interval);
// the gateway feeds it from all its threads. Thread-safe: what every request
// updates (the chart, the recent decisions, each session's counts) is kept in
// a shard per thread, whose lock only that thread and a render take; the rest
// (sessions opening and closing, connections, alerts) has one lock, held by
// each update and while the data is rendered.
#pragma once

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <boost/json/object.hpp>

#include "pqmcp/core/thread_shard.hpp"
#include "pqmcp/observe/metrics.hpp"

namespace pqmcp::observe {

enum class DashboardAccess {
    off,       // not served (404)
    open,      // any client with a completed TLS handshake
    token,     // ?token=... or Authorization: Bearer ...
    identity,  // a client certificate the gateway verified (pinned, known_peers, CA)
};
[[nodiscard]] std::optional<DashboardAccess> parse_dashboard_access(std::string_view text) noexcept;
[[nodiscard]] std::string_view to_string(DashboardAccess access) noexcept;

struct DashboardOptions {
    DashboardAccess access = DashboardAccess::token;
    std::string token;                  // with access token; empty: made at start
    std::size_t recent = 100;           // decisions, alerts and connections kept
    std::chrono::seconds interval{10};  // of the requests/denials chart
    std::size_t intervals = 60;         // kept for the chart
};

struct DashboardSession {
    std::string id;  // the first 8 characters of the MCP session id
    std::string remote;
    std::string peer_id;  // "" without a client certificate
    std::string peer_name;
    bool peer_verified = false;
    std::string group;
    std::string signature;  // the scheme the gateway signed with
    std::string cipher;
    std::chrono::system_clock::time_point opened;
    std::uint64_t requests = 0;
    std::uint64_t denied = 0;
};

class Dashboard final {
  public:
    explicit Dashboard(DashboardOptions options);

    [[nodiscard]] const DashboardOptions& options() const noexcept { return options_; }

    void set_gateway(boost::json::object info);  // peer id, profile, version, url
    void session_opened(DashboardSession session);
    void session_closed(const std::string& id);
    // A connection record (the audit record: result, group, peer_signature,
    // own_signature, peer_id, remote, ts...).
    void connection(const boost::json::object& record);
    // A request record; `denied`: it was refused (policy, integrity, schema).
    void request(const boost::json::object& record, const std::string& session, bool denied,
                 std::chrono::system_clock::time_point now);
    void alert(const boost::json::object& record);

    // What /dashboard/data returns.
    [[nodiscard]] std::string data_json(std::chrono::system_clock::time_point now) const;

    // A GET on the gateway's listener: the page, its script or its data when
    // `target` is one of them and access is granted; 401/403 when not;
    // nullopt for other paths. `peer_verified`: the client's certificate was
    // verified; `authorization`: the Authorization header.
    struct Response {
        unsigned status = 200;
        std::string content_type;
        std::string body;
        std::vector<std::pair<std::string, std::string>> headers;
    };
    [[nodiscard]] std::optional<Response> serve(std::string_view target,
                                                std::string_view authorization, bool peer_verified,
                                                std::chrono::system_clock::time_point now) const;

  private:
    [[nodiscard]] bool authorized(std::string_view target, std::string_view authorization,
                                  bool peer_verified) const;

    DashboardOptions options_;
    mutable std::mutex mutex_;
    boost::json::object gateway_;
    std::map<std::string, DashboardSession> sessions_;
    std::deque<boost::json::object> connections_;
    // What the page shows of a request: its record's displayed fields only
    // (kept for every request, so copied cheaply, rendered when asked).
    struct RecentDecision {
        std::chrono::system_clock::time_point at;  // orders the shards' lists
        std::string ts;
        std::string session;
        std::string identity;
        std::string method;
        std::string target;
        std::string decision;
        std::string rule;
        std::int64_t latency_us = 0;
    };
    std::deque<boost::json::object> alerts_;
    std::map<std::string, std::uint64_t> by_group_;  // successful handshakes per group
    std::uint64_t handshakes_ = 0;
    std::uint64_t failed_handshakes_ = 0;
    std::uint64_t classical_ = 0;             // key exchange without ML-KEM
    std::uint64_t classical_signatures_ = 0;  // authenticated by the ECDSA browser certificate
    struct Bucket {
        std::int64_t start = 0;  // seconds since the epoch
        std::uint64_t requests = 0;
        std::uint64_t denied = 0;
    };
    struct Counts {
        std::uint64_t requests = 0;
        std::uint64_t denied = 0;
    };
    // A thread's share of what requests update (pqmcp::thread_shard()).
    struct alignas(64) RequestShard {
        mutable std::mutex mutex;
        std::deque<Bucket> series;
        std::deque<RecentDecision> decisions;
        std::map<std::string, Counts, std::less<>> sessions;  // by session id
    };
    static void advance(RequestShard& shard, const DashboardOptions& options,
                        std::chrono::system_clock::time_point now);
    std::array<RequestShard, k_thread_shards> shards_;
    std::chrono::system_clock::time_point started_;
};

// The page and its script (compiled in from data/dashboard/).
[[nodiscard]] std::string_view dashboard_page() noexcept;
[[nodiscard]] std::string_view dashboard_script() noexcept;

}  // namespace pqmcp::observe
