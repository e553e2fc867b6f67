// The scanner's rule file: checked whole at load, every pattern compiled.
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
// Loading

using yaml::Reader;

namespace {

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
    rule.id = r.unique_id(node, where, ids);
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

}  // namespace

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

}  // namespace pqmcp::integrity::scanning
