#include <csignal>
#include <iostream>

#include "commands.hpp"

int main(int argc, char** argv) {
    // A peer that goes away mid-write must not kill the process.
    std::signal(SIGPIPE, SIG_IGN);
    CLI::App app{"pqmcp: post-quantum secure transport and policy gateway for MCP", "pqmcp"};
    app.require_subcommand(1);
    app.set_help_all_flag("--help-all", "Show help for every subcommand");
    int exit_code = pqmcp::cli::k_exit_ok;
    pqmcp::cli::add_version_command(app, exit_code);
    pqmcp::cli::add_identity_commands(app, exit_code);
    pqmcp::cli::add_tls_commands(app, exit_code);
    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
        const int rc = app.exit(e);
        return rc == 0 ? 0 : pqmcp::cli::k_exit_usage;
    }
    return exit_code;
}
