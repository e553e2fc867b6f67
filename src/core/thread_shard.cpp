#include "pqmcp/core/thread_shard.hpp"

#include <atomic>

namespace pqmcp {

std::size_t thread_shard() noexcept {
    static std::atomic<std::size_t> next{0};
    // Constant-initialised, so that reading it needs no guard of its own.
    thread_local std::size_t mine = k_thread_shards;
    if (mine == k_thread_shards) {
        mine = next.fetch_add(1, std::memory_order_relaxed) % k_thread_shards;
    }
    return mine;
}

}  // namespace pqmcp
