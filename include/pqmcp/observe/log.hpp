// Log output: the usual text lines, or structured JSON (one event per line:
// {"ts":"2026-11-24T10:00:00.123Z","level":"info","logger":"pqmcp",
// "msg":"...","session":"ab12cd34"}) for log pipelines. Messages never carry
// keys, secrets or tool arguments (the gateway logs names and digests only).
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include <spdlog/formatter.h>

#include "pqmcp/core/error.hpp"

namespace pqmcp::observe {

enum class LogFormat { text, json };

// "text" or "json"; nullopt otherwise.
[[nodiscard]] std::optional<LogFormat> parse_log_format(std::string_view text) noexcept;

// The JSON formatter: UTC timestamps in milliseconds, the level's name, the
// logger's name, the message, and the session id when the message names one
// ("session 1a2b3c4d ...").
class JsonLogFormatter final : public spdlog::formatter {
  public:
    void format(const spdlog::details::log_msg& msg, spdlog::memory_buf_t& dest) override;
    [[nodiscard]] std::unique_ptr<spdlog::formatter> clone() const override;
};

// Text lines with the control characters of the message escaped (a newline
// becomes \n, ESC \x1b, C1 controls and U+2028/U+2029 \uXXXX), so that nothing a
// peer sent can start a line of its own or drive the terminal.
class TextLogFormatter final : public spdlog::formatter {
  public:
    TextLogFormatter();
    ~TextLogFormatter() override;
    TextLogFormatter(const TextLogFormatter&) = delete;
    TextLogFormatter& operator=(const TextLogFormatter&) = delete;
    TextLogFormatter(TextLogFormatter&&) = delete;
    TextLogFormatter& operator=(TextLogFormatter&&) = delete;
    void format(const spdlog::details::log_msg& msg, spdlog::memory_buf_t& dest) override;
    [[nodiscard]] std::unique_ptr<spdlog::formatter> clone() const override;

  private:
    std::unique_ptr<spdlog::formatter> inner_;
};

// The escaping TextLogFormatter applies.
[[nodiscard]] std::string escape_log(std::string_view text);

// Applies the format to the default logger.
void set_log_format(LogFormat format);

}  // namespace pqmcp::observe
