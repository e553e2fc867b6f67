#include "state.hpp"

#include <openssl/crypto.h>
#include <openssl/x509_vfy.h>

namespace pqmcp::tls::detail {
namespace {

void free_context_state(void* /*parent*/, void* ptr, CRYPTO_EX_DATA* /*ad*/, int /*idx*/,
                        long /*argl*/, void* /*argp*/) {
    delete static_cast<ContextState*>(ptr);
}

void free_connection_state(void* /*parent*/, void* ptr, CRYPTO_EX_DATA* /*ad*/, int /*idx*/,
                           long /*argl*/, void* /*argp*/) {
    delete static_cast<ConnectionState*>(ptr);
}

// Index 0 is OpenSSL's (and Asio's) app_data; these are our own, allocated once.
int context_index() {
    static const int index = CRYPTO_get_ex_new_index(CRYPTO_EX_INDEX_SSL_CTX, 0, nullptr, nullptr,
                                                     nullptr, free_context_state);
    return index;
}

int connection_index() {
    static const int index = CRYPTO_get_ex_new_index(CRYPTO_EX_INDEX_SSL, 0, nullptr, nullptr,
                                                     nullptr, free_connection_state);
    return index;
}

}  // namespace

bool attach(SSL_CTX* ctx, std::unique_ptr<ContextState> state) {
    const int index = context_index();
    if (index < 0 || SSL_CTX_set_ex_data(ctx, index, state.get()) != 1) {
        return false;
    }
    (void)state.release();  // owned by ctx now
    return true;
}

const ContextState* context_state(const SSL_CTX* ctx) {
    const int index = context_index();
    if (ctx == nullptr || index < 0) {
        return nullptr;
    }
    return static_cast<const ContextState*>(SSL_CTX_get_ex_data(ctx, index));
}

ConnectionState* connection_state(SSL* ssl) {
    const int index = connection_index();
    if (index < 0) {
        return nullptr;
    }
    if (auto* existing = static_cast<ConnectionState*>(SSL_get_ex_data(ssl, index))) {
        return existing;
    }
    auto fresh = std::make_unique<ConnectionState>();
    if (SSL_set_ex_data(ssl, index, fresh.get()) != 1) {
        return nullptr;
    }
    return fresh.release();
}

const ConnectionState* find_connection_state(const SSL* ssl) {
    const int index = connection_index();
    if (ssl == nullptr || index < 0) {
        return nullptr;
    }
    return static_cast<const ConnectionState*>(SSL_get_ex_data(ssl, index));
}

void info_callback(const SSL* ssl, int where, int ret) {
    if ((where & SSL_CB_ALERT) == 0) {
        return;
    }
    // OpenSSL hands the callback a const SSL; the ex_data slot is ours.
    ConnectionState* state = connection_state(const_cast<SSL*>(ssl));
    if (state == nullptr) {
        return;
    }
    const char* description = SSL_alert_desc_string_long(ret);
    std::string text = description != nullptr ? description : "unknown";
    if ((where & SSL_CB_READ) != 0) {
        state->alert_received = std::move(text);
    } else {
        state->alert_sent = std::move(text);
    }
}

int cert_verify_callback(X509_STORE_CTX* store, void* /*arg*/) {
    auto* ssl =
        static_cast<SSL*>(X509_STORE_CTX_get_ex_data(store, SSL_get_ex_data_X509_STORE_CTX_idx()));
    if (ssl == nullptr) {
        X509_STORE_CTX_set_error(store, X509_V_ERR_APPLICATION_VERIFICATION);
        return 0;
    }
    ConnectionState* conn = connection_state(ssl);
    const auto reject = [&](int x509_error, std::string reason) {
        if (conn != nullptr) {
            conn->verify_failure = std::move(reason);
        }
        X509_STORE_CTX_set_error(store, x509_error);
        return 0;
    };
    const ContextState* state = context_state(SSL_get_SSL_CTX(ssl));
    if (state == nullptr) {
        return reject(X509_V_ERR_APPLICATION_VERIFICATION, "context has no verification policy");
    }
    X509* leaf = X509_STORE_CTX_get0_cert(store);
    // RFC 7250: a raw public key instead of a certificate; it is trusted by
    // its key alone (pins, known_peers, or any key), never by a CA.
    EVP_PKEY* rpk = leaf == nullptr ? X509_STORE_CTX_get0_rpk(store) : nullptr;
    if (leaf == nullptr && rpk == nullptr) {
        return reject(X509_V_ERR_APPLICATION_VERIFICATION, "peer sent no certificate");
    }
    auto id =
        leaf != nullptr ? identity::PeerId::of_certificate(leaf) : identity::PeerId::of_key(rpk);
    if (!id) {
        return reject(X509_V_ERR_CERT_REJECTED,
                      "peer certificate key is not usable as an identity: " + id.error().message());
    }
    const std::string& peer = id->str();
    // Pinning by key (like SSH known_hosts): a pinned or known peer is who it
    // claims to be whatever signed its certificate, so self-signed is fine.
    if (state->policy.pinned.contains(peer) || state->policy.known.contains(peer)) {
        X509_STORE_CTX_set_error(store, X509_V_OK);
        return 1;
    }
    // A server that lets unknown clients in still knows them by key: the
    // handshake's CertificateVerify proves they hold it.
    const auto accept_unverified = [&] {
        X509_STORE_CTX_set_error(store, X509_V_OK);
        return 1;
    };
    if (state->policy.has_ca && rpk == nullptr) {
        if (X509_verify_cert(store) == 1) {
            if (conn != nullptr) {
                conn->ca_verified = true;
            }
            return 1;
        }
        if (state->policy.accept_unknown) {
            return accept_unverified();
        }
        const int err = X509_STORE_CTX_get_error(store);
        return reject(err == X509_V_OK ? X509_V_ERR_CERT_UNTRUSTED : err,
                      "peer " + peer + " is not pinned and its certificate does not verify " +
                          "against the CA file: " + X509_verify_cert_error_string(err));
    }
    if (state->policy.accept_unknown) {
        return accept_unverified();
    }
    return reject(X509_V_ERR_CERT_UNTRUSTED,
                  "peer " + peer + " is not pinned (and not in known_peers)");
}

int ticket_key_callback(SSL* ssl, unsigned char* key_name, unsigned char* iv,
                        EVP_CIPHER_CTX* cipher, EVP_MAC_CTX* mac, int enc) {
    const ContextState* state = context_state(SSL_get_SSL_CTX(ssl));
    if (state == nullptr || !state->tickets) {
        return -1;
    }
    return state->tickets->callback(key_name, iv, cipher, mac, enc);
}

}  // namespace pqmcp::tls::detail
