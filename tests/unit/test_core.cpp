#include <fcntl.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <stdexcept>
#include <thread>

#include "pqmcp/core/bytes.hpp"
#include "pqmcp/core/descriptor.hpp"
#include "pqmcp/core/error.hpp"
#include "pqmcp/core/scope.hpp"
#include "pqmcp/core/thread_shard.hpp"

namespace pqmcp {
namespace {

TEST(Hex, RoundTrip) {
    const Bytes data{0x00, 0x01, 0xab, 0xff};
    EXPECT_EQ(to_hex(data), "0001abff");
    EXPECT_EQ(from_hex("0001ABff"), data);
}

TEST(Hex, RejectsMalformed) {
    EXPECT_FALSE(from_hex("abc").has_value());
    EXPECT_FALSE(from_hex("zz").has_value());
    EXPECT_FALSE(from_hex("0g").has_value());
    EXPECT_TRUE(from_hex("")->empty());
}

// RFC 4648 section 10 test vectors (lower case, unpadded).
TEST(Base32, Rfc4648Vectors) {
    const std::pair<std::string_view, std::string_view> vectors[] = {
        {"", ""},
        {"f", "my"},
        {"fo", "mzxq"},
        {"foo", "mzxw6"},
        {"foob", "mzxw6yq"},
        {"fooba", "mzxw6ytb"},
        {"foobar", "mzxw6ytboi"},
    };
    for (const auto& [plain, encoded] : vectors) {
        EXPECT_EQ(to_base32(as_bytes(plain)), encoded);
        const auto decoded = from_base32(encoded);
        ASSERT_TRUE(decoded.has_value());
        EXPECT_EQ(std::string(decoded->begin(), decoded->end()), plain);
    }
    EXPECT_EQ(from_base32("MZXW6YTBOI======"), from_base32("mzxw6ytboi"));
    EXPECT_EQ(from_base32("MZXW6YQ="), from_base32("mzxw6yq"));
    const Bytes digest(32, 0xa5);
    EXPECT_EQ(from_base32(to_base32(digest)), digest);
    EXPECT_FALSE(from_base32("mzx1").has_value());
}

}  // namespace
}  // namespace pqmcp

TEST(OnExit, RunsOnEveryWayOutUnlessReleased) {
    int ran = 0;
    {
        pqmcp::OnExit guard([&ran] { ++ran; });
    }
    EXPECT_EQ(ran, 1);
    {
        pqmcp::OnExit guard([&ran] { ++ran; });
        guard.release();
    }
    EXPECT_EQ(ran, 1);
    try {
        pqmcp::OnExit guard([&ran] { ++ran; });
        throw std::runtime_error("out");
    } catch (const std::runtime_error&) {
        EXPECT_EQ(ran, 2);
    }
}

namespace {

bool is_open(int fd) {
    return ::fcntl(fd, F_GETFD) != -1;
}

}  // namespace

TEST(OwnedFd, ClosesOnceWhereverItMoves) {
    int fds[2] = {-1, -1};
    ASSERT_EQ(::pipe(fds), 0);
    const int read_end = fds[0];
    const int write_end = fds[1];
    {
        pqmcp::OwnedFd owner(read_end);
        pqmcp::OwnedFd moved(std::move(owner));
        EXPECT_FALSE(owner.valid());  // NOLINT(bugprone-use-after-move): what a move leaves
        EXPECT_EQ(moved.get(), read_end);
        pqmcp::OwnedFd assigned;
        assigned = std::move(moved);
        EXPECT_TRUE(is_open(read_end));
    }
    EXPECT_FALSE(is_open(read_end));  // closed by the last owner only

    pqmcp::OwnedFd write(write_end);
    const int mine = write.release();
    EXPECT_FALSE(write.valid());
    EXPECT_TRUE(is_open(mine));  // released: the caller closes it
    write.reset(mine);
    write.reset();
    EXPECT_FALSE(is_open(write_end));
}

// Every component that shards by thread gets the same number for a thread,
// and two threads that ask one after the other get different ones.
TEST(ThreadShard, OneNumberPerThreadForItsLife) {
    const std::size_t mine = pqmcp::thread_shard();
    EXPECT_LT(mine, pqmcp::k_thread_shards);
    EXPECT_EQ(pqmcp::thread_shard(), mine);
    std::size_t first = pqmcp::k_thread_shards;
    std::size_t second = pqmcp::k_thread_shards;
    std::size_t first_again = pqmcp::k_thread_shards;
    std::thread a([&] {
        first = pqmcp::thread_shard();
        first_again = pqmcp::thread_shard();
    });
    a.join();
    std::thread b([&] { second = pqmcp::thread_shard(); });
    b.join();
    EXPECT_LT(first, pqmcp::k_thread_shards);
    EXPECT_LT(second, pqmcp::k_thread_shards);
    EXPECT_EQ(first, first_again);
    EXPECT_NE(first, second);
    EXPECT_EQ(pqmcp::thread_shard(), mine);
}
