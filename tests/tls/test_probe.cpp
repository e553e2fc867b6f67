// probe() against the project's own servers (openssl s_server: tests/interop).
#include <gtest/gtest.h>
#include <boost/json/parse.hpp>

#include "helpers.hpp"
#include "pqmcp/tls/probe.hpp"

namespace pqmcp::tls {
namespace {

using crypto::SigAlg;

crypto::SslCtxPtr server_context(ProfileId profile, const identity::Identity& id,
                                 const identity::Identity* browser = nullptr) {
    ContextOptions o;
    o.profile = profile;
    o.identity = &id;
    o.verify.require_peer_certificate = false;
    if (browser != nullptr) {
        o.browser_certificate = {browser->certificate.get(), browser->key.get()};
    }
    auto ctx = make_server_context(o);
    EXPECT_TRUE(ctx.has_value()) << ctx.error().message();
    return ctx ? std::move(*ctx) : nullptr;
}

TEST(Probe, PqHybridServerIsQuantumSafe) {
    const auto id = test::make_identity(SigAlg::ml_dsa_65);
    auto ctx = server_context(ProfileId::pq_hybrid, id);
    test::EchoServer server(ctx.get());
    auto report = probe("127.0.0.1", server.port(), std::chrono::milliseconds{10'000});
    ASSERT_TRUE(report.has_value()) << report.error().message();
    EXPECT_EQ(report->protocol, "TLSv1.3");
    EXPECT_EQ(report->group, "X25519MLKEM768");
    EXPECT_EQ(report->signature, "mldsa65");
    EXPECT_EQ(report->certificate_key, "ML-DSA-65");
    EXPECT_EQ(report->peer_id, id.id);
    EXPECT_FALSE(report->accepts_classical);
    EXPECT_EQ(report->verdict, Verdict::quantum_safe);

    const auto json = boost::json::parse(report->to_json()).as_object();
    EXPECT_EQ(json.at("verdict").as_string(), "quantum-safe");
    EXPECT_EQ(json.at("group").as_string(), "X25519MLKEM768");
    EXPECT_EQ(json.at("signature").as_string(), "mldsa65");
    EXPECT_FALSE(json.at("accepts_classical").as_bool());
    EXPECT_EQ(json.at("certificate_key").as_string(), "ML-DSA-65");
    EXPECT_EQ(json.at("port").to_number<int>(), server.port());
    EXPECT_TRUE(json.contains("cipher"));
    EXPECT_TRUE(json.contains("host"));
}

TEST(Probe, PqStrictServerIsQuantumSafe) {
    const auto id = test::make_identity(SigAlg::ml_dsa_87);
    auto ctx = server_context(ProfileId::pq_strict, id);
    test::EchoServer server(ctx.get());
    auto report = probe("127.0.0.1", server.port(), std::chrono::milliseconds{10'000});
    ASSERT_TRUE(report.has_value()) << report.error().message();
    // The probe's key share is X25519MLKEM768; the server asks for MLKEM1024 (HRR).
    EXPECT_EQ(report->group, "MLKEM1024");
    EXPECT_EQ(report->signature, "mldsa87");
    EXPECT_EQ(report->certificate_key, "ML-DSA-87");
    EXPECT_EQ(report->verdict, Verdict::quantum_safe);
}

TEST(Probe, ClassicalServerIsClassical) {
    const auto id = test::make_identity(SigAlg::ecdsa_p256);
    auto ctx = server_context(ProfileId::classical, id);
    test::EchoServer server(ctx.get());
    auto report = probe("127.0.0.1", server.port(), std::chrono::milliseconds{10'000});
    ASSERT_TRUE(report.has_value()) << report.error().message();
    EXPECT_EQ(report->group, "x25519");  // IANA spelling
    EXPECT_EQ(report->signature, "ecdsa_secp256r1_sha256");
    EXPECT_EQ(report->certificate_key, "EC P-256");
    EXPECT_TRUE(report->accepts_classical);
    EXPECT_EQ(report->verdict, Verdict::classical);
}

// A pq-hybrid server with a browser certificate: a client that cannot verify
// ML-DSA gets the ECDSA certificate; key exchange stays hybrid.
TEST(Probe, BrowserCertificateIsUsedOnlyWithoutMlDsa) {
    const auto id = test::make_identity(SigAlg::ml_dsa_65);
    const auto browser = test::make_identity(SigAlg::ecdsa_p256);
    auto ctx = server_context(ProfileId::pq_hybrid, id, &browser);
    test::EchoServer server(ctx.get());

    auto report = probe("127.0.0.1", server.port(), std::chrono::milliseconds{10'000});
    ASSERT_TRUE(report.has_value()) << report.error().message();
    EXPECT_EQ(report->signature, "mldsa65");  // ML-DSA preferred when offered
    EXPECT_EQ(report->verdict, Verdict::quantum_safe);

    ContextOptions co;
    co.verify.pinned = {browser.id};
    auto client = make_client_context(co);
    ASSERT_TRUE(client.has_value());
    ClientOptions options = test::with_payload();
    options.configure = [](SSL* ssl) {
        ASSERT_EQ(SSL_set1_sigalgs_list(ssl, "ecdsa_secp256r1_sha256:rsa_pss_rsae_sha256"), 1);
    };
    auto result = connect_once(client->get(), "127.0.0.1", server.port(), options);
    ASSERT_TRUE(result.has_value()) << result.error().message();
    EXPECT_EQ(result->info.peer_signature, "ecdsa_secp256r1_sha256");
    EXPECT_EQ(result->info.peer_id, browser.id);
    EXPECT_EQ(result->info.group, "X25519MLKEM768");
}

TEST(Probe, NothingListeningIsAConnectError) {
    std::uint16_t port = 0;
    {
        // A port that was free a moment ago.
        const auto id = test::make_identity(SigAlg::ml_dsa_65);
        auto ctx = server_context(ProfileId::pq_hybrid, id);
        test::EchoServer server(ctx.get());
        port = server.port();
    }
    auto report = probe("127.0.0.1", port, std::chrono::milliseconds{5'000});
    ASSERT_FALSE(report.has_value());
    EXPECT_EQ(report.error().code, Errc::connect_failed) << report.error().message();
}

}  // namespace
}  // namespace pqmcp::tls
