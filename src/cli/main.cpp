#include <charconv>
#include <csignal>
#include <exception>
#include <filesystem>
#include <iostream>
#include <vector>

#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include "commands.hpp"
#include "pqmcp/core/descriptor.hpp"
#include "pqmcp/observe/log.hpp"

namespace {

// Descriptors this process was started with beyond 0-2 (a shell's, a test
// runner's) are its own business, not its children's: close-on-exec.
void keep_inherited_from_children() {
    std::error_code ec;
    std::vector<int> fds;
    for (const auto& entry : std::filesystem::directory_iterator("/proc/self/fd", ec)) {
        int fd = -1;
        const std::string name = entry.path().filename().string();
        if (std::from_chars(name.data(), name.data() + name.size(), fd).ec == std::errc{} &&
            fd > 2) {
            fds.push_back(fd);
        }
    }
    for (const int fd : fds) {
        pqmcp::keep_from_children(fd);
    }
}

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
    pqmcp::cli::add_openapi_commands(app, exit_code);
    pqmcp::cli::add_bench_command(app, exit_code);
    pqmcp::cli::add_auth_commands(app, exit_code);
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
    // Text lines with what peers sent escaped (observe/log.hpp).
    pqmcp::observe::set_log_format(pqmcp::observe::LogFormat::text);
    keep_inherited_from_children();
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
