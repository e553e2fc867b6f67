#include "child_process.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>

extern char** environ;

namespace pqmcp::test {

ChildProcess::ChildProcess(std::vector<std::string> argv) {
    int in[2];
    int out[2];
    if (::pipe2(in, O_CLOEXEC) != 0 || ::pipe2(out, O_CLOEXEC) != 0) {
        throw std::runtime_error("pipe2 failed");
    }
    // Prepare everything the child needs before fork (no allocation after it).
    std::vector<char*> args;
    args.reserve(argv.size() + 1);
    for (auto& a : argv) {
        args.push_back(a.data());
    }
    args.push_back(nullptr);
    std::vector<char*> env;
    for (char** e = environ; *e != nullptr; ++e) {
        if (std::strncmp(*e, "LD_LIBRARY_PATH=", 16) != 0 &&
            std::strncmp(*e, "LD_PRELOAD=", 11) != 0) {
            env.push_back(*e);
        }
    }
    env.push_back(nullptr);

    pid_ = ::fork();
    if (pid_ < 0) {
        throw std::runtime_error("fork failed");
    }
    if (pid_ == 0) {
        ::dup2(in[0], STDIN_FILENO);
        ::dup2(out[1], STDOUT_FILENO);
        ::dup2(out[1], STDERR_FILENO);
        ::execve(args[0], args.data(), env.data());
        ::_exit(127);
    }
    ::close(in[0]);
    ::close(out[1]);
    stdin_fd_ = in[1];
    stdout_fd_ = out[0];
}

ChildProcess::~ChildProcess() {
    close_stdin();
    if (!exited_ && pid_ > 0) {
        ::kill(pid_, SIGKILL);
        int status = 0;
        ::waitpid(pid_, &status, 0);
    }
    if (stdout_fd_ >= 0) {
        ::close(stdout_fd_);
    }
}

bool ChildProcess::write_stdin(std::string_view data) {
    while (!data.empty() && stdin_fd_ >= 0) {
        const ssize_t n = ::write(stdin_fd_, data.data(), data.size());
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            return false;
        }
        data.remove_prefix(static_cast<std::size_t>(n));
    }
    return data.empty();
}

void ChildProcess::close_stdin() {
    if (stdin_fd_ >= 0) {
        ::close(stdin_fd_);
        stdin_fd_ = -1;
    }
}

bool ChildProcess::read_some(std::chrono::milliseconds timeout) {
    if (stdout_fd_ < 0) {
        return false;
    }
    pollfd p{stdout_fd_, POLLIN, 0};
    const int ready = ::poll(&p, 1, static_cast<int>(timeout.count()));
    if (ready <= 0) {
        return true;  // nothing yet
    }
    char buffer[4096];
    const ssize_t n = ::read(stdout_fd_, buffer, sizeof buffer);
    if (n <= 0) {
        ::close(stdout_fd_);
        stdout_fd_ = -1;
        return false;
    }
    output_.append(buffer, static_cast<std::size_t>(n));
    return true;
}

bool ChildProcess::wait_for_output(const std::function<bool(const std::string&)>& done,
                                   std::chrono::milliseconds timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (!done(output_)) {
        const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
            deadline - std::chrono::steady_clock::now());
        if (left.count() <= 0 || !read_some(left)) {
            return done(output_);
        }
    }
    return true;
}

std::optional<int> ChildProcess::wait(std::chrono::milliseconds timeout) {
    if (exited_) {
        return exit_status_;
    }
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    // A pidfd becomes readable when the child exits: poll it with the output.
    const int pidfd = static_cast<int>(::syscall(SYS_pidfd_open, pid_, 0));
    int status = 0;
    for (;;) {
        if (::waitpid(pid_, &status, WNOHANG) == pid_) {
            exited_ = true;
            break;
        }
        const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
            deadline - std::chrono::steady_clock::now());
        if (left.count() <= 0) {
            break;
        }
        pollfd fds[2] = {{pidfd, POLLIN, 0}, {stdout_fd_, POLLIN, 0}};
        const nfds_t count = stdout_fd_ >= 0 ? 2 : 1;
        if (::poll(fds, count, static_cast<int>(left.count())) > 0 && count == 2 &&
            (fds[1].revents & (POLLIN | POLLHUP)) != 0) {
            (void)read_some(std::chrono::milliseconds{0});
        }
    }
    if (pidfd >= 0) {
        ::close(pidfd);
    }
    if (!exited_) {
        ::kill(pid_, SIGKILL);
        ::waitpid(pid_, &status, 0);
        exited_ = true;
        exit_status_ = std::nullopt;
        return exit_status_;
    }
    // Whatever is still in the pipe.
    while (stdout_fd_ >= 0 && read_some(std::chrono::milliseconds{0})) {
        pollfd p{stdout_fd_, POLLIN, 0};
        if (stdout_fd_ < 0 || ::poll(&p, 1, 0) <= 0) {
            break;
        }
    }
    exit_status_ = WIFEXITED(status) ? std::optional(WEXITSTATUS(status)) : std::nullopt;
    return exit_status_;
}

}  // namespace pqmcp::test
