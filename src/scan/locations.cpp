// Where each MCP client keeps its configuration, and discover(): every file
// of a list read (bounded), parsed, its servers and problems collected.
#include <fstream>
#include <set>
#include <sstream>

#include "pqmcp/scan/discovery.hpp"
#include "text.hpp"

namespace pqmcp::scan {

namespace fs = std::filesystem;

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

}  // namespace pqmcp::scan
