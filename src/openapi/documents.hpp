// Internal: the documents of one OpenAPI description (the spec and the files
// its $refs name), read with limits, and $refs followed between them.
// Loading is start-up work: a problem is thrown as Problem and turned into an
// error value at load()'s boundary.
#pragma once

#include <cstddef>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <boost/json/value.hpp>

#include "pqmcp/openapi/openapi.hpp"

namespace pqmcp::openapi::detail {

struct Problem {
    Errc code;
    std::string message;
};
[[noreturn]] void fail_with(Errc code, std::string message);

// "/paths/~1pets/get" from its parts (RFC 6901 escaping).
[[nodiscard]] std::string escape_token(std::string_view token);
[[nodiscard]] std::string pointer_join(std::string_view base, std::string_view token);

struct Document {
    std::string name;            // as errors show it: the file name relative to the spec's
    std::filesystem::path file;  // "" for a document given in memory
    boost::json::value root;
};

// A location in one of the documents.
struct Location {
    std::size_t doc = 0;
    std::string pointer;  // JSON Pointer in that document ("" for its root)
};

class Documents final {
  public:
    Documents(const Limits& limits, std::filesystem::path base)
        : limits_(limits), base_(std::move(base)) {}

    // Parses a document (JSON when it starts with '{' or '[', YAML otherwise)
    // and adds it. Throws Problem.
    std::size_t add(std::string_view text, std::string name, std::filesystem::path file);
    std::size_t open(const std::filesystem::path& file);

    [[nodiscard]] const Document& doc(std::size_t i) const { return *docs_.at(i); }
    [[nodiscard]] std::size_t count() const { return docs_.size(); }
    [[nodiscard]] const boost::json::value& at(const Location& at) const;
    [[nodiscard]] std::string where(const Location& at) const;  // "spec.yaml#/paths/..."

    // Follows `ref` (a $ref's value) found at `from`. Throws Problem
    // (remote_ref, bad_ref, too_large after Limits::max_refs).
    [[nodiscard]] Location resolve(const Location& from, std::string_view ref);
    // Follows $ref after $ref from `at` until a value that is not one; a
    // loop is bad_ref.
    [[nodiscard]] Location follow(Location at);

  private:
    const Limits& limits_;
    std::filesystem::path base_;  // the spec's directory: file $refs stay under it
    std::vector<std::unique_ptr<Document>> docs_;
    std::map<std::filesystem::path, std::size_t> by_file_;
    std::size_t refs_ = 0;
};

}  // namespace pqmcp::openapi::detail
