// Structured JSON logs: one event per line, escaped, with the session id.
#include <gtest/gtest.h>

#include <boost/json/parse.hpp>

#include "pqmcp/observe/log.hpp"

namespace pqmcp::observe {
namespace {

std::string format(std::string_view text, spdlog::level::level_enum level) {
    JsonLogFormatter f;
    spdlog::details::log_msg msg(
        std::chrono::system_clock::time_point{std::chrono::seconds{1'764'000'000}} +
            std::chrono::milliseconds{123},
        spdlog::source_loc{}, "pqmcp", level, spdlog::string_view_t(text.data(), text.size()));
    spdlog::memory_buf_t out;
    f.format(msg, out);
    return {out.data(), out.size()};
}

TEST(JsonLog, OneObjectPerLine) {
    const std::string line =
        format("session 1a2b3c4d: tools/call demo__echo allowed", spdlog::level::info);
    ASSERT_EQ(line.back(), '\n');
    EXPECT_EQ(line.find('\n'), line.size() - 1);
    const auto v = boost::json::parse(line).as_object();
    EXPECT_EQ(v.at("ts").as_string(), "2025-11-24T16:00:00.123Z");
    EXPECT_EQ(v.at("level").as_string(), "info");
    EXPECT_EQ(v.at("logger").as_string(), "pqmcp");
    EXPECT_EQ(v.at("msg").as_string(), "session 1a2b3c4d: tools/call demo__echo allowed");
    EXPECT_EQ(v.at("session").as_string(), "1a2b3c4d");
}

TEST(JsonLog, MultiLineAndControlCharactersStayOnOneLine) {
    const std::string line =
        format("integrity: changed. What changed:\n/description: \"a\" -> \"b\"\t\x01",
               spdlog::level::warn);
    EXPECT_EQ(line.find('\n'), line.size() - 1);
    const auto v = boost::json::parse(line).as_object();
    EXPECT_EQ(v.at("level").as_string(), "warning");
    EXPECT_EQ(v.at("msg").as_string(),
              "integrity: changed. What changed:\n/description: \"a\" -> \"b\"\t\x01");
    EXPECT_FALSE(v.contains("session"));
}

TEST(JsonLog, FormatNames) {
    EXPECT_EQ(parse_log_format("json"), LogFormat::json);
    EXPECT_EQ(parse_log_format("text"), LogFormat::text);
    EXPECT_FALSE(parse_log_format("xml"));
}

}  // namespace
}  // namespace pqmcp::observe
