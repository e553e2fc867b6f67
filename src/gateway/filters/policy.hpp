// Internal: the policy in the chain. PolicyFilter decides each request
// (allow, deny, ask; shadow rules logged) and keeps the session's data-flow
// state (the tags of tools it used); Visibility takes out of tools/list what
// the caller may never call.
#pragma once

#include <cstdint>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "../chain.hpp"
#include "../shared.hpp"

namespace pqmcp::gateway {

class PolicyFilter final : public RequestFilter {
  public:
    // `counts`: rates and quotas counted in Redis, without blocking the
    // thread (the request pauses until the counts are in); null: here.
    PolicyFilter(SharedState& shared, const policy::Caller& caller, const std::string& session_id,
                 const Upstreams& upstreams, const std::string& log_id,
                 cluster::AsyncCounts* counts = nullptr)
        : shared_(shared),
          caller_(caller),
          session_id_(session_id),
          upstreams_(upstreams),
          log_id_(log_id),
          counts_(counts) {}
    ~PolicyFilter() override { *alive_ = false; }
    PolicyFilter(const PolicyFilter&) = delete;
    PolicyFilter& operator=(const PolicyFilter&) = delete;
    PolicyFilter(PolicyFilter&&) = delete;
    PolicyFilter& operator=(PolicyFilter&&) = delete;
    [[nodiscard]] std::string_view name() const noexcept override { return "policy"; }
    Step on_request(const std::shared_ptr<Exchange>& x, RequestChain& chain) override;

    [[nodiscard]] const std::set<std::string>& used_tags() const noexcept { return used_tags_; }

  private:
    struct Counting;
    // The policy's view of the request; `purpose` holds what it points to.
    [[nodiscard]] policy::Request request_of(const Exchange& x, std::string& purpose) const;
    // What the decision does to the request (audit, logs, data flow, the step).
    Step conclude(const std::shared_ptr<Exchange>& x, const policy::Decision& decision);
    // Asks Redis for the counts of the matched rules that count, then
    // resumes the chain with the decision.
    void count_shared(const std::shared_ptr<Exchange>& x, RequestChain& chain,
                      std::vector<std::uint32_t> matched,
                      const std::vector<std::uint32_t>& counted);
    void count_rule(const std::shared_ptr<Counting>& c, std::uint32_t at);
    void counted(const std::shared_ptr<Counting>& c, std::uint32_t at, policy::CountVerdict v);

    SharedState& shared_;
    const policy::Caller& caller_;
    const std::string& session_id_;
    const Upstreams& upstreams_;
    const std::string& log_id_;
    cluster::AsyncCounts* counts_;
    std::set<std::string> used_tags_;  // tags of the tools the session called successfully
    std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

// The refusal of a request the policy (or a person asked) did not allow:
// logged, error -32010 with the rule, reason and policy fingerprint.
[[nodiscard]] Step policy_refusal(const Exchange& x, const policy::Policy& policy,
                                  const std::string& log_id);

class Visibility final : public ListFilter {
  public:
    Visibility(SharedState& shared, const policy::Caller& caller, const Upstreams& upstreams)
        : shared_(shared), caller_(caller), upstreams_(upstreams) {}
    [[nodiscard]] std::string_view name() const noexcept override { return "visibility"; }
    void on_items(Listing& listing) override;

  private:
    SharedState& shared_;
    const policy::Caller& caller_;
    const Upstreams& upstreams_;
};

}  // namespace pqmcp::gateway
