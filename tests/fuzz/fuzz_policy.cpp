// Fuzz target: the policy loader (YAML, RE2 patterns, JSON Schemas, globs,
// windows): a policy file must load or fail with a reason, never crash.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "pqmcp/policy/policy.hpp"

// NOLINTNEXTLINE(readability-identifier-naming): the name libFuzzer calls
extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view text(reinterpret_cast<const char*>(data), size);
    (void)pqmcp::policy::parse_policy(text, "fuzz.yaml");
    return 0;
}
