// Transport building blocks without sockets: line framing, SSE, URLs,
// Accept negotiation, Origin checks.
#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <string>
#include <vector>

#include <boost/json/parse.hpp>

#include "pqmcp/transport/http_util.hpp"
#include "pqmcp/transport/line_io.hpp"
#include "pqmcp/transport/param_headers.hpp"
#include "pqmcp/transport/sse.hpp"

namespace pqmcp::transport {
namespace {

std::vector<std::string> lines_of(LineSplitter& s, std::initializer_list<std::string_view> pieces,
                                  std::size_t* errors = nullptr) {
    std::vector<Result<std::string>> out;
    for (const auto p : pieces) {
        s.feed(p, out);
    }
    std::vector<std::string> lines;
    for (auto& r : out) {
        if (r) {
            lines.push_back(*r);
        } else if (errors != nullptr) {
            EXPECT_EQ(r.error().code, Errc::too_large);
            ++*errors;
        }
    }
    return lines;
}

TEST(LineSplitter, SplitsAcrossChunksAndDropsCarriageReturns) {
    LineSplitter s(100);
    EXPECT_EQ(lines_of(s, {"{\"a\"", ":1}\r\n{\"b\":2}\n\n", "{\"c\""}),
              (std::vector<std::string>{"{\"a\":1}", "{\"b\":2}"}));
    auto last = s.finish();
    ASSERT_TRUE(last && *last);
    EXPECT_EQ(**last, "{\"c\"");
}

TEST(LineSplitter, AnOversizedLineIsReportedOnceAndSkipped) {
    LineSplitter s(8);
    std::size_t errors = 0;
    EXPECT_EQ(lines_of(s, {"0123456", "789abcdef", "ghij\nok\n"}, &errors),
              (std::vector<std::string>{"ok"}));
    EXPECT_EQ(errors, 1U);
}

TEST(Sse, ParsesEventsIdsRetryAndComments) {
    SseParser p(1'000);
    std::vector<SseEvent> events;
    ASSERT_TRUE(p.feed(": keep-alive\n\nid: 3-0\nretry: 1500\ndata: \n\n", events));
    ASSERT_TRUE(p.feed("event: message\r\nid: 3-1\r\ndata: {\"a\":\r\ndata: 1}\r\n\r\n", events));
    ASSERT_TRUE(p.feed("data: x\rdata: y\r\r", events));
    ASSERT_EQ(events.size(), 3U);
    EXPECT_EQ(events[0].data, "");  // the priming event: a cursor and a retry time
    EXPECT_EQ(events[0].id, "3-0");
    EXPECT_EQ(events[0].retry, 1500U);
    EXPECT_EQ(events[1].type, "message");
    EXPECT_EQ(events[1].data, "{\"a\":\n1}");
    EXPECT_EQ(events[1].id, "3-1");
    EXPECT_EQ(events[2].data, "x\ny");
    EXPECT_EQ(p.last_event_id(), "3-1");
}

TEST(Sse, AnEventOverTheLimitFails) {
    SseParser p(16);
    std::vector<SseEvent> events;
    auto st = p.feed("data: " + std::string(32, 'x'), events);
    ASSERT_FALSE(st);
    EXPECT_EQ(st.error().code, Errc::too_large);
}

TEST(Sse, FormatRoundTrips) {
    const std::string wire = format_sse_event("0-7", "{\"x\":1}", 2000) + format_sse_comment("ka");
    SseParser p(1'000);
    std::vector<SseEvent> events;
    ASSERT_TRUE(p.feed(wire, events));
    ASSERT_EQ(events.size(), 1U);
    EXPECT_EQ(events[0].data, "{\"x\":1}");
    EXPECT_EQ(events[0].id, "0-7");
    EXPECT_EQ(events[0].retry, 2000U);
}

TEST(Url, ParsesHttpAndHttps) {
    auto u = parse_url("https://127.0.0.1:8443/mcp");
    ASSERT_TRUE(u);
    EXPECT_TRUE(u->tls);
    EXPECT_EQ(u->host, "127.0.0.1");
    EXPECT_EQ(u->port, 8443);
    EXPECT_EQ(u->target, "/mcp");
    u = parse_url("http://[::1]/x?y=1");
    ASSERT_TRUE(u);
    EXPECT_EQ(u->host, "::1");
    EXPECT_EQ(u->port, 80);
    EXPECT_EQ(u->target, "/x?y=1");
    EXPECT_EQ(u->str(), "http://[::1]:80/x?y=1");
    for (const char* bad :
         {"ftp://x/", "https://", "https://u:p@host/", "https://h:99999/", "nope"}) {
        auto r = parse_url(bad);
        ASSERT_FALSE(r) << bad;
        EXPECT_EQ(r.error().code, Errc::invalid_url) << bad;
    }
}

TEST(Accept, FollowsMediaRangesAndWeights) {
    EXPECT_TRUE(accepts("application/json, text/event-stream", "application/json"));
    EXPECT_TRUE(accepts("application/json, text/event-stream", "text/event-stream"));
    EXPECT_FALSE(accepts("application/json", "text/event-stream"));
    EXPECT_TRUE(accepts("*/*", "text/event-stream"));
    EXPECT_TRUE(accepts("text/*;q=0.5", "text/event-stream"));
    EXPECT_FALSE(accepts("text/event-stream;q=0", "text/event-stream"));
    EXPECT_TRUE(accepts("", "application/json"));  // no header: anything
    EXPECT_FALSE(accepts("text/html", "application/json"));
}

TEST(Origin, AllowsListedOriginsAndRequestsWithoutOne) {
    const OriginPolicy policy({"https://app.example:8443", "HTTPS://Other.Example:443"});
    EXPECT_TRUE(policy.allows(""));
    EXPECT_TRUE(policy.allows("https://app.example:8443"));
    EXPECT_TRUE(policy.allows("https://other.example"));
    EXPECT_FALSE(policy.allows("https://evil.example"));
    EXPECT_FALSE(policy.allows("http://app.example:8443"));
    EXPECT_FALSE(policy.allows("null"));
    EXPECT_TRUE(OriginPolicy({"*"}).allows("https://anything.example"));
    EXPECT_EQ(normalize_origin("HTTPS://Host:443"), "https://host");
    EXPECT_EQ(normalize_origin("not an origin"), "");
}

}  // namespace
}  // namespace pqmcp::transport

namespace {

// 2026-07-28: header values that are not plain ASCII travel Base64-encoded
// in a sentinel; the server compares what they decode to.
TEST(HeaderValues, TheBase64SentinelRoundTrips) {
    using pqmcp::transport::decode_header_value;
    using pqmcp::transport::encode_header_value;
    EXPECT_EQ(encode_header_value("demo__echo"), "demo__echo");
    EXPECT_EQ(encode_header_value("eu-west \xc3\xa9"), "=?base64?ZXUtd2VzdCDDqQ==?=");
    EXPECT_EQ(encode_header_value(" padded"), "=?base64?IHBhZGRlZA==?=");
    for (const std::string v : {"x", "ab", "abc", "file:///caf\xc3\xa9", " lead", "trail\t"}) {
        EXPECT_EQ(decode_header_value(encode_header_value(v)), v) << v;
    }
    EXPECT_EQ(decode_header_value("plain"), "plain");
    EXPECT_EQ(decode_header_value("=?base64?ZXUtd2VzdCDDqQ==?="), "eu-west \xc3\xa9");
    EXPECT_FALSE(decode_header_value("=?base64?abc?="));   // not a multiple of 4
    EXPECT_FALSE(decode_header_value("=?base64?ab!d?="));  // not Base64
}

using pqmcp::transport::check_param_headers;
using pqmcp::transport::k_max_param_headers;
using pqmcp::transport::param_header_declared;
using pqmcp::transport::param_header_text;
using pqmcp::transport::param_headers_of;
using pqmcp::transport::ParamHeader;
using pqmcp::transport::ParamHeaderValues;

boost::json::value schema(std::string_view text) {
    return boost::json::parse(text);
}

TEST(ParamHeaders, MarksReachableThroughPropertiesAreRead) {
    const auto marks = param_headers_of(schema(R"({"type": "object", "properties": {
        "region": {"type": "string", "x-mcp-header": "Region"},
        "count": {"type": "integer", "x-mcp-header": "Count"},
        "flag": {"type": ["boolean", "null"], "x-mcp-header": "Flag"},
        "nested": {"type": "object", "properties": {
            "tenant": {"type": "string", "x-mcp-header": "Tenant-Id"}}},
        "plain": {"type": "string", "default": {"x-mcp-header": "not a mark"}}}})"));
    ASSERT_TRUE(marks) << marks.error();
    ASSERT_EQ(marks->size(), 4U);
    std::map<std::string, std::vector<std::string>> paths;
    for (const auto& m : *marks) {
        paths[m.name] = m.path;
    }
    EXPECT_EQ(paths["Tenant-Id"], (std::vector<std::string>{"nested", "tenant"}));
    EXPECT_EQ(paths["Region"], (std::vector<std::string>{"region"}));
    EXPECT_TRUE(std::any_of(marks->begin(), marks->end(),
                            [](const ParamHeader& m) { return m.name == "Count" && m.integer; }));
    EXPECT_TRUE(param_headers_of(schema(R"({"type": "object"})"))->empty());
}

TEST(ParamHeaders, InvalidMarksAreRefusedWithTheReason) {
    const auto why = [](std::string_view text) {
        auto marks = param_headers_of(schema(text));
        return marks ? std::string("valid") : marks.error();
    };
    EXPECT_NE(why(R"({"properties": {"a": {"type": "number", "x-mcp-header": "A"}}})")
                  .find("not a string, integer or boolean"),
              std::string::npos);
    EXPECT_NE(why(R"({"properties": {"a": {"x-mcp-header": "A"}}})").find("not a string"),
              std::string::npos);
    EXPECT_NE(why(R"({"properties": {"a": {"type": "string", "x-mcp-header": "A B"}}})")
                  .find("not an HTTP token"),
              std::string::npos);
    EXPECT_NE(why(R"({"properties": {"a": {"type": "string", "x-mcp-header": ""}}})")
                  .find("not an HTTP token"),
              std::string::npos);
    EXPECT_NE(why(R"({"properties": {"a": {"type": "string", "x-mcp-header": "Id"},
                                     "b": {"type": "string", "x-mcp-header": "ID"}}})")
                  .find("declared twice"),
              std::string::npos);
    EXPECT_NE(why(R"({"properties": {"a": {"type": "array", "items":
                      {"type": "string", "x-mcp-header": "A"}}}})")
                  .find("not reachable"),
              std::string::npos);
    EXPECT_NE(why(R"({"oneOf": [{"properties": {"a": {"type": "string", "x-mcp-header": "A"}}}]})")
                  .find("not reachable"),
              std::string::npos);
    EXPECT_NE(
        why(R"({"$defs": {"a": {"type": "string", "x-mcp-header": "A"}}})").find("not reachable"),
        std::string::npos);
    EXPECT_NE(why(R"({"type": "object", "x-mcp-header": "Root"})").find("not reachable"),
              std::string::npos);
    std::string many = R"({"properties": {)";
    for (std::size_t i = 0; i <= k_max_param_headers; ++i) {
        many += (i == 0 ? "" : ",") + std::string("\"p") + std::to_string(i) +
                R"(": {"type": "string", "x-mcp-header": "P)" + std::to_string(i) + "\"}";
    }
    many += "}}";
    EXPECT_NE(why(many).find("more than 64"), std::string::npos) << why(many);
}

TEST(ParamHeaders, HeadersAreCheckedAgainstTheArguments) {
    const auto marks = *param_headers_of(schema(R"({"properties": {
        "region": {"type": "string", "x-mcp-header": "Region"},
        "count": {"type": "integer", "x-mcp-header": "Count"},
        "flag": {"type": "boolean", "x-mcp-header": "Flag"}}})"));
    const auto args = schema(R"({"region": "eu-west é", "count": 42, "flag": true})");
    const ParamHeaderValues good = {
        {"region", "=?base64?ZXUtd2VzdCDDqQ==?="}, {"COUNT", "42.0"}, {"Flag", "true"}};
    EXPECT_EQ(check_param_headers(marks, args, good), "");
    // Null and absent arguments get no header, and none is expected.
    EXPECT_EQ(check_param_headers(marks, schema(R"({"region": null})"), {}), "");
    EXPECT_EQ(check_param_headers(marks, args, {{"Count", "42"}, {"Flag", "true"}}),
              "the arguments carry Region but the required Mcp-Param-Region header is absent");
    EXPECT_EQ(check_param_headers(marks, args,
                                  {{"Region", "eu-west"}, {"Count", "42"}, {"Flag", "true"}}),
              "the Mcp-Param-Region header does not match the arguments");
    EXPECT_EQ(check_param_headers(
                  marks, args,
                  {{"Region", "=?base64?ZXUtd2VzdCDDqQ==?="}, {"Count", "43"}, {"Flag", "true"}}),
              "the Mcp-Param-Count header does not match the arguments");
    EXPECT_EQ(
        check_param_headers(marks, schema(R"({"count": 1})"), {{"Count", "1"}, {"Flag", "false"}}),
        "the Mcp-Param-Flag header is present but the arguments carry no value for it");
    EXPECT_EQ(check_param_headers(marks, schema(R"({"region": "x"})"), {{"Region", "x\x01"}}),
              "the Mcp-Param-Region header carries characters a header value may not");
    EXPECT_EQ(
        check_param_headers(marks, schema(R"({"region": "x"})"), {{"Region", "=?base64?!?="}}),
        "the Mcp-Param-Region header's Base64 value does not decode");
    // Unknown headers are not this check's business.
    EXPECT_EQ(check_param_headers(marks, schema("{}"), {{"Tenant", "acme"}}), "");
    EXPECT_TRUE(param_header_declared(marks, "rEgIoN"));
    EXPECT_FALSE(param_header_declared(marks, "Tenant"));
    // What a client sends for each kind of value.
    EXPECT_EQ(param_header_text(&args.as_object().at("count")), "42");
    EXPECT_EQ(param_header_text(&args.as_object().at("flag")), "true");
    const auto fraction = schema("1.5");
    EXPECT_EQ(param_header_text(&fraction), std::nullopt);
    const auto whole = schema("7.0");
    EXPECT_EQ(param_header_text(&whole), "7");
}

TEST(ResourceUri, NormalizedBeforeAnyoneComparesIt) {
    using pqmcp::transport::normalize_resource_uri;
    const std::pair<const char*, const char*> same[] = {
        {"file:///public/readme.txt", "file:///public/readme.txt"},
        {"file:///public/../etc/passwd", "file:///etc/passwd"},
        {"file:///public/./../../../etc/passwd", "file:///etc/passwd"},
        {"file:///public/%2e%2e/etc/passwd", "file:///etc/passwd"},
        {"file:///public/%2E%2E/etc/passwd", "file:///etc/passwd"},
        {"file:///public/.%2E/etc/passwd", "file:///etc/passwd"},
        {"FILE:///public/./a%7eb", "file:///public/a~b"},
        {"note://Host.Example/%41%62", "note://host.example/Ab"},
        {"db://x/a%20b", "db://x/a%20b"},
    };
    for (const auto& [in, out] : same) {
        const auto n = normalize_resource_uri(in);
        ASSERT_TRUE(n) << in << ": " << n.error().detail;
        EXPECT_EQ(*n, out) << in;
    }
    for (const std::string& bad :
         {std::string("file:///public/..%2fetc%2fpasswd"), std::string("file:///public/..%5Cetc"),
          std::string("file:///public/%00"), std::string("file:///public/a\0b", 18),
          std::string("public/readme"), std::string("file:///public/a b")}) {
        const auto n = normalize_resource_uri(bad);
        EXPECT_FALSE(n) << bad << " -> " << (n ? *n : "");
        if (!n) {
            EXPECT_EQ(n.error().code, pqmcp::transport::Errc::invalid_url);
        }
    }
}

}  // namespace
