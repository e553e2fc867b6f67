// The MCP clients' configuration files: where each client keeps them, and
// what each format says about its servers.
#include "pqmcp/scan/discovery.hpp"
#include "pqmcp/yaml/reader.hpp"
#include "text.hpp"

#include <algorithm>
#include <array>
#include <cctype>
#include <fstream>
#include <set>
#include <sstream>

#include <yaml-cpp/yaml.h>
#include <boost/json.hpp>

namespace pqmcp::scan {

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

}  // namespace pqmcp::scan
