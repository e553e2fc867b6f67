#include "pqmcp/observe/log.hpp"

#include <algorithm>
#include <ctime>

#include <spdlog/pattern_formatter.h>
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

constexpr const char* k_text_pattern = "%Y-%m-%dT%H:%M:%S.%e %^%l%$ %v";

}  // namespace

std::string escape_log(std::string_view text) {
    static constexpr char k_hex[] = "0123456789abcdef";
    std::string out;
    out.reserve(text.size());
    for (std::size_t i = 0; i < text.size(); ++i) {
        const auto c = static_cast<unsigned char>(text[i]);
        if (c == '\n') {
            out += "\\n";
        } else if (c == '\r') {
            out += "\\r";
        } else if (c == '\t') {
            out += "\\t";
        } else if (c < 0x20 || c == 0x7f) {
            out += "\\x";
            out.push_back(k_hex[c >> 4U]);
            out.push_back(k_hex[c & 0xfU]);
        } else if (c == 0xc2 && i + 1 < text.size() &&
                   static_cast<unsigned char>(text[i + 1]) >= 0x80 &&
                   static_cast<unsigned char>(text[i + 1]) <= 0x9f) {
            // C1 controls (U+0080..U+009F): some terminals act on them.
            const auto c1 = static_cast<unsigned char>(text[++i]);
            out += "\\u00";
            out.push_back(k_hex[c1 >> 4U]);
            out.push_back(k_hex[c1 & 0xfU]);
        } else if (c == 0xe2 && i + 2 < text.size() &&
                   static_cast<unsigned char>(text[i + 1]) == 0x80 &&
                   (static_cast<unsigned char>(text[i + 2]) == 0xa8 ||
                    static_cast<unsigned char>(text[i + 2]) == 0xa9)) {
            // U+2028 and U+2029 end lines for some readers.
            out += static_cast<unsigned char>(text[i + 2]) == 0xa8 ? "\\u2028" : "\\u2029";
            i += 2;
        } else {
            out.push_back(text[i]);
        }
    }
    return out;
}

TextLogFormatter::TextLogFormatter()
    : inner_(std::make_unique<spdlog::pattern_formatter>(k_text_pattern)) {}

TextLogFormatter::~TextLogFormatter() = default;

void TextLogFormatter::format(const spdlog::details::log_msg& msg, spdlog::memory_buf_t& dest) {
    const std::string_view text(msg.payload.data(), msg.payload.size());
    const bool clean = std::none_of(text.begin(), text.end(), [](char ch) {
        const auto c = static_cast<unsigned char>(ch);
        return c < 0x20 || c == 0x7f || c == 0xc2 || c == 0xe2;
    });
    if (clean) {
        inner_->format(msg, dest);
        return;
    }
    const std::string escaped = escape_log(text);
    spdlog::details::log_msg copy = msg;
    copy.payload = spdlog::string_view_t(escaped.data(), escaped.size());
    inner_->format(copy, dest);
}

std::unique_ptr<spdlog::formatter> TextLogFormatter::clone() const {
    return std::make_unique<TextLogFormatter>();
}

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
        spdlog::set_formatter(std::make_unique<TextLogFormatter>());
    }
}

}  // namespace pqmcp::observe
