// The Intent layer's policy: rules over MCP requests (who, which upstream,
// which method, tool or resource, which argument values, how often, for what
// purpose, after what), evaluated first-match in file order. One YAML file
// (`pqmcp serve --policy FILE`), documented in docs/policy.md.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <system_error>
#include <unordered_map>
#include <utility>
#include <vector>

#include <boost/json/value.hpp>

#include "pqmcp/core/error.hpp"

namespace re2 {
class RE2;
}

namespace pqmcp::policy {

enum class Errc {
    invalid_policy = 1,  // the file or text is not a valid policy (detail: file:line: what)
};

const std::error_category& policy_category() noexcept;
inline std::error_code make_error_code(Errc e) noexcept {
    return {static_cast<int>(e), policy_category()};
}

// The JSON-RPC error code of every request the policy refuses; the error's
// data carries {"rule", "reason", "decision", "mode", "policy"}.
inline constexpr int k_denied_code = -32010;
// Where the purpose a rule's `purpose` condition checks comes from.
enum class PurposeFrom {
    automatic,  // the identity's (identities:) when it has one, else the call's own
    client,     // only what the call declares in _meta
    identity,   // only what identities: gives the caller: a claim never counts
    both,       // the call's own, else the identity's
};
[[nodiscard]] std::string_view to_string(PurposeFrom p) noexcept;

// The _meta key a call carries its declared purpose in.
inline constexpr std::string_view k_purpose_meta = "pqmcp/purpose";

enum class Effect { allow, deny, ask };
enum class Mode { enforce, shadow };

[[nodiscard]] std::string_view to_string(Effect e) noexcept;
[[nodiscard]] std::string_view to_string(Mode m) noexcept;

// What a rate or a quota is counted per.
enum class Per { identity, tool, identity_tool, session, global };

struct Rate {  // token bucket: `limit` tokens, refilled at limit per window
    Per per = Per::identity;
    std::uint64_t limit = 0;
    std::chrono::milliseconds window{0};
};

struct Quota {  // at most `limit` in any window (sliding)
    Per per = Per::identity;
    std::uint64_t limit = 0;
    std::chrono::milliseconds window{0};
};

enum class Op {
    equals,
    one_of,
    not_one_of,
    min,
    max,
    max_length,
    regex,
    not_regex,
    type,
    required,       // these keys present (object at the pointer)
    forbidden,      // none of these keys present
    absent,         // nothing at the pointer
    purpose,        // the call's (or session's) purpose is one of
    after,          // the session has used a tool with this tag
    anomaly,        // the behaviour of this call shows one of these findings
    anomaly_score,  // ... or a score at least this high
};

struct Condition {
    Op op = Op::equals;
    std::string pointer;  // JSON Pointer into the arguments ("" = the arguments object)
    std::vector<boost::json::value> values;  // equals (one), one_of, not_one_of
    double number = 0;                       // min, max, max_length, anomaly_score
    std::string text;                        // type, after
    std::vector<std::string> names;          // required, forbidden, purpose, anomaly
    std::shared_ptr<const re2::RE2> regex;   // regex, not_regex
    int line = 0;                            // in the policy file
};

struct Match {
    std::vector<std::string>
        identities;  // peer ids, known_peers names, group:NAME, *, anonymous, verified
    std::vector<std::string> upstreams;  // globs
    std::vector<std::string>
        methods;                     // globs; empty: tools/call when tools/tags are given, else any
    std::vector<std::string> tools;  // globs on the gateway's (namespaced) names
    std::vector<std::string> resources;  // globs on URIs
    std::vector<std::string> tags;       // tools with any of these tags
};

struct Rule {
    std::string id;
    std::string description;
    Mode mode = Mode::enforce;
    Match match;
    std::vector<Condition> when;
    std::optional<Rate> rate;
    std::optional<Quota> quota;
    Effect effect = Effect::deny;
    std::string reason;                                 // shown to the caller when it refuses
    PurposeFrom purpose_from = PurposeFrom::automatic;  // the policy's default unless set
    int line = 0;
};

struct BehaviourSettings {
    bool enabled = true;
    std::size_t warmup_calls = 20;       // per identity, before "first use" and size findings
    double half_life_seconds = 300;      // of the rate and size averages
    double burst_factor = 5;             // recent rate over this many times the baseline
    double burst_min_per_minute = 60;    // and at least this many calls per minute
    double size_sigmas = 4;              // an argument this many deviations above the mean
    std::size_t size_min_bytes = 1'024;  // and at least this large
    std::size_t enumeration_run = 4;     // consecutive calls with ids one apart
};

// Which rules can apply to a named tool, in file order: rules naming it
// exactly, rules with a "prefix*" pattern it starts with, and every other rule
// (no tool pattern, other globs, tags). Built when the policy is loaded.
struct RuleIndex {
    struct Hash {  // lookups by string_view, without a string
        using is_transparent = void;
        std::size_t operator()(std::string_view s) const noexcept {
            return std::hash<std::string_view>{}(s);
        }
    };
    using Map = std::unordered_map<std::string, std::vector<std::uint32_t>, Hash, std::equal_to<>>;
    Map exact;
    Map prefix;
    std::vector<std::uint32_t> rest;
    std::size_t longest_prefix = 0;
};

struct Policy {
    std::string source;       // file name (or "policy")
    std::string fingerprint;  // SHA-256 prefix of the text: which policy decided
    Effect default_effect = Effect::deny;
    Mode default_mode = Mode::enforce;  // of the default decision
    bool schema_validation = true;      // check tools/call arguments against inputSchema
    std::map<std::string, std::vector<std::string>> groups;  // name -> peer ids / names
    std::map<std::string, std::string> purposes;        // identity or group:NAME -> session purpose
    PurposeFrom purpose_from = PurposeFrom::automatic;  // rules without their own
    std::map<std::string, std::vector<std::string>> tags;  // tag -> tool globs
    BehaviourSettings behaviour{};
    std::vector<Rule> rules;
    RuleIndex index;
};

// Reads a policy (YAML). Errors: invalid_policy with "source:line: what".
[[nodiscard]] Result<std::shared_ptr<const Policy>> parse_policy(
    std::string_view yaml, std::string_view source = "policy");
[[nodiscard]] Result<std::shared_ptr<const Policy>> load_policy(const std::filesystem::path& file);

// Who is calling.
struct Caller {
    Caller() = default;
    Caller(std::string id, std::string known_name, bool is_verified)
        : peer_id(std::move(id)), name(std::move(known_name)), verified(is_verified) {}

    std::string peer_id;  // empty: no client certificate
    std::string name;     // from known_peers, if listed
    bool verified = false;
    // From an OAuth access token the gateway validated (empty: none).
    std::string token_subject;
    std::string token_client;
    std::vector<std::string> token_scopes;
    std::vector<std::pair<std::string, std::string>> token_claims;  // claim:NAME=VALUE
    // Neither a client certificate nor a token.
    [[nodiscard]] bool anonymous() const noexcept {
        return peer_id.empty() && token_subject.empty();
    }
    // The key rates, quotas and baselines count under: a verified peer id,
    // else "oauth:" and the token's subject (a self-made key per connection
    // is no new caller), else an unverified peer id, else "anonymous".
    [[nodiscard]] std::string key() const {
        if (!peer_id.empty() && (verified || token_subject.empty())) {
            return peer_id;
        }
        if (!token_subject.empty()) {
            return "oauth:" + token_subject;
        }
        return peer_id.empty() ? std::string("anonymous") : peer_id;
    }
};

// A finding of the behaviour analysis for one call.
struct Finding {
    std::string kind;  // burst, first_use, large_argument, enumeration
    double score = 0;  // its contribution, 0..1
    std::string detail;
};

// One request as the policy sees it.
struct Request {
    Caller caller;
    std::string_view session;  // the MCP session id (for per-session limits)
    std::string_view method;
    std::string_view upstream;  // "" when the method has no single upstream
    std::string_view tool;      // the gateway's name (tools/call, prompts/get)
    std::string_view uri;       // resources/*
    const boost::json::value* arguments = nullptr;
    std::string_view call_purpose;     // what the call declares (_meta "pqmcp/purpose")
    std::string_view session_purpose;  // what identities: gives the caller
    const std::set<std::string>* used_tags = nullptr;  // tags of tools this session has used
    const std::vector<Finding>* findings = nullptr;
    double anomaly_score = 0;
};

struct Decision {
    Effect effect = Effect::deny;
    Mode mode = Mode::enforce;
    std::string rule;    // "" for the default
    std::string reason;  // human-readable, for the caller and the log
    // Shadow rules that matched before the decision, and what they would have done.
    std::vector<std::pair<std::string, Effect>> shadowed;
};

class Limiter;  // rate and quota state, kept across policy reloads (limiter.hpp)

// First match in file order; see docs/policy.md for the exact rules. `limiter`
// may be null (no rates counted); `now` is the limiter's clock.
[[nodiscard]] Decision evaluate(const Policy& policy, const Request& request, Limiter* limiter,
                                std::chrono::steady_clock::time_point now);

// evaluate() in two steps, for counts that take a round trip (a shared
// store): the rules that match, in file order (shadow rules, then the one
// that decides, if any), then the decision once the counts are in.
[[nodiscard]] std::vector<std::uint32_t> matching(const Policy& policy, const Request& request);
// Whether a matching rule counts the request (a rate or a quota, and not deny).
[[nodiscard]] bool counts(const Rule& rule) noexcept;
enum class Verdict : std::uint8_t;
struct CountVerdict {
    Verdict verdict{};
    bool by_rate = false;  // the rate, not the quota, said no
};
// `count` is asked for each matched rule that counts(); `store` names the
// shared store in the reason of an unavailable count.
[[nodiscard]] Decision decide(const Policy& policy, const Request& request,
                              const std::vector<std::uint32_t>& matched,
                              const std::function<CountVerdict(const Rule&)>& count,
                              std::string_view store);

// Listing and housekeeping methods (tools/list, prompts/list, resources/list,
// resources/templates/list, logging/setLevel, resources/unsubscribe): rules
// may refuse them, but the default does not apply to them.
[[nodiscard]] bool is_discovery(std::string_view method) noexcept;

// The tags of a tool under this policy.
[[nodiscard]] std::set<std::string> tags_of(const Policy& policy, std::string_view tool);

// Whether some call of `tool` by `caller` could be allowed or asked for: false
// when every path through the rules ends in a deny. tools/list hides the others.
[[nodiscard]] bool may_call(const Policy& policy, const Caller& caller, std::string_view upstream,
                            std::string_view tool);

// The session purpose the policy gives a caller ("" if none).
[[nodiscard]] std::string session_purpose(const Policy& policy, const Caller& caller);

}  // namespace pqmcp::policy

template <>
struct std::is_error_code_enum<pqmcp::policy::Errc> : std::true_type {};
