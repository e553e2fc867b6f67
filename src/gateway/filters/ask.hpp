// Internal: `ask` decisions in the chain. A request the policy wants a person
// to approve is put to the client as an elicitation; it goes on only on an
// explicit "approve": true under "accept" (docs/policy.md).
#pragma once

#include <functional>
#include <string>

#include <tl/expected.hpp>

#include "../chain.hpp"

namespace pqmcp::gateway {

// The client, as the ask filter sees it (the session).
class Asker {
  public:
    Asker() = default;
    virtual ~Asker() = default;
    Asker(const Asker&) = delete;
    Asker& operator=(const Asker&) = delete;
    Asker(Asker&&) = delete;
    Asker& operator=(Asker&&) = delete;

    // Whether the client declared elicitation.
    [[nodiscard]] virtual bool can_ask() const = 0;
    // Sends elicitation/create with `params` on `stream`; `done` gets the
    // client's answer or why there is none (no answer in time, unreachable).
    virtual void ask(transport::StreamId stream, boost::json::object params,
                     std::function<void(tl::expected<mcp::Message, std::string>)> done) = 0;
};

class AskFilter final : public RequestFilter {
  public:
    AskFilter(Asker& asker, const std::string& log_id) : asker_(asker), log_id_(log_id) {}
    [[nodiscard]] std::string_view name() const noexcept override { return "ask"; }
    Step on_request(const std::shared_ptr<Exchange>& x, RequestChain& chain) override;

  private:
    Asker& asker_;
    const std::string& log_id_;
};

// Whether an elicitation answer approves: "action": "accept" with
// "approve": true; otherwise how it did not ("decline", "accepted without
// approving", ...).
[[nodiscard]] std::pair<bool, std::string> approval(const mcp::Message& answer);

}  // namespace pqmcp::gateway
