// `--connect`: which servers are started, each started once, their inventories.
#include <map>
#include <utility>

#include <boost/json.hpp>

#include "steps.hpp"

namespace pqmcp::scan {

namespace json = boost::json;
namespace fs = std::filesystem;

namespace {

std::string join(const std::vector<std::string>& parts, std::string_view separator) {
    std::string out;
    for (const auto& p : parts) {
        out += out.empty() ? "" : separator;
        out += p;
    }
    return out;
}

// Why a server is not started under --connect (empty: it is).
std::string not_connected_reason(const DiscoveredServer& s) {
    if (s.disabled) {
        return "disabled in its client; not started";
    }
    switch (s.transport) {
        case Transport::stdio:
            return s.command.empty() ? "no command in the file; not started" : std::string{};
        case Transport::sse:
            return "the HTTP+SSE transport (2024-11-05) is not supported; not connected";
        case Transport::http:
            if (s.url.starts_with("https://")) {
                return "https: not connected (pqmcp trusts a server by pin or CA only; "
                       "its TLS posture is above)";
            }
            return s.url.find("${") != std::string::npos
                       ? "its URL uses variables that are not set; not connected"
                       : std::string{};
    }
    return {};
}

gateway::UpstreamConfig upstream_of(const DiscoveredServer& s) {
    gateway::UpstreamConfig u;
    u.name = s.name;
    if (s.transport == Transport::stdio) {
        u.kind = gateway::UpstreamKind::stdio;
        u.command = s.command;
        u.args = s.args;
        u.env = s.env;
        if (!s.cwd.empty()) {
            const fs::path cwd(s.cwd);
            u.cwd = cwd.is_relative() ? s.source.parent_path() / cwd : cwd;
        }
    } else {
        u.kind = gateway::UpstreamKind::http;
        u.url = s.url;
        u.headers = s.headers;
    }
    return u;
}

// The same server configured in several places is started once.
std::string launch_key(const gateway::UpstreamConfig& u) {
    json::array env;
    for (const auto& [k, v] : u.env) {
        env.push_back(json::array{json::value(k), json::value(v)});
    }
    json::array headers;
    for (const auto& [k, v] : u.headers) {
        headers.push_back(json::array{json::value(k), json::value(v)});
    }
    json::array args;
    for (const auto& a : u.args) {
        args.emplace_back(a);
    }
    return json::serialize(json::array{json::value(u.command), std::move(args), std::move(env),
                                       json::value(u.cwd.string()), json::value(u.url),
                                       std::move(headers)});
}

}  // namespace

void connect_all(std::vector<ServerReport>& reports, const ScanOptions& scan) {
    std::vector<gateway::UpstreamConfig> upstreams;
    std::map<std::string, std::size_t> by_key;
    std::vector<std::pair<std::size_t, std::size_t>> wanted;  // report, upstream
    for (std::size_t i = 0; i < reports.size(); ++i) {
        ServerReport& r = reports[i];
        if (!r.launch) {
            continue;
        }
        if (const auto why = not_connected_reason(*r.launch); !why.empty()) {
            r.inventory_status = "skipped";
            r.notes.push_back(why);
            continue;
        }
        if (!r.launch->inputs.empty()) {
            r.notes.push_back("uses VS Code inputs (" + join(r.launch->inputs, ", ") +
                              ") that only VS Code can ask for; started without them");
        }
        auto u = upstream_of(*r.launch);
        const auto key = launch_key(u);
        auto [it, added] = by_key.emplace(key, upstreams.size());
        if (added) {
            upstreams.push_back(std::move(u));
        }
        wanted.emplace_back(i, it->second);
    }
    if (upstreams.empty()) {
        return;
    }
    gateway::InventoryOptions options;
    options.timeout = scan.timeout;
    options.client_version = scan.client_version;
    options.sandbox = scan.sandbox;
    options.protect = scan.protect;
    auto results = gateway::fetch_inventories(upstreams, options);
    for (const auto& [report, upstream] : wanted) {
        ServerReport& r = reports[report];
        const auto& result = results.at(upstream);
        if (result) {
            r.inventory_status = "fetched";
            r.inventory = *result;
        } else {
            r.inventory_status = "failed";
            r.inventory_error = result.error().detail;  // names the step
        }
    }
}

}  // namespace pqmcp::scan
