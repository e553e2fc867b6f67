// `pqmcp auth login UPSTREAM` and `pqmcp auth logout UPSTREAM`: enroll the
// gateway with an OAuth-protected upstream (authorization code with PKCE,
// the browser back on loopback), or forget the enrollment. They read the
// gateway's configuration exactly as `pqmcp serve` does.
#include <chrono>
#include <cstdint>
#include <iostream>
#include <memory>

#include "commands.hpp"
#include "pqmcp/gateway/enroll.hpp"
#include "serve_options.hpp"

namespace pqmcp::cli {
namespace {

struct AuthArgs {
    ServeArgs config;
    std::string upstream;
    std::uint16_t port = 0;
    unsigned wait_seconds = 300;
};

int run_login(const AuthArgs& a) {
    auto c = build_config(a.config);
    if (!c) {
        std::cerr << "pqmcp auth login: " << c.error().detail << "\n";
        return k_exit_usage;
    }
    gateway::EnrollOptions options;
    options.port = a.port;
    options.wait = std::chrono::seconds{a.wait_seconds};
    options.show = [&a](const std::string& url, const std::string& back) {
        const auto colon = back.rfind(':');
        const std::string port = back.substr(colon + 1, back.find('/', colon) - colon - 1);
        // One write: whoever reads stderr gets the address whole.
        std::cerr << "To let the gateway reach upstream " + a.upstream +
                         ", open this address in a browser and sign in:\n\n  " + url +
                         "\n\nWaiting up to " + std::to_string(a.wait_seconds) +
                         " s for the browser to come back to " + back +
                         " (from another machine: ssh -L " + port + ":127.0.0.1:" + port +
                         " to this one first).\n"
                  << std::flush;
    };
    auto enrolled = gateway::enroll_upstream(*c, a.upstream, options);
    if (!enrolled) {
        std::cerr << "pqmcp auth login: " << enrolled.error().message() << "\n";
        return k_exit_error;
    }
    std::cerr << "Enrolled: upstream " << a.upstream << " now gets its tokens from "
              << enrolled->issuer << " as client " << enrolled->client_id
              << "; the refresh token is sealed under the gateway's identity in "
              << enrolled->file.string() << "\n";
    return k_exit_ok;
}

int run_logout(const AuthArgs& a) {
    auto c = build_config(a.config);
    if (!c) {
        std::cerr << "pqmcp auth logout: " << c.error().detail << "\n";
        return k_exit_usage;
    }
    auto forgotten = gateway::forget_upstream(*c, a.upstream);
    if (!forgotten) {
        std::cerr << "pqmcp auth logout: " << forgotten.error().message() << "\n";
        return k_exit_error;
    }
    std::cerr << (forgotten->second ? "Removed " : "Nothing to remove: no ")
              << forgotten->first.string() << "\n";
    return k_exit_ok;
}

}  // namespace

void add_auth_commands(CLI::App& app, int& exit_code) {
    CLI::App* auth = app.add_subcommand(
        "auth", "OAuth enrollment of the gateway with upstreams that want a person's consent");
    auth->require_subcommand(1);

    auto login = std::make_shared<AuthArgs>();
    CLI::App* in = auth->add_subcommand(
        "login",
        "Enroll the gateway with an OAuth-protected HTTP upstream (oauth.grant "
        "authorization_code): sign in once in a browser; the refresh token is kept sealed under "
        "the gateway's identity");
    in->add_option("UPSTREAM", login->upstream, "the upstream's name")->required();
    add_config_source_options(*in, login->config);
    in->add_option("--port", login->port,
                   "the browser comes back to http://127.0.0.1:PORT/callback (default: any free "
                   "port; the client must be registered for it, or as a native client for any)");
    in->add_option("--wait", login->wait_seconds, "seconds to wait for the browser (default 300)");
    in->callback([login, &exit_code] { exit_code = run_login(*login); });

    auto logout = std::make_shared<AuthArgs>();
    CLI::App* out = auth->add_subcommand(
        "logout", "Forget the gateway's enrollment with an upstream (removes its sealed token)");
    out->add_option("UPSTREAM", logout->upstream, "the upstream's name")->required();
    add_config_source_options(*out, logout->config);
    out->callback([logout, &exit_code] { exit_code = run_logout(*logout); });
}

}  // namespace pqmcp::cli
