#include "behaviour.hpp"

#include <spdlog/spdlog.h>

#include "pqmcp/mcp/protocol.hpp"
#include "schema.hpp"

namespace pqmcp::gateway {

Step BehaviourFilter::on_request(const std::shared_ptr<Exchange>& x, RequestChain& /*chain*/) {
    const mcp::Message& m = x->message;
    // Only where a policy can act on it.
    if (m.method != mcp::method::tools_call || !x->policy) {
        return Step::next();
    }
    const auto now = shared_.clock();
    const std::string who = caller_.peer_id.empty() ? std::string("anonymous") : caller_.peer_id;
    x->assessment = shared_.behaviour.observe(who, m.name, call_arguments(m), now);
    for (const auto& f : x->assessment.findings) {
        // A sustained burst is one line every few seconds, not one per call.
        auto& last = logged_[f.kind];
        if (last == std::chrono::steady_clock::time_point{} ||
            now - last >= std::chrono::seconds{5}) {
            last = now;
            spdlog::info("session {}: behaviour: {} ({}) on {} by {}", log_id_, f.kind, f.detail,
                         m.name, who);
        }
    }
    return Step::next();
}

}  // namespace pqmcp::gateway
