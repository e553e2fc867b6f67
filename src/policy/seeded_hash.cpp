#include "seeded_hash.hpp"

#include <random>

#include <boost/container_hash/hash.hpp>

namespace pqmcp::policy::detail {

std::size_t seeded_hash(std::string_view text) noexcept {
    static const std::size_t seed = [] {
        std::random_device random;
        return (static_cast<std::size_t>(random()) << 32U) ^ random();
    }();
    std::size_t h = seed;
    boost::hash_range(h, text.begin(), text.end());
    return h;
}

}  // namespace pqmcp::policy::detail
