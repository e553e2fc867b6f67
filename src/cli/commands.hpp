// The pqmcp subcommands. Each registers itself on the CLI11 app and runs
// when selected; run functions return the process exit code.
#pragma once

#include <CLI/CLI.hpp>

namespace pqmcp::cli {

// Exit codes shared by all subcommands.
inline constexpr int k_exit_ok = 0;
inline constexpr int k_exit_error = 1;     // the operation failed
inline constexpr int k_exit_usage = 2;     // bad command line (CLI11's own code too)
inline constexpr int k_exit_not_safe = 3;  // probe: the server is not quantum-safe
inline constexpr int k_exit_findings = 4;  // scan: a finding at or above --fail-on

// `exit_code` receives the selected subcommand's exit code.
void add_version_command(CLI::App& app, int& exit_code);
void add_identity_commands(CLI::App& app, int& exit_code);  // keygen, id, peers
void add_tls_commands(CLI::App& app, int& exit_code);       // probe, selftest, tls-serve
void add_serve_commands(CLI::App& app, int& exit_code);     // serve, demo-server
void add_connect_command(CLI::App& app, int& exit_code);    // connect
void add_policy_commands(CLI::App& app, int& exit_code);    // policy lint, policy check
void add_tools_commands(CLI::App& app, int& exit_code);     // tools approve, sign, verify
void add_scan_command(CLI::App& app, int& exit_code);       // scan
void add_audit_commands(CLI::App& app, int& exit_code);     // audit verify, tail, export
void add_openapi_commands(CLI::App& app, int& exit_code);   // openapi inspect, policy
void add_bench_command(CLI::App& app, int& exit_code);      // bench
void add_auth_commands(CLI::App& app, int& exit_code);      // auth login, auth logout

}  // namespace pqmcp::cli
