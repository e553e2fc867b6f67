// The built-in demo MCP server: a handful of tools with deterministic fake
// data (a refund desk, patient records, a record search, echo and add), used
// by `pqmcp serve --demo` in-process, by `pqmcp demo-server` over stdio, by the
// tests and by the benchmarks. Later policy work writes its examples against it.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include <boost/json/object.hpp>

#include "pqmcp/mcp/jsonrpc.hpp"

namespace pqmcp::demo {

inline constexpr std::string_view k_server_name = "pqmcp-demo";

class DemoServer final {
  public:
    // One message in, the response out (nothing for notifications and
    // responses). Pure: the same calls give the same answers.
    [[nodiscard]] std::optional<boost::json::object> handle(const mcp::Message& message);

    // The tools/list result.
    [[nodiscard]] static boost::json::object tools_list();

  private:
    std::string protocol_version_;
};

// Reads newline-delimited JSON-RPC from `in_fd`, answers on `out_fd`, until
// end of input. Malformed lines get JSON-RPC errors, as a server must.
// Returns 0, or 1 on an I/O error.
int run_stdio(int in_fd, int out_fd, const mcp::Limits& limits);

}  // namespace pqmcp::demo
