#include "audit_gate.hpp"

#include "pqmcp/mcp/protocol.hpp"

namespace pqmcp::gateway {

Step AuditGateFilter::on_request(const std::shared_ptr<Exchange>& x, RequestChain& /*chain*/) {
    if (x->message.method != mcp::method::tools_call || !writable_ || writable_()) {
        return Step::next();
    }
    x->decision.disposition = Disposition::refused_audit;
    return Step::deny(mcp::code::audit_unavailable,
                      "Refused: the gateway's audit trail cannot be written, and it does not "
                      "act without a record (audit.on_failure: refuse); try again later");
}

}  // namespace pqmcp::gateway
