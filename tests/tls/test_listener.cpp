// The accept loop every listener shares: out of descriptors, it backs off and
// goes on accepting once one is free again; a callback's false ends it.
#include <gtest/gtest.h>

#include <fcntl.h>
#include <sys/resource.h>
#include <unistd.h>

#include <vector>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/connect.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>

#include "pqmcp/tls/listener.hpp"

namespace pqmcp::tls {
namespace {

namespace asio = boost::asio;
using asio::ip::tcp;

TEST(Listener, RefusesANonNumericHost) {
    asio::io_context io;
    tcp::acceptor acceptor(io);
    const auto port = listen_on(acceptor, "localhost", 0);
    ASSERT_FALSE(port);
    EXPECT_EQ(port.error(), "not a numeric address: localhost");
}

TEST(Listener, ListensCloseOnExecOnAChosenPort) {
    asio::io_context io;
    tcp::acceptor acceptor(io);
    const auto port = listen_on(acceptor, "127.0.0.1", 0);
    ASSERT_TRUE(port) << port.error();
    EXPECT_NE(*port, 0);
    EXPECT_NE(::fcntl(acceptor.native_handle(), F_GETFD) & FD_CLOEXEC, 0);
    // A port another socket listens on is refused (reuse_address does not
    // share a listening port), naming it.
    tcp::acceptor second(io);
    const auto taken = listen_on(second, "127.0.0.1", *port);
    ASSERT_FALSE(taken);
    EXPECT_EQ(taken.error().rfind("127.0.0.1:" + std::to_string(*port) + ": ", 0), 0U)
        << taken.error();
}

TEST(Listener, OutOfDescriptorsItBacksOffAndAcceptsLater) {
    asio::io_context io;
    tcp::acceptor acceptor(io);
    const auto port = listen_on(acceptor, "127.0.0.1", 0);
    ASSERT_TRUE(port) << port.error();
    tcp::socket client(io);
    client.connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), *port));

    // Every descriptor taken: the accept fails with EMFILE.
    rlimit old{};
    ASSERT_EQ(::getrlimit(RLIMIT_NOFILE, &old), 0);
    rlimit low = old;
    low.rlim_cur = 64;
    ASSERT_EQ(::setrlimit(RLIMIT_NOFILE, &low), 0);
    std::vector<int> held;
    for (int fd = ::dup(0); fd >= 0; fd = ::dup(0)) {
        held.push_back(fd);
    }
    int accepted = 0;
    int accepted_while_full = -1;
    bool cloexec = false;
    asio::co_spawn(io,
                   accept_each(acceptor,
                               [&](tcp::socket s) {
                                   ++accepted;
                                   cloexec =
                                       (::fcntl(s.native_handle(), F_GETFD) & FD_CLOEXEC) != 0;
                                   return false;  // one is enough
                               }),
                   asio::detached);
    asio::steady_timer wait(io, std::chrono::milliseconds{200});
    wait.async_wait([&](const boost::system::error_code&) {
        accepted_while_full = accepted;
        for (const int fd : held) {
            ::close(fd);  // descriptors free again
        }
        held.clear();
    });
    io.run_for(std::chrono::seconds{5});
    for (const int fd : held) {
        ::close(fd);
    }
    ASSERT_EQ(::setrlimit(RLIMIT_NOFILE, &old), 0);
    EXPECT_EQ(accepted_while_full, 0);  // the accept failed while every descriptor was taken
    EXPECT_EQ(accepted, 1);             // not lost meanwhile, and the loop ended on false
    EXPECT_TRUE(cloexec);
    EXPECT_TRUE(io.stopped());  // nothing left running: the loop ended
}

}  // namespace
}  // namespace pqmcp::tls
