#include "pqmcp/tls/context.hpp"

#include <algorithm>
#include <array>
#include <memory>
#include <string>

#include <openssl/x509v3.h>

#include "apply_profile.hpp"
#include "pqmcp/crypto/errors.hpp"
#include "pqmcp/tls/handshake_info.hpp"
#include "state.hpp"

namespace pqmcp::tls {
namespace {

using detail::Role;

tl::unexpected<Error> openssl_failure(std::string what) {
    std::string queue = crypto::drain_openssl_errors();
    if (!queue.empty()) {
        what += ": " + queue;
    }
    return fail(Errc::context_failed, std::move(what));
}

// Which of our signature algorithms a key is for (independent of the key's
// origin: identities, browser certificates, test CAs).
std::optional<crypto::SigAlg> key_algorithm(const EVP_PKEY* key) {
    using crypto::SigAlg;
    if (key == nullptr) {
        return std::nullopt;
    }
    for (const auto alg : {SigAlg::ml_dsa_44, SigAlg::ml_dsa_65, SigAlg::ml_dsa_87}) {
        const std::string name(crypto::openssl_name(alg));
        if (EVP_PKEY_is_a(key, name.c_str()) == 1) {
            return alg;
        }
    }
    if (EVP_PKEY_is_a(key, "ED25519") == 1) {
        return SigAlg::ed25519;
    }
    if (EVP_PKEY_is_a(key, "EC") == 1) {
        char group[64] = {};
        std::size_t len = 0;
        if (EVP_PKEY_get_group_name(key, group, sizeof group, &len) == 1 &&
            (std::string_view(group) == "prime256v1" || std::string_view(group) == "P-256")) {
            return SigAlg::ecdsa_p256;
        }
        return std::nullopt;
    }
    if (EVP_PKEY_is_a(key, "RSA") == 1 || EVP_PKEY_is_a(key, "RSA-PSS") == 1) {
        return EVP_PKEY_get_bits(key) >= 3072 ? std::optional(SigAlg::rsa_3072_pss) : std::nullopt;
    }
    return std::nullopt;
}

Status check_identity(const Profile& p, const identity::Identity& id) {
    if (!id.key || !id.certificate) {
        return fail(Errc::invalid_options, "identity has no key or no certificate");
    }
    const auto alg = key_algorithm(id.key.get());
    if (!alg) {
        return fail(Errc::invalid_options,
                    "identity key " + describe_key(id.key.get()) + " is not a supported algorithm");
    }
    if (std::find(p.identity_algorithms.begin(), p.identity_algorithms.end(), *alg) ==
        p.identity_algorithms.end()) {
        std::string allowed;
        for (const auto a : p.identity_algorithms) {
            allowed += allowed.empty() ? "" : ", ";
            allowed += crypto::cli_name(a);
        }
        return fail(Errc::invalid_options, "profile " + std::string(p.name) + " does not allow a " +
                                               std::string(crypto::cli_name(*alg)) +
                                               " identity (allowed: " + allowed + ")");
    }
    if (X509_check_private_key(id.certificate.get(), id.key.get()) != 1) {
        (void)crypto::drain_openssl_errors();
        return fail(Errc::invalid_options, "identity certificate and key do not match");
    }
    return {};
}

Status use_certificate(SSL_CTX* ctx, X509* cert, EVP_PKEY* key, std::string_view what) {
    if (SSL_CTX_use_certificate(ctx, cert) != 1 || SSL_CTX_use_PrivateKey(ctx, key) != 1 ||
        SSL_CTX_check_private_key(ctx) != 1) {
        return openssl_failure("loading the " + std::string(what));
    }
    return {};
}

Result<crypto::SslCtxPtr> make_context(const ContextOptions& options, Role role) {
    const Profile& p = profile(options.profile);
    const bool server = role == Role::server;

    if (options.identity != nullptr) {
        if (auto ok = check_identity(p, *options.identity); !ok) {
            return tl::unexpected(ok.error());
        }
    } else if (server) {
        return fail(Errc::invalid_options, "a server needs an identity");
    }

    const bool browser = options.browser_certificate.certificate != nullptr ||
                         options.browser_certificate.key != nullptr;
    if (browser) {
        if (!server) {
            return fail(Errc::invalid_options, "a browser certificate is for servers only");
        }
        if (p.browser_sigalgs.empty()) {
            return fail(Errc::invalid_options,
                        "profile " + std::string(p.name) + " does not allow a browser certificate");
        }
        if (options.browser_certificate.certificate == nullptr ||
            options.browser_certificate.key == nullptr ||
            key_algorithm(options.browser_certificate.key) != crypto::SigAlg::ecdsa_p256) {
            return fail(Errc::invalid_options,
                        "the browser certificate must be an ECDSA P-256 certificate with its key");
        }
    }

    const PeerVerification& verify = options.verify;
    if (verify.accept_unknown_peers && !server) {
        return fail(Errc::invalid_options, "accept_unknown_peers is for servers only");
    }
    const bool verifies = !server || verify.require_peer_certificate;
    const bool has_known = verify.known_peers != nullptr && !verify.known_peers->peers().empty();
    if (verifies && verify.pinned.empty() && !has_known && verify.ca_file.empty()) {
        return fail(Errc::invalid_options,
                    "no way to trust the peer: pin a peer id, give known_peers or a CA file");
    }

    crypto::SslCtxPtr ctx(
        SSL_CTX_new_ex(nullptr, nullptr, server ? TLS_server_method() : TLS_client_method()));
    if (!ctx) {
        return openssl_failure("SSL_CTX_new_ex");
    }
    if (auto ok = detail::apply_profile(ctx.get(), p, role, browser); !ok) {
        return tl::unexpected(ok.error());
    }

    if (options.identity != nullptr) {
        if (auto ok = use_certificate(ctx.get(), options.identity->certificate.get(),
                                      options.identity->key.get(), "identity");
            !ok) {
            return tl::unexpected(ok.error());
        }
    }
    if (browser) {
        // A second certificate slot (EC); OpenSSL picks it only for a client whose
        // signature_algorithms lack every ML-DSA scheme.
        if (auto ok = use_certificate(ctx.get(), options.browser_certificate.certificate,
                                      options.browser_certificate.key, "browser certificate");
            !ok) {
            return tl::unexpected(ok.error());
        }
    }

    auto state = std::make_unique<detail::ContextState>();
    state->profile = &p;
    for (const auto& id : verify.pinned) {
        state->policy.pinned.insert(id.str());
    }
    if (verify.known_peers != nullptr) {
        for (const auto& peer : verify.known_peers->peers()) {
            state->policy.known.emplace(peer.id.str(), peer.name);
        }
    }
    if (!server && !verify.ca_file.empty() && verify.ca_host.empty()) {
        // RFC 6125 section 6: a client that trusts a CA must check the name it
        // meant to reach, or any certificate that CA issued would do.
        return fail(Errc::invalid_options,
                    "a client that trusts a CA file must name the server it expects (ca_host)");
    }
    state->policy.accept_unknown =
        server && verify.accept_unknown_peers && !verify.require_peer_certificate;
    if (!verify.ca_file.empty()) {
        const std::string file = verify.ca_file.string();
        if (SSL_CTX_load_verify_file(ctx.get(), file.c_str()) != 1) {
            return openssl_failure("CA file " + file);
        }
        state->policy.has_ca = true;
        if (!verify.ca_host.empty()) {
            X509_VERIFY_PARAM* param = SSL_CTX_get0_param(ctx.get());
            const bool is_ip = X509_VERIFY_PARAM_set1_ip_asc(param, verify.ca_host.c_str()) == 1;
            if (!is_ip) {
                (void)crypto::drain_openssl_errors();
                if (X509_VERIFY_PARAM_set1_host(param, verify.ca_host.c_str(),
                                                verify.ca_host.size()) != 1) {
                    return openssl_failure("CA host name " + verify.ca_host);
                }
            }
        }
    }

    int mode = SSL_VERIFY_NONE;
    if (server && verify.require_peer_certificate) {
        // RFC 8446 section 4.4.2.4: "If the client does not send any certificates
        // (i.e., it sends an empty Certificate message), the server MAY at its
        // discretion either continue the handshake without client authentication
        // or abort the handshake with a "certificate_required" alert." We abort.
        mode = SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT;
    } else if (!server || verify.accept_unknown_peers) {
        // A client always verifies; a server that lets unknown clients in asks
        // for a certificate without insisting (no certificate: anonymous).
        mode = SSL_VERIFY_PEER;
    }
    SSL_CTX_set_verify(ctx.get(), mode, nullptr);
    // RFC 7250: "server_certificate_type" and "client_certificate_type",
    // raw public key first, X.509 as the fallback. A peer identified by key
    // (pqmcp pins by the hash of the public key) needs nothing else, and the
    // certificate's wrapper and self-signature (3.3 KB of ML-DSA-65) stay off
    // the wire.
    static constexpr std::array<unsigned char, 2> k_rpk_first{TLSEXT_cert_type_rpk,
                                                              TLSEXT_cert_type_x509};
    const bool by_key = verify.ca_file.empty();
    if (verify.raw_public_keys) {
        // Server: willing to send its bare key to a client that asks (only one
        // that pins it does). Client: asks for it when it trusts by key.
        if ((server || by_key) &&
            SSL_CTX_set1_server_cert_type(ctx.get(), k_rpk_first.data(), k_rpk_first.size()) != 1) {
            return openssl_failure("server certificate types");
        }
        // Server: takes a client's bare key when it trusts clients by key.
        // Client: offers its bare key (a server that wants X.509 says so).
        if (by_key && (!server || mode != SSL_VERIFY_NONE) &&
            SSL_CTX_set1_client_cert_type(ctx.get(), k_rpk_first.data(), k_rpk_first.size()) != 1) {
            return openssl_failure("client certificate types");
        }
    }
    // Idle connections (keep-alive, quiet SSE streams) give their record
    // buffers back; a gateway holds thousands of them.
    SSL_CTX_set_mode(ctx.get(), SSL_MODE_RELEASE_BUFFERS);
    SSL_CTX_set_cert_verify_callback(ctx.get(), detail::cert_verify_callback, nullptr);
    SSL_CTX_set_info_callback(ctx.get(), detail::info_callback);

    if (server) {
        // Needed to resume sessions whose client authenticated (OpenSSL refuses
        // resumption with peer verification and no session id context).
        const std::string sid = "pqmcp/" + std::string(p.name);
        if (SSL_CTX_set_session_id_context(ctx.get(),
                                           reinterpret_cast<const unsigned char*>(sid.data()),
                                           static_cast<unsigned int>(sid.size())) != 1) {
            return openssl_failure("session id context");
        }
        // Stateless tickets only: no server-side session cache to grow.
        SSL_CTX_set_session_cache_mode(ctx.get(), SSL_SESS_CACHE_OFF);
        if (options.tickets.enabled) {
            const auto interval =
                std::max(options.tickets.rotation_interval, std::chrono::seconds{1});
            state->tickets = std::make_unique<detail::TicketKeyManager>(
                interval, options.tickets.clock, options.tickets.shared_secret);
            // RFC 8446 section 4.6.1: "Servers MUST NOT use any value greater than
            // 604800 seconds (7 days)" for ticket_lifetime. A ticket outlives its
            // key by at most one interval.
            const auto lifetime = std::min<long long>(2 * interval.count(), 604'800);
            SSL_CTX_set_timeout(ctx.get(), static_cast<long>(lifetime));
            SSL_CTX_set_num_tickets(ctx.get(), 1);
            if (SSL_CTX_set_tlsext_ticket_key_evp_cb(ctx.get(), detail::ticket_key_callback) != 1) {
                return openssl_failure("ticket key callback");
            }
        } else {
            SSL_CTX_set_options(ctx.get(), SSL_OP_NO_TICKET);
            SSL_CTX_set_num_tickets(ctx.get(), 0);
        }
    }

    if (!detail::attach(ctx.get(), std::move(state))) {
        return openssl_failure("SSL_CTX_set_ex_data");
    }
    return ctx;
}

}  // namespace

Result<crypto::SslCtxPtr> make_server_context(const ContextOptions& options) {
    return make_context(options, Role::server);
}

Result<crypto::SslCtxPtr> make_client_context(const ContextOptions& options) {
    return make_context(options, Role::client);
}

std::string verification_failure(const SSL* ssl) {
    const auto* state = detail::find_connection_state(ssl);
    return state != nullptr ? state->verify_failure : std::string{};
}

AlertRecord last_alerts(const SSL* ssl) {
    const auto* state = detail::find_connection_state(ssl);
    if (state == nullptr) {
        return {};
    }
    return {state->alert_sent, state->alert_received};
}

const Profile* context_profile(const SSL_CTX* ctx) {
    const auto* state = detail::context_state(ctx);
    return state != nullptr ? state->profile : nullptr;
}

}  // namespace pqmcp::tls
