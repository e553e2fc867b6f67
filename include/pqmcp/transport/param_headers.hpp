// MCP 2026-07-28, Streamable HTTP, "Custom Headers from Tool Parameters": a
// tool's inputSchema may mark properties with `x-mcp-header`, and a client
// then mirrors those arguments into `Mcp-Param-{Name}` headers. This reads
// the marks (with the specification's constraints on them), renders an
// argument as its header text, and checks a request's headers against its
// arguments, for the client and the server side alike.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <boost/json/object.hpp>
#include <boost/json/value.hpp>
#include <tl/expected.hpp>

namespace pqmcp::transport {

inline constexpr std::string_view k_param_header_prefix = "Mcp-Param-";
// A bound on the marks of one tool (the specification sets none).
inline constexpr std::size_t k_max_param_headers = 64;

struct ParamHeader {
    std::string name;               // the {Name} of Mcp-Param-{Name}, as declared
    std::vector<std::string> path;  // the chain of `properties` keys to the argument
    bool integer = false;           // compared numerically
};

// The marks of a tool's inputSchema, in a stable order (empty: none). An
// error says why the tool definition is invalid: an empty name or one that
// is not an RFC 9110 token, two names equal ignoring case, a mark on a
// property that is not a string, integer or boolean, a mark reachable other
// than through `properties` (items, oneOf, $ref, ...), or too many marks.
[[nodiscard]] tl::expected<std::vector<ParamHeader>, std::string> param_headers_of(
    const boost::json::value& input_schema);

// The argument at `path` in `arguments`, or nullptr when absent.
[[nodiscard]] const boost::json::value* argument_at(const boost::json::value& arguments,
                                                    const std::vector<std::string>& path);

// An argument's header text: a string as it is, an integer in decimal, a
// boolean as true/false; nullopt when it gets no header (absent, null, or of
// another type).
[[nodiscard]] std::optional<std::string> param_header_text(const boost::json::value* argument);

// A request's Mcp-Param-* headers: {Name} (as received) and the raw value.
using ParamHeaderValues = std::vector<std::pair<std::string, std::string>>;

// Checks `headers` against `arguments` for the marks `declared`: every
// argument present (and not null) has its header, equal after the Base64
// sentinel is decoded (integers compared numerically); no header without its
// argument; no value with characters a header may not carry. Empty when they
// agree, else what is wrong, naming the header.
[[nodiscard]] std::string check_param_headers(const std::vector<ParamHeader>& declared,
                                              const boost::json::value& arguments,
                                              const ParamHeaderValues& headers);

// Whether `name` (the {Name} part) is one of `declared`, ignoring case.
[[nodiscard]] bool param_header_declared(const std::vector<ParamHeader>& declared,
                                         std::string_view name);

}  // namespace pqmcp::transport
