// Fuzz target: `pqmcp scan` reads the MCP configuration files of every
// client on a machine, which anything running as the user may have written:
// each format's parser (chosen by the first byte), and the variable
// expansion and redaction applied to what it finds.
#include <cstddef>
#include <cstdint>
#include <iterator>
#include <optional>
#include <string>
#include <string_view>

#include "pqmcp/integrity/discovery.hpp"

namespace integrity = pqmcp::integrity;

// NOLINTNEXTLINE(readability-identifier-naming): the name libFuzzer calls
extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    static constexpr integrity::ConfigFormat k_formats[] = {
        integrity::ConfigFormat::automatic,       integrity::ConfigFormat::mcp_servers,
        integrity::ConfigFormat::claude_code,     integrity::ConfigFormat::vscode,
        integrity::ConfigFormat::vscode_settings, integrity::ConfigFormat::zed,
        integrity::ConfigFormat::continue_yaml};
    const std::string_view text(reinterpret_cast<const char*>(data), size);
    integrity::ConfigLocation where;
    where.path = "/fuzz/config.json";
    where.client = "fuzz";
    where.format = k_formats[size > 0 ? data[0] % std::size(k_formats) : 0];
    auto parsed = integrity::parse_client_config(text, where);
    if (!parsed) {
        return 0;
    }
    integrity::Variables variables;
    variables.home = "/home/fuzz";
    variables.workspace = "/w";
    variables.env = [](const std::string& name) -> std::optional<std::string> {
        return name == "TOKEN" ? std::optional<std::string>("t") : std::nullopt;
    };
    for (const auto& server : parsed->servers) {
        const auto expanded = integrity::expand_variables(server, variables);
        (void)integrity::redact_args(expanded.args);
        (void)integrity::redact_url(expanded.url);
        (void)integrity::bridge_url(expanded);
    }
    return 0;
}
