// Internal: no action without its record. A tools/call is refused while the
// audit trail cannot be written and audit.on_failure is refuse.
#pragma once

#include <functional>

#include "../chain.hpp"

namespace pqmcp::gateway {

class AuditGateFilter final : public RequestFilter {
  public:
    // `writable`: whether the audit trail takes records now (empty: nothing
    // is recorded, as in bare tests).
    explicit AuditGateFilter(std::function<bool()> writable) : writable_(std::move(writable)) {}
    [[nodiscard]] std::string_view name() const noexcept override { return "audit"; }
    Step on_request(const std::shared_ptr<Exchange>& x, RequestChain& chain) override;

  private:
    std::function<bool()> writable_;
};

}  // namespace pqmcp::gateway
