// Durations as people write them in configuration: "30s", "500ms", "10m", "2h",
// or a plain number of seconds.
#pragma once

#include <chrono>
#include <string>
#include <string_view>

#include <tl/expected.hpp>

namespace pqmcp {

// More than 0 and at most 7 days; the error says what is wrong with `text`.
[[nodiscard]] tl::expected<std::chrono::milliseconds, std::string> parse_duration(
    std::string_view text);

}  // namespace pqmcp
