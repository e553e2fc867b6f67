// The metrics listener (`pqmcp serve --metrics HOST:PORT`): plain HTTP/1.1 on
// its own port, GET /metrics answered with the Prometheus text exposition.
// Runs on the io_context it is given; every read is bounded in size and time.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include <boost/asio/io_context.hpp>

#include "pqmcp/core/error.hpp"

namespace pqmcp::observe {

struct MetricsServerOptions {
    std::string host = "127.0.0.1";  // numeric address
    std::uint16_t port = 9464;       // 0: ephemeral
    std::size_t max_connections = 64;
    // The body of GET /metrics, made on the io_context's thread.
    std::function<std::string()> render;
};

class MetricsServer final {
  public:
    MetricsServer(boost::asio::io_context& io, MetricsServerOptions options);
    ~MetricsServer();
    MetricsServer(const MetricsServer&) = delete;
    MetricsServer& operator=(const MetricsServer&) = delete;
    MetricsServer(MetricsServer&&) = delete;
    MetricsServer& operator=(MetricsServer&&) = delete;

    // Binds and starts accepting; returns the bound port. Errors carry
    // std::errc (address in use, not a numeric address).
    [[nodiscard]] Result<std::uint16_t> start();
    void stop();  // idempotent

    struct Impl;

  private:
    std::shared_ptr<Impl> impl_;
};

}  // namespace pqmcp::observe
