#include "pqmcp/transport/line_io.hpp"

#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstring>

namespace pqmcp::transport {

void LineSplitter::feed(std::string_view bytes, std::vector<Result<std::string>>& out) {
    while (!bytes.empty()) {
        const auto nl = bytes.find('\n');
        const std::string_view chunk = bytes.substr(0, nl);
        if (!skipping_) {
            if (partial_.size() + chunk.size() > max_line_) {
                out.emplace_back(fail(Errc::too_large, "a message line longer than " +
                                                           std::to_string(max_line_) + " bytes"));
                partial_.clear();
                skipping_ = true;
            } else {
                partial_.append(chunk);
            }
        }
        if (nl == std::string_view::npos) {
            return;
        }
        if (!skipping_) {
            if (!partial_.empty() && partial_.back() == '\r') {
                partial_.pop_back();
            }
            if (!partial_.empty()) {
                out.emplace_back(std::move(partial_));
            }
        }
        partial_.clear();
        skipping_ = false;
        bytes.remove_prefix(nl + 1);
    }
}

std::optional<Result<std::string>> LineSplitter::finish() {
    if (skipping_ || partial_.empty()) {
        partial_.clear();
        skipping_ = false;
        return std::nullopt;
    }
    std::string line = std::move(partial_);
    partial_.clear();
    return Result<std::string>(std::move(line));
}

std::optional<Result<std::string>> LineReader::next() {
    for (;;) {
        if (consumed_ < ready_.size()) {
            return std::move(ready_[consumed_++]);
        }
        ready_.clear();
        consumed_ = 0;
        if (eof_) {
            return std::nullopt;
        }
        eof_ = !read_once(ready_);
    }
}

bool LineReader::read_once(std::vector<Result<std::string>>& out) {
    std::array<char, 65'536> buffer{};
    ssize_t n = 0;
    do {
        n = ::read(fd_, buffer.data(), buffer.size());
    } while (n < 0 && errno == EINTR);
    if (n < 0) {
        out.emplace_back(fail(Errc::io_error, std::strerror(errno)));
        return false;
    }
    if (n == 0) {
        if (auto last = splitter_.finish()) {
            out.push_back(std::move(*last));
        }
        return false;
    }
    splitter_.feed(std::string_view(buffer.data(), static_cast<std::size_t>(n)), out);
    return true;
}

Status write_all(int fd, std::string_view bytes) {
    while (!bytes.empty()) {
        const ssize_t n = ::write(fd, bytes.data(), bytes.size());
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            return fail(errno == EPIPE ? Errc::closed : Errc::io_error, std::strerror(errno));
        }
        bytes.remove_prefix(static_cast<std::size_t>(n));
    }
    return {};
}

Status write_line(int fd, std::string_view line) {
    std::string data;
    data.reserve(line.size() + 1);
    data.append(line);
    data.push_back('\n');
    return write_all(fd, data);
}

}  // namespace pqmcp::transport
