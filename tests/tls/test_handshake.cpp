// Self-talk: client and server of each profile in one process over loopback,
// and what each side refuses.
#include <gtest/gtest.h>

#include "helpers.hpp"
#include "pqmcp/identity/known_peers.hpp"
#include "pqmcp/tls/client.hpp"

namespace pqmcp::tls {
namespace {

using crypto::SigAlg;
using test::EchoServer;

struct SelfTalkCase {
    ProfileId profile;
    SigAlg identity;
    const char* group;
    const char* signature;
    const char* key;
};

class SelfTalk : public ::testing::TestWithParam<SelfTalkCase> {};

TEST_P(SelfTalk, MutualHandshakeNegotiatesTheProfile) {
    const auto& c = GetParam();
    const test::Peers peers{test::make_identity(c.identity), test::make_identity(c.identity)};
    auto ctx = test::make_pair(c.profile, peers);
    EchoServer server(ctx.server.get());

    auto result = connect_once(ctx.client.get(), "127.0.0.1", server.port(), test::with_payload());
    ASSERT_TRUE(result.has_value()) << result.error().message();
    EXPECT_EQ(result->reply, "hello, quantum world");

    const HandshakeInfo& client = result->info;
    EXPECT_EQ(client.protocol, "TLSv1.3");
    EXPECT_EQ(client.group, c.group);
    EXPECT_EQ(client.peer_signature, c.signature);
    EXPECT_EQ(client.own_signature, c.signature);
    EXPECT_EQ(client.cipher, "TLS_AES_256_GCM_SHA384");
    EXPECT_EQ(client.peer_certificate_key, c.key);
    ASSERT_TRUE(client.peer_id.has_value());
    EXPECT_EQ(*client.peer_id, peers.server.id);
    EXPECT_FALSE(client.resumed);
    EXPECT_EQ(client.quantum_safe_group, c.profile != ProfileId::classical);
    EXPECT_GT(client.bytes_sent, 0U);
    EXPECT_GT(client.bytes_received, 0U);

    const auto events = server.wait_for_events(1);
    ASSERT_EQ(events.size(), 1U);
    ASSERT_TRUE(events[0].result.has_value()) << events[0].result.error().message();
    const HandshakeInfo& srv = *events[0].result;
    EXPECT_EQ(srv.group, c.group);
    EXPECT_EQ(srv.peer_signature, c.signature);
    EXPECT_EQ(srv.own_signature, c.signature);
    ASSERT_TRUE(srv.peer_id.has_value());
    EXPECT_EQ(*srv.peer_id, peers.client.id);
    // What one side sent during the handshake, the other received (the
    // server's count also includes its session ticket, sent with its last flight).
    EXPECT_EQ(srv.bytes_received, client.bytes_sent);
    EXPECT_GE(srv.bytes_sent, client.bytes_received);
}

INSTANTIATE_TEST_SUITE_P(
    Profiles, SelfTalk,
    ::testing::Values(
        SelfTalkCase{ProfileId::pq_hybrid, SigAlg::ml_dsa_65, "X25519MLKEM768", "mldsa65",
                     "ML-DSA-65"},
        SelfTalkCase{ProfileId::pq_strict, SigAlg::ml_dsa_87, "MLKEM1024", "mldsa87", "ML-DSA-87"},
        SelfTalkCase{ProfileId::classical, SigAlg::ed25519, "x25519", "ed25519", "Ed25519"},
        SelfTalkCase{ProfileId::classical, SigAlg::ecdsa_p256, "x25519", "ecdsa_secp256r1_sha256",
                     "EC P-256"},
        SelfTalkCase{ProfileId::classical, SigAlg::rsa_3072_pss, "x25519", "rsa_pss_rsae_sha256",
                     "RSA-3072"}),
    [](const auto& tp) {
        std::string name = std::string(profile(tp.param.profile).name) + "_" +
                           std::string(crypto::cli_name(tp.param.identity));
        for (auto& ch : name) {
            if (ch == '-') {
                ch = '_';
            }
        }
        return name;
    });

// The second group of each PQ profile is negotiated when it is the only one
// the client offers.
TEST(Negotiation, SecondGroupOfEachProfile) {
    for (const auto& [id, alg, group] :
         {std::tuple{ProfileId::pq_hybrid, SigAlg::ml_dsa_65, "SecP256r1MLKEM768"},
          std::tuple{ProfileId::pq_strict, SigAlg::ml_dsa_87, "SecP384r1MLKEM1024"}}) {
        const test::Peers peers{test::make_identity(alg), test::make_identity(alg)};
        auto ctx = test::make_pair(id, peers);
        EchoServer server(ctx.server.get());
        auto options = test::with_payload();
        const std::string only(group);
        options.configure = [&only](SSL* ssl) {
            ASSERT_EQ(SSL_set1_groups_list(ssl, only.c_str()), 1);
        };
        auto result = connect_once(ctx.client.get(), "127.0.0.1", server.port(), options);
        ASSERT_TRUE(result.has_value()) << result.error().message();
        EXPECT_EQ(result->info.group, group);
    }
}

// A client that offers classical groups only gets a handshake_failure alert
// from a pq-hybrid server: no silent fallback.
TEST(Negotiation, ClassicalOnlyClientIsRefusedByPqHybridServer) {
    const test::Peers peers{test::make_identity(SigAlg::ml_dsa_65),
                            test::make_identity(SigAlg::ml_dsa_65)};
    auto ctx = test::make_pair(ProfileId::pq_hybrid, peers);
    EchoServer server(ctx.server.get());
    auto options = test::with_payload();
    options.configure = [](SSL* ssl) { ASSERT_EQ(SSL_set1_groups_list(ssl, "X25519"), 1); };

    auto result = connect_once(ctx.client.get(), "127.0.0.1", server.port(), options);
    ASSERT_FALSE(result.has_value());
    EXPECT_EQ(result.error().code, Errc::handshake_failed);
    EXPECT_NE(result.error().detail.find("handshake failure"), std::string::npos)
        << result.error().message();

    const auto events = server.wait_for_events(1);
    ASSERT_EQ(events.size(), 1U);
    ASSERT_FALSE(events[0].result.has_value());
    EXPECT_EQ(events[0].result.error().code, Errc::handshake_failed);
    EXPECT_NE(events[0].result.error().detail.find("no suitable key share"), std::string::npos)
        << events[0].result.error().message();
    EXPECT_NE(events[0].result.error().detail.find("alert sent: handshake failure"),
              std::string::npos)
        << events[0].result.error().message();
}

// And the other way round: a pq-hybrid client never accepts a classical server.
TEST(Negotiation, PqHybridClientRefusesClassicalServer) {
    const auto server_id = test::make_identity(SigAlg::ed25519);
    ContextOptions so;
    so.profile = ProfileId::classical;
    so.identity = &server_id;
    so.verify.require_peer_certificate = false;
    auto server_ctx = make_server_context(so);
    ASSERT_TRUE(server_ctx.has_value());
    ContextOptions co;
    co.verify.pinned = {server_id.id};
    auto client_ctx = make_client_context(co);
    ASSERT_TRUE(client_ctx.has_value());
    EchoServer server(server_ctx->get());

    auto result = connect_once(client_ctx->get(), "127.0.0.1", server.port(), test::with_payload());
    ASSERT_FALSE(result.has_value());
    EXPECT_EQ(result.error().code, Errc::handshake_failed);
    EXPECT_NE(result.error().detail.find("handshake failure"), std::string::npos)
        << result.error().message();
}

class Pinning : public ::testing::Test {
  protected:
    identity::Identity server_id_ = test::make_identity(SigAlg::ml_dsa_65);
    identity::Identity client_id_ = test::make_identity(SigAlg::ml_dsa_65);
    identity::Identity stranger_ = test::make_identity(SigAlg::ml_dsa_65);

    crypto::SslCtxPtr server_pinning(const identity::PeerId& client) {
        ContextOptions o;
        o.identity = &server_id_;
        o.verify.pinned = {client};
        auto ctx = make_server_context(o);
        EXPECT_TRUE(ctx.has_value());
        return ctx ? std::move(*ctx) : nullptr;
    }
    crypto::SslCtxPtr client_with(ContextOptions o) {
        o.identity = &client_id_;
        auto ctx = make_client_context(o);
        EXPECT_TRUE(ctx.has_value()) << ctx.error().message();
        return ctx ? std::move(*ctx) : nullptr;
    }
};

TEST_F(Pinning, PinnedServerIsAccepted) {
    auto server_ctx = server_pinning(client_id_.id);
    EchoServer server(server_ctx.get());
    ContextOptions o;
    o.verify.pinned = {stranger_.id, server_id_.id};
    auto client_ctx = client_with(std::move(o));
    auto result = connect_once(client_ctx.get(), "127.0.0.1", server.port(), test::with_payload());
    ASSERT_TRUE(result.has_value()) << result.error().message();
    EXPECT_EQ(result->info.peer_id, server_id_.id);
}

TEST_F(Pinning, WrongPinIsRejectedNamingThePeer) {
    auto server_ctx = server_pinning(client_id_.id);
    EchoServer server(server_ctx.get());
    ContextOptions o;
    o.verify.pinned = {stranger_.id};
    auto client_ctx = client_with(std::move(o));
    auto result = connect_once(client_ctx.get(), "127.0.0.1", server.port(), test::with_payload());
    ASSERT_FALSE(result.has_value());
    EXPECT_EQ(result.error().code, Errc::peer_rejected);
    EXPECT_NE(result.error().detail.find("peer " + server_id_.id.str() + " is not pinned"),
              std::string::npos)
        << result.error().message();
    // The server hears why: bad_certificate.
    const auto events = server.wait_for_events(1);
    ASSERT_EQ(events.size(), 1U);
    ASSERT_FALSE(events[0].result.has_value());
    EXPECT_EQ(events[0].result.error().code, Errc::handshake_failed);
    EXPECT_NE(events[0].result.error().detail.find("alert received: bad certificate"),
              std::string::npos)
        << events[0].result.error().message();
}

TEST_F(Pinning, UnpinnedClientIsRejectedByTheServer) {
    auto server_ctx = server_pinning(stranger_.id);
    EchoServer server(server_ctx.get());
    ContextOptions o;
    o.verify.pinned = {server_id_.id};
    auto client_ctx = client_with(std::move(o));
    auto result = connect_once(client_ctx.get(), "127.0.0.1", server.port(), test::with_payload());
    // In TLS 1.3 the client's handshake is complete before the server has
    // checked the client's certificate; the refusal arrives as an alert on the
    // first read.
    ASSERT_FALSE(result.has_value());
    EXPECT_EQ(result.error().code, Errc::io_error);
    EXPECT_NE(result.error().detail.find("bad certificate"), std::string::npos)
        << result.error().message();

    const auto events = server.wait_for_events(1);
    ASSERT_EQ(events.size(), 1U);
    ASSERT_FALSE(events[0].result.has_value());
    EXPECT_EQ(events[0].result.error().code, Errc::peer_rejected);
    EXPECT_NE(
        events[0].result.error().detail.find("peer " + client_id_.id.str() + " is not pinned"),
        std::string::npos)
        << events[0].result.error().message();
}

TEST_F(Pinning, ClientWithoutIdentityIsRefusedByMutualServer) {
    auto server_ctx = server_pinning(client_id_.id);
    EchoServer server(server_ctx.get());
    ContextOptions o;
    o.verify.pinned = {server_id_.id};
    auto client_ctx = make_client_context(o);  // no identity
    ASSERT_TRUE(client_ctx.has_value());
    auto result = connect_once(client_ctx->get(), "127.0.0.1", server.port(), test::with_payload());
    ASSERT_FALSE(result.has_value());
    EXPECT_EQ(result.error().code, Errc::io_error);
    EXPECT_NE(result.error().detail.find("certificate required"), std::string::npos)
        << result.error().message();
    const auto events = server.wait_for_events(1);
    ASSERT_EQ(events.size(), 1U);
    ASSERT_FALSE(events[0].result.has_value());
    EXPECT_EQ(events[0].result.error().code, Errc::handshake_failed);
    EXPECT_NE(events[0].result.error().detail.find("peer did not return a certificate"),
              std::string::npos)
        << events[0].result.error().message();
}

TEST_F(Pinning, KnownPeersAcceptAndNameThePeer) {
    auto known = identity::KnownPeers::parse(client_id_.id.str() + " laptop 2026-11-23\n");
    ASSERT_TRUE(known.has_value()) << known.error().message();
    crypto::SslCtxPtr server_ctx;
    {
        // The context copies what it needs: the KnownPeers may go away.
        auto copy = *known;
        ContextOptions so;
        so.identity = &server_id_;
        so.verify.known_peers = &copy;
        auto ctx = make_server_context(so);
        ASSERT_TRUE(ctx.has_value()) << ctx.error().message();
        server_ctx = std::move(*ctx);
    }
    EchoServer server(server_ctx.get());
    ContextOptions o;
    o.verify.pinned = {server_id_.id};
    auto client_ctx = client_with(std::move(o));
    auto result = connect_once(client_ctx.get(), "127.0.0.1", server.port(), test::with_payload());
    ASSERT_TRUE(result.has_value()) << result.error().message();
    const auto events = server.wait_for_events(1);
    ASSERT_EQ(events.size(), 1U);
    ASSERT_TRUE(events[0].result.has_value()) << events[0].result.error().message();
    EXPECT_EQ(events[0].result->peer_id, client_id_.id);
    EXPECT_EQ(events[0].result->peer_name, "laptop");
}

class CaPath : public ::testing::Test {
  protected:
    test::TempDir dir_;
    test::TestCa ca_ = test::make_ca(SigAlg::ml_dsa_65);
    identity::Identity server_id_ =
        test::issue_identity(ca_, SigAlg::ml_dsa_65, {"localhost", "127.0.0.1"});
    std::filesystem::path ca_file_ = dir_.path() / "ca.pem";

    void SetUp() override { test::write_pem(ca_file_, ca_.certificate.get()); }

    crypto::SslCtxPtr server(const identity::Identity& id) {
        ContextOptions o;
        o.identity = &id;
        o.verify.require_peer_certificate = false;
        auto ctx = make_server_context(o);
        EXPECT_TRUE(ctx.has_value()) << ctx.error().message();
        return ctx ? std::move(*ctx) : nullptr;
    }
    Result<ClientResult> connect_with_ca(std::uint16_t port, std::string host) {
        ContextOptions o;
        o.verify.ca_file = ca_file_;
        o.verify.ca_host = std::move(host);
        auto ctx = make_client_context(o);
        EXPECT_TRUE(ctx.has_value()) << ctx.error().message();
        if (!ctx) {
            return tl::unexpected(ctx.error());
        }
        return connect_once(ctx->get(), "127.0.0.1", port, test::with_payload());
    }
};

TEST_F(CaPath, CertificateIssuedByTheCaIsAccepted) {
    auto ctx = server(server_id_);
    EchoServer srv(ctx.get());
    auto result = connect_with_ca(srv.port(), "localhost");
    ASSERT_TRUE(result.has_value()) << result.error().message();
    EXPECT_EQ(result->info.peer_id, server_id_.id);
    EXPECT_EQ(result->info.peer_signature, "mldsa65");
}

TEST_F(CaPath, CaHostMustMatch) {
    auto ctx = server(server_id_);
    EchoServer srv(ctx.get());
    auto result = connect_with_ca(srv.port(), "other.example");
    ASSERT_FALSE(result.has_value());
    EXPECT_EQ(result.error().code, Errc::peer_rejected);
    EXPECT_NE(result.error().detail.find("hostname mismatch"), std::string::npos)
        << result.error().message();
}

TEST_F(CaPath, SelfSignedCertificateIsNotEnough) {
    const auto self_signed = test::make_identity(SigAlg::ml_dsa_65);
    auto ctx = server(self_signed);
    EchoServer srv(ctx.get());
    auto result = connect_with_ca(srv.port(), "localhost");
    ASSERT_FALSE(result.has_value());
    EXPECT_EQ(result.error().code, Errc::peer_rejected);
    EXPECT_NE(result.error().detail.find("peer " + self_signed.id.str() + " is not pinned"),
              std::string::npos)
        << result.error().message();
    EXPECT_NE(result.error().detail.find("CA file"), std::string::npos);
}

}  // namespace
}  // namespace pqmcp::tls
