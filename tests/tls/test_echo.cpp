// The echo server's own bounds: handshake timeout, garbage, max_connections.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <future>
#include <thread>

#include <gtest/gtest.h>

#include "helpers.hpp"

namespace pqmcp::tls {
namespace {

using crypto::SigAlg;

// A plain TCP connection to 127.0.0.1:port (closed by the destructor).
class RawConnection final {
  public:
    explicit RawConnection(std::uint16_t port) : fd_(::socket(AF_INET, SOCK_STREAM, 0)) {
        sockaddr_in addr{};
        addr.sin_family = AF_INET;
        addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        addr.sin_port = htons(port);
        connected_ =
            fd_ >= 0 && ::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
    }
    ~RawConnection() {
        if (fd_ >= 0) {
            ::close(fd_);
        }
    }
    RawConnection(const RawConnection&) = delete;
    RawConnection& operator=(const RawConnection&) = delete;
    RawConnection(RawConnection&&) = delete;
    RawConnection& operator=(RawConnection&&) = delete;
    [[nodiscard]] bool connected() const { return connected_; }
    bool send(std::string_view data) {
        return ::send(fd_, data.data(), data.size(), MSG_NOSIGNAL) ==
               static_cast<ssize_t>(data.size());
    }

    // True if the peer closes the connection within `timeout` (recv returns 0
    // or a reset), false if it stays open that long.
    bool closed_by_peer(std::chrono::milliseconds timeout) {
        pollfd p{fd_, POLLIN, 0};
        if (::poll(&p, 1, static_cast<int>(timeout.count())) <= 0) {
            return false;
        }
        char byte = 0;
        return ::recv(fd_, &byte, 1, 0) <= 0;
    }

  private:
    int fd_;
    bool connected_ = false;
};

crypto::SslCtxPtr server_context(const identity::Identity& id) {
    ContextOptions o;
    o.identity = &id;
    o.verify.require_peer_certificate = false;
    auto ctx = make_server_context(o);
    EXPECT_TRUE(ctx.has_value()) << ctx.error().message();
    return ctx ? std::move(*ctx) : nullptr;
}

TEST(EchoServer, SilentClientHitsTheHandshakeTimeout) {
    const auto id = test::make_identity(SigAlg::ml_dsa_65);
    auto ctx = server_context(id);
    const auto timeout = std::chrono::milliseconds{300};
    test::EchoServer server(ctx.get(), timeout);
    RawConnection silent(server.port());
    ASSERT_TRUE(silent.connected());
    const auto start = std::chrono::steady_clock::now();
    const auto events = server.wait_for_events(1);
    const auto elapsed = std::chrono::steady_clock::now() - start;
    ASSERT_EQ(events.size(), 1U);
    ASSERT_FALSE(events[0].result.has_value());
    EXPECT_EQ(events[0].result.error().code, Errc::timeout);
    EXPECT_NE(events[0].result.error().detail.find("300 ms"), std::string::npos)
        << events[0].result.error().message();
    EXPECT_NE(events[0].remote.find("127.0.0.1:"), std::string::npos);
    EXPECT_LT(elapsed, std::chrono::seconds{5});
}

TEST(EchoServer, ConnectionsBeyondMaxConcurrentAreClosedAtOnce) {
    const auto id = test::make_identity(SigAlg::ml_dsa_65);
    auto ctx = server_context(id);
    std::promise<std::uint16_t> ready;
    auto port_future = ready.get_future();
    EchoServerOptions options;
    options.max_concurrent = 1;
    options.handshake_timeout = std::chrono::milliseconds{10'000};
    options.on_ready = [&ready](std::uint16_t p) { ready.set_value(p); };
    std::stop_source stop;
    Status served;
    std::thread thread([&] { served = run_tls_echo_server(ctx.get(), options, stop.get_token()); });
    ASSERT_EQ(port_future.wait_for(std::chrono::seconds{10}), std::future_status::ready);
    const std::uint16_t port = port_future.get();

    RawConnection first(port);  // holds the only slot: its handshake never starts
    ASSERT_TRUE(first.connected());
    RawConnection second(port);
    ASSERT_TRUE(second.connected());
    EXPECT_TRUE(second.closed_by_peer(std::chrono::seconds{5}));
    EXPECT_FALSE(first.closed_by_peer(std::chrono::milliseconds{100}));

    stop.request_stop();
    thread.join();
    EXPECT_TRUE(served.has_value());
}

TEST(EchoServer, GarbageIsAHandshakeError) {
    const auto id = test::make_identity(SigAlg::ml_dsa_65);
    auto ctx = server_context(id);
    test::EchoServer server(ctx.get());
    RawConnection http(server.port());
    ASSERT_TRUE(http.connected());
    ASSERT_TRUE(http.send("GET / HTTP/1.1\r\nHost: x\r\n\r\n"));
    const auto events = server.wait_for_events(1);
    ASSERT_EQ(events.size(), 1U);
    ASSERT_FALSE(events[0].result.has_value());
    EXPECT_EQ(events[0].result.error().code, Errc::handshake_failed);
    EXPECT_NE(events[0].result.error().detail.find("http request"), std::string::npos)
        << events[0].result.error().message();
}

TEST(EchoServer, MaxConnectionsEndsTheServer) {
    const auto id = test::make_identity(SigAlg::ml_dsa_65);
    auto ctx = server_context(id);
    ContextOptions co;
    co.verify.pinned = {id.id};
    auto client = make_client_context(co);
    ASSERT_TRUE(client.has_value());

    std::promise<std::uint16_t> ready;
    auto port = ready.get_future();
    EchoServerOptions options;
    options.max_connections = 2;
    options.on_ready = [&ready](std::uint16_t p) { ready.set_value(p); };
    std::stop_source stop;  // only used if the server fails to stop by itself
    std::packaged_task<Status()> run(
        [&] { return run_tls_echo_server(ctx.get(), options, stop.get_token()); });
    auto done = run.get_future();
    std::thread thread(std::move(run));
    ASSERT_EQ(port.wait_for(test::k_wait), std::future_status::ready);
    const std::uint16_t p = port.get();
    for (int i = 0; i < 2; ++i) {
        auto r = connect_once(client->get(), "127.0.0.1", p, test::with_payload());
        EXPECT_TRUE(r.has_value()) << r.error().message();
    }
    // Both connections served: the server returns by itself.
    const auto finished = done.wait_for(test::k_wait);
    if (finished != std::future_status::ready) {
        stop.request_stop();
    }
    thread.join();
    ASSERT_EQ(finished, std::future_status::ready) << "server did not stop after max_connections";
    EXPECT_TRUE(done.get().has_value());
}

TEST(EchoServer, ListenErrorsAreReported) {
    const auto id = test::make_identity(SigAlg::ml_dsa_65);
    auto ctx = server_context(id);
    EchoServerOptions options;
    options.host = "not-an-address";
    auto r = run_tls_echo_server(ctx.get(), options);
    ASSERT_FALSE(r.has_value());
    EXPECT_EQ(r.error().code, Errc::listen_failed);
}

}  // namespace
}  // namespace pqmcp::tls
