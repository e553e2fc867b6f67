// The gateway stopping after sessions on both threads used an OpenAPI
// upstream whose API keeps connections alive: each thread's REST client
// holds an idle connection of that thread's context, and must close it
// before that context goes (under ASan, the old order was a use after free).
#include <gtest/gtest.h>

#include <atomic>
#include <fstream>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>
#include <boost/json/serialize.hpp>

#include "harness.hpp"

namespace pqmcp::gateway::test {
namespace {

namespace asio = boost::asio;
namespace http = boost::beast::http;
namespace json = boost::json;
using tcp = asio::ip::tcp;

// An HTTP/1.1 API on its own thread: every request gets 200 and a JSON
// object, and the connection stays open for the next.
class KeepAliveApi final {
  public:
    KeepAliveApi() : acceptor_(io_, {asio::ip::make_address("127.0.0.1"), 0}) {
        thread_ = std::thread([this] { accept_loop(); });
    }
    ~KeepAliveApi() {
        stopping_ = true;
        boost::system::error_code ignored;
        // Wakes the accept: a connection that is closed at once.
        tcp::socket poke(io_);
        poke.connect(acceptor_.local_endpoint(), ignored);
        poke.close(ignored);
        thread_.join();
        const std::lock_guard lock(mutex_);
        for (auto& s : sockets_) {
            s->shutdown(tcp::socket::shutdown_both, ignored);
        }
        for (auto& t : serving_) {
            t.join();
        }
    }
    KeepAliveApi(const KeepAliveApi&) = delete;
    KeepAliveApi& operator=(const KeepAliveApi&) = delete;
    KeepAliveApi(KeepAliveApi&&) = delete;
    KeepAliveApi& operator=(KeepAliveApi&&) = delete;

    [[nodiscard]] std::uint16_t port() const { return acceptor_.local_endpoint().port(); }
    [[nodiscard]] int requests() const { return requests_.load(); }

  private:
    void accept_loop() {
        while (!stopping_) {
            auto socket = std::make_shared<tcp::socket>(io_);
            boost::system::error_code ec;
            acceptor_.accept(*socket, ec);
            if (ec || stopping_) {
                return;
            }
            const std::lock_guard lock(mutex_);
            sockets_.push_back(socket);
            serving_.emplace_back([this, socket] { serve(*socket); });
        }
    }
    void serve(tcp::socket& socket) {
        boost::beast::flat_buffer buffer;
        for (;;) {
            http::request<http::string_body> req;
            boost::system::error_code ec;
            http::read(socket, buffer, req, ec);
            if (ec) {
                return;
            }
            ++requests_;
            http::response<http::string_body> res{http::status::ok, req.version()};
            res.set(http::field::content_type, "application/json");
            res.keep_alive(true);
            res.body() = R"({"id":7,"name":"kept"})";
            res.prepare_payload();
            http::write(socket, res, ec);
            if (ec) {
                return;
            }
        }
    }

    asio::io_context io_;
    tcp::acceptor acceptor_;
    std::atomic<bool> stopping_{false};
    std::atomic<int> requests_{0};
    std::mutex mutex_;
    std::vector<std::shared_ptr<tcp::socket>> sockets_;
    std::vector<std::thread> serving_;
    std::thread thread_;
};

constexpr const char* k_spec = R"({
  "openapi": "3.0.3",
  "info": {"title": "kept", "version": "1"},
  "paths": {"/item": {"get": {"operationId": "getItem",
    "responses": {"200": {"description": "the item",
      "content": {"application/json": {"schema": {"type": "object"}}}}}}}}
})";

TEST(GatewayShutdown, RestClientsOfEveryThreadCloseBeforeTheirThreadsGo) {
    KeepAliveApi api;
    const pqmcp::test::TempDir dir;
    const auto spec = dir.path() / "kept.json";
    std::ofstream(spec) << k_spec;
    UpstreamConfig upstream;
    upstream.name = "api";
    upstream.kind = UpstreamKind::openapi;
    upstream.openapi.spec = spec;
    upstream.openapi.base_url = "http://127.0.0.1:" + std::to_string(api.port());
    {
        Harness h({upstream});
        // A session is homed on the thread of its initialize's connection
        // (its id's first byte names it); connections are dealt in turn, so
        // a plain request in between moves the next session to the other.
        std::set<int> homes;
        for (int i = 0; i < 8 && homes.size() < 2; ++i) {
            McpClient c(h);
            c.initialize();
            const auto r = c.request("tools/call", json::object{{"name", "api__getItem"},
                                                                {"arguments", json::object{}}});
            ASSERT_TRUE(r.contains("result")) << json::serialize(r);
            EXPECT_FALSE(r.at("result").as_object().contains("isError") &&
                         r.at("result").at("isError").as_bool())
                << json::serialize(r);
            homes.insert(std::stoi(c.session_id().substr(0, 2), nullptr, 16) % 2);
            (void)h.http("GET", "/nowhere", {}, "");
        }
        EXPECT_EQ(homes.size(), 2U) << "the sessions did not reach both threads";
    }  // the gateway stops here, its REST clients holding idle connections
}

// Asked of a gateway that has stopped, stats() and reload_policy() answer at
// once that it does not serve (they used to wait forever on a handler that
// the stopped context would never run).
TEST(GatewayShutdown, CallsFromOtherThreadsAfterRunReturnedSayItDoesNotServe) {
    Harness h;
    const auto live = h.gateway().stats();
    ASSERT_TRUE(live) << live.error().message();
    EXPECT_TRUE(h.gateway().reload_policy());
    h.stop();
    const auto start = std::chrono::steady_clock::now();
    const auto stats = h.gateway().stats();
    ASSERT_FALSE(stats);
    EXPECT_EQ(stats.error().code, make_error_code(Errc::not_running));
    const auto reload = h.gateway().reload_policy();
    ASSERT_FALSE(reload);
    EXPECT_EQ(reload.error().code, make_error_code(Errc::not_running));
    EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds{5});
}

}  // namespace
}  // namespace pqmcp::gateway::test
