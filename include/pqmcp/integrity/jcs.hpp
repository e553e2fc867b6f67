// The JSON Canonicalization Scheme (RFC 8785): one byte string per JSON
// value, so hashes and signatures survive re-serialization, re-ordered
// members and other number spellings.
#pragma once

#include <string>

#include <boost/json/value.hpp>

#include "pqmcp/core/error.hpp"
#include "pqmcp/integrity/errors.hpp"

namespace pqmcp::integrity {

// Members sorted by their names' UTF-16 code units, no whitespace, strings
// with the minimal escapes of ECMAScript's JSON.stringify, numbers as
// ECMAScript's Number.prototype.toString prints them (integers beyond 2^53
// through their IEEE 754 double, as RFC 8785 requires). Errc::bad_manifest
// for a value JCS cannot express (a non-finite number).
[[nodiscard]] Result<std::string> canonicalize(const boost::json::value& value);

// Lower-case hex SHA-256 of the canonical form.
[[nodiscard]] Result<std::string> canonical_digest(const boost::json::value& value);

}  // namespace pqmcp::integrity
