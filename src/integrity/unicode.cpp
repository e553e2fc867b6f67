// The scanner's Unicode and text facts: UTF-8 decoding, character classes,
// excerpts, invisible characters, blobs, folding and confusable skeletons.
#include <algorithm>
#include <array>
#include <bitset>
#include <cctype>
#include <charconv>
#include <cstdio>
#include <optional>
#include <set>
#include <unordered_map>
#include <utility>

#include <fmt/format.h>
#include <unicode/ucasemap.h>
#include <unicode/uchar.h>

#include "scanner_parts.hpp"

namespace pqmcp::integrity::scanning {

// ---------------------------------------------------------------------------
// UTF-8 and character classes

bool is_continuation(char c) {
    return (static_cast<unsigned char>(c) & 0xC0U) == 0x80U;
}

CodePoint decode(std::string_view s, std::size_t i) {
    const auto b0 = static_cast<unsigned char>(s[i]);
    if (b0 < 0x80U) {
        return {b0, 1, true};
    }
    std::size_t n = 0;
    std::uint32_t cp = 0;
    std::uint32_t min = 0;
    if ((b0 & 0xE0U) == 0xC0U) {
        n = 2;
        cp = b0 & 0x1FU;
        min = 0x80;
    } else if ((b0 & 0xF0U) == 0xE0U) {
        n = 3;
        cp = b0 & 0x0FU;
        min = 0x800;
    } else if ((b0 & 0xF8U) == 0xF0U) {
        n = 4;
        cp = b0 & 0x07U;
        min = 0x10000;
    } else {
        return {};
    }
    if (i + n > s.size()) {
        return {};
    }
    for (std::size_t k = 1; k < n; ++k) {
        if (!is_continuation(s[i + k])) {
            return {};
        }
        cp = (cp << 6U) | (static_cast<unsigned char>(s[i + k]) & 0x3FU);
    }
    if (cp < min || cp > 0x10FFFFU || (cp >= 0xD800U && cp <= 0xDFFFU)) {
        return {};
    }
    return {cp, n, true};
}

bool is_ascii(std::string_view s) {
    return std::all_of(s.begin(), s.end(),
                       [](char c) { return static_cast<unsigned char>(c) < 0x80U; });
}

// The longest prefix of at most `max` bytes that does not end inside a UTF-8 sequence.
std::string_view utf8_prefix(std::string_view s, std::size_t max) {
    if (s.size() <= max) {
        return s;
    }
    std::size_t end = max;
    for (int k = 0; k < 3 && end > 0 && is_continuation(s[end]); ++k) {
        --end;
    }
    return s.substr(0, end);
}

bool is_tag(std::uint32_t c) {
    return c >= 0xE0000U && c <= 0xE007FU;
}

// Unicode 15 bidirectional embeddings (LRE, RLE, PDF, LRO, RLO) and isolates
// (LRI, RLI, FSI, PDI): the Trojan Source set. The marks (LRM, RLM, ALM) are
// ordinary in right-to-left text and are treated as invisible_format.
bool is_bidi_control(std::uint32_t c) {
    return (c >= 0x202AU && c <= 0x202EU) || (c >= 0x2066U && c <= 0x2069U);
}

// Characters that render as nothing or as a blank: the zero-width space and
// joiners, word joiner, BOM, invisible operators, soft hyphen, grapheme joiner,
// Mongolian vowel separator, Hangul fillers and the Khmer inherent vowels.
bool is_zero_width(std::uint32_t c) {
    switch (c) {
        case 0x00AD:
        case 0x034F:
        case 0x115F:
        case 0x1160:
        case 0x17B4:
        case 0x17B5:
        case 0x180E:
        case 0x200B:
        case 0x200C:
        case 0x200D:
        case 0x2060:
        case 0x2061:
        case 0x2062:
        case 0x2063:
        case 0x2064:
        case 0x3164:
        case 0xFEFF:
        case 0xFFA0:
            return true;
        default:
            return false;
    }
}

// Joiners and marks that are normal next to non-ASCII text (emoji sequences,
// Indic and Persian shaping, right-to-left marks): flagged only between ASCII.
bool is_contextual(std::uint32_t c) {
    return c == 0x200C || c == 0x200D || c == 0x200E || c == 0x200F || c == 0x061C;
}

bool is_variation_selector(std::uint32_t c) {
    return (c >= 0xFE00U && c <= 0xFE0FU) || (c >= 0xE0100U && c <= 0xE01EFU);
}

// Visible format characters of Arabic, Syriac and Kaithi number signs.
bool is_visible_format(std::uint32_t c) {
    return (c >= 0x0600U && c <= 0x0605U) || c == 0x06DD || c == 0x070F || c == 0x0890 ||
           c == 0x0891 || c == 0x08E2 || c == 0x110BD || c == 0x110CD;
}

bool is_invisible_format(std::uint32_t c) {
    if (c < 0x20U) {
        return c != '\t' && c != '\n' && c != '\r';
    }
    if (c < 0x7FU) {
        return false;
    }
    if (c <= 0x9FU || (c >= 0xE0100U && c <= 0xE01EFU)) {
        return true;
    }
    if (is_tag(c) || is_bidi_control(c) || is_zero_width(c) || is_visible_format(c)) {
        return false;
    }
    const auto u = static_cast<UChar32>(c);
    const auto type = static_cast<UCharCategory>(u_charType(u));
    if (type == U_FORMAT_CHAR || type == U_PRIVATE_USE_CHAR) {
        return true;
    }
    return type == U_UNASSIGNED &&
           (c >= 0x40000U || u_hasBinaryProperty(u, UCHAR_NONCHARACTER_CODE_POINT) != 0);
}

bool needs_escape(std::uint32_t c) {
    if (c >= 0x20U && c < 0x7FU) {
        return false;
    }
    if (c < 0xA0U || is_tag(c) || is_bidi_control(c) || is_zero_width(c) ||
        is_variation_selector(c)) {
        return true;
    }
    const auto type = static_cast<UCharCategory>(u_charType(static_cast<UChar32>(c)));
    return type == U_FORMAT_CHAR || type == U_PRIVATE_USE_CHAR || type == U_UNASSIGNED ||
           type == U_LINE_SEPARATOR || type == U_PARAGRAPH_SEPARATOR || type == U_SPACE_SEPARATOR ||
           type == U_CONTROL_CHAR;
}

// One code point as a person should see it: invisible and format characters as
// \u{XXXX}, bytes that are not UTF-8 as \x{XX}; all_non_ascii escapes every
// non-ASCII character (for names, where a Cyrillic "a" must show).
void render(std::string& out, std::string_view s, std::size_t i, const CodePoint& cp,
            bool all_non_ascii) {
    if (!cp.valid) {
        out += fmt::format("\\x{{{:02X}}}", static_cast<unsigned char>(s[i]));
    } else if (cp.value == '\n') {
        out += "\\n";
    } else if (cp.value == '\t') {
        out += "\\t";
    } else if (cp.value == '\r') {
        out += "\\r";
    } else if (needs_escape(cp.value) || (all_non_ascii && cp.value >= 0x80U)) {
        out += fmt::format("\\u{{{:X}}}", cp.value);
    } else {
        out.append(s.substr(i, cp.length));
    }
}

std::size_t rendered_size(std::string_view s, std::size_t i, const CodePoint& cp) {
    std::string tmp;
    render(tmp, s, i, cp, false);
    return tmp.size();
}

constexpr std::size_t k_excerpt_bytes = 120;
constexpr std::size_t k_excerpt_before = 40;
constexpr std::string_view k_ellipsis = "\u2026";

// At most ~120 bytes of `s` around byte offset `at`, starting up to ~40 bytes
// before it, cut only between code points, invisible characters rendered.
std::string excerpt(std::string_view s, std::size_t at) {
    at = std::min(at, s.size());
    for (int k = 0; k < 3 && at > 0 && at < s.size() && is_continuation(s[at]); ++k) {
        --at;
    }
    std::size_t start = at;
    std::size_t before = 0;
    while (start > 0 && before < k_excerpt_before) {
        std::size_t p = start - 1;
        for (int k = 0; k < 3 && p > 0 && is_continuation(s[p]); ++k) {
            --p;
        }
        CodePoint cp = decode(s, p);
        if (p + cp.length != start) {
            p = start - 1;
            cp = CodePoint{};
        }
        before += rendered_size(s, p, cp);
        start = p;
    }
    std::string out;
    if (start > 0) {
        out += k_ellipsis;
    }
    const std::size_t budget = out.size() + k_excerpt_bytes;
    std::size_t i = start;
    std::string piece;
    while (i < s.size()) {
        const CodePoint cp = decode(s, i);
        piece.clear();
        render(piece, s, i, cp, false);
        if (out.size() + piece.size() > budget) {
            break;
        }
        out += piece;
        i += cp.length;
    }
    if (i < s.size()) {
        out += k_ellipsis;
    }
    return out;
}

// A short string (a name) with every non-ASCII character escaped.
std::string shown(std::string_view s) {
    s = utf8_prefix(s, 64);
    std::string out;
    for (std::size_t i = 0; i < s.size();) {
        const CodePoint cp = decode(s, i);
        render(out, s, i, cp, true);
        i += cp.length;
    }
    return out;
}

// ---------------------------------------------------------------------------
// Structural checks

// The length of a well-formed tag spec and cancel tag at `at` (1 to 32 tag
// digits or lower-case letters, then U+E007F), or 0.
std::size_t emoji_tag_sequence(std::string_view s, std::size_t at) {
    std::size_t i = at;
    for (std::size_t n = 0; i < s.size() && n <= 32; ++n) {
        const CodePoint cp = decode(s, i);
        if (cp.value == 0xE007FU) {
            return n > 0 ? i + cp.length - at : 0;
        }
        if (!((cp.value >= 0xE0030U && cp.value <= 0xE0039U) ||
              (cp.value >= 0xE0061U && cp.value <= 0xE007AU))) {
            return 0;
        }
        i += cp.length;
    }
    return 0;
}

bool plain_ascii(std::string_view s) {
    return std::all_of(s.begin(), s.end(), [](char ch) {
        const auto b = static_cast<unsigned char>(ch);
        return (b >= 0x20U && b < 0x7FU) || b == '\t' || b == '\n' || b == '\r';
    });
}

UnicodeFacts unicode_facts(std::string_view s) {
    UnicodeFacts f;
    if (plain_ascii(s)) {
        return f;
    }
    std::uint32_t prev = 0;  // 0: start of the string (counts as ASCII)
    bool prev_vs = false;
    for (std::size_t i = 0; i < s.size();) {
        const CodePoint cp = decode(s, i);
        const std::uint32_t c = cp.value;
        std::size_t next_at = i + cp.length;
        if (c < 0x80U) {
            if (f.invisible == k_npos && is_invisible_format(c)) {
                f.invisible = i;
            }
        } else if (c == 0x1F3F4U) {
            // An emoji tag sequence (a subdivision flag, UTS #51 ED-14a) is
            // the one legitimate use of tag characters: skip it whole.
            next_at += emoji_tag_sequence(s, next_at);
        } else if (is_tag(c)) {
            f.tag = std::min(f.tag, i);
        } else if (is_bidi_control(c)) {
            f.bidi = std::min(f.bidi, i);
        } else if (is_contextual(c)) {
            const std::uint32_t next = next_at < s.size() ? decode(s, next_at).value : 0;
            if (prev < 0x80U && next < 0x80U) {
                if (c == 0x200C || c == 0x200D) {
                    f.zero_width = std::min(f.zero_width, i);
                } else {
                    f.invisible = std::min(f.invisible, i);
                }
            }
        } else if (is_zero_width(c)) {
            f.zero_width = std::min(f.zero_width, i);
        } else if (c >= 0xFE00U && c <= 0xFE0FU) {
            if (prev_vs) {
                f.invisible = std::min(f.invisible, i);
            }
        } else if (f.invisible == k_npos && cp.valid && is_invisible_format(c)) {
            f.invisible = i;
        }
        prev_vs = c >= 0xFE00U && c <= 0xFE0FU;
        prev = c;
        i = next_at;
    }
    return f;
}

bool is_ascii_alnum(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

bool is_blob_char(char c) {
    return is_ascii_alnum(c) || c == '+' || c == '/' || c == '=' || c == '_' || c == '-';
}

// The offset of the first run of base64 (standard or URL-safe) or hex of at
// least min_length characters that looks random rather than like a word or a path.
std::optional<std::size_t> find_blob(std::string_view s, std::size_t min_length) {
    if (min_length == 0 || s.size() < min_length) {
        return std::nullopt;
    }
    for (std::size_t i = 0; i < s.size();) {
        if (!is_blob_char(s[i])) {
            ++i;
            continue;
        }
        std::size_t j = i;
        bool upper = false;
        bool lower = false;
        bool digit = false;
        bool hex = true;
        std::size_t separators = 0;
        std::bitset<128> seen;
        for (; j < s.size() && is_blob_char(s[j]); ++j) {
            const auto c = static_cast<unsigned char>(s[j]);
            seen.set(c);
            upper = upper || std::isupper(c) != 0;
            lower = lower || std::islower(c) != 0;
            digit = digit || std::isdigit(c) != 0;
            hex = hex && std::isxdigit(c) != 0;
            separators += (c == '/' || c == '_' || c == '-') ? 1U : 0U;
        }
        const std::size_t length = j - i;
        if (length >= min_length) {
            if (hex && digit && (upper || lower) && seen.count() >= 10) {
                return i;
            }
            if (upper && lower && digit && separators * 16 <= length && seen.count() >= 24) {
                return i;
            }
        }
        i = j;
    }
    return std::nullopt;
}

std::string ascii_fold(std::string_view s) {
    std::string out;
    out.reserve(s.size());
    for (const char c : s) {
        if (c != '-' && c != '_' && c != '.' && c != ' ') {
            out += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
        }
    }
    return out;
}

// Case-folded (ICU full folding), without "-", "_", "." and spaces.
std::string fold(const RuleSet& r, std::string_view s) {
    if (is_ascii(s)) {
        return ascii_fold(s);
    }
    UErrorCode status = U_ZERO_ERROR;
    std::string out(s.size() * 2 + 8, '\0');
    const auto length = static_cast<std::int32_t>(s.size());
    auto n =
        ucasemap_utf8FoldCase(r.case_map.getAlias(), out.data(),
                              static_cast<std::int32_t>(out.size()), s.data(), length, &status);
    if (status == U_BUFFER_OVERFLOW_ERROR) {
        status = U_ZERO_ERROR;
        out.assign(static_cast<std::size_t>(n), '\0');
        n = ucasemap_utf8FoldCase(r.case_map.getAlias(), out.data(), n, s.data(), length, &status);
    }
    if (U_FAILURE(status)) {
        return ascii_fold(s);
    }
    out.resize(static_cast<std::size_t>(n));
    std::erase_if(out, [](char c) { return c == '-' || c == '_' || c == '.' || c == ' '; });
    return out;
}

std::string icu_skeleton(const USpoofChecker* checker, std::string_view s) {
    UErrorCode status = U_ZERO_ERROR;
    std::string out(s.size() * 3 + 8, '\0');
    const auto length = static_cast<std::int32_t>(s.size());
    auto n = uspoof_getSkeletonUTF8(checker, 0, s.data(), length, out.data(),
                                    static_cast<std::int32_t>(out.size()), &status);
    if (status == U_BUFFER_OVERFLOW_ERROR) {
        status = U_ZERO_ERROR;
        out.assign(static_cast<std::size_t>(n), '\0');
        n = uspoof_getSkeletonUTF8(checker, 0, s.data(), length, out.data(), n, &status);
    }
    if (U_FAILURE(status)) {
        return std::string(s);
    }
    out.resize(static_cast<std::size_t>(n));
    return out;
}

// UTS #39 skeleton. For ASCII the skeleton is the concatenation of each
// character's (NFD is the identity there), precomputed at load.
std::string skeleton(const RuleSet& r, std::string_view s) {
    if (!is_ascii(s)) {
        return icu_skeleton(r.skeletons.getAlias(), s);
    }
    std::string out;
    out.reserve(s.size());
    for (const char c : s) {
        out += r.ascii_skeleton.at(static_cast<unsigned char>(c));
    }
    return out;
}

NameKeys name_keys(const RuleSet& r, std::string_view name) {
    NameKeys keys{fold(r, skeleton(r, name)), skeleton(r, fold(r, name)), {}, fold(r, name)};
    // UTS #39 keeps a lower-case "i" apart from "l", and "vv" from "w"; in a
    // name, "edlt_file" is read as "edit_file" all the same.
    std::string& loose = keys.loose;
    for (std::size_t i = 0; i < keys.folded_skeleton.size(); ++i) {
        const char c = keys.folded_skeleton[i];
        if (c == 'v' && i + 1 < keys.folded_skeleton.size() && keys.folded_skeleton[i + 1] == 'v') {
            loose += 'w';  // "vv" for "w", which the skeleton leaves apart too
            ++i;
        } else {
            loose += c == 'i' ? 'l' : c;
        }
    }
    return keys;
}

bool mixed_script(const RuleSet& r, std::string_view s) {
    if (is_ascii(s)) {
        return false;
    }
    UErrorCode status = U_ZERO_ERROR;
    const auto result = uspoof_check2UTF8(r.scripts.getAlias(), s.data(),
                                          static_cast<std::int32_t>(s.size()), nullptr, &status);
    return U_SUCCESS(status) && result != 0;
}

bool is_name_char(char c) {
    return is_ascii_alnum(c) || c == '_' || c == '-' || c == '.';
}

// A name that reads as an identifier (read_file, getEnv, fs.read) rather than
// as an English word (search, echo): its mere mention is a reference.
bool identifier_like(std::string_view name) {
    for (std::size_t i = 0; i < name.size(); ++i) {
        const auto c = static_cast<unsigned char>(name[i]);
        if (c == '_' || c == '-' || c == '.' || std::isdigit(c) != 0 ||
            (i > 0 && std::isupper(c) != 0)) {
            return true;
        }
    }
    return false;
}

// The mention at [begin, end) is quoted (`x`, 'x', "x") or followed by "tool".
bool marked_as_name(std::string_view s, std::size_t begin, std::size_t end) {
    if (begin > 0 && end < s.size() && s[begin - 1] == s[end] &&
        (s[end] == '`' || s[end] == '\'' || s[end] == '"')) {
        return true;
    }
    std::size_t i = end;
    while (i < s.size() && s[i] == ' ') {
        ++i;
    }
    if (i == end || i + 4 > s.size()) {
        return false;
    }
    std::string word(s.substr(i, 4));
    std::transform(word.begin(), word.end(), word.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    return word == "tool" &&
           (i + 4 == s.size() || !std::isalpha(static_cast<unsigned char>(s[i + 4])) ||
            s[i + 4] == 's');
}

}  // namespace pqmcp::integrity::scanning
