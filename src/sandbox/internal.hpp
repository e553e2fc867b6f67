// Internal: what a prepared sandbox holds, and the parts of the kernel's
// Landlock interface that Debian 12's linux-libc-dev (6.1) does not declare
// yet. The values are the kernel's user-space ABI (include/uapi/linux/
// landlock.h, ABI versions 3 to 7); behaviour tests in tests/sandbox check
// that each one does what it says on this kernel.
#pragma once

#include <linux/filter.h>
#include <linux/landlock.h>
#include <sys/types.h>

#include <cstdint>
#include <string>
#include <vector>

#include "pqmcp/sandbox/sandbox.hpp"

namespace pqmcp::sandbox {

namespace uapi {
// ABI 3 (Linux 6.2)
inline constexpr std::uint64_t k_fs_truncate = 1ULL << 14U;
// ABI 5 (Linux 6.10)
inline constexpr std::uint64_t k_fs_ioctl_dev = 1ULL << 15U;
// ABI 4 (Linux 6.7): TCP
inline constexpr std::uint64_t k_net_bind_tcp = 1ULL << 0U;
inline constexpr std::uint64_t k_net_connect_tcp = 1ULL << 1U;
// ABI 6 (Linux 6.12): scoping
inline constexpr std::uint64_t k_scope_abstract_unix_socket = 1ULL << 0U;
inline constexpr std::uint64_t k_scope_signal = 1ULL << 1U;

// struct landlock_ruleset_attr as of ABI 6; the size passed to the kernel is
// that of the fields the running ABI knows (the kernel refuses unknown
// non-zero fields).
struct RulesetAttr {
    std::uint64_t handled_access_fs = 0;
    std::uint64_t handled_access_net = 0;  // ABI >= 4
    std::uint64_t scoped = 0;              // ABI >= 6
};
}  // namespace uapi

struct Prepared::Impl {
    Policy policy;                     // as given, paths made absolute and normalized
    int ruleset = -1;                  // Landlock ruleset (close-on-exec); -1 without Landlock
    std::vector<sock_filter> program;  // the compiled seccomp filter
    bool notify = false;               // the filter has SECCOMP_RET_USER_NOTIF rules
    bool new_netns = false;            // network: loopback
    bool user_namespace = false;       // the namespace needs a user namespace (not root)
    uid_t outer_uid = 0;               // for the user namespace's identity map
    gid_t outer_gid = 0;
    bool change_user = false;
    uid_t uid = 0;
    gid_t gid = 0;
    std::vector<gid_t> groups;
    std::string home;
    // Pre-formatted for the child (no allocation after fork).
    std::string uid_map;
    std::string gid_map;

    Impl() = default;
    ~Impl();
    Impl(const Impl&) = delete;
    Impl& operator=(const Impl&) = delete;
    Impl(Impl&&) = delete;
    Impl& operator=(Impl&&) = delete;
};

// The Landlock ruleset for `policy` (ABI `abi`); -1 and an error otherwise.
[[nodiscard]] Result<int> make_ruleset(const Policy& policy, int abi);
// The seccomp program for `policy`; `notify` says whether user
// notification is to be used (and was).
[[nodiscard]] Result<std::vector<sock_filter>> make_filter(const Policy& policy, bool notify);

}  // namespace pqmcp::sandbox
