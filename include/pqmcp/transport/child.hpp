// A child process speaking newline-delimited messages on its stdin/stdout (an
// MCP server run over stdio), driven by an Asio executor.
//
// The child runs in its own process group so that everything it starts (npx
// runs node under a shell) is stopped with it. Stopping follows the MCP stdio
// shutdown sequence: close its stdin, wait, SIGTERM, wait, SIGKILL. The child
// is always reaped (no zombies), also when the handle is destroyed first.
#pragma once

#include <chrono>
#include <cstddef>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <boost/asio/any_io_executor.hpp>

#include "pqmcp/core/error.hpp"
#include "pqmcp/transport/errors.hpp"

namespace pqmcp::transport {

struct ChildSpec {
    std::string command;  // looked up in PATH when it has no '/'
    std::vector<std::string> args;
    // Added to (or replacing in) the gateway's own environment.
    std::vector<std::pair<std::string, std::string>> env;
    bool inherit_env = true;
    std::filesystem::path cwd;  // empty: the gateway's
    std::size_t max_line = 4U << 20U;
    std::size_t max_stdin_queue = 16U << 20U;     // bytes queued for a child that does not read
    std::chrono::milliseconds stop_grace{2'000};  // after closing stdin, and after SIGTERM
    // Called once the child has been reaped, even after its handle was
    // destroyed (the owner counts running children with it).
    std::function<void()> on_reaped;
};

struct ChildCallbacks {
    std::function<void(std::string line)> on_line;         // a line from stdout
    std::function<void(Error error)> on_line_error;        // a stdout line over max_line (skipped)
    std::function<void(std::string line)> on_stderr_line;  // a line from stderr
    // Once, after the child has been reaped: "exited with status 1", "killed by signal 9".
    std::function<void(std::string how)> on_exit;
};

class ChildProcess final {
  public:
    // Starts the child. Errors: spawn_failed (with the reason).
    [[nodiscard]] static Result<std::unique_ptr<ChildProcess>> spawn(
        const boost::asio::any_io_executor& executor, const ChildSpec& spec,
        ChildCallbacks callbacks);

    // Stops the child (stop()) if it still runs; callbacks are not called any more.
    ~ChildProcess();
    ChildProcess(const ChildProcess&) = delete;
    ChildProcess& operator=(const ChildProcess&) = delete;
    ChildProcess(ChildProcess&&) = delete;
    ChildProcess& operator=(ChildProcess&&) = delete;

    // Queues `line` and a newline for the child's stdin. False if stdin is
    // closed or the queue is over max_stdin_queue (the line is dropped).
    bool write(std::string line);
    // Starts the shutdown sequence; on_exit follows.
    void stop();
    [[nodiscard]] int pid() const noexcept;
    [[nodiscard]] bool running() const noexcept;

    struct State;  // shared with the running I/O operations

  private:
    explicit ChildProcess(std::shared_ptr<State> state) : state_(std::move(state)) {}
    std::shared_ptr<State> state_;
};

}  // namespace pqmcp::transport
