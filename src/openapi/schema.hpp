// Internal: OpenAPI schemas as JSON Schema 2020-12 (what MCP tools carry).
// Component schemas (#/components/schemas/X, Swagger's #/definitions/X)
// become "$defs" of the tool that uses them, referred to by "$ref", so a
// recursive schema stays a reference instead of an endless expansion; any
// other $ref is inlined, at most Limits::max_schema_depth deep. OpenAPI 3.0's
// and Swagger's own keywords are translated (nullable, boolean exclusive
// bounds, example, type file); extensions (x-*) and keywords with no meaning
// in JSON Schema (discriminator, xml, externalDocs) are left out.
#pragma once

#include <map>
#include <set>
#include <string>
#include <vector>

#include <boost/json/object.hpp>
#include <boost/json/value.hpp>

#include "documents.hpp"

namespace pqmcp::openapi::detail {

class SchemaConverter final {
  public:
    SchemaConverter(Documents& docs, bool legacy, const Limits& limits,
                    std::vector<Warning>& warnings)
        : docs_(docs), legacy_(legacy), limits_(limits), warnings_(warnings) {}

    // The schema at `at` as JSON Schema; the component schemas it refers to
    // are noted for defs_of().
    [[nodiscard]] boost::json::value convert(const Location& at);
    // The same for a schema made from the keywords of something else at
    // `at` (a Swagger 2.0 parameter's type, format, items...): its
    // subschemas are read from their places under `at`.
    [[nodiscard]] boost::json::value convert_value(const boost::json::value& v, const Location& at);
    // The "$defs" a schema made by convert() needs (every component it refers
    // to, directly or through others), then forgets what was noted.
    [[nodiscard]] boost::json::object take_defs();

  private:
    struct Def {
        std::string name;
        boost::json::value schema;
        std::set<std::string> uses;  // keys of the components it refers to
        bool done = false;
    };
    boost::json::value walk(const Location& at, std::size_t depth, std::set<std::string>& uses);
    boost::json::value walk_value(const boost::json::value& v, const Location& at,
                                  std::size_t depth, std::set<std::string>& uses);
    boost::json::value reference(const Location& at, const boost::json::object& schema,
                                 std::size_t depth, std::set<std::string>& uses);
    void complete(const std::string& key);  // converts a component once
    boost::json::value subschemas(const Location& at, const boost::json::value& v,
                                  std::string_view kind, std::size_t depth,
                                  std::set<std::string>& uses);

    Documents& docs_;
    bool legacy_;  // OpenAPI 3.0 or Swagger 2.0 (not 3.1's JSON Schema)
    const Limits& limits_;
    std::vector<Warning>& warnings_;
    std::map<std::string, Def> defs_;        // by "doc#pointer"
    std::set<std::string> names_;            // of the $defs, unique in the description
    std::map<std::string, Location> where_;  // key -> its place
    std::set<std::string> noted_;            // referred to by the schemas since take_defs()
    std::vector<std::string> inline_stack_;  // non-component $refs being inlined
};

}  // namespace pqmcp::openapi::detail
