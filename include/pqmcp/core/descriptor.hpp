// Descriptors the gateway keeps to itself.
#pragma once

#include <fcntl.h>

namespace pqmcp {

// Marks `fd` close-on-exec (for descriptors made by libraries that do not:
// Asio's sockets). Child processes get none of the gateway's descriptors
// anyway (transport/child.hpp closes all but 0-2), so this is the second line.
inline void keep_from_children(int fd) noexcept {
    if (fd >= 0) {
        (void)::fcntl(fd, F_SETFD, ::fcntl(fd, F_GETFD) | FD_CLOEXEC);
    }
}

}  // namespace pqmcp
