// Fuzz target: the files and flags an operator (or whoever can write them)
// gives the gateway: the YAML configuration, the input as the value and as
// the key of a `--set` flag, and a known_peers file. Each must end in a
// configuration or an error, never a crash or an unbounded allocation.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "pqmcp/gateway/config.hpp"
#include "pqmcp/identity/known_peers.hpp"

// NOLINTNEXTLINE(readability-identifier-naming): the name libFuzzer calls
extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view text(reinterpret_cast<const char*>(data), size);
    (void)pqmcp::gateway::parse_config(text, "fuzz.yaml");
    const std::string line(text.substr(0, text.find('\n')));
    const std::vector<std::string> sets{"limits.max_sessions=" + line, line,
                                        "upstreams.0.sandbox=" + line};
    (void)pqmcp::gateway::parse_config("upstreams:\n  - name: fs\n    command: cat\n", "fuzz.yaml",
                                       sets);
    (void)pqmcp::identity::KnownPeers::parse(text, "fuzz_peers");
    return 0;
}
