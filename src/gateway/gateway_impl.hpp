// Internal: the gateway's state, shared by its files: starting, running and
// stopping it (gateway.cpp) and what it runs beside its sessions: the
// policy and its reloads, the audit writer, dashboard and metrics, the
// sandbox supervisor (gateway_services.cpp).
#pragma once

#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>
#include <atomic>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <cerrno>
#include <charconv>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <future>
#include <thread>
#include "pqmcp/audit/audit.hpp"
#include "pqmcp/cluster/cluster.hpp"
#include "pqmcp/core/bytes.hpp"
#include "pqmcp/crypto/util.hpp"
#include "pqmcp/gateway/gateway.hpp"
#include "pqmcp/identity/identity.hpp"
#include "pqmcp/identity/known_peers.hpp"
#include "pqmcp/oauth/resource.hpp"
#include "pqmcp/observe/dashboard.hpp"
#include "pqmcp/observe/metrics_server.hpp"
#include "pqmcp/policy/policy.hpp"
#include "pqmcp/tls/context.hpp"
#include "pqmcp/tls/profile.hpp"
#include "pqmcp/transport/child.hpp"
#include "pqmcp/transport/http_server.hpp"
#include "pqmcp/transport/http_util.hpp"
#include "sandbox_policy.hpp"
#include "session.hpp"

namespace pqmcp::gateway {

namespace asio = boost::asio;

// A thread's io_context whose services (and the handlers still queued in
// them) can be shut down before any of the gateway's contexts is destroyed:
// a queued handler may hold what belongs to another thread's context.
struct ShardContext : asio::io_context {
    using asio::execution_context::shutdown;
    using asio::io_context::io_context;
};

// The first line of a secret's file (a token, a client secret), trailing
// CR and spaces removed; a file others may read, or an empty line, is
// refused. `what` names the setting in errors.
Result<std::string> read_secret_line(const std::filesystem::path& file, const std::string& what);

// The gateway's identity (IDENTITY), created with the profile's first
// algorithm if missing; `created` tells whether it was.
Result<identity::Identity> own_identity(const GatewayConfig& c, bool* created);
// The TLS client context towards an https upstream (its pins, CA or the
// known peers; our identity when its profile allows it).
Result<crypto::SslCtxPtr> upstream_context(const UpstreamConfig& u, const transport::Url& url,
                                           const identity::Identity& own,
                                           const identity::KnownPeers* known, bool raw_public_keys);
// upstreams[].oauth.client_secret_file's first line; "" for a public client.
Result<std::string> upstream_client_secret(const UpstreamConfig& u);

struct Gateway::Impl {
    explicit Impl(GatewayConfig c, std::string version)
        : config(std::move(c)),
          services{io, config, children, {}, nullptr, {}, {}, {}},
          shared(services, std::move(version)) {}

    GatewayConfig config;
    // The first thread's: the listening socket, signals, policy reloads and
    // the other services run here beside its share of the connections.
    ShardContext io{1};
    // The other threads' (serve --threads), each run by one thread.
    std::vector<std::unique_ptr<ShardContext>> workers;
    std::vector<asio::executor_work_guard<asio::io_context::executor_type>> keep_working;
    ChildCount children;
    Services services;
    SharedState shared;
    std::vector<std::unique_ptr<Shard>> shards;  // one per thread, the first on `io`
    std::optional<identity::Identity> own;
    std::optional<identity::Identity> browser;  // the optional ECDSA P-256 certificate
    std::optional<identity::KnownPeers> known;
    std::unique_ptr<Guard> guard;  // tool integrity (null: turned off); signs with `own`
    crypto::SslCtxPtr server_context;
    std::vector<crypto::SslCtxPtr> upstream_contexts;
    crypto::SslCtxPtr oauth_tls;                   // for an https authorization server
    std::unique_ptr<oauth::ResourceServer> oauth;  // null: no auth.oauth
    std::unique_ptr<transport::HttpServer> server;
    std::unique_ptr<audit::Writer> audit;           // null: turned off
    std::unique_ptr<cluster::Shipper> shipper;      // null: no cluster.postgres or no audit
    std::unique_ptr<observe::Dashboard> dashboard;  // null: turned off
    std::unique_ptr<Recorder> recorder;
    std::unique_ptr<observe::MetricsServer> metrics;  // null: no --metrics
    std::unique_ptr<sandbox::Supervisor> supervisor;  // null: no sandboxed upstream
    std::filesystem::path tmp_root;                   // the children's TMPDIRs, removed at the end
    GatewayInfo info;
    bool stopping = false;
    std::atomic<bool> ran{false};  // run() has served and stopped: nothing runs posted work
    asio::steady_timer policy_watch{io};
    asio::steady_timer audit_sweep{io};
    std::optional<std::pair<std::filesystem::file_time_type, std::uintmax_t>> policy_stamp;

    void begin_shutdown();
    Status start_observing();  // the audit writer, the dashboard, the recorder
    Status start_sandbox();    // checks every stdio upstream's sandbox; the supervisor
    Status start_cluster();    // shared rates on Redis, the audit shipped to PostgreSQL
    void close_audit();        // the writer's last records, then their shipping
    Status apply_policy(bool initial);
    void watch_policy();
    void sweep_started();  // "started" audit records of requests in flight
    void make_shards();    // once services is complete, before the listener
    void drain();          // runs what is ready on every thread's queue (after run())
    [[nodiscard]] Shard& shard_of(const asio::io_context& context);
};

}  // namespace pqmcp::gateway
