// Discovery of the MCP servers configured on a machine (`pqmcp scan`): the
// places where MCP clients keep their configuration, a parser for each of
// their formats, and the harvest-now-decrypt-later rating of a server from its
// transport and from what its tools touch. Everything here is pure except
// discover(), which reads files. Documented in docs/scan.md.
//
// Secrets: configuration files carry API keys in `env` and `headers` values
// and sometimes in arguments. Those values are kept (a scan that starts a
// server needs them) but never reported: reports print env and header names
// only, and arguments and URLs through redact_args() and redact_url().
#pragma once

#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#include <boost/json/array.hpp>

#include "pqmcp/core/error.hpp"
#include "pqmcp/tls/probe.hpp"

namespace pqmcp::scan {

enum class DiscoveryErrc {
    unreadable = 1,  // a configuration file that exists but cannot be read
    malformed,       // not JSON/YAML, or not the shape its client writes (the detail says where)
};

[[nodiscard]] const std::error_category& discovery_category() noexcept;
[[nodiscard]] std::error_code make_error_code(DiscoveryErrc e) noexcept;

// ---- where clients keep their configuration ---------------------------------

enum class ConfigFormat {
    automatic,        // decided from the content (and .yaml/.yml: continue_yaml)
    mcp_servers,      // {"mcpServers": {NAME: {...}}}: Claude Desktop, Claude Code .mcp.json,
                      // Cursor, Windsurf, Gemini CLI, Cline, Copilot CLI, LM Studio
    claude_code,      // ~/.claude.json: "mcpServers" plus "projects": {DIR: {"mcpServers"}}
    vscode,           // VS Code mcp.json: {"servers": {NAME: {...}}, "inputs": [...]}
    vscode_settings,  // VS Code settings.json: {"mcp": {"servers": {...}}}
    zed,              // Zed settings.json: {"context_servers": {NAME: {...}}}
    continue_yaml,    // Continue config.yaml or block: {"mcpServers": [{"name": NAME, ...}]}
};

[[nodiscard]] std::string_view to_string(ConfigFormat format) noexcept;

struct ConfigLocation {
    std::filesystem::path path;
    std::string client;  // "claude-desktop", "claude-code", "cursor", "vscode", ... or "config"
    ConfigFormat format = ConfigFormat::automatic;
    std::string scope;                // "user" or "project"
    std::filesystem::path workspace;  // the project a project-scoped file belongs to
    bool directory = false;           // every *.json, *.yaml and *.yml file in `path`
};

// The well-known configuration files of the MCP clients for a home directory
// and a project directory (Linux and macOS locations both), in a fixed order,
// without duplicates. Nothing is read.
[[nodiscard]] std::vector<ConfigLocation> well_known_locations(
    const std::filesystem::path& home, const std::filesystem::path& project);

// ---- what a configuration says ----------------------------------------------

enum class Transport { stdio, http, sse };

[[nodiscard]] std::string_view to_string(Transport transport) noexcept;

struct DiscoveredServer {
    std::filesystem::path source;  // the configuration file
    std::string client;
    std::string scope;                // "user", "project", or "local DIR" (Claude Code per-project)
    std::filesystem::path workspace;  // for ${workspaceFolder}; empty for user scope
    std::string name;
    Transport transport = Transport::stdio;

    // stdio
    std::string command;
    std::vector<std::string> args;
    std::vector<std::pair<std::string, std::string>> env;  // values: never report them
    std::string cwd;

    // http, sse
    std::string url;
    std::vector<std::pair<std::string, std::string>> headers;  // values: never report them

    bool disabled = false;            // "disabled": true, or "enabled": false
    std::vector<std::string> inputs;  // ids of the ${input:ID} variables it uses (VS Code)
    std::vector<std::string> notes;   // what the parser could not take from the entry

    [[nodiscard]] std::vector<std::string> env_names() const;
    [[nodiscard]] std::vector<std::string> header_names() const;
};

struct ParsedConfig {
    std::vector<DiscoveredServer> servers;
    // Entries that were skipped, one line each: "mcpServers.NAME: args: expected an array of
    // strings".
    std::vector<std::string> problems;
};

// Parses the text of one configuration file. A file that is not JSON (JSON
// with comments and trailing commas for VS Code and Zed) or YAML, or whose top
// level is not the shape of its format, fails with `malformed` and a detail
// "FILE:LINE:COLUMN: reason" or "FILE: reason"; a bad entry is skipped and
// listed in `problems`. With ConfigFormat::automatic, a file with none of the
// known keys is malformed; with a given format it simply has no servers.
[[nodiscard]] Result<ParsedConfig> parse_client_config(std::string_view text,
                                                       const ConfigLocation& where);

struct ConfigProblem {
    std::filesystem::path file;
    std::string reason;

    // "FILE: reason"
    [[nodiscard]] std::string message() const;
};

struct Discovery {
    struct Source {
        std::filesystem::path path;
        std::string client;
        std::string scope;
        std::size_t servers = 0;
    };
    std::vector<Source> sources;  // files that exist and could be parsed
    std::vector<DiscoveredServer> servers;
    std::vector<ConfigProblem> problems;  // unreadable or malformed files, skipped entries
};

// Reads every location that exists (a missing one is not a problem) and
// parses it. One bad file never stops the others. Files over `max_bytes` are
// problems, not read.
[[nodiscard]] Discovery discover(const std::vector<ConfigLocation>& locations,
                                 std::size_t max_bytes = 16U << 20U);

// ---- variables, bridges, secrets ---------------------------------------------

struct Variables {
    std::filesystem::path home;
    std::filesystem::path workspace;
    // The environment (empty: none). ${NAME} without a value and no default stays as written.
    std::function<std::optional<std::string>(const std::string& name)> env;
};

// Expands what the clients expand when they start a server: ${env:NAME},
// ${NAME}, ${NAME:-default}, ${userHome}, ${workspaceFolder},
// ${workspaceFolderBasename}, ${pathSeparator} and ${/}. ${input:ID} and
// anything unknown stay as written.
[[nodiscard]] std::string expand_variables(std::string_view text, const Variables& variables);
// The server with its command, args, env values, cwd, url and header values expanded.
[[nodiscard]] DiscoveredServer expand_variables(const DiscoveredServer& server,
                                                const Variables& variables);

// A stdio server that only relays to a remote MCP server (mcp-remote,
// supergateway, mcp-proxy, `pqmcp connect`): the remote URL, as written.
[[nodiscard]] std::optional<std::string> bridge_url(const DiscoveredServer& server);

// "localhost", 127.0.0.0/8, "::1" (brackets allowed).
[[nodiscard]] bool is_loopback_host(std::string_view host) noexcept;
// The host of an http:// or https:// URL (without brackets); nullopt if it has none.
[[nodiscard]] std::optional<std::string> url_host(std::string_view url);

// Arguments fit for a report: the value after (or in) a flag whose name says
// key, token, secret, password, credential or auth, an "Authorization:" or
// "...-Key:" header value, and strings that look like well-known API key formats
// become "***"; URLs go through redact_url().
[[nodiscard]] std::vector<std::string> redact_args(const std::vector<std::string>& args);
// A URL fit for a report: user info and the values of query parameters whose
// names say key, token, secret, password, credential, auth or sig become "***".
[[nodiscard]] std::string redact_url(std::string_view url);

// ---- harvest now, decrypt later ----------------------------------------------

enum class DataClass { files, secrets, personal, health, finance, network };

[[nodiscard]] std::string_view to_string(DataClass data) noexcept;
// Data whose confidentiality outlives a quantum computer's arrival: all but network.
[[nodiscard]] bool is_sensitive(DataClass data) noexcept;

struct DataTouch {
    DataClass data = DataClass::files;
    std::string item;  // the first tool, prompt or resource that suggests it
};

// Heuristics over the names, titles, descriptions and annotations of tool,
// prompt, resource and resource-template definitions (and file:// URIs): one
// entry per class found, in DataClass order.
[[nodiscard]] std::vector<DataTouch> classify_data(const boost::json::array& definitions);

// How a server's MCP traffic is protected.
enum class Posture {
    local,         // stdio: no network
    plaintext,     // http://
    quantum_safe,  // https, probe verdicts (tls::Verdict)
    hybrid_optional,
    classical,
    unknown,  // https not probed, or the probe failed
};

[[nodiscard]] std::string_view to_string(Posture posture) noexcept;
[[nodiscard]] Posture posture_of(tls::Verdict verdict) noexcept;

enum class Rating { low, medium, high };

[[nodiscard]] std::string_view to_string(Rating rating) noexcept;

struct HndlInput {
    bool networked = false;  // the traffic leaves this machine (not stdio, not loopback)
    Posture posture = Posture::local;
    // What the server's items touch; nullopt when they were not inspected.
    std::optional<std::vector<DataTouch>> data;
};

struct HndlRating {
    Rating rating = Rating::low;
    std::string reason;  // one line
};

// The rules (docs/scan.md): traffic that stays on the machine is low; plain
// HTTP on a network is high (readable now, no harvest needed); classical or
// unknown key exchange is high when the items touch sensitive data and medium
// otherwise; hybrid-optional is medium for sensitive data and low otherwise;
// quantum-safe is low.
[[nodiscard]] HndlRating rate_hndl(const HndlInput& input);

}  // namespace pqmcp::scan

template <>
struct std::is_error_code_enum<pqmcp::scan::DiscoveryErrc> : std::true_type {};
