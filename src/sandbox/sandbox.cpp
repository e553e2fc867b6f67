#include "pqmcp/sandbox/sandbox.hpp"

#include <fcntl.h>
#include <grp.h>
#include <linux/capability.h>
#include <linux/seccomp.h>
#include <net/if.h>
#include <pwd.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <charconv>
#include <cstdlib>
#include <cstring>

#include <fmt/format.h>
#include <seccomp.h>

#include "internal.hpp"

namespace pqmcp::sandbox {
namespace {

class SandboxCategory final : public std::error_category {
  public:
    [[nodiscard]] const char* name() const noexcept override { return "sandbox"; }
    [[nodiscard]] std::string message(int code) const override {
        switch (static_cast<Errc>(code)) {
            case Errc::unsupported:
                return "not supported by this kernel";
            case Errc::protected_path:
                return "a grant reaches a protected path";
            case Errc::invalid_policy:
                return "invalid sandbox policy";
            case Errc::setup_failed:
                return "cannot set up the sandbox";
        }
        return "unknown sandbox error";
    }
};

int landlock_abi() {
    const long abi =
        ::syscall(SYS_landlock_create_ruleset, nullptr, 0, LANDLOCK_CREATE_RULESET_VERSION);
    return abi > 0 ? static_cast<int>(abi) : 0;
}

bool seccomp_user_notification() {
    // libseccomp's API level 5 means the kernel has SECCOMP_RET_USER_NOTIF
    // (Linux 5.0); CONTINUE came with 5.5, before any Landlock kernel.
    return seccomp_api_get() >= 5;
}

// Whether an empty network namespace can be made here: tried in a child
// (root: CLONE_NEWNET; otherwise inside a new user namespace).
bool can_unshare_network(bool root) {
    const pid_t pid = ::fork();
    if (pid < 0) {
        return false;
    }
    if (pid == 0) {
        const int flags = root ? CLONE_NEWNET : (CLONE_NEWUSER | CLONE_NEWNET);
        ::_exit(::unshare(flags) == 0 ? 0 : 1);
    }
    int status = 0;
    while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

Support probe_now() {
    Support s;
    s.root = ::geteuid() == 0;
    s.landlock_abi = landlock_abi();
    // PQMCP_SANDBOX_LANDLOCK_MAX=N uses at most Landlock ABI N (0: as if the
    // kernel had none): for tests of the refusal, and to step around a
    // kernel's Landlock bug. It can only take protection away, never add it,
    // and the start says what is in use.
    // NOLINTNEXTLINE(concurrency-mt-unsafe): read once, at the first probe
    if (const char* max = std::getenv("PQMCP_SANDBOX_LANDLOCK_MAX"); max != nullptr) {
        int value = s.landlock_abi;
        const auto* end = max + std::strlen(max);
        if (std::from_chars(max, end, value).ptr == end && value >= 0) {
            s.landlock_abi = std::min(s.landlock_abi, value);
        }
    }
    s.seccomp_filter = ::prctl(PR_GET_SECCOMP, 0, 0, 0, 0) >= 0 && seccomp_api_get() >= 1;
    s.user_notification = s.seccomp_filter && seccomp_user_notification();
    s.network_namespace = can_unshare_network(s.root);
    return s;
}

std::filesystem::path normalize(const std::filesystem::path& p) {
    std::error_code ec;
    auto canonical = std::filesystem::weakly_canonical(p, ec);
    return (ec ? p : canonical).lexically_normal();
}

Result<std::filesystem::path> absolute_path(const std::filesystem::path& p, std::string_view what) {
    if (p.empty() || !p.is_absolute()) {
        return fail(Errc::invalid_policy,
                    fmt::format("{} {}: a sandbox path must be absolute", what, p.string()));
    }
    return normalize(p);
}

// A user name or number: its uid, gid, groups and home.
Status resolve_user(const std::string& user, Prepared::Impl& out) {
    std::array<char, 16'384> buffer{};
    passwd entry{};
    passwd* found = nullptr;
    std::uint32_t number = 0;
    const auto* end = user.data() + user.size();
    const bool numeric = std::from_chars(user.data(), end, number).ptr == end;
    const int rc = numeric
                       ? ::getpwuid_r(number, &entry, buffer.data(), buffer.size(), &found)
                       : ::getpwnam_r(user.c_str(), &entry, buffer.data(), buffer.size(), &found);
    if (rc != 0 || found == nullptr) {
        return fail(Errc::invalid_policy, "user " + user + ": no such user");
    }
    out.change_user = true;
    out.uid = found->pw_uid;
    out.gid = found->pw_gid;
    out.home = found->pw_dir != nullptr ? found->pw_dir : "";
    int count = 64;
    std::vector<gid_t> groups(static_cast<std::size_t>(count));
    if (::getgrouplist(found->pw_name, found->pw_gid, groups.data(), &count) < 0) {
        groups.resize(static_cast<std::size_t>(count));
        (void)::getgrouplist(found->pw_name, found->pw_gid, groups.data(), &count);
    }
    groups.resize(static_cast<std::size_t>(std::max(count, 0)));
    out.groups = std::move(groups);
    return {};
}

// --- child side: system calls only ---

int write_file(const char* path, const std::string& text) noexcept {
    const int fd = ::open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0) {
        return errno;
    }
    const ssize_t n = ::write(fd, text.data(), text.size());
    const int err = n == static_cast<ssize_t>(text.size()) ? 0 : (n < 0 ? errno : EIO);
    ::close(fd);
    return err;
}

int loopback_up() noexcept {
    const int fd = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        return errno;
    }
    ifreq request{};
    request.ifr_name[0] = 'l';
    request.ifr_name[1] = 'o';
    int err = 0;
    if (::ioctl(fd, SIOCGIFFLAGS, &request) != 0) {
        err = errno;
    } else {
        request.ifr_flags = static_cast<short>(request.ifr_flags | IFF_UP | IFF_RUNNING);
        if (::ioctl(fd, SIOCSIFFLAGS, &request) != 0) {
            err = errno;
        }
    }
    ::close(fd);
    return err;
}

int send_listener(int socket, int listener) noexcept {
    char kind = 'L';
    iovec iov{&kind, 1};
    alignas(cmsghdr) std::array<char, CMSG_SPACE(sizeof(int))> control{};
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.data();
    msg.msg_controllen = control.size();
    cmsghdr* cmsg = CMSG_FIRSTHDR(&msg);
    cmsg->cmsg_level = SOL_SOCKET;
    cmsg->cmsg_type = SCM_RIGHTS;
    cmsg->cmsg_len = CMSG_LEN(sizeof(int));
    std::memcpy(CMSG_DATA(cmsg), &listener, sizeof(int));
    return ::sendmsg(socket, &msg, MSG_NOSIGNAL) == 1 ? 0 : errno;
}

}  // namespace

const std::error_category& sandbox_category() noexcept {
    static const SandboxCategory category;
    return category;
}

std::string_view to_string(Network n) noexcept {
    switch (n) {
        case Network::none:
            return "none";
        case Network::loopback:
            return "loopback";
        case Network::any:
            return "any";
    }
    return "none";
}

std::optional<Network> parse_network(std::string_view text) noexcept {
    for (const auto n : {Network::none, Network::loopback, Network::any}) {
        if (to_string(n) == text) {
            return n;
        }
    }
    return std::nullopt;
}

const Support& probe() {
    static const Support support = probe_now();
    return support;
}

std::string describe(const Support& s) {
    std::string out;
    if (s.landlock_abi > 0) {
        out = fmt::format("Landlock ABI {} (filesystem{}{})", s.landlock_abi,
                          s.landlock_abi >= 4 ? ", TCP" : "",
                          s.landlock_abi >= 6 ? ", signal and socket scoping" : "");
    } else {
        out = "no Landlock";
    }
    out += s.seccomp_filter
               ? (s.user_notification ? ", seccomp with user notification" : ", seccomp")
               : ", no seccomp";
    out += s.network_namespace ? ", network namespaces" : ", no network namespaces";
    return out;
}

bool is_within(const std::filesystem::path& inner, const std::filesystem::path& outer) {
    auto i = inner.begin();
    for (auto o = outer.begin(); o != outer.end(); ++o, ++i) {
        if (o->empty() && std::next(o) == outer.end()) {
            return true;  // a trailing separator
        }
        if (i == inner.end() || *i != *o) {
            return false;
        }
    }
    return true;
}

Prepared::Impl::~Impl() {
    if (ruleset >= 0) {
        ::close(ruleset);
    }
}

Prepared::Prepared() : impl_(std::make_unique<Impl>()) {}
Prepared::~Prepared() = default;
Prepared::Prepared(Prepared&&) noexcept = default;
Prepared& Prepared::operator=(Prepared&&) noexcept = default;

const Policy& Prepared::policy() const noexcept {
    return impl_->policy;
}
bool Prepared::changes_user() const noexcept {
    return impl_->change_user;
}
uid_t Prepared::uid() const noexcept {
    return impl_->uid;
}
gid_t Prepared::gid() const noexcept {
    return impl_->gid;
}
const std::string& Prepared::home() const noexcept {
    return impl_->home;
}
int Prepared::ruleset_fd() const noexcept {
    return impl_->ruleset;
}

Result<Prepared> prepare(const Policy& given, const Support& support, bool report) {
    // The facilities every sandbox needs; a policy that asks for more says so.
    if (support.landlock_abi < 1) {
        return fail(Errc::unsupported,
                    "Landlock is not available (Linux 5.13 or newer with landlock in its LSM "
                    "list is needed)");
    }
    if (!support.seccomp_filter) {
        return fail(Errc::unsupported, "seccomp filters are not available");
    }
    if (given.network == Network::loopback && !support.network_namespace) {
        return fail(Errc::unsupported,
                    "network: loopback needs network namespaces (root, or unprivileged user "
                    "namespaces)");
    }
    if (!given.user.empty() && !support.root) {
        return fail(Errc::invalid_policy,
                    "user " + given.user + ": running a server as another user needs root");
    }
    Prepared prepared;
    Prepared::Impl& p = *prepared.impl_;
    p.policy.network = given.network;
    p.policy.user = given.user;
    p.policy.guard_pid = given.guard_pid;
    for (const auto& [from, to, what] :
         {std::tuple{&given.read, &p.policy.read, "read"},
          std::tuple{&given.write, &p.policy.write, "write"},
          std::tuple{&given.protect, &p.policy.protect, "protect"}}) {
        for (const auto& path : *from) {
            auto abs = absolute_path(path, what);
            if (!abs) {
                return tl::unexpected(abs.error());
            }
            to->push_back(std::move(*abs));
        }
    }
    for (const auto& [grants, what] :
         {std::pair{&p.policy.read, "read"}, std::pair{&p.policy.write, "write"}}) {
        for (const auto& grant : *grants) {
            for (const auto& guarded : p.policy.protect) {
                if (is_within(guarded, grant) || is_within(grant, guarded)) {
                    return fail(Errc::protected_path,
                                fmt::format("sandbox {} grant {} reaches {}, which the gateway "
                                            "keeps from its upstream servers",
                                            what, grant.string(), guarded.string()));
                }
            }
        }
    }
    if (!given.user.empty()) {
        if (auto ok = resolve_user(given.user, p); !ok) {
            return tl::unexpected(ok.error());
        }
    }
    if (given.network == Network::loopback) {
        p.new_netns = true;
        p.user_namespace = !support.root;
        p.outer_uid = ::geteuid();
        p.outer_gid = ::getegid();
        // Inside, the same ids as outside: after exec the server has no
        // capabilities in its namespace.
        p.uid_map = fmt::format("{0} {0} 1\n", p.outer_uid);
        p.gid_map = fmt::format("{0} {0} 1\n", p.outer_gid);
    }
    auto ruleset = make_ruleset(p.policy, support.landlock_abi);
    if (!ruleset) {
        return tl::unexpected(ruleset.error());
    }
    p.ruleset = *ruleset;
    p.notify = report && support.user_notification;
    auto program = make_filter(p.policy, p.notify);
    if (!program) {
        return tl::unexpected(program.error());
    }
    p.program = std::move(*program);
    return prepared;
}

int apply_in_child(const Prepared& prepared, int report_socket, const char** stage) noexcept {
    const Prepared::Impl& p = prepared.impl();
    const auto failed = [stage](const char* what, int err) {
        *stage = what;
        return err != 0 ? err : EINVAL;
    };
    if (p.new_netns) {
        if (p.user_namespace) {
            if (::unshare(CLONE_NEWUSER | CLONE_NEWNET) != 0) {
                return failed("unshare(CLONE_NEWUSER|CLONE_NEWNET)", errno);
            }
            if (const int err = write_file("/proc/self/setgroups", "deny\n"); err != 0) {
                return failed("/proc/self/setgroups", err);
            }
            if (const int err = write_file("/proc/self/uid_map", p.uid_map); err != 0) {
                return failed("/proc/self/uid_map", err);
            }
            if (const int err = write_file("/proc/self/gid_map", p.gid_map); err != 0) {
                return failed("/proc/self/gid_map", err);
            }
        } else if (::unshare(CLONE_NEWNET) != 0) {
            return failed("unshare(CLONE_NEWNET)", errno);
        }
        if (const int err = loopback_up(); err != 0) {
            return failed("bringing up lo", err);
        }
    }
    if (p.change_user) {
        // Raw system calls: glibc's wrappers would try to reach other threads.
        if (::syscall(SYS_setgroups, p.groups.size(), p.groups.data()) != 0) {
            return failed("setgroups", errno);
        }
        if (::syscall(SYS_setresgid, p.gid, p.gid, p.gid) != 0) {
            return failed("setresgid", errno);
        }
        if (::syscall(SYS_setresuid, p.uid, p.uid, p.uid) != 0) {
            return failed("setresuid", errno);
        }
    }
    // No capabilities (a gateway running as root would otherwise hand its
    // server all of them): the bounding and ambient sets emptied, then the
    // process's own sets; exec cannot give them back. Without CAP_SETPCAP
    // (not root) the bounding set is left as it is, and there is nothing to drop.
    (void)::prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0);
    for (int cap = 0; cap <= 63; ++cap) {
        if (::prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0 && errno == EINVAL) {
            break;  // past the last capability this kernel knows
        }
    }
    {
        __user_cap_header_struct header{_LINUX_CAPABILITY_VERSION_3, 0};
        std::array<__user_cap_data_struct, 2> none{};
        if (::syscall(SYS_capset, &header, none.data()) != 0) {
            return failed("capset", errno);
        }
    }
    // The server dies with the gateway's thread that started it (set after
    // the user change, which clears it).
    (void)::prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
    if (::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) {
        return failed("no_new_privs", errno);
    }
    if (p.ruleset >= 0) {
        if (::syscall(SYS_landlock_restrict_self, p.ruleset, 0) != 0) {
            return failed("landlock_restrict_self", errno);
        }
        ::close(p.ruleset);
    }
    sock_fprog program{static_cast<unsigned short>(p.program.size()),
                       const_cast<sock_filter*>(p.program.data())};  // NOLINT: the kernel's type
    const unsigned long flags = p.notify ? SECCOMP_FILTER_FLAG_NEW_LISTENER : 0UL;
    const long listener = ::syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, flags, &program);
    if (listener < 0) {
        return failed("seccomp", errno);
    }
    if (p.notify) {
        const int err = send_listener(report_socket, static_cast<int>(listener));
        ::close(static_cast<int>(listener));
        if (err != 0) {
            return failed("sending the seccomp listener", err);
        }
    }
    return 0;
}

}  // namespace pqmcp::sandbox
