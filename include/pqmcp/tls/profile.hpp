// Security profiles: named, dated, immutable sets of TLS 1.3 parameters.
//
// A profile is a constant; changing what a profile means requires a new name
// (or a new date and a reviewed golden snapshot in tests/data/profiles/).
#pragma once

#include <span>
#include <string>
#include <string_view>

#include "pqmcp/core/error.hpp"
#include "pqmcp/crypto/algorithms.hpp"
#include "pqmcp/tls/errors.hpp"

namespace pqmcp::tls {

enum class ProfileId { pq_hybrid, pq_strict, classical };

struct Profile {
    ProfileId id;
    std::string_view name;  // "pq-hybrid"
    std::string_view date;  // the day this definition was fixed (YYYY-MM-DD)
    std::string_view purpose;
    // OpenSSL group list in preference order; the first one gets the client's key share.
    std::string_view groups;
    // Signature schemes (IANA / OpenSSL names) accepted from the peer and used for our own
    // CertificateVerify; a server also sends them in its CertificateRequest.
    std::string_view sigalgs;
    // Added to the server's own list when it has the optional ECDSA P-256 certificate for
    // browsers; never accepted from a client (CertificateRequest keeps `sigalgs`).
    std::string_view browser_sigalgs;
    std::string_view ciphersuites;  // TLS 1.3 suites in preference order
    // Identity key types allowed in this profile; the first one is what keygen should use.
    std::span<const crypto::SigAlg> identity_algorithms;
    // True for a profile whose key exchange is not quantum-safe; audit and `pqmcp probe`
    // flag it, and it is used only when named explicitly.
    bool classical;
};

// The default profile (pq-hybrid).
inline constexpr ProfileId k_default_profile = ProfileId::pq_hybrid;

[[nodiscard]] const Profile& profile(ProfileId id) noexcept;
[[nodiscard]] std::span<const Profile> all_profiles() noexcept;
// Exact, case-sensitive profile name; Errc::unknown_profile otherwise (the
// detail lists the valid names).
[[nodiscard]] Result<const Profile*> parse_profile(std::string_view name);

// Human-readable snapshot of everything the profile configures: groups (as
// OpenSSL resolves them), signature algorithms, ciphersuites (as OpenSSL
// resolves them), protocol versions, early data, options, tickets, date.
// Compared against tests/data/profiles/<name>.txt by the golden test.
[[nodiscard]] std::string describe(const Profile& profile);

}  // namespace pqmcp::tls
