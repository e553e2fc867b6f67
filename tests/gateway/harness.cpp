#include "harness.hpp"

#include <gtest/gtest.h>

#include <cstdlib>
#include <deque>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/buffer_body.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>
#include <boost/beast/ssl/ssl_stream.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

#include <spdlog/spdlog.h>

#include "pqmcp/tls/context.hpp"
#include "pqmcp/transport/http_client.hpp"
#include "test_paths.hpp"

namespace pqmcp::gateway::test {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace json = boost::json;
using tcp = asio::ip::tcp;
using TlsStream = beast::ssl_stream<beast::tcp_stream>;
constexpr auto use = asio::as_tuple(asio::use_awaitable);

UpstreamConfig fixture_upstream(const std::string& name) {
    UpstreamConfig u;
    u.name = name;
    u.kind = UpstreamKind::stdio;
    u.command = pqmcp::test_paths::fixture_bin();
    return u;
}

UpstreamConfig demo_upstream(const std::string& name) {
    UpstreamConfig u;
    u.name = name;
    u.kind = UpstreamKind::demo;
    return u;
}

std::string HttpReply::header(const std::string& name) const {
    std::string lower = name;
    for (auto& c : lower) {
        c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    }
    const auto it = headers.find(lower);
    return it == headers.end() ? std::string{} : it->second;
}

json::value HttpReply::json() const {
    boost::system::error_code ec;
    auto v = json::parse(body, ec);
    return ec ? json::value(nullptr) : v;
}

namespace {

Client client_for(const std::string& gateway_peer) {
    identity::KeygenOptions keygen;
    auto id = identity::generate(keygen);
    EXPECT_TRUE(id) << id.error().message();
    Client c{std::move(*id), nullptr};
    tls::ContextOptions o;
    o.identity = &c.identity;
    o.verify.pinned.push_back(*identity::PeerId::parse(gateway_peer));
    auto ctx = tls::make_client_context(o);
    EXPECT_TRUE(ctx) << ctx.error().message();
    c.context = std::move(*ctx);
    return c;
}

template <typename Response>
void copy_headers(const Response& res, HttpReply& out) {
    for (const auto& field : res) {
        std::string name(field.name_string());
        for (auto& ch : name) {
            ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
        }
        out.headers[name] = std::string(field.value());
    }
}

http::request<http::string_body> make_request(const std::string& method, const std::string& target,
                                              const std::vector<Header>& headers,
                                              const std::string& body) {
    http::request<http::string_body> req{http::string_to_verb(method), target, 11};
    req.set(http::field::host, "127.0.0.1");
    for (const auto& h : headers) {
        req.set(h.name, h.value);
    }
    req.body() = body;
    if (!body.empty() || method == "POST") {
        req.prepare_payload();
    }
    return req;
}

asio::awaitable<std::string> open_tls(TlsStream& stream, std::uint16_t port) {
    auto& tcp_stream = beast::get_lowest_layer(stream);
    tcp_stream.expires_after(std::chrono::seconds{10});
    auto [ec] = co_await tcp_stream.async_connect(
        tcp::endpoint(asio::ip::make_address("127.0.0.1"), port), use);
    if (ec) {
        co_return "connect: " + ec.message();
    }
    auto [hec] = co_await stream.async_handshake(asio::ssl::stream_base::client, use);
    if (hec) {
        co_return "handshake: " + hec.message();
    }
    co_return std::string{};
}

// One request and its response on an open connection; false (and
// `out.error`) when either fails.
asio::awaitable<bool> exchange(TlsStream& stream, beast::flat_buffer& buffer,
                               http::request<http::string_body> req, HttpReply& out) {
    auto [wec, wn] = co_await http::async_write(stream, req, use);
    if (wec) {
        out.error = "write: " + wec.message();
        co_return false;
    }
    http::response_parser<http::string_body> parser;
    parser.body_limit(64U << 20U);
    auto [rec, rn] = co_await http::async_read(stream, buffer, parser, use);
    if (rec) {
        out.error = "read: " + rec.message();
        co_return false;
    }
    const auto& res = parser.get();
    out.status = res.result_int();
    out.body = res.body();
    copy_headers(res, out);
    co_return true;
}

// A JSON-RPC POST's headers, with its session and version when given.
std::vector<Header> mcp_headers(const std::string& session, const std::string& version) {
    std::vector<Header> headers{{"Content-Type", "application/json"},
                                {"Accept", "application/json, text/event-stream"}};
    if (!session.empty()) {
        headers.push_back({"Mcp-Session-Id", session});
    }
    if (!version.empty()) {
        headers.push_back({"MCP-Protocol-Version", version});
    }
    return headers;
}

}  // namespace

Harness::Harness(std::vector<UpstreamConfig> upstreams,
                 const std::function<void(GatewayConfig&)>& tweak) {
    GatewayConfig config;
    config.listen = "127.0.0.1:0";
    config.identity = dir_.path() / "gateway";
    config.upstreams = std::move(upstreams);
    config.log_level = "warn";
    // Two threads whatever the machine: each request of http() comes on a
    // fresh connection, and connections are dealt to the threads in turn, so
    // every test also sends a session's requests through the other thread.
    config.threads = 2;
    if (tweak) {
        tweak(config);
    }
    // PQMCP_TEST_LOG=debug shows what the gateway does.
    const char* level = std::getenv("PQMCP_TEST_LOG");
    spdlog::set_level(spdlog::level::from_str(level != nullptr ? level : "warn"));
    auto gw = Gateway::create(std::move(config), "test");
    if (!gw) {
        ADD_FAILURE() << gw.error().message();
        std::abort();
    }
    gateway_ = std::move(*gw);
    client_ = make_client();
    thread_ = std::thread([this] { gateway_->run(false); });
}

Harness::~Harness() {
    stop();
}

void Harness::stop() {
    if (thread_.joinable()) {
        gateway_->shutdown();
        thread_.join();
    }
}

Client Harness::make_client() const {
    return client_for(peer_id());
}

HttpReply Harness::http(const std::string& method, const std::string& target,
                        const std::vector<Header>& headers, const std::string& body,
                        const Client* who) const {
    const Client& c = who != nullptr ? *who : *client_;
    asio::io_context io;
    SSL_CTX_up_ref(c.context.get());
    asio::ssl::context ssl(c.context.get());
    HttpReply out;
    asio::co_spawn(
        io,
        [&]() -> asio::awaitable<void> {
            TlsStream stream(beast::tcp_stream(io), ssl);
            if (auto err = co_await open_tls(stream, port()); !err.empty()) {
                out.error = err;
                co_return;
            }
            beast::flat_buffer buffer;
            (void)co_await exchange(stream, buffer, make_request(method, target, headers, body),
                                    out);
        },
        asio::detached);
    io.run_for(k_wait);
    return out;
}

std::vector<HttpReply> Harness::posts_on_one_connection(
    const std::vector<std::pair<std::string, std::string>>& posts,
    const std::string& version) const {
    asio::io_context io;
    SSL_CTX_up_ref(client_->context.get());
    asio::ssl::context ssl(client_->context.get());
    std::vector<HttpReply> out(posts.size());
    asio::co_spawn(
        io,
        [&]() -> asio::awaitable<void> {
            TlsStream stream(beast::tcp_stream(io), ssl);
            if (auto err = co_await open_tls(stream, port()); !err.empty()) {
                out.front().error = err;
                co_return;
            }
            beast::flat_buffer buffer;
            for (std::size_t i = 0; i < posts.size(); ++i) {
                const auto& [session, body] = posts[i];
                auto req = make_request("POST", "/mcp", mcp_headers(session, version), body);
                if (!co_await exchange(stream, buffer, std::move(req), out[i])) {
                    co_return;
                }
            }
        },
        asio::detached);
    io.run_for(k_wait);
    return out;
}

HttpReply Harness::post(const std::string& body, const std::string& session,
                        const std::string& version, const Client* who) const {
    return http("POST", "/mcp", mcp_headers(session, version), body, who);
}

std::string Harness::open_session(const std::string& version, const Client* who) const {
    const auto reply =
        post(R"({"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":")" +
                 version + R"(","capabilities":{},"clientInfo":{"name":"harness","version":"1"}}})",
             {}, {}, who);
    EXPECT_EQ(reply.status, 200U) << reply.error << reply.body;
    std::string session = reply.header("mcp-session-id");
    EXPECT_FALSE(session.empty());
    const auto ack =
        post(R"({"jsonrpc":"2.0","method":"notifications/initialized"})", session, version, who);
    EXPECT_EQ(ack.status, 202U) << ack.body;
    return session;
}

// ---- Stream --------------------------------------------------------------

struct Stream::Impl {
    asio::io_context io;
    asio::ssl::context ssl;
    TlsStream stream;
    beast::flat_buffer buffer;
    http::response_parser<http::buffer_body> parser;
    transport::SseParser sse{8U << 20U};
    std::deque<transport::SseEvent> pending;
    bool header_done = false;
    bool done = false;

    explicit Impl(SSL_CTX* ctx) : ssl(adopt(ctx)), stream(beast::tcp_stream(io), ssl) {
        parser.body_limit(boost::none);
    }
    static asio::ssl::context adopt(SSL_CTX* ctx) {
        SSL_CTX_up_ref(ctx);
        return asio::ssl::context(ctx);
    }
};

Stream::Stream(const Harness& harness, const std::string& method,
               const std::vector<Header>& headers, const std::string& body, const Client* who)
    : impl_(std::make_unique<Impl>((who != nullptr ? *who : harness.client()).context.get())) {
    Impl& s = *impl_;
    asio::co_spawn(
        s.io,
        [&s, &harness, method, headers, body]() -> asio::awaitable<void> {
            if (auto err = co_await open_tls(s.stream, harness.port()); !err.empty()) {
                s.done = true;
                co_return;
            }
            auto req = make_request(method, "/mcp", headers, body);
            auto [wec, wn] = co_await http::async_write(s.stream, req, use);
            auto [rec, rn] = co_await http::async_read_header(s.stream, s.buffer, s.parser, use);
            s.header_done = !wec && !rec;
            s.done = !s.header_done;
        },
        asio::detached);
    s.io.run_for(k_wait);
    s.io.restart();
}

Stream::~Stream() = default;

unsigned Stream::status() const {
    return impl_->header_done ? impl_->parser.get().result_int() : 0;
}

std::string Stream::header(const std::string& name) const {
    if (!impl_->header_done) {
        return {};
    }
    const auto& res = impl_->parser.get();
    const auto it = res.find(name);
    return it == res.end() ? std::string{} : std::string(it->value());
}

std::vector<transport::SseEvent> Stream::events(std::size_t count,
                                                std::chrono::milliseconds timeout) {
    Impl& s = *impl_;
    std::vector<transport::SseEvent> out;
    const auto take = [&] {
        while (!s.pending.empty() && out.size() < count) {
            auto e = std::move(s.pending.front());
            s.pending.pop_front();
            if (!e.data.empty()) {
                out.push_back(std::move(e));
            }
        }
    };
    take();
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (out.size() < count && !s.done && std::chrono::steady_clock::now() < deadline) {
        bool progressed = false;
        asio::co_spawn(
            s.io,
            [&s, &progressed]() -> asio::awaitable<void> {
                std::array<char, 8192> chunk{};
                s.parser.get().body().data = chunk.data();
                s.parser.get().body().size = chunk.size();
                auto [ec, n] = co_await http::async_read_some(s.stream, s.buffer, s.parser, use);
                if (ec == http::error::need_buffer) {
                    ec = {};
                }
                const std::size_t got = chunk.size() - s.parser.get().body().size;
                std::vector<transport::SseEvent> events;
                (void)s.sse.feed(std::string_view(chunk.data(), got), events);
                for (auto& e : events) {
                    s.pending.push_back(std::move(e));
                }
                if (ec || s.parser.is_done()) {
                    s.done = true;
                }
                progressed = true;
            },
            asio::detached);
        s.io.run_for(deadline - std::chrono::steady_clock::now());
        s.io.restart();
        if (!progressed) {
            break;
        }
        take();
    }
    return out;
}

bool Stream::ended() const {
    return impl_->done;
}

const std::string& Stream::last_event_id() const {
    return impl_->sse.last_event_id();
}

void Stream::cut() {
    boost::system::error_code ignored;
    beast::get_lowest_layer(impl_->stream).socket().close(ignored);
    impl_->done = true;
}

// ---- McpClient -----------------------------------------------------------

struct McpClient::Impl {
    asio::io_context io;
    std::unique_ptr<transport::McpHttpClient> client;
    std::map<std::string, json::object> responses;  // by id text
    std::vector<json::object> received;
    std::function<json::object(const json::object&)> answer;
    json::object capabilities;
    std::int64_t next_id = 1;
    std::string version;

    bool run_until(const std::function<bool()>& done, std::chrono::milliseconds timeout) {
        const auto deadline = std::chrono::steady_clock::now() + timeout;
        while (!done() && std::chrono::steady_clock::now() < deadline) {
            io.run_for(std::chrono::milliseconds{20});
            io.restart();
        }
        return done();
    }
};

McpClient::McpClient(const Harness& harness, const Client* who, json::object capabilities)
    : impl_(std::make_unique<Impl>()) {
    Impl& s = *impl_;
    s.capabilities = std::move(capabilities);
    transport::HttpClientOptions o;
    o.url = *transport::parse_url(harness.url());
    o.tls = (who != nullptr ? *who : harness.client()).context.get();
    transport::HttpClientCallbacks cb;
    cb.on_message = [&s](mcp::Message m) {
        if (m.is_response()) {
            s.responses[mcp::id_text(m.id)] = std::move(m.body);
            return;
        }
        if (m.is_request()) {
            json::object reply =
                s.answer ? s.answer(m.body) : mcp::make_result(m.id, json::object{});
            reply["id"] = m.id;
            s.client->send(std::move(reply));
        }
        s.received.push_back(std::move(m.body));
    };
    cb.on_failure = [&s](const json::object& message, const Error& error,
                         const json::object* server) {
        const auto* id = message.if_contains("id");
        if (id != nullptr && message.contains("method")) {
            s.responses[mcp::id_text(*id)] =
                server != nullptr
                    ? *server
                    : mcp::make_error(*id, mcp::code::gateway_unreachable, error.message());
        }
    };
    s.client = std::make_unique<transport::McpHttpClient>(s.io.get_executor(), o, std::move(cb));
}

McpClient::~McpClient() {
    impl_->client.reset();
    impl_->io.poll();
}

json::object McpClient::initialize(const std::string& version) {
    impl_->version = version;
    auto result = request(
        "initialize",
        json::object{{"protocolVersion", version},
                     {"capabilities", impl_->capabilities},
                     {"clientInfo", json::object{{"name", "mcp-client"}, {"version", "1"}}}});
    notify("notifications/initialized");
    return result;
}

json::object McpClient::request(const std::string& method, json::object params,
                                std::chrono::milliseconds timeout) {
    Impl& s = *impl_;
    const std::int64_t id = s.next_id++;
    const std::string key = std::to_string(id);
    s.client->send(mcp::make_request(id, method, std::move(params)));
    if (!s.run_until([&] { return s.responses.contains(key); }, timeout)) {
        // Marked apart from any answer: a success has no error code either.
        return json::object{
            {"timed_out", true},
            {"error", json::object{{"code", 0}, {"message", "no response in time"}}}};
    }
    auto out = std::move(s.responses.at(key));
    s.responses.erase(key);
    return out;
}

std::vector<json::object> McpClient::concurrent(std::size_t count, const std::string& method,
                                                const json::object& params) {
    Impl& s = *impl_;
    std::vector<std::string> keys;
    for (std::size_t i = 0; i < count; ++i) {
        const std::int64_t id = s.next_id++;
        keys.push_back(std::to_string(id));
        s.client->send(mcp::make_request(id, method, params));
    }
    s.run_until(
        [&] {
            return std::all_of(keys.begin(), keys.end(),
                               [&](const std::string& k) { return s.responses.contains(k); });
        },
        k_wait);
    std::vector<json::object> out;
    for (const auto& k : keys) {
        const auto it = s.responses.find(k);
        out.push_back(it == s.responses.end() ? json::object{} : std::move(it->second));
        if (it != s.responses.end()) {
            s.responses.erase(it);
        }
    }
    return out;
}

void McpClient::notify(const std::string& method, json::object params) {
    impl_->client->send(mcp::make_notification(method, std::move(params)));
    impl_->run_until([] { return false; }, std::chrono::milliseconds{50});
}

const std::vector<json::object>& McpClient::received() const {
    return impl_->received;
}

bool McpClient::wait_for(const std::function<bool(const json::object&)>& pred,
                         std::chrono::milliseconds timeout) {
    return impl_->run_until(
        [&] {
            for (const auto& m : impl_->received) {
                if (pred(m)) {
                    return true;
                }
            }
            return false;
        },
        timeout);
}

void McpClient::on_request(std::function<json::object(const json::object&)> answer) {
    impl_->answer = std::move(answer);
}

bool McpClient::has_response(std::int64_t id) const {
    return impl_->responses.contains(std::to_string(id));
}

std::string McpClient::session_id() const {
    return impl_->client->session_id();
}

void McpClient::close() {
    bool done = false;
    impl_->client->close([&done] { done = true; });
    impl_->run_until([&] { return done; }, std::chrono::seconds{5});
}

}  // namespace pqmcp::gateway::test
