// A child process speaking newline-delimited messages on its stdin/stdout (an
// MCP server run over stdio), driven by an Asio executor.
//
// The child runs in its own process group so that everything it starts (npx
// runs node under a shell) is stopped with it. Stopping follows the MCP stdio
// shutdown sequence: close its stdin, wait, SIGTERM, wait, SIGKILL. The child
// is always reaped (no zombies), also when the handle is destroyed first.
//
// It gets descriptors 0, 1 and 2 and nothing else (every other descriptor is
// closed between fork and exec, whatever its close-on-exec flag), exactly
// the environment the spec gives, default signal dispositions, and, when the
// spec has one, the sandbox (pqmcp/sandbox/sandbox.hpp) applied before exec.
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
#include "pqmcp/sandbox/sandbox.hpp"
#include "pqmcp/transport/errors.hpp"

namespace pqmcp::transport {

using Environment = std::vector<std::pair<std::string, std::string>>;

// PATH, HOME and LANG of the gateway's own environment (LANG C.UTF-8 when it
// has none), and the variables named in `passthrough` that it has.
[[nodiscard]] Environment minimal_environment(const std::vector<std::string>& passthrough = {});

// `command` as execve(2) needs it: unchanged when it has a '/', else the
// first executable file of that name in `search_path` (a PATH value).
// Errors: spawn_failed ("not found in PATH").
[[nodiscard]] Result<std::filesystem::path> find_executable(std::string_view command,
                                                            std::string_view search_path);

struct ChildSpec {
    std::string command;  // looked up in the PATH of `env` when it has no '/'
    std::vector<std::string> args;
    // The child's whole environment: nothing of the gateway's reaches it
    // unless it is here (see minimal_environment()).
    Environment env;
    std::filesystem::path cwd;  // empty: the gateway's
    // Applied between fork and exec when set (must outlive spawn()); the
    // notification listener it makes goes to `supervisor`, labelled `label`.
    const sandbox::Prepared* sandbox = nullptr;
    sandbox::Supervisor* supervisor = nullptr;
    std::string label;
    // How long spawn() waits for the child to reach exec.
    std::chrono::milliseconds exec_timeout{10'000};
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
