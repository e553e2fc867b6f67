// tools/call round trips against an MCP server, `concurrency` in flight:
// initialize, a warm-up, then the measured calls, each one's latency kept.
// Transport-neutral: the caller hands messages to `send` and the server's
// messages to on_message(). Used by `pqmcp bench --gateway` and bench_mcp.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include <boost/json/object.hpp>

#include "pqmcp/mcp/jsonrpc.hpp"

namespace pqmcp::measure {

struct CallOptions {
    std::string tool = "echo";
    std::string arguments;  // JSON object; empty: the demo tools' own
    std::size_t requests = 2000;
    std::size_t concurrency = 1;
    std::size_t warmup = 200;
    std::string client_name = "pqmcp-bench";
};

struct CallResults {
    std::vector<double> latencies_us;  // measured calls, sorted
    double seconds = 0;                // wall clock of the measured calls
    std::size_t done = 0;
    std::size_t errors = 0;  // JSON-RPC errors and results with isError
    std::string first_error;
    [[nodiscard]] double percentile(double p) const;  // 0 when nothing was measured
    [[nodiscard]] double rate() const;
};

class CallDriver {
  public:
    using Send = std::function<void(boost::json::object)>;
    // `arguments` must parse as a JSON object (checked by the caller);
    // `finished` runs once, when the last measured call is answered.
    CallDriver(CallOptions options, Send send, std::function<void()> finished);

    void start();  // sends initialize
    void on_message(const mcp::Message& message);
    [[nodiscard]] bool finished() const noexcept;
    [[nodiscard]] CallResults results() const;

  private:
    using Clock = std::chrono::steady_clock;
    enum class Phase { init, warmup, measure, done };
    void fill();

    CallOptions options_;
    Send send_;
    std::function<void()> finished_;
    boost::json::object arguments_;
    Phase phase_ = Phase::init;
    std::map<std::int64_t, Clock::time_point> sent_;
    std::int64_t next_id_ = 1;
    std::size_t issued_ = 0;
    std::size_t done_ = 0;
    std::size_t errors_ = 0;
    std::string first_error_;
    std::vector<double> latencies_;
    Clock::time_point start_;
    Clock::time_point end_;
};

}  // namespace pqmcp::measure
