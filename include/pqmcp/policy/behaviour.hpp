// Behaviour baselines per identity: call rate and argument sizes as
// exponentially weighted moving statistics, the tools it has used, and the
// ids it has been asking for. Each call is scored against its caller's
// baseline before the baseline learns from it. Deterministic under the clock
// it is given.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <list>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include <boost/json/value.hpp>

#include "pqmcp/policy/policy.hpp"

namespace pqmcp::policy {

class Behaviour final {
  public:
    using Clock = std::chrono::steady_clock;

    // Thread-safe: each call takes the baselines' lock.
    explicit Behaviour(BehaviourSettings settings = {}) : settings_(settings) {}
    void configure(const BehaviourSettings& settings) {
        const std::lock_guard lock(mutex_);
        settings_ = settings;
    }

    struct Assessment {
        std::vector<Finding> findings;
        double score = 0;  // sum of the findings' scores, at most 1
    };

    // Scores one call of `tool` with `arguments` by `identity` at `now`, then
    // learns from it.
    [[nodiscard]] Assessment observe(const std::string& identity, const std::string& tool,
                                     const boost::json::value* arguments, Clock::time_point now);

    [[nodiscard]] std::size_t identities() const {
        const std::lock_guard lock(mutex_);
        return baselines_.size();
    }
    // The most tools one identity's baseline tracks (beyond: the least used goes).
    [[nodiscard]] std::size_t tools_of(const std::string& identity) const;

    // Memory is bounded: at most this many identities (the least recently
    // seen goes first), tools per identity, and tools with id runs per identity.
    static constexpr std::size_t k_max_identities = 10'000;
    static constexpr std::size_t k_max_tools = 256;
    static constexpr std::size_t k_max_id_tools = 64;

  private:
    struct Baseline {
        std::uint64_t calls = 0;
        Clock::time_point first;
        Clock::time_point last;
        double rate = 0;                       // calls per second, EWMA of inter-arrival
        std::deque<Clock::time_point> recent;  // the last calls, for the burst window
        double size_mean = 0;                  // bytes of arguments, EWMA
        double size_var = 0;
        std::map<std::string, std::uint64_t> tools;  // uses per tool
        // Per tool: the last numeric id seen in each argument, and the run of +1 steps.
        std::map<std::string, std::map<std::string, std::pair<std::int64_t, std::size_t>>> ids;
        std::list<std::string>::iterator recency;  // its place in recency_
    };

    mutable std::mutex mutex_;
    BehaviourSettings settings_;
    std::map<std::string, Baseline> baselines_;
    std::list<std::string> recency_;  // identities, most recently seen first
};

}  // namespace pqmcp::policy
