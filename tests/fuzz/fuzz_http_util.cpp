// Fuzz target: header values a client controls (Accept, Origin) and URLs.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "pqmcp/transport/http_util.hpp"

// NOLINTNEXTLINE(readability-identifier-naming): the name libFuzzer calls
extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view text(reinterpret_cast<const char*>(data), size);
    (void)pqmcp::transport::accepts(text, "application/json");
    (void)pqmcp::transport::accepts(text, "text/event-stream");
    (void)pqmcp::transport::normalize_origin(text);
    static const pqmcp::transport::OriginPolicy policy({"https://app.example:8443"});
    (void)policy.allows(text);
    if (auto url = pqmcp::transport::parse_url(text)) {
        (void)url->str();
    }
    return 0;
}
