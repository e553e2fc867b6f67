// The sandbox an upstream stdio server runs in, built on the kernel's own
// facilities: Landlock (filesystem, TCP, signal and abstract-socket scoping),
// seccomp filters compiled by libseccomp (a deny list, and user notification
// so that the gateway hears of what the sandbox refused), an empty network
// namespace for `network: loopback`, no_new_privs, and optionally another
// user. Nothing here enforces anything by itself: it asks the kernel to.
//
// How it is used: the parent checks and prepares a Policy (paths opened,
// the Landlock ruleset made, the seccomp program compiled) before fork; the
// child calls apply_in_child() between fork and exec, which makes system
// calls only (async-signal-safe); the notification listener the child makes
// comes back to the parent over a socket and is handed to a Supervisor.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include "pqmcp/core/error.hpp"

namespace pqmcp::sandbox {

enum class Errc {
    unsupported = 1,  // the kernel lacks a facility the policy needs (detail names it)
    protected_path,   // a grant would reach a path the gateway protects
    invalid_policy,   // a path is not absolute, a user does not exist, ...
    setup_failed,     // a system call failed while preparing (detail: which, errno)
};
[[nodiscard]] const std::error_category& sandbox_category() noexcept;
inline std::error_code make_error_code(Errc e) noexcept {
    return {static_cast<int>(e), sandbox_category()};
}

enum class Network {
    none,      // no socket but AF_UNIX; no TCP bind or connect
    loopback,  // an empty network namespace of its own: only its own loopback
    any,       // the host's network
};
[[nodiscard]] std::string_view to_string(Network n) noexcept;
[[nodiscard]] std::optional<Network> parse_network(std::string_view text) noexcept;

struct Policy {
    // Read (files, directories) and execute beneath these paths.
    std::vector<std::filesystem::path> read;
    // Everything beneath these paths (read, write, create, remove, execute).
    std::vector<std::filesystem::path> write;
    // Paths the child must never reach (the gateway's identity, state, audit,
    // configuration): a grant that contains one, or lies inside one, is refused.
    std::vector<std::filesystem::path> protect;
    Network network = Network::none;
    std::string user;  // run as this user (name or number); "" keeps the gateway's
    // The gateway's pid and process group, which the child must not signal
    // even where Landlock cannot scope signals (ABI < 6).
    pid_t guard_pid = 0;
};

// What this kernel offers, probed once.
struct Support {
    int landlock_abi = 0;            // 0: no Landlock (not built in, or not enabled)
    bool seccomp_filter = false;     // SECCOMP_SET_MODE_FILTER
    bool user_notification = false;  // SECCOMP_RET_USER_NOTIF with CONTINUE
    bool network_namespace = false;  // an empty network namespace can be made here
    bool root = false;               // effective uid 0 (can change user)
};
[[nodiscard]] const Support& probe();
// "Landlock ABI 7 (filesystem, TCP, scoping), seccomp with user notification,
// network namespaces".
[[nodiscard]] std::string describe(const Support& s);

// Everything the child applies, made in the parent. Move-only; owns its
// descriptors (close-on-exec).
class Prepared final {
  public:
    Prepared();
    ~Prepared();
    Prepared(const Prepared&) = delete;
    Prepared& operator=(const Prepared&) = delete;
    Prepared(Prepared&&) noexcept;
    Prepared& operator=(Prepared&&) noexcept;

    // Grants as applied (for reports: "outside the sandbox").
    [[nodiscard]] const Policy& policy() const noexcept;
    [[nodiscard]] bool changes_user() const noexcept;
    [[nodiscard]] uid_t uid() const noexcept;
    [[nodiscard]] gid_t gid() const noexcept;
    [[nodiscard]] const std::string& home() const noexcept;  // of `user`, "" without one
    // The Landlock ruleset's descriptor, which the child needs until it applies it.
    [[nodiscard]] int ruleset_fd() const noexcept;

    struct Impl;
    [[nodiscard]] const Impl& impl() const noexcept { return *impl_; }

  private:
    friend Result<Prepared> prepare(const Policy& policy, const Support& support, bool report);
    std::unique_ptr<Impl> impl_;
};

// Checks `policy` against the kernel and its protected paths, opens the
// granted paths, builds the Landlock ruleset and compiles the seccomp
// program (with user notification when `report` and the kernel has it: a
// Supervisor must then answer the child's notifications). Errors:
// unsupported, protected_path, invalid_policy, setup_failed.
[[nodiscard]] Result<Prepared> prepare(const Policy& policy, const Support& support = probe(),
                                       bool report = true);

// In the child between fork and exec: system calls only. Applies everything
// (namespace, user, no_new_privs, Landlock, seccomp last) and sends the
// seccomp notification listener over `report_socket` (SCM_RIGHTS). Returns 0,
// or an errno with `*stage` naming the step that failed.
int apply_in_child(const Prepared& prepared, int report_socket, const char** stage) noexcept;

// Something the sandbox refused (or saw attempted), as the supervisor reports it.
struct Violation {
    std::string label;            // the upstream's name
    pid_t pid = 0;                // the process that tried
    std::string syscall;          // "openat", "socket", "accept4", ...
    std::string what;             // the path, "AF_INET", "fd 3", ...
    std::string access;           // "read", "write", "create", "network", "accept"
    bool protected_path = false;  // one of Policy::protect: an attack, not a mistake
};

// Watches the notification listeners of sandboxed children on a thread of
// its own; every notification is answered at once (a denial for a socket
// family the policy refuses, otherwise "continue": Landlock decides). Reports
// reach `on_violation` on that thread.
class Supervisor final {
  public:
    using Report = std::function<void(Violation)>;
    explicit Supervisor(Report on_violation);
    ~Supervisor();  // stops the thread; listeners still open are closed
    Supervisor(const Supervisor&) = delete;
    Supervisor& operator=(const Supervisor&) = delete;
    Supervisor(Supervisor&&) = delete;
    Supervisor& operator=(Supervisor&&) = delete;

    // Takes ownership of `listener` for the child `label`, sandboxed by `policy`.
    void watch(int listener, std::string label, const Policy& policy);
    // Listeners being watched (children with processes left).
    [[nodiscard]] std::size_t watching() const noexcept;
    // Notifications answered so far.
    [[nodiscard]] std::uint64_t answered() const noexcept;

    struct Impl;

  private:
    std::unique_ptr<Impl> impl_;
};

// Lexical: `inner` equals `outer` or lies beneath it (both absolute, normalized).
[[nodiscard]] bool is_within(const std::filesystem::path& inner,
                             const std::filesystem::path& outer);

}  // namespace pqmcp::sandbox

template <>
struct std::is_error_code_enum<pqmcp::sandbox::Errc> : std::true_type {};
