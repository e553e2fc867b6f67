// Rates (token buckets) and quotas (sliding windows) of policy rules. The
// state lives outside the policy, keyed by rule id and counting key, so that
// a reloaded policy keeps counting where the old one was. Thread-safe: every
// call takes the limiter's lock for as long as it counts.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <map>
#include <mutex>
#include <string>

#include "pqmcp/policy/policy.hpp"

namespace pqmcp::policy {

class Limiter final {
  public:
    using Clock = std::chrono::steady_clock;

    // Takes one token of `rate` under `key`; false when the bucket is empty.
    [[nodiscard]] bool take(const std::string& rule, const std::string& key, const Rate& rate,
                            Clock::time_point now);
    // Counts one use of `quota` under `key`; false when `limit` uses already
    // fall within the window ending now.
    [[nodiscard]] bool count(const std::string& rule, const std::string& key, const Quota& quota,
                             Clock::time_point now);
    // Forgets keys untouched for longer than their window (bounded memory).
    void sweep(Clock::time_point now);
    [[nodiscard]] std::size_t size() const {
        const std::lock_guard lock(mutex_);
        return buckets_.size() + windows_.size();
    }

  private:
    struct Bucket {
        double tokens = 0;
        Clock::time_point updated;
        std::chrono::milliseconds window{0};
    };
    struct Window {
        std::deque<Clock::time_point> uses;
        std::chrono::milliseconds window{0};
    };
    mutable std::mutex mutex_;
    std::map<std::string, Bucket> buckets_;
    std::map<std::string, Window> windows_;
};

// The key a rate or quota counts under for this request.
[[nodiscard]] std::string counting_key(Per per, const Request& request);

}  // namespace pqmcp::policy
