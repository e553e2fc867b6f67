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

#include "pqmcp/scan/discovery.hpp"

namespace scan = pqmcp::scan;

// NOLINTNEXTLINE(readability-identifier-naming): the name libFuzzer calls
extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    static constexpr scan::ConfigFormat k_formats[] = {
        scan::ConfigFormat::automatic,       scan::ConfigFormat::mcp_servers,
        scan::ConfigFormat::claude_code,     scan::ConfigFormat::vscode,
        scan::ConfigFormat::vscode_settings, scan::ConfigFormat::zed,
        scan::ConfigFormat::continue_yaml};
    const std::string_view text(reinterpret_cast<const char*>(data), size);
    scan::ConfigLocation where;
    where.path = "/fuzz/config.json";
    where.client = "fuzz";
    where.format = k_formats[size > 0 ? data[0] % std::size(k_formats) : 0];
    auto parsed = scan::parse_client_config(text, where);
    if (!parsed) {
        return 0;
    }
    scan::Variables variables;
    variables.home = "/home/fuzz";
    variables.workspace = "/w";
    variables.env = [](const std::string& name) -> std::optional<std::string> {
        return name == "TOKEN" ? std::optional<std::string>("t") : std::nullopt;
    };
    for (const auto& server : parsed->servers) {
        const auto expanded = scan::expand_variables(server, variables);
        (void)scan::redact_args(expanded.args);
        (void)scan::redact_url(expanded.url);
        (void)scan::bridge_url(expanded);
    }
    return 0;
}
