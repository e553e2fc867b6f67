#include "pqmcp/tls/handshake_info.hpp"

#include <algorithm>
#include <cctype>

#include <boost/json/object.hpp>
#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>

#include "state.hpp"

namespace pqmcp::tls {

std::string describe_key(const EVP_PKEY* key) {
    if (key == nullptr) {
        return {};
    }
    if (EVP_PKEY_is_a(key, "ED25519") == 1) {
        return "Ed25519";
    }
    if (EVP_PKEY_is_a(key, "ED448") == 1) {
        return "Ed448";
    }
    if (EVP_PKEY_is_a(key, "EC") == 1) {
        char group[64] = {};
        std::size_t len = 0;
        if (EVP_PKEY_get_group_name(key, group, sizeof group, &len) != 1) {
            return "EC";
        }
        const std::string_view g(group, len);
        if (g == "prime256v1" || g == "P-256") {
            return "EC P-256";
        }
        if (g == "secp384r1" || g == "P-384") {
            return "EC P-384";
        }
        if (g == "secp521r1" || g == "P-521") {
            return "EC P-521";
        }
        return "EC " + std::string(g);
    }
    if (EVP_PKEY_is_a(key, "RSA") == 1) {
        return "RSA-" + std::to_string(EVP_PKEY_get_bits(key));
    }
    if (EVP_PKEY_is_a(key, "RSA-PSS") == 1) {
        return "RSA-PSS-" + std::to_string(EVP_PKEY_get_bits(key));
    }
    const char* name = EVP_PKEY_get0_type_name(key);  // "ML-DSA-65", ...
    return name != nullptr ? name : "unknown";
}

bool is_post_quantum_group(std::string_view group) noexcept {
    // Every ML-KEM TLS group name contains "MLKEM" (X25519MLKEM768,
    // SecP256r1MLKEM768, SecP384r1MLKEM1024, MLKEM512/768/1024); names are
    // case-insensitive in OpenSSL 3.5.
    constexpr std::string_view needle = "mlkem";
    const auto it = std::search(
        group.begin(), group.end(), needle.begin(), needle.end(),
        [](char a, char b) { return std::tolower(static_cast<unsigned char>(a)) == b; });
    return it != group.end();
}

HandshakeInfo handshake_info(const SSL* ssl) {
    HandshakeInfo info;
    if (ssl == nullptr) {
        return info;
    }
    // The getters below are SSL_ctrl macros taking a non-const SSL; none modifies it.
    SSL* s = const_cast<SSL*>(ssl);
    info.protocol = SSL_get_version(ssl);
    if (const SSL_CIPHER* cipher = SSL_get_current_cipher(ssl)) {
        info.cipher = SSL_CIPHER_standard_name(cipher);
    }
    if (const char* group = SSL_get0_group_name(s)) {
        info.group = group;
    }
    info.quantum_safe_group = is_post_quantum_group(info.group);
    const char* sig = nullptr;
    if (SSL_get0_peer_signature_name(s, &sig) == 1 && sig != nullptr) {
        info.peer_signature = sig;
    }
    sig = nullptr;
    if (SSL_get0_signature_name(s, &sig) == 1 && sig != nullptr) {
        info.own_signature = sig;
    }
    X509* cert = SSL_get0_peer_certificate(ssl);
    const EVP_PKEY* key = cert != nullptr ? X509_get0_pubkey(cert) : SSL_get0_peer_rpk(ssl);
    if (key != nullptr) {
        // The peer's certificate type: the one it sent, negotiated (RFC 7250).
        const int type = SSL_is_server(s) == 1 ? SSL_get_negotiated_client_cert_type(ssl)
                                               : SSL_get_negotiated_server_cert_type(ssl);
        info.certificate_type = type == TLSEXT_cert_type_rpk ? "raw_public_key" : "x509";
        info.peer_certificate_key = describe_key(key);
        if (auto id = identity::PeerId::of_key(key)) {
            info.peer_id = std::move(*id);
            if (const auto* state = detail::context_state(SSL_get_SSL_CTX(ssl))) {
                const std::string& peer = info.peer_id->str();
                if (auto it = state->policy.known.find(peer); it != state->policy.known.end()) {
                    info.peer_name = it->second;
                }
                if (state->policy.pinned.contains(peer) || state->policy.known.contains(peer) ||
                    !state->policy.accept_unknown) {
                    // Without accept_unknown only trusted peers get through.
                    info.peer_verified = true;
                } else if (const auto* conn = detail::find_connection_state(ssl)) {
                    info.peer_verified = conn->ca_verified;
                }
            }
        }
    }
    info.resumed = SSL_session_reused(ssl) == 1;
    if (BIO* wbio = SSL_get_wbio(ssl)) {
        info.bytes_sent = BIO_number_written(wbio);
    }
    if (BIO* rbio = SSL_get_rbio(ssl)) {
        info.bytes_received = BIO_number_read(rbio);
    }
    return info;
}

std::string HandshakeInfo::to_json() const {
    boost::json::object o;
    o["protocol"] = protocol;
    o["cipher"] = cipher;
    o["group"] = group;
    o["peer_signature"] = peer_signature;
    o["own_signature"] = own_signature;
    o["peer_certificate_key"] = peer_certificate_key;
    o["certificate_type"] = certificate_type;
    o["peer_id"] = peer_id ? boost::json::value(peer_id->str()) : boost::json::value(nullptr);
    o["peer_name"] = peer_name ? boost::json::value(*peer_name) : boost::json::value(nullptr);
    o["peer_verified"] = peer_verified;
    o["resumed"] = resumed;
    o["quantum_safe_group"] = quantum_safe_group;
    o["bytes_sent"] = bytes_sent;
    o["bytes_received"] = bytes_received;
    return boost::json::serialize(o);
}

}  // namespace pqmcp::tls
