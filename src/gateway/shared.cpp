#include "shared.hpp"

namespace pqmcp::gateway {

std::uint64_t SharedState::next_policy_generation() {
    static std::atomic<std::uint64_t> last{0};
    return last.fetch_add(1, std::memory_order_relaxed) + 1;
}

void SharedState::set_policy(std::shared_ptr<const policy::Policy> p) {
    policy_.store(std::move(p), std::memory_order_release);
    policy_generation_.store(next_policy_generation(), std::memory_order_release);
}

std::shared_ptr<const policy::Policy> SharedState::policy() const {
    // This thread's reference: the policy, held by a count of this thread's
    // own; what a request takes shares that count (the aliasing constructor).
    struct Held {
        std::uint64_t generation = 0;  // none is 0
        std::shared_ptr<const std::shared_ptr<const policy::Policy>> policy;
    };
    thread_local Held held;
    const std::uint64_t now = policy_generation_.load(std::memory_order_acquire);
    if (held.generation != now) {
        // A reload after the load above is seen as a new generation next time.
        held.policy = std::make_shared<const std::shared_ptr<const policy::Policy>>(
            policy_.load(std::memory_order_acquire));
        held.generation = now;
    }
    if (!*held.policy) {
        return nullptr;
    }
    return {held.policy, held.policy->get()};
}

}  // namespace pqmcp::gateway
