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
#include "pqmcp/integrity/scanner.hpp"
#include "pqmcp/scan/report.hpp"

namespace pqmcp::cli {
namespace {

namespace json = boost::json;
namespace fs = std::filesystem;
using integrity::Severity;
using scan::DiscoveredServer;
using scan::k_severities_desc;
using scan::k_transport_offline;
using scan::Posture;
using scan::ServerReport;

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
                const scan::Discovery& found, const ScanArgs& args, const Summary& summary) {
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
            std::string how = std::string(scan::to_string(s.transport)) + "  ";
            if (s.transport == scan::Transport::stdio) {
                std::vector<std::string> words{s.command};
                for (auto& a : scan::redact_args(s.args)) {
                    words.push_back(std::move(a));
                }
                how += join(words, " ");
            } else {
                how += scan::redact_url(s.url);
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
            std::string tls = std::string(scan::to_string(r.posture));
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
                tls += "  via " + scan::redact_url(r.tls_url);
            }
            if (!r.tls_error.empty()) {
                tls += "  error: " + r.tls_error;
            }
            print_row(out, "tls", printable(tls));
        }
        if (r.oauth) {
            std::string line = "bearer tokens of " + join(r.oauth->authorization_servers, ", ");
            if (!r.oauth->scopes_supported.empty()) {
                line += "  (scopes " + join(r.oauth->scopes_supported, " ") + ")";
            }
            print_row(out, "oauth", printable(line));
        }
        if (r.hndl) {
            print_row(
                out, "hndl",
                std::string(scan::to_string(r.hndl->rating)) + ": " + printable(r.hndl->reason));
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
    scan::ScanOptions options;
    const fs::path home = !args.home.empty()               ? fs::path(args.home)
                          : std::getenv("HOME") != nullptr ? fs::path(std::getenv("HOME"))
                                                           : fs::path{};
    std::error_code ec;
    const fs::path project = !args.project.empty() ? fs::path(args.project) : fs::current_path(ec);
    for (const auto& c : args.configs) {
        options.locations.push_back(
            {fs::absolute(c, ec), "config", scan::ConfigFormat::automatic, "file", {}, false});
    }
    if (args.configs.empty() && args.tools.empty()) {
        options.locations = scan::well_known_locations(home, project);
    }
    options.variables =
        scan::Variables{home, project, [](const std::string& name) -> std::optional<std::string> {
                            const char* v = std::getenv(name.c_str());
                            return v != nullptr ? std::optional<std::string>(v) : std::nullopt;
                        }};
    options.connect = args.connect;
    options.tools_files = args.tools;
    options.fail_on = fail_on;
    options.timeout = *timeout;
    options.probe = !args.no_probe;
    options.sandbox = !args.no_sandbox;
    options.scanner = scanner;
    options.client_version = PQMCP_VERSION;
    // The user's pqmcp identities (gateway, client) are out of reach of what it starts.
    options.protect.push_back(
        fs::absolute(default_identity_dir("gateway").parent_path()).lexically_normal());
    const scan::ScanResult result = scan::run(options);
    const auto& reports = result.reports;
    const auto& found = result.found;

    Summary summary;
    summary.errors = result.errors;
    summary.failing = result.failing;
    summary.worst = result.worst;
    summary.exit_code = !summary.failing.empty() ? k_exit_findings
                        : summary.errors > 0     ? k_exit_error
                                                 : k_exit_ok;
    if (args.json) {
        std::cout << json::serialize(scan::report_json(result, options, summary.exit_code)) << "\n";
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
