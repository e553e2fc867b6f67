// Internal: the behaviour baseline in the chain. Scores each tools/call of
// the caller against what it usually does (policy::Behaviour) and hands the
// findings to the policy filter, which may match on them.
#pragma once

#include <chrono>
#include <map>
#include <string>

#include "../chain.hpp"
#include "../shared.hpp"

namespace pqmcp::gateway {

class BehaviourFilter final : public RequestFilter {
  public:
    BehaviourFilter(SharedState& shared, const policy::Caller& caller, const std::string& log_id)
        : shared_(shared), caller_(caller), log_id_(log_id) {}
    [[nodiscard]] std::string_view name() const noexcept override { return "behaviour"; }
    Step on_request(const std::shared_ptr<Exchange>& x, RequestChain& chain) override;

  private:
    SharedState& shared_;
    const policy::Caller& caller_;
    const std::string& log_id_;
    std::map<std::string, std::chrono::steady_clock::time_point> logged_;  // by finding kind
};

}  // namespace pqmcp::gateway
