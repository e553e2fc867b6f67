// Rates (token buckets) and quotas (sliding windows) of policy rules. The
// state lives outside the policy, keyed by rule id and counting key, so that
// a reloaded policy keeps counting where the old one was. Thread-safe, with
// no lock every call takes: the counts are kept in k_shards shards by slot
// (rule and key), each under its own lock, held only while one count is
// taken; calls that count the same slot take turns (a quota stays exact).
//
// Replicas of one gateway tier count together in a shared store
// (SharedCounts: Redis, src/cluster). A store that cannot answer within its
// deadline leaves the decision to the fallback: `closed` refuses the call,
// `local` counts it here, in this process alone.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>

#include "pqmcp/policy/policy.hpp"

namespace pqmcp::policy {

// Counts kept in a store every replica shares. Implementations are
// thread-safe and bound every call by a deadline of their own.
class SharedCounts {
  public:
    SharedCounts() = default;
    SharedCounts(const SharedCounts&) = delete;
    SharedCounts& operator=(const SharedCounts&) = delete;
    SharedCounts(SharedCounts&&) = delete;
    SharedCounts& operator=(SharedCounts&&) = delete;
    virtual ~SharedCounts() = default;
    // As Limiter::take and count, under `slot` (rule and key); nullopt when
    // the store did not answer in time or failed.
    [[nodiscard]] virtual std::optional<bool> take(const std::string& slot, const Rate& rate) = 0;
    [[nodiscard]] virtual std::optional<bool> count(const std::string& slot,
                                                    const Quota& quota) = 0;
    // For logs: "redis 127.0.0.1:6379".
    [[nodiscard]] virtual std::string describe() const = 0;
};

enum class Fallback : std::uint8_t { closed, local };

enum class Verdict : std::uint8_t {  // declared in policy.hpp
    allowed,
    refused,      // the rate or quota is used up
    unavailable,  // the shared store did not answer and the fallback is closed
};

class Limiter final {
  public:
    using Clock = std::chrono::steady_clock;

    // Count in `store` from now on (null: here), with `fallback` when it does
    // not answer (also for settle_take / settle_count); before any other call.
    void share(std::shared_ptr<SharedCounts> store, Fallback fallback);

    // Takes one token of `rate` under `key`; refused when the bucket is empty.
    [[nodiscard]] Verdict take(const std::string& rule, const std::string& key, const Rate& rate,
                               Clock::time_point now);
    // Counts one use of `quota` under `key`; refused when `limit` uses
    // already fall within the window ending now.
    [[nodiscard]] Verdict count(const std::string& rule, const std::string& key, const Quota& quota,
                                Clock::time_point now);
    // The verdict of a count a shared store was asked for elsewhere (the
    // gateway's asynchronous client): its answer, or, when it gave none
    // (nullopt), the fallback's (counted in fallbacks()).
    [[nodiscard]] Verdict settle_take(const std::string& rule, const std::string& key,
                                      const Rate& rate, std::optional<bool> answer,
                                      Clock::time_point now);
    [[nodiscard]] Verdict settle_count(const std::string& rule, const std::string& key,
                                       const Quota& quota, std::optional<bool> answer,
                                       Clock::time_point now);
    // Forgets keys untouched for longer than their window (bounded memory).
    void sweep(Clock::time_point now);
    [[nodiscard]] std::size_t size() const {
        std::size_t n = 0;
        for (const auto& sh : shards_) {
            const std::lock_guard lock(sh.mutex);
            n += sh.buckets.size() + sh.windows.size();
        }
        return n;
    }
    static constexpr std::size_t k_shards = 16;
    // Decisions the shared store did not answer (each then took the fallback).
    [[nodiscard]] std::uint64_t fallbacks() const noexcept {
        return fallbacks_.load(std::memory_order_relaxed);
    }
    [[nodiscard]] const SharedCounts* store() const noexcept { return store_.get(); }

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
    bool take_here(const std::string& slot, const Rate& rate, Clock::time_point now);
    bool count_here(const std::string& slot, const Quota& quota, Clock::time_point now);
    // What the fallback makes of a call the store did not answer.
    template <typename Local>
    Verdict unanswered(Local&& local);

    std::shared_ptr<SharedCounts> store_;
    Fallback fallback_ = Fallback::closed;
    std::atomic<std::uint64_t> fallbacks_{0};
    // The slots whose hash falls on it, on cache lines of its own.
    struct alignas(64) Shard {
        mutable std::mutex mutex;
        std::map<std::string, Bucket> buckets;
        std::map<std::string, Window> windows;
    };
    [[nodiscard]] Shard& shard_of(const std::string& slot);
    std::array<Shard, k_shards> shards_;
};

// The slot a count is kept under: the rule's id and the counting key.
[[nodiscard]] std::string slot_of(const std::string& rule, const std::string& key);

// The key a rate or quota counts under for this request.
[[nodiscard]] std::string counting_key(Per per, const Request& request);

}  // namespace pqmcp::policy
