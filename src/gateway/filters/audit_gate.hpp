// Internal: no action without its record. A tools/call is refused while the
// audit trail cannot be written and audit.on_failure is refuse.
#pragma once

#include "../chain.hpp"

namespace pqmcp::gateway {

class Recorder;

class AuditGateFilter final : public RequestFilter {
  public:
    explicit AuditGateFilter(Recorder* recorder) : recorder_(recorder) {}
    [[nodiscard]] std::string_view name() const noexcept override { return "audit"; }
    Step on_request(const std::shared_ptr<Exchange>& x, RequestChain& chain) override;

  private:
    Recorder* recorder_;  // null: nothing is recorded (bare tests)
};

}  // namespace pqmcp::gateway
