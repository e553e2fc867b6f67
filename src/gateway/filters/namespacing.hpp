// Internal: the gateway's names on the way back. Tools and prompts get their
// upstream's prefix (a name two upstreams share stays apart; a collision
// after prefixing keeps the first); resources and resource templates record
// which upstream owns each URI, for routing.
#pragma once

#include <map>
#include <string>
#include <utility>
#include <vector>

#include "../chain.hpp"

namespace pqmcp::gateway {

// Which upstream owns which resources (the session routes by it).
struct ResourceRoutes {
    std::map<std::string, std::size_t> owner;                      // normalized uri -> link
    std::vector<std::pair<std::string, std::size_t>> by_template;  // uri prefix -> link
};

class Namespacing final : public ListFilter {
  public:
    Namespacing(const Upstreams& upstreams, ResourceRoutes& routes, const std::string& log_id)
        : upstreams_(upstreams), routes_(routes), log_id_(log_id) {}
    [[nodiscard]] std::string_view name() const noexcept override { return "namespacing"; }
    void on_items(Listing& listing) override;

  private:
    void prefix(Listing& listing);
    void resources(Listing& listing);
    void templates(Listing& listing);

    const Upstreams& upstreams_;
    ResourceRoutes& routes_;
    const std::string& log_id_;
};

}  // namespace pqmcp::gateway
