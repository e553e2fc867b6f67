#include "pqmcp/mcp/protocol.hpp"

#include <algorithm>

namespace pqmcp::mcp {

bool is_supported_version(std::string_view version) noexcept {
    return std::find(k_protocol_versions.begin(), k_protocol_versions.end(), version) !=
           k_protocol_versions.end();
}

boost::json::array supported_versions() {
    boost::json::array out{boost::json::string_view(k_stateless_version)};
    for (const std::string_view v : k_protocol_versions) {
        out.emplace_back(v);
    }
    return out;
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

std::string_view method::known_or_other(std::string_view m) noexcept {
    for (const std::string_view known : {initialize,
                                         ping,
                                         tools_list,
                                         tools_call,
                                         prompts_list,
                                         prompts_get,
                                         resources_list,
                                         resources_templates_list,
                                         resources_read,
                                         resources_subscribe,
                                         resources_unsubscribe,
                                         completion_complete,
                                         logging_set_level,
                                         sampling_create_message,
                                         elicitation_create,
                                         roots_list,
                                         server_discover,
                                         subscriptions_listen,
                                         initialized,
                                         cancelled,
                                         progress,
                                         message,
                                         tools_list_changed,
                                         prompts_list_changed,
                                         resources_list_changed,
                                         resources_updated,
                                         roots_list_changed,
                                         std::string_view("tasks/get"),
                                         std::string_view("tasks/result"),
                                         std::string_view("tasks/list"),
                                         std::string_view("tasks/cancel")}) {
        if (m == known) {
            return known;
        }
    }
    return "other";
}

}  // namespace pqmcp::mcp
