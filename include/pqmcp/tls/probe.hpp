// Quantum-safety posture of a TLS server: `pqmcp probe HOST:PORT`.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "pqmcp/core/error.hpp"
#include "pqmcp/identity/identity.hpp"
#include "pqmcp/tls/errors.hpp"

namespace pqmcp::tls {

enum class Verdict {
    quantum_safe,     // negotiated an ML-KEM group and refuses classical-only key exchange
    hybrid_optional,  // negotiated an ML-KEM group but also accepts classical-only
    classical,        // did not negotiate an ML-KEM group although one was offered
};

[[nodiscard]] std::string_view to_string(Verdict verdict) noexcept;

struct ProbeReport {
    std::string host;
    std::uint16_t port = 0;
    std::string protocol;         // "TLSv1.3"
    std::string group;            // negotiated with every group offered: "X25519MLKEM768"
    std::string signature;        // the server's signature scheme: "mldsa65"
    std::string cipher;           // "TLS_AES_256_GCM_SHA384"
    std::string certificate_key;  // "ML-DSA-65", "EC P-256", "RSA-3072", "Ed25519"
    std::optional<identity::PeerId> peer_id;  // of the server certificate (for pinning)
    bool accepts_classical = false;  // completed a handshake offering classical groups only
    std::string classical_group;     // the group negotiated then ("" if refused)
    Verdict verdict = Verdict::classical;

    // {"host","port","protocol","group","signature","cipher","certificate_key",
    //  "peer_id"|null,"accepts_classical","classical_group","verdict"}
    [[nodiscard]] std::string to_json() const;
};

// Two handshakes, neither verifying the server (a probe reports, it does not
// trust): one offering every group this OpenSSL implements (ML-KEM hybrids
// first; key share for X25519MLKEM768), one offering only classical groups.
// TLS 1.2 is allowed in the probe so legacy servers get a verdict too.
// Errors: resolve_failed, connect_failed, timeout, handshake_failed (of the
// first handshake). `timeout` applies to each handshake.
[[nodiscard]] Result<ProbeReport> probe(std::string_view host, std::uint16_t port,
                                        std::chrono::milliseconds timeout);

// Names of the TLS 1.3 groups this OpenSSL implements (for `pqmcp version`).
[[nodiscard]] std::vector<std::string> available_groups();

}  // namespace pqmcp::tls
