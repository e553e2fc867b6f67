#include <pthread.h>
#include <signal.h>

#include <charconv>
#include <chrono>
#include <cstdio>
#include <future>
#include <iostream>
#include <optional>
#include <stop_token>
#include <thread>

#include <boost/json.hpp>

#include "commands.hpp"
#include "pqmcp/identity/identity.hpp"
#include "pqmcp/identity/known_peers.hpp"
#include "pqmcp/tls/client.hpp"
#include "pqmcp/tls/context.hpp"
#include "pqmcp/tls/echo_server.hpp"
#include "pqmcp/tls/probe.hpp"
#include "pqmcp/tls/profile.hpp"

namespace pqmcp::cli {
namespace {

struct HostPort {
    std::string host;
    std::uint16_t port = 0;
};

// "host:port", "[v6]:port". Ports 1-65535 (0 allowed only where `allow_zero`).
std::optional<HostPort> parse_host_port(std::string_view text, bool allow_zero) {
    HostPort out;
    std::string_view port_text;
    if (text.starts_with('[')) {
        const auto close = text.find(']');
        if (close == std::string_view::npos || close + 1 >= text.size() || text[close + 1] != ':') {
            return std::nullopt;
        }
        out.host = std::string(text.substr(1, close - 1));
        port_text = text.substr(close + 2);
    } else {
        const auto colon = text.rfind(':');
        if (colon == std::string_view::npos || colon == 0) {
            return std::nullopt;
        }
        out.host = std::string(text.substr(0, colon));
        port_text = text.substr(colon + 1);
    }
    unsigned value = 0;
    const auto [ptr, ec] =
        std::from_chars(port_text.data(), port_text.data() + port_text.size(), value);
    if (ec != std::errc{} || ptr != port_text.data() + port_text.size() || value > 65535 ||
        (value == 0 && !allow_zero) || out.host.empty()) {
        return std::nullopt;
    }
    out.port = static_cast<std::uint16_t>(value);
    return out;
}

// ---- probe ---------------------------------------------------------------

struct ProbeArgs {
    std::string target;
    bool json = false;
    double timeout_seconds = 10.0;
};

int run_probe(const ProbeArgs& args) {
    const auto hp = parse_host_port(args.target, false);
    if (!hp) {
        std::cerr << "pqmcp probe: expected HOST:PORT, got '" << args.target << "'\n";
        return k_exit_usage;
    }
    const auto timeout = std::chrono::milliseconds(static_cast<long>(args.timeout_seconds * 1000));
    auto report = tls::probe(hp->host, hp->port, timeout);
    if (!report) {
        std::cerr << "pqmcp probe: " << report.error().message() << "\n";
        return k_exit_error;
    }
    if (args.json) {
        std::cout << report->to_json() << "\n";
    } else {
        std::cout << "server:            " << hp->host << ":" << hp->port << "\n"
                  << "protocol:          " << report->protocol << "\n"
                  << "group:             " << report->group << "\n"
                  << "signature:         " << report->signature << "\n"
                  << "cipher:            " << report->cipher << "\n"
                  << "certificate key:   " << report->certificate_key << "\n"
                  << "peer id:           " << (report->peer_id ? report->peer_id->str() : "-")
                  << "\n"
                  << "accepts classical: "
                  << (report->accepts_classical ? "yes (" + report->classical_group + ")" : "no")
                  << "\n"
                  << "verdict:           " << tls::to_string(report->verdict) << "\n";
    }
    return report->verdict == tls::Verdict::quantum_safe ? k_exit_ok : k_exit_not_safe;
}

// ---- selftest ------------------------------------------------------------

struct SelftestRow {
    std::string profile;
    Result<tls::ClientResult> client;
    std::optional<tls::HandshakeInfo> server;
};

// One mutually authenticated handshake on `profile` between two fresh
// identities, each pinning the other, over loopback.
SelftestRow selftest_profile(const tls::Profile& profile) {
    SelftestRow row{std::string(profile.name), fail(tls::Errc::handshake_failed, "not run"), {}};
    identity::KeygenOptions keygen;
    keygen.algorithm = profile.identity_algorithms.front();
    auto server_id = identity::generate(keygen);
    auto client_id = identity::generate(keygen);
    if (!server_id || !client_id) {
        row.client = tl::unexpected(server_id ? client_id.error() : server_id.error());
        return row;
    }
    tls::ContextOptions server_opts;
    server_opts.profile = profile.id;
    server_opts.identity = &*server_id;
    server_opts.verify.pinned = {client_id->id};
    tls::ContextOptions client_opts;
    client_opts.profile = profile.id;
    client_opts.identity = &*client_id;
    client_opts.verify.pinned = {server_id->id};
    auto server_ctx = tls::make_server_context(server_opts);
    auto client_ctx = tls::make_client_context(client_opts);
    if (!server_ctx || !client_ctx) {
        row.client = tl::unexpected(server_ctx ? client_ctx.error() : server_ctx.error());
        return row;
    }
    std::promise<std::uint16_t> ready;
    auto port = ready.get_future();
    tls::EchoServerOptions echo;
    echo.max_connections = 1;
    echo.on_ready = [&ready](std::uint16_t p) { ready.set_value(p); };
    echo.on_handshake = [&row](const tls::HandshakeEvent& e) {
        if (e.result) {
            row.server = *e.result;
        }
    };
    Status served;
    std::stop_source stop;
    std::jthread server(
        [&] { served = tls::run_tls_echo_server(server_ctx->get(), echo, stop.get_token()); });
    if (port.wait_for(std::chrono::seconds(10)) != std::future_status::ready) {
        stop.request_stop();
        server.join();
        row.client = fail(tls::Errc::timeout, "echo server did not start");
        return row;
    }
    tls::ClientOptions copts;
    copts.payload = "pqmcp selftest";
    row.client = tls::connect_once(client_ctx->get(), "127.0.0.1", port.get(), copts);
    // The client has its echo (or has failed): nothing more to wait for. A
    // server still waiting for a connection that never came stops here.
    stop.request_stop();
    server.join();
    if (!served) {
        row.client = tl::unexpected(served.error());
    }
    return row;
}

int run_selftest() {
    int rc = k_exit_ok;
    std::printf("%-10s %-20s %-9s %-9s %-24s %-8s %s\n", "profile", "group", "server", "client",
                "cipher", "bytes", "peer ids");
    for (const auto& profile : tls::all_profiles()) {
        const auto row = selftest_profile(profile);
        if (!row.client) {
            std::printf("%-10s FAILED: %s\n", row.profile.c_str(),
                        row.client.error().message().c_str());
            rc = k_exit_error;
            continue;
        }
        const auto& c = row.client->info;
        const bool pq_ok = profile.classical || c.quantum_safe_group;
        const bool mutual = c.peer_id.has_value() && row.server && row.server->peer_id.has_value();
        std::printf("%-10s %-20s %-9s %-9s %-24s %-8llu %s%s\n", row.profile.c_str(),
                    c.group.c_str(), c.peer_signature.c_str(),
                    row.server ? row.server->peer_signature.c_str() : "?", c.cipher.c_str(),
                    static_cast<unsigned long long>(c.bytes_sent) +
                        static_cast<unsigned long long>(c.bytes_received),
                    mutual ? "verified both ways" : "NOT MUTUAL",
                    profile.classical ? "  (classical: not quantum-safe)" : "");
        if (!pq_ok || !mutual || row.client->reply != "pqmcp selftest") {
            rc = k_exit_error;
        }
    }
    std::printf("%s\n", rc == k_exit_ok ? "selftest: ok" : "selftest: FAILED");
    return rc;
}

// ---- tls-serve -----------------------------------------------------------

struct ServeArgs {
    std::string listen = "127.0.0.1:8443";
    std::string identity_dir;
    std::string profile = "pq-hybrid";
    std::vector<std::string> pins;
    std::string known_peers;
    std::string ca_file;
    bool require_client_identity = false;
    std::size_t max_connections = 0;
};

int run_tls_serve(const ServeArgs& args) {
    const auto hp = parse_host_port(args.listen, true);
    if (!hp) {
        std::cerr << "pqmcp tls-serve: --listen expects HOST:PORT, got '" << args.listen << "'\n";
        return k_exit_usage;
    }
    auto profile = tls::parse_profile(args.profile);
    if (!profile) {
        std::cerr << "pqmcp tls-serve: " << profile.error().message() << "\n";
        return k_exit_usage;
    }
    identity::KeygenOptions keygen;
    keygen.algorithm = (*profile)->identity_algorithms.front();
    keygen.names = {"localhost", "127.0.0.1"};
    auto id = identity::load_or_create(args.identity_dir, keygen);
    if (!id) {
        std::cerr << "pqmcp tls-serve: " << id.error().message() << "\n";
        return k_exit_error;
    }
    tls::ContextOptions options;
    options.profile = (*profile)->id;
    options.identity = &*id;
    // Naming whom to trust means clients must prove who they are: --pin,
    // --known-peers and --ca imply --require-client-identity.
    options.verify.require_peer_certificate = args.require_client_identity || !args.pins.empty() ||
                                              !args.known_peers.empty() || !args.ca_file.empty();
    std::optional<identity::KnownPeers> known;
    if (!args.known_peers.empty()) {
        auto loaded = identity::KnownPeers::load(args.known_peers);
        if (!loaded) {
            std::cerr << "pqmcp tls-serve: " << loaded.error().message() << "\n";
            return k_exit_error;
        }
        known = std::move(*loaded);
        options.verify.known_peers = &*known;
    }
    for (const auto& pin : args.pins) {
        auto pid = identity::PeerId::parse(pin);
        if (!pid) {
            std::cerr << "pqmcp tls-serve: " << pid.error().message() << "\n";
            return k_exit_usage;
        }
        options.verify.pinned.push_back(*pid);
    }
    options.verify.ca_file = args.ca_file;
    auto ctx = tls::make_server_context(options);
    if (!ctx) {
        std::cerr << "pqmcp tls-serve: " << ctx.error().message() << "\n";
        return k_exit_error;
    }

    // SIGINT/SIGTERM end the server: blocked here, taken by a waiter thread.
    sigset_t signals;
    sigemptyset(&signals);
    sigaddset(&signals, SIGINT);
    sigaddset(&signals, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &signals, nullptr);
    std::stop_source stop;
    std::jthread waiter([&signals, &stop](const std::stop_token& st) {
        while (!st.stop_requested()) {
            timespec tick{0, 200'000'000};
            if (sigtimedwait(&signals, nullptr, &tick) > 0) {
                stop.request_stop();
                return;
            }
        }
    });

    tls::EchoServerOptions echo;
    echo.host = hp->host;
    echo.port = hp->port;
    echo.max_connections = args.max_connections;
    echo.on_ready = [&](std::uint16_t port) {
        std::cout << "pqmcp tls-serve: listening on " << hp->host << ":" << port << " profile "
                  << (*profile)->name << " peer id " << id->id.str() << std::endl;
    };
    echo.on_handshake = [](const tls::HandshakeEvent& e) {
        // HandshakeInfo::to_json() is already JSON: splice it in, escape the rest.
        std::cout << R"({"remote":)" << boost::json::serialize(boost::json::string(e.remote));
        if (e.result) {
            std::cout << R"(,"handshake":)" << e.result->to_json();
        } else {
            std::cout << R"(,"error":)"
                      << boost::json::serialize(boost::json::string(e.result.error().message()));
        }
        std::cout << "}" << std::endl;
    };
    auto served = tls::run_tls_echo_server(ctx->get(), echo, stop.get_token());
    waiter.request_stop();
    if (!served) {
        std::cerr << "pqmcp tls-serve: " << served.error().message() << "\n";
        return k_exit_error;
    }
    return k_exit_ok;
}

}  // namespace

void add_tls_commands(CLI::App& app, int& exit_code) {
    auto probe_args = std::make_shared<ProbeArgs>();
    auto* probe = app.add_subcommand(
        "probe", "A TLS server's quantum-safety posture (exit 0 quantum-safe, 3 otherwise)");
    probe->add_option("target", probe_args->target, "HOST:PORT")->required();
    probe->add_flag("--json", probe_args->json,
                    "One JSON object: group, signature, cipher, accepts_classical, verdict, ...");
    probe->add_option("--timeout", probe_args->timeout_seconds, "Seconds per handshake")
        ->check(CLI::Range(0.1, 300.0));
    probe->callback([probe_args, &exit_code] { exit_code = run_probe(*probe_args); });

    auto* selftest = app.add_subcommand(
        "selftest", "One mutually authenticated in-process handshake per security profile");
    selftest->callback([&exit_code] { exit_code = run_selftest(); });

    auto serve_args = std::make_shared<ServeArgs>();
    auto* serve = app.add_subcommand(
        "tls-serve", "TLS echo server on a security profile, one JSON line per handshake");
    serve->add_option("--listen", serve_args->listen, "HOST:PORT (port 0: any free port)");
    serve
        ->add_option("--identity", serve_args->identity_dir,
                     "Identity directory (created with a new identity if missing)")
        ->required();
    serve->add_option("--profile", serve_args->profile,
                      "pq-hybrid (default), pq-strict, classical");
    serve->add_option("--pin", serve_args->pins, "Peer id of an accepted client (repeatable)");
    serve->add_option("--known-peers", serve_args->known_peers,
                      "known_peers file of accepted clients");
    serve->add_option("--ca", serve_args->ca_file, "PEM CA file for client certificates");
    serve->add_flag("--require-client-identity", serve_args->require_client_identity,
                    "Mutual TLS: refuse clients without an accepted certificate");
    serve->add_option("--max-connections", serve_args->max_connections,
                      "Stop after this many connections (0: until SIGINT/SIGTERM)");
    serve->callback([serve_args, &exit_code] { exit_code = run_tls_serve(*serve_args); });
}

}  // namespace pqmcp::cli
