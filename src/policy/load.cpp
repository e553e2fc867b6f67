// Reading a policy from YAML, with file:line in every error.
#include <algorithm>
#include <cctype>
#include <charconv>
#include <fstream>
#include <sstream>

#include <fmt/format.h>
#include <re2/re2.h>
#include <yaml-cpp/yaml.h>

#include "pqmcp/core/duration.hpp"
#include "pqmcp/crypto/util.hpp"
#include "pqmcp/policy/policy.hpp"
#include "pqmcp/yaml/reader.hpp"

namespace pqmcp::policy {
namespace json = boost::json;

namespace {

class PolicyCategory final : public std::error_category {
  public:
    [[nodiscard]] const char* name() const noexcept override { return "policy"; }
    [[nodiscard]] std::string message(int /*code*/) const override { return "invalid policy"; }
};

using yaml::Reader;

// RFC 6901: "" or "/"-separated tokens with ~0 and ~1 as the only escapes.
bool valid_pointer(std::string_view p) {
    if (p.empty()) {
        return true;
    }
    if (p.front() != '/') {
        return false;
    }
    for (std::size_t i = 0; i < p.size(); ++i) {
        if (p[i] == '~' && (i + 1 >= p.size() || (p[i + 1] != '0' && p[i + 1] != '1'))) {
            return false;
        }
    }
    return true;
}

Effect read_effect(const Reader& r, const YAML::Node& node, const std::string& key) {
    const std::string s = r.string(node, key);
    if (s == "allow") {
        return Effect::allow;
    }
    if (s == "deny") {
        return Effect::deny;
    }
    if (s == "ask") {
        return Effect::ask;
    }
    r.error(node, key + ": expected allow, deny or ask, not \"" + s + "\"");
}

PurposeFrom read_purpose_from(const Reader& r, const YAML::Node& node, const std::string& key) {
    const std::string s = r.string(node, key);
    for (const auto from :
         {PurposeFrom::automatic, PurposeFrom::client, PurposeFrom::identity, PurposeFrom::both}) {
        if (to_string(from) == s) {
            return from;
        }
    }
    r.error(node, key + ": expected client, identity, both or automatic, not \"" + s + "\"");
}

Mode read_mode(const Reader& r, const YAML::Node& node, const std::string& key) {
    const std::string s = r.string(node, key);
    if (s == "enforce") {
        return Mode::enforce;
    }
    if (s == "shadow") {
        return Mode::shadow;
    }
    r.error(node, key + ": expected enforce or shadow, not \"" + s + "\"");
}

Per read_per(const Reader& r, const YAML::Node& node, const std::string& key) {
    const std::string s = r.string(node, key);
    if (s == "identity") {
        return Per::identity;
    }
    if (s == "tool") {
        return Per::tool;
    }
    if (s == "identity+tool") {
        return Per::identity_tool;
    }
    if (s == "session") {
        return Per::session;
    }
    if (s == "global") {
        return Per::global;
    }
    r.error(node,
            key + ": expected identity, tool, identity+tool, session or global, not \"" + s + "\"");
}

template <typename Limit>
Limit read_limit(const Reader& r, const YAML::Node& node, const std::string& key) {
    r.only(node, key, {"per", "limit", "window"});
    Limit l;
    if (node["per"]) {
        l.per = read_per(r, node["per"], key + ".per");
    }
    if (!node["limit"] || !node["window"]) {
        r.error(node, key + ": limit and window are required");
    }
    const double limit = r.number(node["limit"], key + ".limit");
    if (limit < 1 || limit != static_cast<double>(static_cast<std::uint64_t>(limit))) {
        r.error(node["limit"], key + ".limit: expected a whole number of at least 1");
    }
    l.limit = static_cast<std::uint64_t>(limit);
    l.window = r.duration(node["window"], key + ".window");
    return l;
}

Condition read_condition(const Reader& r, const YAML::Node& node, const std::string& where,
                         const std::set<std::string>& known_tags) {
    if (!node.IsMap()) {
        r.error(node, where + ": a condition is a mapping such as { arg: /amount, max: 500 }");
    }
    Condition c;
    c.line = r.line(node);
    std::vector<std::string> ops;
    for (const auto& kv : node) {
        const std::string k = kv.first.Scalar();
        if (k != "arg") {
            ops.push_back(k);
        }
    }
    if (ops.size() != 1) {
        r.error(node, where +
                          ": exactly one operator per condition (arg: plus one of equals, "
                          "one_of, not_one_of, min, max, max_length, regex, not_regex, type, "
                          "required, forbidden, absent; or purpose, after, anomaly, "
                          "anomaly_score)");
    }
    const std::string op = ops.front();
    const YAML::Node v = node[op];
    const bool uses_arg =
        op != "purpose" && op != "after" && op != "anomaly" && op != "anomaly_score";
    if (node["arg"]) {
        if (!uses_arg) {
            r.error(node["arg"], where + ": " + op + " does not take arg");
        }
        c.pointer = r.string(node["arg"], where + ".arg");
        if (!valid_pointer(c.pointer)) {
            r.error(node["arg"], where + ".arg: \"" + c.pointer +
                                     "\" is not a JSON Pointer (e.g. /amount, /order/id)");
        }
    } else if (uses_arg && op != "required" && op != "forbidden") {
        r.error(node, where + ": " + op + " needs arg: (a JSON Pointer into the arguments)");
    }
    const std::string key = where + "." + op;
    if (op == "equals") {
        c.op = Op::equals;
        c.values.push_back(r.value(v, key));
    } else if (op == "one_of" || op == "not_one_of") {
        c.op = op == "one_of" ? Op::one_of : Op::not_one_of;
        if (!v.IsSequence() || v.size() == 0) {
            r.error(v, key + ": expected a non-empty list");
        }
        for (const auto& item : v) {
            c.values.push_back(r.value(item, key));
        }
    } else if (op == "min" || op == "max") {
        c.op = op == "min" ? Op::min : Op::max;
        c.number = r.number(v, key);
    } else if (op == "max_length") {
        c.op = Op::max_length;
        c.number = r.number(v, key);
    } else if (op == "regex" || op == "not_regex") {
        c.op = op == "regex" ? Op::regex : Op::not_regex;
        c.text = r.string(v, key);
        RE2::Options options;
        options.set_log_errors(false);
        auto re = std::make_shared<const re2::RE2>(c.text, options);
        if (!re->ok()) {
            r.error(v, key + ": not a valid RE2 expression: " + re->error());
        }
        c.regex = std::move(re);
    } else if (op == "type") {
        c.op = Op::type;
        c.text = r.string(v, key);
        static constexpr std::array<std::string_view, 7> k_types = {
            "string", "number", "integer", "boolean", "object", "array", "null"};
        if (std::find(k_types.begin(), k_types.end(), c.text) == k_types.end()) {
            r.error(v, key + ": expected string, number, integer, boolean, object, array or null");
        }
    } else if (op == "required" || op == "forbidden") {
        c.op = op == "required" ? Op::required : Op::forbidden;
        c.names = r.strings(v, key);
    } else if (op == "absent") {
        c.op = Op::absent;
        if (!r.boolean(v, key)) {
            r.error(v, key + ": only absent: true is meaningful (use type: or a value test)");
        }
    } else if (op == "purpose") {
        c.op = Op::purpose;
        c.names = r.strings(v, key);
    } else if (op == "after") {
        c.op = Op::after;
        c.text = r.string(v, key);
        if (!known_tags.contains(c.text)) {
            r.error(v, key + ": no tag \"" + c.text + "\" in tags:");
        }
    } else if (op == "anomaly") {
        c.op = Op::anomaly;
        c.names = r.strings(v, key);
        for (const auto& kind : c.names) {
            if (kind != "burst" && kind != "first_use" && kind != "large_argument" &&
                kind != "enumeration" && kind != "any") {
                r.error(v, fmt::format("{}: \"{}\" is not a finding (burst, first_use, "
                                       "large_argument, enumeration, any)",
                                       key, kind));
            }
        }
    } else if (op == "anomaly_score") {
        c.op = Op::anomaly_score;
        c.number = r.number(v, key);
    } else {
        r.error(node, where + ": unknown operator \"" + op + "\"");
    }
    return c;
}

Match read_match(const Reader& r, const YAML::Node& node, const std::string& where,
                 const Policy& p) {
    Match m;
    if (!node) {
        return m;
    }
    r.only(node, where, {"identity", "upstream", "method", "tool", "resource", "tag"});
    if (node["identity"]) {
        m.identities = r.strings(node["identity"], where + ".identity");
        for (const auto& id : m.identities) {
            if (id.rfind("group:", 0) == 0 && !p.groups.contains(id.substr(6))) {
                r.error(node["identity"],
                        where + ".identity: no group \"" + id.substr(6) + "\" in groups:");
            }
        }
    }
    if (node["upstream"]) {
        m.upstreams = r.strings(node["upstream"], where + ".upstream");
    }
    if (node["method"]) {
        m.methods = r.strings(node["method"], where + ".method");
    }
    if (node["tool"]) {
        m.tools = r.strings(node["tool"], where + ".tool");
    }
    if (node["resource"]) {
        m.resources = r.strings(node["resource"], where + ".resource");
    }
    if (node["tag"]) {
        m.tags = r.strings(node["tag"], where + ".tag");
        for (const auto& tag : m.tags) {
            if (!p.tags.contains(tag)) {
                r.error(node["tag"], fmt::format("{}.tag: no tag \"{}\" in tags:", where, tag));
            }
        }
    }
    return m;
}

void read_behaviour(const Reader& r, const YAML::Node& node, BehaviourSettings& b) {
    r.only(node, "behaviour",
           {"enabled", "warmup_calls", "half_life", "burst_factor", "burst_min_per_minute",
            "size_sigmas", "size_min_bytes", "enumeration_run"});
    if (node["enabled"]) {
        b.enabled = r.boolean(node["enabled"], "behaviour.enabled");
    }
    if (node["warmup_calls"]) {
        b.warmup_calls =
            static_cast<std::size_t>(r.number(node["warmup_calls"], "behaviour.warmup_calls"));
    }
    if (node["half_life"]) {
        b.half_life_seconds =
            static_cast<double>(r.duration(node["half_life"], "behaviour.half_life").count()) /
            1000.0;
    }
    if (node["burst_factor"]) {
        b.burst_factor = r.number(node["burst_factor"], "behaviour.burst_factor");
    }
    if (node["burst_min_per_minute"]) {
        b.burst_min_per_minute =
            r.number(node["burst_min_per_minute"], "behaviour.burst_min_per_minute");
    }
    if (node["size_sigmas"]) {
        b.size_sigmas = r.number(node["size_sigmas"], "behaviour.size_sigmas");
    }
    if (node["size_min_bytes"]) {
        b.size_min_bytes =
            static_cast<std::size_t>(r.number(node["size_min_bytes"], "behaviour.size_min_bytes"));
    }
    if (node["enumeration_run"]) {
        b.enumeration_run = static_cast<std::size_t>(
            r.number(node["enumeration_run"], "behaviour.enumeration_run"));
        if (b.enumeration_run < 2) {
            r.error(node["enumeration_run"], "behaviour.enumeration_run: at least 2");
        }
    }
}

void build_index(Policy& p) {
    for (std::uint32_t i = 0; i < p.rules.size(); ++i) {
        const Match& m = p.rules[i].match;
        bool general = m.tools.empty() || !m.tags.empty();
        for (const auto& pattern : m.tools) {
            const auto special = pattern.find_first_of("*?[\\");
            if (special == std::string::npos) {
                p.index.exact[pattern].push_back(i);
            } else if (special + 1 == pattern.size() && pattern.back() == '*') {
                const std::string prefix = pattern.substr(0, special);
                p.index.prefix[prefix].push_back(i);
                p.index.longest_prefix = std::max(p.index.longest_prefix, prefix.size());
            } else {
                general = true;
            }
        }
        if (general) {
            p.index.rest.push_back(i);
        }
    }
}

std::shared_ptr<const Policy> read_policy(const Reader& r, const YAML::Node& root,
                                          std::string_view text, std::string_view source) {
    auto p = std::make_shared<Policy>();
    p->source = std::string(source);
    const auto digest = crypto::sha256(as_bytes(text));
    p->fingerprint = to_hex(ByteView(digest.data(), 6));
    if (!root || root.IsNull()) {
        throw yaml::Problem{std::string(source) + ": empty policy (at least default: and rules:)"};
    }
    r.only(root, "",
           {"version", "default", "mode", "schema_validation", "groups", "identities", "tags",
            "behaviour", "purpose_from", "rules"});
    if (root["version"] && r.string(root["version"], "version") != "1") {
        r.error(root["version"], "version: only version 1 exists");
    }
    if (root["default"]) {
        p->default_effect = read_effect(r, root["default"], "default");
    }
    if (root["mode"]) {
        p->default_mode = read_mode(r, root["mode"], "mode");
    }
    if (root["purpose_from"]) {
        p->purpose_from = read_purpose_from(r, root["purpose_from"], "purpose_from");
    }
    if (root["schema_validation"]) {
        p->schema_validation = r.boolean(root["schema_validation"], "schema_validation");
    }
    if (const auto& groups = root["groups"]) {
        if (!groups.IsMap()) {
            r.error(groups, "groups: expected a mapping of group names to members");
        }
        for (const auto& kv : groups) {
            const std::string name = kv.first.Scalar();
            if (!yaml::valid_id(name)) {
                r.error(kv.first, "groups: \"" + name + "\" is not a valid group name");
            }
            p->groups[name] = r.strings(kv.second, "groups." + name);
        }
    }
    if (const auto& ids = root["identities"]) {
        if (!ids.IsMap()) {
            r.error(ids, "identities: expected a mapping of identities to settings");
        }
        for (const auto& kv : ids) {
            const std::string who = kv.first.Scalar();
            r.only(kv.second, "identities." + who, {"purpose"});
            if (who.rfind("group:", 0) == 0 && !p->groups.contains(who.substr(6))) {
                r.error(kv.first, "identities: no group \"" + who.substr(6) + "\" in groups:");
            }
            if (kv.second["purpose"]) {
                p->purposes[who] = r.string(kv.second["purpose"], "identities." + who + ".purpose");
            }
        }
    }
    std::set<std::string> tag_names;
    if (const auto& tags = root["tags"]) {
        if (!tags.IsMap()) {
            r.error(tags, "tags: expected a mapping of tag names to tool names (globs)");
        }
        for (const auto& kv : tags) {
            const std::string tag = kv.first.Scalar();
            if (!yaml::valid_id(tag)) {
                r.error(kv.first, "tags: \"" + tag + "\" is not a valid tag name");
            }
            p->tags[tag] = r.strings(kv.second, "tags." + tag);
            tag_names.insert(tag);
        }
    }
    if (root["behaviour"]) {
        read_behaviour(r, root["behaviour"], p->behaviour);
    }
    const auto& rules = root["rules"];
    if (rules && !rules.IsSequence()) {
        r.error(rules, "rules: expected a list");
    }
    std::set<std::string> ids;
    std::size_t index = 0;
    for (const auto& node : rules) {
        const std::string where = "rules[" + std::to_string(index++) + "]";
        r.only(node, where,
               {"id", "description", "mode", "match", "when", "rate", "quota", "effect", "reason",
                "purpose_from"});
        Rule rule;
        rule.line = r.line(node);
        rule.mode = p->default_mode;
        rule.purpose_from = p->purpose_from;
        rule.id = r.unique_id(node, where, ids);
        const std::string at = "rule " + rule.id;
        if (node["description"]) {
            rule.description = r.string(node["description"], at + ".description");
        }
        if (node["mode"]) {
            rule.mode = read_mode(r, node["mode"], at + ".mode");
        }
        rule.match = read_match(r, node["match"], at + ".match", *p);
        if (const auto& when = node["when"]) {
            if (!when.IsSequence()) {
                r.error(when, at + ".when: expected a list of conditions (all must hold)");
            }
            std::size_t ci = 0;
            for (const auto& c : when) {
                rule.when.push_back(
                    read_condition(r, c, at + ".when[" + std::to_string(ci++) + "]", tag_names));
            }
        }
        if (node["rate"]) {
            rule.rate = read_limit<Rate>(r, node["rate"], at + ".rate");
        }
        if (node["quota"]) {
            rule.quota = read_limit<Quota>(r, node["quota"], at + ".quota");
        }
        if (!node["effect"]) {
            r.error(node, at + ": effect: (allow, deny or ask) is required");
        }
        rule.effect = read_effect(r, node["effect"], at + ".effect");
        if ((rule.rate || rule.quota) && rule.effect == Effect::deny) {
            r.error(node["effect"], at + ": a rate or quota on a deny rule counts nothing");
        }
        if (node["reason"]) {
            rule.reason = r.string(node["reason"], at + ".reason");
        }
        if (node["purpose_from"]) {
            rule.purpose_from = read_purpose_from(r, node["purpose_from"], at + ".purpose_from");
        }
        p->rules.push_back(std::move(rule));
    }
    build_index(*p);
    return p;
}

}  // namespace

const std::error_category& policy_category() noexcept {
    static const PolicyCategory category;
    return category;
}

std::string_view to_string(Effect e) noexcept {
    switch (e) {
        case Effect::allow:
            return "allow";
        case Effect::deny:
            return "deny";
        case Effect::ask:
            return "ask";
    }
    return "deny";
}

std::string_view to_string(PurposeFrom p) noexcept {
    switch (p) {
        case PurposeFrom::automatic:
            return "automatic";
        case PurposeFrom::client:
            return "client";
        case PurposeFrom::identity:
            return "identity";
        case PurposeFrom::both:
            return "both";
    }
    return "automatic";
}

std::string_view to_string(Mode m) noexcept {
    return m == Mode::shadow ? "shadow" : "enforce";
}

Result<std::shared_ptr<const Policy>> parse_policy(std::string_view yaml, std::string_view source) {
    try {
        const Reader reader(source);
        const YAML::Node root = yaml::load(yaml, source);
        return read_policy(reader, root, yaml, source);
    } catch (const yaml::Problem& e) {
        return fail(Errc::invalid_policy, e.message);
    }
}

Result<std::shared_ptr<const Policy>> load_policy(const std::filesystem::path& file) {
    std::ifstream in(file, std::ios::binary);
    if (!in) {
        return fail(Errc::invalid_policy, file.string() + ": cannot be read");
    }
    std::ostringstream text;
    text << in.rdbuf();
    return parse_policy(text.str(), file.string());
}

}  // namespace pqmcp::policy
