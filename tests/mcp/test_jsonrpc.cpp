// The JSON-RPC codec: classification, extraction, bounds, and the error
// answers the specification asks for.
#include <gtest/gtest.h>

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

#include "pqmcp/mcp/jsonrpc.hpp"
#include "pqmcp/mcp/protocol.hpp"

namespace pqmcp::mcp {
namespace {

namespace json = boost::json;

Message one(std::string_view text) {
    auto parsed = parse(text, Limits{});
    EXPECT_TRUE(parsed) << text;
    EXPECT_EQ(parsed->items.size(), 1U);
    EXPECT_TRUE(parsed->items.front()) << parsed->items.front().error().reason;
    return std::move(*parsed->items.front());
}

Invalid invalid(std::string_view text) {
    auto parsed = parse(text, Limits{});
    EXPECT_TRUE(parsed) << text;
    EXPECT_FALSE(parsed->items.front()) << text;
    return parsed->items.front().error();
}

TEST(JsonRpc, ClassifiesAndExtractsRoutingFields) {
    auto call = one(R"({"jsonrpc":"2.0","id":7,"method":"tools/call",
                        "params":{"name":"demo__echo","arguments":{"message":"hi"},
                                  "_meta":{"progressToken":"tok"}}})");
    EXPECT_EQ(call.kind, Kind::request);
    EXPECT_EQ(call.id, json::value(7));
    EXPECT_EQ(call.method, "tools/call");
    EXPECT_EQ(call.name, "demo__echo");
    ASSERT_NE(call.progress_token(), nullptr);
    EXPECT_EQ(*call.progress_token(), json::value("tok"));

    auto read = one(
        R"({"jsonrpc":"2.0","id":"r1","method":"resources/read","params":{"uri":"file:///a"}})");
    EXPECT_EQ(read.id, json::value("r1"));
    EXPECT_EQ(read.uri, "file:///a");
    EXPECT_TRUE(read.name.empty());

    auto note = one(R"({"jsonrpc":"2.0","method":"notifications/initialized"})");
    EXPECT_EQ(note.kind, Kind::notification);
    EXPECT_TRUE(note.id.is_null());

    auto result = one(R"({"jsonrpc":"2.0","id":1,"result":{}})");
    EXPECT_EQ(result.kind, Kind::response);
    EXPECT_TRUE(result.is_response());

    auto error = one(R"({"jsonrpc":"2.0","id":null,"error":{"code":-32700,"message":"x"}})");
    EXPECT_EQ(error.kind, Kind::error);
}

struct InvalidCase {
    const char* text;
    const char* reason;
    json::value id;
};

TEST(JsonRpc, RejectsWhatIsNotJsonRpcWithTheReason) {
    const InvalidCase cases[] = {
        {R"({"id":1,"method":"x"})", "\"jsonrpc\" must be \"2.0\"", 1},
        {R"({"jsonrpc":"1.0","id":1,"method":"x"})", "\"jsonrpc\" must be \"2.0\"", 1},
        {R"({"jsonrpc":"2.0","id":1,"method":5})", "\"method\" must be a non-empty string", 1},
        {R"({"jsonrpc":"2.0","id":null,"method":"x"})",
         "a request id must be a string or an integer", nullptr},
        {R"({"jsonrpc":"2.0","id":1.5,"method":"x"})",
         "a request id must be a string or an integer", nullptr},
        {R"({"jsonrpc":"2.0","id":1,"method":"x","params":3})",
         "\"params\" must be an object or an array", 1},
        {R"({"jsonrpc":"2.0","id":1})",
         "a response must have exactly one of \"result\" and \"error\"", 1},
        {R"({"jsonrpc":"2.0","id":1,"result":1,"error":{"code":1,"message":"m"}})",
         "a response must have exactly one of \"result\" and \"error\"", 1},
        {R"({"jsonrpc":"2.0","result":1})", "a response must have an id", nullptr},
        {R"({"jsonrpc":"2.0","id":1,"error":{"code":"x","message":"m"}})",
         "\"error\" must be an object with a numeric code and a message", 1},
    };
    for (const auto& c : cases) {
        const Invalid i = invalid(c.text);
        EXPECT_EQ(i.reason, c.reason) << c.text;
        EXPECT_EQ(i.id, c.id) << c.text;
        // The answer: -32600 with the id when it was usable.
        const auto reply = make_error(i);
        EXPECT_EQ(reply.at("error").at("code"), json::value(code::invalid_request));
        EXPECT_EQ(reply.at("id"), c.id);
    }
}

TEST(JsonRpc, WholeInputFailuresCarryTheirCode) {
    Limits limits;
    limits.max_message_bytes = 64;
    limits.max_depth = 4;
    limits.max_batch = 2;
    struct Case {
        std::string text;
        Errc errc;
        int rpc;
    };
    const Case cases[] = {
        {"{not json", Errc::parse_error, code::parse_error},
        {"\"\xff\xfe\"", Errc::parse_error, code::parse_error},  // not UTF-8
        {std::string(65, ' '), Errc::too_large, code::invalid_request},
        {"[[[[[[1]]]]]]", Errc::too_deep, code::parse_error},
        {"[]", Errc::invalid_request, code::invalid_request},
        {"[1,2,3]", Errc::batch_too_long, code::invalid_request},
        {"42", Errc::invalid_request, code::invalid_request},
    };
    for (const auto& c : cases) {
        auto parsed = parse(c.text, limits);
        ASSERT_FALSE(parsed) << c.text;
        EXPECT_EQ(parsed.error().code, c.errc) << c.text;
        EXPECT_EQ(jsonrpc_code(parsed.error()), c.rpc) << c.text;
        const auto reply = make_error(parsed.error());
        EXPECT_TRUE(reply.at("id").is_null());
        EXPECT_EQ(reply.at("error").at("code"), json::value(c.rpc));
    }
}

TEST(JsonRpc, BatchElementsAreJudgedOneByOne) {
    auto parsed = parse(R"([{"jsonrpc":"2.0","id":1,"method":"ping"},1,
                           {"jsonrpc":"2.0","method":"notifications/x"}])",
                        Limits{});
    ASSERT_TRUE(parsed);
    EXPECT_TRUE(parsed->batch);
    ASSERT_EQ(parsed->items.size(), 3U);
    EXPECT_TRUE(parsed->items[0]);
    EXPECT_FALSE(parsed->items[1]);
    EXPECT_EQ(parsed->items[1].error().reason, "a JSON-RPC message must be an object");
    EXPECT_TRUE(parsed->items[2]);
}

TEST(JsonRpc, DeepNestingStopsAtTheLimitNotTheStack) {
    // A hostile body nested a million levels deep is refused, not recursed.
    std::string deep(1'000'000, '[');
    auto parsed =
        parse(deep, Limits{.max_message_bytes = 2'000'000, .max_depth = 64, .max_batch = 64});
    ASSERT_FALSE(parsed);
    EXPECT_EQ(parsed.error().code, Errc::too_deep);
}

TEST(JsonRpc, BuildersAndSerializationStayOnOneLine) {
    const auto req = make_request(3, "tools/call", json::object{{"name", "a\nb"}});
    const std::string line = mcp::serialize(req);
    EXPECT_EQ(line.find('\n'), std::string::npos);
    EXPECT_EQ(json::parse(line).at("params").at("name"), json::value("a\nb"));
    EXPECT_EQ(mcp::serialize(make_result("x", json::object{})),
              R"({"jsonrpc":"2.0","id":"x","result":{}})");
    EXPECT_EQ(mcp::serialize(make_notification("notifications/initialized", {})),
              R"({"jsonrpc":"2.0","method":"notifications/initialized"})");
    EXPECT_EQ(id_text(json::value("a")), "\"a\"");
    // The same text json::serialize gives, for every kind of id.
    for (const auto& id : {json::value(0), json::value(-7), json::value(std::uint64_t{1} << 63U),
                           json::value(9'007'199'254'740'993LL), json::value("1"), json::value(1.5),
                           json::value(nullptr)}) {
        EXPECT_EQ(id_text(id), json::serialize(id));
    }
}

TEST(Protocol, NegotiatesAsTheLifecycleSays) {
    for (const auto v : k_protocol_versions) {
        EXPECT_EQ(negotiate_version(v), v);
        EXPECT_TRUE(is_supported_version(v));
    }
    EXPECT_EQ(negotiate_version("2099-01-01"), k_latest_version);
    EXPECT_EQ(negotiate_version(""), k_latest_version);
    EXPECT_FALSE(is_supported_version("2025-01-01"));
    EXPECT_TRUE(allows_batches("2025-03-26"));
    EXPECT_TRUE(allows_batches("2024-11-05"));
    EXPECT_FALSE(allows_batches("2025-06-18"));
    EXPECT_FALSE(allows_batches("2025-11-25"));
    EXPECT_TRUE(primes_sse_streams("2025-11-25"));
    EXPECT_FALSE(primes_sse_streams("2025-06-18"));
}

}  // namespace
}  // namespace pqmcp::mcp
