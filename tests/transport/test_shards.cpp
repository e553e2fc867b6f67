// A session id names its home thread (shard) in its first byte and stays a
// random 128-bit hex string otherwise.
#include <gtest/gtest.h>

#include <set>

#include "http_server_impl.hpp"

namespace pqmcp::transport {
namespace {

TEST(SessionIds, NameTheirHomeShard) {
    for (const std::size_t shards : {1U, 2U, 3U, 7U, 255U, 256U}) {
        for (std::size_t home = 0; home < shards; home += (shards > 16 ? 37 : 1)) {
            for (int i = 0; i < 20; ++i) {
                const std::string id = new_session_id(home, shards);
                ASSERT_EQ(id.size(), 32U);
                EXPECT_EQ(id.find_first_not_of("0123456789abcdef"), std::string::npos) << id;
                EXPECT_EQ(home_of(id, shards), home) << id << " of " << shards;
            }
        }
    }
}

TEST(SessionIds, StayRandom) {
    std::set<std::string> ids;
    std::set<std::string> first_bytes;
    for (int i = 0; i < 400; ++i) {
        const std::string id = new_session_id(1, 2);
        ids.insert(id);
        first_bytes.insert(id.substr(0, 2));
    }
    EXPECT_EQ(ids.size(), 400U);
    // Only the lowest bit of the first byte is fixed with two shards: 128
    // values remain, and 400 draws see most of them.
    EXPECT_GT(first_bytes.size(), 90U);
}

TEST(SessionIds, OthersHaveNoHome) {
    EXPECT_EQ(home_of("", 2), std::nullopt);
    EXPECT_EQ(home_of("a", 2), std::nullopt);
    EXPECT_EQ(home_of("zz00", 2), std::nullopt);
    EXPECT_EQ(home_of("ff", 2), 1U);
}

}  // namespace
}  // namespace pqmcp::transport
