// The server side's TLS stream (ServerTls over DeadlineSocket) against Asio's
// own ssl::stream as the client, on loopback: handshake, reads and gathered
// writes, a record bigger than the socket buffers, close_notify and a bare
// close, the deadline, and a socket closed under it.
#include <gtest/gtest.h>

#include <array>
#include <functional>
#include <future>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <boost/asio/bind_executor.hpp>
#include <boost/asio/connect.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/ssl/stream.hpp>

#include "pqmcp/tls/context.hpp"
#include "server_identity.hpp"
#include "server_tls.hpp"

namespace pqmcp::transport::detail {
namespace {

namespace ssl = boost::asio::ssl;
using ClientStream = ssl::stream<tcp::socket>;

class ServerTlsTest : public ::testing::Test {
  protected:
    void SetUp() override {
        ASSERT_NO_FATAL_FAILURE(test::make_server_identity(crypto::SigAlg::ml_dsa_65, served_));
        tls::ContextOptions client;
        client.verify.pinned = {served_.identity->id};
        auto client_ctx = tls::make_client_context(client);
        ASSERT_TRUE(client_ctx.has_value()) << client_ctx.error().message();
        client_ctx_ = std::make_unique<asio::ssl::context>(client_ctx->release());
    }

    // A connected pair: the server's socket and the client's TLS stream.
    std::pair<tcp::socket, std::unique_ptr<ClientStream>> connect_pair() {
        tcp::acceptor acceptor(io_, {asio::ip::make_address("127.0.0.1"), 0});
        auto client = std::make_unique<ClientStream>(io_, *client_ctx_);
        client->next_layer().connect(acceptor.local_endpoint());
        return {acceptor.accept(), std::move(client)};
    }

    // Runs the server's handshake and the client's at once.
    void handshake(ServerTls& server, ClientStream& client) {
        boost::system::error_code server_ec = asio::error::would_block;
        boost::system::error_code client_ec = asio::error::would_block;
        server.async_handshake(asio::ssl::stream_base::server,
                               [&](const boost::system::error_code& ec) { server_ec = ec; });
        client.async_handshake(asio::ssl::stream_base::client,
                               [&](const boost::system::error_code& ec) { client_ec = ec; });
        run();
        ASSERT_FALSE(server_ec) << server_ec.message();
        ASSERT_FALSE(client_ec) << client_ec.message();
    }

    void run() {
        io_.restart();
        io_.run_for(std::chrono::seconds{20});
    }

    asio::io_context io_;
    test::ServerIdentity served_;
    std::unique_ptr<asio::ssl::context> client_ctx_;
};

TEST_F(ServerTlsTest, ReadsAndGatheredWritesBothWays) {
    auto [socket, client] = connect_pair();
    ServerTls server(std::move(socket), *served_.context);
    handshake(server, *client);

    // Client to server.
    const std::string request = "GET / HTTP/1.1\r\n\r\n";
    asio::write(*client, asio::buffer(request));
    std::string got(64, '\0');
    std::size_t read = 0;
    server.async_read_some(asio::buffer(got),
                           [&](const boost::system::error_code& ec, std::size_t n) {
                               EXPECT_FALSE(ec) << ec.message();
                               read = n;
                           });
    run();
    EXPECT_EQ(got.substr(0, read), request);

    // Server to client: three buffers gathered into one write.
    const std::string a = "HTTP/1.1 200 OK\r\n";
    const std::string b = "Content-Length: 2\r\n\r\n";
    const std::string c = "ok";
    const std::vector<asio::const_buffer> parts{asio::buffer(a), asio::buffer(b), asio::buffer(c)};
    std::size_t written = 0;
    server.async_write_some(parts, [&](const boost::system::error_code& ec, std::size_t n) {
        EXPECT_FALSE(ec) << ec.message();
        written = n;
    });
    run();
    EXPECT_EQ(written, a.size() + b.size() + c.size());
    std::string reply(written, '\0');
    asio::read(*client, asio::buffer(reply));
    EXPECT_EQ(reply, a + b + c);
}

TEST_F(ServerTlsTest, AWriteLargerThanTheSocketBuffersWaitsForTheReader) {
    auto [socket, client] = connect_pair();
    socket.set_option(asio::socket_base::send_buffer_size(16 * 1024));
    ServerTls server(std::move(socket), *served_.context);
    handshake(server, *client);
    // 4 MiB: far more than the kernel holds, so the server waits for
    // writability many times while the client reads.
    std::string big(4U << 20U, 'x');
    for (std::size_t i = 0; i < big.size(); i += 4099) {
        big[i] = static_cast<char>('a' + (i % 26));
    }
    std::size_t sent = 0;
    std::function<void()> send_more = [&] {
        server.async_write_some(asio::buffer(big.data() + sent, big.size() - sent),
                                [&](const boost::system::error_code& ec, std::size_t n) {
                                    ASSERT_FALSE(ec) << ec.message();
                                    sent += n;
                                    if (sent < big.size()) {
                                        send_more();
                                    }
                                });
    };
    send_more();
    std::string received(big.size(), '\0');
    asio::async_read(
        *client, asio::buffer(received),
        [](const boost::system::error_code& ec, std::size_t) { EXPECT_FALSE(ec) << ec.message(); });
    run();
    EXPECT_EQ(sent, big.size());
    EXPECT_TRUE(received == big);
}

TEST_F(ServerTlsTest, CloseNotifyIsEofAndABareCloseIsTruncation) {
    {
        auto [socket, client] = connect_pair();
        ServerTls server(std::move(socket), *served_.context);
        handshake(server, *client);
        // The client sends close_notify and waits for ours; the server reads
        // end of stream, then answers with its own.
        boost::system::error_code client_ec = asio::error::would_block;
        client->async_shutdown([&](const boost::system::error_code& ec) { client_ec = ec; });
        std::array<char, 16> buf{};
        boost::system::error_code read_ec;
        boost::system::error_code shutdown_ec = asio::error::would_block;
        server.async_read_some(
            asio::buffer(buf), [&](const boost::system::error_code& ec, std::size_t) {
                read_ec = ec;
                server.async_shutdown([&](const boost::system::error_code& e) { shutdown_ec = e; });
            });
        run();
        EXPECT_EQ(read_ec, asio::error::eof) << read_ec.message();
        EXPECT_FALSE(shutdown_ec) << shutdown_ec.message();
        EXPECT_FALSE(client_ec) << client_ec.message();
    }
    {
        auto [socket, client] = connect_pair();
        ServerTls server(std::move(socket), *served_.context);
        handshake(server, *client);
        // No close_notify: the client's side just ends (its unread tickets
        // would make a close a reset, which is another error).
        client->next_layer().shutdown(tcp::socket::shutdown_send);
        std::array<char, 16> buf{};
        boost::system::error_code read_ec;
        server.async_read_some(asio::buffer(buf), [&](const boost::system::error_code& ec,
                                                      std::size_t) { read_ec = ec; });
        run();
        EXPECT_EQ(read_ec, asio::ssl::error::stream_truncated) << read_ec.message();
    }
}

TEST_F(ServerTlsTest, ShutdownDrainsWhatThePeerStillSendsSoTheLastResponseArrives) {
    // A server refusing a large body answers at once and closes (a 413):
    // the connection is destroyed as soon as the shutdown ends, while the
    // client is still sending. Closing with its input unread would reset the
    // connection and could destroy the answer before the client reads it.
    auto [socket, client] = connect_pair();
    auto server = std::make_unique<ServerTls>(std::move(socket), *served_.context);
    handshake(*server, *client);
    // (clang does not let a lambda capture a structured binding)
    ClientStream& peer = *client;
    server->next_layer().expires_after(std::chrono::seconds{10});
    const std::string answer = "HTTP/1.1 413 Payload Too Large\r\nConnection: close\r\n\r\n";
    const std::string body(4U << 20U, 'b');
    boost::system::error_code client_write = asio::error::would_block;
    boost::system::error_code client_read = asio::error::would_block;
    boost::system::error_code shutdown_ec = asio::error::would_block;
    std::string reply(answer.size(), '\0');
    asio::async_write(
        *client, asio::buffer(body), [&](const boost::system::error_code& ec, std::size_t) {
            client_write = ec;
            asio::async_read(peer, asio::buffer(reply),
                             [&](const boost::system::error_code& e, std::size_t) {
                                 client_read = e;
                                 peer.async_shutdown([](const boost::system::error_code&) {});
                             });
        });
    server->async_write_some(asio::buffer(answer),
                             [&](const boost::system::error_code& ec, std::size_t) {
                                 ASSERT_FALSE(ec) << ec.message();
                                 server->async_shutdown([&](const boost::system::error_code& e) {
                                     shutdown_ec = e;
                                     server.reset();  // the socket closes now
                                 });
                             });
    run();
    EXPECT_FALSE(client_write) << client_write.message();
    EXPECT_FALSE(client_read) << client_read.message();
    EXPECT_EQ(reply, answer);
    EXPECT_FALSE(shutdown_ec) << shutdown_ec.message() << " " << shutdown_ec.category().name();
}

TEST_F(ServerTlsTest, TheDeadlineEndsAWaitingReadAndClosesTheSocket) {
    auto [socket, client] = connect_pair();
    ServerTls server(std::move(socket), *served_.context);
    handshake(server, *client);
    server.next_layer().expires_after(std::chrono::milliseconds{100});
    std::array<char, 16> buf{};
    boost::system::error_code read_ec;
    const auto start = std::chrono::steady_clock::now();
    server.async_read_some(asio::buffer(buf),
                           [&](const boost::system::error_code& ec, std::size_t) { read_ec = ec; });
    run();
    EXPECT_EQ(read_ec, boost::beast::error::timeout) << read_ec.message();
    EXPECT_GE(std::chrono::steady_clock::now() - start, std::chrono::milliseconds{100});
    EXPECT_FALSE(server.next_layer().socket().is_open());
    // Past the deadline, a new operation ends at once the same way.
    boost::system::error_code again;
    server.async_read_some(asio::buffer(buf),
                           [&](const boost::system::error_code& ec, std::size_t) { again = ec; });
    run();
    EXPECT_EQ(again, boost::beast::error::timeout);
    // A new deadline, and expires_never, clear it.
    server.next_layer().expires_never();
    EXPECT_FALSE(server.next_layer().expired());
}

TEST_F(ServerTlsTest, ADeadlineThatPassesBetweenOperationsClosesNothing) {
    // As beast::tcp_stream: a write's deadline that passes while the
    // connection waits for something else (an SSE stream between events)
    // does not end the connection; the next operation, if still past it, fails.
    auto [socket, client] = connect_pair();
    ServerTls server(std::move(socket), *served_.context);
    handshake(server, *client);
    server.next_layer().expires_after(std::chrono::milliseconds{50});
    const std::string event = "data: 1\n\n";
    boost::system::error_code write_ec = asio::error::would_block;
    server.async_write_some(asio::buffer(event), [&](const boost::system::error_code& ec,
                                                     std::size_t) { write_ec = ec; });
    run();
    EXPECT_FALSE(write_ec) << write_ec.message();
    asio::steady_timer later(io_, std::chrono::milliseconds{150});
    later.async_wait([](const boost::system::error_code&) {});
    run();
    EXPECT_TRUE(server.next_layer().socket().is_open());
    // Still past it: the next write fails at once, as with Beast.
    server.async_write_some(asio::buffer(event), [&](const boost::system::error_code& ec,
                                                     std::size_t) { write_ec = ec; });
    run();
    EXPECT_EQ(write_ec, boost::beast::error::timeout);
}

TEST_F(ServerTlsTest, ASocketClosedUnderTheStreamReadsAndWritesNothing) {
    auto [socket, client] = connect_pair();
    ServerTls server(std::move(socket), *served_.context);
    handshake(server, *client);
    // Closed (as eviction does) while the client still has data on the way:
    // the stream must not touch whatever descriptor has that number next.
    server.next_layer().socket().close();
    tcp::acceptor other(io_, {asio::ip::make_address("127.0.0.1"), 0});  // likely the same number
    const std::string secret = "not for this stream";
    std::size_t written = 1;
    boost::system::error_code write_ec;
    server.async_write_some(asio::buffer(secret),
                            [&](const boost::system::error_code& ec, std::size_t n) {
                                write_ec = ec;
                                written = n;
                            });
    run();
    EXPECT_TRUE(write_ec);
    EXPECT_EQ(written, 0U);
    EXPECT_TRUE(other.is_open());
}

TEST_F(ServerTlsTest, OneOperationAtATime) {
    auto [socket, client] = connect_pair();
    ServerTls server(std::move(socket), *served_.context);
    handshake(server, *client);
    std::array<char, 16> buf{};
    boost::system::error_code first = asio::error::would_block;
    boost::system::error_code second = asio::error::would_block;
    server.async_read_some(asio::buffer(buf),
                           [&](const boost::system::error_code& ec, std::size_t) { first = ec; });
    server.async_read_some(asio::buffer(buf),
                           [&](const boost::system::error_code& ec, std::size_t) { second = ec; });
    io_.restart();
    io_.run_for(std::chrono::milliseconds{100});
    EXPECT_EQ(second, asio::error::in_progress);
    EXPECT_EQ(first, asio::error::would_block);  // still waiting for the client
    asio::write(*client, asio::buffer(std::string("x")));
    run();
    EXPECT_FALSE(first) << first.message();
}

TEST_F(ServerTlsTest, UsedFromAnotherThreadThanItsSocketsItLosesNoReadiness) {
    // The socket belongs to io_ (thread A, which runs its reactor); the
    // operations are another shard's (thread B), as with a lent connection.
    auto [socket, client] = connect_pair();
    socket.set_option(asio::socket_base::send_buffer_size(8 * 1024));
    ServerTls server(std::move(socket), *served_.context);
    handshake(server, *client);
    asio::io_context other;
    auto guard_a = asio::make_work_guard(io_);
    auto guard_b = asio::make_work_guard(other);
    std::thread a([this] {
        io_.restart();
        io_.run();
    });
    std::thread b([&other] { other.run(); });
    std::string big(8U << 20U, 'y');
    std::size_t sent = 0;
    bool on_b = true;
    std::promise<boost::system::error_code> done;
    std::function<void()> send_more = [&] {
        server.async_write_some(
            asio::buffer(big.data() + sent, big.size() - sent),
            asio::bind_executor(other, [&](const boost::system::error_code& ec, std::size_t n) {
                on_b = on_b && other.get_executor().running_in_this_thread();
                sent += n;
                if (ec || sent == big.size()) {
                    done.set_value(ec);
                    return;
                }
                send_more();
            }));
    };
    asio::post(other, send_more);
    // The client reads in small bites, so the server waits for room often.
    std::string received;
    std::array<char, 3000> bite{};
    boost::system::error_code read_ec;
    while (received.size() < big.size() && !read_ec) {
        const std::size_t n = client->read_some(asio::buffer(bite), read_ec);
        received.append(bite.data(), n);
    }
    auto result = done.get_future();
    ASSERT_EQ(result.wait_for(std::chrono::seconds{20}), std::future_status::ready);
    EXPECT_FALSE(result.get());
    EXPECT_TRUE(on_b);
    EXPECT_EQ(received.size(), big.size());
    guard_a.reset();
    guard_b.reset();
    io_.stop();
    other.stop();
    a.join();
    b.join();
}

}  // namespace
}  // namespace pqmcp::transport::detail
