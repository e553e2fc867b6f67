#include "pqmcp/transport/child.hpp"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstring>
#include <deque>
#include <map>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

#include "pqmcp/transport/line_io.hpp"

extern char** environ;  // NOLINT(readability-identifier-naming): POSIX

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
    ~Fds() {
        for (auto* pair : {&in, &out, &err}) {
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

}  // namespace

Result<std::unique_ptr<ChildProcess>> ChildProcess::spawn(const asio::any_io_executor& executor,
                                                          const ChildSpec& spec,
                                                          ChildCallbacks callbacks) {
    if (spec.command.empty()) {
        return fail(Errc::spawn_failed, "no command");
    }
    Fds fds;
    if (::pipe2(fds.in.data(), O_CLOEXEC) != 0 || ::pipe2(fds.out.data(), O_CLOEXEC) != 0 ||
        ::pipe2(fds.err.data(), O_CLOEXEC) != 0) {
        return fail(Errc::spawn_failed, std::string("pipe: ") + std::strerror(errno));
    }

    std::vector<std::string> argv_storage;
    argv_storage.push_back(spec.command);
    argv_storage.insert(argv_storage.end(), spec.args.begin(), spec.args.end());
    std::vector<char*> argv;
    argv.reserve(argv_storage.size() + 1);
    for (auto& a : argv_storage) {
        argv.push_back(a.data());
    }
    argv.push_back(nullptr);

    std::map<std::string, std::string> env_map;
    if (spec.inherit_env) {
        for (char** e = environ; e != nullptr && *e != nullptr; ++e) {
            const std::string_view entry(*e);
            const auto eq = entry.find('=');
            if (eq != std::string_view::npos) {
                env_map[std::string(entry.substr(0, eq))] = std::string(entry.substr(eq + 1));
            }
        }
    }
    for (const auto& [key, value] : spec.env) {
        env_map[key] = value;
    }
    std::vector<std::string> env_storage;
    env_storage.reserve(env_map.size());
    for (const auto& [key, value] : env_map) {
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

    posix_spawn_file_actions_t actions;
    posix_spawnattr_t attr;
    posix_spawn_file_actions_init(&actions);
    posix_spawnattr_init(&attr);
    posix_spawn_file_actions_adddup2(&actions, fds.in[0], STDIN_FILENO);
    posix_spawn_file_actions_adddup2(&actions, fds.out[1], STDOUT_FILENO);
    posix_spawn_file_actions_adddup2(&actions, fds.err[1], STDERR_FILENO);
    const std::string cwd = spec.cwd.string();
    if (!cwd.empty()) {
        posix_spawn_file_actions_addchdir_np(&actions, cwd.c_str());
    }
    // Its own process group; default signal dispositions (the gateway ignores
    // SIGPIPE, and ignored signals survive exec) and an empty signal mask.
    sigset_t defaults;
    sigset_t empty;
    sigemptyset(&defaults);
    sigaddset(&defaults, SIGPIPE);
    sigaddset(&defaults, SIGINT);
    sigaddset(&defaults, SIGTERM);
    sigaddset(&defaults, SIGHUP);
    sigemptyset(&empty);
    posix_spawnattr_setflags(
        &attr, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK);
    posix_spawnattr_setpgroup(&attr, 0);
    posix_spawnattr_setsigdefault(&attr, &defaults);
    posix_spawnattr_setsigmask(&attr, &empty);

    pid_t pid = -1;
    const int rc =
        ::posix_spawnp(&pid, spec.command.c_str(), &actions, &attr, argv.data(), envp.data());
    posix_spawn_file_actions_destroy(&actions);
    posix_spawnattr_destroy(&attr);
    if (rc != 0) {
        return fail(Errc::spawn_failed, spec.command + ": " + std::strerror(rc));
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
    // The child's ends close with `fds`.

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
