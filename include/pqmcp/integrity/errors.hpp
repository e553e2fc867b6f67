// The integrity component's errors.
#pragma once

#include <system_error>

namespace pqmcp::integrity {

enum class Errc {
    bad_rules = 1,  // a rule file that cannot be used (the detail says where and why)
    bad_manifest,   // a tool manifest that is not what `tools sign` writes
    bad_signature,  // a signature block that is malformed
    signature_invalid,
    unsigned_list,
    store_failed,  // the pin database cannot be opened, read or written
};

[[nodiscard]] const std::error_category& integrity_category() noexcept;
[[nodiscard]] std::error_code make_error_code(Errc e) noexcept;

}  // namespace pqmcp::integrity

template <>
struct std::is_error_code_enum<pqmcp::integrity::Errc> : std::true_type {};
