// Admission of connections on one shard, driven by hand: a burst of
// admissions the shard has not started serving yet counts against the
// limits, connections evicted to make room (closed, their coroutines not
// run yet) count against none, and a connection is refused only when every
// one held is at work.
#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include "http_server_impl.hpp"
#include "server_identity.hpp"

namespace pqmcp::transport {
namespace {

using Phase = HttpServer::Impl::Phase;

class Admission : public ::testing::Test {
  protected:
    void SetUp() override {
        ASSERT_NO_FATAL_FAILURE(test::make_server_identity(crypto::SigAlg::ml_dsa_44, served_));

        HttpServerOptions options;
        options.limits.max_connections = 8;
        options.limits.max_handshakes_per_address = 4;
        auto group = std::make_shared<ServerGroup>(1);
        server_ = std::make_shared<HttpServer::Impl>(io_, served_.context->native_handle(), options,
                                                     group, 0);
        group->shards.push_back(server_);
        acceptor_.open(tcp::v4());
        acceptor_.bind({asio::ip::make_address("127.0.0.1"), 0});
        acceptor_.listen();
    }

    void TearDown() override {
        server_->stop_here();
        io_.poll();
        EXPECT_TRUE(server_->connections.empty());
        EXPECT_EQ(server_->closing, 0U);
        EXPECT_TRUE(server_->handshaking.empty());
    }

    // Admits a new connection as the accept loop does, from `address`
    // (any label: the limits only compare them). The client's end stays
    // open, silent, in clients_.
    void admit(const std::string& address) {
        clients_.emplace_back(io_);
        clients_.back().connect(acceptor_.local_endpoint());
        server_->admit(acceptor_.accept(), address);
    }

    // Client ends whose connection the server closed (a read sees it at once).
    std::size_t closed_by_server() {
        std::size_t closed = 0;
        for (auto& c : clients_) {
            c.non_blocking(true);
            std::array<char, 1> byte{};
            boost::system::error_code ec;
            const auto n = c.read_some(asio::buffer(byte), ec);
            if (ec != asio::error::would_block && n == 0) {
                ++closed;
            }
        }
        return closed;
    }

    std::size_t handshaking(const std::string& address) const {
        const auto it = server_->handshaking.find(address);
        return it == server_->handshaking.end() ? 0 : it->second;
    }

    asio::io_context io_;
    test::ServerIdentity served_;
    std::shared_ptr<HttpServer::Impl> server_;
    tcp::acceptor acceptor_{io_};
    std::vector<tcp::socket> clients_;
};

TEST_F(Admission, ABurstFromOneAddressKeepsItsNewestHandshakesAndRefusesNone) {
    // 24 admissions in a row, none of them served yet (the shard is busy):
    // each beyond the fourth evicts the oldest, although the evicted ones'
    // coroutines have not run.
    for (int i = 0; i < 24; ++i) {
        admit("192.0.2.1");
    }
    EXPECT_EQ(server_->live(), 4U);
    EXPECT_EQ(handshaking("192.0.2.1"), 4U);
    EXPECT_EQ(server_->evicted, 20U);
    EXPECT_EQ(server_->refused, 0U);
    EXPECT_EQ(server_->connection_count, 4U);
    // Once the shard runs, the evicted ones end and leave the table.
    io_.poll();
    EXPECT_EQ(server_->connections.size(), 4U);
    EXPECT_EQ(server_->closing, 0U);
    EXPECT_EQ(closed_by_server(), 20U);
}

TEST_F(Admission, EvictedConnectionsWaitingForTheirCoroutineMakeRoomAtTheLimit) {
    for (int i = 0; i < 8; ++i) {
        admit("198.51.100." + std::to_string(i));
    }
    io_.poll();
    EXPECT_EQ(server_->live(), 8U);
    // 16 more from new addresses while the shard is busy: each takes the
    // place of the oldest handshake; none is refused because earlier
    // evictions have not been reaped yet.
    for (int i = 0; i < 16; ++i) {
        admit("203.0.113." + std::to_string(i));
    }
    EXPECT_EQ(server_->live(), 8U);
    EXPECT_EQ(server_->closing, 16U);
    EXPECT_EQ(server_->evicted, 16U);
    EXPECT_EQ(server_->refused, 0U);
    for (int i = 0; i < 8; ++i) {
        EXPECT_EQ(handshaking("198.51.100." + std::to_string(i)), 0U) << i;
        EXPECT_EQ(handshaking("203.0.113." + std::to_string(i)), 0U) << i;
        EXPECT_EQ(handshaking("203.0.113." + std::to_string(i + 8)), 1U) << i;
    }
    io_.poll();
    EXPECT_EQ(server_->connections.size(), 8U);
    EXPECT_EQ(closed_by_server(), 16U);
}

TEST_F(Admission, IsRefusedOnlyWhenEveryConnectionIsAtWork) {
    for (int i = 0; i < 8; ++i) {
        admit("198.51.100." + std::to_string(i));
    }
    io_.poll();
    for (auto& [tcp, c] : server_->connections) {
        server_->set_phase(tcp, Phase::busy);
    }
    EXPECT_TRUE(server_->handshaking.empty());
    admit("203.0.113.1");
    EXPECT_EQ(server_->refused, 1U);
    EXPECT_EQ(server_->evicted, 0U);
    EXPECT_EQ(server_->live(), 8U);
    EXPECT_EQ(closed_by_server(), 1U);
    // One idle again: the next arrival takes its place.
    server_->set_phase(server_->connections.begin()->first, Phase::idle);
    admit("203.0.113.2");
    EXPECT_EQ(server_->refused, 1U);
    EXPECT_EQ(server_->evicted, 1U);
    EXPECT_EQ(server_->live(), 8U);
    io_.poll();
    EXPECT_EQ(closed_by_server(), 2U);
}

TEST_F(Admission, AConnectionNeverServedKeepsItsShardUntilItsFrameGoes) {
    std::weak_ptr<HttpServer::Impl> weak;
    {
        asio::io_context io;
        auto group = std::make_shared<ServerGroup>(1);
        auto server = std::make_shared<HttpServer::Impl>(io, served_.context->native_handle(),
                                                         HttpServerOptions{}, group, 0);
        group->shards.push_back(server);
        tcp::socket client(io);
        client.connect(acceptor_.local_endpoint());
        server->admit(acceptor_.accept(io), "192.0.2.9");
        weak = server;
        server.reset();
        // The server is gone; the admitted connection's coroutine never ran.
        EXPECT_FALSE(weak.expired());
    }  // the io_context goes with the coroutine's frame, and the shard with it
    EXPECT_TRUE(weak.expired());
}

}  // namespace
}  // namespace pqmcp::transport
