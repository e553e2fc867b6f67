// Internal: a tool's inputSchema in the chain. SchemaLearning learns each
// tool's schema as the upstreams list it (under the gateway's name);
// SchemaCheck refuses a tools/call whose arguments do not match it, when the
// policy asks for schema validation.
#pragma once

#include "../chain.hpp"
#include "pqmcp/policy/schema.hpp"

namespace pqmcp::gateway {

class SchemaCheck final : public RequestFilter {
  public:
    SchemaCheck(const policy::SchemaCache& schemas, const std::string& log_id)
        : schemas_(schemas), log_id_(log_id) {}
    [[nodiscard]] std::string_view name() const noexcept override { return "schema"; }
    Step on_request(const std::shared_ptr<Exchange>& x, RequestChain& chain) override;

  private:
    const policy::SchemaCache& schemas_;
    const std::string& log_id_;
};

class SchemaLearning final : public ListFilter {
  public:
    explicit SchemaLearning(policy::SchemaCache& schemas) : schemas_(schemas) {}
    [[nodiscard]] std::string_view name() const noexcept override { return "schema"; }
    void on_items(Listing& listing) override;

  private:
    policy::SchemaCache& schemas_;
};

// The arguments of a tools/call ({} when it has none), or null for another request.
[[nodiscard]] const boost::json::value* call_arguments(const mcp::Message& m);

}  // namespace pqmcp::gateway
