// Behaviour baselines per identity: call rate and argument sizes as
// exponentially weighted moving statistics, the tools it has used, and the
// ids it has been asking for. Each call is scored against its caller's
// baseline before the baseline learns from it. Deterministic under the clock
// it is given.
//
// The baseline can also live elsewhere (a tier keeps it in Redis, shared by
// every replica: cluster::AsyncCounts::observe). Either way a call is scored
// the same: facts() reads the call, a store turns its baseline into a
// Snapshot (what it was before the call) and learns, score() judges.
#pragma once

#include <array>
#include <chrono>
#include <cstddef>
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

// What one tools/call brings to its caller's baseline.
struct CallFacts {
    struct Numbered {
        std::string field;   // the top-level argument's name
        std::string slot;    // "field|prefix": "patient_id|P" for "P0042"
        std::int64_t n = 0;  // 42 (|n| < 2^53, so any store holds it exactly)
    };
    std::string tool;
    double size = 0;                 // bytes of the serialized arguments
    std::vector<Numbered> numbered;  // at most k_max_numbered, in the arguments' order
};

// A baseline as it was just before a call, and what the call did to its id runs.
struct Snapshot {
    std::uint64_t calls = 0;         // calls before this one
    double baseline_per_minute = 0;  // the decayed call rate, per minute
    std::size_t recent = 0;          // calls in the 10 s before this one
    bool tool_known = false;         // the tool was called before
    double size_mean = 0;            // argument bytes, moving mean
    double size_var = 0;             // and variance
    std::vector<std::size_t>
        runs;  // by CallFacts::numbered: the run of +1 steps, this call included
};

class Behaviour final {
  public:
    using Clock = std::chrono::steady_clock;

    // Thread-safe, with no lock that every call takes: the baselines are
    // kept in k_shards shards by identity, each under its own lock, so calls
    // of different identities go on at once and only one identity's calls
    // take turns (its baseline learns from each in turn).
    explicit Behaviour(BehaviourSettings settings = {}) {
        for (auto& sh : shards_) {
            sh.settings = settings;
        }
    }
    void configure(const BehaviourSettings& settings) {
        for (auto& sh : shards_) {
            const std::lock_guard lock(sh.mutex);
            sh.settings = settings;
        }
    }
    // (configure() sets the shards in turn: a call meanwhile may be scored
    // under the settings before, as one that came a moment earlier would.)
    [[nodiscard]] BehaviourSettings settings() const {
        const std::lock_guard lock(shards_[0].mutex);
        return shards_[0].settings;
    }

    struct Assessment {
        std::vector<Finding> findings;
        double score = 0;  // sum of the findings' scores, at most 1
    };

    // Scores one call of `tool` with `arguments` by `identity` at `now`, then
    // learns from it.
    [[nodiscard]] Assessment observe(const std::string& identity, const std::string& tool,
                                     const boost::json::value* arguments, Clock::time_point now);
    // The same for a call whose baseline is kept elsewhere too: learns here
    // (so this baseline is ready when the other is not), and scores against
    // `shared` when it came, or else against this one (counted in fallbacks()).
    [[nodiscard]] Assessment observe(const std::string& identity, const CallFacts& facts,
                                     Clock::time_point now, const std::optional<Snapshot>& shared);

    // The facts of a call, and a baseline's verdict on them.
    static constexpr std::size_t k_max_numbered = 64;
    [[nodiscard]] static CallFacts facts(const std::string& tool,
                                         const boost::json::value* arguments);
    [[nodiscard]] static Assessment score(const BehaviourSettings& settings, const CallFacts& facts,
                                          const Snapshot& before);

    [[nodiscard]] std::size_t identities() const {
        std::size_t n = 0;
        for (const auto& sh : shards_) {
            const std::lock_guard lock(sh.mutex);
            n += sh.baselines.size();
        }
        return n;
    }
    // The most tools one identity's baseline tracks (beyond: the least used goes).
    [[nodiscard]] std::size_t tools_of(const std::string& identity) const;
    // Calls scored here because the shared baseline did not answer.
    [[nodiscard]] std::uint64_t fallbacks() const {
        std::uint64_t n = 0;
        for (const auto& sh : shards_) {
            const std::lock_guard lock(sh.mutex);
            n += sh.fallbacks;
        }
        return n;
    }

    // Memory is bounded: at most this many identities (k_max_identities /
    // k_shards in each shard, whose least recently seen goes first), tools
    // per identity, and tools with id runs per identity.
    static constexpr std::size_t k_shards = 16;
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
        std::list<std::string>::iterator recency;  // its place in its shard's recency
    };
    // The identities whose hash falls on it, on cache lines of its own.
    struct alignas(64) Shard {
        mutable std::mutex mutex;
        BehaviourSettings settings;  // the same in every shard (configure())
        std::map<std::string, Baseline> baselines;
        std::list<std::string> recency;  // identities, most recently seen first
        std::uint64_t fallbacks = 0;
    };
    static_assert(k_max_identities % k_shards == 0);

    [[nodiscard]] Shard& shard_of(const std::string& identity) const;
    // Under the shard's lock: the baseline before the call, then learns from it.
    static Snapshot learn(Shard& sh, const std::string& identity, const CallFacts& facts,
                          Clock::time_point now);

    mutable std::array<Shard, k_shards> shards_;
};

// The burst window every store uses, and how long a shared baseline is kept
// after its caller's last call.
inline constexpr std::chrono::seconds k_burst_window{10};
[[nodiscard]] std::chrono::seconds baseline_lifetime(const BehaviourSettings& settings);

}  // namespace pqmcp::policy
