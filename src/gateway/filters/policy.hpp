// Internal: the policy in the chain. PolicyFilter decides each request
// (allow, deny, ask; shadow rules logged) and keeps the session's data-flow
// state (the tags of tools it used); Visibility takes out of tools/list what
// the caller may never call.
#pragma once

#include <set>
#include <string>

#include "../chain.hpp"
#include "../shared.hpp"

namespace pqmcp::gateway {

class PolicyFilter final : public RequestFilter {
  public:
    PolicyFilter(SharedState& shared, const policy::Caller& caller, const std::string& session_id,
                 const Upstreams& upstreams, const std::string& log_id)
        : shared_(shared),
          caller_(caller),
          session_id_(session_id),
          upstreams_(upstreams),
          log_id_(log_id) {}
    [[nodiscard]] std::string_view name() const noexcept override { return "policy"; }
    Step on_request(const std::shared_ptr<Exchange>& x, RequestChain& chain) override;

    [[nodiscard]] const std::set<std::string>& used_tags() const noexcept { return used_tags_; }

  private:
    SharedState& shared_;
    const policy::Caller& caller_;
    const std::string& session_id_;
    const Upstreams& upstreams_;
    const std::string& log_id_;
    std::set<std::string> used_tags_;  // tags of the tools the session called successfully
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
