// What was negotiated on a connection, recorded after every handshake.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include <openssl/ssl.h>

#include "pqmcp/identity/identity.hpp"

namespace pqmcp::tls {

struct HandshakeInfo {
    std::string protocol;              // "TLSv1.3"
    std::string cipher;                // "TLS_AES_256_GCM_SHA384"
    std::string group;                 // "X25519MLKEM768" ("" if none, e.g. a psk_ke resumption)
    std::string peer_signature;        // IANA scheme the peer signed with: "mldsa65" ("" if none)
    std::string own_signature;         // scheme we signed with ("" if we did not sign)
    std::string peer_certificate_key;  // "ML-DSA-65", "EC P-256", "RSA-3072", "Ed25519"
    // How the peer presented its key: "x509", "raw_public_key" (RFC 7250), "" (not at all).
    std::string certificate_type;
    std::optional<identity::PeerId> peer_id;  // of the peer certificate, if it sent one
    std::optional<std::string> peer_name;     // from known_peers, if listed there
    // The peer's id is pinned, in known_peers or CA-verified. False for a
    // client a server let in without vouching for it (accept_unknown_peers);
    // also false for such a client's CA-verified identity after resumption.
    bool peer_verified = false;
    bool resumed = false;
    bool quantum_safe_group = false;  // the group includes ML-KEM
    // Bytes on the wire during the handshake as seen by this end's BIOs
    // (TLS record layer, including the server's session tickets when it is
    // the server; a client counts before tickets arrive).
    std::uint64_t bytes_sent = 0;
    std::uint64_t bytes_received = 0;

    // {"protocol":..,"cipher":..,"group":..,"peer_signature":..,"own_signature":..,
    //  "peer_certificate_key":..,"certificate_type":..,"peer_id":..|null,"peer_name":..|null,"peer_verified":..,"resumed":..,
    //  "quantum_safe_group":..,"bytes_sent":..,"bytes_received":..}
    [[nodiscard]] std::string to_json() const;
};

// Reads the state of a connection whose handshake has completed. Call it right
// after the handshake for meaningful byte counts. Does not modify `ssl`.
[[nodiscard]] HandshakeInfo handshake_info(const SSL* ssl);

// "ML-DSA-65", "EC P-256", "RSA-3072", "Ed25519", or OpenSSL's type name.
[[nodiscard]] std::string describe_key(const EVP_PKEY* key);

// True for a TLS group name that includes ML-KEM (pure or hybrid).
[[nodiscard]] bool is_post_quantum_group(std::string_view group) noexcept;

}  // namespace pqmcp::tls
