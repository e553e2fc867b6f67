// Descriptors the gateway keeps to itself.
#pragma once

#include <fcntl.h>
#include <unistd.h>

#include <utility>

namespace pqmcp {

// Marks `fd` close-on-exec (for descriptors made by libraries that do not:
// Asio's sockets). Child processes get none of the gateway's descriptors
// anyway (transport/child.hpp closes all but 0-2), so this is the second line.
inline void keep_from_children(int fd) noexcept {
    if (fd >= 0) {
        (void)::fcntl(fd, F_SETFD, ::fcntl(fd, F_GETFD) | FD_CLOEXEC);
    }
}

// One descriptor and the duty to close it: closed when its owner goes, unless
// released first. It moves (to another thread, say), it never copies.
class OwnedFd final {
  public:
    OwnedFd() = default;
    explicit OwnedFd(int fd) noexcept : fd_(fd) {}
    OwnedFd(OwnedFd&& other) noexcept : fd_(other.release()) {}
    OwnedFd& operator=(OwnedFd&& other) noexcept {
        if (this != &other) {
            reset(other.release());
        }
        return *this;
    }
    OwnedFd(const OwnedFd&) = delete;
    OwnedFd& operator=(const OwnedFd&) = delete;
    ~OwnedFd() { reset(); }

    [[nodiscard]] int get() const noexcept { return fd_; }
    [[nodiscard]] bool valid() const noexcept { return fd_ >= 0; }
    // The descriptor, now the caller's to close.
    [[nodiscard]] int release() noexcept { return std::exchange(fd_, -1); }
    // Closes the descriptor held, if any, and holds `fd` instead.
    void reset(int fd = -1) noexcept {
        if (fd_ >= 0) {
            (void)::close(fd_);
        }
        fd_ = fd;
    }

  private:
    int fd_ = -1;
};

}  // namespace pqmcp
