// `pqmcp scan`: the MCP servers configured on this machine (or in the files
// given), their transports and TLS posture, their tools scanned for poisoning,
// and a harvest-now-decrypt-later rating each. Documented in docs/scan.md.
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <map>
#include <set>
#include <sstream>

#include <spdlog/spdlog.h>
#include <boost/json.hpp>

#include "commands.hpp"
#include "paths.hpp"
#include "pqmcp/core/duration.hpp"
#include "pqmcp/gateway/inventory.hpp"
#include "pqmcp/integrity/discovery.hpp"
#include "pqmcp/integrity/scanner.hpp"
#include "pqmcp/tls/probe.hpp"
#include "pqmcp/transport/http_util.hpp"

namespace pqmcp::cli {
namespace {

namespace json = boost::json;
namespace fs = std::filesystem;
using integrity::DiscoveredServer;
using integrity::Posture;
using integrity::Severity;

constexpr std::uint64_t k_max_tools_file = 64U << 20U;
constexpr std::string_view k_transport_offline = "offline";

struct ScanArgs {
    std::vector<std::string> configs;
    std::string home;
    std::string project;
    bool connect = false;
    std::vector<std::string> tools;
    bool json = false;
    std::string fail_on = "high";
    std::string timeout = "30s";
    bool no_probe = false;
    std::string rules;
    std::string log_level = "off";  // every error is in the report
    bool no_sandbox = false;
};

struct ItemFinding {
    std::string kind;  // "tool", "prompt", "resource", "resourceTemplate"
    std::string item;  // its name (a resource: its uri when it has no name)
    integrity::Finding finding;
};

struct ServerReport {
    std::string name;
    std::string transport;                   // "stdio", "http", "sse", or "offline" (--tools)
    std::optional<DiscoveredServer> server;  // as written (nullopt for --tools)
    std::optional<DiscoveredServer> launch;  // variables expanded
    fs::path tools_file;                     // --tools
    std::vector<std::string> notes;

    // TLS
    std::string tls_url;  // the URL the traffic goes to (the server's, or a bridge's)
    bool networked = false;
    Posture posture = Posture::local;
    std::optional<tls::ProbeReport> probe;
    std::string tls_error;

    // Inventory
    std::string inventory_status = "not-connected";  // fetched, skipped, failed, offline
    std::string inventory_error;
    std::optional<gateway::Inventory> inventory;

    // Results
    std::vector<ItemFinding> findings;
    std::optional<std::vector<integrity::DataTouch>> data;
    std::optional<integrity::HndlRating> hndl;

    [[nodiscard]] std::optional<Severity> worst() const {
        std::optional<Severity> w;
        for (const auto& f : findings) {
            if (!w || f.finding.severity > *w) {
                w = f.finding.severity;
            }
        }
        return w;
    }
    [[nodiscard]] std::size_t count(Severity s) const {
        return static_cast<std::size_t>(
            std::count_if(findings.begin(), findings.end(),
                          [s](const ItemFinding& f) { return f.finding.severity == s; }));
    }
    [[nodiscard]] bool failed() const { return inventory_status == "failed" || !tls_error.empty(); }
};

constexpr std::array<Severity, 5> k_severities_desc = {
    Severity::critical, Severity::high, Severity::medium, Severity::low, Severity::info};

// Text from servers and files, fit for a terminal: control characters and the
// bidirectional overrides and isolates (U+202A..U+202E, U+2066..U+2069) shown
// as \x{..} and \u{..}: a description must not move the cursor, recolour the
// report or reorder what it shows.
std::string printable(std::string_view text) {
    std::string out;
    out.reserve(text.size());
    for (std::size_t i = 0; i < text.size(); ++i) {
        const auto u = static_cast<unsigned char>(text[i]);
        std::ostringstream escaped;
        if (u < 0x20 || u == 0x7f) {
            escaped << "\\x{" << std::hex << static_cast<unsigned>(u) << "}";
            out += escaped.str();
            continue;
        }
        if (u == 0xe2 && i + 2 < text.size()) {
            const auto b1 = static_cast<unsigned char>(text[i + 1]);
            const auto b2 = static_cast<unsigned char>(text[i + 2]);
            if ((b1 == 0x80 && b2 >= 0xaa && b2 <= 0xae) ||
                (b1 == 0x81 && b2 >= 0xa6 && b2 <= 0xa9)) {
                const unsigned cp = 0x2000U + ((b1 & 0x3fU) << 6U) + (b2 & 0x3fU);
                escaped << "\\u{" << std::hex << cp << "}";
                out += escaped.str();
                i += 2;
                continue;
            }
        }
        out += text[i];
    }
    return out;
}

std::string join(const std::vector<std::string>& parts, std::string_view separator) {
    std::string out;
    for (const auto& p : parts) {
        if (!out.empty()) {
            out += separator;
        }
        out += p;
    }
    return out;
}

std::string string_member(const json::object& o, std::string_view key) {
    const auto* v = o.if_contains(key);
    return v != nullptr && v->is_string() ? std::string(v->get_string()) : std::string{};
}

// ---- TLS posture ------------------------------------------------------------

class Prober {
  public:
    Prober(bool enabled, std::chrono::milliseconds timeout)
        : enabled_(enabled), timeout_(timeout) {}

    void check(ServerReport& r) {
        const std::string& url = r.tls_url;
        if (url.find("${") != std::string::npos) {
            r.networked = true;
            r.posture = Posture::unknown;
            r.notes.emplace_back("its URL uses variables that are not set; not probed");
            return;
        }
        auto parsed = transport::parse_url(url);
        if (!parsed) {
            r.networked = true;
            r.posture = Posture::unknown;
            r.tls_error = "url: " + parsed.error().detail;
            return;
        }
        r.networked = !integrity::is_loopback_host(parsed->host);
        if (!parsed->tls) {
            r.posture = Posture::plaintext;
            return;
        }
        if (!enabled_) {
            r.posture = Posture::unknown;
            r.notes.emplace_back("TLS not probed (--no-probe)");
            return;
        }
        const std::string key = parsed->authority();
        auto it = cache_.find(key);
        if (it == cache_.end()) {
            it = cache_.emplace(key, tls::probe(parsed->host, parsed->port, timeout_)).first;
        }
        if (!it->second) {
            r.posture = Posture::unknown;
            r.tls_error = "probe " + key + ": " + it->second.error().message();
            return;
        }
        r.probe = *it->second;
        r.posture = integrity::posture_of(it->second->verdict);
    }

  private:
    bool enabled_;
    std::chrono::milliseconds timeout_;
    std::map<std::string, Result<tls::ProbeReport>> cache_;
};

// ---- inventory --------------------------------------------------------------

// Why a server is not started under --connect (empty: it is).
std::string not_connected_reason(const DiscoveredServer& s) {
    if (s.disabled) {
        return "disabled in its client; not started";
    }
    switch (s.transport) {
        case integrity::Transport::stdio:
            return s.command.empty() ? "no command in the file; not started" : std::string{};
        case integrity::Transport::sse:
            return "the HTTP+SSE transport (2024-11-05) is not supported; not connected";
        case integrity::Transport::http:
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
    if (s.transport == integrity::Transport::stdio) {
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

void connect_all(std::vector<ServerReport>& reports, std::chrono::milliseconds timeout,
                 bool sandboxed) {
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
    options.timeout = timeout;
    options.client_version = PQMCP_VERSION;
    options.sandbox = sandboxed;
    // The user's pqmcp identities (gateway, client) are out of reach of what it starts.
    options.protect.push_back(
        std::filesystem::absolute(default_identity_dir("gateway").parent_path())
            .lexically_normal());
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

// ---- --tools FILE.json ----------------------------------------------------------

ServerReport offline_report(const std::string& file) {
    ServerReport r;
    std::error_code ec;
    r.tools_file = fs::absolute(file, ec);
    r.name = fs::path(file).stem().string();
    r.transport = std::string(k_transport_offline);
    r.inventory_status = "offline";
    const auto failed = [&r](std::string why) {
        r.inventory_status = "failed";
        r.inventory_error = r.tools_file.string() + ": " + std::move(why);
        return r;
    };
    const auto size = fs::file_size(file, ec);
    if (ec) {
        return failed("cannot be read: " + ec.message());
    }
    if (size > k_max_tools_file) {
        return failed("larger than 64 MiB");
    }
    std::ifstream in(file, std::ios::binary);
    std::ostringstream text;
    text << in.rdbuf();
    boost::system::error_code jec;
    json::value v = json::parse(text.str(), jec);
    if (jec) {
        return failed("not JSON: " + jec.message());
    }
    // A JSON-RPC response: its result.
    if (v.is_object()) {
        if (auto* result = v.get_object().if_contains("result");
            result != nullptr && result->is_object()) {
            json::value inner = *result;
            v = std::move(inner);
        }
    }
    gateway::Inventory inv;
    if (v.is_array()) {
        inv.tools = v.get_array();
    } else if (v.is_object()) {
        const json::object& o = v.get_object();
        bool any = false;
        const auto take = [&o, &any](std::string_view key, json::array& into) {
            if (const auto* a = o.if_contains(key); a != nullptr && a->is_array()) {
                into = a->get_array();
                any = true;
            }
        };
        take("tools", inv.tools);
        take("prompts", inv.prompts);
        take("resources", inv.resources);
        take("resourceTemplates", inv.resource_templates);
        if (!any) {
            return failed(
                "expected a tools/list result ({\"tools\": [...]}), a JSON-RPC response with "
                "one, or an array of tools");
        }
    } else {
        return failed("expected a JSON object or array");
    }
    r.inventory = std::move(inv);
    return r;
}

// ---- scanning ---------------------------------------------------------------

struct KindList {
    std::string_view kind;          // as reported
    std::string_view scanner_kind;  // as the scanner knows it
    json::array gateway::Inventory::*items;
};

// Resources have no rules of their own: their strings go through the
// resource-template rules.
constexpr std::array<KindList, 4> k_kinds = {{
    {"tool", "tool", &gateway::Inventory::tools},
    {"prompt", "prompt", &gateway::Inventory::prompts},
    {"resourceTemplate", "resourceTemplate", &gateway::Inventory::resource_templates},
    {"resource", "resourceTemplate", &gateway::Inventory::resources},
}};

std::string item_name(const json::value& item) {
    if (!item.is_object()) {
        return {};
    }
    const auto& o = item.get_object();
    auto name = string_member(o, "name");
    return name.empty() ? string_member(o, "uri") : name;
}

void scan_all(std::vector<ServerReport>& reports, const integrity::Scanner& scanner) {
    for (std::size_t i = 0; i < reports.size(); ++i) {
        ServerReport& r = reports[i];
        if (!r.inventory) {
            continue;
        }
        for (const auto& k : k_kinds) {
            integrity::ScanContext context;
            context.upstream = r.name;
            for (std::size_t j = 0; j < reports.size(); ++j) {
                if (j == i || !reports[j].inventory) {
                    continue;
                }
                for (const auto& other : (*reports[j].inventory).*(k.items)) {
                    context.others.push_back({reports[j].name, item_name(other)});
                }
            }
            for (const auto& item : (*r.inventory).*(k.items)) {
                if (!item.is_object()) {
                    continue;
                }
                for (auto& f : scanner.scan(item.get_object(), k.scanner_kind, context)) {
                    r.findings.push_back({std::string(k.kind), item_name(item), std::move(f)});
                }
            }
        }
        std::stable_sort(r.findings.begin(), r.findings.end(),
                         [](const ItemFinding& a, const ItemFinding& b) {
                             return a.finding.severity > b.finding.severity;
                         });
        json::array all;
        for (const auto& k : k_kinds) {
            for (const auto& item : (*r.inventory).*(k.items)) {
                all.push_back(item);
            }
        }
        r.data = integrity::classify_data(all);
    }
}

// ---- output -----------------------------------------------------------------

json::value nullable(const std::string& s) {
    return s.empty() ? json::value(nullptr) : json::value(s);
}

json::array string_array(const std::vector<std::string>& items) {
    json::array out;
    for (const auto& s : items) {
        out.emplace_back(s);
    }
    return out;
}

json::object to_json(const ServerReport& r) {
    json::object o;
    o["name"] = r.name;
    o["transport"] = r.transport;
    if (r.server) {
        const DiscoveredServer& s = *r.server;
        o["client"] = s.client;
        o["source"] = s.source.string();
        o["scope"] = s.scope;
        o["disabled"] = s.disabled;
        o["command"] = nullable(s.command);
        o["args"] = string_array(integrity::redact_args(s.args));
        o["env"] = string_array(s.env_names());
        o["cwd"] = nullable(s.cwd);
        o["url"] = nullable(integrity::redact_url(s.url));
        o["headers"] = string_array(s.header_names());
        o["inputs"] = string_array(s.inputs);
    } else {
        o["client"] = nullptr;
        o["source"] = r.tools_file.string();
        o["scope"] = nullptr;
    }
    std::vector<std::string> notes = r.server ? r.server->notes : std::vector<std::string>{};
    notes.insert(notes.end(), r.notes.begin(), r.notes.end());
    o["notes"] = string_array(notes);

    if (r.transport != k_transport_offline) {
        json::object t;
        t["posture"] = integrity::to_string(r.posture);
        t["networked"] = r.networked;
        t["url"] = nullable(integrity::redact_url(r.tls_url));
        if (r.probe) {
            boost::system::error_code ec;
            t["probe"] = json::parse(r.probe->to_json(), ec);
        } else {
            t["probe"] = nullptr;
        }
        t["error"] = nullable(r.tls_error);
        o["tls"] = std::move(t);
    } else {
        o["tls"] = nullptr;
    }

    json::object inv;
    inv["status"] = r.inventory_status;
    inv["error"] = nullable(r.inventory_error);
    if (r.inventory) {
        const auto& i = *r.inventory;
        inv["server_info"] =
            i.server_info.empty() ? json::value(nullptr) : json::value(i.server_info);
        inv["protocol_version"] = nullable(i.protocol_version);
        inv["tools"] = i.tools.size();
        inv["prompts"] = i.prompts.size();
        inv["resources"] = i.resources.size();
        inv["resource_templates"] = i.resource_templates.size();
        inv["notes"] = string_array(i.notes);
    }
    o["inventory"] = std::move(inv);

    if (r.data) {
        json::array data;
        for (const auto& d : *r.data) {
            data.push_back(json::object{{"class", integrity::to_string(d.data)}, {"item", d.item}});
        }
        o["data"] = std::move(data);
    } else {
        o["data"] = nullptr;
    }
    if (r.hndl) {
        o["hndl"] = json::object{{"rating", integrity::to_string(r.hndl->rating)},
                                 {"reason", r.hndl->reason}};
    } else {
        o["hndl"] = nullptr;
    }

    json::array findings;
    for (const auto& f : r.findings) {
        findings.push_back(json::object{{"rule", f.finding.rule},
                                        {"severity", integrity::to_string(f.finding.severity)},
                                        {"kind", f.kind},
                                        {"item", f.item},
                                        {"pointer", f.finding.pointer},
                                        {"excerpt", f.finding.excerpt},
                                        {"rationale", f.finding.rationale}});
    }
    o["findings"] = std::move(findings);
    json::object counts;
    for (const auto s : k_severities_desc) {
        counts[integrity::to_string(s)] = r.count(s);
    }
    o["counts"] = std::move(counts);
    const auto w = r.worst();
    o["worst"] = w ? json::value(integrity::to_string(*w)) : json::value(nullptr);
    return o;
}

struct Summary {
    std::size_t errors = 0;
    std::vector<std::string> failing;  // servers with findings at or above --fail-on
    std::optional<Severity> worst;
    int exit_code = k_exit_ok;
};

void print_row(std::ostream& out, std::string_view label, const std::string& value) {
    out << "  " << std::left << std::setw(10) << label << " " << value << "\n";
}

std::string count_text(std::size_t n, std::string_view what) {
    return std::to_string(n) + " " + std::string(what) + (n == 1 ? "" : "s");
}

void print_text(std::ostream& out, const std::vector<ServerReport>& reports,
                const integrity::Discovery& found, const ScanArgs& args, const Summary& summary) {
    out << "pqmcp scan: " << count_text(reports.size(), "server") << " from "
        << count_text(found.sources.size() + args.tools.size(), "file")
        << (args.connect ? "; connected" : "; not connected (--connect starts stdio servers)")
        << "; fail-on " << args.fail_on << "\n";
    for (const auto& r : reports) {
        out << "\n" << printable(r.name);
        if (r.server) {
            out << "  [" << r.server->client << ", " << r.server->scope << ", "
                << printable(r.server->source.string()) << "]";
        } else {
            out << "  [" << printable(r.tools_file.string()) << "]";
        }
        out << "\n";
        if (r.server) {
            const DiscoveredServer& s = *r.server;
            std::string how = std::string(integrity::to_string(s.transport)) + "  ";
            if (s.transport == integrity::Transport::stdio) {
                std::vector<std::string> words{s.command};
                for (auto& a : integrity::redact_args(s.args)) {
                    words.push_back(std::move(a));
                }
                how += join(words, " ");
            } else {
                how += integrity::redact_url(s.url);
            }
            if (s.disabled) {
                how += "  (disabled)";
            }
            print_row(out, "transport", printable(how));
            if (!s.env.empty()) {
                print_row(out, "env",
                          printable(join(s.env_names(), ", ")) + "  (values not shown)");
            }
            if (!s.headers.empty()) {
                print_row(out, "headers",
                          printable(join(s.header_names(), ", ")) + "  (values not shown)");
            }
        } else {
            print_row(out, "transport", "offline (a saved list)");
        }
        if (r.transport != k_transport_offline) {
            std::string tls = std::string(integrity::to_string(r.posture));
            if (r.probe) {
                tls += "  (" + r.probe->protocol + ", " + r.probe->group + ", " +
                       (r.probe->accepts_classical ? "accepts classical " + r.probe->classical_group
                                                   : std::string("refuses classical")) +
                       ")";
            } else if (r.posture == Posture::local) {
                tls += "  (no network)";
            } else if (r.posture == Posture::plaintext) {
                tls += r.networked ? "  (plain HTTP)" : "  (plain HTTP, loopback)";
            }
            if (!r.tls_url.empty() && r.server && r.tls_url != r.server->url) {
                tls += "  via " + integrity::redact_url(r.tls_url);
            }
            if (!r.tls_error.empty()) {
                tls += "  error: " + r.tls_error;
            }
            print_row(out, "tls", printable(tls));
        }
        if (r.hndl) {
            print_row(out, "hndl",
                      std::string(integrity::to_string(r.hndl->rating)) + ": " +
                          printable(r.hndl->reason));
        }
        std::string inv = r.inventory_status;
        if (r.inventory) {
            const auto& i = *r.inventory;
            const std::string who = string_member(i.server_info, "name");
            if (!who.empty()) {
                inv += "  " + who + " " + string_member(i.server_info, "version");
            }
            if (!i.protocol_version.empty()) {
                inv += " (" + i.protocol_version + ")";
            }
            inv += ": " + count_text(i.tools.size(), "tool") + ", " +
                   count_text(i.prompts.size(), "prompt") + ", " +
                   count_text(i.resources.size(), "resource") + ", " +
                   count_text(i.resource_templates.size(), "resource template");
            for (const auto& n : i.notes) {
                inv += "; " + n;
            }
        }
        if (!r.inventory_error.empty()) {
            inv += ": " + r.inventory_error;
        }
        print_row(out, "inventory", printable(inv));
        std::vector<std::string> notes = r.server ? r.server->notes : std::vector<std::string>{};
        notes.insert(notes.end(), r.notes.begin(), r.notes.end());
        for (const auto& n : notes) {
            print_row(out, "note", printable(n));
        }
        if (!r.inventory) {
            continue;
        }
        std::vector<std::string> counts;
        counts.reserve(k_severities_desc.size());
        for (const auto s : k_severities_desc) {
            counts.push_back(std::string(integrity::to_string(s)) + " " +
                             std::to_string(r.count(s)));
        }
        print_row(out, "findings", r.findings.empty() ? "none" : join(counts, ", "));
        for (const auto& f : r.findings) {
            if (f.finding.severity < Severity::low) {
                continue;
            }
            out << "    " << std::left << std::setw(9) << integrity::to_string(f.finding.severity)
                << " " << printable(f.finding.rule) << "  " << f.kind << " \"" << printable(f.item)
                << "\" " << printable(f.finding.pointer) << "\n";
            if (!f.finding.excerpt.empty()) {
                out << "              " << printable(f.finding.excerpt) << "\n";
            }
        }
    }
    if (!found.problems.empty()) {
        out << "\nproblems\n";
        for (const auto& p : found.problems) {
            out << "  " << printable(p.message()) << "\n";
        }
    }
    out << "\nsummary: ";
    if (summary.failing.empty()) {
        out << "no findings at or above " << args.fail_on;
    } else {
        out << "findings at or above " << args.fail_on << " in " << join(summary.failing, ", ");
    }
    if (summary.errors > 0) {
        out << "; " << count_text(summary.errors, "error");
    }
    out << "; exit " << summary.exit_code << "\n";
}

json::object report_json(const std::vector<ServerReport>& reports,
                         const integrity::Discovery& found, const ScanArgs& args,
                         const Summary& summary) {
    json::array sources;
    for (const auto& s : found.sources) {
        sources.push_back(json::object{{"path", s.path.string()},
                                       {"client", s.client},
                                       {"scope", s.scope},
                                       {"servers", s.servers}});
    }
    json::array problems;
    for (const auto& p : found.problems) {
        problems.push_back(json::object{{"file", p.file.string()}, {"reason", p.reason}});
    }
    json::array servers;
    for (const auto& r : reports) {
        servers.push_back(to_json(r));
    }
    json::object totals;
    for (const auto s : k_severities_desc) {
        std::size_t n = 0;
        for (const auto& r : reports) {
            n += r.count(s);
        }
        totals[integrity::to_string(s)] = n;
    }
    json::array failing;
    for (const auto& name : summary.failing) {
        failing.emplace_back(name);
    }
    return json::object{
        {"version", 1},
        {"connect", args.connect},
        {"fail_on", args.fail_on},
        {"sources", std::move(sources)},
        {"problems", std::move(problems)},
        {"servers", std::move(servers)},
        {"summary",
         json::object{
             {"servers", reports.size()},
             {"findings", std::move(totals)},
             {"worst", summary.worst ? json::value(integrity::to_string(*summary.worst))
                                     : json::value(nullptr)},
             {"failing", std::move(failing)},
             {"errors", summary.errors},
             {"exit_code", summary.exit_code},
         }},
    };
}

// ---- the command --------------------------------------------------------------

int run_scan(const ScanArgs& args) {
    const auto usage = [](const std::string& what) {
        std::cerr << "pqmcp scan: " << what << "\n";
        return k_exit_usage;
    };
    std::optional<Severity> fail_on;
    if (args.fail_on != "none") {
        fail_on = integrity::parse_severity(args.fail_on);
        if (!fail_on) {
            return usage("--fail-on: expected info, low, medium, high, critical or none, got '" +
                         args.fail_on + "'");
        }
    }
    const auto timeout = parse_duration(args.timeout);
    if (!timeout) {
        return usage("--timeout: " + timeout.error());
    }
    spdlog::set_level(spdlog::level::from_str(args.log_level));

    std::shared_ptr<const integrity::Scanner> scanner;
    if (args.rules.empty()) {
        scanner = integrity::Scanner::builtin();
    } else {
        auto loaded = integrity::Scanner::load(args.rules);
        if (!loaded) {
            std::cerr << "pqmcp scan: " << loaded.error().message() << "\n";
            return k_exit_error;
        }
        scanner = std::make_shared<const integrity::Scanner>(std::move(*loaded));
    }

    // Where the servers come from: the files given, or the well-known places.
    std::vector<integrity::ConfigLocation> locations;
    const fs::path home = !args.home.empty()               ? fs::path(args.home)
                          : std::getenv("HOME") != nullptr ? fs::path(std::getenv("HOME"))
                                                           : fs::path{};
    std::error_code ec;
    const fs::path project = !args.project.empty() ? fs::path(args.project) : fs::current_path(ec);
    for (const auto& c : args.configs) {
        locations.push_back(
            {fs::absolute(c, ec), "config", integrity::ConfigFormat::automatic, "file", {}, false});
    }
    if (args.configs.empty() && args.tools.empty()) {
        locations = integrity::well_known_locations(home, project);
    }
    const integrity::Discovery found = integrity::discover(locations);

    const integrity::Variables variables{
        home, project, [](const std::string& name) -> std::optional<std::string> {
            const char* v = std::getenv(name.c_str());
            return v != nullptr ? std::optional<std::string>(v) : std::nullopt;
        }};
    std::vector<ServerReport> reports;
    Prober prober(!args.no_probe, *timeout);
    for (const auto& s : found.servers) {
        ServerReport r;
        r.name = s.name;
        r.transport = std::string(integrity::to_string(s.transport));
        r.server = s;
        r.launch = integrity::expand_variables(s, variables);
        if (s.transport != integrity::Transport::stdio) {
            r.tls_url = r.launch->url;
        } else if (auto bridge = integrity::bridge_url(*r.launch)) {
            r.tls_url = *bridge;
            r.notes.push_back("relays to a remote server: " + integrity::redact_url(*bridge));
        }
        if (!r.tls_url.empty()) {
            prober.check(r);
        }
        reports.push_back(std::move(r));
    }
    if (args.connect) {
        connect_all(reports, *timeout, !args.no_sandbox);
    }
    for (const auto& t : args.tools) {
        reports.push_back(offline_report(t));
    }
    scan_all(reports, *scanner);
    for (auto& r : reports) {
        if (r.transport != k_transport_offline) {
            r.hndl = integrity::rate_hndl({r.networked, r.posture, r.data});
        }
    }

    Summary summary;
    summary.errors = found.problems.size();
    for (const auto& r : reports) {
        summary.errors += r.failed() ? 1U : 0U;
        const auto w = r.worst();
        if (w && (!summary.worst || *w > *summary.worst)) {
            summary.worst = w;
        }
        if (w && fail_on && *w >= *fail_on) {
            summary.failing.push_back(r.name);
        }
    }
    summary.exit_code = !summary.failing.empty() ? k_exit_findings
                        : summary.errors > 0     ? k_exit_error
                                                 : k_exit_ok;
    if (args.json) {
        std::cout << json::serialize(report_json(reports, found, args, summary)) << "\n";
    } else {
        print_text(std::cout, reports, found, args, summary);
    }
    std::cout.flush();
    return summary.exit_code;
}

}  // namespace

void add_scan_command(CLI::App& app, int& exit_code) {
    auto args = std::make_shared<ScanArgs>();
    CLI::App* cmd = app.add_subcommand(
        "scan",
        "Find the MCP servers configured on this machine and audit them: transport, TLS posture, "
        "tool poisoning, harvest-now-decrypt-later rating (exit 4: findings at or above "
        "--fail-on)");
    cmd->add_option("--config", args->configs,
                    "a client configuration file to scan instead of the well-known places "
                    "(repeatable)")
        ->check(CLI::ExistingFile);
    cmd->add_option("--home", args->home, "home directory to search (default $HOME)")
        ->check(CLI::ExistingDirectory);
    cmd->add_option("--project", args->project,
                    "project directory to search (default the current directory)")
        ->check(CLI::ExistingDirectory);
    cmd->add_flag("--connect", args->connect,
                  "start the stdio servers (and connect to plain-HTTP ones) to fetch and scan "
                  "their tools, prompts and resources");
    cmd->add_option("--tools", args->tools,
                    "a saved tools/list result (or JSON-RPC response) to scan offline "
                    "(repeatable)")
        ->check(CLI::ExistingFile);
    cmd->add_flag("--json", args->json, "one JSON document (schema in docs/scan.md)");
    cmd->add_option("--fail-on", args->fail_on,
                    "exit 4 when a finding is at or above: info, low, medium, high (default), "
                    "critical, or none");
    cmd->add_option("--timeout", args->timeout,
                    "each step: a TLS probe, starting a server, each list page (default 30s)");
    cmd->add_flag("--no-probe", args->no_probe, "do not probe the TLS of https servers");
    cmd->add_flag("--no-sandbox", args->no_sandbox,
                  "with --connect: start the servers without the sandbox a gateway gives them "
                  "(not recommended: they are the unvetted ones)");
    cmd->add_option("--rules", args->rules,
                    "scanner rule file instead of the built-in rules (data/scanner-rules.yaml)")
        ->check(CLI::ExistingFile);
    cmd->add_option("--log-level", args->log_level,
                    "stderr log level (default off: errors are in the report; info shows the "
                    "servers' stderr)");
    cmd->callback([args, &exit_code] { exit_code = run_scan(*args); });
}

}  // namespace pqmcp::cli
