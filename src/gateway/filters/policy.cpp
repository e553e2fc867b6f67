#include "policy.hpp"

#include <spdlog/spdlog.h>

#include <map>

#include "pqmcp/mcp/protocol.hpp"
#include "schema.hpp"

namespace pqmcp::gateway {

namespace json = boost::json;

namespace {

// The purpose the call declares in its _meta ("" when none).
std::string_view declared_purpose(const mcp::Message& m) {
    const json::object* params = m.params();
    const auto* meta = params != nullptr ? params->if_contains("_meta") : nullptr;
    if (meta == nullptr || !meta->is_object()) {
        return {};
    }
    const auto* p = meta->as_object().if_contains(policy::k_purpose_meta);
    return p != nullptr && p->is_string() ? std::string_view(p->get_string()) : std::string_view{};
}

Disposition disposition_of(policy::Effect e) {
    switch (e) {
        case policy::Effect::allow:
            return Disposition::allow;
        case policy::Effect::deny:
            return Disposition::deny;
        case policy::Effect::ask:
            return Disposition::ask;
    }
    return Disposition::deny;
}

}  // namespace

Step policy_refusal(const Exchange& x, const policy::Policy& policy, const std::string& log_id) {
    const mcp::Message& m = x.message;
    const Decision& d = x.decision;
    spdlog::info("session {}: {} {} denied by {}: {}", log_id, m.method,
                 m.name.empty() ? m.uri : m.name, d.rule.empty() ? "the default" : "rule " + d.rule,
                 d.reason);
    json::object data{{"rule", d.rule.empty() ? json::value(nullptr) : json::value(d.rule)},
                      {"reason", d.reason},
                      {"decision", policy::to_string(policy::Effect::deny)},
                      {"mode", policy::to_string(d.mode)},
                      {"policy", policy.fingerprint}};
    return Step::deny(policy::k_denied_code, "Denied by policy: " + d.reason, std::move(data));
}

policy::Request PolicyFilter::request_of(const Exchange& x, std::string& purpose) const {
    const mcp::Message& m = x.message;
    const bool tool_call = m.method == mcp::method::tools_call;
    // The purpose the call declares, and the one the policy gives its caller:
    // each rule says which counts (purpose_from).
    purpose = policy::session_purpose(*x.policy, caller_);
    policy::Request request;
    request.caller = caller_;
    request.session = session_id_;
    request.method = m.method;
    request.upstream = x.link && *x.link < upstreams_.count()
                           ? std::string_view(upstreams_.name(*x.link))
                           : std::string_view{};
    request.tool = (tool_call || m.method == mcp::method::prompts_get) ? std::string_view(m.name)
                                                                       : std::string_view{};
    request.uri = m.uri;
    request.arguments = call_arguments(m);
    request.call_purpose = declared_purpose(m);
    request.session_purpose = purpose;
    request.used_tags = &used_tags_;
    request.findings = &x.assessment.findings;
    request.anomaly_score = x.assessment.score;
    return request;
}

Step PolicyFilter::on_request(const std::shared_ptr<Exchange>& x, RequestChain& chain) {
    if (!x->policy) {
        return Step::next();
    }
    const policy::Policy& pol = *x->policy;
    std::string purpose;
    const policy::Request request = request_of(*x, purpose);
    if (counts_ == nullptr) {
        return conclude(x, policy::evaluate(pol, request, &shared_.limiter, shared_.clock()));
    }
    auto matched = policy::matching(pol, request);
    std::vector<std::uint32_t> counted;
    for (const std::uint32_t at : matched) {
        if (policy::counts(pol.rules[at])) {
            counted.push_back(at);
        }
    }
    if (counted.empty()) {
        return conclude(x, policy::decide(pol, request, matched, nullptr, {}));
    }
    count_shared(x, chain, std::move(matched), counted);
    return Step::pause();
}

struct PolicyFilter::Counting {
    std::shared_ptr<Exchange> x;
    RequestChain* chain = nullptr;
    std::vector<std::uint32_t> matched;
    std::map<std::uint32_t, policy::CountVerdict> verdicts;
    std::size_t waiting = 0;
};

void PolicyFilter::count_shared(const std::shared_ptr<Exchange>& x, RequestChain& chain,
                                std::vector<std::uint32_t> matched,
                                const std::vector<std::uint32_t>& counted) {
    auto c = std::make_shared<Counting>();
    c->x = x;
    c->chain = &chain;
    c->matched = std::move(matched);
    c->waiting = counted.size();
    for (const std::uint32_t at : counted) {
        count_rule(c, at);
    }
}

void PolicyFilter::count_rule(const std::shared_ptr<Counting>& c, std::uint32_t at) {
    const policy::Rule& rule = c->x->policy->rules[at];
    std::string purpose;
    const policy::Request request = request_of(*c->x, purpose);
    // A rate first; a quota only for what the rate let through (as evaluate()).
    const auto quota = [this, c, at](const std::string& key) {
        const policy::Rule& r = c->x->policy->rules[at];
        counts_->count(
            policy::slot_of(r.id, key), *r.quota,
            [this, alive = alive_, c, at, key](std::optional<bool> answer) {
                if (!*alive) {
                    return;
                }
                const policy::Rule& q = c->x->policy->rules[at];
                counted(c, at,
                        {shared_.limiter.settle_count(q.id, key, *q.quota, answer, shared_.clock()),
                         false});
            });
    };
    if (rule.rate) {
        std::string key = policy::counting_key(rule.rate->per, request);
        std::string quota_key =
            rule.quota ? policy::counting_key(rule.quota->per, request) : std::string{};
        counts_->take(
            policy::slot_of(rule.id, key), *rule.rate,
            [this, alive = alive_, c, at, key, quota_key, quota](std::optional<bool> answer) {
                if (!*alive) {
                    return;
                }
                const policy::Rule& r = c->x->policy->rules[at];
                const policy::Verdict v =
                    shared_.limiter.settle_take(r.id, key, *r.rate, answer, shared_.clock());
                if (v == policy::Verdict::allowed && r.quota) {
                    quota(quota_key);
                    return;
                }
                counted(c, at, {v, v != policy::Verdict::allowed});
            });
        return;
    }
    quota(policy::counting_key(rule.quota->per, request));
}

void PolicyFilter::counted(const std::shared_ptr<Counting>& c, std::uint32_t at,
                           policy::CountVerdict v) {
    c->verdicts[at] = v;
    if (--c->waiting > 0) {
        return;
    }
    std::string purpose;
    const policy::Request request = request_of(*c->x, purpose);
    const policy::Policy& pol = *c->x->policy;
    const auto decision = policy::decide(
        pol, request, c->matched,
        [&](const policy::Rule& rule) {
            const auto at_rule = static_cast<std::uint32_t>(&rule - pol.rules.data());
            const auto it = c->verdicts.find(at_rule);
            return it != c->verdicts.end() ? it->second : policy::CountVerdict{};
        },
        counts_->describe());
    Step step = conclude(c->x, decision);
    c->chain->resume(c->x, std::move(step));
}

Step PolicyFilter::conclude(const std::shared_ptr<Exchange>& x,
                            const policy::Decision& decision_in) {
    const policy::Policy& pol = *x->policy;
    const mcp::Message& m = x->message;
    const bool tool_call = m.method == mcp::method::tools_call;
    policy::Decision decision = decision_in;
    if (shared_.recorder != nullptr) {
        for (const auto& [rule, effect] : decision.shadowed) {
            shared_.recorder->rule_hit(rule, policy::to_string(effect), "shadow");
        }
        if (!decision.rule.empty()) {
            shared_.recorder->rule_hit(decision.rule, policy::to_string(decision.effect),
                                       policy::to_string(decision.mode));
        }
    }
    for (const auto& [rule, effect] : decision.shadowed) {
        spdlog::info("session {}: shadow rule {} would {} {} {}", log_id_, rule,
                     policy::to_string(effect), m.method, m.name.empty() ? m.uri : m.name);
    }
    if (tool_call) {
        // Data flow: once the call succeeded, the session has used a tool with these tags.
        x->on_success = [this, policy = x->policy, name = m.name](const mcp::Message& reply) {
            const auto* result = reply.body.if_contains("result");
            const bool failed = result == nullptr || !result->is_object() ||
                                result->as_object().contains("isError");
            if (!failed) {
                used_tags_.merge(policy::tags_of(*policy, name));
            }
        };
    }
    x->decision.rule = decision.rule;
    x->decision.reason = decision.reason;
    if (decision.mode == policy::Mode::shadow) {
        if (decision.effect != policy::Effect::allow) {
            spdlog::info("session {}: shadow: would {} {} {}: {}", log_id_,
                         policy::to_string(decision.effect), m.method, m.name, decision.reason);
        }
        x->decision.disposition = Disposition::allow;
        x->decision.mode = policy::Mode::shadow;
        return Step::next();
    }
    x->decision.disposition = disposition_of(decision.effect);
    switch (decision.effect) {
        case policy::Effect::allow:
            spdlog::debug("session {}: {} {} allowed ({})", log_id_, m.method, m.name,
                          decision.rule.empty() ? "default" : decision.rule);
            return Step::next();
        case policy::Effect::ask:
            return Step::next();  // the ask filter puts it to a person
        case policy::Effect::deny:
            break;
    }
    return policy_refusal(*x, pol, log_id_);
}

void Visibility::on_items(Listing& listing) {
    if (listing.spec->kind != ListKind::tools || !listing.served) {
        return;
    }
    const auto policy = shared_.policy();
    if (!policy) {
        return;
    }
    // A caller never sees a tool it may never call.
    listing.each([&](std::size_t link, std::size_t j, json::object& tool) {
        const auto* n = tool.if_contains("name");
        if (n != nullptr && n->is_string() &&
            !policy::may_call(*policy, caller_, upstreams_.name(link), n->get_string())) {
            listing.mark(link, j, Listing::Mark::dropped);
        }
    });
}

}  // namespace pqmcp::gateway
