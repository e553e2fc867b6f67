#include <csignal>
#include <exception>
#include <iostream>

#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include "commands.hpp"

namespace {

int run(int argc, char** argv) {
    CLI::App app{"pqmcp: post-quantum secure transport and policy gateway for MCP", "pqmcp"};
    app.require_subcommand(1);
    app.set_help_all_flag("--help-all", "Show help for every subcommand");
    int exit_code = pqmcp::cli::k_exit_ok;
    pqmcp::cli::add_version_command(app, exit_code);
    pqmcp::cli::add_identity_commands(app, exit_code);
    pqmcp::cli::add_tls_commands(app, exit_code);
    pqmcp::cli::add_serve_commands(app, exit_code);
    pqmcp::cli::add_connect_command(app, exit_code);
    pqmcp::cli::add_policy_commands(app, exit_code);
    pqmcp::cli::add_tools_commands(app, exit_code);
    pqmcp::cli::add_scan_command(app, exit_code);
    pqmcp::cli::add_audit_commands(app, exit_code);
    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
        const int rc = app.exit(e);
        return rc == 0 ? 0 : pqmcp::cli::k_exit_usage;
    }
    return exit_code;
}

}  // namespace

int main(int argc, char** argv) {
    // A peer that goes away mid-write must not kill the process.
    (void)std::signal(SIGPIPE, SIG_IGN);
    // Logs go to stderr: stdout belongs to ready lines, reports and, for
    // connect and demo-server, to the MCP messages themselves.
    spdlog::set_default_logger(spdlog::stderr_color_mt("pqmcp"));
    spdlog::set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%l%$ %v");
    // The data plane returns errors as values; anything thrown is a bug or an
    // out-of-memory, reported as one line instead of a terminate().
    try {
        return run(argc, argv);
    } catch (const std::exception& e) {
        std::cerr << "pqmcp: internal error: " << e.what() << "\n";
    } catch (...) {
        std::cerr << "pqmcp: internal error\n";
    }
    return pqmcp::cli::k_exit_error;
}
