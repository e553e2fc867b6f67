// Byte buffers and their text encodings (hex, RFC 4648 base32).
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace pqmcp {

using Bytes = std::vector<std::uint8_t>;
using ByteView = std::span<const std::uint8_t>;

[[nodiscard]] inline ByteView as_bytes(std::string_view s) {
    return {reinterpret_cast<const std::uint8_t*>(s.data()), s.size()};
}

// Lower-case hex.
[[nodiscard]] std::string to_hex(ByteView data);
// Accepts upper and lower case; nullopt on odd length or a non-hex character.
[[nodiscard]] std::optional<Bytes> from_hex(std::string_view hex);

// RFC 4648 base32, lower case, without padding (as used in peer ids).
[[nodiscard]] std::string to_base32(ByteView data);
// Case-insensitive, padding optional; nullopt on a character outside the alphabet.
[[nodiscard]] std::optional<Bytes> from_base32(std::string_view text);

}  // namespace pqmcp
