// First-match evaluation of a policy against one request.
#include <fnmatch.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <functional>

#include <re2/re2.h>
#include <boost/json.hpp>

#include "pqmcp/policy/limiter.hpp"
#include "pqmcp/policy/policy.hpp"

namespace pqmcp::policy {
namespace json = boost::json;

namespace {

// fnmatch(3) without path rules: `*` and `?` match any character, `[...]` a set.
// Most patterns are plain names, compared as they are; the others are first
// checked on their literal prefix, which rejects most candidates at once.
bool glob(const std::string& pattern, std::string_view text) {
    const auto special = pattern.find_first_of("*?[\\");
    if (special == std::string::npos) {
        return pattern == text;
    }
    if (text.substr(0, special) != std::string_view(pattern).substr(0, special)) {
        return false;
    }
    if (special + 1 == pattern.size() && pattern.back() == '*') {
        return true;  // "prefix*"
    }
    std::array<char, 256> buffer;  // NOLINT(cppcoreguidelines-pro-type-member-init): filled below
    if (text.size() < buffer.size()) {
        std::copy(text.begin(), text.end(), buffer.begin());
        buffer[text.size()] = '\0';
        return ::fnmatch(pattern.c_str(), buffer.data(), 0) == 0;
    }
    const std::string subject(text);
    return ::fnmatch(pattern.c_str(), subject.c_str(), 0) == 0;
}

bool any_glob(const std::vector<std::string>& patterns, std::string_view text) {
    return std::any_of(patterns.begin(), patterns.end(),
                       [text](const std::string& p) { return glob(p, text); });
}

bool is_member(const std::string& member, const Caller& caller) {
    // An access token's subject, client and scopes (docs/policy.md).
    if (member.starts_with("oauth:")) {
        return !caller.token_subject.empty() && member.substr(6) == caller.token_subject;
    }
    if (member.starts_with("client:")) {
        return !caller.token_client.empty() && member.substr(7) == caller.token_client;
    }
    if (member.starts_with("claim:")) {
        // claim:NAME=VALUE: the token has that claim with that value (an
        // array: among its elements).
        const std::string_view spec = std::string_view(member).substr(6);
        const auto eq = spec.find('=');
        if (eq == std::string_view::npos) {
            return false;
        }
        const auto name = spec.substr(0, eq);
        const auto value = spec.substr(eq + 1);
        return std::any_of(
            caller.token_claims.begin(), caller.token_claims.end(),
            [name, value](const auto& c) { return c.first == name && c.second == value; });
    }
    if (member.starts_with("scope:")) {
        const std::string_view scope = std::string_view(member).substr(6);
        return std::find(caller.token_scopes.begin(), caller.token_scopes.end(), scope) !=
               caller.token_scopes.end();
    }
    if (caller.peer_id.empty()) {
        return false;
    }
    // A known_peers name identifies only a caller it was verified for.
    return member == caller.peer_id ||
           (caller.verified && !caller.name.empty() && member == caller.name);
}

bool identity_matches(const Policy& p, const std::vector<std::string>& ids, const Caller& caller) {
    if (ids.empty()) {
        return true;
    }
    for (const auto& id : ids) {
        if (id == "*") {
            return true;
        }
        if (id == "anonymous") {
            if (caller.anonymous()) {
                return true;
            }
            continue;
        }
        if (id == "verified") {
            if (caller.verified) {
                return true;
            }
            continue;
        }
        if (id.rfind("group:", 0) == 0) {
            const auto it = p.groups.find(id.substr(6));
            if (it != p.groups.end() &&
                std::any_of(it->second.begin(), it->second.end(),
                            [&caller](const std::string& m) { return is_member(m, caller); })) {
                return true;
            }
            continue;
        }
        if (is_member(id, caller)) {
            return true;
        }
    }
    return false;
}

bool has_tag(const Policy& p, const std::vector<std::string>& tags, std::string_view tool) {
    for (const auto& tag : tags) {
        const auto it = p.tags.find(tag);
        if (it != p.tags.end() && any_glob(it->second, tool)) {
            return true;
        }
    }
    return false;
}

// Which methods a rule is about: its own list; tools/call when it names tools
// or tags; every method otherwise.
bool method_matches(const Match& m, std::string_view method) {
    if (!m.methods.empty()) {
        return any_glob(m.methods, method);
    }
    if (!m.tools.empty() || !m.tags.empty()) {
        return method == "tools/call";
    }
    return true;
}

bool matches(const Policy& p, const Match& m, const Request& r) {
    if (!identity_matches(p, m.identities, r.caller)) {
        return false;
    }
    if (!m.upstreams.empty() && (r.upstream.empty() || !any_glob(m.upstreams, r.upstream))) {
        return false;
    }
    if (!method_matches(m, r.method)) {
        return false;
    }
    if (!m.tools.empty() && (r.tool.empty() || !any_glob(m.tools, r.tool))) {
        return false;
    }
    if (!m.resources.empty() && (r.uri.empty() || !any_glob(m.resources, r.uri))) {
        return false;
    }
    if (!m.tags.empty() && (r.tool.empty() || !has_tag(p, m.tags, r.tool))) {
        return false;
    }
    return true;
}

const json::value* at(const Request& r, const std::string& pointer) {
    if (r.arguments == nullptr) {
        return nullptr;
    }
    if (pointer.empty()) {
        return r.arguments;
    }
    boost::system::error_code ec;
    const json::value* v = r.arguments->find_pointer(pointer, ec);
    return ec ? nullptr : v;
}

bool equal(const json::value& a, const json::value& b) {
    if (a.is_number() && b.is_number()) {
        return a.to_number<double>() == b.to_number<double>();
    }
    return a == b;
}

std::size_t utf8_length(std::string_view s) {
    return static_cast<std::size_t>(std::count_if(s.begin(), s.end(), [](char c) {
        return (static_cast<unsigned char>(c) & 0xC0U) != 0x80U;
    }));
}

bool is_type(const json::value& v, const std::string& type) {
    if (type == "string") {
        return v.is_string();
    }
    if (type == "number") {
        return v.is_number();
    }
    if (type == "integer") {
        return v.is_int64() || v.is_uint64() ||
               (v.is_double() && std::isfinite(v.get_double()) &&
                std::trunc(v.get_double()) == v.get_double());
    }
    if (type == "boolean") {
        return v.is_bool();
    }
    if (type == "object") {
        return v.is_object();
    }
    if (type == "array") {
        return v.is_array();
    }
    return v.is_null();
}

// The purpose a rule sees, per its purpose_from.
std::string_view purpose_of(const Request& r, PurposeFrom from) {
    switch (from) {
        case PurposeFrom::client:
            return r.call_purpose;
        case PurposeFrom::identity:
            return r.session_purpose;
        case PurposeFrom::both:
            return r.call_purpose.empty() ? r.session_purpose : r.call_purpose;
        case PurposeFrom::automatic:
            return r.session_purpose.empty() ? r.call_purpose : r.session_purpose;
    }
    return r.session_purpose;
}

bool holds(const Condition& c, const Request& r, PurposeFrom from) {
    const json::value* v = nullptr;
    switch (c.op) {
        case Op::purpose: {
            const std::string_view purpose = purpose_of(r, from);
            return !purpose.empty() &&
                   std::find(c.names.begin(), c.names.end(), purpose) != c.names.end();
        }
        case Op::after:
            return r.used_tags != nullptr && r.used_tags->contains(c.text);
        case Op::anomaly:
            if (r.findings == nullptr) {
                return false;
            }
            return std::any_of(r.findings->begin(), r.findings->end(), [&c](const Finding& f) {
                return std::find(c.names.begin(), c.names.end(), f.kind) != c.names.end() ||
                       std::find(c.names.begin(), c.names.end(), "any") != c.names.end();
            });
        case Op::anomaly_score:
            return r.anomaly_score >= c.number;
        default:
            v = at(r, c.pointer);
            break;
    }
    switch (c.op) {
        case Op::equals:
            return v != nullptr && equal(*v, c.values.front());
        case Op::one_of:
            return v != nullptr && std::any_of(c.values.begin(), c.values.end(),
                                               [v](const json::value& x) { return equal(*v, x); });
        case Op::not_one_of:
            return v != nullptr && std::none_of(c.values.begin(), c.values.end(),
                                                [v](const json::value& x) { return equal(*v, x); });
        case Op::min:
            return v != nullptr && v->is_number() && v->to_number<double>() >= c.number;
        case Op::max:
            return v != nullptr && v->is_number() && v->to_number<double>() <= c.number;
        case Op::max_length:
            if (v == nullptr) {
                return false;
            }
            if (v->is_string()) {
                return static_cast<double>(utf8_length(v->get_string())) <= c.number;
            }
            if (v->is_array()) {
                return static_cast<double>(v->get_array().size()) <= c.number;
            }
            return false;
        case Op::regex:
        case Op::not_regex: {
            if (v == nullptr || !v->is_string()) {
                return false;
            }
            const auto s = v->get_string();
            const bool found =
                re2::RE2::PartialMatch(re2::StringPiece(s.data(), s.size()), *c.regex);
            return c.op == Op::regex ? found : !found;
        }
        case Op::type:
            return v != nullptr && is_type(*v, c.text);
        case Op::required:
            return v != nullptr && v->is_object() &&
                   std::all_of(c.names.begin(), c.names.end(),
                               [v](const std::string& k) { return v->get_object().contains(k); });
        case Op::forbidden:
            return v == nullptr || !v->is_object() ||
                   std::none_of(c.names.begin(), c.names.end(),
                                [v](const std::string& k) { return v->get_object().contains(k); });
        case Op::absent:
            return v == nullptr;
        default:
            return false;
    }
}

std::string window_text(std::chrono::milliseconds w) {
    const auto ms = w.count();
    if (ms % 3'600'000 == 0) {
        return std::to_string(ms / 3'600'000) + "h";
    }
    if (ms % 60'000 == 0) {
        return std::to_string(ms / 60'000) + "m";
    }
    if (ms % 1'000 == 0) {
        return std::to_string(ms / 1'000) + "s";
    }
    return std::to_string(ms) + "ms";
}

std::string describe_request(const Request& r) {
    if (!r.tool.empty()) {
        return std::string(r.method) + " " + std::string(r.tool);
    }
    if (!r.uri.empty()) {
        return std::string(r.method) + " " + std::string(r.uri);
    }
    return std::string(r.method);
}

}  // namespace

bool is_discovery(std::string_view method) noexcept {
    return method == "tools/list" || method == "prompts/list" || method == "resources/list" ||
           method == "resources/templates/list" || method == "logging/setLevel" ||
           method == "resources/unsubscribe";
}

std::set<std::string> tags_of(const Policy& policy, std::string_view tool) {
    std::set<std::string> out;
    for (const auto& [tag, globs] : policy.tags) {
        if (any_glob(globs, tool)) {
            out.insert(tag);
        }
    }
    return out;
}

std::vector<std::uint32_t> matching(const Policy& policy, const Request& request) {
    std::vector<std::uint32_t> out;
    // The rules that can apply, in file order (all of them for a request
    // without a tool name).
    thread_local std::vector<std::uint32_t> candidates;
    candidates.clear();
    if (request.tool.empty()) {
        candidates.resize(policy.rules.size());
        for (std::uint32_t i = 0; i < candidates.size(); ++i) {
            candidates[i] = i;
        }
    } else {
        const auto& index = policy.index;
        const auto add = [](const std::vector<std::uint32_t>& from) {
            candidates.insert(candidates.end(), from.begin(), from.end());
        };
        add(index.rest);
        if (const auto it = index.exact.find(request.tool); it != index.exact.end()) {
            add(it->second);
        }
        const std::size_t longest = std::min(index.longest_prefix, request.tool.size());
        for (std::size_t n = 0; n <= longest && !index.prefix.empty(); ++n) {
            if (const auto it = index.prefix.find(request.tool.substr(0, n));
                it != index.prefix.end()) {
                add(it->second);
            }
        }
        std::sort(candidates.begin(), candidates.end());
        candidates.erase(std::unique(candidates.begin(), candidates.end()), candidates.end());
    }
    for (const std::uint32_t at : candidates) {
        const Rule& rule = policy.rules[at];
        if (!matches(policy, rule.match, request)) {
            continue;
        }
        if (!std::all_of(rule.when.begin(), rule.when.end(), [&request, &rule](const Condition& c) {
                return holds(c, request, rule.purpose_from);
            })) {
            continue;
        }
        out.push_back(at);
        if (rule.mode != Mode::shadow) {
            break;  // it decides; shadow rules before it were recorded
        }
    }
    return out;
}

bool counts(const Rule& rule) noexcept {
    return rule.effect != Effect::deny && (rule.rate.has_value() || rule.quota.has_value());
}

Decision decide(const Policy& policy, const Request& request,
                const std::vector<std::uint32_t>& matched,
                const std::function<CountVerdict(const Rule&)>& count, std::string_view store) {
    Decision d;
    for (const std::uint32_t at : matched) {
        const Rule& rule = policy.rules[at];
        Effect effect = rule.effect;
        std::string reason = rule.reason;
        if (count && counts(rule)) {
            const CountVerdict v = count(rule);
            if (v.verdict == Verdict::refused) {
                effect = Effect::deny;
                reason = v.by_rate ? "rate limit of rule " + rule.id +
                                         " reached: " + std::to_string(rule.rate->limit) + " per " +
                                         window_text(rule.rate->window)
                                   : "quota of rule " + rule.id +
                                         " used up: " + std::to_string(rule.quota->limit) +
                                         " per " + window_text(rule.quota->window);
            } else if (v.verdict == Verdict::unavailable) {
                effect = Effect::deny;
                reason = "the shared " + std::string(v.by_rate ? "rate" : "quota") + " of rule " +
                         rule.id + " cannot be counted (" + std::string(store) +
                         " did not answer; the fallback is closed)";
            }
        }
        if (rule.mode == Mode::shadow) {
            // Recorded, then evaluation goes on as if the rule were not there.
            d.shadowed.emplace_back(rule.id, effect);
            continue;
        }
        d.effect = effect;
        d.mode = Mode::enforce;
        d.rule = rule.id;
        if (reason.empty()) {
            reason = effect == Effect::deny  ? "denied by rule " + rule.id
                     : effect == Effect::ask ? "rule " + rule.id + " asks a person to approve " +
                                                   describe_request(request)
                                             : "allowed by rule " + rule.id;
        }
        d.reason = std::move(reason);
        return d;
    }
    d.rule.clear();
    if (is_discovery(request.method)) {
        // Listing and housekeeping: a rule may refuse them, the default does not
        // (tools/list answers are filtered with may_call instead).
        d.effect = Effect::allow;
        d.mode = Mode::enforce;
        d.reason = "no rule matches " + std::string(request.method) +
                   "; listing is not subject to the default";
        return d;
    }
    d.effect = policy.default_effect;
    d.mode = policy.default_mode;
    d.reason = "no rule matches " + describe_request(request) + "; the default is " +
               std::string(to_string(policy.default_effect));
    return d;
}

CountVerdict count_with(Limiter& limiter, const Rule& rule, const Request& request,
                        std::chrono::steady_clock::time_point now) {
    CountVerdict v;
    if (rule.rate) {
        v.verdict = limiter.take(rule.id, counting_key(rule.rate->per, request), *rule.rate, now);
        v.by_rate = v.verdict != Verdict::allowed;
    }
    if (v.verdict == Verdict::allowed && rule.quota) {
        v.verdict =
            limiter.count(rule.id, counting_key(rule.quota->per, request), *rule.quota, now);
    }
    return v;
}

Decision evaluate(const Policy& policy, const Request& request, Limiter* limiter,
                  std::chrono::steady_clock::time_point now) {
    const auto matched = matching(policy, request);
    if (limiter == nullptr) {
        return decide(policy, request, matched, nullptr, {});
    }
    const std::string store = limiter->store() != nullptr ? limiter->store()->describe() : "";
    return decide(
        policy, request, matched,
        [&](const Rule& rule) { return count_with(*limiter, rule, request, now); }, store);
}

bool may_call(const Policy& policy, const Caller& caller, std::string_view upstream,
              std::string_view tool) {
    for (const Rule& rule : policy.rules) {
        if (rule.mode == Mode::shadow) {
            continue;
        }
        const Match& m = rule.match;
        if (!identity_matches(policy, m.identities, caller) || !method_matches(m, "tools/call") ||
            !m.resources.empty() || (!m.upstreams.empty() && !any_glob(m.upstreams, upstream)) ||
            (!m.tools.empty() && !any_glob(m.tools, tool)) ||
            (!m.tags.empty() && !has_tag(policy, m.tags, tool))) {
            continue;
        }
        if (rule.effect != Effect::deny) {
            return true;  // some arguments may get through
        }
        if (rule.when.empty()) {
            return false;  // every call ends here
        }
    }
    return policy.default_effect != Effect::deny || policy.default_mode == Mode::shadow;
}

std::string session_purpose(const Policy& policy, const Caller& caller) {
    // A caller's own entry first, then its groups (in name order).
    for (const auto& [who, purpose] : policy.purposes) {
        if (who.rfind("group:", 0) != 0 && is_member(who, caller)) {
            return purpose;
        }
    }
    for (const auto& [who, purpose] : policy.purposes) {
        if (who.rfind("group:", 0) != 0) {
            continue;
        }
        const auto it = policy.groups.find(who.substr(6));
        if (it != policy.groups.end() &&
            std::any_of(it->second.begin(), it->second.end(),
                        [&caller](const std::string& m) { return is_member(m, caller); })) {
            return purpose;
        }
    }
    return {};
}

}  // namespace pqmcp::policy
