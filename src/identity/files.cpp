#include "files.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "pqmcp/crypto/util.hpp"
#include "pqmcp/identity/identity.hpp"

namespace pqmcp::identity {
namespace fs = std::filesystem;

namespace {

std::string errno_text() {
    return std::strerror(errno);
}

// Reads `file` into `out` (capacity at least limit + 1), failing past `limit`.
Status read_into(const fs::path& file, std::uint8_t* out, std::size_t limit, std::size_t& size) {
    const int fd = ::open(file.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY);
    if (fd < 0) {
        return fail(Errc::io_error, "cannot open " + file.string() + ": " + errno_text());
    }
    size = 0;
    for (;;) {
        const ssize_t n = ::read(fd, out + size, limit + 1 - size);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0) {
            const std::string err = errno_text();
            ::close(fd);
            return fail(Errc::io_error, "cannot read " + file.string() + ": " + err);
        }
        if (n == 0) {
            break;
        }
        size += static_cast<std::size_t>(n);
        if (size > limit) {
            ::close(fd);
            return fail(Errc::io_error,
                        file.string() + " is larger than " + std::to_string(limit) + " bytes");
        }
    }
    ::close(fd);
    return {};
}

}  // namespace

Result<std::string> read_file(const fs::path& file, std::size_t limit) {
    std::string data(limit + 1, '\0');
    std::size_t size = 0;
    if (auto s = read_into(file, reinterpret_cast<std::uint8_t*>(data.data()), limit, size); !s) {
        return tl::unexpected(s.error());
    }
    data.resize(size);
    return data;
}

Result<crypto::SecretBytes> read_secret_file(const fs::path& file, std::size_t limit) {
    crypto::SecretBytes data(limit + 1);
    std::size_t size = 0;
    if (auto s = read_into(file, data.data(), limit, size); !s) {
        return tl::unexpected(s.error());
    }
    data.truncate(size);
    return data;
}

Status write_file_atomic(const fs::path& file, ByteView data, mode_t mode) {
    auto suffix = crypto::random_bytes(6);
    if (!suffix) {
        return tl::unexpected(suffix.error());
    }
    const fs::path tmp = file.string() + ".tmp-" + to_hex(*suffix);
    const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, mode);
    if (fd < 0) {
        return fail(Errc::io_error, "cannot create " + tmp.string() + ": " + errno_text());
    }
    std::size_t off = 0;
    while (off < data.size()) {
        const ssize_t n = ::write(fd, data.data() + off, data.size() - off);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0) {
            const std::string err = errno_text();
            ::close(fd);
            ::unlink(tmp.c_str());
            return fail(Errc::io_error, "cannot write " + tmp.string() + ": " + err);
        }
        off += static_cast<std::size_t>(n);
    }
    if (::fsync(fd) != 0) {
        const std::string err = errno_text();
        ::close(fd);
        ::unlink(tmp.c_str());
        return fail(Errc::io_error, "cannot flush " + tmp.string() + ": " + err);
    }
    if (::close(fd) != 0 || ::rename(tmp.c_str(), file.c_str()) != 0) {
        const std::string err = errno_text();
        ::unlink(tmp.c_str());
        return fail(Errc::io_error, "cannot replace " + file.string() + ": " + err);
    }
    return {};
}

}  // namespace pqmcp::identity
