#include "pqmcp/core/duration.hpp"

#include <cctype>
#include <charconv>
#include <cstdint>

namespace pqmcp {

tl::expected<std::chrono::milliseconds, std::string> parse_duration(std::string_view text) {
    std::size_t i = 0;
    while (i < text.size() && std::isdigit(static_cast<unsigned char>(text[i])) != 0) {
        ++i;
    }
    std::uint64_t value = 0;
    if (i == 0 || i > 12 ||
        std::from_chars(text.data(), text.data() + i, value).ptr != text.data() + i) {
        return tl::unexpected("\"" + std::string(text) +
                              "\" is not a duration (e.g. 30s, 500ms, 10m, 2h)");
    }
    const std::string_view unit = text.substr(i);
    std::uint64_t ms = 0;
    if (unit.empty() || unit == "s") {
        ms = value * 1'000;
    } else if (unit == "ms") {
        ms = value;
    } else if (unit == "m") {
        ms = value * 60'000;
    } else if (unit == "h") {
        ms = value * 3'600'000;
    } else {
        return tl::unexpected("\"" + std::string(text) + "\": unknown unit (use ms, s, m or h)");
    }
    if (ms == 0 || ms > std::uint64_t{7} * 24 * 3'600'000) {
        return tl::unexpected("\"" + std::string(text) +
                              "\": must be more than 0 and at most 7 days");
    }
    return std::chrono::milliseconds{static_cast<std::int64_t>(ms)};
}

}  // namespace pqmcp
