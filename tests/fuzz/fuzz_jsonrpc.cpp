// Fuzz target: the JSON-RPC codec on arbitrary bytes (an HTTP body or a stdio
// line from a peer). Whatever the input: no crash, no hang, and every failure
// has an answer that serialises.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "pqmcp/mcp/jsonrpc.hpp"

// NOLINTNEXTLINE(readability-identifier-naming): the name libFuzzer calls
extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view text(reinterpret_cast<const char*>(data), size);
    pqmcp::mcp::Limits limits;
    limits.max_depth = 32;
    limits.max_batch = 16;
    auto parsed = pqmcp::mcp::parse(text, limits);
    if (!parsed) {
        (void)pqmcp::mcp::serialize(pqmcp::mcp::make_error(parsed.error()));
        return 0;
    }
    for (const auto& item : parsed->items) {
        if (item) {
            (void)item->progress_token();
            (void)pqmcp::mcp::serialize(item->body);
        } else {
            (void)pqmcp::mcp::serialize(pqmcp::mcp::make_error(item.error()));
        }
    }
    return 0;
}
