// A scan run, and its report as JSON (docs/scan.md has the schema).
#include "pqmcp/scan/report.hpp"

#include <algorithm>

#include <boost/json.hpp>

#include "steps.hpp"

namespace pqmcp::scan {

namespace json = boost::json;
using integrity::Severity;

std::optional<Severity> ServerReport::worst() const {
    std::optional<Severity> w;
    for (const auto& f : findings) {
        if (!w || f.finding.severity > *w) {
            w = f.finding.severity;
        }
    }
    return w;
}

std::size_t ServerReport::count(Severity s) const {
    return static_cast<std::size_t>(
        std::count_if(findings.begin(), findings.end(),
                      [s](const ItemFinding& f) { return f.finding.severity == s; }));
}

ScanResult run(const ScanOptions& options) {
    ScanResult out;
    out.found = discover(options.locations);
    Prober prober(options.probe, options.timeout);
    for (const auto& s : out.found.servers) {
        ServerReport r;
        r.name = s.name;
        r.transport = std::string(to_string(s.transport));
        r.server = s;
        r.launch = expand_variables(s, options.variables);
        if (s.transport != Transport::stdio) {
            r.tls_url = r.launch->url;
        } else if (auto bridge = bridge_url(*r.launch)) {
            r.tls_url = *bridge;
            r.notes.push_back("relays to a remote server: " + redact_url(*bridge));
        }
        if (!r.tls_url.empty()) {
            prober.check(r);
        }
        out.reports.push_back(std::move(r));
    }
    if (options.connect) {
        connect_all(out.reports, options);
    }
    for (const auto& t : options.tools_files) {
        out.reports.push_back(offline_report(t));
    }
    scan_all(out.reports, options.scanner ? *options.scanner : *integrity::Scanner::builtin());
    for (auto& r : out.reports) {
        if (r.transport != k_transport_offline) {
            r.hndl = rate_hndl({r.networked, r.posture, r.data});
        }
    }
    out.errors = out.found.problems.size();
    for (const auto& r : out.reports) {
        out.errors += r.failed() ? 1U : 0U;
        const auto w = r.worst();
        if (w && (!out.worst || *w > *out.worst)) {
            out.worst = w;
        }
        if (w && options.fail_on && *w >= *options.fail_on) {
            out.failing.push_back(r.name);
        }
    }
    return out;
}

namespace {

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
        o["args"] = string_array(redact_args(s.args));
        o["env"] = string_array(s.env_names());
        o["cwd"] = nullable(s.cwd);
        o["url"] = nullable(redact_url(s.url));
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
        t["posture"] = to_string(r.posture);
        t["networked"] = r.networked;
        t["url"] = nullable(redact_url(r.tls_url));
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
    if (r.oauth) {
        o["oauth"] = json::object{
            {"metadata", redact_url(r.oauth->url)},
            {"authorization_servers", string_array(r.oauth->authorization_servers)},
            {"scopes_supported", string_array(r.oauth->scopes_supported)},
        };
    } else {
        o["oauth"] = nullptr;
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
            data.push_back(json::object{{"class", to_string(d.data)}, {"item", d.item}});
        }
        o["data"] = std::move(data);
    } else {
        o["data"] = nullptr;
    }
    if (r.hndl) {
        o["hndl"] = json::object{{"rating", to_string(r.hndl->rating)}, {"reason", r.hndl->reason}};
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

}  // namespace

json::object report_json(const ScanResult& result, const ScanOptions& options, int exit_code) {
    const auto& reports = result.reports;
    const auto& found = result.found;
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
    for (const auto& name : result.failing) {
        failing.emplace_back(name);
    }
    return json::object{
        {"version", 1},
        {"connect", options.connect},
        {"fail_on", options.fail_on ? json::value(integrity::to_string(*options.fail_on))
                                    : json::value("none")},
        {"sources", std::move(sources)},
        {"problems", std::move(problems)},
        {"servers", std::move(servers)},
        {"summary",
         json::object{
             {"servers", reports.size()},
             {"findings", std::move(totals)},
             {"worst", result.worst ? json::value(integrity::to_string(*result.worst))
                                    : json::value(nullptr)},
             {"failing", std::move(failing)},
             {"errors", result.errors},
             {"exit_code", exit_code},
         }},
    };
}

}  // namespace pqmcp::scan
