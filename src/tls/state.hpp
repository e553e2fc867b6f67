// Internal: per-context and per-connection state kept in OpenSSL ex_data.
#pragma once

#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>

#include <openssl/ssl.h>

#include "pqmcp/identity/identity.hpp"
#include "pqmcp/tls/profile.hpp"
#include "ticket_keys.hpp"

namespace pqmcp::tls::detail {

// Who may connect: copied out of PeerVerification when the context is built.
struct VerifyPolicy {
    std::set<std::string> pinned;              // peer id strings
    std::map<std::string, std::string> known;  // peer id -> name (known_peers)
    bool has_ca = false;
    bool accept_unknown = false;  // server: any client key is let in, marked unverified
};

// Owned by the SSL_CTX (freed with it).
struct ContextState {
    const Profile* profile = nullptr;
    VerifyPolicy policy;
    std::unique_ptr<TicketKeyManager> tickets;  // server with tickets only
};

// Owned by the SSL (freed with it); created on first use.
struct ConnectionState {
    std::string verify_failure;
    bool ca_verified = false;  // the peer's chain verified against the CA file
    std::string alert_sent;
    std::string alert_received;
};

// Takes ownership of `state`.
[[nodiscard]] bool attach(SSL_CTX* ctx, std::unique_ptr<ContextState> state);
[[nodiscard]] const ContextState* context_state(const SSL_CTX* ctx);
// nullptr only if allocation in OpenSSL fails.
ConnectionState* connection_state(SSL* ssl);
[[nodiscard]] const ConnectionState* find_connection_state(const SSL* ssl);

// The callbacks installed by the context builder.
int cert_verify_callback(X509_STORE_CTX* store, void* arg);
void info_callback(const SSL* ssl, int where, int ret);
int ticket_key_callback(SSL* ssl, unsigned char* key_name, unsigned char* iv,
                        EVP_CIPHER_CTX* cipher, EVP_MAC_CTX* mac, int enc);

}  // namespace pqmcp::tls::detail
