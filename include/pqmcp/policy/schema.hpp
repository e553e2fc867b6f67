// Validation of tools/call arguments against the tool's own inputSchema
// (JSON Schema, as the upstream declared it in tools/list), with valijson.
// Schemas are compiled once per tool definition and kept until it changes.
#pragma once

#include <cstddef>
#include <map>
#include <memory>
#include <string>

#include <boost/json/object.hpp>
#include <boost/json/value.hpp>

#include "pqmcp/core/error.hpp"

namespace pqmcp::policy {

class SchemaCache final {
  public:
    SchemaCache();
    ~SchemaCache();
    SchemaCache(const SchemaCache&) = delete;
    SchemaCache& operator=(const SchemaCache&) = delete;
    SchemaCache(SchemaCache&&) noexcept;
    SchemaCache& operator=(SchemaCache&&) noexcept;

    // Remembers the inputSchema of `tool` (a tools/list entry); a schema that
    // cannot be compiled is remembered as such (calls are then refused). The
    // compiled schema is shared with every other cache that learned the same
    // text, on any thread.
    void learn(const std::string& tool, const boost::json::object& definition);
    [[nodiscard]] bool knows(const std::string& tool) const;
    // How many distinct compiled schemas the process holds (all caches).
    [[nodiscard]] static std::size_t compiled_schemas();

    // Empty when `arguments` satisfy the schema (or the tool is unknown);
    // otherwise why not, naming the place ("/amount: ... ").
    [[nodiscard]] std::string check(const std::string& tool,
                                    const boost::json::value& arguments) const;

    struct Entry;

  private:
    std::map<std::string, std::shared_ptr<const Entry>> entries_;  // shared by every cache
};

}  // namespace pqmcp::policy
