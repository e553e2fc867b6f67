// The gateway behind `pqmcp serve`: the PQ TLS listener with MCP Streamable
// HTTP at /mcp, in front of the configured upstreams. Single-threaded: every
// session, upstream and timer runs on the gateway's own io_context.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "pqmcp/core/error.hpp"
#include "pqmcp/gateway/config.hpp"

namespace pqmcp::gateway {

struct GatewayInfo {
    std::string url;  // https://127.0.0.1:8443/mcp
    std::uint16_t port = 0;
    std::string peer_id;                 // the gateway's own (pq1...)
    bool identity_created = false;       // a new identity was made at start
    std::string browser_certificate_id;  // ec1... of the browser certificate, "" without one
    std::string profile;
    std::vector<std::string> upstreams;
    std::string policy;         // "gw.yaml (3f2a..., 5 rules)" or "" without one
    std::string audit;          // the audit database, "" when turned off
    std::string dashboard_url;  // with its token when it needs one; "" when off
    std::string metrics_url;    // "" without --metrics
    std::size_t threads = 1;    // serving connections and sessions
};

struct GatewayStats {
    std::size_t sessions = 0;
    std::size_t connections = 0;
    std::size_t children = 0;
    std::size_t buffered_bytes = 0;       // messages waiting in SSE streams
    std::uint64_t connections_moved = 0;  // connections moved to their session's home thread
};

class Gateway final {
  public:
    // Validates the configuration, loads (or creates) the identity, builds the
    // TLS contexts and binds the listener. Errors: invalid_config, startup_failed.
    [[nodiscard]] static Result<std::unique_ptr<Gateway>> create(GatewayConfig config,
                                                                 std::string version);
    ~Gateway();
    Gateway(const Gateway&) = delete;
    Gateway& operator=(const Gateway&) = delete;
    Gateway(Gateway&&) = delete;
    Gateway& operator=(Gateway&&) = delete;

    [[nodiscard]] const GatewayInfo& info() const noexcept;

    // Serves until shutdown() (or, with `handle_signals`, SIGINT/SIGTERM), then
    // ends every session, stops every upstream process and returns once they
    // are reaped (or after their grace periods). `on_ready` runs once the
    // signals are handled, before serving: what it announces can be stopped
    // with a signal at once.
    void run(bool handle_signals, const std::function<void()>& on_ready = {});
    // Thread-safe: asks run() to finish.
    void shutdown();
    // Thread-safe: reads the policy again (as SIGHUP does); an invalid one is
    // logged and the one in force stays. Returns once done, with the outcome.
    // Both calls are done on run()'s thread (called before run(), they wait
    // for it) and wait for it at most 10 s; once run() has returned, or past
    // that: Errc::not_running.
    Status reload_policy();
    // Thread-safe snapshot (taken on the gateway's thread).
    [[nodiscard]] Result<GatewayStats> stats();

    struct Impl;

  private:
    explicit Gateway(std::unique_ptr<Impl> impl);
    std::unique_ptr<Impl> impl_;
};

}  // namespace pqmcp::gateway
