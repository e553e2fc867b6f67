// The seccomp filter of a sandboxed server, compiled by libseccomp: allow by
// default, refuse what no MCP server needs (mounts, modules, other
// namespaces, ptrace and other processes' memory, io_uring, which would
// bypass the filter, BPF, keyrings, signals to the gateway) and, with
// `network: none`, every socket family but AF_UNIX. With user notification
// the gateway hears of refused sockets and of opens and accepts (it answers
// "continue" for those: Landlock decides), so that it can log and audit them.
#include <linux/sched.h>
#include <sched.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <initializer_list>

#include <fmt/format.h>
#include <seccomp.h>

#include "internal.hpp"

namespace pqmcp::sandbox {
namespace {

class Context final {
  public:
    Context() : ctx_(seccomp_init(SCMP_ACT_ALLOW)) {}
    ~Context() {
        if (ctx_ != nullptr) {
            seccomp_release(ctx_);
        }
    }
    Context(const Context&) = delete;
    Context& operator=(const Context&) = delete;
    Context(Context&&) = delete;
    Context& operator=(Context&&) = delete;
    [[nodiscard]] scmp_filter_ctx get() const noexcept { return ctx_; }

  private:
    scmp_filter_ctx ctx_;
};

// 32-bit arguments (pids, fds) compared on their low half: the upper half of
// a 32-bit argument's register is not defined by the calling convention.
constexpr scmp_datum_t k_low32 = 0xFFFF'FFFFULL;

// A comparison on the first argument (SCMP_A0 without its compound literal).
scmp_arg_cmp arg0(scmp_compare op, scmp_datum_t a, scmp_datum_t b = 0) {
    scmp_arg_cmp c{};
    c.arg = 0;
    c.op = op;
    c.datum_a = a;
    c.datum_b = b;
    return c;
}

scmp_datum_t low32(int value) {
    return static_cast<scmp_datum_t>(static_cast<std::uint32_t>(value));
}

}  // namespace

Result<std::vector<sock_filter>> make_filter(const Policy& policy, bool notify) {
    const Context ctx;
    if (ctx.get() == nullptr) {
        return fail(Errc::setup_failed, "seccomp_init failed");
    }
    // no_new_privs is set by apply_in_child before the filter is loaded.
    (void)seccomp_attr_set(ctx.get(), SCMP_FLTATR_CTL_NNP, 0);
    std::string failure;
    const auto add = [&](std::uint32_t action, const char* name,
                         std::initializer_list<scmp_arg_cmp> args = {}) {
        const int nr = seccomp_syscall_resolve_name(name);
        if (nr == __NR_SCMP_ERROR) {
            return;  // not on this architecture
        }
        const int rc =
            seccomp_rule_add_array(ctx.get(), action, nr, static_cast<unsigned int>(args.size()),
                                   args.size() == 0 ? nullptr : std::data(args));
        if (rc != 0 && failure.empty()) {
            failure = fmt::format("seccomp rule for {}: {}", name, std::strerror(-rc));
        }
    };
    const std::uint32_t refuse = SCMP_ACT_ERRNO(EPERM);
    for (const char* name : {"mount",
                             "umount2",
                             "pivot_root",
                             "chroot",
                             "swapon",
                             "swapoff",
                             "reboot",
                             "kexec_load",
                             "kexec_file_load",
                             "init_module",
                             "finit_module",
                             "delete_module",
                             "bpf",
                             "perf_event_open",
                             "keyctl",
                             "add_key",
                             "request_key",
                             "ptrace",
                             "process_vm_readv",
                             "process_vm_writev",
                             "userfaultfd",
                             "setns",
                             "unshare",
                             "open_by_handle_at",
                             "name_to_handle_at",
                             "iopl",
                             "ioperm",
                             "acct",
                             "quotactl",
                             "quotactl_fd",
                             "fsopen",
                             "fsconfig",
                             "fsmount",
                             "fspick",
                             "move_mount",
                             "open_tree",
                             "mount_setattr",
                             "settimeofday",
                             "clock_settime",
                             "clock_adjtime",
                             "adjtimex",
                             "sethostname",
                             "setdomainname",
                             "syslog",
                             "vhangup",
                             "lookup_dcookie"}) {
        add(refuse, name);
    }
    // io_uring would run socket and file operations outside this filter;
    // without it libuv and others fall back to plain system calls.
    for (const char* name : {"io_uring_setup", "io_uring_enter", "io_uring_register"}) {
        add(SCMP_ACT_ERRNO(ENOSYS), name);
    }
    // No new namespaces by clone(2); clone3(2) takes its flags in memory, so
    // it is refused with ENOSYS, which makes glibc fall back to clone(2).
    for (const auto flag : {CLONE_NEWUSER, CLONE_NEWNS, CLONE_NEWNET, CLONE_NEWPID, CLONE_NEWUTS,
                            CLONE_NEWIPC, CLONE_NEWCGROUP}) {
        const auto f = static_cast<scmp_datum_t>(flag);
        add(refuse, "clone", {arg0(SCMP_CMP_MASKED_EQ, f, f)});
    }
    add(SCMP_ACT_ERRNO(ENOSYS), "clone3");
    // The gateway, its process group and "every process" are not the
    // server's to signal (Landlock's signal scope, ABI 6, covers the rest).
    if (policy.guard_pid > 0) {
        const pid_t pgid = ::getpgid(policy.guard_pid);
        std::vector<int> targets{policy.guard_pid, -1};
        if (pgid > 0) {
            targets.push_back(-pgid);
        }
        for (const int target : targets) {
            const auto t = low32(target);
            for (const char* name : {"kill", "tkill", "rt_sigqueueinfo", "pidfd_open"}) {
                add(refuse, name, {arg0(SCMP_CMP_MASKED_EQ, k_low32, t)});
            }
            add(refuse, "tgkill", {arg0(SCMP_CMP_MASKED_EQ, k_low32, t)});
            add(refuse, "rt_tgsigqueueinfo", {arg0(SCMP_CMP_MASKED_EQ, k_low32, t)});
        }
    }
    if (policy.network == Network::none) {
        // "socket(2) ... domain": anything but a Unix socket is refused (and,
        // with user notification, reported first).
        const std::uint32_t action = notify ? SCMP_ACT_NOTIFY : SCMP_ACT_ERRNO(EACCES);
        add(action, "socket", {arg0(SCMP_CMP_NE, static_cast<scmp_datum_t>(AF_UNIX))});
        add(action, "socketpair", {arg0(SCMP_CMP_NE, static_cast<scmp_datum_t>(AF_UNIX))});
    }
    if (notify) {
        for (const char* name :
             {"open", "openat", "openat2", "creat", "execve", "execveat", "accept", "accept4"}) {
            add(SCMP_ACT_NOTIFY, name);
        }
    }
    if (!failure.empty()) {
        return fail(Errc::setup_failed, failure);
    }
    const int memfd = ::memfd_create("pqmcp-seccomp", MFD_CLOEXEC);
    if (memfd < 0) {
        return fail(Errc::setup_failed, fmt::format("memfd_create: {}", std::strerror(errno)));
    }
    std::vector<sock_filter> program;
    const int rc = seccomp_export_bpf(ctx.get(), memfd);
    if (rc == 0) {
        const off_t size = ::lseek(memfd, 0, SEEK_END);
        if (size > 0 && static_cast<std::size_t>(size) % sizeof(sock_filter) == 0 &&
            static_cast<std::size_t>(size) / sizeof(sock_filter) <= BPF_MAXINSNS) {
            program.resize(static_cast<std::size_t>(size) / sizeof(sock_filter));
            if (::pread(memfd, program.data(), static_cast<std::size_t>(size), 0) != size) {
                program.clear();
            }
        }
    }
    ::close(memfd);
    if (rc != 0 || program.empty()) {
        return fail(Errc::setup_failed,
                    rc != 0 ? fmt::format("seccomp_export_bpf: {}", std::strerror(-rc))
                            : std::string("seccomp program of no size"));
    }
    return program;
}

}  // namespace pqmcp::sandbox
