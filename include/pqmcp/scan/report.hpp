// `pqmcp scan` as a model: the servers found, what each was found to be
// (transport, TLS posture, inventory, findings, data touched, HNDL rating),
// and the run that fills it in. The CLI parses flags and renders it.
#pragma once

#include <array>
#include <chrono>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <boost/json/object.hpp>

#include "pqmcp/gateway/inventory.hpp"
#include "pqmcp/integrity/scanner.hpp"
#include "pqmcp/oauth/client.hpp"
#include "pqmcp/scan/discovery.hpp"
#include "pqmcp/tls/probe.hpp"

namespace pqmcp::scan {

inline constexpr std::string_view k_transport_offline = "offline";
inline constexpr std::array<integrity::Severity, 5> k_severities_desc = {
    integrity::Severity::critical, integrity::Severity::high, integrity::Severity::medium,
    integrity::Severity::low, integrity::Severity::info};

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
    std::filesystem::path tools_file;        // --tools
    std::vector<std::string> notes;

    // TLS
    std::string tls_url;  // the URL the traffic goes to (the server's, or a bridge's)
    bool networked = false;
    Posture posture = Posture::local;
    std::optional<tls::ProbeReport> probe;
    std::string tls_error;

    // OAuth: what the server's Protected Resource Metadata says (RFC 9728),
    // when it has one: its tokens are bearer tokens under the TLS above.
    std::optional<oauth::ResourceMetadata> oauth;

    // Inventory
    std::string inventory_status = "not-connected";  // fetched, skipped, failed, offline
    std::string inventory_error;
    std::optional<gateway::Inventory> inventory;

    // Results
    std::vector<ItemFinding> findings;
    std::optional<std::vector<DataTouch>> data;
    std::optional<HndlRating> hndl;

    [[nodiscard]] std::optional<integrity::Severity> worst() const;
    [[nodiscard]] std::size_t count(integrity::Severity s) const;
    [[nodiscard]] bool failed() const { return inventory_status == "failed" || !tls_error.empty(); }
};

struct ScanOptions {
    std::vector<ConfigLocation> locations;  // where to look (well_known_locations() by default)
    Variables variables;                    // for ${...} in the entries
    bool connect = false;                   // start the servers for their inventory
    std::vector<std::string> tools_files;   // saved tools/list results to scan offline
    std::optional<integrity::Severity> fail_on;  // a finding at or above fails the scan
    std::chrono::milliseconds timeout{30'000};   // each step
    bool probe = true;                           // probe the TLS of https servers
    bool sandbox = true;                         // servers started under --connect are sandboxed
    std::shared_ptr<const integrity::Scanner> scanner;
    std::string client_version;                  // announced to the servers
    std::vector<std::filesystem::path> protect;  // out of reach of what is started
};

struct ScanResult {
    Discovery found;
    std::vector<ServerReport> reports;
    std::size_t errors = 0;            // unreadable files, failed servers
    std::vector<std::string> failing;  // servers with findings at or above fail_on
    std::optional<integrity::Severity> worst;
};

// Finds the servers, probes, connects, scans and rates them.
[[nodiscard]] ScanResult run(const ScanOptions& options);

// The report as one JSON document (docs/scan.md); `exit_code` is the CLI's.
[[nodiscard]] boost::json::object report_json(const ScanResult& result, const ScanOptions& options,
                                              int exit_code);

}  // namespace pqmcp::scan
