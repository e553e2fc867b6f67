// MCP protocol versions and the names of the methods pqmcp routes on.
#pragma once

#include <array>
#include <string_view>
#include <vector>

#include <boost/json/array.hpp>

namespace pqmcp::mcp {

// Every version pqmcp speaks, newest first.
inline constexpr std::array<std::string_view, 4> k_protocol_versions = {"2025-11-25", "2025-06-18",
                                                                        "2025-03-26", "2024-11-05"};
inline constexpr std::string_view k_latest_version = k_protocol_versions.front();
// Streamable HTTP: "If the server does not receive an MCP-Protocol-Version
// header, and has no other way to identify the version ... the server SHOULD
// assume protocol version 2025-03-26."
inline constexpr std::string_view k_default_http_version = "2025-03-26";

[[nodiscard]] bool is_supported_version(std::string_view version) noexcept;

// The stateless revision (2026-07-28): no sessions, no initialize; every
// request carries its version and the client's capabilities in _meta, and
// server/discover says what the server supports. Served per request beside
// the session versions above (a caller's requests reach the gateway's own
// session for it, see docs/design.md).
inline constexpr std::string_view k_stateless_version = "2026-07-28";
// The _meta keys a 2026-07-28 request carries.
inline constexpr std::string_view k_meta_protocol_version =
    "io.modelcontextprotocol/protocolVersion";
inline constexpr std::string_view k_meta_client_capabilities =
    "io.modelcontextprotocol/clientCapabilities";
inline constexpr std::string_view k_meta_client_info = "io.modelcontextprotocol/clientInfo";
// ... and server/discover's result.
inline constexpr std::string_view k_meta_server_info = "io.modelcontextprotocol/serverInfo";
// server/discover's supportedVersions (and an UnsupportedProtocolVersionError's
// `supported`): the stateless revision, then the rest.
[[nodiscard]] boost::json::array supported_versions();

// Lifecycle, "Version Negotiation": "If the server supports the requested
// protocol version, it MUST respond with the same version. Otherwise, the
// server MUST respond with another protocol version it supports. This SHOULD
// be the latest version supported by the server."
[[nodiscard]] std::string_view negotiate_version(std::string_view requested) noexcept;

// JSON-RPC batches exist in 2024-11-05 and 2025-03-26 and were removed in 2025-06-18.
[[nodiscard]] bool allows_batches(std::string_view version) noexcept;
// The server primes an SSE stream with an empty event (2025-11-25 and later).
[[nodiscard]] bool primes_sse_streams(std::string_view version) noexcept;

namespace method {
inline constexpr std::string_view initialize = "initialize";
inline constexpr std::string_view ping = "ping";
inline constexpr std::string_view tools_list = "tools/list";
inline constexpr std::string_view tools_call = "tools/call";
inline constexpr std::string_view prompts_list = "prompts/list";
inline constexpr std::string_view prompts_get = "prompts/get";
inline constexpr std::string_view resources_list = "resources/list";
inline constexpr std::string_view resources_templates_list = "resources/templates/list";
inline constexpr std::string_view resources_read = "resources/read";
inline constexpr std::string_view resources_subscribe = "resources/subscribe";
inline constexpr std::string_view resources_unsubscribe = "resources/unsubscribe";
inline constexpr std::string_view completion_complete = "completion/complete";
inline constexpr std::string_view logging_set_level = "logging/setLevel";
inline constexpr std::string_view sampling_create_message = "sampling/createMessage";
inline constexpr std::string_view elicitation_create = "elicitation/create";
inline constexpr std::string_view roots_list = "roots/list";
inline constexpr std::string_view server_discover = "server/discover";
inline constexpr std::string_view subscriptions_listen = "subscriptions/listen";
inline constexpr std::string_view subscriptions_acknowledged =
    "notifications/subscriptions/acknowledged";

inline constexpr std::string_view initialized = "notifications/initialized";
inline constexpr std::string_view cancelled = "notifications/cancelled";
inline constexpr std::string_view progress = "notifications/progress";
inline constexpr std::string_view message = "notifications/message";
inline constexpr std::string_view tools_list_changed = "notifications/tools/list_changed";
inline constexpr std::string_view prompts_list_changed = "notifications/prompts/list_changed";
inline constexpr std::string_view resources_list_changed = "notifications/resources/list_changed";
inline constexpr std::string_view resources_updated = "notifications/resources/updated";
inline constexpr std::string_view roots_list_changed = "notifications/roots/list_changed";

// `m` when it is one of the methods above (or tasks/*, the other methods of
// the specification), else "other": what a metric label may carry, so that
// a client's made-up methods cannot grow it.
[[nodiscard]] std::string_view known_or_other(std::string_view m) noexcept;

// The params field a 2026-07-28 request's Mcp-Name header repeats: "name"
// (tools/call, prompts/get), "uri" (resources/read), "" for other methods.
[[nodiscard]] constexpr std::string_view named_field(std::string_view m) noexcept {
    if (m == tools_call || m == prompts_get) {
        return "name";
    }
    return m == resources_read ? "uri" : "";
}
}  // namespace method

}  // namespace pqmcp::mcp
