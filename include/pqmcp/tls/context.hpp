// TLS 1.3 contexts for the security profiles: identity, peer pinning, session
// tickets with rotating keys.
//
// A context built here
//  - speaks TLS 1.3 only, with the profile's groups, signature schemes and
//    ciphersuites, no 0-RTT, no renegotiation, no compression;
//  - verifies the peer with a certificate-verify callback: the peer id of the
//    leaf certificate (identity::PeerId) must be pinned or in known_peers
//    (self-signed is fine then), or else the chain must verify against the CA
//    file; otherwise the handshake fails and verification_failure() says why
//    ("peer pq1... is not pinned"). A pinned or known peer is identified by
//    its key alone (as in SSH): the certificate's issuer and validity dates
//    are not checked for it, so rotate a key by changing the pin;
//  - (server) issues session tickets encrypted under keys it rotates itself.
//
// The context keeps its own copies of everything in ContextOptions; the
// options and the objects they point to may be destroyed after the call.
// Callers must not replace the context's cert-verify callback, info callback,
// ticket-key callback or ex_data set here.
#pragma once

#include <chrono>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <openssl/ssl.h>

#include "pqmcp/core/error.hpp"
#include "pqmcp/crypto/ossl.hpp"
#include "pqmcp/crypto/secret.hpp"
#include "pqmcp/identity/identity.hpp"
#include "pqmcp/identity/known_peers.hpp"
#include "pqmcp/tls/errors.hpp"
#include "pqmcp/tls/profile.hpp"

namespace pqmcp::tls {

struct PeerVerification {
    // Server: request a client certificate and fail the handshake without one
    // (mutual TLS). When false the server does not ask for one. A client
    // always verifies the server.
    bool require_peer_certificate = true;
    // Server, without require_peer_certificate: ask for a client certificate
    // anyway and accept one that is neither pinned, known nor CA-verified. Its
    // holder proved possession of the key (CertificateVerify), so the peer id
    // names it, but nobody vouched for it: HandshakeInfo::peer_verified is false.
    bool accept_unknown_peers = false;
    std::vector<identity::PeerId> pinned;
    // Optional (non-owning, read during the call only): its ids and names are copied.
    const identity::KnownPeers* known_peers = nullptr;
    // Optional PEM file of trusted CA certificates: a peer that is not pinned is
    // accepted if its chain verifies against these.
    std::filesystem::path ca_file;
    // With ca_file: the DNS name or IP address the CA-verified certificate must
    // carry; required for a client (make_client_context fails without it);
    // ignored for pinned and known peers, which are identified by key.
    std::string ca_host;
    // RFC 7250 raw public keys where trust is by key: a client that trusts the
    // server by pin or known_peers (no CA file) asks for the server's bare
    // public key instead of its certificate, and offers its own; a server
    // sends its bare key to a client that asks, and takes one from a client
    // when it trusts clients by key (pins, known_peers or any key; no CA
    // file). Everyone else (CA trust, browsers, other stacks) gets X.509.
    bool raw_public_keys = true;
};

using TicketClock = std::function<std::chrono::steady_clock::time_point()>;

struct TicketOptions {
    bool enabled = true;  // server only; clients always accept tickets
    // A new ticket key every interval; tickets under the previous key are still
    // accepted (and replaced), older ones are not: a ticket lives at most two intervals.
    std::chrono::seconds rotation_interval{std::chrono::hours{12}};
    TicketClock clock;  // empty: std::chrono::steady_clock::now (tests inject one)
    // Replicas behind one address resume each other's tickets when they share
    // this secret (at least 32 bytes): each interval's keys are then derived
    // from it with HKDF-SHA256 and the interval's number on the wall clock
    // (UNIX time / interval), so every replica has the same keys and rotates
    // them at the same moment. Null: random keys of this process alone.
    std::shared_ptr<const crypto::SecretBytes> shared_secret;
};

// A certificate and its private key (non-owning; the context takes its own references).
struct CertificateAndKey {
    X509* certificate = nullptr;
    EVP_PKEY* key = nullptr;
};

struct ContextOptions {
    ProfileId profile = k_default_profile;
    // Our identity (non-owning). Required for a server and for a client that
    // authenticates itself; its algorithm must be one the profile allows.
    const identity::Identity* identity = nullptr;
    // Server, pq-hybrid only: an additional ECDSA P-256 certificate for clients
    // (browsers) that cannot verify ML-DSA yet. Key exchange stays hybrid.
    CertificateAndKey browser_certificate{};
    PeerVerification verify{};
    TicketOptions tickets{};
};

[[nodiscard]] Result<crypto::SslCtxPtr> make_server_context(const ContextOptions& options);
[[nodiscard]] Result<crypto::SslCtxPtr> make_client_context(const ContextOptions& options);

// Why our verification rejected the peer in the last handshake on `ssl`
// (empty if it did not): "peer pq1... is not pinned ...".
[[nodiscard]] std::string verification_failure(const SSL* ssl);

// The last TLS alert sent and received on `ssl` ("" if none), e.g.
// "handshake failure" -- recorded for every connection of a context built here.
struct AlertRecord {
    std::string sent;
    std::string received;
};
[[nodiscard]] AlertRecord last_alerts(const SSL* ssl);

// The profile a context was built for (nullptr for a context not built here).
[[nodiscard]] const Profile* context_profile(const SSL_CTX* ctx);

}  // namespace pqmcp::tls
