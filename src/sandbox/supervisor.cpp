// The supervisor: one thread that answers the seccomp notifications of every
// sandboxed child (libseccomp's notify API) and reports what the sandbox
// refused. Enforcement is the kernel's: a refused socket family is answered
// with EACCES here only because the filter sent it here (its domain argument
// is a register, so there is no race); opens and accepts are answered with
// "continue" and Landlock decides. The paths read from the child's memory are
// for the report only (they could change after reading, which is why they
// never decide anything).
#include <fcntl.h>
#include <linux/seccomp.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include <seccomp.h>

#include "internal.hpp"

namespace pqmcp::sandbox {
namespace {

constexpr std::size_t k_max_reports = 64;  // per child: the first ones tell the story
constexpr std::size_t k_max_path = 4'096;

std::string family_name(std::uint64_t domain) {
    switch (domain) {
        case AF_INET:
            return "AF_INET";
        case AF_INET6:
            return "AF_INET6";
        case AF_NETLINK:
            return "AF_NETLINK";
        case AF_PACKET:
            return "AF_PACKET";
        default:
            return "address family " + std::to_string(domain);
    }
}

// A NUL-terminated string at `address` in process `pid`, read a page at a time.
std::optional<std::string> read_string(pid_t pid, std::uint64_t address) {
    std::string out;
    while (out.size() < k_max_path) {
        const std::uint64_t page_left = 4'096 - (address % 4'096);
        std::array<char, 4'096> buffer{};
        const std::size_t want = std::min<std::size_t>(page_left, k_max_path - out.size());
        iovec local{buffer.data(), want};
        iovec remote{reinterpret_cast<void*>(address), want};  // NOLINT: an address in the child
        const ssize_t n = ::process_vm_readv(pid, &local, 1, &remote, 1, 0);
        if (n <= 0) {
            return std::nullopt;
        }
        const auto* nul =
            static_cast<const char*>(std::memchr(buffer.data(), 0, static_cast<std::size_t>(n)));
        if (nul != nullptr) {
            out.append(buffer.data(), static_cast<std::size_t>(nul - buffer.data()));
            return out;
        }
        out.append(buffer.data(), static_cast<std::size_t>(n));
        address += static_cast<std::uint64_t>(n);
    }
    return out;
}

std::string read_link(const std::string& path) {
    std::array<char, k_max_path> buffer{};
    const ssize_t n = ::readlink(path.c_str(), buffer.data(), buffer.size() - 1);
    return n > 0 ? std::string(buffer.data(), static_cast<std::size_t>(n)) : std::string{};
}

struct Watched {
    std::string label;
    Policy policy;
    std::set<std::string> reported;
};

}  // namespace

struct Supervisor::Impl {
    explicit Impl(Report report) : on_violation(std::move(report)) {}

    Report on_violation;
    int epoll = -1;
    int wake = -1;
    std::thread thread;
    std::atomic<bool> stopping{false};
    std::atomic<std::size_t> count{0};
    std::atomic<std::uint64_t> answered{0};
    std::mutex mutex;                            // guards `added`
    std::vector<std::pair<int, Watched>> added;  // handed over by watch()
    std::map<int, Watched> watched;              // the thread's own

    void run();
    void handle(int fd, Watched& w);
    void report(Watched& w, Violation v);
};

void Supervisor::Impl::report(Watched& w, Violation v) {
    const std::string key = v.syscall + "|" + v.access + "|" + v.what;
    if (w.reported.size() >= k_max_reports || !w.reported.insert(key).second) {
        return;
    }
    v.label = w.label;
    if (on_violation) {
        try {
            on_violation(std::move(v));
        } catch (...) {  // NOLINT(bugprone-empty-catch): a report is not worth the thread
        }
    }
}

void Supervisor::Impl::handle(int fd, Watched& w) {
    seccomp_notif* req = nullptr;
    seccomp_notif_resp* resp = nullptr;
    if (seccomp_notify_alloc(&req, &resp) != 0) {
        return;
    }
    struct Free {
        Free(seccomp_notif* q, seccomp_notif_resp* r) : req(q), resp(r) {}
        seccomp_notif* req;
        seccomp_notif_resp* resp;
        ~Free() { seccomp_notify_free(req, resp); }
        Free(const Free&) = delete;
        Free& operator=(const Free&) = delete;
        Free(Free&&) = delete;
        Free& operator=(Free&&) = delete;
    } freed{req, resp};
    if (seccomp_notify_receive(fd, req) != 0) {
        return;  // the child went away meanwhile
    }
    resp->id = req->id;
    resp->val = 0;
    resp->error = 0;
    resp->flags = SECCOMP_USER_NOTIF_FLAG_CONTINUE;
    const auto pid = static_cast<pid_t>(req->pid);
    char* resolved = seccomp_syscall_resolve_num_arch(req->data.arch, req->data.nr);
    const std::string name = resolved != nullptr ? resolved : std::to_string(req->data.nr);
    std::free(resolved);  // NOLINT(cppcoreguidelines-no-malloc): libseccomp's allocation
    const auto* args = req->data.args;

    std::optional<Violation> found;
    if (name == "socket" || name == "socketpair") {
        // Only refused families come here (see filter.cpp).
        resp->flags = 0;
        resp->error = -EACCES;
        found = Violation{{}, pid, name, family_name(args[0]), "network", false};
    } else if (name == "accept" || name == "accept4") {
        const int target = static_cast<int>(args[0]);
        const std::string link =
            read_link("/proc/" + std::to_string(pid) + "/fd/" + std::to_string(target));
        if (link.empty()) {
            // Not a descriptor of its own: a try at one the gateway might have left it.
            found = Violation{{}, pid, name, "fd " + std::to_string(target), "accept", false};
        }
    } else if (name == "open" || name == "openat" || name == "openat2" || name == "creat" ||
               name == "execve" || name == "execveat") {
        const bool at = name == "openat" || name == "openat2" || name == "execveat";
        const bool exec = name == "execve" || name == "execveat";
        const auto path_arg = at ? args[1] : args[0];
        std::uint64_t flags = 0;
        if (exec) {
            flags = 0;
        } else if (name == "open") {
            flags = args[1];
        } else if (name == "openat") {
            flags = args[2];
        } else if (name == "creat") {
            flags = O_CREAT | O_WRONLY | O_TRUNC;
        } else {
            // struct open_how starts with its flags.
            std::uint64_t how_flags = 0;
            iovec local{&how_flags, sizeof how_flags};
            iovec remote{reinterpret_cast<void*>(args[2]), sizeof how_flags};  // NOLINT
            if (::process_vm_readv(pid, &local, 1, &remote, 1, 0) == sizeof how_flags) {
                flags = how_flags;
            }
        }
        if (auto text = read_string(pid, path_arg);
            text && seccomp_notify_id_valid(fd, req->id) == 0) {
            std::filesystem::path path(*text);
            if (path.is_relative()) {
                const int dirfd = static_cast<int>(args[0]);
                const std::string base =
                    at && dirfd != AT_FDCWD
                        ? read_link("/proc/" + std::to_string(pid) + "/fd/" + std::to_string(dirfd))
                        : read_link("/proc/" + std::to_string(pid) + "/cwd");
                path = std::filesystem::path(base) / path;
            }
            path = path.lexically_normal();
            std::error_code ec;
            const auto canonical = std::filesystem::weakly_canonical(path, ec);
            const bool writing = (flags & (O_WRONLY | O_RDWR | O_CREAT | O_TRUNC)) != 0;
            const std::string access = exec                     ? "execute"
                                       : (flags & O_CREAT) != 0 ? "create"
                                       : writing                ? "write"
                                                                : "read";
            bool guarded = false;
            for (const auto& p : w.policy.protect) {
                if (is_within(path, p) || (!ec && is_within(canonical, p))) {
                    guarded = true;
                }
            }
            if (guarded) {
                found = Violation{{}, pid, name, path.string(), access, true};
            } else if (struct stat st{}; ::stat(path.c_str(), &st) == 0) {
                // An existing file outside every grant: Landlock refuses it.
                bool granted = false;
                for (const auto& g : w.policy.write) {
                    granted = granted || is_within(path, g) || (!ec && is_within(canonical, g));
                }
                if (!writing) {
                    for (const auto& g : w.policy.read) {
                        granted = granted || is_within(path, g) || (!ec && is_within(canonical, g));
                    }
                }
                if (!granted) {
                    found = Violation{{}, pid, name, path.string(), access, false};
                }
            }
        }
    }
    if (seccomp_notify_respond(fd, resp) == 0) {
        answered.fetch_add(1, std::memory_order_relaxed);
    }
    if (found) {
        report(w, std::move(*found));
    }
}

void Supervisor::Impl::run() {
    std::array<epoll_event, 32> events{};
    while (!stopping.load()) {
        const int n = ::epoll_wait(epoll, events.data(), static_cast<int>(events.size()), 1'000);
        if (n < 0 && errno != EINTR) {
            break;
        }
        for (int i = 0; i < n; ++i) {
            const int fd = events[static_cast<std::size_t>(i)].data.fd;
            if (fd == wake) {
                std::uint64_t ignored = 0;
                (void)::read(wake, &ignored, sizeof ignored);
                std::vector<std::pair<int, Watched>> fresh;
                {
                    const std::lock_guard lock(mutex);
                    fresh.swap(added);
                }
                for (auto& [listener, w] : fresh) {
                    epoll_event ev{};
                    ev.events = EPOLLIN;
                    ev.data.fd = listener;
                    if (::epoll_ctl(epoll, EPOLL_CTL_ADD, listener, &ev) == 0) {
                        watched.emplace(listener, std::move(w));
                    } else {
                        ::close(listener);
                        count.fetch_sub(1);
                    }
                }
                continue;
            }
            const auto it = watched.find(fd);
            if (it == watched.end()) {
                continue;
            }
            const std::uint32_t what = events[static_cast<std::size_t>(i)].events;
            if ((what & EPOLLIN) != 0U) {
                handle(fd, it->second);
            }
            // Every process under the filter is gone.
            if ((what & (EPOLLHUP | EPOLLERR)) != 0U && (what & EPOLLIN) == 0U) {
                (void)::epoll_ctl(epoll, EPOLL_CTL_DEL, fd, nullptr);
                ::close(fd);
                watched.erase(it);
                count.fetch_sub(1);
            }
        }
    }
}

Supervisor::Supervisor(Report on_violation)
    : impl_(std::make_unique<Impl>(std::move(on_violation))) {
    impl_->epoll = ::epoll_create1(EPOLL_CLOEXEC);
    impl_->wake = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.fd = impl_->wake;
    (void)::epoll_ctl(impl_->epoll, EPOLL_CTL_ADD, impl_->wake, &ev);
    impl_->thread = std::thread([impl = impl_.get()] { impl->run(); });
}

Supervisor::~Supervisor() {
    impl_->stopping = true;
    const std::uint64_t one = 1;
    (void)::write(impl_->wake, &one, sizeof one);
    if (impl_->thread.joinable()) {
        impl_->thread.join();
    }
    for (auto& [fd, w] : impl_->watched) {
        ::close(fd);
    }
    for (auto& [fd, w] : impl_->added) {
        ::close(fd);
    }
    ::close(impl_->wake);
    ::close(impl_->epoll);
}

void Supervisor::watch(int listener, std::string label, const Policy& policy) {
    {
        const std::lock_guard lock(impl_->mutex);
        impl_->added.emplace_back(listener, Watched{std::move(label), policy, {}});
    }
    impl_->count.fetch_add(1);
    const std::uint64_t one = 1;
    (void)::write(impl_->wake, &one, sizeof one);
}

std::size_t Supervisor::watching() const noexcept {
    return impl_->count.load();
}

std::uint64_t Supervisor::answered() const noexcept {
    return impl_->answered.load();
}

}  // namespace pqmcp::sandbox
