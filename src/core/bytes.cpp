#include "pqmcp/core/bytes.hpp"

#include <array>

namespace pqmcp {
namespace {

constexpr std::string_view k_hex_digits = "0123456789abcdef";
constexpr std::string_view k_base32_alphabet = "abcdefghijklmnopqrstuvwxyz234567";

int hex_value(char c) {
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    if (c >= 'A' && c <= 'F') {
        return c - 'A' + 10;
    }
    return -1;
}

int base32_value(char c) {
    if (c >= 'a' && c <= 'z') {
        return c - 'a';
    }
    if (c >= 'A' && c <= 'Z') {
        return c - 'A';
    }
    if (c >= '2' && c <= '7') {
        return c - '2' + 26;
    }
    return -1;
}

}  // namespace

std::string to_hex(ByteView data) {
    std::string out(data.size() * 2, '\0');
    std::size_t i = 0;
    for (const std::uint8_t b : data) {
        out[i++] = k_hex_digits[b >> 4U];
        out[i++] = k_hex_digits[b & 0x0FU];
    }
    return out;
}

std::optional<Bytes> from_hex(std::string_view hex) {
    if (hex.size() % 2 != 0) {
        return std::nullopt;
    }
    Bytes out;
    out.reserve(hex.size() / 2);
    for (std::size_t i = 0; i < hex.size(); i += 2) {
        const int hi = hex_value(hex[i]);
        const int lo = hex_value(hex[i + 1]);
        if (hi < 0 || lo < 0) {
            return std::nullopt;
        }
        out.push_back(static_cast<std::uint8_t>((hi << 4) | lo));
    }
    return out;
}

std::string to_base32(ByteView data) {
    std::string out;
    out.reserve((data.size() * 8 + 4) / 5);
    std::uint32_t buffer = 0;
    unsigned bits = 0;
    for (const std::uint8_t b : data) {
        buffer = (buffer << 8U) | b;
        bits += 8;
        while (bits >= 5) {
            bits -= 5;
            out.push_back(k_base32_alphabet[(buffer >> bits) & 0x1FU]);
        }
    }
    if (bits > 0) {
        out.push_back(k_base32_alphabet[(buffer << (5 - bits)) & 0x1FU]);
    }
    return out;
}

std::optional<Bytes> from_base32(std::string_view text) {
    while (!text.empty() && text.back() == '=') {
        text.remove_suffix(1);
    }
    Bytes out;
    out.reserve(text.size() * 5 / 8);
    std::uint32_t buffer = 0;
    unsigned bits = 0;
    for (const char c : text) {
        const int v = base32_value(c);
        if (v < 0) {
            return std::nullopt;
        }
        buffer = (buffer << 5U) | static_cast<std::uint32_t>(v);
        bits += 5;
        if (bits >= 8) {
            bits -= 8;
            out.push_back(static_cast<std::uint8_t>((buffer >> bits) & 0xFFU));
        }
    }
    return out;
}

}  // namespace pqmcp
