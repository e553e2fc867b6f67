// Fuzz target: the tool-poisoning scanner on definitions an upstream may
// serve: the input as a JSON definition (tool, prompt or template, chosen by
// the first byte) and as the text of a description, next to another
// upstream's names, as the gateway and `pqmcp scan` run it.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include <boost/json.hpp>

#include "pqmcp/integrity/scanner.hpp"

// NOLINTNEXTLINE(readability-identifier-naming): the name libFuzzer calls
extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    static const auto scanner = pqmcp::integrity::Scanner::builtin();
    const std::string_view text(reinterpret_cast<const char*>(data), size);
    pqmcp::integrity::ScanContext context;
    context.upstream = "fuzz";
    context.others = {{"other", "process_refund"}, {"other", "read_file"}};
    static constexpr std::string_view k_kinds[] = {"tool", "prompt", "resourceTemplate"};
    const std::string_view kind = k_kinds[size > 0 ? data[0] % 3 : 0];
    boost::system::error_code ec;
    boost::json::parse_options options;
    options.max_depth = 64;
    const boost::json::value v = boost::json::parse(text, ec, {}, options);
    if (!ec && v.is_object()) {
        (void)scanner->scan(v.as_object(), kind, context);
    }
    // The bytes as a description and a name (invalid UTF-8 included).
    const boost::json::object tool{{"name", boost::json::string_view(text.substr(0, 64))},
                                   {"description", boost::json::string_view(text)}};
    (void)scanner->scan(tool, "tool", context);
    return 0;
}
