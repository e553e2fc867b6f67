#include "pqmcp/transport/child.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <deque>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

#include "pqmcp/transport/line_io.hpp"

namespace pqmcp::transport {

namespace asio = boost::asio;

struct ChildProcess::State {
    explicit State(const asio::any_io_executor& executor)
        : out(executor), err(executor), in(executor), wake(executor), reap_timer(executor) {}

    asio::posix::stream_descriptor out;  // child's stdout
    asio::posix::stream_descriptor err;  // child's stderr
    asio::posix::stream_descriptor in;   // child's stdin
    asio::steady_timer wake;             // wakes the stdin writer
    asio::steady_timer reap_timer;
    ChildCallbacks callbacks;
    std::function<void()> on_reaped;
    pid_t pid = -1;
    std::size_t max_line = 0;
    std::size_t max_queue = 0;
    std::chrono::milliseconds grace{2'000};
    std::deque<std::string> queue;
    std::size_t queued_bytes = 0;
    bool stdin_open = true;
    bool reaping = false;
    bool exited = false;
};

namespace {

using State = ChildProcess::State;
constexpr auto use = asio::as_tuple(asio::use_awaitable);

std::string describe_status(int status) {
    if (WIFEXITED(status)) {
        return "exited with status " + std::to_string(WEXITSTATUS(status));
    }
    if (WIFSIGNALED(status)) {
        const int sig = WTERMSIG(status);
        const char* name = sigabbrev_np(sig);
        return "killed by signal " + std::to_string(sig) +
               (name != nullptr ? std::string(" (SIG") + name + ")" : std::string{});
    }
    return "ended (status " + std::to_string(status) + ")";
}

void close_stdin(State& s) {
    s.stdin_open = false;
    s.queue.clear();
    s.queued_bytes = 0;
    boost::system::error_code ignored;
    s.in.close(ignored);
    s.wake.cancel();
}

// Waits for the child to exit, escalating: after `grace` SIGTERM to its
// group, after another `grace` SIGKILL. Then reaps it and calls on_exit.
asio::awaitable<void> reap(std::shared_ptr<State> s) {
    using clock = std::chrono::steady_clock;
    const auto start = clock::now();
    int stage = 0;  // 0: waiting, 1: SIGTERM sent, 2: SIGKILL sent
    auto poll = std::chrono::milliseconds{5};
    for (;;) {
        siginfo_t info{};
        // Look without reaping, so the group can still be signalled by its id.
        if (waitid(P_PID, static_cast<id_t>(s->pid), &info, WEXITED | WNOHANG | WNOWAIT) == 0 &&
            info.si_pid == s->pid) {
            break;
        }
        const auto waited = clock::now() - start;
        if (stage == 0 && waited >= s->grace) {
            (void)::kill(-s->pid, SIGTERM);
            stage = 1;
        } else if (stage == 1 && waited >= 2 * s->grace) {
            (void)::kill(-s->pid, SIGKILL);
            stage = 2;
        }
        s->reap_timer.expires_after(poll);
        (void)co_await s->reap_timer.async_wait(use);
        poll = std::min(poll * 2, std::chrono::milliseconds{100});
    }
    // Whatever the child left behind in its group goes with it.
    (void)::kill(-s->pid, SIGKILL);
    int status = 0;
    while (::waitpid(s->pid, &status, 0) < 0 && errno == EINTR) {
    }
    s->exited = true;
    close_stdin(*s);
    if (s->callbacks.on_exit) {
        auto on_exit = std::move(s->callbacks.on_exit);
        on_exit(describe_status(status));
    }
    if (s->on_reaped) {
        auto on_reaped = std::move(s->on_reaped);
        on_reaped();
    }
}

void start_reaping(const std::shared_ptr<State>& s) {
    asio::co_spawn(s->reap_timer.get_executor(), reap(s), asio::detached);
}

asio::awaitable<void> read_lines(std::shared_ptr<State> s, bool from_stdout) {
    auto& descriptor = from_stdout ? s->out : s->err;
    // stderr lines are for the log: keep them short.
    LineSplitter splitter(from_stdout ? s->max_line : 8'192);
    std::vector<Result<std::string>> lines;
    std::array<char, 65'536> buffer{};
    for (;;) {
        auto [ec, n] = co_await descriptor.async_read_some(asio::buffer(buffer), use);
        if (ec) {
            break;
        }
        splitter.feed(std::string_view(buffer.data(), n), lines);
        for (auto& line : lines) {
            if (from_stdout && line && s->callbacks.on_line) {
                s->callbacks.on_line(std::move(*line));
            } else if (from_stdout && !line && s->callbacks.on_line_error) {
                s->callbacks.on_line_error(line.error());
            } else if (!from_stdout && s->callbacks.on_stderr_line) {
                s->callbacks.on_stderr_line(line ? std::move(*line)
                                                 : std::string("[a line over 8192 bytes]"));
            }
        }
        lines.clear();
    }
    if (auto last = splitter.finish(); last && *last) {
        if (from_stdout && s->callbacks.on_line) {
            s->callbacks.on_line(std::move(**last));
        } else if (!from_stdout && s->callbacks.on_stderr_line) {
            s->callbacks.on_stderr_line(std::move(**last));
        }
    }
    boost::system::error_code ignored;
    descriptor.close(ignored);
    if (from_stdout) {
        // No more messages can come: the child is finished for us.
        close_stdin(*s);
        if (!s->reaping) {
            s->reaping = true;
            start_reaping(s);
        }
    }
}

asio::awaitable<void> write_stdin(std::shared_ptr<State> s) {
    while (s->stdin_open) {
        if (s->queue.empty()) {
            s->wake.expires_at(asio::steady_timer::time_point::max());
            (void)co_await s->wake.async_wait(use);
            continue;
        }
        std::string line = std::move(s->queue.front());
        s->queue.pop_front();
        s->queued_bytes -= line.size();
        auto [ec, n] = co_await asio::async_write(s->in, asio::buffer(line), use);
        if (ec) {
            close_stdin(*s);  // EPIPE: the child closed its stdin or exited
        }
    }
}

struct Fds {
    std::array<int, 2> in{-1, -1};
    std::array<int, 2> out{-1, -1};
    std::array<int, 2> err{-1, -1};
    std::array<int, 2> report{-1, -1};  // child -> parent: the sandbox's listener, or why not
    ~Fds() {
        for (auto* pair : {&in, &out, &err, &report}) {
            for (int& fd : *pair) {
                if (fd >= 0) {
                    ::close(fd);
                }
            }
        }
    }
    Fds() = default;
    Fds(const Fds&) = delete;
    Fds& operator=(const Fds&) = delete;
    Fds(Fds&&) = delete;
    Fds& operator=(Fds&&) = delete;
};

int release(int& fd) {
    const int out = fd;
    fd = -1;
    return out;
}

void close_fd(int& fd) {
    if (fd >= 0) {
        ::close(fd);
        fd = -1;
    }
}

// A descriptor above 0-2, so that dup2 onto the standard ones never meets it
// (a gateway started with a standard descriptor closed gets them back from pipe()).
bool lift(int& fd) {
    if (fd > STDERR_FILENO) {
        return true;
    }
    const int moved = ::fcntl(fd, F_DUPFD_CLOEXEC, STDERR_FILENO + 1);
    if (moved < 0) {
        return false;
    }
    ::close(fd);
    fd = moved;
    return true;
}

// What the child writes on the report socket when a step fails.
struct Failure {
    char kind = 'E';
    int error = 0;
    std::array<char, 48> stage{};
};

[[noreturn]] void child_failed(int report, const char* stage, int error) noexcept {
    Failure f;
    f.error = error;
    for (std::size_t i = 0; i + 1 < f.stage.size() && stage[i] != '\0'; ++i) {
        f.stage[i] = stage[i];
    }
    (void)::send(report, &f, sizeof f, MSG_NOSIGNAL);
    ::_exit(127);
}

// Closes every descriptor from 3 up but the ones in `keep` (ascending, > 2).
void close_others(const std::array<int, 2>& keep, int max_fd) noexcept {
    unsigned int from = STDERR_FILENO + 1;
    for (const int k : keep) {
        if (k < 0 || static_cast<unsigned int>(k) < from) {
            continue;
        }
        if (static_cast<unsigned int>(k) > from &&
            ::syscall(SYS_close_range, from, static_cast<unsigned int>(k) - 1, 0U) != 0) {
            for (unsigned int fd = from; fd < static_cast<unsigned int>(k); ++fd) {
                (void)::close(static_cast<int>(fd));
            }
        }
        from = static_cast<unsigned int>(k) + 1;
    }
    if (::syscall(SYS_close_range, from, ~0U, 0U) != 0) {
        for (auto fd = static_cast<int>(from); fd < max_fd; ++fd) {
            (void)::close(fd);
        }
    }
}

// In the forked child: system calls only, then exec.
[[noreturn]] void run_child(Fds& fds, const char* exe, char* const* argv, char* const* envp,
                            const char* cwd, const sandbox::Prepared* box, int max_fd) noexcept {
    const int report = fds.report[1];
    // Default dispositions (ignored signals survive exec; the gateway ignores
    // SIGPIPE) and an empty mask.
    struct sigaction dfl {};
    dfl.sa_handler = SIG_DFL;
    for (int sig = 1; sig < NSIG; ++sig) {
        if (sig != SIGKILL && sig != SIGSTOP) {
            (void)::sigaction(sig, &dfl, nullptr);
        }
    }
    sigset_t empty;
    sigemptyset(&empty);
    (void)::sigprocmask(SIG_SETMASK, &empty, nullptr);
    // Its own process group, so that everything it starts stops with it.
    (void)::setpgid(0, 0);
    if (::dup2(fds.in[0], STDIN_FILENO) < 0 || ::dup2(fds.out[1], STDOUT_FILENO) < 0 ||
        ::dup2(fds.err[1], STDERR_FILENO) < 0) {
        child_failed(report, "dup2", errno);
    }
    // Nothing of the gateway's but 0-2: not its listener, not its clients'
    // connections, not its databases, whatever their close-on-exec flags say.
    std::array<int, 2> keep{report, box != nullptr ? box->ruleset_fd() : -1};
    if (keep[0] > keep[1]) {
        std::swap(keep[0], keep[1]);
    }
    close_others(keep, max_fd);
    if (cwd != nullptr && ::chdir(cwd) != 0) {
        child_failed(report, "chdir", errno);
    }
    if (box != nullptr) {
        const char* stage = "sandbox";
        if (const int err = sandbox::apply_in_child(*box, report, &stage); err != 0) {
            child_failed(report, stage, err);
        }
    }
    ::execve(exe, argv, envp);
    child_failed(report, "execve", errno);
}

// After fork: the child's fate up to exec. The report socket closes
// (close-on-exec) when exec succeeds. The sandbox's listener, when one comes,
// goes to `on_listener` at once: exec itself may wait for an answer from it.
struct Launch {
    std::string failure;  // "" once exec succeeded
};

Launch await_exec(int report, std::chrono::milliseconds timeout,
                  const std::function<void(int)>& on_listener) {
    Launch out;
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
        const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
            deadline - std::chrono::steady_clock::now());
        pollfd p{report, POLLIN, 0};
        const int ready = left.count() > 0 ? ::poll(&p, 1, static_cast<int>(left.count())) : 0;
        if (ready < 0 && errno == EINTR) {
            continue;
        }
        if (ready <= 0) {
            out.failure =
                "the child did not reach exec within " + std::to_string(timeout.count()) + " ms";
            return out;
        }
        Failure f;
        iovec iov{&f, sizeof f};
        alignas(cmsghdr) std::array<char, CMSG_SPACE(sizeof(int))> control{};
        msghdr msg{};
        msg.msg_iov = &iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control.data();
        msg.msg_controllen = control.size();
        const ssize_t n = ::recvmsg(report, &msg, MSG_CMSG_CLOEXEC);
        if (n == 0) {
            return out;  // closed by exec
        }
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            out.failure = std::string("reading the child's report: ") + std::strerror(errno);
            return out;
        }
        const cmsghdr* cmsg = CMSG_FIRSTHDR(&msg);
        if (f.kind == 'L' && cmsg != nullptr && cmsg->cmsg_type == SCM_RIGHTS) {
            int listener = -1;
            std::memcpy(&listener, CMSG_DATA(cmsg), sizeof(int));
            on_listener(listener);
            continue;
        }
        if (f.kind == 'E' && static_cast<std::size_t>(n) >= sizeof f) {
            f.stage.back() = '\0';
            out.failure = std::string(f.stage.data()) + ": " + std::strerror(f.error);
            return out;
        }
    }
}

}  // namespace

Environment minimal_environment(const std::vector<std::string>& passthrough) {
    Environment env;
    const auto take = [&env](const char* name, const char* fallback) {
        const char* value = std::getenv(name);  // NOLINT(concurrency-mt-unsafe): read-only use
        if (value != nullptr) {
            env.emplace_back(name, value);
        } else if (fallback != nullptr) {
            env.emplace_back(name, fallback);
        }
    };
    take("PATH", "/usr/local/bin:/usr/bin:/bin");
    take("HOME", nullptr);
    take("LANG", "C.UTF-8");
    for (const auto& name : passthrough) {
        const bool have = std::any_of(env.begin(), env.end(),
                                      [&name](const auto& kv) { return kv.first == name; });
        if (!have) {
            take(name.c_str(), nullptr);
        }
    }
    return env;
}

Result<std::filesystem::path> find_executable(std::string_view command,
                                              std::string_view search_path) {
    if (command.empty()) {
        return fail(Errc::spawn_failed, "no command");
    }
    if (command.find('/') != std::string_view::npos) {
        return std::filesystem::path(command);
    }
    std::size_t start = 0;
    while (start <= search_path.size()) {
        auto end = search_path.find(':', start);
        if (end == std::string_view::npos) {
            end = search_path.size();
        }
        const std::string_view dir = search_path.substr(start, end - start);
        const std::filesystem::path candidate =
            std::filesystem::path(dir.empty() ? "." : std::string(dir)) / std::string(command);
        struct stat st {};
        if (::stat(candidate.c_str(), &st) == 0 && S_ISREG(st.st_mode) &&
            ::access(candidate.c_str(), X_OK) == 0) {
            return candidate;
        }
        start = end + 1;
    }
    return fail(Errc::spawn_failed, std::string(command) + ": not found in PATH");
}

Result<std::unique_ptr<ChildProcess>> ChildProcess::spawn(const asio::any_io_executor& executor,
                                                          const ChildSpec& spec,
                                                          ChildCallbacks callbacks) {
    if (spec.command.empty()) {
        return fail(Errc::spawn_failed, "no command");
    }
    std::string search_path = "/usr/local/bin:/usr/bin:/bin";
    for (const auto& [key, value] : spec.env) {
        if (key == "PATH") {
            search_path = value;
        }
    }
    auto exe = find_executable(spec.command, search_path);
    if (!exe) {
        return tl::unexpected(exe.error());
    }
    Fds fds;
    if (::pipe2(fds.in.data(), O_CLOEXEC) != 0 || ::pipe2(fds.out.data(), O_CLOEXEC) != 0 ||
        ::pipe2(fds.err.data(), O_CLOEXEC) != 0 ||
        ::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, fds.report.data()) != 0) {
        return fail(Errc::spawn_failed, std::string("pipe: ") + std::strerror(errno));
    }
    for (auto* pair : {&fds.in, &fds.out, &fds.err, &fds.report}) {
        for (int& fd : *pair) {
            if (!lift(fd)) {
                return fail(Errc::spawn_failed, std::string("fcntl: ") + std::strerror(errno));
            }
        }
    }

    // Everything the child needs is made here: after fork it only calls the kernel.
    std::vector<std::string> argv_storage;
    argv_storage.push_back(spec.command);
    argv_storage.insert(argv_storage.end(), spec.args.begin(), spec.args.end());
    std::vector<char*> argv;
    argv.reserve(argv_storage.size() + 1);
    for (auto& a : argv_storage) {
        argv.push_back(a.data());
    }
    argv.push_back(nullptr);
    std::vector<std::string> env_storage;
    env_storage.reserve(spec.env.size());
    for (const auto& [key, value] : spec.env) {
        std::string entry = key;
        entry += '=';
        entry += value;
        env_storage.push_back(std::move(entry));
    }
    std::vector<char*> envp;
    envp.reserve(env_storage.size() + 1);
    for (auto& e : env_storage) {
        envp.push_back(e.data());
    }
    envp.push_back(nullptr);
    const std::string exe_path = exe->string();
    const std::string cwd = spec.cwd.string();
    rlimit files{};
    const int max_fd = ::getrlimit(RLIMIT_NOFILE, &files) == 0 && files.rlim_cur != RLIM_INFINITY
                           ? static_cast<int>(std::min<rlim_t>(files.rlim_cur, 1U << 20U))
                           : 65'536;

    const pid_t pid = ::fork();
    if (pid < 0) {
        return fail(Errc::spawn_failed, std::string("fork: ") + std::strerror(errno));
    }
    if (pid == 0) {
        run_child(fds, exe_path.c_str(), argv.data(), envp.data(),
                  cwd.empty() ? nullptr : cwd.c_str(), spec.sandbox, max_fd);
    }
    close_fd(fds.in[0]);
    close_fd(fds.out[1]);
    close_fd(fds.err[1]);
    close_fd(fds.report[1]);
    const Launch launch = await_exec(fds.report[0], spec.exec_timeout, [&spec](int listener) {
        if (spec.supervisor != nullptr && spec.sandbox != nullptr) {
            spec.supervisor->watch(listener, spec.label, spec.sandbox->policy());
        } else {
            // Nobody would answer its notifications (they fail with ENOSYS).
            ::close(listener);
        }
    });
    if (!launch.failure.empty()) {
        (void)::kill(pid, SIGKILL);
        int status = 0;
        while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
        }
        return fail(Errc::spawn_failed, spec.command + ": " + launch.failure);
    }

    auto state = std::make_shared<State>(executor);
    state->pid = pid;
    state->callbacks = std::move(callbacks);
    state->on_reaped = spec.on_reaped;
    state->max_line = spec.max_line;
    state->max_queue = spec.max_stdin_queue;
    state->grace = spec.stop_grace;
    for (const int fd : {fds.in[1], fds.out[0], fds.err[0]}) {
        (void)::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK);
    }
    state->in.assign(release(fds.in[1]));
    state->out.assign(release(fds.out[0]));
    state->err.assign(release(fds.err[0]));

    asio::co_spawn(executor, read_lines(state, true), asio::detached);
    asio::co_spawn(executor, read_lines(state, false), asio::detached);
    asio::co_spawn(executor, write_stdin(state), asio::detached);
    return std::unique_ptr<ChildProcess>(new ChildProcess(std::move(state)));
}

ChildProcess::~ChildProcess() {
    state_->callbacks = {};
    try {
        stop();
    } catch (...) {  // NOLINT(bugprone-empty-catch): allocation failure; the reaper still runs
    }
}

bool ChildProcess::write(std::string line) {
    State& s = *state_;
    if (!s.stdin_open || s.queued_bytes + line.size() + 1 > s.max_queue) {
        return false;
    }
    line.push_back('\n');
    s.queued_bytes += line.size();
    s.queue.push_back(std::move(line));
    s.wake.cancel();
    return true;
}

void ChildProcess::stop() {
    // "the client SHOULD initiate shutdown by: 1. First, closing the input stream
    // to the child process (the server) 2. Waiting for the server to exit, or
    // sending SIGTERM if the server does not exit within a reasonable time
    // 3. Sending SIGKILL if the server does not exit within a reasonable time
    // after SIGTERM" (MCP lifecycle, stdio shutdown).
    close_stdin(*state_);
    if (!state_->reaping && !state_->exited) {
        state_->reaping = true;
        start_reaping(state_);
    }
}

int ChildProcess::pid() const noexcept {
    return state_->pid;
}

bool ChildProcess::running() const noexcept {
    return !state_->exited;
}

}  // namespace pqmcp::transport
