// A hash of a string seeded once per process at random, for choosing the
// shard of state kept by a key that callers choose (an identity, a rate
// limit's key): which keys share a shard cannot be worked out in advance
// and aimed at another caller's (Behaviour, Limiter).
#pragma once

#include <cstddef>
#include <string_view>

namespace pqmcp::policy::detail {

// The same value for the same text for the life of the process; another
// process draws another seed.
[[nodiscard]] std::size_t seeded_hash(std::string_view text) noexcept;

}  // namespace pqmcp::policy::detail
