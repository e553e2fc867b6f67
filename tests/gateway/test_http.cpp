// The Streamable HTTP rules (specification 2025-11-25, "Transports") as the
// gateway applies them: each negative case gets its specified status.
#include <gtest/gtest.h>

#include <array>
#include <set>
#include <thread>

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/json/parse.hpp>

#include "../common/socket_watchdog.hpp"
#include "harness.hpp"
#include "test_paths.hpp"

namespace pqmcp::gateway::test {
namespace {

namespace json = boost::json;
const std::vector<Header> k_post_headers{{"Content-Type", "application/json"},
                                         {"Accept", "application/json, text/event-stream"}};
constexpr const char* k_list = R"({"jsonrpc":"2.0","id":2,"method":"tools/list"})";

int rpc_code(const HttpReply& r) {
    const auto v = r.json();
    if (!v.is_object() || !v.as_object().contains("error")) {
        return 0;
    }
    return static_cast<int>(v.at("error").at("code").as_int64());
}

TEST(StreamableHttp, InitializeGivesASessionIdAndJson) {
    Harness h;
    const auto reply = h.post(
        R"({"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"t","version":"1"}}})");
    ASSERT_EQ(reply.status, 200U) << reply.error;
    EXPECT_EQ(reply.header("content-type"), "application/json");
    const std::string session = reply.header("mcp-session-id");
    ASSERT_EQ(session.size(), 32U);  // 128 bits from the CSPRNG, hex
    for (const char c : session) {
        EXPECT_TRUE(c > 0x20 && c < 0x7f);
    }
    const auto result = reply.json().at("result");
    EXPECT_EQ(result.at("protocolVersion"), json::value("2025-06-18"));
    EXPECT_EQ(result.at("serverInfo").at("name"), json::value("pqmcp"));
    // A second initialize is a second session.
    EXPECT_NE(h.open_session(), session);
}

// 2026-07-28: each POST stands alone. Requests of one caller arriving on
// connections of either thread reach the one session the gateway keeps for
// it (on the thread its identity hashes to), never named to the client.
TEST(StreamableHttp, StatelessRequestsShareTheCallersKeptSession) {
    Harness h;
    const auto stateless = [&](const std::string& method, const std::string& params,
                               const std::string& name = {}) {
        std::vector<Header> headers = k_post_headers;
        headers.push_back({"MCP-Protocol-Version", "2026-07-28"});
        headers.push_back({"Mcp-Method", method});
        if (!name.empty()) {
            headers.push_back({"Mcp-Name", name});
        }
        const std::string meta =
            R"("_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28",)"
            R"("io.modelcontextprotocol/clientCapabilities":{}})";
        return h.http("POST", "/mcp", headers,
                      R"({"jsonrpc":"2.0","id":7,"method":")" + method + R"(","params":{)" +
                          params + (params.empty() ? "" : ",") + meta + "}}");
    };
    const auto discover = stateless("server/discover", "");
    ASSERT_EQ(discover.status, 200U) << discover.body;
    EXPECT_EQ(discover.header("mcp-session-id"), "");
    const auto d = discover.json().at("result");
    EXPECT_EQ(d.at("supportedVersions").at(0), json::value("2026-07-28"));
    EXPECT_TRUE(d.at("capabilities").as_object().contains("tools"));
    EXPECT_EQ(d.at("cacheScope"), json::value("private"));
    for (int i = 0; i < 6; ++i) {  // fresh connections, dealt to both threads in turn
        const auto list = stateless("tools/list", "");
        ASSERT_EQ(list.status, 200U) << list.body;
        EXPECT_EQ(list.json().at("result").at("tools").as_array().size(), 5U);
        EXPECT_EQ(list.json().at("result").at("resultType"), json::value("complete"));
        const auto echo = stateless(
            "tools/call", R"("name":"demo__echo","arguments":{"message":"s"})", "demo__echo");
        ASSERT_EQ(echo.status, 200U) << echo.body;
        EXPECT_EQ(echo.json().at("result").at("content").at(0).at("text"), json::value("s"));
    }
    EXPECT_EQ(h.gateway().stats()->sessions, 1U);
    // Another identity gets a kept session of its own.
    const Client other = h.make_client();
    std::vector<Header> headers = k_post_headers;
    headers.push_back({"MCP-Protocol-Version", "2026-07-28"});
    headers.push_back({"Mcp-Method", "tools/list"});
    const auto theirs = h.http(
        "POST", "/mcp", headers,
        R"({"jsonrpc":"2.0","id":1,"method":"tools/list","params":{"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{}}}})",
        &other);
    ASSERT_EQ(theirs.status, 200U) << theirs.body;
    EXPECT_EQ(h.gateway().stats()->sessions, 2U);
    // A header that disagrees with the body: 400, HeaderMismatch, the request's id.
    headers.back().value = "prompts/list";
    const auto wrong = h.http(
        "POST", "/mcp", headers,
        R"({"jsonrpc":"2.0","id":5,"method":"tools/list","params":{"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{}}}})");
    EXPECT_EQ(wrong.status, 400U);
    EXPECT_EQ(rpc_code(wrong), -32020);
    EXPECT_EQ(wrong.json().at("id"), json::value(5));
}

// 2026-07-28 multi round-trip: the policy's ask reaches a stateless client as
// input_required; its requestState works once, for this caller and request.
TEST(StreamableHttp, StatelessAskIsInputRequiredWithASealedSingleUseState) {
    Harness h({demo_upstream()}, [](GatewayConfig& c) {
        c.policy_file =
            std::filesystem::path(pqmcp::test_paths::source_dir()) / "examples/policies/demo.yaml";
    });
    std::vector<Header> headers = k_post_headers;
    headers.push_back({"MCP-Protocol-Version", "2026-07-28"});
    headers.push_back({"Mcp-Method", "tools/call"});
    headers.push_back({"Mcp-Name", "demo__process_refund"});
    const auto call = [&](int id, const std::string& extra, const Client* who = nullptr) {
        return h.http(
            "POST", "/mcp", headers,
            R"({"jsonrpc":"2.0","id":)" + std::to_string(id) +
                R"(,"method":"tools/call","params":{"name":"demo__process_refund","arguments":{"order_id":"O1","amount":900,"currency":"USD","reason":"damaged in transit"})" +
                extra +
                R"(,"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{"elicitation":{"form":{}}}}}})",
            who);
    };
    const auto first = call(1, "");
    ASSERT_EQ(first.status, 200U) << first.body;
    const auto result = first.json().at("result").as_object();
    ASSERT_EQ(result.at("resultType"), json::value("input_required")) << first.body;
    const auto& inputs = result.at("inputRequests").as_object();
    ASSERT_EQ(inputs.size(), 1U);
    const std::string key(inputs.begin()->key());
    EXPECT_EQ(inputs.begin()->value().at("method"), json::value("elicitation/create"));
    const std::string state(result.at("requestState").as_string());
    const std::string answer =
        R"(,"inputResponses":{")" + key +
        R"(":{"action":"accept","content":{"approve":true}}},"requestState":")";
    std::string tampered = state;
    tampered[10] = tampered[10] == 'a' ? 'b' : 'a';
    const auto bad = call(2, answer + tampered + "\"");
    EXPECT_EQ(bad.status, 400U);
    EXPECT_EQ(rpc_code(bad), -32602);
    const Client other = h.make_client();
    EXPECT_EQ(call(3, answer + state + "\"", &other).status, 400U);
    const auto done = call(4, answer + state + "\"");
    ASSERT_EQ(done.status, 200U) << done.body;
    EXPECT_EQ(done.json().at("id"), json::value(4));
    EXPECT_EQ(done.json().at("result").at("resultType"), json::value("complete")) << done.body;
    const auto replay = call(5, answer + state + "\"");
    EXPECT_EQ(replay.status, 400U);
    EXPECT_NE(replay.body.find("used already"), std::string::npos) << replay.body;
}

// A session's requests are answered on its home thread. A kept-alive
// connection that the other thread accepted moves there with its first
// request for that session, and once only: a connection that then carries
// another session's requests has those answered across (lent), not moved
// back and forth.
TEST(StreamableHttp, AConnectionMovesToItsSessionsThreadOnce) {
    Harness h;
    std::array<std::string, 2> on;  // a session homed on each thread
    for (int i = 0; i < 12 && (on[0].empty() || on[1].empty()); ++i) {
        const std::string id = h.open_session();
        on.at(std::stoul(id.substr(0, 2), nullptr, 16) % 2) = id;
        // Connections are dealt to the threads in turn, and a session is
        // homed where its initialize came: one more moves the next one over.
        (void)h.http("GET", "/nowhere", {}, "");
    }
    ASSERT_FALSE(on[0].empty() || on[1].empty()) << "no session on each thread";
    const auto before = h.gateway().stats();
    ASSERT_TRUE(before);
    std::vector<std::pair<std::string, std::string>> posts;
    int id = 1;
    for (const std::string& session : {on[0], on[1], on[0]}) {
        for (int i = 0; i < 5; ++i, ++id) {
            posts.emplace_back(
                session,
                R"({"jsonrpc":"2.0","id":)" + std::to_string(id) +
                    R"(,"method":"tools/call","params":{"name":"demo__echo","arguments":{"message":"m)" +
                    std::to_string(id) + R"("}}})");
        }
    }
    const auto replies = h.posts_on_one_connection(posts);
    for (std::size_t i = 0; i < replies.size(); ++i) {
        ASSERT_EQ(replies[i].status, 200U) << i << ": " << replies[i].error << replies[i].body;
        const auto body = replies[i].json();
        EXPECT_EQ(body.at("result").at("content").at(0).at("text").as_string(),
                  "m" + std::to_string(i + 1))
            << replies[i].body;
    }
    // Whichever thread took the connection, one of the two sessions' requests
    // found it on the other: it moved then, and never again.
    const auto after = h.gateway().stats();
    ASSERT_TRUE(after);
    EXPECT_EQ(after->connections_moved - before->connections_moved, 1U);
}

// open_session() brings each initialize on a fresh connection and its
// notifications/initialized on the next: with connections dealt to the two
// threads in turn, every initialize arrives on the same thread. Sessions are
// dealt in turn themselves, so they are homed on both all the same, and each
// answers there.
TEST(StreamableHttp, NewSessionsAreDealtToTheThreadsInTurn) {
    Harness h;
    std::array<int, 2> homed{};
    std::vector<std::string> sessions;
    for (int i = 0; i < 6; ++i) {
        sessions.push_back(h.open_session());
        ++homed.at(std::stoul(sessions.back().substr(0, 2), nullptr, 16) % 2);
    }
    EXPECT_EQ(homed[0], 3);
    EXPECT_EQ(homed[1], 3);
    for (const auto& session : sessions) {
        const auto r = h.post(
            R"({"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"demo__echo","arguments":{"message":"hi"}}})",
            session, "2025-11-25");
        ASSERT_EQ(r.status, 200U) << r.error << r.body;
        EXPECT_EQ(r.json().at("result").at("content").at(0).at("text").as_string(), "hi");
    }
}

TEST(StreamableHttp, NotificationsAre202AndRequestsAnswer) {
    Harness h;
    const auto session = h.open_session();
    const auto list = h.post(k_list, session, "2025-11-25");
    ASSERT_EQ(list.status, 200U);
    const auto tools = list.json().at("result").at("tools").as_array();
    ASSERT_EQ(tools.size(), 5U);
    EXPECT_EQ(tools.at(0).at("name"), json::value("demo__echo"));
    const auto note = h.post(R"({"jsonrpc":"2.0","method":"notifications/roots/list_changed"})",
                             session, "2025-11-25");
    EXPECT_EQ(note.status, 202U);
    EXPECT_TRUE(note.body.empty());
}

TEST(StreamableHttp, SessionAndVersionHeadersAreChecked) {
    Harness h;
    const auto session = h.open_session();
    // No session: 400. Unknown session: 404.
    auto r = h.post(k_list);
    EXPECT_EQ(r.status, 400U);
    EXPECT_EQ(rpc_code(r), mcp::code::invalid_request);
    r = h.post(k_list, "0123456789abcdef0123456789abcdef");
    EXPECT_EQ(r.status, 404U);
    // "If the server receives a request with an invalid or unsupported
    // MCP-Protocol-Version, it MUST respond with 400 Bad Request."
    r = h.post(k_list, session, "2031-01-01");
    EXPECT_EQ(r.status, 400U);
    EXPECT_NE(r.body.find("unsupported MCP-Protocol-Version 2031-01-01"), std::string::npos);
    // Supported, though not this session's: served (the conformance suite's
    // server-sse-multiple-streams sends 2025-03-26 on a 2025-11-25 session).
    r = h.post(k_list, session, "2025-03-26");
    EXPECT_EQ(r.status, 200U);
    // Without the header the negotiated version is assumed.
    EXPECT_EQ(h.post(k_list, session).status, 200U);
    // initialize with a session id is refused.
    r = h.post(R"({"jsonrpc":"2.0","id":1,"method":"initialize","params":{}})", session);
    EXPECT_EQ(r.status, 400U);
}

TEST(StreamableHttp, ContentTypeAcceptAndOriginAreChecked) {
    Harness h;
    const auto session = h.open_session();
    auto r = h.http("POST", "/mcp",
                    {{"Content-Type", "application/json"},
                     {"Accept", "application/json"},
                     {"Mcp-Session-Id", session}},
                    k_list);
    EXPECT_EQ(r.status, 406U);
    r = h.http("POST", "/mcp",
               {{"Content-Type", "text/plain"},
                {"Accept", "application/json, text/event-stream"},
                {"Mcp-Session-Id", session}},
               k_list);
    EXPECT_EQ(r.status, 415U);
    r = h.http("GET", "/mcp", {{"Accept", "application/json"}, {"Mcp-Session-Id", session}}, "");
    EXPECT_EQ(r.status, 406U);
    // "If the Origin header is present and invalid, servers MUST respond with
    // HTTP 403 Forbidden" -- with a JSON-RPC error without an id.
    auto headers = k_post_headers;
    headers.push_back({"Origin", "https://evil.example"});
    headers.push_back({"Mcp-Session-Id", session});
    r = h.http("POST", "/mcp", headers, k_list);
    EXPECT_EQ(r.status, 403U);
    EXPECT_TRUE(r.json().at("id").is_null());
    r = h.http("PUT", "/mcp", {{"Mcp-Session-Id", session}}, "");
    EXPECT_EQ(r.status, 405U);
    EXPECT_EQ(r.header("allow"), "GET, POST, DELETE");
    r = h.http("GET", "/elsewhere", {}, "");
    EXPECT_EQ(r.status, 404U);
}

// The gateway's own host and port, either scheme, is not a rebinding page
// (its https pages are its own, and no page comes from http on a TLS-only
// port); the same port under another host name is.
TEST(StreamableHttp, TheGatewaysOwnOriginPasses) {
    Harness h;
    const std::string port = std::to_string(h.port());
    for (const std::string& origin : std::vector<std::string>{
             "https://127.0.0.1:" + port, "http://127.0.0.1:" + port, "http://localhost:" + port}) {
        auto headers = k_post_headers;
        headers.push_back({"Origin", origin});
        const auto r = h.http("POST", "/mcp", headers,
                              R"({"jsonrpc":"2.0","id":1,"method":"initialize","params":{}})");
        EXPECT_EQ(r.status, 200U) << origin;
    }
    for (const std::string& origin :
         std::vector<std::string>{"http://evil.example:" + port, "http://127.0.0.1:1"}) {
        auto headers = k_post_headers;
        headers.push_back({"Origin", origin});
        const auto r = h.http("POST", "/mcp", headers,
                              R"({"jsonrpc":"2.0","id":1,"method":"initialize","params":{}})");
        EXPECT_EQ(r.status, 403U) << origin;
    }
}

TEST(StreamableHttp, AnAllowedOriginPasses) {
    Harness h({demo_upstream()},
              [](GatewayConfig& c) { c.allowed_origins = {"https://app.example"}; });
    auto headers = k_post_headers;
    headers.push_back({"Origin", "https://app.example"});
    const auto r = h.http("POST", "/mcp", headers,
                          R"({"jsonrpc":"2.0","id":1,"method":"initialize","params":{}})");
    EXPECT_EQ(r.status, 200U);
}

TEST(StreamableHttp, MalformedAndOversizedBodies) {
    Harness h({demo_upstream()}, [](GatewayConfig& c) {
        c.limits.http.max_body_bytes = 4096;
        c.limits.message.max_message_bytes = 4096;
        c.limits.message.max_depth = 16;
        c.limits.http.max_header_bytes = 2048;
    });
    const auto session = h.open_session();
    auto r = h.post("{not json", session);
    EXPECT_EQ(r.status, 400U);
    EXPECT_EQ(rpc_code(r), mcp::code::parse_error);
    r = h.post(R"({"jsonrpc":"2.0","id":5})", session);
    EXPECT_EQ(r.status, 400U);
    EXPECT_EQ(rpc_code(r), mcp::code::invalid_request);
    r = h.post(std::string(64, '[') + std::string(64, ']'), session);
    EXPECT_EQ(r.status, 400U);
    EXPECT_EQ(rpc_code(r), mcp::code::parse_error);
    r = h.post(
        R"({"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"demo__echo","arguments":{"message":")" +
            std::string(8000, 'x') + "\"}}}",
        session);
    EXPECT_EQ(r.status, 413U);
    auto headers = k_post_headers;
    headers.push_back({"X-Padding", std::string(4000, 'p')});
    r = h.http("POST", "/mcp", headers, k_list);
    EXPECT_EQ(r.status, 431U);
    // The session still works.
    EXPECT_EQ(h.post(k_list, session).status, 200U);
}

TEST(StreamableHttp, BatchesOnlyWhereTheVersionHasThem) {
    Harness h;
    const std::string batch =
        R"([{"jsonrpc":"2.0","id":10,"method":"ping"},{"jsonrpc":"2.0","id":11,"method":"tools/list"}])";
    const auto modern = h.open_session("2025-11-25");
    auto r = h.post(batch, modern);
    EXPECT_EQ(r.status, 400U);
    EXPECT_NE(r.body.find("batches are not part of protocol version 2025-11-25"),
              std::string::npos);
    const auto old = h.open_session("2025-03-26");
    r = h.post(batch, old, "2025-03-26");
    ASSERT_EQ(r.status, 200U) << r.body;
    const auto answers = r.json().as_array();
    ASSERT_EQ(answers.size(), 2U);
    EXPECT_EQ(answers.at(0).at("id"), json::value(10));
    EXPECT_EQ(answers.at(1).at("id"), json::value(11));
}

TEST(StreamableHttp, ABatchGetsEveryAnswerWhateverTheReplayBuffersSize) {
    // Answers larger together than a stream's replay buffer: none is dropped.
    Harness h({demo_upstream()}, [](GatewayConfig& c) { c.limits.http.replay_bytes = 1U << 20U; });
    const auto old = h.open_session("2025-03-26");
    std::string batch = "[";
    const std::string text(600'000, 'x');
    for (int i = 0; i < 3; ++i) {
        batch +=
            std::string(i == 0 ? "" : ",") + R"({"jsonrpc":"2.0","id":)" + std::to_string(20 + i) +
            R"(,"method":"tools/call","params":{"name":"demo__echo","arguments":{"message":")" +
            text + R"("}}})";
    }
    batch += "]";
    const auto r = h.post(batch, old, "2025-03-26");
    ASSERT_EQ(r.status, 200U) << r.body.substr(0, 300);
    const auto answers = r.json().as_array();
    ASSERT_EQ(answers.size(), 3U);
    std::set<std::int64_t> ids;
    for (const auto& a : answers) {
        ASSERT_TRUE(a.as_object().contains("result")) << mcp::serialize(a).substr(0, 300);
        ids.insert(a.at("id").as_int64());
        EXPECT_EQ(a.at("result").at("content").at(0).at("text").as_string().size(), text.size());
    }
    EXPECT_EQ(ids, (std::set<std::int64_t>{20, 21, 22}));
}

TEST(StreamableHttp, OneIdentityCannotTakeEverySession) {
    Harness h({demo_upstream()},
              [](GatewayConfig& c) { c.limits.http.max_sessions_per_identity = 2; });
    (void)h.open_session();
    (void)h.open_session();
    const std::string init =
        R"({"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"t","version":"1"}}})";
    const auto third = h.post(init);
    EXPECT_EQ(third.status, 429U) << third.body;
    EXPECT_NE(third.body.find("limits.max_sessions_per_identity"), std::string::npos);
    const auto other = h.make_client();
    EXPECT_FALSE(h.open_session("2025-11-25", &other).empty());  // another identity still can
}

TEST(StreamableHttp, AnswersNobodyReadsAreBoundedGatewayWide) {
    constexpr std::size_t k_budget = 2U << 20U;
    Harness h({demo_upstream()}, [](GatewayConfig& c) { c.limits.http.buffer_bytes = k_budget; });
    const auto session = h.open_session();
    const std::string text(400'000, 'y');
    for (int i = 0; i < 20; ++i) {
        // The client asks and goes away before the answer: it waits in a
        // stream nobody reads (for Last-Event-ID), within the budget.
        Stream s(
            h, "POST",
            {{"Content-Type", "application/json"},
             {"Accept", "application/json, text/event-stream"},
             {"Mcp-Session-Id", session},
             {"MCP-Protocol-Version", "2025-11-25"}},
            R"({"jsonrpc":"2.0","id":)" + std::to_string(100 + i) +
                R"(,"method":"tools/call","params":{"name":"demo__echo","arguments":{"message":")" +
                text + R"("}}})");
        s.cut();
    }
    // The session still answers, and what waits is bounded.
    EXPECT_EQ(h.post(R"({"jsonrpc":"2.0","id":1,"method":"ping"})", session).status, 200U);
    EXPECT_LE(h.gateway().stats()->buffered_bytes, k_budget + text.size() + 1'024);
}

TEST(StreamableHttp, GetStreamIsSseAndOnlyOne) {
    Harness h;
    const auto session = h.open_session();
    auto r = h.http("GET", "/mcp", {{"Accept", "text/event-stream"}}, "");
    EXPECT_EQ(r.status, 400U);  // no session
    Stream first(h, "GET", {{"Accept", "text/event-stream"}, {"Mcp-Session-Id", session}}, "");
    ASSERT_EQ(first.status(), 200U);
    EXPECT_EQ(first.header("Content-Type"), "text/event-stream");
    (void)first.events(1, std::chrono::milliseconds{300});  // only the priming event comes
    EXPECT_EQ(first.last_event_id(), "0-0");
    r = h.http("GET", "/mcp", {{"Accept", "text/event-stream"}, {"Mcp-Session-Id", session}}, "");
    EXPECT_EQ(r.status, 409U);
}

TEST(StreamableHttp, DeleteEndsTheSession) {
    Harness h;
    const auto session = h.open_session();
    auto r = h.http("DELETE", "/mcp", {{"Mcp-Session-Id", session}}, "");
    EXPECT_EQ(r.status, 200U);
    EXPECT_EQ(h.post(k_list, session).status, 404U);
    r = h.http("DELETE", "/mcp", {{"Mcp-Session-Id", session}}, "");
    EXPECT_EQ(r.status, 404U);
}

// The harness runs two threads and each request comes on a new connection,
// dealt to the threads in turn: half of these arrive on the thread that is not
// the sessions' home and are answered there all the same.
TEST(StreamableHttp, SessionsAnswerOnEveryThreadsConnections) {
    Harness h;
    std::vector<std::string> sessions;
    sessions.reserve(4);
    for (int i = 0; i < 4; ++i) {
        sessions.push_back(h.open_session());
    }
    EXPECT_EQ(std::set<std::string>(sessions.begin(), sessions.end()).size(), 4U);
    for (int round = 0; round < 5; ++round) {
        for (const auto& session : sessions) {
            const auto list = h.post(k_list, session, "2025-11-25");
            ASSERT_EQ(list.status, 200U) << list.body;
            EXPECT_EQ(list.json().at("result").at("tools").as_array().size(), 5U);
        }
    }
    EXPECT_EQ(h.gateway().stats()->sessions, 4U);
    // Ended from one thread's connection, gone on both.
    EXPECT_EQ(h.http("DELETE", "/mcp", {{"Mcp-Session-Id", sessions[0]}}, "").status, 200U);
    EXPECT_EQ(h.post(k_list, sessions[0], "2025-11-25").status, 404U);
    EXPECT_EQ(h.post(k_list, sessions[0], "2025-11-25").status, 404U);
    EXPECT_EQ(h.post(k_list, sessions[1], "2025-11-25").status, 200U);
    EXPECT_EQ(h.gateway().stats()->sessions, 3U);
}

TEST(StreamableHttp, ASessionBelongsToTheIdentityThatOpenedIt) {
    Harness h;
    const auto session = h.open_session();
    const Client other = h.make_client();
    EXPECT_EQ(h.post(k_list, session, {}, &other).status, 404U);
    EXPECT_EQ(h.post(k_list, session).status, 200U);
}

TEST(StreamableHttp, SessionLimitAnswers503) {
    Harness h({demo_upstream()}, [](GatewayConfig& c) { c.limits.http.max_sessions = 2; });
    (void)h.open_session();
    (void)h.open_session();
    const auto r = h.post(R"({"jsonrpc":"2.0","id":1,"method":"initialize","params":{}})");
    EXPECT_EQ(r.status, 503U);
    EXPECT_EQ(rpc_code(r), mcp::code::over_limit);
    EXPECT_EQ(r.header("retry-after"), "5");
}

TEST(StreamableHttp, IdleSessionsExpire) {
    Harness h({demo_upstream()}, [](GatewayConfig& c) {
        c.timeouts.http.session_idle = std::chrono::milliseconds{300};
    });
    const auto session = h.open_session();
    std::this_thread::sleep_for(std::chrono::milliseconds{800});
    EXPECT_EQ(h.post(k_list, session).status, 404U);
}

// A client that sends its request one byte at a time gets 408 within the read
// timeout, and the gateway keeps serving another session meanwhile.
TEST(StreamableHttp, SlowClientGets408AndOthersAreServed) {
    Harness h({demo_upstream()},
              [](GatewayConfig& c) { c.timeouts.http.read = std::chrono::milliseconds{1'000}; });
    const auto session = h.open_session();
    namespace asio = boost::asio;
    asio::io_context io;
    SSL_CTX_up_ref(h.client().context.get());
    asio::ssl::context ssl(h.client().context.get());
    asio::ssl::stream<asio::ip::tcp::socket> slow(io, ssl);
    slow.next_layer().connect({asio::ip::make_address("127.0.0.1"), h.port()});
    slow.handshake(asio::ssl::stream_base::client);
    const std::string request = "POST /mcp HTTP/1.1\r\nHost: x\r\nContent-Length: 40\r\n\r\n";
    const auto start = std::chrono::steady_clock::now();
    std::string got;
    std::thread drip([&] {
        for (const char c : request) {
            boost::system::error_code ec;
            asio::write(slow, asio::buffer(&c, 1), ec);
            if (ec) {
                return;
            }
            std::this_thread::sleep_for(std::chrono::milliseconds{100});
        }
    });
    // Meanwhile another session is served at once.
    const auto t0 = std::chrono::steady_clock::now();
    EXPECT_EQ(h.post(k_list, session).status, 200U);
    EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds{1});
    std::array<char, 512> buf{};
    boost::system::error_code ec;
    const std::size_t n = slow.read_some(asio::buffer(buf), ec);
    got.assign(buf.data(), n);
    const auto waited = std::chrono::steady_clock::now() - start;
    drip.join();
    EXPECT_EQ(got.rfind("HTTP/1.1 408", 0), 0U) << got;
    EXPECT_LT(waited, std::chrono::seconds{4});
}

// A request is parsed from what has arrived when that is all of it; the
// rest of one that comes in pieces is read (with the read timeout), and a
// second request in the same write waits its turn in the buffer.
TEST(StreamableHttp, RequestsInPiecesOrTogetherAreAllAnswered) {
    Harness h;
    const auto session = h.open_session();
    namespace asio = boost::asio;
    asio::io_context io;
    SSL_CTX_up_ref(h.client().context.get());
    asio::ssl::context ssl(h.client().context.get());
    asio::ssl::stream<asio::ip::tcp::socket> tls(io, ssl);
    tls.next_layer().connect({asio::ip::make_address("127.0.0.1"), h.port()});
    tls.handshake(asio::ssl::stream_base::client);
    const auto request = [&](int id) {
        const std::string body =
            R"({"jsonrpc":"2.0","id":)" + std::to_string(id) + R"(,"method":"tools/list"})";
        return std::pair<std::string, std::string>{
            "POST /mcp HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            "Accept: application/json, text/event-stream\r\nMcp-Session-Id: " +
                session + "\r\nMCP-Protocol-Version: 2025-11-25\r\nContent-Length: " +
                std::to_string(body.size()) + "\r\n\r\n",
            body};
    };
    // A response that never comes fails the test instead of hanging it.
    const pqmcp::test::SocketWatchdog watchdog(tls.next_layer().native_handle(),
                                               std::chrono::seconds{10});
    namespace http = boost::beast::http;
    boost::beast::flat_buffer buffer;
    // The next response on the connection: its status and its answer's id.
    const auto next = [&] {
        http::response<http::string_body> res;
        boost::system::error_code ec;
        http::read(tls, buffer, res, ec);
        EXPECT_FALSE(ec) << ec.message();
        const auto v = json::parse(res.body(), ec);
        EXPECT_FALSE(ec) << res.body().substr(0, 200);
        return std::pair<unsigned, std::int64_t>{
            res.result_int(), v.is_object() && v.as_object().contains("id") && v.at("id").is_int64()
                                  ? v.at("id").as_int64()
                                  : -1};
    };
    // The header first, then the body on its own.
    const auto [head, body] = request(7);
    boost::system::error_code wec;
    asio::write(tls, asio::buffer(head), wec);
    std::this_thread::sleep_for(std::chrono::milliseconds{100});
    asio::write(tls, asio::buffer(body), wec);
    ASSERT_FALSE(wec) << wec.message();
    EXPECT_EQ(next(), (std::pair<unsigned, std::int64_t>{200, 7}));
    // Two whole requests in one write: both answered, in order.
    const auto [head8, body8] = request(8);
    const auto [head9, body9] = request(9);
    asio::write(tls, asio::buffer(head8 + body8 + head9 + body9), wec);
    ASSERT_FALSE(wec) << wec.message();
    EXPECT_EQ(next(), (std::pair<unsigned, std::int64_t>{200, 8}));
    EXPECT_EQ(next(), (std::pair<unsigned, std::int64_t>{200, 9}));
}

}  // namespace
}  // namespace pqmcp::gateway::test
