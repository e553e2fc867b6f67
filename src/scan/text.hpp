// Internal: small text helpers the scan sources share.
#pragma once

#include <algorithm>
#include <cctype>
#include <initializer_list>
#include <string>
#include <string_view>

namespace pqmcp::scan {

inline std::string lower(std::string_view text) {
    std::string out(text);
    std::transform(out.begin(), out.end(), out.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    return out;
}

inline bool contains_any(std::string_view haystack,
                         std::initializer_list<std::string_view> needles) {
    return std::any_of(needles.begin(), needles.end(), [haystack](std::string_view n) {
        return haystack.find(n) != std::string_view::npos;
    });
}

}  // namespace pqmcp::scan
