// Errors as values: every fallible operation on the data plane returns
// pqmcp::Result<T>, a tl::expected carrying a pqmcp::Error on failure.
#pragma once

#include <string>
#include <system_error>
#include <utility>

#include <tl/expected.hpp>

namespace pqmcp {

// One error: a code from the component's own enum (through std::error_code, so
// callers compare against the enum) and a human-readable detail for logs and
// users. The detail never carries secret material.
struct Error {
    std::error_code code;
    std::string detail;

    // "<category>: <code message>: <detail>"
    [[nodiscard]] std::string message() const;
};

template <typename T>
using Result = tl::expected<T, Error>;

using Status = tl::expected<void, Error>;

template <typename Enum>
[[nodiscard]] tl::unexpected<Error> fail(Enum code, std::string detail = {}) {
    return tl::unexpected<Error>(Error{make_error_code(code), std::move(detail)});
}

}  // namespace pqmcp
