// TLS towards public web APIs (the gateway's OpenAPI upstreams), which are
// not pqmcp peers: classical certificates from a CA, verified against the
// system's store (or a CA file) with the host name checked per connection
// (SSL_set1_host). The hybrid group is offered first and gets a key share,
// with X25519 beside it, so a server that can do X25519MLKEM768 uses it and
// one that cannot still answers in one round trip; TLS 1.2 is accepted,
// since public APIs still run it. Which group a connection got is in its
// handshake_info() and goes to the audit.
#pragma once

#include <filesystem>

#include "pqmcp/core/error.hpp"
#include "pqmcp/crypto/ossl.hpp"

namespace pqmcp::tls {

// The groups offered, in order ("*" marks those that get a key share).
inline constexpr const char* k_web_groups = "*X25519MLKEM768:*X25519:secp256r1:secp384r1";
// Where Debian keeps the system's CA certificates (ca-certificates).
inline constexpr const char* k_system_ca_file = "/etc/ssl/certs/ca-certificates.crt";

struct WebClientOptions {
    std::filesystem::path ca_file;  // empty: the system's CA store
};

// Errors: context_failed (the CA store cannot be read, a group is unknown).
[[nodiscard]] Result<crypto::SslCtxPtr> make_web_client_context(const WebClientOptions& options);

}  // namespace pqmcp::tls
