// `pqmcp connect`: an MCP server on stdio for a local client, forwarding
// everything to a gateway over Streamable HTTP on PQ TLS.
#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <climits>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <fstream>
#include <functional>
#include <iostream>
#include <map>
#include <mutex>
#include <optional>
#include <thread>

#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/json/array.hpp>
#include <boost/json/serialize.hpp>

#include "commands.hpp"
#include "paths.hpp"
#include "pqmcp/crypto/util.hpp"
#include "pqmcp/gateway/config.hpp"
#include "pqmcp/identity/identity.hpp"
#include "pqmcp/identity/known_peers.hpp"
#include "pqmcp/integrity/scanner.hpp"
#include "pqmcp/integrity/signing.hpp"
#include "pqmcp/mcp/jsonrpc.hpp"
#include "pqmcp/mcp/protocol.hpp"
#include "pqmcp/oauth/client.hpp"
#include "pqmcp/oauth/login.hpp"
#include "pqmcp/tls/context.hpp"
#include "pqmcp/tls/profile.hpp"
#include "pqmcp/tls/web.hpp"
#include "pqmcp/transport/http_client.hpp"
#include "pqmcp/transport/line_io.hpp"

namespace pqmcp::cli {
namespace {

namespace asio = boost::asio;
namespace json = boost::json;

struct ConnectArgs {
    std::string url;
    std::string identity;
    std::vector<std::string> pins;
    std::string known_peers;
    std::string ca;
    std::string profile = "pq-hybrid";
    std::string timeout = "120s";
    std::size_t max_message_bytes = 4U << 20U;
    std::size_t max_buffer_bytes = 64U << 20U;  // each way: for the client, and towards the gateway
    std::string log_level = "warn";
    std::string print_config;
    bool strict_tools = false;
    bool no_raw_public_keys = false;
    std::string protocol = "auto";  // auto, 2025-11-25 or 2026-07-28
    std::string token_file;         // an OAuth access token for the gateway
    // The local user's own OAuth client for the gateway: a refresh token
    // from one sign-in in a browser, kept sealed under the client identity.
    std::string oauth_client;
    std::vector<std::string> oauth_scopes;
    std::uint16_t oauth_port = 0;
    unsigned oauth_wait = 300;
};

// The first line of the token file: an OAuth access token (RFC 6750 b64token
// characters), at most 16 KiB. Never logged.
Result<std::string> read_token(const std::string& path) {
    std::ifstream f(path);
    std::string token;
    if (!f || !std::getline(f, token)) {
        return fail(transport::Errc::connect_failed, "--token-file " + path + ": cannot read it");
    }
    while (!token.empty() && (token.back() == '\r' || token.back() == ' ')) {
        token.pop_back();
    }
    const bool b64token = !token.empty() && token.size() <= (16U << 10U) &&
                          std::all_of(token.begin(), token.end(), [](unsigned char c) {
                              return std::isalnum(c) != 0 || std::strchr("-._~+/=", c) != nullptr;
                          });
    if (!b64token) {
        return fail(transport::Errc::connect_failed,
                    "--token-file " + path + ": the first line is not an access token");
    }
    return token;
}

// Lines to stdout, so a client slow to read never stalls the network side.
// When nothing waits, the caller writes a line at once if that cannot block:
// stdout is a socket (a send that does not wait; what it could not take
// waits here) or a pipe with room for the whole line (poll(2), at most
// PIPE_BUF bytes). That is the usual case, and costs no hand-over between
// threads per message. Otherwise a thread of its own writes, up to a bound:
// beyond `max_bytes` queued, write() waits for the client (backpressure on
// the gateway) up to `max_wait`, then gives the client up for gone.
class StdoutWriter final {
  public:
    StdoutWriter(std::size_t max_bytes, std::chrono::milliseconds max_wait)
        : max_bytes_(max_bytes), max_wait_(max_wait), thread_([this] { loop(); }) {}
    ~StdoutWriter() {
        {
            const std::lock_guard lock(mutex_);
            done_ = true;
        }
        ready_.notify_one();
        thread_.join();
    }
    StdoutWriter(const StdoutWriter&) = delete;
    StdoutWriter& operator=(const StdoutWriter&) = delete;
    StdoutWriter(StdoutWriter&&) = delete;
    StdoutWriter& operator=(StdoutWriter&&) = delete;

    void write(std::string line) {
        line.push_back('\n');
        {
            std::unique_lock lock(mutex_);
            if (gone_) {
                return;
            }
            // The lock keeps the thread out while this writes: queued_ is 0
            // only when it is not writing either.
            if (queued_ == 0 && write_now(line)) {
                return;
            }
            if (!room_.wait_for(lock, max_wait_, [this, &line] {
                    return gone_ || queued_ == 0 || queued_ + line.size() <= max_bytes_;
                })) {
                spdlog::error(
                    "the local client has not read {} bytes of messages for {} ms; it is "
                    "treated as gone",
                    queued_, max_wait_.count());
                gone_ = true;
                lines_.clear();
                queued_ = 0;
                return;
            }
            if (gone_) {
                return;
            }
            queued_ += line.size();
            lines_.push_back(std::move(line));
        }
        ready_.notify_one();
    }
    [[nodiscard]] bool gone() const {
        const std::lock_guard lock(mutex_);
        return gone_;
    }

  private:
    enum class Kind { socket, pipe, other };

    static Kind kind_of(int fd) {
        struct stat st {};
        if (::fstat(fd, &st) != 0) {
            return Kind::other;
        }
        return S_ISSOCK(st.st_mode)   ? Kind::socket
               : S_ISFIFO(st.st_mode) ? Kind::pipe
                                      : Kind::other;
    }

    // Writes what it can of `data` without waiting, and removes it from
    // `data`; true when nothing is left for the thread. A failed write (the
    // client is gone) marks it so.
    bool write_now(std::string& data) {
        if (stdout_ == Kind::socket) {
            ssize_t n = 0;
            do {
                n = ::send(STDOUT_FILENO, data.data(), data.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
            } while (n < 0 && errno == EINTR);
            if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK) {
                gone_ = true;
                return true;
            }
            data.erase(0, n > 0 ? static_cast<std::size_t>(n) : 0);
            return data.empty();
        }
        if (stdout_ == Kind::pipe && data.size() <= PIPE_BUF) {
            // poll(2) reports room when a pipe buffer is free, and a write
            // of at most PIPE_BUF bytes never waits then.
            pollfd p{STDOUT_FILENO, POLLOUT, 0};
            if (::poll(&p, 1, 0) == 1 && (p.revents & (POLLOUT | POLLERR)) != 0) {
                if (!transport::write_all(STDOUT_FILENO, data)) {
                    gone_ = true;
                }
                return true;
            }
        }
        return false;
    }

    void loop() {
        std::unique_lock lock(mutex_);
        for (;;) {
            ready_.wait(lock, [this] { return done_ || !lines_.empty(); });
            while (!lines_.empty()) {
                std::string data = std::move(lines_.front());
                lines_.pop_front();
                lock.unlock();
                const bool ok = transport::write_all(STDOUT_FILENO, data).has_value();
                lock.lock();
                queued_ -= std::min(queued_, data.size());
                if (!ok) {
                    lines_.clear();  // the client is gone
                    queued_ = 0;
                    gone_ = true;
                }
                room_.notify_all();
            }
            if (done_) {
                return;
            }
        }
    }

    std::size_t max_bytes_;
    std::chrono::milliseconds max_wait_;
    Kind stdout_ = kind_of(STDOUT_FILENO);
    mutable std::mutex mutex_;
    std::condition_variable ready_;
    std::condition_variable room_;
    std::deque<std::string> lines_;
    std::size_t queued_ = 0;
    bool done_ = false;
    bool gone_ = false;
    std::thread thread_;
};

// --protocol held to: a message of the other revision is answered here
// (nullopt: send it). A client that negotiates tries the one it is offered.
std::optional<json::object> refuse_revision(const std::string& protocol, const mcp::Message& m) {
    if (!m.is_request()) {
        return std::nullopt;
    }
    const bool stateless = mcp::envelope_version(m.body) == mcp::k_stateless_version;
    if (protocol == "2025-11-25" && stateless) {
        json::array supported;
        for (const auto v : mcp::k_protocol_versions) {
            supported.emplace_back(v);
        }
        return mcp::make_error(
            m.id, mcp::code::unsupported_version,
            "Unsupported protocol version 2026-07-28 (pqmcp connect --protocol 2025-11-25)",
            json::object{{"supported", std::move(supported)},
                         {"requested", json::string_view(mcp::k_stateless_version)}});
    }
    if (protocol == "2026-07-28" && m.method == mcp::method::initialize) {
        return mcp::make_error(
            m.id, mcp::code::unsupported_version,
            "pqmcp connect --protocol 2026-07-28: no initialize; use server/discover",
            json::object{{"supported", json::array{json::string_view(mcp::k_stateless_version)}},
                         {"requested", mcp::k_latest_version}});
    }
    return std::nullopt;
}

int print_config(const ConnectArgs& a) {
    json::array argv{"connect", a.url, "--identity",
                     std::filesystem::absolute(a.identity).lexically_normal().string()};
    for (const auto& pin : a.pins) {
        argv.push_back("--pin");
        argv.push_back(json::value(pin));
    }
    if (!a.known_peers.empty()) {
        argv.push_back("--known-peers");
        argv.push_back(json::value(std::filesystem::absolute(a.known_peers).string()));
    }
    if (!a.ca.empty()) {
        argv.push_back("--ca");
        argv.push_back(json::value(std::filesystem::absolute(a.ca).string()));
    }
    if (a.profile != "pq-hybrid") {
        argv.push_back("--profile");
        argv.push_back(json::value(a.profile));
    }
    if (a.strict_tools) {
        argv.push_back("--strict-tools");
    }
    if (a.no_raw_public_keys) {
        argv.push_back("--no-raw-public-keys");
    }
    if (a.protocol != "auto") {
        argv.push_back("--protocol");
        argv.push_back(json::value(a.protocol));
    }
    if (!a.token_file.empty()) {
        argv.push_back("--token-file");
        argv.push_back(json::value(std::filesystem::absolute(a.token_file).string()));
    }
    if (!a.oauth_client.empty()) {
        argv.push_back("--oauth-client");
        argv.push_back(json::value(a.oauth_client));
        for (const auto& scope : a.oauth_scopes) {
            argv.push_back("--oauth-scope");
            argv.push_back(json::value(scope));
        }
        if (a.oauth_port != 0) {
            argv.push_back("--oauth-port");
            argv.push_back(json::value(std::to_string(a.oauth_port)));
        }
        if (a.oauth_wait != 300) {
            argv.push_back("--oauth-wait");
            argv.push_back(json::value(std::to_string(a.oauth_wait)));
        }
    }
    const json::object server{{"command", self_executable()}, {"args", std::move(argv)}};
    const json::object config{{"mcpServers", json::object{{a.print_config, server}}}};
    std::cout << json::serialize(config) << "\n";
    return k_exit_ok;
}

// --oauth-client: the gateway's token for the person at this machine. The
// refresh token from their one sign-in (authorization code with PKCE, the
// browser back on loopback; the address printed on stderr, as stdout is the
// MCP stream) is kept sealed under the client identity, per gateway URL and
// client; access tokens are refreshed in the background. A refresh token
// the server no longer takes means one more sign-in.
Result<std::shared_ptr<oauth::TokenSource>> gateway_tokens(const ConnectArgs& a,
                                                           const identity::Identity& own,
                                                           SSL_CTX* gateway_tls, SSL_CTX* web,
                                                           asio::io_context& io) {
    const std::string which = a.url + "\n" + a.oauth_client;
    const auto digest = crypto::sha256(as_bytes(which));
    std::string name = "gateway-";
    for (std::size_t i = 0; i < 8; ++i) {
        name += fmt::format("{:02x}", digest.at(i));
    }
    name += ".token";
    auto file =
        oauth::TokenFile::open(std::filesystem::path(a.identity) / "oauth" / name, own.key.get());
    if (!file) {
        return tl::unexpected(file.error());
    }
    auto shared = std::make_shared<const oauth::TokenFile>(std::move(*file));
    oauth::LoginOptions lo;
    lo.resource = a.url;
    lo.client_id = a.oauth_client;
    lo.scopes = a.oauth_scopes;
    lo.resource_tls = gateway_tls;
    lo.tls = web;
    lo.port = a.oauth_port;
    lo.wait = std::chrono::seconds{a.oauth_wait};
    lo.show = [](const std::string& url, const std::string& back) {
        // One write: whoever reads stderr gets the address whole.
        std::cerr << "pqmcp connect: the gateway wants you to sign in. Open this address in a "
                     "browser:\n\n  " +
                         url + "\n\nWaiting for the browser to come back to " + back + "\n"
                  << std::flush;
    };
    const auto sign_in = [&lo, &shared]() -> Status {
        auto grant = oauth::login_and_store(lo, *shared);
        if (!grant) {
            return tl::unexpected(grant.error());
        }
        return {};
    };
    if (auto stored = shared->read(); !stored) {
        if (stored.error().code != oauth::Errc::not_enrolled) {
            spdlog::warn("{}: signing in again", stored.error().detail);
        }
        if (const Status in = sign_in(); !in) {
            return tl::unexpected(in.error());
        }
    }
    oauth::ClientCredentials cc;
    cc.resource = a.url;
    cc.client_id = a.oauth_client;
    cc.resource_tls = gateway_tls;
    cc.tls = web;
    cc.enrolled = shared;
    auto source = std::make_shared<oauth::TokenSource>(io.get_executor(), cc);
    if (Status got = source->fetch_now(); !got) {
        // Only a refused grant (invalid_grant: revoked, expired) means a new
        // sign-in; an unavailable server or a busy file is reported as it is.
        if (got.error().code != oauth::Errc::grant_refused &&
            got.error().code != oauth::Errc::not_enrolled) {
            return tl::unexpected(got.error());
        }
        spdlog::warn("the stored sign-in no longer works ({}): signing in again",
                     got.error().detail);
        if (const Status in = sign_in(); !in) {
            return tl::unexpected(in.error());
        }
        if (got = source->fetch_now(); !got) {
            return tl::unexpected(got.error());
        }
    }
    source->keep_fresh();
    return source;
}

int run_connect(ConnectArgs a) {
    const auto usage = [](const std::string& what) {
        std::cerr << "pqmcp connect: " << what << "\n";
        return k_exit_usage;
    };
    auto url = transport::parse_url(a.url);
    if (!url) {
        return usage(url.error().detail);
    }
    if (!url->tls) {
        return usage("the gateway URL must be https:// (pqmcp speaks only PQ TLS to a gateway)");
    }
    auto profile = tls::parse_profile(a.profile);
    if (!profile) {
        return usage(profile.error().detail);
    }
    if (a.identity.empty()) {
        a.identity = default_identity_dir("client").string();
    }
    if (a.pins.empty() && a.known_peers.empty() && a.ca.empty()) {
        return usage(
            "say how to trust the gateway: --pin PEER_ID, --known-peers FILE or --ca FILE");
    }
    for (const auto& pin : a.pins) {
        if (auto id = identity::PeerId::parse(pin); !id) {
            return usage("--pin " + pin + ": " + id.error().detail);
        }
    }
    if (!a.print_config.empty()) {
        return print_config(a);
    }
    const auto timeout = gateway::parse_duration(a.timeout);
    if (!timeout) {
        return usage("--timeout: " + timeout.error().detail);
    }
    spdlog::set_level(spdlog::level::from_str(a.log_level));

    std::error_code ec;
    const bool existed =
        std::filesystem::exists(std::filesystem::path(a.identity) / identity::k_key_file, ec);
    identity::KeygenOptions keygen;
    keygen.algorithm = (*profile)->identity_algorithms.front();
    auto own = identity::load_or_create(a.identity, keygen);
    if (!own) {
        std::cerr << "pqmcp connect: identity " << a.identity << ": " << own.error().message()
                  << "\n";
        return k_exit_error;
    }
    if (!existed) {
        std::cerr
            << "pqmcp connect: created identity " << own->id.str() << " in " << a.identity
            << " (a gateway with --require-client-identity must list it in its known_peers)\n";
    }
    std::optional<identity::KnownPeers> known;
    if (!a.known_peers.empty()) {
        auto loaded = identity::KnownPeers::load(a.known_peers);
        if (!loaded) {
            std::cerr << "pqmcp connect: " << loaded.error().message() << "\n";
            return k_exit_error;
        }
        known = std::move(*loaded);
    }
    tls::ContextOptions options;
    options.profile = (*profile)->id;
    options.identity = &*own;
    for (const auto& pin : a.pins) {
        auto id = identity::PeerId::parse(pin);
        if (!id) {
            return usage("--pin " + pin + ": " + id.error().detail);
        }
        options.verify.pinned.push_back(*id);
    }
    options.verify.known_peers = known ? &*known : nullptr;
    options.verify.ca_file = a.ca;
    options.verify.raw_public_keys = !a.no_raw_public_keys;
    if (!a.ca.empty()) {
        options.verify.ca_host = url->host;
    }
    auto ctx = tls::make_client_context(options);
    if (!ctx) {
        std::cerr << "pqmcp connect: " << ctx.error().message() << "\n";
        return k_exit_error;
    }

    asio::io_context io(1);
    auto guard = asio::make_work_guard(io);
    StdoutWriter out(a.max_buffer_bytes, std::chrono::seconds{30});
    mcp::Limits limits;
    limits.max_message_bytes = a.max_message_bytes;

    transport::HttpClientOptions http;
    http.url = *url;
    http.tls = ctx->get();
    http.response_timeout = *timeout;
    http.connect_timeout = std::min(*timeout, std::chrono::milliseconds{10'000});
    // A client that sends many requests at once waits for a connection as
    // long as it would for an answer.
    http.pool_wait = *timeout;
    http.message_limits = limits;
    // A local client of 2026-07-28 (its requests carry the envelope) is
    // relayed in that revision; one of 2025-11-25 and before gets a session.
    http.pass_stateless = a.protocol != "2025-11-25";
    if (!a.token_file.empty()) {
        auto token = read_token(a.token_file);
        if (!token) {
            std::cerr << "pqmcp connect: " << token.error().detail << "\n";
            return k_exit_error;
        }
        // Inside the PQ tunnel: the token is never on the wire in the clear.
        http.headers.emplace_back("Authorization", "Bearer " + *token);
    }
    crypto::SslCtxPtr web;
    std::shared_ptr<oauth::TokenSource> tokens;
    if (!a.oauth_client.empty()) {
        auto made = tls::make_web_client_context({});
        if (!made) {
            std::cerr << "pqmcp connect: " << made.error().message() << "\n";
            return k_exit_error;
        }
        web = std::move(*made);
        auto got = gateway_tokens(a, *own, ctx->get(), web.get(), io);
        if (!got) {
            std::cerr << "pqmcp connect: --oauth-client " << a.oauth_client << ": "
                      << got.error().message() << "\n";
            return k_exit_error;
        }
        tokens = std::move(*got);
        http.authorization = [tokens] { return tokens->authorization(); };
    }
    transport::HttpClientCallbacks callbacks;
    // Lists the gateway signs (docs/integrity.md): verified against the
    // identity this connection authenticated; --strict-tools refuses a list
    // that is unsigned or does not verify.
    std::map<std::string, std::string> list_requests;  // client's id (JSON text) -> method
    std::optional<identity::PeerId> gateway_id;
    callbacks.on_message = [&out, &a, &list_requests, &gateway_id](const mcp::Message& m) {
        if ((m.kind == mcp::Kind::response || m.kind == mcp::Kind::error) &&
            !list_requests.empty()) {
            const auto it = list_requests.find(mcp::id_text(m.id));
            if (it != list_requests.end()) {
                const std::string method = it->second;
                list_requests.erase(it);
                const auto* result = m.body.if_contains("result");
                if (result != nullptr && result->is_object()) {
                    auto v = integrity::verify_result(result->as_object(), method,
                                                      gateway_id ? &*gateway_id : nullptr);
                    if (!v) {
                        if (a.strict_tools) {
                            spdlog::error("{} refused (--strict-tools): {}", method,
                                          v.error().message());
                            out.write(mcp::serialize(
                                mcp::make_error(m.id, mcp::code::unverified_list,
                                                "pqmcp connect --strict-tools: " + method +
                                                    " refused: " + v.error().detail)));
                            return;
                        }
                        if (v.error().code != integrity::Errc::unsigned_list) {
                            spdlog::warn("{}: {}", method, v.error().message());
                        }
                    } else {
                        spdlog::debug("{} signed by {} at {}", method, v->kid.str(), v->timestamp);
                    }
                }
            }
        }
        out.write(mcp::serialize(m.body));
    };
    callbacks.on_failure = [&out, &a](const json::object& message, const Error& error,
                                      const json::object* server_error) {
        std::cerr << "pqmcp connect: " << a.url << ": " << error.message() << "\n";
        const auto* id = message.if_contains("id");
        if (id == nullptr || !message.contains("method")) {
            return;  // a notification or a response: nobody waits for an answer
        }
        if (server_error != nullptr) {
            json::object reply = *server_error;
            reply["id"] = *id;
            out.write(mcp::serialize(reply));
            return;
        }
        const int code = error.code == transport::Errc::timeout ? mcp::code::upstream_timeout
                                                                : mcp::code::gateway_unreachable;
        out.write(mcp::serialize(
            mcp::make_error(*id, code, "pqmcp connect: " + a.url + ": " + error.message())));
    };
    bool announced = false;
    callbacks.on_connected = [&announced, &a, &gateway_id](const tls::HandshakeInfo& info) {
        gateway_id = info.peer_id;
        if (!announced) {
            announced = true;
            spdlog::info("connected to {}: {} {} {}, gateway {} ({})", a.url, info.protocol,
                         info.group, info.peer_signature, info.peer_id ? info.peer_id->str() : "?",
                         info.certificate_type);
        }
    };
    transport::McpHttpClient client(io.get_executor(), http, std::move(callbacks));

    // At the end of input: wait (polling, bounded) until every request is
    // answered, then end the session and stop.
    asio::steady_timer drain_timer(io);
    std::chrono::steady_clock::time_point drain_deadline;
    std::function<void()> drain = [&] {
        if (client.pending_requests() > 0 && std::chrono::steady_clock::now() < drain_deadline &&
            !out.gone()) {
            drain_timer.expires_after(std::chrono::milliseconds{10});
            drain_timer.async_wait([&drain](const boost::system::error_code& waited) {
                if (!waited) {
                    drain();
                }
            });
            return;
        }
        auto stop = std::make_shared<asio::steady_timer>(io, std::chrono::seconds{3});
        stop->async_wait([&io, stop](const boost::system::error_code&) { io.stop(); });
        client.close([&io] { io.stop(); });
    };

    // One line from the local client: parsed, then sent to the gateway or
    // answered here.
    const auto take = [&](Result<std::string> l) {
        if (!l && l.error().code == transport::Errc::io_error) {
            spdlog::error("stdin: {}", l.error().detail);  // the input ends after it
            return;
        }
        if (!l) {
            out.write(mcp::serialize(
                mcp::make_error(Error{make_error_code(mcp::Errc::too_large), l.error().detail})));
            return;
        }
        auto parsed = mcp::parse(*l, limits);
        if (!parsed) {
            out.write(mcp::serialize(mcp::make_error(parsed.error())));
            return;
        }
        for (auto& item : parsed->items) {
            if (!item) {
                out.write(mcp::serialize(mcp::make_error(item.error())));
            } else if (auto refusal = refuse_revision(a.protocol, *item)) {
                out.write(mcp::serialize(*refusal));
            } else {
                if (item->kind == mcp::Kind::request &&
                    (item->method == mcp::method::initialize ||
                     item->method == mcp::method::tools_list ||
                     item->method == mcp::method::prompts_list ||
                     item->method == mcp::method::resources_list ||
                     item->method == mcp::method::resources_templates_list) &&
                    list_requests.size() < 1024) {
                    list_requests[mcp::id_text(item->id)] = item->method;
                }
                client.send(std::move(item->body));
            }
        }
    };
    // End of input: the client is done. What it asked is answered first
    // (each request is bounded by --timeout); then the session ends.
    const auto end_of_input = [&] {
        drain_deadline = std::chrono::steady_clock::now() + *timeout;
        drain();
    };

    // stdin, when it is a pipe or a socket (as MCP clients start a server),
    // is read on this thread when the reactor reports it readable: no hand-over
    // between threads per message. Anything else (a file, a terminal) is read
    // on a thread of its own, which posts each line here; what it read and the
    // network side has not taken yet is bounded: it waits (the client's writes
    // block) until there is room.
    transport::LineReader lines(STDIN_FILENO, limits.max_message_bytes);
    std::optional<asio::posix::stream_descriptor> input;
    if (struct stat st{};
        ::fstat(STDIN_FILENO, &st) == 0 && (S_ISFIFO(st.st_mode) || S_ISSOCK(st.st_mode))) {
        // A duplicate for the reactor's registration; reads go to stdin itself,
        // which stays blocking (its open file may be shared with other processes).
        if (const int fd = ::fcntl(STDIN_FILENO, F_DUPFD_CLOEXEC, 3); fd >= 0) {
            boost::system::error_code assigned;
            input.emplace(io);
            if (input->assign(fd, assigned); assigned) {
                ::close(fd);
                input.reset();
            }
        }
    }
    // Reading stdin here: the reactor's notice (edge-triggered) wakes a
    // wait; the pump then reads while poll(2) says a read will not wait
    // (stdin stays blocking), and waits again once it would. This thread runs
    // the reactor too, so a notice that comes while the pump reads is seen
    // after the wait is queued. A long burst yields to the network side.
    std::function<void()> wait_input;
    std::function<void()> pump = [&] {
        for (int round = 0; round < 16; ++round) {
            pollfd p{STDIN_FILENO, POLLIN, 0};
            if (::poll(&p, 1, 0) != 1 || p.revents == 0) {
                wait_input();
                return;
            }
            std::vector<Result<std::string>> got;
            const bool more = lines.read_once(got);
            for (auto& l : got) {
                take(std::move(l));
            }
            if (!more) {
                // After the sends above have started (they are queued
                // handlers too), as the reading thread does.
                asio::post(io, end_of_input);
                return;
            }
        }
        asio::post(io, pump);
    };
    wait_input = [&] {
        input->async_wait(asio::posix::stream_descriptor::wait_read,
                          [&](const boost::system::error_code& waited) {
                              if (waited) {
                                  spdlog::error("stdin: {}", waited.message());
                                  end_of_input();
                              } else {
                                  pump();
                              }
                          });
    };
    std::mutex inbound_mutex;
    std::condition_variable inbound_room;
    std::size_t inbound = 0;
    std::thread reader;
    if (input) {
        asio::post(io, pump);
    } else {
        reader = std::thread([&] {
            while (auto line = lines.next()) {
                const std::size_t size = *line ? (*line)->size() : 0;
                {
                    std::unique_lock lock(inbound_mutex);
                    inbound_room.wait(
                        lock, [&] { return inbound == 0 || inbound + size <= a.max_buffer_bytes; });
                    inbound += size;
                }
                asio::post(io, [&, size, l = std::move(*line)]() mutable {
                    {
                        const std::lock_guard lock(inbound_mutex);
                        inbound -= size;
                    }
                    inbound_room.notify_one();
                    take(std::move(l));
                });
            }
            asio::post(io, end_of_input);
        });
    }
    io.run();
    // stdin has ended (io.stop() is only called after that); the reader is done.
    if (reader.joinable()) {
        reader.join();
    }
    return k_exit_ok;
}

}  // namespace

void add_connect_command(CLI::App& app, int& exit_code) {
    auto args = std::make_shared<ConnectArgs>();
    CLI::App* cmd = app.add_subcommand(
        "connect", "Serve MCP on stdio for a local client and forward it to a gateway over PQ TLS");
    cmd->add_option("url", args->url, "the gateway's MCP endpoint, https://HOST:PORT/mcp")
        ->required();
    cmd->add_option("--identity", args->identity,
                    "this client's identity directory, created if missing "
                    "(default ~/.config/pqmcp/client)");
    cmd->add_option("--pin", args->pins, "the gateway's peer id (repeatable)");
    cmd->add_option("--known-peers", args->known_peers, "known_peers file listing the gateway")
        ->check(CLI::ExistingFile);
    cmd->add_option("--ca", args->ca, "CA certificates (PEM) that vouch for the gateway")
        ->check(CLI::ExistingFile);
    cmd->add_option("--profile", args->profile, "security profile (default pq-hybrid)");
    cmd->add_option(
        "--timeout", args->timeout,
        "fail a request after this long without a byte from the gateway (default 120s)");
    cmd->add_option("--max-message-bytes", args->max_message_bytes,
                    "largest JSON-RPC message (default 4 MiB)");
    cmd->add_option("--max-buffer-bytes", args->max_buffer_bytes,
                    "messages held for the local client (and read from it, not yet sent) at "
                    "most (default 64 MiB each way)");
    cmd->add_option("--log-level", args->log_level, "stderr log level (default warn)");
    cmd->add_option("--print-config", args->print_config,
                    "print the mcpServers JSON for a desktop client under NAME, and exit");
    cmd->add_option("--protocol", args->protocol,
                    "MCP revision towards the gateway: auto (the local client's: 2026-07-28 "
                    "requests relayed as such, others in a session), 2025-11-25 or 2026-07-28 "
                    "(default auto)")
        ->check(CLI::IsMember({"auto", "2025-11-25", "2026-07-28"}));
    cmd->add_flag("--no-raw-public-keys", args->no_raw_public_keys,
                  "ask the gateway for its X.509 certificate and send ours, even when pinning it "
                  "(default: RFC 7250 raw public keys when trusting by --pin or --known-peers)");
    cmd->add_option("--token-file", args->token_file,
                    "a file whose first line is an OAuth access token for the gateway "
                    "(sent as a bearer token on every request)")
        ->check(CLI::ExistingFile);
    cmd->add_option("--oauth-client", args->oauth_client,
                    "CLIENT_ID: get the gateway's OAuth tokens as this (public) client: the first "
                    "time, sign in once in a browser (the address is printed on stderr); the "
                    "refresh token is kept sealed under --identity and used from then on")
        ->excludes("--token-file");
    cmd->add_option("--oauth-scope", args->oauth_scopes,
                    "a scope to ask for (repeatable; default: the gateway's scopes_supported)");
    cmd->add_option("--oauth-port", args->oauth_port,
                    "the browser comes back to http://127.0.0.1:PORT/callback (default: any)");
    cmd->add_option("--oauth-wait", args->oauth_wait,
                    "seconds to wait for the browser at the first sign-in (default 300)");
    cmd->add_flag("--strict-tools", args->strict_tools,
                  "refuse tools/list, prompts/list and resources/templates/list results the "
                  "gateway did not sign (or whose signature does not verify)");
    cmd->callback([args, &exit_code] { exit_code = run_connect(*args); });
}

}  // namespace pqmcp::cli
