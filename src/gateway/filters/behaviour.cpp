#include "behaviour.hpp"

#include <spdlog/spdlog.h>

#include "pqmcp/mcp/protocol.hpp"
#include "schema.hpp"

namespace pqmcp::gateway {

std::string BehaviourFilter::who() const {
    return caller_.key();
}

void BehaviourFilter::log_findings(const Exchange& x, std::chrono::steady_clock::time_point now) {
    for (const auto& f : x.assessment.findings) {
        // A sustained burst is one line every few seconds, not one per call.
        auto& last = logged_[f.kind];
        if (last == std::chrono::steady_clock::time_point{} ||
            now - last >= std::chrono::seconds{5}) {
            last = now;
            spdlog::info("session {}: behaviour: {} ({}) on {} by {}", log_id_, f.kind, f.detail,
                         x.message.name, who());
        }
    }
}

Step BehaviourFilter::on_request(const std::shared_ptr<Exchange>& x, RequestChain& chain) {
    const mcp::Message& m = x->message;
    // Only where a policy can act on it.
    if (m.method != mcp::method::tools_call || !x->policy) {
        return Step::next();
    }
    const auto now = shared_.clock();
    if (baselines_ == nullptr || !x->policy->behaviour.enabled) {
        x->assessment = shared_.behaviour.observe(who(), m.name, call_arguments(m), now);
        log_findings(*x, now);
        return Step::next();
    }
    auto facts =
        std::make_shared<policy::CallFacts>(policy::Behaviour::facts(m.name, call_arguments(m)));
    baselines_->observe(who(), *facts, x->policy->behaviour,
                        [this, alive = alive_, x, facts,
                         chain = &chain](const std::optional<policy::Snapshot>& shared) {
                            if (!*alive) {
                                return;
                            }
                            const auto at = shared_.clock();
                            x->assessment = shared_.behaviour.observe(who(), *facts, at, shared);
                            log_findings(*x, at);
                            chain->resume(x, Step::next());
                        });
    return Step::pause();
}

}  // namespace pqmcp::gateway
