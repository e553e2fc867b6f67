// A child process (openssl s_client / s_server) with a stdin pipe and its
// stdout+stderr read through a pipe; killed and reaped by the destructor.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace pqmcp::test {

class ChildProcess final {
  public:
    // argv[0] is the program path. The child runs without LD_LIBRARY_PATH
    // (the bootstrap openssl finds its libraries through its rpath).
    explicit ChildProcess(std::vector<std::string> argv);
    ~ChildProcess();
    ChildProcess(const ChildProcess&) = delete;
    ChildProcess& operator=(const ChildProcess&) = delete;

    // Writes to the child's stdin (false if it is gone).
    bool write_stdin(std::string_view data);
    void close_stdin();

    // Reads output until `done(output)` holds or `timeout` passes or the child
    // closes its output; returns whether `done` held.
    bool wait_for_output(const std::function<bool(const std::string&)>& done,
                         std::chrono::milliseconds timeout);
    bool wait_for_text(std::string_view text, std::chrono::milliseconds timeout) {
        return wait_for_output(
            [text](const std::string& out) { return out.find(text) != std::string::npos; },
            timeout);
    }
    // Waits for exit (bounded; kills on timeout); returns the exit status or
    // nullopt if it had to be killed. Reads the rest of the output.
    std::optional<int> wait(std::chrono::milliseconds timeout);

    [[nodiscard]] const std::string& output() const { return output_; }

  private:
    // One poll + read of the output pipe (up to `timeout`); false at EOF.
    bool read_some(std::chrono::milliseconds timeout);

    pid_t pid_ = -1;
    int stdin_fd_ = -1;
    int stdout_fd_ = -1;
    bool exited_ = false;
    std::optional<int> exit_status_;
    std::string output_;
};

}  // namespace pqmcp::test
