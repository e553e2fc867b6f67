#include <gtest/gtest.h>

#include <regex>
#include <string>

#include <boost/json.hpp>

#include "pqmcp/identity/identity.hpp"
#include "pqmcp/measure/handshake.hpp"
#include "pqmcp/measure/measure.hpp"
#include "pqmcp/tls/context.hpp"

namespace pqmcp::measure {
namespace {

const Budget k_tiny{std::chrono::milliseconds{2}, 3};

TEST(TimeOperation, CountsEveryOperationAndKeepsTheSpread) {
    std::uint64_t calls = 0;
    auto t = time_operation(
        [&calls] {
            ++calls;
            return true;
        },
        k_tiny);
    ASSERT_TRUE(t.has_value()) << t.error().message();
    EXPECT_GT(t->operations, 0U);
    EXPECT_GT(calls, t->operations);  // the calibration batches come on top
    EXPECT_LE(t->min_us, t->us);
    EXPECT_LE(t->us, t->max_us);
}

TEST(TimeOperation, AFailingOperationIsAnError) {
    int calls = 0;
    auto t = time_operation([&calls] { return ++calls < 100; }, k_tiny);
    ASSERT_FALSE(t.has_value());
    EXPECT_EQ(t.error().code, Errc::operation_failed);
}

TEST(KeyExchanges, SizesOnTheWireAreTheAlgorithmsOwn) {
    auto section = key_exchanges(k_tiny, {});
    ASSERT_TRUE(section.has_value()) << section.error().message();
    ASSERT_EQ(section->rows.size(), 6U);
    const std::vector<std::pair<std::string, std::uint64_t>> want{
        {"ML-KEM-512", 800 + 768}, {"ML-KEM-768", 1184 + 1088}, {"ML-KEM-1024", 1568 + 1568},
        {"X25519", 32 + 32},       {"ECDH P-256", 65 + 65},     {"RSA-3072", 422 + 384}};
    for (std::size_t i = 0; i < want.size(); ++i) {
        EXPECT_EQ(section->rows[i].name, want[i].first);
        EXPECT_EQ(section->rows[i].bytes, want[i].second) << want[i].first;
        EXPECT_EQ(section->rows[i].quantum_safe, i < 3) << want[i].first;
    }
    // keygen + encaps + decaps: the row is the sum of its parts.
    const auto& kem = section->rows[1];
    ASSERT_EQ(kem.parts.size(), 3U);
    EXPECT_DOUBLE_EQ(kem.timing.us,
                     kem.parts[0].timing.us + kem.parts[1].timing.us + kem.parts[2].timing.us);
}

TEST(Signatures, SizesOnTheWireAreTheAlgorithmsOwn) {
    auto section = signatures(k_tiny, {});
    ASSERT_TRUE(section.has_value()) << section.error().message();
    ASSERT_EQ(section->rows.size(), 6U);
    EXPECT_EQ(section->rows[0].bytes, 1334U + 2420U);  // ML-DSA-44 SPKI + signature
    EXPECT_EQ(section->rows[1].bytes, 1974U + 3309U);  // ML-DSA-65
    EXPECT_EQ(section->rows[2].bytes, 2614U + 4627U);  // ML-DSA-87
    EXPECT_EQ(section->rows[3].bytes, 44U + 64U);      // Ed25519
    // ECDSA P-256: a DER signature, 72 bytes at most and usually 70-72, but
    // shorter when r or s begins with zero bytes (69 about once in 128 runs).
    EXPECT_GE(section->rows[4].bytes, 91U + 8U);
    EXPECT_LE(section->rows[4].bytes, 91U + 72U);
    EXPECT_EQ(section->rows[5].bytes, 422U + 384U);  // RSA-3072
}

TEST(HandshakeOnce, FullThenResumedOverASocketPair) {
    identity::KeygenOptions keygen;
    auto server_id = identity::generate(keygen);
    auto client_id = identity::generate(keygen);
    ASSERT_TRUE(server_id && client_id);
    tls::ContextOptions so;
    so.identity = &*server_id;
    so.verify.pinned = {client_id->id};
    tls::ContextOptions co;
    co.identity = &*client_id;
    co.verify.pinned = {server_id->id};
    auto server = tls::make_server_context(so);
    auto client = tls::make_client_context(co);
    ASSERT_TRUE(server && client);

    HandshakeTweaks first;
    first.want_session = true;
    auto full = handshake_once(client->get(), server->get(), first);
    ASSERT_TRUE(full.ok) << full.error;
    EXPECT_FALSE(full.resumed);
    ASSERT_TRUE(full.session);
    EXPECT_GT(full.server_to_client, 6000U);  // an ML-DSA-65 key and signature

    HandshakeTweaks again;
    again.resume = full.session.get();
    auto resumed = handshake_once(client->get(), server->get(), again);
    ASSERT_TRUE(resumed.ok) << resumed.error;
    EXPECT_TRUE(resumed.resumed);
    EXPECT_LT(resumed.server_to_client, 1500U);  // ServerHello with the ciphertext, no key

    // A client narrowed to a group the server does not offer fails, and says why.
    HandshakeTweaks classical;
    classical.client_groups = "X25519";
    auto refused = handshake_once(client->get(), server->get(), classical);
    EXPECT_FALSE(refused.ok);
    EXPECT_FALSE(refused.error.empty());
}

Section sample_section() {
    Section s;
    s.id = "sample";
    s.title = "Sample";
    s.time_meaning = "one thing";
    s.bytes_meaning = "some bytes";
    for (const auto& [name, us, bytes, pq] :
         std::vector<std::tuple<std::string, double, std::uint64_t, bool>>{
             {"fast", 10.0, 2272, true},
             {"middle", 100.0, 64, false},
             {"slow", 1000.0, 806, false}}) {
        Row r;
        r.name = name;
        r.label = name;
        r.timing = Timing{us, us, us, 1};
        r.bytes = bytes;
        r.quantum_safe = pq;
        s.rows.push_back(r);
    }
    return s;
}

int attribute(const std::string& svg, const std::string& name, const std::string& attr) {
    const std::regex re("data-name=\"" + name + "\"[^>]*? " + attr + "=\"(-?[0-9]+)\"");
    std::smatch m;
    if (!std::regex_search(svg, m, re)) {
        return -1;
    }
    return std::stoi(m[1].str());
}

// Decades from one below the fastest (10 us: from 1 us) to the slowest (1 ms):
// three decades over the 280 px plot: each bar a third of it taller.
TEST(ChartSvg, BarsOnALogScaleBytesOnALinearOne) {
    const std::string svg = chart_svg(sample_section());
    EXPECT_NE(svg.find(R"(data-decade-lo="0" data-decade-hi="3" data-bytes-top="5000")"),
              std::string::npos)
        << svg;
    EXPECT_EQ(attribute(svg, "fast", "height"), 93);
    EXPECT_EQ(attribute(svg, "middle", "height"), 187);
    EXPECT_EQ(attribute(svg, "slow", "height"), 280);
    EXPECT_EQ(attribute(svg, "fast", "y") + 93, 330);  // one baseline
    // Bytes: 2,272 of 5,000 over 280 px, from the plot's bottom (y 330).
    EXPECT_EQ(attribute(svg, "fast", "cy"), 330 - 127);
    EXPECT_NE(svg.find(R"(data-name="fast" data-us="10.000")"), std::string::npos);
    EXPECT_NE(svg.find("2,272 B"), std::string::npos);
    EXPECT_EQ(svg.find("<script"), std::string::npos);
}

TEST(Report, JsonCarriesEveryRowAndHtmlEmbedsTheCharts) {
    Report report;
    report.pqmcp_version = "0.0.0";
    describe_machine(report);
    report.sections.push_back(sample_section());
    const auto parsed = boost::json::parse(to_json(report)).as_object();
    EXPECT_EQ(parsed.at("pqmcp").as_string(), "0.0.0");
    const auto& rows = parsed.at("sections").as_array().at(0).as_object().at("rows").as_array();
    ASSERT_EQ(rows.size(), 3U);
    EXPECT_EQ(rows.at(2).as_object().at("us").as_double(), 1000.0);
    EXPECT_EQ(rows.at(0).as_object().at("bytes").as_int64(), 2272);
    const std::string html = to_html(report);
    EXPECT_NE(html.find(chart_svg(report.sections.front())), std::string::npos);
    EXPECT_NE(html.find("default-src 'none'"), std::string::npos);
    EXPECT_NE(to_table(report).find("slow"), std::string::npos);
}

TEST(GatewayCalls, RefusesWhatCannotWork) {
    GatewayTarget target;
    target.url = "not a url";
    auto bad = gateway_calls(target, {});
    ASSERT_FALSE(bad.has_value());
    EXPECT_EQ(bad.error().code, Errc::gateway_failed);

    target.url = "https://127.0.0.1:1/mcp";
    auto unpinned = gateway_calls(target, {});
    ASSERT_FALSE(unpinned.has_value());
    EXPECT_NE(unpinned.error().detail.find("--pin"), std::string::npos);

    target.url = "http://127.0.0.1:1/mcp";  // nothing listens on port 1
    target.arguments = "[1]";
    auto not_object = gateway_calls(target, {});
    ASSERT_FALSE(not_object.has_value());
    EXPECT_NE(not_object.error().detail.find("JSON object"), std::string::npos);

    target.arguments.clear();
    target.deadline = std::chrono::seconds{20};
    auto refused = gateway_calls(target, {});
    ASSERT_FALSE(refused.has_value());
    EXPECT_EQ(refused.error().code, Errc::gateway_failed) << refused.error().message();
}

}  // namespace
}  // namespace pqmcp::measure
