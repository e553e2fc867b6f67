// The scanner's walk over a definition: every string, one RE2::Set pass
// each, then the structural checks.
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

namespace {

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

}  // namespace

std::vector<Finding> walk(const RuleSet& rules, std::string_view kind,
                          const json::object& definition, const ScanContext& context) {
    Walker walker(rules, kind, definition, context);
    return walker.run(definition);
}

}  // namespace pqmcp::integrity::scanning
