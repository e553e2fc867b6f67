// TLS posture and the harvest-now-decrypt-later rating of a server.
#include "pqmcp/scan/discovery.hpp"

#include <algorithm>
#include <cctype>
#include <optional>
#include <string>
#include <vector>

namespace pqmcp::scan {

std::string_view to_string(Posture posture) noexcept {
    switch (posture) {
        case Posture::local:
            return "local";
        case Posture::plaintext:
            return "plaintext";
        case Posture::quantum_safe:
            return tls::to_string(tls::Verdict::quantum_safe);
        case Posture::hybrid_optional:
            return tls::to_string(tls::Verdict::hybrid_optional);
        case Posture::classical:
            return tls::to_string(tls::Verdict::classical);
        case Posture::unknown:
            return "unknown";
    }
    return "unknown";
}

Posture posture_of(tls::Verdict verdict) noexcept {
    switch (verdict) {
        case tls::Verdict::quantum_safe:
            return Posture::quantum_safe;
        case tls::Verdict::hybrid_optional:
            return Posture::hybrid_optional;
        case tls::Verdict::classical:
            return Posture::classical;
    }
    return Posture::classical;
}

std::string_view to_string(Rating rating) noexcept {
    switch (rating) {
        case Rating::low:
            return "low";
        case Rating::medium:
            return "medium";
        case Rating::high:
            return "high";
    }
    return "high";
}

HndlRating rate_hndl(const HndlInput& input) {
    if (!input.networked) {
        return {Rating::low, input.posture == Posture::local
                                 ? "stdio: the traffic stays on this machine"
                                 : "loopback: the traffic stays on this machine"};
    }
    // "files (read_file), secrets (printEnv)"
    std::string sensitive;
    if (input.data) {
        for (const auto& d : *input.data) {
            if (is_sensitive(d.data)) {
                sensitive += (sensitive.empty() ? "" : ", ") + std::string(to_string(d.data)) +
                             " (" + d.item + ")";
            }
        }
    }
    const bool inspected = input.data.has_value();
    const bool is_sensitive_data = !sensitive.empty();
    const std::string touches = is_sensitive_data ? "its tools touch " + sensitive
                                : inspected       ? "its tools touch no sensitive data"
                                                  : "its tools were not inspected";
    switch (input.posture) {
        case Posture::local:
        case Posture::plaintext:
            return {Rating::high,
                    "plain HTTP across the network: readable now, no harvest needed; " + touches};
        case Posture::classical:
        case Posture::unknown: {
            const std::string kex = input.posture == Posture::classical
                                        ? "classical key exchange"
                                        : "TLS posture unknown (counted as classical)";
            if (is_sensitive_data) {
                return {Rating::high,
                        kex + ": recorded traffic can be decrypted later, and " + touches};
            }
            return {Rating::medium, kex + ": recorded traffic can be decrypted later; " + touches};
        }
        case Posture::hybrid_optional:
            if (is_sensitive_data) {
                return {
                    Rating::medium,
                    "ML-KEM negotiated, but clients without it fall back to classical; " + touches};
            }
            return {Rating::low,
                    "ML-KEM negotiated (clients without it fall back to classical); " + touches};
        case Posture::quantum_safe:
            return {Rating::low, "ML-KEM key exchange only: recorded traffic stays confidential"};
    }
    return {Rating::high, "unknown posture"};
}

}  // namespace pqmcp::scan
