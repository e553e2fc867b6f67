// The Landlock ruleset of a policy: every access right the running ABI knows
// is handled (denied unless a rule allows it); read grants allow reading and
// executing beneath them, write grants everything beneath them.
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <fmt/format.h>

#include "internal.hpp"
#include "pqmcp/core/descriptor.hpp"

namespace pqmcp::sandbox {
namespace {

std::uint64_t fs_rights(int abi) {
    std::uint64_t rights =
        LANDLOCK_ACCESS_FS_EXECUTE | LANDLOCK_ACCESS_FS_WRITE_FILE | LANDLOCK_ACCESS_FS_READ_FILE |
        LANDLOCK_ACCESS_FS_READ_DIR | LANDLOCK_ACCESS_FS_REMOVE_DIR |
        LANDLOCK_ACCESS_FS_REMOVE_FILE | LANDLOCK_ACCESS_FS_MAKE_CHAR |
        LANDLOCK_ACCESS_FS_MAKE_DIR | LANDLOCK_ACCESS_FS_MAKE_REG | LANDLOCK_ACCESS_FS_MAKE_SOCK |
        LANDLOCK_ACCESS_FS_MAKE_FIFO | LANDLOCK_ACCESS_FS_MAKE_BLOCK | LANDLOCK_ACCESS_FS_MAKE_SYM;
    if (abi >= 2) {
        rights |= LANDLOCK_ACCESS_FS_REFER;
    }
    if (abi >= 3) {
        rights |= uapi::k_fs_truncate;
    }
    if (abi >= 5) {
        rights |= uapi::k_fs_ioctl_dev;
    }
    return rights;
}

// The rights a rule on a file (not a directory) may carry.
std::uint64_t file_rights(int abi) {
    std::uint64_t rights =
        LANDLOCK_ACCESS_FS_EXECUTE | LANDLOCK_ACCESS_FS_WRITE_FILE | LANDLOCK_ACCESS_FS_READ_FILE;
    if (abi >= 3) {
        rights |= uapi::k_fs_truncate;
    }
    if (abi >= 5) {
        rights |= uapi::k_fs_ioctl_dev;
    }
    return rights;
}

}  // namespace

Result<int> make_ruleset(const Policy& policy, int abi) {
    const std::uint64_t handled = fs_rights(abi);
    uapi::RulesetAttr attr;
    attr.handled_access_fs = handled;
    std::size_t size = sizeof(std::uint64_t);
    if (abi >= 4) {
        size = 2 * sizeof(std::uint64_t);
        if (policy.network == Network::none) {
            // No rule follows: every TCP bind and connect is refused.
            attr.handled_access_net = uapi::k_net_bind_tcp | uapi::k_net_connect_tcp;
        }
    }
    if (abi >= 6) {
        size = sizeof(uapi::RulesetAttr);
        // No signals to, and no abstract Unix sockets of, processes outside
        // the sandbox (the gateway among them).
        attr.scoped = uapi::k_scope_abstract_unix_socket | uapi::k_scope_signal;
    }
    const long created = ::syscall(SYS_landlock_create_ruleset, &attr, size, 0U);
    if (created < 0) {
        return fail(Errc::setup_failed,
                    fmt::format("landlock_create_ruleset: {}", std::strerror(errno)));
    }
    OwnedFd ruleset(static_cast<int>(created));
    (void)::fcntl(ruleset.get(), F_SETFD, FD_CLOEXEC);
    const std::uint64_t read =
        LANDLOCK_ACCESS_FS_EXECUTE | LANDLOCK_ACCESS_FS_READ_FILE | LANDLOCK_ACCESS_FS_READ_DIR;
    for (const auto& [paths, rights] :
         {std::pair{&policy.read, read}, std::pair{&policy.write, handled}}) {
        for (const auto& path : *paths) {
            const OwnedFd fd(::open(path.c_str(), O_PATH | O_CLOEXEC));
            if (fd.get() < 0) {
                if (errno == ENOENT) {
                    continue;  // a grant of something that is not there grants nothing
                }
                return fail(Errc::setup_failed,
                            fmt::format("{}: {}", path.string(), std::strerror(errno)));
            }
            struct stat st {};
            if (::fstat(fd.get(), &st) != 0) {
                return fail(Errc::setup_failed,
                            fmt::format("{}: {}", path.string(), std::strerror(errno)));
            }
            landlock_path_beneath_attr rule{};
            rule.allowed_access = S_ISDIR(st.st_mode) ? rights : (rights & file_rights(abi));
            rule.parent_fd = fd.get();
            if (::syscall(SYS_landlock_add_rule, ruleset.get(), LANDLOCK_RULE_PATH_BENEATH, &rule,
                          0U) != 0) {
                return fail(Errc::setup_failed, fmt::format("landlock_add_rule {}: {}",
                                                            path.string(), std::strerror(errno)));
            }
        }
    }
    return ruleset.release();
}

}  // namespace pqmcp::sandbox
