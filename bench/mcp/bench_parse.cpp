// What a gateway could save by deciding on the 2026-07-28 headers (Mcp-Method,
// Mcp-Name) before it parses the body: the cost of parsing and classifying a
// tools/call body of a few sizes (mcp::parse, as serve does for every POST),
// beside the cost of reading the same decision from the headers (the lookup
// in Beast's parsed header fields). Google Benchmark; the end-to-end cost of a
// call through the gateway, to set these against, comes from variants.sh.
#include <benchmark/benchmark.h>

#include <string>

#include <boost/beast/http/message.hpp>
#include <boost/beast/http/string_body.hpp>

#include "pqmcp/mcp/jsonrpc.hpp"

namespace {

// A tools/call of the 2026-07-28 revision whose argument text is `n` bytes.
std::string body(std::size_t n) {
    return R"({"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"demo__echo",)"
           R"("arguments":{"message":")" +
           std::string(n, 'x') +
           R"("},"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28",)"
           R"("io.modelcontextprotocol/clientCapabilities":{"elicitation":{"form":{}}},)"
           R"("io.modelcontextprotocol/clientInfo":{"name":"bench","version":"1"}}}})";
}

void parse_body(benchmark::State& state) {
    const std::string text = body(static_cast<std::size_t>(state.range(0)));
    pqmcp::mcp::Limits limits;
    limits.max_message_bytes = 64U << 20U;
    for (auto _ : state) {
        auto parsed = pqmcp::mcp::parse(text, limits);
        benchmark::DoNotOptimize(parsed->items.front()->name);
    }
    state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations()) *
                            static_cast<std::int64_t>(text.size()));
}
BENCHMARK(parse_body)->Arg(16)->Arg(1024)->Arg(std::int64_t{64} << 10)->Arg(std::int64_t{1} << 20);

void decide_on_headers(benchmark::State& state) {
    namespace http = boost::beast::http;
    http::request<http::string_body> req{http::verb::post, "/mcp", 11};
    req.set(http::field::host, "127.0.0.1:8443");
    req.set(http::field::content_type, "application/json");
    req.set(http::field::accept, "application/json, text/event-stream");
    req.set("MCP-Protocol-Version", "2026-07-28");
    req.set("Mcp-Method", "tools/call");
    req.set("Mcp-Name", "demo__echo");
    for (auto _ : state) {
        const auto method = req["Mcp-Method"];
        const auto name = req["Mcp-Name"];
        const bool routed = method == "tools/call" && name.starts_with("demo__");
        benchmark::DoNotOptimize(routed);
    }
}
BENCHMARK(decide_on_headers);

}  // namespace

BENCHMARK_MAIN();
