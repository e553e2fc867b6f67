// The tool-poisoning scanner: the rule file's loader (errors with origin:line,
// every RE2 compiled at load) and the walk over a definition's strings, with
// one RE2::Set pass per string and the structural checks in code.
#include <algorithm>
#include <array>
#include <bitset>
#include <cctype>
#include <charconv>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <optional>
#include <set>
#include <sstream>
#include <unordered_map>
#include <utility>

#include <fmt/format.h>
#include <re2/re2.h>
#include <re2/set.h>
#include <unicode/localpointer.h>
#include <unicode/ucasemap.h>
#include <unicode/uchar.h>
#include <unicode/uspoof.h>
#include <yaml-cpp/yaml.h>

#include "pqmcp/integrity/scanner.hpp"
#include "pqmcp/yaml/reader.hpp"

namespace pqmcp::integrity {

namespace detail {
extern const std::string_view k_builtin_rules;
}  // namespace detail

namespace {

namespace json = boost::json;

constexpr std::size_t k_npos = std::string_view::npos;
constexpr std::string_view k_key_field = "(key)";

enum class Check : std::uint8_t {
    pattern,
    long_text,
    encoded_blob,
    unicode_tags,
    zero_width,
    bidi_control,
    invisible_format,
    mixed_script,
    name_collision,
    name_imitation,
    well_known_imitation,
    shadowing,
    scan_limit,
};

struct CheckInfo {
    std::string_view name;
    Check check;
    std::string_view parameter;  // the one required parameter, if any
};

constexpr std::array<CheckInfo, 12> k_checks = {{
    {"long_text", Check::long_text, "max_bytes"},
    {"encoded_blob", Check::encoded_blob, "min_length"},
    {"unicode_tags", Check::unicode_tags, ""},
    {"zero_width", Check::zero_width, ""},
    {"bidi_control", Check::bidi_control, ""},
    {"invisible_format", Check::invisible_format, ""},
    {"mixed_script", Check::mixed_script, ""},
    {"name_collision", Check::name_collision, ""},
    {"name_imitation", Check::name_imitation, ""},
    {"well_known_imitation", Check::well_known_imitation, ""},
    {"shadowing", Check::shadowing, ""},
    {"scan_limit", Check::scan_limit, ""},
}};

constexpr unsigned k_tool = 1U;
constexpr unsigned k_prompt = 2U;
constexpr unsigned k_template = 4U;

unsigned kind_bit(std::string_view kind) {
    if (kind == "tool") {
        return k_tool;
    }
    if (kind == "prompt") {
        return k_prompt;
    }
    if (kind == "resourceTemplate") {
        return k_template;
    }
    return 0;
}

// The members of a definition that reach the model, per kind (MCP 2025-06-18
// Tool, Prompt, ResourceTemplate); other members (_meta, icons, execution) are
// not scanned. An unknown kind has every member scanned.
bool scanned_member(unsigned kind, std::string_view key) {
    if (key == "name" || key == "title" || key == "description") {
        return true;
    }
    switch (kind) {
        case k_tool:
            return key == "inputSchema" || key == "outputSchema" || key == "annotations";
        case k_prompt:
            return key == "arguments";
        case k_template:  // and a resource (uri instead of uriTemplate), scanned as one
            return key == "uriTemplate" || key == "uri" || key == "mimeType";
        default:
            return true;
    }
}

// Two names imitate each other when a key matches: the skeleton then folded
// catches "Read-FiIe" for "read_file"; folded then skeleton catches
// "READ_FILE" (whose "I" the skeleton alone maps to "l"); the loose key also
// takes "i" for "l" ("edlt_file") and "vv" for "w".
struct NameKeys {
    std::string skeleton_folded;
    std::string folded_skeleton;
    std::string loose;
    std::string folded;  // case, "-", "_", "." and " " ignored, nothing else

    [[nodiscard]] bool matches(const NameKeys& o) const {
        return (!skeleton_folded.empty() && skeleton_folded == o.skeleton_folded) ||
               (!folded_skeleton.empty() && folded_skeleton == o.folded_skeleton) ||
               (!loose.empty() && loose == o.loose);
    }
};

struct Rule {
    std::string id;
    Severity severity = Severity::info;
    std::string rationale;
    Check check = Check::pattern;
    std::unique_ptr<const re2::RE2> regex;
    std::size_t parameter = 0;  // max_bytes or min_length
    unsigned kinds = 0;         // 0: every kind
    std::vector<std::string> fields;
    std::vector<std::string> not_fields;
    std::uint64_t field_mask = ~std::uint64_t{0};  // over RuleSet::field_names, see field_bit
    // well_known_imitation: the names, and their keys (made once ICU is open).
    std::vector<std::string> names;
    std::vector<NameKeys> name_keys;

    [[nodiscard]] bool applies(unsigned kind, std::uint64_t field_bit) const {
        return (kinds == 0 || (kinds & kind) != 0) && (field_mask & field_bit) != 0;
    }
};

constexpr std::size_t k_max_field_names = 63;
constexpr std::uint64_t k_other_field = std::uint64_t{1} << k_max_field_names;

// Everything a loaded rule file is; immutable after load, shared by every scan.
struct RuleSet {
    std::vector<Rule> rules;
    std::unique_ptr<re2::RE2::Set> set;
    std::vector<std::size_t> set_rules;    // RE2::Set index -> rules index
    std::vector<std::size_t> check_rules;  // the structural checks, in file order
    std::vector<std::string> field_names;  // every name in a fields: or not_fields:
    std::size_t max_string_bytes = 65536;
    std::size_t max_depth = 48;
    icu::LocalUSpoofCheckerPointer skeletons;  // confusable skeletons
    icu::LocalUSpoofCheckerPointer scripts;    // restriction level (mixed scripts)
    icu::LocalUCaseMapPointer case_map;
    std::array<std::string, 128> ascii_skeleton;  // the skeleton of each ASCII character
};

// A field as one bit of Rule::field_mask: its index among the names the rules
// mention, or the bit of every other field.
std::uint64_t field_bit(const RuleSet& r, std::string_view field) {
    for (std::size_t i = 0; i < r.field_names.size(); ++i) {
        if (r.field_names[i] == field) {
            return std::uint64_t{1} << i;
        }
    }
    return k_other_field;
}

// ---------------------------------------------------------------------------
// UTF-8 and character classes

struct CodePoint {
    std::uint32_t value = 0xFFFD;
    std::size_t length = 1;
    bool valid = false;
};

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

struct UnicodeFacts {
    std::size_t tag = k_npos;
    std::size_t bidi = k_npos;
    std::size_t zero_width = k_npos;
    std::size_t invisible = k_npos;
};

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

// ---------------------------------------------------------------------------
// The walk

class Walker {
  public:
    Walker(const RuleSet& rules, std::string_view kind, const json::object& definition,
           const ScanContext& context)
        : rules_(rules), kind_(kind_bit(kind)), context_(context) {
        if (const auto* name = definition.if_contains("name"); name && name->is_string()) {
            own_name_ = name->get_string();
        }
        for (const auto& other : context_.others) {
            if (other.upstream == context_.upstream || other.name.empty() ||
                other.name == own_name_) {
                continue;
            }
            if (std::all_of(other.name.begin(), other.name.end(), is_name_char)) {
                other_names_.emplace(other.name, &other);
            } else {
                other_phrases_.push_back(&other);
            }
        }
    }

    std::vector<Finding> run(const json::object& definition) {
        for (const auto& member : definition) {
            if (!scanned_member(kind_, member.key())) {
                continue;
            }
            const std::size_t mark = pointer_.size();
            push(member.key());
            value(member.value(), member.key(), 1);
            pointer_.resize(mark);
        }
        if (const auto* name = definition.if_contains("name"); name && name->is_string()) {
            pointer_ = "/name";
            names(name->get_string());
        }
        std::sort(findings_.begin(), findings_.end(), [](const Finding& a, const Finding& b) {
            if (a.severity != b.severity) {
                return a.severity > b.severity;
            }
            if (a.pointer != b.pointer) {
                return a.pointer < b.pointer;
            }
            return a.rule < b.rule;
        });
        return std::move(findings_);
    }

  private:
    // RFC 6901: "~" is written "~0" and "/" is written "~1" in a reference token.
    void push(std::string_view token) {
        pointer_ += '/';
        for (const char c : token) {
            if (c == '~') {
                pointer_ += "~0";
            } else if (c == '/') {
                pointer_ += "~1";
            } else {
                pointer_ += c;
            }
        }
    }

    void value(const json::value& v, std::string_view field, std::size_t depth) {
        if (depth > rules_.max_depth && (v.is_object() || v.is_array())) {
            limit(fmt::format("nested deeper than {} levels; not scanned", rules_.max_depth));
            return;
        }
        if (v.is_string()) {
            text(v.get_string(), field);
        } else if (v.is_array()) {
            std::size_t index = 0;
            for (const auto& item : v.get_array()) {
                const std::size_t mark = pointer_.size();
                pointer_ += '/';
                pointer_ += std::to_string(index++);
                value(item, field, depth + 1);
                pointer_.resize(mark);
            }
        } else if (v.is_object()) {
            for (const auto& member : v.get_object()) {
                const std::size_t mark = pointer_.size();
                push(member.key());
                text(member.key(), k_key_field);
                value(member.value(), member.key(), depth + 1);
                pointer_.resize(mark);
            }
        }
    }

    void text(std::string_view full, std::string_view field_name) {
        const std::uint64_t field = field_bit(rules_, field_name);
        std::string_view s = full;
        if (s.size() > rules_.max_string_bytes) {
            s = utf8_prefix(s, rules_.max_string_bytes);
            limit(fmt::format("{} bytes; the first {} scanned", full.size(), s.size()));
        }
        patterns(s, field);
        std::optional<UnicodeFacts> facts;
        const auto unicode = [&facts, s]() -> const UnicodeFacts& {
            if (!facts) {
                facts = unicode_facts(s);
            }
            return *facts;
        };
        for (const std::size_t r : rules_.check_rules) {
            const Rule& rule = rules_.rules[r];
            if (!rule.applies(kind_, field)) {
                continue;
            }
            std::size_t at = k_npos;
            switch (rule.check) {
                case Check::long_text:
                    if (full.size() > rule.parameter) {
                        add(r, fmt::format("{} ({} bytes)", excerpt(s, 0), full.size()));
                    }
                    break;
                case Check::encoded_blob:
                    at = find_blob(s, rule.parameter).value_or(k_npos);
                    break;
                case Check::unicode_tags:
                    at = unicode().tag;
                    break;
                case Check::zero_width:
                    at = unicode().zero_width;
                    break;
                case Check::bidi_control:
                    at = unicode().bidi;
                    break;
                case Check::invisible_format:
                    at = unicode().invisible;
                    break;
                case Check::mixed_script:
                    if (mixed_script(rules_, s)) {
                        add(r, shown(s));
                    }
                    break;
                case Check::shadowing:
                    at = shadowing(s);
                    break;
                default:
                    break;
            }
            if (at != k_npos) {
                add(r, excerpt(s, at));
            }
        }
    }

    void patterns(std::string_view s, std::uint64_t field) {
        if (!rules_.set) {
            return;
        }
        // Most strings match nothing: a first pass without the match list
        // (which RE2 allocates per call) settles those.
        re2::RE2::Set::ErrorInfo error{};
        if (!rules_.set->Match(s, nullptr, &error) && error.kind == re2::RE2::Set::kNoError) {
            return;
        }
        matched_.clear();
        if (!rules_.set->Match(s, &matched_, &error) && error.kind != re2::RE2::Set::kNoError) {
            // The set's DFA ran out of memory on this text: the rules one by one,
            // still in linear time each.
            matched_.clear();
            for (std::size_t i = 0; i < rules_.set_rules.size(); ++i) {
                if (re2::RE2::PartialMatch(s, *rules_.rules[rules_.set_rules[i]].regex)) {
                    matched_.push_back(static_cast<int>(i));
                }
            }
        }
        for (const int i : matched_) {
            const std::size_t r = rules_.set_rules.at(static_cast<std::size_t>(i));
            const Rule& rule = rules_.rules[r];
            if (!rule.applies(kind_, field) || seen(r)) {
                continue;
            }
            re2::StringPiece match;
            if (rule.regex->Match(s, 0, s.size(), re2::RE2::UNANCHORED, &match, 1)) {
                add(r, excerpt(s, static_cast<std::size_t>(match.data() - s.data())));
            }
        }
    }

    // The offset of the first mention of another upstream's item, or npos.
    std::size_t shadowing(std::string_view s) const {
        for (std::size_t i = 0; i < s.size() && !other_names_.empty();) {
            if (!is_name_char(s[i])) {
                ++i;
                continue;
            }
            std::size_t j = i;
            while (j < s.size() && is_name_char(s[j])) {
                ++j;
            }
            std::string_view token = s.substr(i, j - i);
            while (!token.empty() && (token.back() == '.' || token.back() == '-')) {
                token.remove_suffix(1);
            }
            if (!token.empty() && other_names_.contains(token) &&
                (identifier_like(token) || marked_as_name(s, i, i + token.size()))) {
                return i;
            }
            i = j;
        }
        for (const auto* other : other_phrases_) {
            if (const auto at = s.find(other->name); at != k_npos) {
                return at;
            }
        }
        return k_npos;
    }

    void names(std::string_view name) {
        std::optional<NameKeys> own;
        for (const std::size_t r : rules_.check_rules) {
            const Rule& rule = rules_.rules[r];
            const bool collision = rule.check == Check::name_collision;
            const bool well_known = rule.check == Check::well_known_imitation;
            if ((!collision && !well_known && rule.check != Check::name_imitation) ||
                !rule.applies(kind_, field_bit(rules_, "name"))) {
                continue;
            }
            if (well_known) {
                if (!own) {
                    own = name_keys(rules_, name);
                }
                for (std::size_t k = 0; k < rule.names.size() && !seen(r); ++k) {
                    // The same letters (another case, "-" for "_") are the tool
                    // itself, or a fair copy of its interface: not an imitation.
                    if (own->folded != rule.name_keys[k].folded &&
                        own->matches(rule.name_keys[k])) {
                        add(r, fmt::format("{} looks like the well-known tool {}", shown(name),
                                           shown(rule.names[k])));
                    }
                }
                continue;
            }
            for (const auto& other : context_.others) {
                if (other.upstream == context_.upstream || seen(r)) {
                    continue;
                }
                if (collision && other.name == name) {
                    add(r, fmt::format("{} (also on upstream {})", shown(name),
                                       shown(other.upstream)));
                } else if (!collision && other.name != name) {
                    if (!own) {
                        own = name_keys(rules_, name);
                    }
                    if (own->matches(name_keys(rules_, other.name))) {
                        add(r, fmt::format("{} looks like {} (upstream {})", shown(name),
                                           shown(other.name), shown(other.upstream)));
                    }
                }
            }
        }
    }

    void limit(const std::string& detail) {
        if (limit_reported_) {
            return;
        }
        limit_reported_ = true;
        for (const std::size_t r : rules_.check_rules) {
            if (rules_.rules[r].check == Check::scan_limit &&
                rules_.rules[r].applies(kind_, ~std::uint64_t{0})) {
                add(r, detail);
            }
        }
    }

    [[nodiscard]] bool seen(std::size_t rule) const {
        return seen_.contains(std::make_pair(rule, pointer_));
    }

    void add(std::size_t r, std::string excerpt_text) {
        if (!seen_.emplace(r, pointer_).second) {
            return;
        }
        const Rule& rule = rules_.rules[r];
        findings_.push_back(
            Finding{rule.id, rule.severity, pointer_, std::move(excerpt_text), rule.rationale});
    }

    const RuleSet& rules_;
    unsigned kind_;
    const ScanContext& context_;
    std::string own_name_;
    std::unordered_map<std::string_view, const ScanContext::Other*> other_names_;
    std::vector<const ScanContext::Other*> other_phrases_;
    std::string pointer_;
    std::vector<int> matched_;
    std::vector<Finding> findings_;
    std::set<std::pair<std::size_t, std::string>> seen_;
    bool limit_reported_ = false;
};

// ---------------------------------------------------------------------------
// Loading

using yaml::Reader;

bool valid_id(std::string_view id) {
    return !id.empty() && id.size() <= 128 && std::all_of(id.begin(), id.end(), [](char c) {
        return std::isalnum(static_cast<unsigned char>(c)) != 0 || c == '-' || c == '_' || c == '.';
    });
}

std::string check_list() {
    std::string out;
    for (const auto& c : k_checks) {
        out += out.empty() ? "" : ", ";
        out += c.name;
    }
    return out;
}

void read_check(const Reader& r, const YAML::Node& node, const std::string& at, Rule& rule) {
    const std::string name = r.string(node["check"], at + ".check");
    const auto* info = std::find_if(k_checks.begin(), k_checks.end(),
                                    [&name](const CheckInfo& c) { return c.name == name; });
    if (info == k_checks.end()) {
        r.error(node["check"], fmt::format("{}.check: unknown check \"{}\" (expected one of: {})",
                                           at, name, check_list()));
    }
    rule.check = info->check;
    for (const std::string_view parameter : {"max_bytes", "min_length"}) {
        const std::string key(parameter);
        if (node[key] && parameter != info->parameter) {
            r.error(node[key], fmt::format("{}.{}: check {} takes no {}", at, key, name, key));
        }
    }
    if (info->check == Check::well_known_imitation) {
        if (!node["names"]) {
            r.error(node, fmt::format("{}: check {} needs names: (a list)", at, name));
        }
        rule.names = r.strings(node["names"], at + ".names");
        if (rule.names.empty()) {
            r.error(node["names"], at + ".names: expected at least one name");
        }
    } else if (node["names"]) {
        r.error(node["names"], fmt::format("{}.names: check {} takes no names", at, name));
    }
    if (!info->parameter.empty()) {
        const std::string key(info->parameter);
        if (!node[key]) {
            r.error(node, fmt::format("{}: check {} needs {}:", at, name, key));
        }
        rule.parameter = r.size(node[key], at + "." + key, 1, 1U << 24U);
    }
}

void read_pattern(const Reader& r, const YAML::Node& node, const std::string& at, Rule& rule) {
    const std::string pattern = r.string(node["pattern"], at + ".pattern");
    re2::RE2::Options options;
    options.set_log_errors(false);
    auto re = std::make_unique<const re2::RE2>(pattern, options);
    if (!re->ok()) {
        r.error(node["pattern"], at + ".pattern: not a valid RE2 expression: " + re->error());
    }
    rule.regex = std::move(re);
}

Rule read_rule(const Reader& r, const YAML::Node& node, const std::string& where,
               std::set<std::string>& ids) {
    r.only(node, where,
           {"id", "severity", "rationale", "pattern", "check", "kinds", "fields", "not_fields",
            "max_bytes", "min_length", "names"});
    Rule rule;
    if (!node["id"]) {
        r.error(node, where + ": every rule needs an id");
    }
    rule.id = r.string(node["id"], where + ".id");
    if (!valid_id(rule.id)) {
        r.error(node["id"], where + ".id: \"" + rule.id + "\": use letters, digits, . - _");
    }
    if (!ids.insert(rule.id).second) {
        r.error(node["id"], where + ".id: \"" + rule.id + "\" is used twice");
    }
    const std::string at = "rule " + rule.id;
    if (!node["severity"]) {
        r.error(node, at + ": severity: (info, low, medium, high or critical) is required");
    }
    const std::string severity = r.string(node["severity"], at + ".severity");
    const auto parsed = parse_severity(severity);
    if (!parsed) {
        r.error(node["severity"], at +
                                      ".severity: expected info, low, medium, high or critical, "
                                      "not \"" +
                                      severity + "\"");
    }
    rule.severity = *parsed;
    if (!node["rationale"] || r.string(node["rationale"], at + ".rationale").empty()) {
        r.error(node, at + ": rationale: (why the rule exists) is required");
    }
    rule.rationale = r.string(node["rationale"], at + ".rationale");
    if (node["pattern"] && node["check"]) {
        r.error(node["check"], at + ": either pattern: or check:, not both");
    }
    if (node["pattern"]) {
        read_pattern(r, node, at, rule);
        for (const char* key : {"max_bytes", "min_length", "names"}) {
            if (node[key]) {
                r.error(node[key], fmt::format("{}.{}: only for a check", at, key));
            }
        }
    } else if (node["check"]) {
        read_check(r, node, at, rule);
    } else {
        r.error(node, at + ": needs pattern: (RE2) or check: (" + check_list() + ")");
    }
    if (node["kinds"]) {
        for (const auto& kind : r.strings(node["kinds"], at + ".kinds")) {
            const unsigned bit = kind_bit(kind);
            if (bit == 0) {
                r.error(node["kinds"], fmt::format("{}.kinds: unknown kind \"{}\" (expected tool, "
                                                   "prompt or resourceTemplate)",
                                                   at, kind));
            }
            rule.kinds |= bit;
        }
    }
    if (node["fields"] && node["not_fields"]) {
        r.error(node["not_fields"], at + ": fields: and not_fields: exclude each other");
    }
    if (node["fields"]) {
        rule.fields = r.strings(node["fields"], at + ".fields");
    }
    if (node["not_fields"]) {
        rule.not_fields = r.strings(node["not_fields"], at + ".not_fields");
    }
    return rule;
}

// The pattern with every bounded repetition {m,n} opened to {m,}: a superset
// of the language without the counters, whose combinations make the set's DFA
// explode (all of them at once, restarting at every word). Braces inside a
// character class or after a backslash are literal and stay.
std::string relaxed(std::string_view pattern) {
    std::string out;
    out.reserve(pattern.size());
    bool in_class = false;
    for (std::size_t i = 0; i < pattern.size(); ++i) {
        const char c = pattern[i];
        if (c == '\\' && i + 1 < pattern.size()) {
            out += pattern.substr(i, 2);
            ++i;
            continue;
        }
        if (in_class) {
            in_class = c != ']' || out.back() == '[' || out.ends_with("[^");
        } else if (c == '[') {
            in_class = true;
        } else if (c == '{') {
            const auto close = pattern.find('}', i);
            const auto comma = pattern.find(',', i);
            const auto digits = [&](std::size_t from, std::size_t to) {
                return from < to && std::all_of(pattern.begin() + static_cast<std::ptrdiff_t>(from),
                                                pattern.begin() + static_cast<std::ptrdiff_t>(to),
                                                [](char d) { return d >= '0' && d <= '9'; });
            };
            if (close != k_npos && comma < close && digits(i + 1, comma) &&
                digits(comma + 1, close)) {
                out += pattern.substr(i, comma + 1 - i);
                out += '}';
                i = close;
                continue;
            }
        }
        out += c;
    }
    return out;
}

void read_limits(const Reader& r, const YAML::Node& node, RuleSet& set) {
    r.only(node, "limits", {"max_string_bytes", "max_depth"});
    if (node["max_string_bytes"]) {
        set.max_string_bytes =
            r.size(node["max_string_bytes"], "limits.max_string_bytes", 256, 1U << 24U);
    }
    if (node["max_depth"]) {
        set.max_depth = r.size(node["max_depth"], "limits.max_depth", 1, 1000);
    }
}

void open_icu(RuleSet& set, std::string_view origin) {
    UErrorCode status = U_ZERO_ERROR;
    set.skeletons.adoptInstead(uspoof_open(&status));
    set.scripts.adoptInstead(uspoof_open(&status));
    uspoof_setChecks(set.skeletons.getAlias(), USPOOF_CONFUSABLE, &status);
    uspoof_setChecks(set.scripts.getAlias(), USPOOF_RESTRICTION_LEVEL | USPOOF_MIXED_NUMBERS,
                     &status);
    if (U_SUCCESS(status)) {
        uspoof_setRestrictionLevel(set.scripts.getAlias(), USPOOF_MODERATELY_RESTRICTIVE);
    }
    set.case_map.adoptInstead(ucasemap_open("", 0, &status));
    if (U_FAILURE(status)) {
        throw yaml::Problem{
            fmt::format("{}: ICU's spoof checker is unavailable: {}", origin, u_errorName(status))};
    }
    for (std::size_t c = 0; c < set.ascii_skeleton.size(); ++c) {
        const std::string one(1, static_cast<char>(c));
        set.ascii_skeleton.at(c) = icu_skeleton(set.skeletons.getAlias(), one);
    }
}

void read_rules(const Reader& r, const YAML::Node& root, std::string_view origin, RuleSet& set) {
    if (!root || root.IsNull()) {
        throw yaml::Problem{std::string(origin) + ": empty rule file (at least rules:)"};
    }
    r.only(root, "", {"version", "limits", "rules"});
    if (root["version"] && r.string(root["version"], "version") != "1") {
        r.error(root["version"], "version: only version 1 exists");
    }
    if (root["limits"]) {
        read_limits(r, root["limits"], set);
    }
    const auto& rules = root["rules"];
    if (!rules || !rules.IsSequence()) {
        r.error(rules ? rules : root, "rules: expected a list of rules");
    }
    std::set<std::string> ids;
    std::size_t index = 0;
    for (const auto& node : rules) {
        set.rules.push_back(read_rule(r, node, "rules[" + std::to_string(index++) + "]", ids));
    }
    // One RE2::Set over every pattern, relaxed: a single pass per string finds
    // which rules may match; only those run again, exactly, to confirm and to
    // locate the excerpt.
    re2::RE2::Options options;
    options.set_log_errors(false);
    options.set_max_mem(std::int64_t{16} << 20U);
    set.set = std::make_unique<re2::RE2::Set>(options, re2::RE2::UNANCHORED);
    for (std::size_t i = 0; i < set.rules.size(); ++i) {
        if (set.rules[i].check == Check::pattern) {
            std::string error;
            if (set.set->Add(relaxed(set.rules[i].regex->pattern()), &error) < 0) {
                throw yaml::Problem{fmt::format("{}: rule {}: {}", origin, set.rules[i].id, error)};
            }
            set.set_rules.push_back(i);
        } else {
            set.check_rules.push_back(i);
        }
    }
    for (const auto& rule : set.rules) {
        for (const auto* names : {&rule.fields, &rule.not_fields}) {
            for (const auto& name : *names) {
                if (std::find(set.field_names.begin(), set.field_names.end(), name) ==
                    set.field_names.end()) {
                    set.field_names.push_back(name);
                }
            }
        }
    }
    if (set.field_names.size() > k_max_field_names) {
        throw yaml::Problem{fmt::format("{}: the rules name more than {} distinct fields", origin,
                                     k_max_field_names)};
    }
    for (auto& rule : set.rules) {
        if (!rule.fields.empty()) {
            rule.field_mask = 0;
        }
        for (const auto& name : rule.fields) {
            rule.field_mask |= field_bit(set, name);
        }
        for (const auto& name : rule.not_fields) {
            rule.field_mask &= ~field_bit(set, name);
        }
    }
    if (set.set_rules.empty()) {
        set.set.reset();
    } else if (!set.set->Compile()) {
        throw yaml::Problem{std::string(origin) + ": the patterns do not fit in memory together"};
    }
    open_icu(set, origin);
    for (auto& rule : set.rules) {
        for (const auto& n : rule.names) {
            rule.name_keys.push_back(name_keys(set, n));
        }
    }
}

}  // namespace

struct Scanner::Rules final : RuleSet {};

Scanner::Scanner(std::unique_ptr<Rules> rules) : rules_(std::move(rules)) {}
Scanner::Scanner(Scanner&&) noexcept = default;
Scanner& Scanner::operator=(Scanner&&) noexcept = default;
Scanner::~Scanner() = default;

Result<Scanner> Scanner::parse(std::string_view yaml, std::string_view origin) {
    try {
        const Reader reader(origin);
        const YAML::Node root = yaml::load(yaml, origin);
        auto rules = std::make_unique<Rules>();
        read_rules(reader, root, origin, *rules);
        return Scanner(std::move(rules));
    } catch (const yaml::Problem& e) {
        return fail(Errc::bad_rules, e.message);
    }
}

Result<Scanner> Scanner::load(const std::string& file) {
    std::ifstream in(file, std::ios::binary);
    if (!in) {
        return fail(Errc::bad_rules, file + ": cannot be read");
    }
    std::ostringstream text;
    text << in.rdbuf();
    return parse(text.str(), file);
}

std::shared_ptr<const Scanner> Scanner::builtin() {
    static const std::shared_ptr<const Scanner> scanner = [] {
        auto parsed = parse(detail::k_builtin_rules, "data/scanner-rules.yaml");
        if (!parsed) {
            // Fatal: the rule file is compiled in and tested; this is a build defect.
            (void)std::fprintf(stderr, "pqmcp: the built-in scanner rules do not load: %s\n",
                               parsed.error().detail.c_str());
            std::abort();
        }
        return std::make_shared<const Scanner>(std::move(*parsed));
    }();
    return scanner;
}

std::vector<Finding> Scanner::scan(const boost::json::object& definition, std::string_view kind,
                                   const ScanContext& context) const {
    Walker walker(*rules_, kind, definition, context);
    return walker.run(definition);
}

std::size_t Scanner::rule_count() const noexcept {
    return rules_->rules.size();
}

std::vector<RuleInfo> Scanner::rules() const {
    std::vector<RuleInfo> out;
    out.reserve(rules_->rules.size());
    for (const auto& rule : rules_->rules) {
        std::string check = "pattern";
        for (const auto& c : k_checks) {
            if (c.check == rule.check) {
                check = c.name;
            }
        }
        out.push_back(RuleInfo{rule.id, rule.severity, rule.rationale, check});
    }
    return out;
}

}  // namespace pqmcp::integrity
