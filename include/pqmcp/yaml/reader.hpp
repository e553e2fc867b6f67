// Reading the project's YAML documents (the gateway configuration, policies,
// scanner rule files) with errors that name the file, the line and the key.
#pragma once

#include <chrono>
#include <cstddef>
#include <initializer_list>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <yaml-cpp/yaml.h>
#include <boost/json/value.hpp>

namespace pqmcp::yaml {

// What is wrong with a document: thrown while it is read, caught where the
// reading started and turned into that component's error value.
struct Problem {
    std::string message;
};

// An id as rule files and policies write them: 1 to 128 letters, digits, '.', '-', '_'.
[[nodiscard]] bool valid_id(std::string_view id) noexcept;

// Parses `text`; a syntax error is a Problem "source:line:column: what".
[[nodiscard]] YAML::Node load(std::string_view text, std::string_view source);

class Reader {
  public:
    // `source` names the document ("gw.yaml"); a node that has no place in it
    // (made from a command-line flag) is named with `unplaced` ("--set ").
    explicit Reader(std::string_view source, std::string_view unplaced = {})
        : source_(source), unplaced_(unplaced) {}

    // "source:line: key: why" ("--set key: why" for an unplaced node).
    [[noreturn]] void error(const YAML::Node& node, std::string_view key,
                            std::string_view why) const;
    // "source:line: what".
    [[noreturn]] void error(const YAML::Node& node, std::string_view what) const;
    [[nodiscard]] static int line(const YAML::Node& node) { return node.Mark().line + 1; }

    [[nodiscard]] std::string string(const YAML::Node& node, const std::string& key) const;
    // A string, or a list of them.
    [[nodiscard]] std::vector<std::string> strings(const YAML::Node& node,
                                                   const std::string& key) const;
    // true/yes/on or false/no/off.
    [[nodiscard]] bool boolean(const YAML::Node& node, const std::string& key) const;
    [[nodiscard]] double number(const YAML::Node& node, const std::string& key) const;
    // A whole number from `min` to `max`.
    [[nodiscard]] std::size_t size(const YAML::Node& node, const std::string& key, std::size_t min,
                                   std::size_t max) const;
    // A whole number of at least 1.
    [[nodiscard]] std::size_t count(const YAML::Node& node, const std::string& key) const;
    // "30s", "500ms", "10m", "2h" or seconds (core/duration.hpp).
    [[nodiscard]] std::chrono::milliseconds duration(const YAML::Node& node,
                                                     const std::string& key) const;
    // A mapping of names to strings, in the document's order.
    [[nodiscard]] std::vector<std::pair<std::string, std::string>> map(
        const YAML::Node& node, const std::string& key) const;
    // A scalar as JSON: plain scalars that read as numbers, booleans or null
    // are those; quoted ones are strings.
    [[nodiscard]] boost::json::value value(const YAML::Node& node, const std::string& key) const;
    // The `id` of the rule at `node` (key path `where`): present, a valid_id(),
    // and not one of `seen`, which it joins.
    [[nodiscard]] std::string unique_id(const YAML::Node& node, const std::string& where,
                                        std::set<std::string>& seen) const;
    // `node` is a mapping whose every key is one of `known`; an unknown one
    // is "source:line: WHERE.KEY: unknown key (expected one of: ...)".
    // `where` is the mapping's own key path ("" at the top level).
    void only(const YAML::Node& node, const std::string& where,
              std::initializer_list<std::string_view> known) const;

  private:
    std::string_view source_;
    std::string_view unplaced_;
};

}  // namespace pqmcp::yaml
