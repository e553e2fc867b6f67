// A small number for the calling thread, for state kept in per-thread shards
// (metrics, the dashboard's counts, the audit queue), so that threads update
// their own shard and share no lock.
#pragma once

#include <cstddef>

namespace pqmcp {

// How many shards such state keeps.
inline constexpr std::size_t k_thread_shards = 32;

// The calling thread's shard, in [0, k_thread_shards): threads are numbered
// in the order they first ask, and numbers beyond k_thread_shards share
// shards (still correct, only no longer free of contention). The same
// thread gets the same number for its whole life, whichever component asks.
[[nodiscard]] std::size_t thread_shard() noexcept;

}  // namespace pqmcp
