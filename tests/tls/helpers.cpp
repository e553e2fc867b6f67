#include "helpers.hpp"

#include <stdlib.h>

#include <future>
#include <stdexcept>

#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "pqmcp/crypto/signature.hpp"

namespace pqmcp::tls::test {
namespace {

[[noreturn]] void die(const std::string& what) {
    throw std::runtime_error(what);
}

void add_extension(X509* cert, X509* issuer, int nid, const char* value) {
    X509V3_CTX v3;
    X509V3_set_ctx_nodb(&v3);
    X509V3_set_ctx(&v3, issuer, cert, nullptr, nullptr, 0);
    X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &v3, nid, value);
    if (ext == nullptr || X509_add_ext(cert, ext, -1) != 1) {
        die("X509 extension");
    }
    X509_EXTENSION_free(ext);
}

crypto::X509Ptr new_certificate(EVP_PKEY* subject_key, const std::string& cn, long serial) {
    crypto::X509Ptr cert(X509_new());
    if (!cert || X509_set_version(cert.get(), X509_VERSION_3) != 1 ||
        ASN1_INTEGER_set(X509_get_serialNumber(cert.get()), serial) != 1 ||
        X509_gmtime_adj(X509_getm_notBefore(cert.get()), -3600) == nullptr ||
        X509_gmtime_adj(X509_getm_notAfter(cert.get()), 86400L * 30) == nullptr ||
        X509_set_pubkey(cert.get(), subject_key) != 1) {
        die("X509 setup");
    }
    X509_NAME* name = X509_get_subject_name(cert.get());
    if (X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                                   reinterpret_cast<const unsigned char*>(cn.c_str()), -1, -1,
                                   0) != 1) {
        die("X509 name");
    }
    return cert;
}

const EVP_MD* digest_for(EVP_PKEY* key) {
    // ML-DSA and Ed25519 sign the message itself (no separate digest).
    return (EVP_PKEY_is_a(key, "EC") == 1 || EVP_PKEY_is_a(key, "RSA") == 1) ? EVP_sha256()
                                                                             : nullptr;
}

}  // namespace

identity::Identity make_identity(crypto::SigAlg alg) {
    if (alg == crypto::SigAlg::rsa_3072_pss) {
        // identity::generate makes no RSA identities; a self-signed certificate
        // (from the test CA code) is enough for pinning.
        auto ca = make_ca(alg);
        auto id = identity::PeerId::of_key(ca.key.get());
        if (!id) {
            die("peer id: " + id.error().message());
        }
        return identity::Identity{std::move(ca.key), std::move(ca.certificate), alg,
                                  std::move(*id)};
    }
    identity::KeygenOptions options;
    options.algorithm = alg;
    options.names = {"localhost", "127.0.0.1"};
    auto id = identity::generate(options);
    if (!id) {
        die("identity::generate: " + id.error().message());
    }
    return std::move(*id);
}

TestCa make_ca(crypto::SigAlg alg) {
    auto key = crypto::generate_signing_key(alg);
    if (!key) {
        die("CA key: " + key.error().message());
    }
    auto cert = new_certificate(key->get(), "pqmcp test CA", 1);
    if (X509_set_issuer_name(cert.get(), X509_get_subject_name(cert.get())) != 1) {
        die("CA issuer");
    }
    add_extension(cert.get(), cert.get(), NID_basic_constraints, "critical,CA:TRUE");
    add_extension(cert.get(), cert.get(), NID_key_usage, "critical,keyCertSign,cRLSign");
    add_extension(cert.get(), cert.get(), NID_subject_key_identifier, "hash");
    if (X509_sign(cert.get(), key->get(), digest_for(key->get())) <= 0) {
        die("CA sign");
    }
    return TestCa{std::move(*key), std::move(cert)};
}

identity::Identity issue_identity(const TestCa& ca, crypto::SigAlg alg,
                                  const std::vector<std::string>& names) {
    auto key = crypto::generate_signing_key(alg);
    if (!key) {
        die("leaf key: " + key.error().message());
    }
    static std::atomic<long> serial{100};
    auto cert = new_certificate(key->get(), "pqmcp test leaf", serial++);
    if (X509_set_issuer_name(cert.get(), X509_get_subject_name(ca.certificate.get())) != 1) {
        die("leaf issuer");
    }
    add_extension(cert.get(), ca.certificate.get(), NID_basic_constraints, "critical,CA:FALSE");
    add_extension(cert.get(), ca.certificate.get(), NID_key_usage, "critical,digitalSignature");
    add_extension(cert.get(), ca.certificate.get(), NID_ext_key_usage, "serverAuth,clientAuth");
    std::string san;
    for (const auto& n : names) {
        san += san.empty() ? "" : ",";
        const bool ip = n.find_first_not_of("0123456789.") == std::string::npos;
        san += (ip ? "IP:" : "DNS:") + n;
    }
    if (!san.empty()) {
        add_extension(cert.get(), ca.certificate.get(), NID_subject_alt_name, san.c_str());
    }
    if (X509_sign(cert.get(), ca.key.get(), digest_for(ca.key.get())) <= 0) {
        die("leaf sign");
    }
    auto id = identity::PeerId::of_key(key->get());
    if (!id) {
        die("peer id: " + id.error().message());
    }
    return identity::Identity{std::move(*key), std::move(cert), alg, std::move(*id)};
}

void write_pem(const std::filesystem::path& file, X509* cert) {
    crypto::BioPtr bio(BIO_new_file(file.c_str(), "w"));
    if (!bio || PEM_write_bio_X509(bio.get(), cert) != 1) {
        die("write " + file.string());
    }
}

TicketClock FakeClock::clock() const {
    return [base = base_, offset = offset_] { return base + std::chrono::seconds{offset->load()}; };
}

EchoServer::EchoServer(SSL_CTX* ctx, std::chrono::milliseconds handshake_timeout) {
    EchoServerOptions options;
    options.handshake_timeout = handshake_timeout;
    options.idle_timeout = std::chrono::milliseconds{10'000};
    options.on_ready = [this](std::uint16_t port) {
        const std::lock_guard lock(mutex_);
        port_ = port;
        ready_ = true;
        changed_.notify_all();
    };
    options.on_handshake = [this](const HandshakeEvent& event) {
        const std::lock_guard lock(mutex_);
        events_.push_back(event);
        changed_.notify_all();
    };
    thread_ = std::thread([this, ctx, options, token = stop_.get_token()] {
        Status result = run_tls_echo_server(ctx, options, token);
        const std::lock_guard lock(mutex_);
        result_ = std::move(result);
        ready_ = true;  // also when listening failed
        changed_.notify_all();
    });
    std::unique_lock lock(mutex_);
    if (!changed_.wait_for(lock, k_wait, [this] { return ready_; }) || port_ == 0) {
        lock.unlock();
        stop_.request_stop();
        thread_.join();
        die("echo server did not start: " +
            (result_ ? std::string("no port") : result_.error().message()));
    }
}

EchoServer::~EchoServer() {
    stop_.request_stop();
    if (thread_.joinable()) {
        thread_.join();
    }
}

std::vector<HandshakeEvent> EchoServer::wait_for_events(std::size_t n) {
    std::unique_lock lock(mutex_);
    changed_.wait_for(lock, k_wait, [this, n] { return events_.size() >= n; });
    return events_;
}

ContextPair make_pair(ProfileId profile, const Peers& peers, TicketOptions tickets) {
    ContextOptions server;
    server.profile = profile;
    server.identity = &peers.server;
    server.verify.pinned = {peers.client.id};
    server.tickets = std::move(tickets);
    ContextOptions client;
    client.profile = profile;
    client.identity = &peers.client;
    client.verify.pinned = {peers.server.id};
    auto s = make_server_context(server);
    auto c = make_client_context(client);
    if (!s || !c) {
        die("contexts: " + (s ? c.error().message() : s.error().message()));
    }
    return {std::move(*s), std::move(*c)};
}

ClientOptions with_payload(std::string payload, SSL_SESSION* resume) {
    ClientOptions options;
    options.timeout = std::chrono::milliseconds{10'000};
    options.payload = std::move(payload);
    options.resume = resume;
    return options;
}

}  // namespace pqmcp::tls::test
