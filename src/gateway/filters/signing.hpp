// Internal: the last list filter. Signs the list the client gets with the
// gateway's ML-DSA identity (docs/integrity.md).
#pragma once

#include "../chain.hpp"
#include "../guard.hpp"

namespace pqmcp::gateway {

class Signing final : public ListFilter {
  public:
    explicit Signing(Guard* guard) : guard_(guard) {}
    [[nodiscard]] std::string_view name() const noexcept override { return "signing"; }
    void on_result(const Listing& listing, boost::json::object& result) override {
        if (guard_ != nullptr) {
            guard_->sign(result, listing.spec->method);
        }
    }

  private:
    Guard* guard_;  // null: integrity turned off, nothing signed
};

}  // namespace pqmcp::gateway
