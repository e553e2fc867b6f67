// Internal: the gateway-wide state its sessions (and their filters) share.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <utility>

#include "guard.hpp"
#include "pqmcp/policy/behaviour.hpp"
#include "pqmcp/policy/limiter.hpp"
#include "pqmcp/policy/policy.hpp"
#include "recorder.hpp"
#include "upstream.hpp"

namespace pqmcp::gateway {

class GatewaySession;

// Gateway-wide state the sessions share.
struct SharedState {
    explicit SharedState(Services& s, std::string version = {})
        : services(s),
          server_version(std::move(version)),
          clock([] { return std::chrono::steady_clock::now(); }) {}

    Services& services;
    // Upstreams with `isolation: shared`: one client for every session.
    std::map<std::string, std::shared_ptr<UpstreamClient>> shared_clients;
    std::string server_version;
    // The policy in force (null: none). Replaced whole on reload; a decision
    // holds the one it started with. Rates, quotas and baselines outlive it.
    std::shared_ptr<const policy::Policy> policy;
    policy::Limiter limiter;
    policy::Behaviour behaviour;
    std::function<std::chrono::steady_clock::time_point()> clock;
    Guard* guard = nullptr;              // tool integrity; null when turned off
    Recorder* recorder = nullptr;        // audit, metrics, dashboard; null in bare tests
    std::uint64_t calls = 0;             // requests traced so far: each its "call" number
    std::set<GatewaySession*> sessions;  // the live ones (for the audit's started records)
};

}  // namespace pqmcp::gateway
