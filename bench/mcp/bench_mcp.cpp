// MCP load generator for bench/mcp/e2e.sh: tools/call round trips against an
// MCP server reached over stdio (a command it starts) or Streamable HTTP (a
// URL), and many sessions held open against a gateway.
//
//   bench_mcp stdio [options] -- COMMAND ARGS...
//   bench_mcp http URL [--pin ID --identity DIR] [options]
//   bench_mcp sessions URL --pin ID --identity DIR --count N
//
// Options: --requests N (default 2000), --concurrency C (requests in flight,
// default 1), --warmup N (default 200), --tool NAME (default echo), --arguments
// JSON (default: the demo tools' own), --label L, --revision 2025-11-25|2026-07-28
// (http: with a session, or the stateless revision), --bearer-file FILE (http: an
// OAuth access token, the file's first line, on every request).
// Prints one JSON line per run: requests per second and latency percentiles.
//
// `sessions` opens N idle sessions (initialize only, all over one connection),
// prints "idle N" and waits for a line on stdin; then N active sessions (each
// its own client, GET stream held open, one tools/call answered), prints
// "active N" and waits again; then closes them and prints a JSON summary. The
// script reads the gateway's memory at each pause.
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <optional>
#include <string>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/json.hpp>

#include "pqmcp/identity/identity.hpp"
#include "pqmcp/mcp/jsonrpc.hpp"
#include "pqmcp/measure/calls.hpp"
#include "pqmcp/tls/context.hpp"
#include "pqmcp/transport/child.hpp"
#include "pqmcp/transport/http_client.hpp"

namespace {

namespace asio = boost::asio;
namespace json = boost::json;
using Clock = std::chrono::steady_clock;
using pqmcp::mcp::Message;

struct Options {
    std::string mode;
    std::string url;
    std::vector<std::string> command;
    std::string pin;
    std::string identity;
    std::string tool = "echo";
    std::string arguments;  // JSON object; empty: the demo tools' own
    std::string label;
    std::size_t requests = 2000;
    std::size_t concurrency = 1;
    std::size_t warmup = 200;
    std::size_t count = 1000;
    std::string revision = "2025-11-25";  // http: or 2026-07-28 (no session)
    std::string bearer_file;              // http: an OAuth access token for every request
};

[[noreturn]] void usage(const std::string& why) {
    std::cerr << "bench_mcp: " << why << "\n";
    std::exit(2);
}

Options parse(int argc, char** argv) {
    Options o;
    if (argc < 2) {
        usage("expected stdio, http or sessions");
    }
    o.mode = argv[1];
    int i = 2;
    if (o.mode != "stdio") {
        if (argc < 3) {
            usage("expected a URL");
        }
        o.url = argv[2];
        i = 3;
    }
    for (; i < argc; ++i) {
        const std::string a = argv[i];
        const auto value = [&]() -> std::string {
            if (i + 1 >= argc) {
                usage(a + " needs a value");
            }
            return argv[++i];
        };
        if (a == "--") {
            o.command.assign(argv + i + 1, argv + argc);
            break;
        }
        if (a == "--pin") {
            o.pin = value();
        } else if (a == "--identity") {
            o.identity = value();
        } else if (a == "--tool") {
            o.tool = value();
        } else if (a == "--arguments") {
            o.arguments = value();
        } else if (a == "--bearer-file") {
            o.bearer_file = value();
        } else if (a == "--label") {
            o.label = value();
        } else if (a == "--requests") {
            o.requests = std::stoul(value());
        } else if (a == "--concurrency") {
            o.concurrency = std::stoul(value());
        } else if (a == "--warmup") {
            o.warmup = std::stoul(value());
        } else if (a == "--count") {
            o.count = std::stoul(value());
        } else if (a == "--revision") {
            o.revision = value();
            if (o.revision != "2025-11-25" && o.revision != "2026-07-28") {
                usage("--revision: 2025-11-25 or 2026-07-28");
            }
        } else {
            usage("unknown option " + a);
        }
    }
    if (o.mode == "stdio" && o.command.empty()) {
        usage("stdio needs -- COMMAND ARGS...");
    }
    return o;
}

void raise_fd_limit() {
    rlimit limit{};
    if (getrlimit(RLIMIT_NOFILE, &limit) == 0 && limit.rlim_cur < limit.rlim_max) {
        limit.rlim_cur = limit.rlim_max;
        (void)setrlimit(RLIMIT_NOFILE, &limit);
    }
}

std::optional<pqmcp::identity::Identity> g_identity;

pqmcp::crypto::SslCtxPtr client_context(const Options& o) {
    if (o.pin.empty()) {
        return {};
    }
    pqmcp::identity::KeygenOptions keygen;
    auto id = o.identity.empty() ? pqmcp::identity::generate(keygen)
                                 : pqmcp::identity::load_or_create(o.identity, keygen);
    if (!id) {
        usage("identity: " + id.error().message());
    }
    g_identity = std::move(*id);
    pqmcp::tls::ContextOptions c;
    c.identity = &*g_identity;
    auto peer = pqmcp::identity::PeerId::parse(o.pin);
    if (!peer) {
        usage("--pin: " + peer.error().detail);
    }
    c.verify.pinned.push_back(*peer);
    auto ctx = pqmcp::tls::make_client_context(c);
    if (!ctx) {
        usage(ctx.error().message());
    }
    return std::move(*ctx);
}

json::object initialize_request(std::int64_t id) {
    return pqmcp::mcp::make_request(
        id, "initialize",
        json::object{{"protocolVersion", "2025-11-25"},
                     {"capabilities", json::object{}},
                     {"clientInfo", json::object{{"name", "bench_mcp"}, {"version", "1"}}}});
}

pqmcp::measure::CallOptions call_options(const Options& o) {
    pqmcp::measure::CallOptions c;
    c.tool = o.tool;
    c.arguments = o.arguments;
    c.requests = o.requests;
    c.concurrency = o.concurrency;
    c.warmup = o.warmup;
    c.client_name = "bench_mcp";
    return c;
}

// One JSON line: requests per second and latency percentiles.
void report(const Options& o, const pqmcp::measure::CallDriver& driver, const std::string& mode) {
    const auto r = driver.results();
    if (!r.first_error.empty()) {
        std::cerr << "bench_mcp: first error: " << r.first_error << "\n";
    }
    json::object out{{"label", o.label},
                     {"mode", mode},
                     {"tool", o.tool},
                     {"requests", r.done},
                     {"concurrency", o.concurrency},
                     {"seconds", r.seconds},
                     {"rps", r.rate()},
                     {"p50_us", r.percentile(0.50)},
                     {"p90_us", r.percentile(0.90)},
                     {"p99_us", r.percentile(0.99)},
                     {"errors", r.errors}};
    std::cout << json::serialize(out) << std::endl;
}

int run_stdio(const Options& o) {
    asio::io_context io;
    std::function<void(json::object)> send;
    pqmcp::measure::CallDriver driver(
        call_options(o), [&send](json::object m) { send(std::move(m)); }, [&io] { io.stop(); });
    pqmcp::transport::ChildSpec spec;
    spec.command = o.command.front();
    spec.args.assign(o.command.begin() + 1, o.command.end());
    spec.env = pqmcp::transport::minimal_environment();
    pqmcp::mcp::Limits limits;
    pqmcp::transport::ChildCallbacks cb;
    cb.on_line = [&](const std::string& line) {
        auto parsed = pqmcp::mcp::parse(line, limits);
        if (parsed) {
            for (auto& item : parsed->items) {
                if (item) {
                    driver.on_message(*item);
                }
            }
        }
    };
    cb.on_stderr_line = [](const std::string& line) { std::cerr << "[child] " << line << "\n"; };
    cb.on_exit = [&io](const std::string& how) {
        std::cerr << "bench_mcp: the server " << how << "\n";
        io.stop();
    };
    auto child = pqmcp::transport::ChildProcess::spawn(io.get_executor(), spec, std::move(cb));
    if (!child) {
        usage(child.error().message());
    }
    send = [&child](const json::object& m) { (void)(*child)->write(pqmcp::mcp::serialize(m)); };
    driver.start();
    io.run();
    report(o, driver, "stdio");
    (*child)->stop();
    io.restart();
    io.run_for(std::chrono::seconds{5});
    return driver.finished() ? 0 : 1;
}

int run_http(const Options& o) {
    asio::io_context io;
    std::function<void(json::object)> send;
    pqmcp::measure::CallDriver driver(
        call_options(o), [&send](json::object m) { send(std::move(m)); }, [&io] { io.stop(); });
    auto ctx = client_context(o);
    pqmcp::transport::HttpClientOptions h;
    auto url = pqmcp::transport::parse_url(o.url);
    if (!url) {
        usage(url.error().message());
    }
    h.url = *url;
    h.tls = ctx.get();
    h.max_connections = std::max<std::size_t>(o.concurrency, 1);
    if (!o.bearer_file.empty()) {
        std::ifstream f(o.bearer_file);
        std::string token;
        if (!std::getline(f, token) || token.empty()) {
            usage("--bearer-file: no token in " + o.bearer_file);
        }
        h.headers.emplace_back("Authorization", "Bearer " + token);
    }
    if (o.revision == "2026-07-28") {
        // server/discover, then every call a request of its own, no session.
        h.revision = pqmcp::transport::HttpClientOptions::Revision::stateless;
    }
    pqmcp::transport::HttpClientCallbacks cb;
    cb.on_message = [&driver](const Message& m) { driver.on_message(m); };
    cb.on_failure = [&io](const json::object&, const pqmcp::Error& e, const json::object*) {
        std::cerr << "bench_mcp: " << e.message() << "\n";
        io.stop();
    };
    pqmcp::transport::McpHttpClient client(io.get_executor(), h, std::move(cb));
    send = [&client](json::object m) { client.send(std::move(m)); };
    driver.start();
    io.run();
    report(o, driver, o.revision == "2026-07-28" ? "http-2026-07-28" : "http");
    bool closed = false;
    io.restart();
    client.close([&closed] { closed = true; });
    while (!closed && io.run_one_for(std::chrono::seconds{5}) > 0) {
    }
    return driver.finished() ? 0 : 1;
}

// Many sessions, held open.
int run_sessions(const Options& o) {
    asio::io_context io;
    auto ctx = client_context(o);
    auto url = pqmcp::transport::parse_url(o.url);
    if (!url) {
        usage(url.error().message());
    }
    struct Session {
        std::unique_ptr<pqmcp::transport::McpHttpClient> client;
        bool initialized = false;
        bool called = false;
        bool failed = false;
    };
    std::vector<Session> sessions(o.count);
    std::size_t initialized = 0;
    std::size_t called = 0;
    std::size_t failed = 0;
    const auto options = [&](bool listen, std::size_t connections) {
        pqmcp::transport::HttpClientOptions h;
        h.url = *url;
        h.tls = ctx.get();
        h.listen = listen;
        h.max_connections = connections;
        return h;
    };
    const auto make = [&](std::size_t i) {
        pqmcp::transport::HttpClientCallbacks cb;
        cb.on_message = [&, i](const Message& m) {
            if (!m.is_response()) {
                return;
            }
            Session& s = sessions[i];
            if (m.id == json::value(1) && !s.initialized) {
                s.initialized = true;
                ++initialized;
            } else if (m.id == json::value(2) && !s.called) {
                s.called = true;
                ++called;
            }
        };
        cb.on_failure = [&, i](const json::object&, const pqmcp::Error& e, const json::object*) {
            if (!sessions[i].failed) {
                sessions[i].failed = true;
                ++failed;
                std::cerr << "bench_mcp: session " << i << ": " << e.message() << "\n";
            }
        };
        return std::make_unique<pqmcp::transport::McpHttpClient>(io.get_executor(),
                                                                 options(true, 2), std::move(cb));
    };
    const auto run_until = [&](const std::function<bool()>& done) {
        const auto deadline = Clock::now() + std::chrono::minutes{3};
        while (!done() && Clock::now() < deadline) {
            io.run_for(std::chrono::milliseconds{50});
            io.restart();
        }
    };
    const auto wait_line = [] {
        std::string line;
        std::getline(std::cin, line);
    };

    // Idle sessions: N initialize requests over one keep-alive connection,
    // so the gateway holds N sessions and nothing else of ours.
    const auto t0 = Clock::now();
    std::size_t idle_done = 0;
    {
        pqmcp::transport::HttpClientCallbacks cb;
        cb.on_message = [&idle_done](const Message& m) {
            if (m.is_response()) {
                ++idle_done;
            }
        };
        cb.on_failure = [&failed](const json::object&, const pqmcp::Error& e, const json::object*) {
            ++failed;
            std::cerr << "bench_mcp: " << e.message() << "\n";
        };
        pqmcp::transport::McpHttpClient one(io.get_executor(), options(false, 1), std::move(cb));
        for (std::size_t i = 0; i < o.count; ++i) {
            one.send(initialize_request(static_cast<std::int64_t>(i + 1)));
            run_until([&] { return idle_done + failed >= i + 1; });
        }
    }
    const double open_seconds = std::chrono::duration<double>(Clock::now() - t0).count();
    std::cout << "idle " << idle_done << std::endl;
    wait_line();

    // Active sessions, N more: each its own client, initialize, then
    // notifications/initialized opens its GET stream (held open from then on),
    // then one tools/call. Opened in waves of 100, each wave started once the
    // last one's sessions are initialized: the gateway closes a POST
    // connection a keep-alive interval after its call, so at any time only
    // the last second's POST connections are open besides the N GET streams
    // (10,000 active sessions fit in 20,000 descriptors on each side).
    constexpr std::size_t k_wave = 100;
    for (std::size_t start = 0; start < o.count; start += k_wave) {
        const std::size_t end = std::min(o.count, start + k_wave);
        for (std::size_t i = start; i < end; ++i) {
            sessions[i].client = make(i);
            sessions[i].client->send(initialize_request(1));
        }
        run_until([&] { return initialized + failed >= end; });
        for (std::size_t i = start; i < end; ++i) {
            if (sessions[i].failed || !sessions[i].initialized) {
                continue;
            }
            sessions[i].client->send(
                pqmcp::mcp::make_notification("notifications/initialized", {}));
            sessions[i].client->send(pqmcp::mcp::make_request(
                2, "tools/call",
                json::object{{"name", o.tool},
                             {"arguments", json::object{{"message", "active"}}}}));
        }
    }
    run_until([&] { return called + failed >= o.count; });
    std::cout << "active " << called << std::endl;
    wait_line();

    std::size_t closed = 0;
    for (auto& s : sessions) {
        s.client->close([&closed] { ++closed; });
    }
    run_until([&] { return closed >= o.count; });
    json::object out{{"sessions", o.count},
                     {"initialized", initialized},
                     {"called", called},
                     {"failed", failed},
                     {"open_seconds", open_seconds}};
    std::cout << json::serialize(out) << std::endl;
    return failed == 0 ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
    raise_fd_limit();
    const Options o = parse(argc, argv);
    if (o.mode == "stdio") {
        return run_stdio(o);
    }
    if (o.mode == "http") {
        return run_http(o);
    }
    if (o.mode == "sessions") {
        return run_sessions(o);
    }
    usage("unknown mode " + o.mode);
}
