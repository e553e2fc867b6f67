#include "factory.hpp"

#include "audit_gate.hpp"
#include "behaviour.hpp"
#include "param_headers.hpp"
#include "policy.hpp"
#include "schema.hpp"
#include "signing.hpp"

namespace pqmcp::gateway {

std::unique_ptr<SessionChains> make_chains(const SessionParts& p) {
    auto c = std::make_unique<SessionChains>();
    std::vector<std::unique_ptr<RequestFilter>> in;
    in.push_back(std::make_unique<RouteFilter>(p.upstreams, p.router, p.log_id));
    std::function<bool()> writable;
    if (Recorder* r = p.shared.recorder; r != nullptr) {
        writable = [r] { return r->audit_allows_calls(); };
    }
    in.push_back(std::make_unique<AuditGateFilter>(std::move(writable)));
    in.push_back(std::make_unique<IntegrityCheck>(c->integrity, p.upstreams, p.lister, p.log_id));
    in.push_back(std::make_unique<ParamHeaderCheck>(c->param_headers, p.log_id));
    in.push_back(std::make_unique<SchemaCheck>(c->schemas, p.log_id));
    in.push_back(std::make_unique<BehaviourFilter>(p.shared, p.caller, p.log_id, p.baselines));
    in.push_back(std::make_unique<PolicyFilter>(p.shared, p.caller, p.session_id, p.upstreams,
                                                p.log_id, p.counts));
    in.push_back(std::make_unique<AskFilter>(p.asker, p.log_id));
    in.push_back(std::make_unique<ForwardFilter>(p.forwarder, p.sink));
    c->requests = std::make_unique<RequestChain>(std::move(in), p.sink);

    std::vector<std::unique_ptr<ListFilter>> out;
    out.push_back(std::make_unique<IntegrityReview>(c->integrity, p.shared.guard, p.upstreams));
    out.push_back(std::make_unique<Namespacing>(p.upstreams, p.routes, p.log_id));
    out.push_back(std::make_unique<ParamHeaderLearning>(c->param_headers, p.log_id));
    out.push_back(std::make_unique<SchemaLearning>(c->schemas));
    out.push_back(std::make_unique<Visibility>(p.shared, p.caller, p.upstreams));
    out.push_back(std::make_unique<Signing>(p.shared.guard));
    c->lists = std::make_unique<ListChain>(std::move(out));
    return c;
}

}  // namespace pqmcp::gateway
