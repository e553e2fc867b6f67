// Internal: the behaviour baseline in the chain. Scores each tools/call of
// the caller against what it usually does (policy::Behaviour) and hands the
// findings to the policy filter, which may match on them. In a tier whose
// baselines are shared (cluster.behaviour: shared) the call pauses until
// Redis answers with the caller's baseline; without an answer in time it is
// scored against this replica's own (which learns from every call).
#pragma once

#include <chrono>
#include <map>
#include <memory>
#include <string>

#include "../chain.hpp"
#include "../shared.hpp"

namespace pqmcp::gateway {

class BehaviourFilter final : public RequestFilter {
  public:
    BehaviourFilter(SharedState& shared, const policy::Caller& caller, const std::string& log_id,
                    cluster::AsyncCounts* baselines = nullptr)
        : shared_(shared), caller_(caller), log_id_(log_id), baselines_(baselines) {}
    ~BehaviourFilter() override { *alive_ = false; }
    BehaviourFilter(const BehaviourFilter&) = delete;
    BehaviourFilter& operator=(const BehaviourFilter&) = delete;
    BehaviourFilter(BehaviourFilter&&) = delete;
    BehaviourFilter& operator=(BehaviourFilter&&) = delete;
    [[nodiscard]] std::string_view name() const noexcept override { return "behaviour"; }
    Step on_request(const std::shared_ptr<Exchange>& x, RequestChain& chain) override;

  private:
    [[nodiscard]] std::string who() const;
    void log_findings(const Exchange& x, std::chrono::steady_clock::time_point now);

    SharedState& shared_;
    const policy::Caller& caller_;
    const std::string& log_id_;
    cluster::AsyncCounts* baselines_;
    std::map<std::string, std::chrono::steady_clock::time_point> logged_;  // by finding kind
    std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace pqmcp::gateway
