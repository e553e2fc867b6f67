// The gateway on two threads with its rates and behaviour baselines on a real
// redis-server (started by engines.sh for this binary): each thread keeps its
// own Redis connection, made on that thread's context, and it must close
// before that context goes when the gateway stops (the order
// tests/gateway/test_shutdown.cpp checks for the OpenAPI upstreams' REST
// clients; under ASan a connection closed after its context is a use after
// free).
#include <gtest/gtest.h>

#include <array>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <set>
#include <string>

#include <boost/json/serialize.hpp>

#include "../common/temp_dir.hpp"
#include "../gateway/harness.hpp"
#include "test_paths.hpp"

namespace pqmcp::gateway::test {
namespace {

namespace json = boost::json;

const std::string k_engines =
    std::string(pqmcp::test_paths::test_data_dir()) + "/../cluster/engines.sh";

// redis-server alone, once for the whole binary.
class Redis final : public ::testing::Environment {
  public:
    static inline pqmcp::test::TempDir* dir = nullptr;

    static std::string socket() { return (dir->path() / "redis.sock").string(); }

    void SetUp() override {
        dir = new pqmcp::test::TempDir();
        const std::string cmd = k_engines + " redis-start " + dir->path().string();
        ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
    }

    void TearDown() override {
        const std::string cmd = k_engines + " redis-stop " + dir->path().string();
        EXPECT_EQ(std::system(cmd.c_str()), 0);
        delete dir;
        dir = nullptr;
    }
};

const auto* const k_env = ::testing::AddGlobalTestEnvironment(new Redis());

// What redis-cli prints for one command.
std::string redis_cli(const std::string& args) {
    const std::string cmd = "redis-cli -s " + Redis::socket() + " " + args;
    FILE* out = popen(cmd.c_str(), "r");
    if (out == nullptr) {
        return {};
    }
    std::string text;
    std::array<char, 256> chunk{};
    while (std::fgets(chunk.data(), static_cast<int>(chunk.size()), out) != nullptr) {
        text += chunk.data();
    }
    (void)pclose(out);
    return text;
}

TEST(GatewayRedis, EachThreadsRedisConnectionClosesBeforeItsThreadGoes) {
    pqmcp::test::TempDir dir;
    const auto policy = dir.path() / "rated.yaml";
    std::ofstream(policy) << "default: deny\n"
                             "rules:\n"
                             "  - id: echo-rated\n"
                             "    match: { tool: demo__echo }\n"
                             "    rate: { per: identity, limit: 1000, window: 1m }\n"
                             "    effect: allow\n";
    {
        Harness h({demo_upstream()}, [&](GatewayConfig& c) {
            c.cluster.redis = "unix://" + Redis::socket();
            c.policy_file = policy;
        });
        // A session is homed on the thread of its initialize's connection
        // (its id's first byte names it); connections are dealt in turn, so
        // a plain request in between moves the next session to the other.
        std::set<int> homes;
        for (int i = 0; i < 8 && homes.size() < 2; ++i) {
            McpClient c(h);
            c.initialize();
            const auto r = c.request("tools/call",
                                     json::object{{"name", "demo__echo"},
                                                  {"arguments", json::object{{"message", "hi"}}}});
            ASSERT_TRUE(r.contains("result")) << json::serialize(r);
            homes.insert(std::stoi(c.session_id().substr(0, 2), nullptr, 16) % 2);
            (void)h.http("GET", "/nowhere", {}, "");
        }
        EXPECT_EQ(homes.size(), 2U) << "the sessions did not reach both threads";
        // The calls were counted in Redis.
        EXPECT_NE(redis_cli("--scan"), "") << "nothing counted in Redis";
    }  // the gateway stops here, each thread's Redis connection open
}

}  // namespace
}  // namespace pqmcp::gateway::test
