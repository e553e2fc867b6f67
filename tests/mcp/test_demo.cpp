// The built-in demo server: its tools, deterministic answers, and errors.
#include <gtest/gtest.h>

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

#include "pqmcp/demo/demo_server.hpp"

namespace pqmcp::demo {
namespace {

namespace json = boost::json;

json::object ask(DemoServer& server, std::string_view text) {
    auto parsed = mcp::parse(text, mcp::Limits{});
    EXPECT_TRUE(parsed && parsed->items.front());
    auto reply = server.handle(*parsed->items.front());
    EXPECT_TRUE(reply.has_value()) << text;
    return reply.value_or(json::object{});
}

json::object call(DemoServer& server, std::string_view tool, std::string_view args) {
    return ask(server, R"({"jsonrpc":"2.0","id":9,"method":"tools/call","params":{"name":")" +
                           std::string(tool) + R"(","arguments":)" + std::string(args) + "}}");
}

std::string text_of(const json::object& reply) {
    return std::string(reply.at("result").at("content").at(0).at("text").as_string());
}

bool is_error(const json::object& reply) {
    const auto* e = reply.at("result").as_object().if_contains("isError");
    return e != nullptr && e->as_bool();
}

TEST(DemoServer, InitializeNegotiatesAndDeclaresTools) {
    DemoServer s;
    auto r = ask(
        s,
        R"({"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"t","version":"1"}}})");
    EXPECT_EQ(r.at("result").at("protocolVersion"), json::value("2025-06-18"));
    EXPECT_TRUE(r.at("result").at("capabilities").as_object().contains("tools"));
    r = ask(
        s,
        R"({"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"1999-01-01"}})");
    EXPECT_EQ(r.at("result").at("protocolVersion"), json::value("2025-11-25"));
}

TEST(DemoServer, ListsTheFiveToolsWithSchemas) {
    DemoServer s;
    auto r = ask(s, R"({"jsonrpc":"2.0","id":2,"method":"tools/list"})");
    std::vector<std::string> names;
    for (const auto& t : r.at("result").at("tools").as_array()) {
        names.emplace_back(t.at("name").as_string());
        EXPECT_EQ(t.at("inputSchema").at("type"), json::value("object"));
    }
    EXPECT_EQ(names, (std::vector<std::string>{"echo", "add", "process_refund",
                                               "get_patient_record", "search_records"}));
}

TEST(DemoServer, ToolsAnswerDeterministically) {
    DemoServer a;
    DemoServer b;
    EXPECT_EQ(text_of(call(a, "echo", R"({"message":"hi there"})")), "hi there");
    EXPECT_EQ(text_of(call(a, "add", R"({"a":2,"b":3})")), "5");
    EXPECT_EQ(text_of(call(a, "add", R"({"a":0.5,"b":0.25})")), "0.75");
    const auto refund =
        call(a, "process_refund",
             R"({"order_id":"ORD-1001","amount":100,"currency":"USD","reason":"damaged parcel"})");
    EXPECT_FALSE(is_error(refund));
    EXPECT_NE(text_of(refund).find("100.00 USD for order ORD-1001"), std::string::npos);
    EXPECT_EQ(refund.at("result").at("structuredContent").at("status"), json::value("issued"));
    // The same request gives the same refund id, in any server instance.
    EXPECT_EQ(
        json::serialize(refund),
        json::serialize(call(
            b, "process_refund",
            R"({"order_id":"ORD-1001","amount":100,"currency":"USD","reason":"damaged parcel"})")));
    const auto record =
        call(a, "get_patient_record", R"({"patient_id":"P0001","purpose":"treatment"})");
    EXPECT_EQ(record.at("result").at("structuredContent").at("patient_id"), json::value("P0001"));
    EXPECT_EQ(json::serialize(record),
              json::serialize(call(b, "get_patient_record",
                                   R"({"patient_id":"P0001","purpose":"treatment"})")));
    const auto search = call(a, "search_records", R"({"query":"diabetes","limit":3})");
    EXPECT_LE(search.at("result").at("structuredContent").at("results").as_array().size(), 3U);
}

TEST(DemoServer, BadArgumentsAreToolErrorsAndUnknownsAreProtocolErrors) {
    DemoServer s;
    EXPECT_TRUE(is_error(call(s, "echo", R"({})")));
    EXPECT_TRUE(is_error(call(s, "add", R"({"a":"2","b":3})")));
    EXPECT_TRUE(is_error(call(s, "process_refund",
                              R"({"order_id":"O","amount":-5,"currency":"USD","reason":"r"})")));
    EXPECT_TRUE(is_error(
        call(s, "process_refund", R"({"order_id":"O","amount":5,"currency":"usd","reason":"r"})")));
    EXPECT_TRUE(is_error(call(s, "search_records", R"({"query":"x","limit":500})")));
    auto unknown = call(s, "rm_rf", R"({})");
    EXPECT_EQ(unknown.at("error").at("code"), json::value(mcp::code::invalid_params));
    auto method = ask(s, R"({"jsonrpc":"2.0","id":3,"method":"resources/list"})");
    EXPECT_EQ(method.at("error").at("code"), json::value(mcp::code::method_not_found));
    auto note =
        mcp::parse(R"({"jsonrpc":"2.0","method":"notifications/initialized"})", mcp::Limits{});
    EXPECT_FALSE(s.handle(*note->items.front()).has_value());
}

}  // namespace
}  // namespace pqmcp::demo
