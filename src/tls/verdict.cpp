// The names of probe verdicts, apart from the probe (which needs Asio) so
// that code which only reports verdicts, such as the discovery of `pqmcp
// scan` in its fuzz target, can link it alone.
#include "pqmcp/tls/probe.hpp"

namespace pqmcp::tls {

std::string_view to_string(Verdict verdict) noexcept {
    switch (verdict) {
        case Verdict::quantum_safe:
            return "quantum-safe";
        case Verdict::hybrid_optional:
            return "hybrid-optional";
        case Verdict::classical:
            return "classical";
    }
    return "classical";
}

}  // namespace pqmcp::tls
