// Newline-delimited messages on file descriptors (the MCP stdio transport):
// "Messages are delimited by newlines, and MUST NOT contain embedded newlines."
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "pqmcp/core/error.hpp"
#include "pqmcp/transport/errors.hpp"

namespace pqmcp::transport {

// Splits a byte stream into lines, never holding more than `max_line` bytes
// of one line. A longer line is reported once as too_large and skipped up to
// its newline. A trailing '\r' is removed; empty lines are skipped.
class LineSplitter final {
  public:
    explicit LineSplitter(std::size_t max_line) : max_line_(max_line) {}

    // Feeds bytes; complete lines (or too_large errors) are appended to `out`.
    void feed(std::string_view bytes, std::vector<Result<std::string>>& out);
    // At end of input: the last line if it had no newline.
    [[nodiscard]] std::optional<Result<std::string>> finish();

  private:
    std::size_t max_line_;
    std::string partial_;
    bool skipping_ = false;
};

// Blocking reader of lines from a descriptor (any kind: pipe, file, tty).
class LineReader final {
  public:
    LineReader(int fd, std::size_t max_line) : fd_(fd), splitter_(max_line) {}

    // The next line; nullopt at end of input. Errors: too_large (the line is
    // skipped; reading may continue), io_error (the last one: input ends).
    [[nodiscard]] std::optional<Result<std::string>> next();
    // One read(2), for a descriptor known to be readable (a pipe or socket
    // the reactor reported: the read does not wait then): the lines it
    // completed are appended to `out`. False at end of input, after the last
    // line (one without a newline) was appended. A read error is appended as
    // an io_error and ends the input.
    [[nodiscard]] bool read_once(std::vector<Result<std::string>>& out);

  private:
    int fd_;
    LineSplitter splitter_;
    std::vector<Result<std::string>> ready_;
    std::size_t consumed_ = 0;
    bool eof_ = false;
};

// Writes `line` and a newline completely (retrying on EINTR and short writes).
[[nodiscard]] Status write_line(int fd, std::string_view line);
// Writes `bytes` completely (retrying on EINTR and short writes). Errors:
// closed (EPIPE), io_error.
[[nodiscard]] Status write_all(int fd, std::string_view bytes);

}  // namespace pqmcp::transport
