// Full and resumed TLS 1.3 handshakes per second, in one process and one
// thread: client and server SSL objects over a non-blocking AF_UNIX socket
// pair, driven in turn until both have finished. The time is the CPU cost of
// both ends together. Counters: handshake bytes each way (TLS records, as
// counted by the socket BIOs), and full handshakes per second.
//
// Every row uses the project's context builder (profiles, pinning, verify
// callback); only the client's groups or signature algorithms are narrowed
// where a row needs it. Server authentication only (as on the web), plus one
// mutually authenticated pq-hybrid row (pqmcp's default mode). Session
// tickets are off except in the resumption rows.
//
// The openssl/ rows are the baseline: the same handshakes between contexts set
// up directly with libssl (no pqmcp callbacks), the peer trusted through an
// X509_STORE holding its self-signed certificate.
#include <cstdio>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include <benchmark/benchmark.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "pqmcp/crypto/signature.hpp"
#include "pqmcp/identity/identity.hpp"
#include "pqmcp/measure/handshake.hpp"
#include "pqmcp/tls/client.hpp"
#include "pqmcp/tls/context.hpp"
#include "pqmcp/tls/profile.hpp"

namespace {

using namespace pqmcp;
using crypto::SigAlg;

// identity::generate makes ML-DSA, Ed25519 and ECDSA identities; the RSA
// baseline gets a minimal self-signed certificate here.
identity::Identity rsa_identity() {
    auto key = crypto::generate_signing_key(SigAlg::rsa_3072_pss);
    crypto::X509Ptr cert(X509_new());
    if (!key || !cert) {
        throw std::runtime_error("RSA key");
    }
    X509_NAME* name = X509_get_subject_name(cert.get());
    if (X509_set_version(cert.get(), X509_VERSION_3) != 1 ||
        ASN1_INTEGER_set(X509_get_serialNumber(cert.get()), 1) != 1 ||
        X509_gmtime_adj(X509_getm_notBefore(cert.get()), 0) == nullptr ||
        X509_gmtime_adj(X509_getm_notAfter(cert.get()), 86400) == nullptr ||
        X509_set_pubkey(cert.get(), key->get()) != 1 ||
        X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                                   reinterpret_cast<const unsigned char*>("localhost"), -1, -1,
                                   0) != 1 ||
        X509_set_issuer_name(cert.get(), name) != 1 ||
        X509_sign(cert.get(), key->get(), EVP_sha256()) <= 0) {
        throw std::runtime_error("RSA certificate");
    }
    auto id = identity::PeerId::of_key(key->get());
    if (!id) {
        throw std::runtime_error("RSA peer id: " + id.error().message());
    }
    return identity::Identity{std::move(*key), std::move(cert), SigAlg::rsa_3072_pss,
                              std::move(*id)};
}

identity::Identity make_identity(SigAlg alg) {
    if (alg == SigAlg::rsa_3072_pss) {
        return rsa_identity();
    }
    identity::KeygenOptions options;
    options.algorithm = alg;
    options.names = {"localhost"};
    auto id = identity::generate(options);
    if (!id) {
        throw std::runtime_error("identity: " + id.error().message());
    }
    return std::move(*id);
}

struct Setup {
    std::string name;
    tls::ProfileId profile = tls::ProfileId::pq_hybrid;
    SigAlg server_alg = SigAlg::ml_dsa_65;
    bool browser_certificate = false;  // pq-hybrid server with an extra ECDSA P-256 cert
    bool mutual = false;
    bool tickets = false;
    const char* client_groups = nullptr;   // narrow the client's groups
    const char* client_sigalgs = nullptr;  // narrow the client's signature algorithms
    bool plain_openssl = false;            // baseline contexts, see plain_context
    bool x509 = false;  // certificates even between pinned peers (no RFC 7250 raw public keys)
};

struct Fixture {
    Setup setup;
    std::unique_ptr<identity::Identity> server_id;
    std::unique_ptr<identity::Identity> browser_id;
    std::unique_ptr<identity::Identity> client_id;
    crypto::SslCtxPtr server;
    crypto::SslCtxPtr client;
};

// A context as an application would write it against libssl alone: TLS 1.3
// with the profile's groups, signature algorithms and ciphersuites, no tickets
// issued, `own` as the certificate, and `peer` (if any) required and trusted as
// the only certificate in the store, checked by OpenSSL's chain verification.
crypto::SslCtxPtr plain_context(const tls::Profile& p, bool server, const identity::Identity* own,
                                const identity::Identity* peer) {
    crypto::SslCtxPtr ctx(SSL_CTX_new(server ? TLS_server_method() : TLS_client_method()));
    const std::string groups(p.groups);
    const std::string sigalgs(p.sigalgs);
    const std::string suites(p.ciphersuites);
    if (!ctx || SSL_CTX_set_min_proto_version(ctx.get(), TLS1_3_VERSION) != 1 ||
        SSL_CTX_set_max_proto_version(ctx.get(), TLS1_3_VERSION) != 1 ||
        SSL_CTX_set1_groups_list(ctx.get(), groups.c_str()) != 1 ||
        SSL_CTX_set1_sigalgs_list(ctx.get(), sigalgs.c_str()) != 1 ||
        SSL_CTX_set_ciphersuites(ctx.get(), suites.c_str()) != 1) {
        throw std::runtime_error("plain SSL_CTX");
    }
    // Tickets off on the server, as in the pqmcp rows (SSL_OP_NO_TICKET alone
    // would make a TLS 1.3 server send stateful tickets instead). The client
    // keeps its defaults so that its ClientHello matches pqmcp's byte for byte.
    if (server) {
        SSL_CTX_set_options(ctx.get(), SSL_OP_NO_TICKET);
        if (SSL_CTX_set_num_tickets(ctx.get(), 0) != 1) {
            throw std::runtime_error("plain SSL_CTX: tickets");
        }
    }
    if (own != nullptr && (SSL_CTX_use_certificate(ctx.get(), own->certificate.get()) != 1 ||
                           SSL_CTX_use_PrivateKey(ctx.get(), own->key.get()) != 1)) {
        throw std::runtime_error("plain SSL_CTX: certificate");
    }
    if (peer != nullptr) {
        crypto::X509StorePtr store(X509_STORE_new());
        if (!store || X509_STORE_add_cert(store.get(), peer->certificate.get()) != 1) {
            throw std::runtime_error("plain SSL_CTX: store");
        }
        SSL_CTX_set_cert_store(ctx.get(), store.release());
        SSL_CTX_set_verify(
            ctx.get(), server ? SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT : SSL_VERIFY_PEER,
            nullptr);
    }
    return ctx;
}

Fixture make_fixture(const Setup& s) {
    Fixture f;
    f.setup = s;
    f.server_id = std::make_unique<identity::Identity>(make_identity(s.server_alg));
    if (s.plain_openssl) {
        const tls::Profile& p = tls::profile(s.profile);
        if (s.mutual) {
            f.client_id = std::make_unique<identity::Identity>(make_identity(s.server_alg));
        }
        f.server = plain_context(p, true, f.server_id.get(), f.client_id.get());
        f.client = plain_context(p, false, f.client_id.get(), f.server_id.get());
        return f;
    }
    tls::ContextOptions so;
    so.profile = s.profile;
    so.identity = f.server_id.get();
    so.tickets.enabled = s.tickets;
    tls::ContextOptions co;
    co.profile = s.profile;
    co.verify.pinned = {f.server_id->id};
    so.verify.raw_public_keys = !s.x509;
    co.verify.raw_public_keys = !s.x509;
    if (s.browser_certificate) {
        f.browser_id = std::make_unique<identity::Identity>(make_identity(SigAlg::ecdsa_p256));
        so.browser_certificate = {f.browser_id->certificate.get(), f.browser_id->key.get()};
        co.verify.pinned.push_back(f.browser_id->id);
    }
    if (s.mutual) {
        f.client_id = std::make_unique<identity::Identity>(make_identity(s.server_alg));
        co.identity = f.client_id.get();
        so.verify.pinned = {f.client_id->id};
    } else {
        so.verify.require_peer_certificate = false;
    }
    auto server = tls::make_server_context(so);
    auto client = tls::make_client_context(co);
    if (!server || !client) {
        throw std::runtime_error(s.name + ": " +
                                 (server ? client.error().message() : server.error().message()));
    }
    f.server = std::move(*server);
    f.client = std::move(*client);
    return f;
}

// One handshake over a fresh socket pair; with `want_session` the client also
// reads the server's ticket and returns the session.
measure::HandshakeOutcome handshake(const Fixture& f, SSL_SESSION* resume, bool want_session) {
    measure::HandshakeTweaks tweaks;
    tweaks.resume = resume;
    tweaks.want_session = want_session;
    tweaks.client_groups = f.setup.client_groups;
    tweaks.client_sigalgs = f.setup.client_sigalgs;
    return measure::handshake_once(f.client.get(), f.server.get(), tweaks);
}

void run(benchmark::State& state, const Fixture& f, bool resumed) {
    tls::SessionPtr session;
    if (resumed) {
        auto first = handshake(f, nullptr, true);
        if (!first.ok || !first.session) {
            state.SkipWithError(("no session: " + first.error).c_str());
            return;
        }
        session = std::move(first.session);
    }
    measure::HandshakeOutcome last;
    for (auto _ : state) {
        last = handshake(f, session.get(), false);
        if (!last.ok) {
            state.SkipWithError(last.error.c_str());
            return;
        }
        if (last.resumed != resumed) {
            state.SkipWithError(resumed ? "not resumed" : "unexpectedly resumed");
            return;
        }
    }
    state.counters["bytes_c2s"] = static_cast<double>(last.client_to_server);
    state.counters["bytes_s2c"] = static_cast<double>(last.server_to_client);
    state.counters["handshakes_per_s"] =
        benchmark::Counter(static_cast<double>(state.iterations()), benchmark::Counter::kIsRate);
}

}  // namespace

int main(int argc, char** argv) {
    benchmark::Initialize(&argc, argv);
    const std::vector<Setup> setups{
        {"pq-hybrid/X25519MLKEM768+ML-DSA-65", tls::ProfileId::pq_hybrid, SigAlg::ml_dsa_65},
        {.name = "pq-hybrid/X25519MLKEM768+ML-DSA-65/x509",
         .profile = tls::ProfileId::pq_hybrid,
         .server_alg = SigAlg::ml_dsa_65,
         .x509 = true},
        {.name = "openssl/X25519MLKEM768+ML-DSA-65",
         .profile = tls::ProfileId::pq_hybrid,
         .server_alg = SigAlg::ml_dsa_65,
         .plain_openssl = true},
        {"pq-strict/MLKEM1024+ML-DSA-87", tls::ProfileId::pq_strict, SigAlg::ml_dsa_87},
        {.name = "openssl/MLKEM1024+ML-DSA-87",
         .profile = tls::ProfileId::pq_strict,
         .server_alg = SigAlg::ml_dsa_87,
         .plain_openssl = true},
        {"classical/X25519+Ed25519", tls::ProfileId::classical, SigAlg::ed25519},
        {"classical/X25519+RSA-3072", tls::ProfileId::classical, SigAlg::rsa_3072_pss},
        {"pq-hybrid/X25519MLKEM768+ECDSA-P256", tls::ProfileId::pq_hybrid, SigAlg::ml_dsa_65, true,
         false, false, nullptr, "ecdsa_secp256r1_sha256"},
        {"pq-hybrid/X25519MLKEM768+ML-DSA-65/mutual", tls::ProfileId::pq_hybrid, SigAlg::ml_dsa_65,
         false, true},
        {.name = "pq-hybrid/X25519MLKEM768+ML-DSA-65/mutual/x509",
         .profile = tls::ProfileId::pq_hybrid,
         .server_alg = SigAlg::ml_dsa_65,
         .mutual = true,
         .x509 = true},
        {.name = "openssl/X25519MLKEM768+ML-DSA-65/mutual",
         .profile = tls::ProfileId::pq_hybrid,
         .server_alg = SigAlg::ml_dsa_65,
         .mutual = true,
         .plain_openssl = true},
    };
    // Destroyed before main returns: OpenSSL's atexit cleanup drops the ex_data
    // callbacks that free the contexts' state.
    std::vector<Fixture> fixtures;
    fixtures.reserve(setups.size() + 3);
    try {
        for (const auto& s : setups) {
            fixtures.push_back(make_fixture(s));
        }
        fixtures.push_back(
            make_fixture({"pq-hybrid/X25519MLKEM768+ML-DSA-65/resumed", tls::ProfileId::pq_hybrid,
                          SigAlg::ml_dsa_65, false, false, true}));
        fixtures.push_back(
            make_fixture({"pq-hybrid/X25519MLKEM768+ML-DSA-65/mutual/resumed",
                          tls::ProfileId::pq_hybrid, SigAlg::ml_dsa_65, false, true, true}));
        fixtures.push_back(
            make_fixture({"classical/X25519+Ed25519/resumed", tls::ProfileId::classical,
                          SigAlg::ed25519, false, false, true}));
    } catch (const std::exception& e) {
        (void)std::fprintf(stderr, "bench_handshake: %s\n", e.what());
        return 1;
    }
    for (const auto& f : fixtures) {
        const bool resumed = f.setup.tickets;
        benchmark::RegisterBenchmark(f.setup.name.c_str(),
                                     [&f, resumed](benchmark::State& st) { run(st, f, resumed); })
            ->UseRealTime()
            ->Unit(benchmark::kMicrosecond);
    }
    benchmark::RunSpecifiedBenchmarks();
    benchmark::Shutdown();
    return 0;
}
