// Shared fixtures of the tls tests: identities, a test CA, an in-process echo
// server on a thread, a fake ticket clock.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "../common/temp_dir.hpp"
#include "pqmcp/crypto/algorithms.hpp"
#include "pqmcp/identity/identity.hpp"
#include "pqmcp/tls/client.hpp"
#include "pqmcp/tls/context.hpp"
#include "pqmcp/tls/echo_server.hpp"

namespace pqmcp::tls::test {

inline constexpr auto k_wait = std::chrono::seconds{20};

// A fresh identity (self-signed, CN = peer id); aborts the test on failure.
identity::Identity make_identity(crypto::SigAlg alg);

// A CA key and self-signed CA certificate, and leaf certificates it issues.
struct TestCa {
    crypto::PkeyPtr key;
    crypto::X509Ptr certificate;
};
TestCa make_ca(crypto::SigAlg alg);
// An identity whose certificate is issued by `ca` (SAN: the given DNS names / IPs).
identity::Identity issue_identity(const TestCa& ca, crypto::SigAlg alg,
                                  const std::vector<std::string>& names);
void write_pem(const std::filesystem::path& file, X509* cert);

using TempDir = pqmcp::test::TempDir;

// A clock the test moves by hand (read from the server thread).
class FakeClock final {
  public:
    [[nodiscard]] TicketClock clock() const;
    void advance(std::chrono::seconds by) { offset_->fetch_add(by.count()); }

  private:
    std::chrono::steady_clock::time_point base_ = std::chrono::steady_clock::now();
    std::shared_ptr<std::atomic<long long>> offset_ = std::make_shared<std::atomic<long long>>(0);
};

// run_tls_echo_server on a thread; stopped and joined by the destructor.
class EchoServer final {
  public:
    explicit EchoServer(SSL_CTX* ctx,
                        std::chrono::milliseconds handshake_timeout = std::chrono::milliseconds{
                            10'000});
    ~EchoServer();
    EchoServer(const EchoServer&) = delete;
    EchoServer& operator=(const EchoServer&) = delete;

    [[nodiscard]] std::uint16_t port() const { return port_; }
    // Waits (bounded) until `n` handshakes have been reported; returns them all.
    [[nodiscard]] std::vector<HandshakeEvent> wait_for_events(std::size_t n);

  private:
    std::mutex mutex_;
    std::condition_variable changed_;
    std::vector<HandshakeEvent> events_;
    std::uint16_t port_ = 0;
    bool ready_ = false;
    Status result_;
    std::stop_source stop_;
    std::thread thread_;
};

struct Peers {
    identity::Identity server;
    identity::Identity client;
};

// Contexts for a mutually authenticated pair, each pinning the other.
struct ContextPair {
    crypto::SslCtxPtr server;
    crypto::SslCtxPtr client;
};
ContextPair make_pair(ProfileId profile, const Peers& peers, TicketOptions tickets = {});

ClientOptions with_payload(std::string payload = "hello, quantum world",
                           SSL_SESSION* resume = nullptr);

}  // namespace pqmcp::tls::test
