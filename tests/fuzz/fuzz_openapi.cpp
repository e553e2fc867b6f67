// Fuzz target: OpenAPI descriptions (JSON or YAML, 2.0/3.0/3.1, $refs, schemas,
// parameters) as tools, then each tool's request built from arguments made of
// the same bytes: a description must become tools or fail with a reason,
// never crash or hang.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include <boost/json/parse.hpp>

#include "pqmcp/openapi/openapi.hpp"

// NOLINTNEXTLINE(readability-identifier-naming): the name libFuzzer calls
extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view text(reinterpret_cast<const char*>(data), size);
    auto catalog = pqmcp::openapi::parse(text, "fuzz.yaml", {});
    if (!catalog) {
        return 0;
    }
    boost::system::error_code ec;
    const boost::json::value args = boost::json::parse(text, ec);
    const boost::json::object none;
    for (const auto& op : catalog->operations) {
        (void)op.tool_json();
        (void)pqmcp::openapi::build_request(op, args.is_object() ? args.as_object() : none);
        (void)pqmcp::openapi::to_result(
            op, {200, "OK", "application/json", std::string(text), false}, "http://x/");
    }
    (void)pqmcp::openapi::starting_policy(*catalog, "fuzz");
    return 0;
}
