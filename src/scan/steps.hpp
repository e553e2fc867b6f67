// Internal: the steps of a scan run (report.cpp), one file each.
#pragma once

#include <chrono>
#include <map>
#include <string>
#include <vector>

#include "pqmcp/core/error.hpp"
#include "pqmcp/scan/report.hpp"

namespace pqmcp::scan {

// The TLS posture of each server's URL, each endpoint probed once.
class Prober {
  public:
    Prober(bool enabled, std::chrono::milliseconds timeout)
        : enabled_(enabled), timeout_(timeout) {}

    // Sets r's networked, posture, probe (or tls_error) from r.tls_url,
    // and r.oauth from its Protected Resource Metadata when it has one.
    void check(ServerReport& r);

  private:
    void read_oauth(ServerReport& r, bool https);

    bool enabled_;
    std::chrono::milliseconds timeout_;
    std::map<std::string, Result<tls::ProbeReport>> cache_;
    crypto::SslCtxPtr web_;  // verifies servers as a browser would, for their metadata
};

// Starts (or connects to) every server that can be, for its inventory.
void connect_all(std::vector<ServerReport>& reports, const ScanOptions& options);
// A saved tools/list result scanned without a server.
[[nodiscard]] ServerReport offline_report(const std::string& file);
// The scanner over every inventory, with the other servers' names beside it.
void scan_all(std::vector<ServerReport>& reports, const integrity::Scanner& scanner);

}  // namespace pqmcp::scan
