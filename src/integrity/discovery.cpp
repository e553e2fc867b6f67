#include "pqmcp/integrity/discovery.hpp"
#include "pqmcp/yaml/reader.hpp"

#include <algorithm>
#include <array>
#include <cctype>
#include <fstream>
#include <set>
#include <sstream>

#include <yaml-cpp/yaml.h>
#include <boost/json.hpp>

namespace pqmcp::integrity {

namespace json = boost::json;
namespace fs = std::filesystem;

namespace {

class DiscoveryCategory final : public std::error_category {
  public:
    [[nodiscard]] const char* name() const noexcept override { return "discovery"; }
    [[nodiscard]] std::string message(int code) const override {
        switch (static_cast<DiscoveryErrc>(code)) {
            case DiscoveryErrc::unreadable:
                return "configuration file cannot be read";
            case DiscoveryErrc::malformed:
                return "malformed configuration file";
        }
        return "unknown discovery error";
    }
};

std::string lower(std::string_view text) {
    std::string out(text);
    std::transform(out.begin(), out.end(), out.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    return out;
}

bool contains_any(std::string_view haystack, std::initializer_list<std::string_view> needles) {
    return std::any_of(needles.begin(), needles.end(), [haystack](std::string_view n) {
        return haystack.find(n) != std::string_view::npos;
    });
}

// ---- parsing ----------------------------------------------------------------

// 1-based line and column of byte `offset` in `text`.
std::pair<std::size_t, std::size_t> position(std::string_view text, std::size_t offset) {
    offset = std::min(offset, text.size());
    std::size_t line = 1;
    std::size_t column = 1;
    for (std::size_t i = 0; i < offset; ++i) {
        if (text[i] == '\n') {
            ++line;
            column = 1;
        } else {
            ++column;
        }
    }
    return {line, column};
}

// JSON as the editors write it: comments and trailing commas allowed.
Result<json::value> parse_json(std::string_view text, const std::string& origin) {
    json::parse_options options;
    options.allow_comments = true;
    options.allow_trailing_commas = true;
    options.max_depth = 64;
    json::stream_parser parser({}, options);
    boost::system::error_code ec;
    const std::size_t used = parser.write(text.data(), text.size(), ec);
    std::size_t at = used;
    if (!ec) {
        parser.finish(ec);
        at = text.size();
    }
    if (ec) {
        const auto [line, column] = position(text, at);
        return fail(DiscoveryErrc::malformed, origin + ":" + std::to_string(line) + ":" +
                                                  std::to_string(column) + ": " + ec.message());
    }
    return parser.release();
}

json::value yaml_to_json(const YAML::Node& node) {
    switch (node.Type()) {
        case YAML::NodeType::Map: {
            json::object out;
            for (const auto& kv : node) {
                out[kv.first.Scalar()] = yaml_to_json(kv.second);
            }
            return out;
        }
        case YAML::NodeType::Sequence: {
            json::array out;
            for (const auto& item : node) {
                out.push_back(yaml_to_json(item));
            }
            return out;
        }
        case YAML::NodeType::Scalar:
            return json::value(node.Scalar());
        case YAML::NodeType::Null:
        case YAML::NodeType::Undefined:
            break;
    }
    return nullptr;
}

Result<json::value> parse_yaml(std::string_view text, const std::string& origin) {
    try {
        return yaml_to_json(yaml::load(text, origin));
    } catch (const yaml::Problem& e) {
        return fail(DiscoveryErrc::malformed, e.message);
    }
}

// An entry that cannot be used: thrown inside EntryReader, caught per entry.
struct EntryProblem {
    std::string reason;
};

void collect_inputs(std::string_view text, std::vector<std::string>& inputs) {
    std::size_t at = 0;
    while ((at = text.find("${input:", at)) != std::string_view::npos) {
        const std::size_t start = at + 8;
        const std::size_t end = text.find('}', start);
        if (end == std::string_view::npos) {
            return;
        }
        std::string id(text.substr(start, end - start));
        if (std::find(inputs.begin(), inputs.end(), id) == inputs.end()) {
            inputs.push_back(std::move(id));
        }
        at = end;
    }
}

std::string scalar_text(const json::value& v, const std::string& key) {
    if (v.is_string()) {
        return std::string(v.get_string());
    }
    if (v.is_int64() || v.is_uint64() || v.is_double() || v.is_bool()) {
        return json::serialize(v);
    }
    throw EntryProblem{key + ": expected a string"};
}

std::string string_field(const json::object& o, std::string_view key) {
    const auto* v = o.if_contains(key);
    if (v == nullptr || v->is_null()) {
        return {};
    }
    if (!v->is_string()) {
        throw EntryProblem{std::string(key) + ": expected a string"};
    }
    return std::string(v->get_string());
}

std::vector<std::string> string_list(const json::value* v, const std::string& key) {
    std::vector<std::string> out;
    if (v == nullptr || v->is_null()) {
        return out;
    }
    if (!v->is_array()) {
        throw EntryProblem{key + ": expected an array of strings"};
    }
    for (const auto& item : v->get_array()) {
        if (!item.is_string() && !item.is_number()) {
            throw EntryProblem{key + ": expected an array of strings"};
        }
        out.push_back(scalar_text(item, key));
    }
    return out;
}

std::vector<std::pair<std::string, std::string>> string_map(const json::value* v,
                                                            const std::string& key) {
    std::vector<std::pair<std::string, std::string>> out;
    if (v == nullptr || v->is_null()) {
        return out;
    }
    if (!v->is_object()) {
        throw EntryProblem{key + ": expected an object of strings"};
    }
    for (const auto& [k, value] : v->get_object()) {
        if (value.is_null()) {
            continue;
        }
        out.emplace_back(std::string(k), scalar_text(value, key + "." + std::string(k)));
    }
    return out;
}

std::optional<bool> boolean_field(const json::object& o, std::string_view key) {
    const auto* v = o.if_contains(key);
    if (v == nullptr || v->is_null()) {
        return std::nullopt;
    }
    if (v->is_bool()) {
        return v->get_bool();
    }
    if (v->is_string() && (v->get_string() == "true" || v->get_string() == "false")) {
        return v->get_string() == "true";
    }
    throw EntryProblem{std::string(key) + ": expected true or false"};
}

std::optional<Transport> parse_transport(std::string_view type) {
    const std::string t = lower(type);
    if (t == "stdio" || t == "local") {
        return Transport::stdio;
    }
    if (t == "http" || t == "streamable-http" || t == "streamablehttp" || t == "streamable_http" ||
        t == "remote") {
        return Transport::http;
    }
    if (t == "sse") {
        return Transport::sse;
    }
    return std::nullopt;
}

bool ends_with_sse(std::string_view url) {
    const auto query = url.find_first_of("?#");
    std::string_view path = url.substr(0, query);
    while (path.ends_with('/')) {
        path.remove_suffix(1);
    }
    return path.ends_with("/sse");
}

// One server entry of any of the formats.
DiscoveredServer read_entry(const json::value& value, std::string name, const ConfigLocation& where,
                            const std::string& scope, const fs::path& workspace) {
    if (!value.is_object()) {
        throw EntryProblem{"expected an object"};
    }
    const json::object& o = value.get_object();
    DiscoveredServer s;
    s.source = where.path;
    s.client = where.client;
    s.scope = scope;
    s.workspace = workspace;
    s.name = std::move(name);

    std::optional<Transport> declared;
    if (const auto* type = o.if_contains("type"); type != nullptr && !type->is_null()) {
        if (!type->is_string()) {
            throw EntryProblem{"type: expected a string"};
        }
        declared = parse_transport(type->get_string());
        if (!declared) {
            throw EntryProblem{"type: unknown transport '" + std::string(type->get_string()) +
                               "' (stdio, http, sse)"};
        }
    }
    if (const auto* transport = o.if_contains("transport");
        !declared && transport != nullptr && transport->is_string()) {
        declared = parse_transport(transport->get_string());
    }

    // Zed before 0.190: "command": {"path", "args", "env"}.
    if (const auto* command = o.if_contains("command");
        command != nullptr && command->is_object()) {
        const json::object& c = command->get_object();
        s.command = string_field(c, "path");
        s.args = string_list(c.if_contains("args"), "command.args");
        s.env = string_map(c.if_contains("env"), "command.env");
    } else {
        s.command = string_field(o, "command");
        s.args = string_list(o.if_contains("args"), "args");
        s.env = string_map(o.if_contains("env"), "env");
    }
    s.cwd = string_field(o, "cwd");
    s.headers = string_map(o.if_contains("headers"), "headers");

    // Gemini CLI: httpUrl is Streamable HTTP and url is SSE; Windsurf: serverUrl.
    const std::string http_url = string_field(o, "httpUrl");
    const std::string server_url = string_field(o, "serverUrl");
    const std::string url = string_field(o, "url");
    std::optional<Transport> implied;
    if (!http_url.empty()) {
        s.url = http_url;
        implied = Transport::http;
    } else if (!url.empty() || !server_url.empty()) {
        s.url = url.empty() ? server_url : url;
        implied =
            where.client == "gemini-cli" || ends_with_sse(s.url) ? Transport::sse : Transport::http;
    }

    if (declared) {
        s.transport = *declared;
    } else if (!s.command.empty()) {
        s.transport = Transport::stdio;
    } else if (implied) {
        s.transport = *implied;
    }
    if (s.transport == Transport::stdio && s.command.empty()) {
        const std::string source = string_field(o, "source");
        if (source == "extension" || (where.format == ConfigFormat::zed && !o.contains("url"))) {
            s.notes.emplace_back("provided by a Zed extension: its command is not in the file");
        } else {
            throw EntryProblem{s.url.empty() ? "neither command nor url"
                                             : "type stdio, but no command"};
        }
    }
    if (s.transport != Transport::stdio && s.url.empty()) {
        throw EntryProblem{"type " + std::string(to_string(s.transport)) + ", but no url"};
    }

    if (const auto disabled = boolean_field(o, "disabled")) {
        s.disabled = *disabled;
    }
    if (const auto enabled = boolean_field(o, "enabled")) {
        s.disabled = s.disabled || !*enabled;
    }
    if (const auto env_file = string_field(o, "envFile"); !env_file.empty()) {
        s.notes.push_back("more environment from " + env_file + " (not read)");
    }

    collect_inputs(s.command, s.inputs);
    collect_inputs(s.url, s.inputs);
    collect_inputs(s.cwd, s.inputs);
    for (const auto& a : s.args) {
        collect_inputs(a, s.inputs);
    }
    for (const auto& kv : s.env) {
        collect_inputs(kv.second, s.inputs);
    }
    for (const auto& kv : s.headers) {
        collect_inputs(kv.second, s.inputs);
    }
    return s;
}

class ConfigReader {
  public:
    ConfigReader(const ConfigLocation& where, ParsedConfig& out) : where_(where), out_(out) {}

    // An object of NAME -> entry at `key_path` (for messages).
    void servers_object(const json::value& v, const std::string& key_path, const std::string& scope,
                        const fs::path& workspace) {
        for (const auto& [name, entry] : v.get_object()) {
            add(entry, std::string(name), key_path + "." + std::string(name), scope, workspace);
        }
    }

    // An array of entries with a "name" (Continue).
    void servers_array(const json::value& v, const std::string& key_path) {
        std::size_t index = 0;
        for (const auto& entry : v.get_array()) {
            const std::string at = key_path + "[" + std::to_string(index++) + "]";
            const json::value* name =
                entry.is_object() ? entry.get_object().if_contains("name") : nullptr;
            if (name == nullptr || !name->is_string() || name->get_string().empty()) {
                out_.problems.push_back(at + ": name: expected a string");
                continue;
            }
            add(entry, std::string(name->get_string()), at, where_.scope, where_.workspace);
        }
    }

  private:
    void add(const json::value& entry, std::string name, const std::string& key_path,
             const std::string& scope, const fs::path& workspace) {
        try {
            out_.servers.push_back(read_entry(entry, std::move(name), where_, scope, workspace));
        } catch (const EntryProblem& p) {
            out_.problems.push_back(key_path + ": " + p.reason);
        }
    }

    const ConfigLocation& where_;
    ParsedConfig& out_;
};

ConfigFormat detect(const json::object& root) {
    if (const auto* p = root.if_contains("projects"); p != nullptr && p->is_object()) {
        return ConfigFormat::claude_code;
    }
    if (const auto* m = root.if_contains("mcpServers"); m != nullptr) {
        return m->is_array() ? ConfigFormat::continue_yaml : ConfigFormat::mcp_servers;
    }
    if (root.contains("servers")) {
        return ConfigFormat::vscode;
    }
    if (const auto* m = root.if_contains("mcp");
        m != nullptr && m->is_object() && m->get_object().contains("servers")) {
        return ConfigFormat::vscode_settings;
    }
    if (root.contains("context_servers")) {
        return ConfigFormat::zed;
    }
    return ConfigFormat::automatic;
}

// root[key] must be an object (or absent, or null).
Result<const json::value*> member(const json::object& root, std::string_view key,
                                  const std::string& origin, bool array) {
    const auto* v = root.if_contains(key);
    if (v == nullptr || v->is_null()) {
        return nullptr;
    }
    if (array ? !v->is_array() : !v->is_object()) {
        return fail(DiscoveryErrc::malformed, origin + ": " + std::string(key) + ": expected " +
                                                  (array ? "an array" : "an object"));
    }
    return v;
}

bool is_yaml_path(const fs::path& p) {
    const std::string ext = lower(p.extension().string());
    return ext == ".yaml" || ext == ".yml";
}

std::string scope_or(const ConfigLocation& where, std::string_view fallback) {
    return where.scope.empty() ? std::string(fallback) : where.scope;
}

}  // namespace

const std::error_category& discovery_category() noexcept {
    static const DiscoveryCategory category;
    return category;
}

std::error_code make_error_code(DiscoveryErrc e) noexcept {
    return {static_cast<int>(e), discovery_category()};
}

std::string_view to_string(ConfigFormat format) noexcept {
    switch (format) {
        case ConfigFormat::automatic:
            return "automatic";
        case ConfigFormat::mcp_servers:
            return "mcpServers";
        case ConfigFormat::claude_code:
            return "claude-code";
        case ConfigFormat::vscode:
            return "vscode";
        case ConfigFormat::vscode_settings:
            return "vscode-settings";
        case ConfigFormat::zed:
            return "zed";
        case ConfigFormat::continue_yaml:
            return "continue";
    }
    return "automatic";
}

std::string_view to_string(Transport transport) noexcept {
    switch (transport) {
        case Transport::stdio:
            return "stdio";
        case Transport::http:
            return "http";
        case Transport::sse:
            return "sse";
    }
    return "stdio";
}

std::vector<std::string> DiscoveredServer::env_names() const {
    std::vector<std::string> out;
    out.reserve(env.size());
    for (const auto& kv : env) {
        out.push_back(kv.first);
    }
    return out;
}

std::vector<std::string> DiscoveredServer::header_names() const {
    std::vector<std::string> out;
    out.reserve(headers.size());
    for (const auto& kv : headers) {
        out.push_back(kv.first);
    }
    return out;
}

std::string ConfigProblem::message() const {
    return file.string() + ": " + reason;
}

std::vector<ConfigLocation> well_known_locations(const fs::path& home, const fs::path& project) {
    std::vector<ConfigLocation> out;
    const auto user = [&out](fs::path p, std::string client, ConfigFormat format,
                             bool directory = false) {
        out.push_back(
            ConfigLocation{std::move(p), std::move(client), format, "user", {}, directory});
    };
    const auto proj = [&out, &project](const fs::path& relative, std::string client,
                                       ConfigFormat format, bool directory = false) {
        out.push_back(ConfigLocation{project / relative, std::move(client), format, "project",
                                     project, directory});
    };
    const fs::path linux_config = home / ".config";
    const fs::path mac_support = home / "Library" / "Application Support";

    if (!home.empty()) {
        // Claude Desktop
        user(linux_config / "Claude" / "claude_desktop_config.json", "claude-desktop",
             ConfigFormat::mcp_servers);
        user(mac_support / "Claude" / "claude_desktop_config.json", "claude-desktop",
             ConfigFormat::mcp_servers);
        // Claude Code: user and per-project ("local") servers in one file
        user(home / ".claude.json", "claude-code", ConfigFormat::claude_code);
        // Cursor
        user(home / ".cursor" / "mcp.json", "cursor", ConfigFormat::mcp_servers);
        // VS Code (and Insiders): the user profile's mcp.json and settings.json
        for (const fs::path& base : {linux_config, mac_support}) {
            for (const char* edition : {"Code", "Code - Insiders"}) {
                user(base / edition / "User" / "mcp.json", "vscode", ConfigFormat::vscode);
                user(base / edition / "User" / "settings.json", "vscode",
                     ConfigFormat::vscode_settings);
            }
            // Cline, a VS Code extension with a file of its own
            user(base / "Code" / "User" / "globalStorage" / "saoudrizwan.claude-dev" / "settings" /
                     "cline_mcp_settings.json",
                 "cline", ConfigFormat::mcp_servers);
        }
        // Windsurf
        user(home / ".codeium" / "windsurf" / "mcp_config.json", "windsurf",
             ConfigFormat::mcp_servers);
        // Gemini CLI
        user(home / ".gemini" / "settings.json", "gemini-cli", ConfigFormat::mcp_servers);
        // GitHub Copilot CLI
        user(home / ".copilot" / "mcp-config.json", "copilot-cli", ConfigFormat::mcp_servers);
        // Zed (the same place on Linux and macOS)
        user(linux_config / "zed" / "settings.json", "zed", ConfigFormat::zed);
        // Continue
        user(home / ".continue" / "config.yaml", "continue", ConfigFormat::continue_yaml);
        user(home / ".continue" / "mcpServers", "continue", ConfigFormat::automatic, true);
        // LM Studio
        user(home / ".lmstudio" / "mcp.json", "lm-studio", ConfigFormat::mcp_servers);
    }
    if (!project.empty()) {
        proj(".mcp.json", "claude-code", ConfigFormat::mcp_servers);
        proj(fs::path(".cursor") / "mcp.json", "cursor", ConfigFormat::mcp_servers);
        proj(fs::path(".vscode") / "mcp.json", "vscode", ConfigFormat::vscode);
        proj(fs::path(".vscode") / "settings.json", "vscode", ConfigFormat::vscode_settings);
        proj(fs::path(".gemini") / "settings.json", "gemini-cli", ConfigFormat::mcp_servers);
        proj(fs::path(".zed") / "settings.json", "zed", ConfigFormat::zed);
        proj(fs::path(".continue") / "mcpServers", "continue", ConfigFormat::automatic, true);
    }
    // The project may be the home directory (or inside it at the same place).
    std::vector<ConfigLocation> unique;
    std::set<std::string> seen;
    for (auto& l : out) {
        if (seen.insert(l.path.lexically_normal().string()).second) {
            unique.push_back(std::move(l));
        }
    }
    return unique;
}

Result<ParsedConfig> parse_client_config(std::string_view text, const ConfigLocation& where) {
    const std::string origin = where.path.string();
    const bool yaml = where.format == ConfigFormat::continue_yaml ||
                      (where.format == ConfigFormat::automatic && is_yaml_path(where.path));
    auto parsed = yaml ? parse_yaml(text, origin) : parse_json(text, origin);
    if (!parsed) {
        return tl::unexpected(parsed.error());
    }
    ParsedConfig out;
    if (parsed->is_null()) {
        if (where.format == ConfigFormat::automatic) {
            return fail(DiscoveryErrc::malformed, origin + ": empty");
        }
        return out;  // an empty YAML file
    }
    if (!parsed->is_object()) {
        return fail(DiscoveryErrc::malformed, origin + ": expected an object at the top level");
    }
    const json::object& root = parsed->get_object();
    ConfigFormat format = where.format;
    if (format == ConfigFormat::automatic) {
        format = detect(root);
        if (format == ConfigFormat::automatic) {
            return fail(DiscoveryErrc::malformed,
                        origin +
                            ": no MCP servers in it (none of mcpServers, servers, "
                            "mcp.servers, context_servers, projects)");
        }
    }
    ConfigReader reader(where, out);
    switch (format) {
        case ConfigFormat::automatic:
        case ConfigFormat::mcp_servers: {
            auto servers = member(root, "mcpServers", origin, false);
            if (!servers) {
                return tl::unexpected(servers.error());
            }
            if (*servers != nullptr) {
                reader.servers_object(**servers, "mcpServers", scope_or(where, "user"),
                                      where.workspace);
            }
            break;
        }
        case ConfigFormat::claude_code: {
            auto servers = member(root, "mcpServers", origin, false);
            auto projects = member(root, "projects", origin, false);
            if (!servers || !projects) {
                return tl::unexpected(!servers ? servers.error() : projects.error());
            }
            if (*servers != nullptr) {
                reader.servers_object(**servers, "mcpServers", "user", {});
            }
            if (*projects != nullptr) {
                for (const auto& [dir, project] : (*projects)->get_object()) {
                    const std::string at = "projects." + std::string(dir);
                    if (!project.is_object()) {
                        out.problems.push_back(at + ": expected an object");
                        continue;
                    }
                    const auto* s = project.get_object().if_contains("mcpServers");
                    if (s == nullptr || s->is_null()) {
                        continue;
                    }
                    if (!s->is_object()) {
                        out.problems.push_back(at + ".mcpServers: expected an object");
                        continue;
                    }
                    reader.servers_object(*s, at + ".mcpServers", "local " + std::string(dir),
                                          fs::path(std::string(dir)));
                }
            }
            break;
        }
        case ConfigFormat::vscode: {
            auto servers = member(root, "servers", origin, false);
            if (!servers) {
                return tl::unexpected(servers.error());
            }
            if (auto inputs = member(root, "inputs", origin, true); !inputs) {
                return tl::unexpected(inputs.error());
            }
            if (*servers != nullptr) {
                reader.servers_object(**servers, "servers", scope_or(where, "user"),
                                      where.workspace);
            }
            break;
        }
        case ConfigFormat::vscode_settings: {
            auto mcp = member(root, "mcp", origin, false);
            if (!mcp) {
                return tl::unexpected(mcp.error());
            }
            if (*mcp != nullptr) {
                auto servers = member((*mcp)->get_object(), "servers", origin + ": mcp", false);
                if (!servers) {
                    return tl::unexpected(servers.error());
                }
                if (*servers != nullptr) {
                    reader.servers_object(**servers, "mcp.servers", scope_or(where, "user"),
                                          where.workspace);
                }
            }
            break;
        }
        case ConfigFormat::zed: {
            auto servers = member(root, "context_servers", origin, false);
            if (!servers) {
                return tl::unexpected(servers.error());
            }
            if (*servers != nullptr) {
                reader.servers_object(**servers, "context_servers", scope_or(where, "user"),
                                      where.workspace);
            }
            break;
        }
        case ConfigFormat::continue_yaml: {
            const auto* servers = root.if_contains("mcpServers");
            if (servers == nullptr || servers->is_null()) {
                break;
            }
            if (servers->is_object()) {
                // A JSON block copied from another client.
                reader.servers_object(*servers, "mcpServers", scope_or(where, "user"),
                                      where.workspace);
            } else if (servers->is_array()) {
                reader.servers_array(*servers, "mcpServers");
            } else {
                return fail(DiscoveryErrc::malformed, origin + ": mcpServers: expected a list");
            }
            break;
        }
    }
    return out;
}

Discovery discover(const std::vector<ConfigLocation>& locations, std::size_t max_bytes) {
    Discovery out;
    const auto read_one = [&out, max_bytes](const ConfigLocation& where) {
        std::error_code ec;
        const auto size = fs::file_size(where.path, ec);
        if (ec) {
            out.problems.push_back({where.path, "cannot be read: " + ec.message()});
            return;
        }
        if (size > max_bytes) {
            out.problems.push_back(
                {where.path, "larger than " + std::to_string(max_bytes) + " bytes; not read"});
            return;
        }
        std::ifstream in(where.path, std::ios::binary);
        std::ostringstream text;
        text << in.rdbuf();
        if (!in) {
            out.problems.push_back({where.path, "cannot be read"});
            return;
        }
        auto parsed = parse_client_config(text.str(), where);
        if (!parsed) {
            // The detail starts with the file name already.
            std::string detail = parsed.error().detail;
            const std::string prefix = where.path.string() + ":";
            if (detail.starts_with(prefix)) {
                detail = detail.substr(prefix.size());
                if (detail.starts_with(' ')) {
                    detail.erase(0, 1);
                }
            }
            out.problems.push_back({where.path, detail});
            return;
        }
        out.sources.push_back({where.path, where.client, where.scope, parsed->servers.size()});
        for (auto& p : parsed->problems) {
            out.problems.push_back({where.path, std::move(p)});
        }
        for (auto& s : parsed->servers) {
            out.servers.push_back(std::move(s));
        }
    };

    for (const auto& location : locations) {
        std::error_code ec;
        if (location.directory) {
            if (!fs::is_directory(location.path, ec)) {
                continue;
            }
            std::vector<fs::path> files;
            for (const auto& entry : fs::directory_iterator(location.path, ec)) {
                const std::string ext = lower(entry.path().extension().string());
                if (entry.is_regular_file(ec) &&
                    (ext == ".json" || ext == ".yaml" || ext == ".yml")) {
                    files.push_back(entry.path());
                }
            }
            std::sort(files.begin(), files.end());
            for (auto& f : files) {
                ConfigLocation one = location;
                one.path = std::move(f);
                one.directory = false;
                read_one(one);
            }
            continue;
        }
        if (!fs::exists(location.path, ec)) {
            continue;
        }
        read_one(location);
    }
    return out;
}

// ---- variables, bridges, secrets ---------------------------------------------

std::string expand_variables(std::string_view text, const Variables& variables) {
    std::string out;
    out.reserve(text.size());
    std::size_t at = 0;
    while (at < text.size()) {
        const std::size_t open = text.find("${", at);
        if (open == std::string_view::npos) {
            break;
        }
        const std::size_t close = text.find('}', open + 2);
        if (close == std::string_view::npos) {
            break;
        }
        out.append(text.substr(at, open - at));
        const std::string_view inner = text.substr(open + 2, close - open - 2);
        const std::string_view whole = text.substr(open, close - open + 1);
        const auto env = [&variables](const std::string& name) -> std::optional<std::string> {
            return variables.env ? variables.env(name) : std::nullopt;
        };
        const auto is_name = [](std::string_view n) {
            return !n.empty() &&
                   (std::isalpha(static_cast<unsigned char>(n.front())) != 0 || n.front() == '_') &&
                   std::all_of(n.begin(), n.end(), [](char c) {
                       return std::isalnum(static_cast<unsigned char>(c)) != 0 || c == '_';
                   });
        };
        if (inner == "userHome" && !variables.home.empty()) {
            out += variables.home.string();
        } else if (inner == "workspaceFolder" && !variables.workspace.empty()) {
            out += variables.workspace.string();
        } else if (inner == "workspaceFolderBasename" && !variables.workspace.empty()) {
            out += variables.workspace.filename().string();
        } else if (inner == "pathSeparator" || inner == "/") {
            out += '/';
        } else if (inner.starts_with("env:")) {
            // VS Code and Cursor: an unset variable is the empty string.
            out += env(std::string(inner.substr(4))).value_or("");
        } else if (const auto dash = inner.find(":-");
                   dash != std::string_view::npos && is_name(inner.substr(0, dash))) {
            const auto value = env(std::string(inner.substr(0, dash)));
            out += value && !value->empty() ? *value : std::string(inner.substr(dash + 2));
        } else if (is_name(inner)) {
            const auto value = env(std::string(inner));
            out += value ? *value : std::string(whole);
        } else {
            out += whole;  // ${input:...} and anything unknown
        }
        at = close + 1;
    }
    out.append(text.substr(std::min(at, text.size())));
    return out;
}

DiscoveredServer expand_variables(const DiscoveredServer& server, const Variables& variables) {
    DiscoveredServer s = server;
    Variables v = variables;
    if (!server.workspace.empty()) {
        v.workspace = server.workspace;
    }
    s.command = expand_variables(s.command, v);
    for (auto& a : s.args) {
        a = expand_variables(a, v);
    }
    for (auto& kv : s.env) {
        kv.second = expand_variables(kv.second, v);
    }
    s.cwd = expand_variables(s.cwd, v);
    s.url = expand_variables(s.url, v);
    for (auto& kv : s.headers) {
        kv.second = expand_variables(kv.second, v);
    }
    return s;
}

std::optional<std::string> bridge_url(const DiscoveredServer& server) {
    if (server.transport != Transport::stdio) {
        return std::nullopt;
    }
    const std::string command = fs::path(server.command).filename().string();
    bool bridge = command == "pqmcp" && !server.args.empty() && server.args.front() == "connect";
    for (const std::string_view known : {"mcp-remote", "supergateway", "mcp-proxy"}) {
        bridge = bridge || command.find(known) != std::string::npos ||
                 std::any_of(server.args.begin(), server.args.end(), [known](const std::string& a) {
                     return a.find(known) != std::string::npos && !a.starts_with("http");
                 });
    }
    if (!bridge) {
        return std::nullopt;
    }
    for (const auto& a : server.args) {
        if (a.starts_with("http://") || a.starts_with("https://")) {
            return a;
        }
    }
    return std::nullopt;
}

bool is_loopback_host(std::string_view host) noexcept {
    if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
        host = host.substr(1, host.size() - 2);
    }
    if (host == "localhost" || host == "::1" || host == "0:0:0:0:0:0:0:1") {
        return true;
    }
    // 127.0.0.0/8: four decimal parts, the first 127.
    if (!host.starts_with("127.")) {
        return false;
    }
    int parts = 2;  // "127" and the one being read
    int digits = 0;
    for (const char c : host.substr(4)) {
        if (c == '.') {
            if (digits == 0) {
                return false;
            }
            ++parts;
            digits = 0;
        } else if (std::isdigit(static_cast<unsigned char>(c)) != 0 && digits < 3) {
            ++digits;
        } else {
            return false;
        }
    }
    return parts == 4 && digits > 0;
}

std::optional<std::string> url_host(std::string_view url) {
    const auto scheme = url.find("://");
    if (scheme == std::string_view::npos) {
        return std::nullopt;
    }
    const std::string s = lower(url.substr(0, scheme));
    if (s != "http" && s != "https") {
        return std::nullopt;
    }
    std::string_view rest = url.substr(scheme + 3);
    rest = rest.substr(0, rest.find_first_of("/?#"));
    if (const auto at = rest.rfind('@'); at != std::string_view::npos) {
        rest = rest.substr(at + 1);
    }
    if (rest.starts_with('[')) {
        const auto close = rest.find(']');
        if (close == std::string_view::npos || close == 1) {
            return std::nullopt;
        }
        return std::string(rest.substr(1, close - 1));
    }
    rest = rest.substr(0, rest.find(':'));
    if (rest.empty()) {
        return std::nullopt;
    }
    return std::string(rest);
}

namespace {

bool secret_name(std::string_view name) {
    const std::string n = lower(name);
    return contains_any(
        n, {"key", "token", "secret", "passw", "credential", "auth", "bearer", "cookie", "sig"});
}

// Well-known shapes of API keys and tokens.
bool looks_like_token(std::string_view value) {
    if (value.size() < 16) {
        return false;
    }
    for (const std::string_view prefix :
         {"sk-", "sk_live_", "sk_test_", "rk_live_", "ghp_", "gho_", "ghu_", "ghs_", "github_pat_",
          "glpat-", "xoxb-", "xoxp-", "xapp-", "AKIA", "ASIA", "AIza", "eyJ", "npm_", "hf_"}) {
        if (value.starts_with(prefix)) {
            return true;
        }
    }
    return false;
}

bool only_variable(std::string_view value) {
    return value.starts_with("${") && value.ends_with('}') && value.find('}') == value.size() - 1;
}

std::string mask(std::string_view value) {
    return only_variable(value) ? std::string(value) : std::string("***");
}

}  // namespace

std::string redact_url(std::string_view url) {
    std::string out;
    std::string_view rest = url;
    if (const auto scheme = rest.find("://"); scheme != std::string_view::npos) {
        out.append(rest.substr(0, scheme + 3));
        rest = rest.substr(scheme + 3);
        const auto authority_end = rest.find_first_of("/?#");
        const auto at = rest.substr(0, authority_end).rfind('@');
        if (at != std::string_view::npos) {
            out += "***@";
            rest = rest.substr(at + 1);
        }
    }
    const auto query = rest.find('?');
    if (query == std::string_view::npos) {
        out.append(rest);
        return out;
    }
    out.append(rest.substr(0, query + 1));
    rest = rest.substr(query + 1);
    std::string_view fragment;
    if (const auto hash = rest.find('#'); hash != std::string_view::npos) {
        fragment = rest.substr(hash);
        rest = rest.substr(0, hash);
    }
    bool first = true;
    while (true) {
        const auto amp = rest.find('&');
        const std::string_view param = rest.substr(0, amp);
        if (!first) {
            out += '&';
        }
        first = false;
        const auto eq = param.find('=');
        if (eq != std::string_view::npos && secret_name(param.substr(0, eq))) {
            out.append(param.substr(0, eq + 1));
            out += mask(param.substr(eq + 1));
        } else {
            out.append(param);
        }
        if (amp == std::string_view::npos) {
            break;
        }
        rest = rest.substr(amp + 1);
    }
    out.append(fragment);
    return out;
}

namespace {

// "Authorization: Bearer ...", "X-Api-Key: ...": the value masked.
std::optional<std::string> redact_header(std::string_view header) {
    const auto colon = header.find(':');
    if (colon == std::string_view::npos || colon == 0) {
        return std::nullopt;
    }
    const std::string_view name = header.substr(0, colon);
    if (name.find(' ') != std::string_view::npos || !secret_name(name)) {
        return std::nullopt;
    }
    std::string_view value = header.substr(colon + 1);
    while (value.starts_with(' ')) {
        value.remove_prefix(1);
    }
    return std::string(name) + ": " + mask(value);
}

// "API_KEY=..." (docker -e, env, ...): the value masked.
std::optional<std::string> redact_assignment(std::string_view arg) {
    const auto eq = arg.find('=');
    if (eq == std::string_view::npos || eq == 0) {
        return std::nullopt;
    }
    const std::string_view name = arg.substr(0, eq);
    if (name.find(' ') != std::string_view::npos || !secret_name(name)) {
        return std::nullopt;
    }
    return std::string(name) + "=" + mask(arg.substr(eq + 1));
}

std::string redact_value(std::string_view arg) {
    if (arg.starts_with("http://") || arg.starts_with("https://")) {
        return redact_url(arg);
    }
    if (auto header = redact_header(arg)) {
        return *header;
    }
    if (auto assignment = redact_assignment(arg)) {
        return *assignment;
    }
    return looks_like_token(arg) ? std::string("***") : std::string(arg);
}

}  // namespace

std::vector<std::string> redact_args(const std::vector<std::string>& args) {
    std::vector<std::string> out;
    out.reserve(args.size());
    bool value_is_secret = false;
    for (const auto& a : args) {
        const std::string_view arg(a);
        if (value_is_secret && !arg.starts_with('-')) {
            out.push_back(mask(arg));
            value_is_secret = false;
            continue;
        }
        value_is_secret = false;
        if (arg.starts_with('-')) {
            const auto eq = arg.find('=');
            const std::string_view flag = arg.substr(0, eq);
            if (secret_name(flag)) {
                if (eq == std::string_view::npos) {
                    value_is_secret = true;  // --api-key VALUE
                    out.emplace_back(arg);
                } else {
                    out.push_back(std::string(flag) + "=" + mask(arg.substr(eq + 1)));
                }
                continue;
            }
            if (eq != std::string_view::npos) {
                out.push_back(std::string(flag) + "=" + redact_value(arg.substr(eq + 1)));
                continue;
            }
            out.emplace_back(arg);
            continue;
        }
        out.push_back(redact_value(arg));
    }
    return out;
}

// ---- harvest now, decrypt later ----------------------------------------------

std::string_view to_string(DataClass data) noexcept {
    switch (data) {
        case DataClass::files:
            return "files";
        case DataClass::secrets:
            return "secrets";
        case DataClass::personal:
            return "personal";
        case DataClass::health:
            return "health";
        case DataClass::finance:
            return "finance";
        case DataClass::network:
            return "network";
    }
    return "files";
}

bool is_sensitive(DataClass data) noexcept {
    return data != DataClass::network;
}

namespace {

struct Keywords {
    DataClass data = DataClass::files;
    // Whole words, space-separated phrases; a trailing '*' matches any word ending.
    std::initializer_list<std::string_view> words;
};

const std::array<Keywords, 6>& keyword_table() {
    static const std::array<Keywords, 6> table = {{
        {DataClass::files, {"file*", "director*", "folder*", "filesystem*", "disk", "glob"}},
        {DataClass::secrets,
         {"secret*", "password*", "passwd", "credential*", "api key*", "apikey*", "private key*",
          "access token*", "auth token*", "api token*", "bearer", "ssh", "env",
          "environment variable*", "env var*", "keychain*", "vault*"}},
        {DataClass::personal,
         {"email*", "e mail*", "inbox*", "gmail", "contact*", "calendar*", "address book*",
          "phone number*", "personal", "pii", "customer*", "user profile*", "social security",
          "passport*", "date of birth", "birth date*", "location history", "home address*"}},
        {DataClass::health,
         {"medical*", "patient*", "diagnos*", "prescription*", "clinical*", "fhir", "ehr", "hipaa",
          "symptom*", "medication*", "healthcare", "health record*", "lab result*"}},
        {DataClass::finance,
         {"payment*",     "bank*",    "invoice*", "credit card*",     "card number*",
          "transaction*", "financ*",  "billing",  "stripe",           "paypal",
          "iban",         "tax",      "taxes",    "account balance*", "payroll",
          "salary",       "salaries", "wallet*",  "ledger*",          "brokerage",
          "trading"}},
        {DataClass::network,
         {"fetch*", "http", "https", "url*", "download*", "web", "website*", "webpage*", "browse*",
          "browser*", "scrape*", "crawl*", "webhook*", "internet"}},
    }};
    return table;
}

// " words split on case changes and punctuation, lower case "
std::string normalize(std::string_view text) {
    std::string out = " ";
    char previous = ' ';
    for (const char c : text) {
        const auto u = static_cast<unsigned char>(c);
        if (std::isalnum(u) != 0) {
            if (std::isupper(u) != 0 && std::islower(static_cast<unsigned char>(previous)) != 0) {
                out += ' ';
            }
            out += static_cast<char>(std::tolower(u));
        } else if (out.back() != ' ') {
            out += ' ';
        }
        previous = c;
    }
    if (out.back() != ' ') {
        out += ' ';
    }
    return out;
}

bool matches(const std::string& text, std::string_view word) {
    if (word.ends_with('*')) {
        return text.find(" " + std::string(word.substr(0, word.size() - 1))) != std::string::npos;
    }
    return text.find(" " + std::string(word) + " ") != std::string::npos;
}

void append_text(std::string& text, const json::object& o, std::string_view key) {
    if (const auto* v = o.if_contains(key); v != nullptr && v->is_string()) {
        text += ' ';
        text.append(v->get_string());
    }
}

}  // namespace

std::vector<DataTouch> classify_data(const json::array& definitions) {
    std::vector<std::optional<std::string>> found(keyword_table().size());
    const auto note = [&found](DataClass d, const std::string& item) {
        auto& slot = found.at(static_cast<std::size_t>(d));
        if (!slot) {
            slot = item;
        }
    };
    for (const auto& v : definitions) {
        if (!v.is_object()) {
            continue;
        }
        const json::object& o = v.get_object();
        std::string item;
        for (const std::string_view key : {"name", "uri", "uriTemplate"}) {
            if (const auto* n = o.if_contains(key);
                item.empty() && n != nullptr && n->is_string()) {
                item = std::string(n->get_string());
            }
        }
        std::string raw;
        for (const std::string_view key : {"name", "title", "description"}) {
            append_text(raw, o, key);
        }
        const json::object* annotations = nullptr;
        if (const auto* a = o.if_contains("annotations"); a != nullptr && a->is_object()) {
            annotations = &a->get_object();
            append_text(raw, *annotations, "title");
        }
        const std::string text = normalize(raw);
        for (const auto& k : keyword_table()) {
            if (std::any_of(k.words.begin(), k.words.end(),
                            [&text](std::string_view w) { return matches(text, w); })) {
                note(k.data, item);
            }
        }
        for (const std::string_view key : {"uri", "uriTemplate"}) {
            if (const auto* u = o.if_contains(key);
                u != nullptr && u->is_string() && lower(u->get_string()).starts_with("file://")) {
                note(DataClass::files, item);
            }
        }
        if (annotations != nullptr) {
            if (const auto* open = annotations->if_contains("openWorldHint");
                open != nullptr && open->is_bool() && open->get_bool()) {
                note(DataClass::network, item);
            }
        }
    }
    std::vector<DataTouch> out;
    for (std::size_t i = 0; i < found.size(); ++i) {
        if (found[i]) {
            out.push_back({static_cast<DataClass>(i), *found[i]});
        }
    }
    return out;
}

std::string_view to_string(Posture posture) noexcept {
    switch (posture) {
        case Posture::local:
            return "local";
        case Posture::plaintext:
            return "plaintext";
        case Posture::quantum_safe:
            return tls::to_string(tls::Verdict::quantum_safe);
        case Posture::hybrid_optional:
            return tls::to_string(tls::Verdict::hybrid_optional);
        case Posture::classical:
            return tls::to_string(tls::Verdict::classical);
        case Posture::unknown:
            return "unknown";
    }
    return "unknown";
}

Posture posture_of(tls::Verdict verdict) noexcept {
    switch (verdict) {
        case tls::Verdict::quantum_safe:
            return Posture::quantum_safe;
        case tls::Verdict::hybrid_optional:
            return Posture::hybrid_optional;
        case tls::Verdict::classical:
            return Posture::classical;
    }
    return Posture::classical;
}

std::string_view to_string(Rating rating) noexcept {
    switch (rating) {
        case Rating::low:
            return "low";
        case Rating::medium:
            return "medium";
        case Rating::high:
            return "high";
    }
    return "high";
}

HndlRating rate_hndl(const HndlInput& input) {
    if (!input.networked) {
        return {Rating::low, input.posture == Posture::local
                                 ? "stdio: the traffic stays on this machine"
                                 : "loopback: the traffic stays on this machine"};
    }
    // "files (read_file), secrets (printEnv)"
    std::string sensitive;
    if (input.data) {
        for (const auto& d : *input.data) {
            if (is_sensitive(d.data)) {
                sensitive += (sensitive.empty() ? "" : ", ") + std::string(to_string(d.data)) +
                             " (" + d.item + ")";
            }
        }
    }
    const bool inspected = input.data.has_value();
    const bool is_sensitive_data = !sensitive.empty();
    const std::string touches = is_sensitive_data ? "its tools touch " + sensitive
                                : inspected       ? "its tools touch no sensitive data"
                                                  : "its tools were not inspected";
    switch (input.posture) {
        case Posture::local:
        case Posture::plaintext:
            return {Rating::high,
                    "plain HTTP across the network: readable now, no harvest needed; " + touches};
        case Posture::classical:
        case Posture::unknown: {
            const std::string kex = input.posture == Posture::classical
                                        ? "classical key exchange"
                                        : "TLS posture unknown (counted as classical)";
            if (is_sensitive_data) {
                return {Rating::high,
                        kex + ": recorded traffic can be decrypted later, and " + touches};
            }
            return {Rating::medium, kex + ": recorded traffic can be decrypted later; " + touches};
        }
        case Posture::hybrid_optional:
            if (is_sensitive_data) {
                return {
                    Rating::medium,
                    "ML-KEM negotiated, but clients without it fall back to classical; " + touches};
            }
            return {Rating::low,
                    "ML-KEM negotiated (clients without it fall back to classical); " + touches};
        case Posture::quantum_safe:
            return {Rating::low, "ML-KEM key exchange only: recorded traffic stays confidential"};
    }
    return {Rating::high, "unknown posture"};
}

}  // namespace pqmcp::integrity
