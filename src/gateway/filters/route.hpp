// Internal: the first request filter. Finds the upstream a request goes to
// and the name it has there; the routes themselves are the session's.
#pragma once

#include <optional>
#include <string>
#include <utility>

#include "../chain.hpp"

namespace pqmcp::gateway {

class Router {
  public:
    Router() = default;
    virtual ~Router() = default;
    Router(const Router&) = delete;
    Router& operator=(const Router&) = delete;
    Router(Router&&) = delete;
    Router& operator=(Router&&) = delete;

    // The link and its own name for a gateway (prefixed) name.
    [[nodiscard]] virtual std::optional<std::pair<std::size_t, std::string>> route_name(
        std::string_view name) const = 0;
    // The link that owns a (normalized) resource URI.
    [[nodiscard]] virtual std::optional<std::size_t> route_uri(std::string_view uri) const = 0;
};

class RouteFilter final : public RequestFilter {
  public:
    RouteFilter(const Upstreams& upstreams, const Router& router, const std::string& log_id)
        : upstreams_(upstreams), router_(router), log_id_(log_id) {}
    [[nodiscard]] std::string_view name() const noexcept override { return "route"; }
    Step on_request(const std::shared_ptr<Exchange>& x, RequestChain& chain) override;

  private:
    Step route_resource(Exchange& x) const;
    Step route_completion(Exchange& x) const;
    [[nodiscard]] std::string example_prefix() const;

    const Upstreams& upstreams_;
    const Router& router_;
    const std::string& log_id_;
};

}  // namespace pqmcp::gateway
