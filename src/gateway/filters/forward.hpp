// Internal: the last request filter. Hands the request to the session,
// which sends it upstream (or merges the lists of every upstream, or fans
// logging/setLevel out); the response comes back through the session.
#pragma once

#include "../chain.hpp"

namespace pqmcp::gateway {

class Forwarder {
  public:
    Forwarder() = default;
    virtual ~Forwarder() = default;
    Forwarder(const Forwarder&) = delete;
    Forwarder& operator=(const Forwarder&) = delete;
    Forwarder(Forwarder&&) = delete;
    Forwarder& operator=(Forwarder&&) = delete;
    virtual void dispatch(const std::shared_ptr<Exchange>& x) = 0;
};

class ForwardFilter final : public RequestFilter {
  public:
    ForwardFilter(Forwarder& forwarder, ChainSink& sink) : forwarder_(forwarder), sink_(sink) {}
    [[nodiscard]] std::string_view name() const noexcept override { return "upstream"; }
    Step on_request(const std::shared_ptr<Exchange>& x, RequestChain& /*chain*/) override {
        sink_.note(*x);  // before the request (and its id) is handed on
        forwarder_.dispatch(x);
        return Step::done();
    }

  private:
    Forwarder& forwarder_;
    ChainSink& sink_;
};

}  // namespace pqmcp::gateway
