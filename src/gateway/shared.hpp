// Internal: the gateway-wide state its sessions (and their filters) share,
// and each thread's own part of it.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <utility>

#include "guard.hpp"
#include "pqmcp/cluster/cluster.hpp"
#include "pqmcp/policy/behaviour.hpp"
#include "pqmcp/policy/limiter.hpp"
#include "pqmcp/policy/policy.hpp"
#include "recorder.hpp"
#include "upstream.hpp"

namespace pqmcp::gateway {

class GatewaySession;

// One thread's part of the gateway: what its sessions use that belongs to
// that thread alone. Touched only on the thread that runs services.io.
struct Shard {
    explicit Shard(Services s) : services(std::move(s)) {}
    Services services;  // its io is this thread's
    // Upstreams with `isolation: shared`: one client for every session of
    // this thread (so one server process per thread).
    std::map<std::string, std::shared_ptr<UpstreamClient>> shared_clients;
    std::set<GatewaySession*> sessions;  // the live ones (for the audit's started records)
    // Rates, quotas and baselines in Redis (cluster.redis), this thread's connection.
    std::unique_ptr<cluster::AsyncCounts> counts;
    bool shared_baselines = false;  // cluster.behaviour: shared
};

// Gateway-wide state the sessions share, from every thread: each member is
// safe to use from any of them (the limiter, baselines, guard and recorder
// lock inside; the rest is atomic or fixed before the threads start).
struct SharedState {
    explicit SharedState(Services& s, std::string version = {})
        : services(s),
          server_version(std::move(version)),
          clock([] { return std::chrono::steady_clock::now(); }),
          policy_generation_(next_policy_generation()) {}

    Services& services;  // the first thread's; its config is everyone's
    std::string server_version;
    // The policy in force (null: none). Replaced whole on reload; a decision
    // holds the one it started with. Rates, quotas and baselines outlive it.
    //
    // Every request asks, from every thread: each thread keeps a reference
    // of its own to the policy in force and renews it only when a reload
    // changed the generation, so that asking takes no lock and writes no
    // count that another thread writes (std::atomic<std::shared_ptr>'s load
    // takes a spin lock and the policy's one reference count).
    [[nodiscard]] std::shared_ptr<const policy::Policy> policy() const;
    void set_policy(std::shared_ptr<const policy::Policy> p);
    policy::Limiter limiter;
    policy::Behaviour behaviour;
    std::function<std::chrono::steady_clock::time_point()> clock;  // fixed once running
    Guard* guard = nullptr;        // tool integrity; null when turned off
    Recorder* recorder = nullptr;  // audit, metrics, dashboard; null in bare tests
    // Requests traced so far: each its "call" number.
    [[nodiscard]] std::uint64_t next_call() {
        return calls_.fetch_add(1, std::memory_order_relaxed) + 1;
    }

  private:
    // Unique in the process (so a thread's reference is never taken for
    // another gateway's): a new one on every set_policy().
    static std::uint64_t next_policy_generation();
    std::atomic<std::shared_ptr<const policy::Policy>> policy_;
    std::atomic<std::uint64_t> policy_generation_;
    std::atomic<std::uint64_t> calls_{0};
};

}  // namespace pqmcp::gateway
