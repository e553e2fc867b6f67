// A man-in-the-middle TCP relay on loopback for one connection: it splits
// both directions into TLS records, lets the test inspect or modify each
// record, and can forward the client's first record one byte per TCP segment.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace pqmcp::tls::test {

enum class Direction { client_to_server, server_to_client };

class Relay final {
  public:
    // Called on the relay thread for every complete record (5-byte header
    // included), in order per direction; `index` counts records per direction.
    using Hook =
        std::function<void(Direction, std::size_t index, std::vector<std::uint8_t>& record)>;

    struct Options {
        std::uint16_t upstream_port = 0;  // the real server on 127.0.0.1
        Hook hook;
        bool trickle_first_client_record = false;  // one byte per write, TCP_NODELAY
        std::chrono::milliseconds limit{20'000};   // the relay gives up after this
    };

    explicit Relay(Options options);
    ~Relay();
    Relay(const Relay&) = delete;
    Relay& operator=(const Relay&) = delete;

    [[nodiscard]] std::uint16_t port() const { return port_; }
    // Size of the client's first record (the ClientHello) and how many
    // write() calls carried it; valid after the connection ended (join()).
    [[nodiscard]] std::size_t first_client_record_size() const { return first_size_; }
    [[nodiscard]] std::size_t first_client_record_writes() const { return first_writes_; }
    void join();

  private:
    void run();

    Options options_;
    int listener_ = -1;
    std::uint16_t port_ = 0;
    std::size_t first_size_ = 0;
    std::size_t first_writes_ = 0;
    std::thread thread_;
};

}  // namespace pqmcp::tls::test
