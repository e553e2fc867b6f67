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
// (http: with a session, or the stateless revision).
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
#include <deque>
#include <iostream>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/json.hpp>

#include "pqmcp/identity/identity.hpp"
#include "pqmcp/mcp/jsonrpc.hpp"
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

// Whatever carries messages to the server.
struct Link {
    std::function<void(json::object)> send;
};

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

// Drives tools/call round trips with `concurrency` in flight.
class Driver {
  public:
    Driver(asio::io_context& io, const Options& o) : io_(io), o_(o) {}

    void attach(Link link) { link_ = std::move(link); }

    void on_message(const Message& m) {
        if (!m.is_response() || !m.id.is_int64()) {
            return;
        }
        const auto it = sent_.find(m.id.get_int64());
        if (it == sent_.end()) {
            return;
        }
        const auto elapsed = Clock::now() - it->second;
        sent_.erase(it);
        if (m.kind == pqmcp::mcp::Kind::error ||
            m.body.at("result").as_object().contains("isError")) {
            if (errors_++ == 0 && phase_ != Phase::init) {
                std::cerr << "bench_mcp: first error: " << pqmcp::mcp::serialize(m.body) << "\n";
            }
        }
        if (phase_ == Phase::init) {
            phase_ = Phase::warmup;
            link_.send(pqmcp::mcp::make_notification("notifications/initialized", {}));
            fill();
            return;
        }
        ++done_;
        if (phase_ == Phase::measure) {
            latencies_.push_back(std::chrono::duration<double, std::micro>(elapsed).count());
        }
        if (phase_ == Phase::warmup && done_ >= o_.warmup) {
            phase_ = Phase::measure;
            done_ = 0;
            issued_ = 0;
            errors_ = 0;
            start_ = Clock::now();
        }
        if (phase_ == Phase::measure && done_ >= o_.requests) {
            end_ = Clock::now();
            io_.stop();
            return;
        }
        fill();
    }

    void start() {
        const std::int64_t id = next_id_++;
        sent_[id] = Clock::now();
        link_.send(initialize_request(id));
    }

    void report(const std::string& mode) const {
        auto sorted = latencies_;
        std::sort(sorted.begin(), sorted.end());
        const auto pct = [&sorted](double p) {
            if (sorted.empty()) {
                return 0.0;
            }
            const auto index = static_cast<std::size_t>(p * static_cast<double>(sorted.size() - 1));
            return sorted[index];
        };
        const double seconds = std::chrono::duration<double>(end_ - start_).count();
        json::object out{{"label", o_.label},
                         {"mode", mode},
                         {"tool", o_.tool},
                         {"requests", done_},
                         {"concurrency", o_.concurrency},
                         {"seconds", seconds},
                         {"rps", seconds > 0 ? static_cast<double>(done_) / seconds : 0.0},
                         {"p50_us", pct(0.50)},
                         {"p90_us", pct(0.90)},
                         {"p99_us", pct(0.99)},
                         {"errors", errors_}};
        std::cout << json::serialize(out) << std::endl;
    }

    [[nodiscard]] bool finished() const { return phase_ == Phase::measure && done_ >= o_.requests; }

  private:
    enum class Phase { init, warmup, measure };

    void fill() {
        const std::size_t target = phase_ == Phase::warmup ? o_.warmup : o_.requests;
        while (sent_.size() < o_.concurrency && issued_ < target) {
            ++issued_;
            const std::int64_t id = next_id_++;
            json::object args;
            if (!o_.arguments.empty()) {
                args = json::parse(o_.arguments).as_object();
            } else if (o_.tool.ends_with("echo")) {
                args["message"] = "post-quantum hello";
            } else if (o_.tool.ends_with("add")) {
                args = json::object{{"a", 2}, {"b", 3}};
            }
            sent_[id] = Clock::now();
            link_.send(pqmcp::mcp::make_request(
                id, "tools/call", json::object{{"name", o_.tool}, {"arguments", std::move(args)}}));
        }
    }

    asio::io_context& io_;
    const Options& o_;
    Link link_;
    Phase phase_ = Phase::init;
    std::map<std::int64_t, Clock::time_point> sent_;
    std::int64_t next_id_ = 1;
    std::size_t issued_ = 0;
    std::size_t done_ = 0;
    std::size_t errors_ = 0;
    std::vector<double> latencies_;
    Clock::time_point start_;
    Clock::time_point end_;
};

int run_stdio(const Options& o) {
    asio::io_context io;
    Driver driver(io, o);
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
    driver.attach(
        Link{[&child](const json::object& m) { (void)(*child)->write(pqmcp::mcp::serialize(m)); }});
    driver.start();
    io.run();
    driver.report("stdio");
    (*child)->stop();
    io.restart();
    io.run_for(std::chrono::seconds{5});
    return driver.finished() ? 0 : 1;
}

int run_http(const Options& o) {
    asio::io_context io;
    Driver driver(io, o);
    auto ctx = client_context(o);
    pqmcp::transport::HttpClientOptions h;
    auto url = pqmcp::transport::parse_url(o.url);
    if (!url) {
        usage(url.error().message());
    }
    h.url = *url;
    h.tls = ctx.get();
    h.max_connections = std::max<std::size_t>(o.concurrency, 1);
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
    driver.attach(Link{[&client](json::object m) { client.send(std::move(m)); }});
    driver.start();
    io.run();
    driver.report(o.revision == "2026-07-28" ? "http-2026-07-28" : "http");
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
