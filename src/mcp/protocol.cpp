#include "pqmcp/mcp/protocol.hpp"

#include <algorithm>

namespace pqmcp::mcp {

bool is_supported_version(std::string_view version) noexcept {
    return std::find(k_protocol_versions.begin(), k_protocol_versions.end(), version) !=
           k_protocol_versions.end();
}

std::string_view negotiate_version(std::string_view requested) noexcept {
    for (const std::string_view v : k_protocol_versions) {
        if (v == requested) {
            return v;
        }
    }
    return k_latest_version;
}

bool allows_batches(std::string_view version) noexcept {
    return version == "2024-11-05" || version == "2025-03-26";
}

bool primes_sse_streams(std::string_view version) noexcept {
    // Dates compare as strings.
    return version >= std::string_view("2025-11-25");
}

}  // namespace pqmcp::mcp
