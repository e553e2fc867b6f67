// Fuzz target: the SSE parser and the line splitter on arbitrary bytes fed
// in arbitrary pieces (a response stream from a server).
#include <cstddef>
#include <cstdint>
#include <string_view>
#include <vector>

#include "pqmcp/transport/line_io.hpp"
#include "pqmcp/transport/sse.hpp"

// NOLINTNEXTLINE(readability-identifier-naming): the name libFuzzer calls
extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view text(reinterpret_cast<const char*>(data), size);
    // The first byte chooses the piece size, so splits land everywhere.
    const std::size_t piece = size > 0 ? 1 + data[0] % 17 : 1;
    pqmcp::transport::SseParser sse(256);
    pqmcp::transport::LineSplitter lines(64);
    std::vector<pqmcp::transport::SseEvent> events;
    std::vector<pqmcp::Result<std::string>> out;
    for (std::size_t at = 0; at < text.size(); at += piece) {
        const auto chunk = text.substr(at, piece);
        if (!sse.feed(chunk, events)) {
            break;
        }
        lines.feed(chunk, out);
        events.clear();
        out.clear();
    }
    (void)lines.finish();
    (void)sse.last_event_id();
    return 0;
}
