// Variables in server entries, local bridges to remote servers, hosts.
#include "pqmcp/scan/discovery.hpp"

#include <algorithm>
#include <array>
#include <cctype>
#include <optional>
#include <string>
#include <vector>

#include "text.hpp"

namespace pqmcp::scan {

namespace fs = std::filesystem;

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

}  // namespace pqmcp::scan
