#include "ask.hpp"

#include <spdlog/spdlog.h>

#include "policy.hpp"
#include "pqmcp/mcp/protocol.hpp"

namespace pqmcp::gateway {

namespace json = boost::json;

std::pair<bool, std::string> approval(const mcp::Message& answer) {
    const auto* result = answer.body.if_contains("result");
    if (result == nullptr || !result->is_object()) {
        return {false, "the client answered with an error"};
    }
    const auto& r = result->as_object();
    const auto* action = r.if_contains("action");
    const std::string act = action != nullptr && action->is_string()
                                ? std::string(action->get_string())
                                : std::string("none");
    const auto* content = r.if_contains("content");
    const json::value* approve = content != nullptr && content->is_object()
                                     ? content->as_object().if_contains("approve")
                                     : nullptr;
    // Only an explicit "approve": true under "accept" approves: an accept
    // with the field missing (a client that fills forms in for the user) is
    // not a person's yes.
    const bool approved =
        act == "accept" && approve != nullptr && approve->is_bool() && approve->get_bool();
    return {approved, act == "accept" && !approved ? "accepted without approving" : act};
}

Step AskFilter::on_request(const std::shared_ptr<Exchange>& x, RequestChain& chain) {
    if (x->decision.disposition != Disposition::ask || !x->policy) {
        return Step::next();
    }
    const mcp::Message& m = x->message;
    // Only a client that declared elicitation can put the question to a person.
    if (!asker_.can_ask()) {
        x->decision.disposition = Disposition::ask_denied;
        x->decision.reason += "; the client cannot ask a person (no elicitation capability)";
        return policy_refusal(*x, *x->policy, log_id_);
    }
    std::string what = m.method;
    if (!m.name.empty()) {
        what += " " + m.name;
    }
    if (const auto* params = m.params(); params != nullptr) {
        if (const auto* args = params->if_contains("arguments"); args != nullptr) {
            std::string text = mcp::serialize(*args);
            if (text.size() > 500) {
                text = text.substr(0, 500) + "...";
            }
            what += " with " + text;
        }
    }
    json::object params{
        {"message", "pqmcp gateway: " + x->decision.reason + ". Allow " + what + "?"},
        {"requestedSchema",
         json::object{
             {"type", "object"},
             {"properties", json::object{{"approve", json::object{{"type", "boolean"},
                                                                  {"title", "Allow this call"},
                                                                  {"default", false}}}}},
             {"required", json::array{"approve"}}}}};
    asker_.ask(
        x->stream, std::move(params),
        [this, x, &chain](tl::expected<mcp::Message, std::string> answer) {
            auto [approved, how] = answer ? approval(*answer) : std::pair{false, answer.error()};
            if (approved) {
                spdlog::info("session {}: {} {} approved by a person (rule {})", log_id_,
                             x->message.method, x->message.name, x->decision.rule);
                x->decision.disposition = Disposition::ask_approved;
                chain.resume(x, Step::next());
                return;
            }
            x->decision.disposition = Disposition::ask_denied;
            x->decision.reason += "; not approved (" + how + ")";
            chain.resume(x, policy_refusal(*x, *x->policy, log_id_));
        });
    return Step::pause();
}

}  // namespace pqmcp::gateway
