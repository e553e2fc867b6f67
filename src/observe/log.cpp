#include "pqmcp/observe/log.hpp"

#include <ctime>

#include <spdlog/spdlog.h>

namespace pqmcp::observe {
namespace {

void append_escaped(spdlog::memory_buf_t& out, std::string_view text) {
    static constexpr char k_hex[] = "0123456789abcdef";
    out.push_back('"');
    for (const char ch : text) {
        const auto c = static_cast<unsigned char>(ch);
        switch (c) {
            case '"':
                out.append(std::string_view("\\\""));
                break;
            case '\\':
                out.append(std::string_view("\\\\"));
                break;
            case '\n':
                out.append(std::string_view("\\n"));
                break;
            case '\r':
                out.append(std::string_view("\\r"));
                break;
            case '\t':
                out.append(std::string_view("\\t"));
                break;
            default:
                if (c < 0x20 || c == 0x7f) {
                    out.append(std::string_view("\\u00"));
                    out.push_back(k_hex[c >> 4U]);
                    out.push_back(k_hex[c & 0xfU]);
                } else {
                    out.push_back(ch);
                }
        }
    }
    out.push_back('"');
}

bool is_hex(char c) {
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
}

// "session 1a2b3c4d" at the start of a gateway message.
std::string_view session_of(std::string_view msg) {
    constexpr std::string_view k_prefix = "session ";
    constexpr std::size_t k_len = 8;
    if (msg.size() < k_prefix.size() + k_len || msg.substr(0, k_prefix.size()) != k_prefix) {
        return {};
    }
    const auto id = msg.substr(k_prefix.size(), k_len);
    for (const char c : id) {
        if (!is_hex(c)) {
            return {};
        }
    }
    return id;
}

}  // namespace

std::optional<LogFormat> parse_log_format(std::string_view text) noexcept {
    if (text == "text") {
        return LogFormat::text;
    }
    if (text == "json") {
        return LogFormat::json;
    }
    return std::nullopt;
}

void JsonLogFormatter::format(const spdlog::details::log_msg& msg, spdlog::memory_buf_t& dest) {
    using namespace std::chrono;
    const auto since = msg.time.time_since_epoch();
    const auto secs = duration_cast<seconds>(since);
    const auto millis = duration_cast<milliseconds>(since - secs).count();
    const std::time_t t = secs.count();
    std::tm tm{};
    gmtime_r(&t, &tm);
    dest.append(std::string_view("{\"ts\":"));
    fmt::format_to(std::back_inserter(dest), "\"{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z\"",
                   tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                   millis);
    dest.append(std::string_view(",\"level\":"));
    const auto level = spdlog::level::to_string_view(msg.level);
    append_escaped(dest, std::string_view(level.data(), level.size()));
    dest.append(std::string_view(",\"logger\":"));
    append_escaped(dest, std::string_view(msg.logger_name.data(), msg.logger_name.size()));
    const std::string_view text(msg.payload.data(), msg.payload.size());
    dest.append(std::string_view(",\"msg\":"));
    append_escaped(dest, text);
    if (const auto session = session_of(text); !session.empty()) {
        dest.append(std::string_view(",\"session\":"));
        append_escaped(dest, session);
    }
    dest.append(std::string_view("}\n"));
}

std::unique_ptr<spdlog::formatter> JsonLogFormatter::clone() const {
    return std::make_unique<JsonLogFormatter>();
}

void set_log_format(LogFormat format) {
    if (format == LogFormat::json) {
        spdlog::set_formatter(std::make_unique<JsonLogFormatter>());
    } else {
        spdlog::set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%l%$ %v");
    }
}

}  // namespace pqmcp::observe
