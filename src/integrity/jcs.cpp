#include "pqmcp/integrity/jcs.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <vector>

#include <boost/json.hpp>

#include "pqmcp/crypto/util.hpp"
#include "pqmcp/integrity/scanner.hpp"

namespace pqmcp::integrity {

namespace json = boost::json;

namespace {

// The name as UTF-16 code units, for RFC 8785 section 3.2.3's sort order.
// Boost.JSON has validated the UTF-8 already.
std::u16string utf16(std::string_view s) {
    std::u16string out;
    out.reserve(s.size());
    for (std::size_t i = 0; i < s.size();) {
        const auto b = static_cast<unsigned char>(s[i]);
        char32_t cp = b;
        std::size_t len = 1;
        if (b >= 0xF0) {
            cp = b & 0x07U;
            len = 4;
        } else if (b >= 0xE0) {
            cp = b & 0x0FU;
            len = 3;
        } else if (b >= 0xC0) {
            cp = b & 0x1FU;
            len = 2;
        }
        for (std::size_t k = 1; k < len && i + k < s.size(); ++k) {
            cp = (cp << 6U) | (static_cast<unsigned char>(s[i + k]) & 0x3FU);
        }
        i += len;
        if (cp >= 0x10000) {
            cp -= 0x10000;
            out.push_back(static_cast<char16_t>(0xD800U + (cp >> 10U)));
            out.push_back(static_cast<char16_t>(0xDC00U + (cp & 0x3FFU)));
        } else {
            out.push_back(static_cast<char16_t>(cp));
        }
    }
    return out;
}

// RFC 8785 section 3.2.2.2: JSON.stringify's escapes, everything else as is.
void put_string(std::string& out, std::string_view s) {
    static constexpr char k_hex[] = "0123456789abcdef";
    out.push_back('"');
    std::size_t plain = 0;  // start of the run of characters copied as they are
    for (std::size_t i = 0; i < s.size(); ++i) {
        const char c = s[i];
        const auto u = static_cast<unsigned char>(c);
        if (u >= 0x20 && c != '"' && c != '\\') {
            continue;
        }
        out.append(s.data() + plain, i - plain);
        plain = i + 1;
        switch (c) {
            case '"':
                out += "\\\"";
                break;
            case '\\':
                out += "\\\\";
                break;
            case '\b':
                out += "\\b";
                break;
            case '\f':
                out += "\\f";
                break;
            case '\n':
                out += "\\n";
                break;
            case '\r':
                out += "\\r";
                break;
            case '\t':
                out += "\\t";
                break;
            default:
                out += "\\u00";
                out.push_back(k_hex[u >> 4U]);
                out.push_back(k_hex[u & 0x0FU]);
        }
    }
    out.append(s.data() + plain, s.size() - plain);
    out.push_back('"');
}

// RFC 8785 section 3.2.2.3: ECMAScript's Number::toString (ECMA-262
// 7.1.12.1) from the shortest round-tripping digits.
bool put_double(std::string& out, double d) {
    if (!std::isfinite(d)) {
        return false;
    }
    if (d == 0) {
        out.push_back('0');  // -0 too
        return true;
    }
    if (d < 0) {
        out.push_back('-');
        d = -d;
    }
    std::array<char, 64> buf{};
    const auto r =
        std::to_chars(buf.data(), buf.data() + buf.size(), d, std::chars_format::scientific);
    const std::string_view sci(buf.data(), static_cast<std::size_t>(r.ptr - buf.data()));
    const auto e = sci.find('e');
    std::string digits;
    for (const char c : sci.substr(0, e)) {
        if (c != '.') {
            digits.push_back(c);
        }
    }
    int exp10 = 0;
    std::from_chars(sci.data() + e + 1 + (sci[e + 1] == '+' ? 1 : 0), sci.data() + sci.size(),
                    exp10);
    const int k = static_cast<int>(digits.size());
    const int n = exp10 + 1;  // the decimal point sits after n digits
    if (k <= n && n <= 21) {
        out += digits;
        out.append(static_cast<std::size_t>(n - k), '0');
    } else if (0 < n && n <= 21) {
        out.append(digits, 0, static_cast<std::size_t>(n));
        out.push_back('.');
        out.append(digits, static_cast<std::size_t>(n));
    } else if (-6 < n && n <= 0) {
        out += "0.";
        out.append(static_cast<std::size_t>(-n), '0');
        out += digits;
    } else {
        out.push_back(digits[0]);
        if (k > 1) {
            out.push_back('.');
            out.append(digits, 1);
        }
        out.push_back('e');
        out.push_back(n - 1 < 0 ? '-' : '+');
        out += std::to_string(std::abs(n - 1));
    }
    return true;
}

constexpr std::int64_t k_exact = std::int64_t{1} << 53;

bool put(std::string& out, const json::value& v) {
    switch (v.kind()) {
        case json::kind::null:
            out += "null";
            return true;
        case json::kind::bool_:
            out += v.get_bool() ? "true" : "false";
            return true;
        case json::kind::int64: {
            const std::int64_t i = v.get_int64();
            if (i >= -k_exact && i <= k_exact) {
                out += std::to_string(i);
                return true;
            }
            return put_double(out, static_cast<double>(i));
        }
        case json::kind::uint64: {
            const std::uint64_t u = v.get_uint64();
            if (u <= static_cast<std::uint64_t>(k_exact)) {
                out += std::to_string(u);
                return true;
            }
            return put_double(out, static_cast<double>(u));
        }
        case json::kind::double_:
            return put_double(out, v.get_double());
        case json::kind::string:
            put_string(out, v.get_string());
            return true;
        case json::kind::array: {
            out.push_back('[');
            bool first = true;
            for (const auto& e : v.get_array()) {
                if (!first) {
                    out.push_back(',');
                }
                first = false;
                if (!put(out, e)) {
                    return false;
                }
            }
            out.push_back(']');
            return true;
        }
        case json::kind::object: {
            const auto& o = v.get_object();
            std::vector<const json::key_value_pair*> members;
            members.reserve(o.size());
            // UTF-8 byte order is code point order, which is UTF-16 order
            // except between U+E000..U+FFFF (lead bytes EE, EF) and
            // supplementary characters (F0..F4): only names with such bytes
            // need the UTF-16 comparison.
            bool wide = false;
            for (const auto& kv : o) {
                members.push_back(&kv);
                for (const char c : kv.key()) {
                    wide = wide || static_cast<unsigned char>(c) >= 0xEE;
                }
            }
            if (wide) {
                std::sort(members.begin(), members.end(), [](const auto* a, const auto* b) {
                    return utf16(a->key()) < utf16(b->key());
                });
            } else {
                std::sort(members.begin(), members.end(),
                          [](const auto* a, const auto* b) { return a->key() < b->key(); });
            }
            out.push_back('{');
            bool first = true;
            for (const auto* kv : members) {
                if (!first) {
                    out.push_back(',');
                }
                first = false;
                put_string(out, kv->key());
                out.push_back(':');
                if (!put(out, kv->value())) {
                    return false;
                }
            }
            out.push_back('}');
            return true;
        }
    }
    return false;
}

}  // namespace

Result<std::string> canonicalize(const json::value& value) {
    std::string out;
    out.reserve(4096);
    if (!put(out, value)) {
        return fail(Errc::bad_manifest, "a number that JSON cannot express (NaN or infinity)");
    }
    return out;
}

Result<std::string> canonical_digest(const json::value& value) {
    return canonicalize(value).map(
        [](const std::string& c) { return to_hex(crypto::sha256(as_bytes(c))); });
}

}  // namespace pqmcp::integrity
