// Internal: MCP 2026-07-28's Mcp-Param-{Name} headers in the chain.
// ParamHeaderLearning reads each listed tool's x-mcp-header marks (under the
// gateway's name) and withholds a tool whose marks are invalid;
// ParamHeaderCheck refuses a tools/call that came with 2026-07-28 headers
// when they do not match its arguments (HeaderMismatch, which the transport
// answers with 400).
#pragma once

#include <map>
#include <string>
#include <vector>

#include "../chain.hpp"
#include "pqmcp/transport/param_headers.hpp"

namespace pqmcp::gateway {

// What the session learnt of each tool's marks: the marks, or why they are invalid.
class ParamHeaderBook final {
  public:
    using Marks = tl::expected<std::vector<transport::ParamHeader>, std::string>;
    void learn(const std::string& tool, Marks marks);
    // Null when the tool was never listed.
    [[nodiscard]] const Marks* find(const std::string& tool) const;

    static constexpr std::size_t k_max_tools = 20'000;

  private:
    std::map<std::string, Marks> marks_;
};

class ParamHeaderCheck final : public RequestFilter {
  public:
    ParamHeaderCheck(const ParamHeaderBook& book, const std::string& log_id)
        : book_(book), log_id_(log_id) {}
    [[nodiscard]] std::string_view name() const noexcept override { return "headers"; }
    Step on_request(const std::shared_ptr<Exchange>& x, RequestChain& chain) override;

  private:
    const ParamHeaderBook& book_;
    const std::string& log_id_;
};

class ParamHeaderLearning final : public ListFilter {
  public:
    ParamHeaderLearning(ParamHeaderBook& book, const std::string& log_id)
        : book_(book), log_id_(log_id) {}
    [[nodiscard]] std::string_view name() const noexcept override { return "headers"; }
    void on_items(Listing& listing) override;

  private:
    ParamHeaderBook& book_;
    const std::string& log_id_;
};

}  // namespace pqmcp::gateway
