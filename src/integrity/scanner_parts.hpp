// Internal: the scanner's parts, shared by its files: the rule set as loaded
// (rule_file.cpp), Unicode and text facts (unicode.cpp), the walk over a
// definition (walker.cpp); scanner.cpp is the public face.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <re2/re2.h>
#include <re2/set.h>
#include <unicode/localpointer.h>
#include <unicode/ucasemap.h>
#include <unicode/uspoof.h>
#include <yaml-cpp/yaml.h>
#include <boost/json.hpp>

#include "pqmcp/integrity/scanner.hpp"
#include "pqmcp/yaml/reader.hpp"

namespace pqmcp::integrity::scanning {

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

inline unsigned kind_bit(std::string_view kind) {
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
inline bool scanned_member(unsigned kind, std::string_view key) {
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
inline std::uint64_t field_bit(const RuleSet& r, std::string_view field) {
    for (std::size_t i = 0; i < r.field_names.size(); ++i) {
        if (r.field_names[i] == field) {
            return std::uint64_t{1} << i;
        }
    }
    return k_other_field;
}

// ---- Unicode and text facts (unicode.cpp) ----

struct CodePoint {
    std::uint32_t value = 0xFFFD;
    std::size_t length = 1;
    bool valid = false;
};

struct UnicodeFacts {
    std::size_t tag = k_npos;
    std::size_t bidi = k_npos;
    std::size_t zero_width = k_npos;
    std::size_t invisible = k_npos;
};

bool is_continuation(char c);
CodePoint decode(std::string_view s, std::size_t i);
bool is_ascii(std::string_view s);
// The longest prefix of at most `max` bytes that does not end inside a UTF-8 sequence.
std::string_view utf8_prefix(std::string_view s, std::size_t max);
bool is_tag(std::uint32_t c);
// Unicode 15 bidirectional embeddings (LRE, RLE, PDF, LRO, RLO) and isolates
// (LRI, RLI, FSI, PDI): the Trojan Source set. The marks (LRM, RLM, ALM) are
// ordinary in right-to-left text and are treated as invisible_format.
bool is_bidi_control(std::uint32_t c);
// Characters that render as nothing or as a blank: the zero-width space and
// joiners, word joiner, BOM, invisible operators, soft hyphen, grapheme joiner,
// Mongolian vowel separator, Hangul fillers and the Khmer inherent vowels.
bool is_zero_width(std::uint32_t c);
// Joiners and marks that are normal next to non-ASCII text (emoji sequences,
// Indic and Persian shaping, right-to-left marks): flagged only between ASCII.
bool is_contextual(std::uint32_t c);
bool is_variation_selector(std::uint32_t c);
// Visible format characters of Arabic, Syriac and Kaithi number signs.
bool is_visible_format(std::uint32_t c);
bool is_invisible_format(std::uint32_t c);
bool needs_escape(std::uint32_t c);
std::size_t rendered_size(std::string_view s, std::size_t i, const CodePoint& cp);
// At most ~120 bytes of `s` around byte offset `at`, starting up to ~40 bytes
// before it, cut only between code points, invisible characters rendered.
std::string excerpt(std::string_view s, std::size_t at);
// A short string (a name) with every non-ASCII character escaped.
std::string shown(std::string_view s);
// The length of a well-formed tag spec and cancel tag at `at` (1 to 32 tag
// digits or lower-case letters, then U+E007F), or 0.
std::size_t emoji_tag_sequence(std::string_view s, std::size_t at);
bool plain_ascii(std::string_view s);
UnicodeFacts unicode_facts(std::string_view s);
bool is_ascii_alnum(char c);
bool is_blob_char(char c);
// The offset of the first run of base64 (standard or URL-safe) or hex of at
// least min_length characters that looks random rather than like a word or a path.
std::optional<std::size_t> find_blob(std::string_view s, std::size_t min_length);
std::string ascii_fold(std::string_view s);
// Case-folded (ICU full folding), without "-", "_", "." and spaces.
std::string fold(const RuleSet& r, std::string_view s);
std::string icu_skeleton(const USpoofChecker* checker, std::string_view s);
// UTS #39 skeleton. For ASCII the skeleton is the concatenation of each
// character's (NFD is the identity there), precomputed at load.
std::string skeleton(const RuleSet& r, std::string_view s);
NameKeys name_keys(const RuleSet& r, std::string_view name);
bool mixed_script(const RuleSet& r, std::string_view s);
bool is_name_char(char c);
// A name that reads as an identifier (read_file, getEnv, fs.read) rather than
// as an English word (search, echo): its mere mention is a reference.
bool identifier_like(std::string_view name);
// The mention at [begin, end) is quoted (`x`, 'x', "x") or followed by "tool".
bool marked_as_name(std::string_view s, std::size_t begin, std::size_t end);

// ---- the rule file (rule_file.cpp) ----

// Reads a whole rule file into `set` (every RE2 compiled, the ICU checker
// opened); throws yaml::Problem naming origin:line.
void read_rules(const yaml::Reader& r, const YAML::Node& root, std::string_view origin,
                RuleSet& set);

// ---- the walk (walker.cpp) ----

// Every finding of the rules over `definition` of `kind`.
[[nodiscard]] std::vector<Finding> walk(const RuleSet& rules, std::string_view kind,
                                        const json::object& definition, const ScanContext& context);

}  // namespace pqmcp::integrity::scanning
