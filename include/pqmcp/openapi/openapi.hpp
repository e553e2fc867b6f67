// OpenAPI descriptions as MCP tools (docs/openapi.md): a REST API behind the
// gateway with no MCP server to write. load() reads an OpenAPI 3.0 or 3.1
// description, or a Swagger 2.0 one (converted), in JSON or YAML, bounded in
// size, depth and $ref resolutions, with $refs to local and relative files
// only; each operation becomes a tool (name, description, inputSchema,
// outputSchema, annotations). build_request() turns a tools/call's arguments
// into the HTTP request exactly; to_result() turns the API's answer into the
// tool's result.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#include <boost/json/object.hpp>
#include <boost/json/value.hpp>

#include "pqmcp/core/error.hpp"

namespace pqmcp::openapi {

enum class Errc {
    unreadable = 1,  // the file cannot be read
    too_large,       // over Limits::max_bytes, max_depth, max_refs, max_documents or max_operations
    invalid,        // not JSON or YAML, or not an OpenAPI/Swagger document (the pointer says where)
    unsupported,    // a version other than 2.0, 3.0.x or 3.1.x
    bad_ref,        // a $ref that does not resolve, leaves the spec's directory, or loops
    remote_ref,     // a $ref to the network: never fetched
    bad_arguments,  // a tools/call whose arguments cannot make the request
    bad_options,    // filters, limits or names that cannot work
};
[[nodiscard]] const std::error_category& openapi_category() noexcept;
[[nodiscard]] std::error_code make_error_code(Errc e) noexcept;

struct Limits {
    std::size_t max_bytes = 16U << 20U;   // each document (the spec and every file it refers to)
    std::size_t max_depth = 128;          // nesting of JSON/YAML values
    std::size_t max_refs = 100'000;       // $ref resolutions in all
    std::size_t max_documents = 64;       // files the spec refers to, itself included
    std::size_t max_operations = 20'000;  // operations read (before filters)
    std::size_t max_schema_depth = 32;    // schemas inlined into each other (beyond: any value)
};

// Which operations become tools. An operation is kept when it matches every
// non-empty include list and none of the exclude lists. Paths are glob
// patterns ("/pets/*"), methods upper or lower case.
struct Filter {
    std::vector<std::string> tags;
    std::vector<std::string> paths;
    std::vector<std::string> methods;
    std::vector<std::string> operations;  // operationIds (globs)
    [[nodiscard]] bool empty() const {
        return tags.empty() && paths.empty() && methods.empty() && operations.empty();
    }
};

struct Options {
    Filter include;
    Filter exclude;
    std::size_t max_tools = 128;       // the first ones in the spec's order; the rest reported
    std::size_t name_max_length = 64;  // of the name a client sees, prefix included
    std::size_t prefix_length = 0;     // the gateway's "<upstream>__" in front of every name
    std::size_t description_max_length = 1'024;
    bool output_schema = true;  // outputSchema from the 2xx JSON response, when usable
    Limits limits{};
};

// What could not become part of a tool, and where (a JSON Pointer into the spec).
struct Warning {
    std::string pointer;
    std::string message;
};

struct Parameter {
    std::string name;      // as the API knows it
    std::string in;        // path, query, header, cookie
    std::string property;  // its name in the tool's inputSchema
    bool required = false;
    std::string style;  // form, simple, label, matrix, spaceDelimited, pipeDelimited, deepObject
    bool explode = false;
    bool allow_reserved = false;
    bool json = false;  // `content: application/json`: sent as JSON text
};

struct Body {
    std::string media_type;  // application/json, application/x-www-form-urlencoded, text/plain
    std::string property;    // "body", or "request_body" when "body" is taken
    bool required = false;
};

struct Operation {
    std::string method;  // upper case
    std::string path;    // as in the spec: /pets/{petId}
    std::string operation_id;
    std::vector<std::string> tags;
    std::string pointer;  // /paths/~1pets~1{petId}/get
    std::string tool;     // the tool's name upstream (without the gateway's prefix)
    std::string title;
    std::string description;
    std::vector<Parameter> parameters;
    std::optional<Body> body;
    boost::json::object input_schema;
    // From the 2xx application/json response. A schema that is not an object
    // is wrapped: {"type":"object","properties":{"result": ...}}.
    std::optional<boost::json::object> output_schema;
    bool wrapped_output = false;
    boost::json::object
        annotations;  // readOnlyHint, destructiveHint, idempotentHint, openWorldHint

    // The MCP tool definition (name, title, description, inputSchema,
    // outputSchema, annotations).
    [[nodiscard]] boost::json::object tool_json() const;
};

struct Catalog {
    std::string spec_version;  // "3.0.3", "3.1.0", "2.0"
    std::string title;
    std::string api_version;
    std::string description;
    std::vector<std::string> servers;  // as the spec gives them (followed only if allowed)
    std::vector<Operation> operations;
    std::vector<Warning> warnings;
    std::size_t operations_read = 0;  // in the spec
    std::size_t filtered_out = 0;     // by include/exclude
    std::size_t over_limit = 0;       // beyond max_tools
    std::size_t skipped = 0;          // unusable (each has a warning)
    std::size_t documents = 0;        // files read, the spec included

    [[nodiscard]] const Operation* find(std::string_view tool) const;
};

// Reads the spec at `path` (and the files its $refs name, under its own
// directory). Errors: unreadable, too_large, invalid, unsupported, bad_ref,
// remote_ref, bad_options; the message names the file and the JSON Pointer.
[[nodiscard]] Result<Catalog> load(const std::filesystem::path& path, const Options& options = {});
// The same for a document in memory; relative $refs resolve against `base`
// (no file $ref at all when it is empty).
[[nodiscard]] Result<Catalog> parse(std::string_view text, std::string_view source,
                                    const std::filesystem::path& base, const Options& options = {});

// One HTTP request, ready to send: the target is relative to the API's base
// URL (its path is prefixed by the caller).
struct HttpRequest {
    std::string method;
    std::string path;   // percent-encoded, starting with "/"
    std::string query;  // without "?", percent-encoded ("" for none)
    std::vector<std::pair<std::string, std::string>> headers;
    std::string body;
    std::string content_type;  // of the body ("" without one)
};

// Builds the request of `op` from a tools/call's `arguments`. Path parameters
// are percent-encoded and may not change the path: "." and "..", '/', '\\',
// and control characters are refused (bad_arguments), and so are missing
// required parameters and values a style cannot carry.
[[nodiscard]] Result<HttpRequest> build_request(const Operation& op,
                                                const boost::json::object& arguments);

// The tool's result for the API's answer: a 2xx JSON body is structuredContent
// (wrapped as {"result": ...} when the output schema is) plus its text; other
// text is text; a non-2xx is an isError result with the status and at most
// `excerpt_bytes` of the body; anything else is a resource blob (base64)
// named by `url`, the request's URL.
struct HttpAnswer {
    unsigned status = 0;
    std::string reason;
    std::string content_type;
    std::string body;
    bool truncated = false;  // the body was cut at the response size limit
};
[[nodiscard]] boost::json::object to_result(const Operation& op, const HttpAnswer& answer,
                                            std::string_view url,
                                            std::size_t excerpt_bytes = 1'024);

// A starting policy for the tools of `catalog` under upstream `upstream`, as
// YAML for the operator to edit: reads allowed, writes asked, deletes
// denied, argument limits of the schemas (enums, maximum, minimum, pattern,
// maxLength) as conditions.
[[nodiscard]] std::string starting_policy(const Catalog& catalog, std::string_view upstream,
                                          std::string_view separator = "__");

}  // namespace pqmcp::openapi

template <>
struct std::is_error_code_enum<pqmcp::openapi::Errc> : std::true_type {};
