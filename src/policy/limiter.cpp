#include "pqmcp/policy/limiter.hpp"

#include <algorithm>

#include "seeded_hash.hpp"

namespace pqmcp::policy {

namespace {

std::string slot(const std::string& rule, const std::string& key) {
    std::string s = rule;
    s += '\n';
    s += key;
    return s;
}

}  // namespace

void Limiter::share(std::shared_ptr<SharedCounts> store, Fallback fallback) {
    store_ = std::move(store);
    fallback_ = fallback;
}

template <typename Local>
Verdict Limiter::unanswered(Local&& local) {
    fallbacks_.fetch_add(1, std::memory_order_relaxed);
    if (fallback_ == Fallback::closed) {
        return Verdict::unavailable;
    }
    return local() ? Verdict::allowed : Verdict::refused;
}

Verdict Limiter::take(const std::string& rule, const std::string& key, const Rate& rate,
                      Clock::time_point now) {
    const std::string s = slot(rule, key);
    if (store_) {
        if (const auto answer = store_->take(s, rate)) {
            return *answer ? Verdict::allowed : Verdict::refused;
        }
        return unanswered([&] { return take_here(s, rate, now); });
    }
    return take_here(s, rate, now) ? Verdict::allowed : Verdict::refused;
}

Verdict Limiter::count(const std::string& rule, const std::string& key, const Quota& quota,
                       Clock::time_point now) {
    const std::string s = slot(rule, key);
    if (store_) {
        if (const auto answer = store_->count(s, quota)) {
            return *answer ? Verdict::allowed : Verdict::refused;
        }
        return unanswered([&] { return count_here(s, quota, now); });
    }
    return count_here(s, quota, now) ? Verdict::allowed : Verdict::refused;
}

Verdict Limiter::settle_take(const std::string& rule, const std::string& key, const Rate& rate,
                             std::optional<bool> answer, Clock::time_point now) {
    if (answer) {
        return *answer ? Verdict::allowed : Verdict::refused;
    }
    const std::string s = slot(rule, key);
    return unanswered([&] { return take_here(s, rate, now); });
}

Verdict Limiter::settle_count(const std::string& rule, const std::string& key, const Quota& quota,
                              std::optional<bool> answer, Clock::time_point now) {
    if (answer) {
        return *answer ? Verdict::allowed : Verdict::refused;
    }
    const std::string s = slot(rule, key);
    return unanswered([&] { return count_here(s, quota, now); });
}

std::string slot_of(const std::string& rule, const std::string& key) {
    return slot(rule, key);
}

Limiter::Shard& Limiter::shard_of(const std::string& slot) {
    // Seeded per process, as Behaviour's: keys cannot be chosen to crowd
    // one shard's lock.
    return shards_.at(detail::seeded_hash(slot) % k_shards);
}

bool Limiter::take_here(const std::string& s, const Rate& rate, Clock::time_point now) {
    Shard& sh = shard_of(s);
    const std::lock_guard lock(sh.mutex);
    const double capacity = static_cast<double>(rate.limit);
    auto [it, fresh] = sh.buckets.try_emplace(s);
    Bucket& b = it->second;
    if (fresh) {
        b.tokens = capacity;
    } else {
        // Refill at `limit` per window since the last look; a reload that
        // lowered the limit caps what is there.
        const double elapsed = std::chrono::duration<double, std::milli>(now - b.updated).count();
        const double per_ms =
            capacity / static_cast<double>(std::max<std::int64_t>(rate.window.count(), 1));
        b.tokens = std::min(capacity, b.tokens + std::max(elapsed, 0.0) * per_ms);
    }
    // Threads read the clock before they take the lock: a late one with an
    // earlier time must not move the bucket back (the same interval would
    // refill twice).
    b.updated = fresh ? now : std::max(b.updated, now);
    b.window = rate.window;
    if (b.tokens < 1.0) {
        return false;
    }
    b.tokens -= 1.0;
    return true;
}

bool Limiter::count_here(const std::string& s, const Quota& quota, Clock::time_point now) {
    Shard& sh = shard_of(s);
    const std::lock_guard lock(sh.mutex);
    Window& w = sh.windows[s];
    w.window = quota.window;
    while (!w.uses.empty() && now - w.uses.front() >= quota.window) {
        w.uses.pop_front();
    }
    while (w.uses.size() > quota.limit) {  // the limit was lowered
        w.uses.pop_front();
    }
    if (w.uses.size() >= quota.limit) {
        return false;
    }
    // Kept in order whichever thread read its clock first.
    w.uses.push_back(w.uses.empty() ? now : std::max(now, w.uses.back()));
    return true;
}

void Limiter::sweep(Clock::time_point now) {
    for (auto& sh : shards_) {
        const std::lock_guard lock(sh.mutex);
        std::erase_if(sh.buckets,
                      [now](const auto& kv) { return now - kv.second.updated > kv.second.window; });
        std::erase_if(sh.windows, [now](const auto& kv) {
            return kv.second.uses.empty() || now - kv.second.uses.back() > kv.second.window;
        });
    }
}

std::string counting_key(Per per, const Request& request) {
    const std::string identity = request.caller.key();
    switch (per) {
        case Per::identity:
            return "identity:" + identity;
        case Per::tool:
            return "tool:" + std::string(request.tool);
        case Per::identity_tool:
            return "identity+tool:" + identity + "|" + std::string(request.tool);
        case Per::session:
            return "session:" + std::string(request.session);
        case Per::global:
            return "global";
    }
    return "global";
}

}  // namespace pqmcp::policy
