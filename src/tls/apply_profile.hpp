// Internal: configuring an SSL_CTX for a profile (shared by the context
// builder and describe()).
#pragma once

#include <openssl/ssl.h>

#include "pqmcp/core/error.hpp"
#include "pqmcp/tls/profile.hpp"

namespace pqmcp::tls::detail {

enum class Role { client, server };

// TLS 1.3 only, the profile's groups, signature schemes and ciphersuites, no
// early data, no renegotiation, no compression, server preference. With
// `browser_certificate` (server) the profile's browser_sigalgs are appended to
// the server's own signature schemes but not to its CertificateRequest.
[[nodiscard]] Status apply_profile(SSL_CTX* ctx, const Profile& profile, Role role,
                                   bool browser_certificate);

}  // namespace pqmcp::tls::detail
