// Session resumption with tickets and ticket-key rotation on an injected clock.
#include <gtest/gtest.h>

#include "helpers.hpp"
#include "pqmcp/tls/client.hpp"

namespace pqmcp::tls {
namespace {

using crypto::SigAlg;
using test::EchoServer;

constexpr std::chrono::seconds k_interval{3600};

class Tickets : public ::testing::Test {
  protected:
    test::Peers peers_{test::make_identity(SigAlg::ml_dsa_65),
                       test::make_identity(SigAlg::ml_dsa_65)};
    test::FakeClock clock_;

    test::ContextPair contexts(bool enabled = true,
                               std::shared_ptr<const crypto::SecretBytes> shared = nullptr) {
        TicketOptions tickets;
        tickets.enabled = enabled;
        tickets.rotation_interval = k_interval;
        tickets.clock = clock_.clock();
        tickets.shared_secret = std::move(shared);
        return test::make_pair(ProfileId::pq_hybrid, peers_, tickets);
    }

    static std::shared_ptr<const crypto::SecretBytes> secret(char fill) {
        const std::string bytes(48, fill);
        return std::make_shared<const crypto::SecretBytes>(as_bytes(bytes));
    }

    Result<ClientResult> connect(SSL_CTX* client, const EchoServer& server,
                                 SSL_SESSION* resume = nullptr) {
        return connect_once(client, "127.0.0.1", server.port(), test::with_payload("x", resume));
    }
};

TEST_F(Tickets, ResumptionKeepsBothPeerIds) {
    auto ctx = contexts();
    EchoServer server(ctx.server.get());
    auto first = connect(ctx.client.get(), server);
    ASSERT_TRUE(first.has_value()) << first.error().message();
    EXPECT_FALSE(first->info.resumed);
    ASSERT_TRUE(first->session);
    ASSERT_EQ(SSL_SESSION_is_resumable(first->session.get()), 1);

    auto second = connect(ctx.client.get(), server, first->session.get());
    ASSERT_TRUE(second.has_value()) << second.error().message();
    EXPECT_TRUE(second->info.resumed);
    EXPECT_EQ(second->info.group, "X25519MLKEM768");  // psk_dhe_ke: still a fresh hybrid share
    EXPECT_EQ(second->info.peer_signature, "");       // no CertificateVerify when resuming
    EXPECT_EQ(second->info.peer_id, peers_.server.id);
    EXPECT_LT(second->info.bytes_received, first->info.bytes_received);

    const auto events = server.wait_for_events(2);
    ASSERT_EQ(events.size(), 2U);
    ASSERT_TRUE(events[1].result.has_value()) << events[1].result.error().message();
    EXPECT_TRUE(events[1].result->resumed);
    EXPECT_EQ(events[1].result->peer_id, peers_.client.id);
}

TEST_F(Tickets, PreviousKeyStillWorksTwoRotationsLaterItDoesNot) {
    auto ctx = contexts();
    EchoServer server(ctx.server.get());
    auto first = connect(ctx.client.get(), server);
    ASSERT_TRUE(first.has_value()) << first.error().message();
    ASSERT_TRUE(first->session);

    clock_.advance(k_interval);  // one rotation: the ticket's key is the previous key
    auto after_one = connect(ctx.client.get(), server, first->session.get());
    ASSERT_TRUE(after_one.has_value()) << after_one.error().message();
    EXPECT_TRUE(after_one->info.resumed);

    clock_.advance(k_interval);  // two rotations: the ticket's key is gone
    auto after_two = connect(ctx.client.get(), server, first->session.get());
    ASSERT_TRUE(after_two.has_value()) << after_two.error().message();
    EXPECT_FALSE(after_two->info.resumed);  // a full handshake instead
    EXPECT_EQ(after_two->info.peer_signature, "mldsa65");
    EXPECT_EQ(after_two->info.peer_id, peers_.server.id);

    // The ticket issued after the first rotation is still good.
    auto fresh = connect(ctx.client.get(), server, after_one->session.get());
    ASSERT_TRUE(fresh.has_value()) << fresh.error().message();
    EXPECT_TRUE(fresh->info.resumed);
}

// What docs/tls.md says of reused tickets: OpenSSL issues a new ticket after
// a TLS 1.3 resumption only when it renews the one it decrypted.
std::string ticket_of(const SSL_SESSION* session) {
    const unsigned char* tick = nullptr;
    std::size_t len = 0;
    SSL_SESSION_get0_ticket(session, &tick, &len);
    return {reinterpret_cast<const char*>(tick), len};
}

TEST_F(Tickets, OnlyARenewedTicketIsReplacedOnResumption) {
    auto ctx = contexts();
    EchoServer server(ctx.server.get());
    auto first = connect(ctx.client.get(), server);
    ASSERT_TRUE(first.has_value()) << first.error().message();
    ASSERT_TRUE(first->session);
    const std::string issued = ticket_of(first->session.get());
    ASSERT_FALSE(issued.empty());

    auto again = connect(ctx.client.get(), server, first->session.get());
    ASSERT_TRUE(again.has_value()) << again.error().message();
    EXPECT_TRUE(again->info.resumed);
    ASSERT_TRUE(again->session);
    EXPECT_EQ(ticket_of(again->session.get()), issued);  // the same ticket, to use again

    clock_.advance(k_interval);  // its key is now the previous one: renewed
    auto renewed = connect(ctx.client.get(), server, first->session.get());
    ASSERT_TRUE(renewed.has_value()) << renewed.error().message();
    EXPECT_TRUE(renewed->info.resumed);
    ASSERT_TRUE(renewed->session);
    const std::string fresh = ticket_of(renewed->session.get());
    EXPECT_FALSE(fresh.empty());
    EXPECT_NE(fresh, issued);
}

TEST_F(Tickets, ALongPauseDropsEveryOldKey) {
    auto ctx = contexts();
    EchoServer server(ctx.server.get());
    auto first = connect(ctx.client.get(), server);
    ASSERT_TRUE(first.has_value()) << first.error().message();
    clock_.advance(3 * k_interval);  // no handshake in between
    auto later = connect(ctx.client.get(), server, first->session.get());
    ASSERT_TRUE(later.has_value()) << later.error().message();
    EXPECT_FALSE(later->info.resumed);
}

// RFC 8446 section 4.2.9: a client may offer psk_ke (resumption without a
// fresh key exchange); the server keeps forward secrecy by choosing
// psk_dhe_ke, so a resumed session still gets a new hybrid share.
TEST_F(Tickets, AClientOfferingPskKeStillGetsAHybridShare) {
    auto ctx = contexts();
    SSL_CTX_set_options(ctx.client.get(), SSL_OP_ALLOW_NO_DHE_KEX);
    EchoServer server(ctx.server.get());
    auto first = connect(ctx.client.get(), server);
    ASSERT_TRUE(first.has_value()) << first.error().message();
    ASSERT_TRUE(first->session);
    auto second = connect(ctx.client.get(), server, first->session.get());
    ASSERT_TRUE(second.has_value()) << second.error().message();
    EXPECT_TRUE(second->info.resumed);
    EXPECT_EQ(second->info.group, "X25519MLKEM768");
    EXPECT_TRUE(second->info.quantum_safe_group);
}

// With raw public keys the ticket carries the client's SubjectPublicKeyInfo
// (1,974 bytes for ML-DSA-65) where it carried its whole certificate (about
// 5.9 KB): OpenSSL's ticket holds the session's peer key, which the server
// needs for the peer id after resuming.
TEST_F(Tickets, TicketsOfPinnedPeersCarryTheKeyNotTheCertificate) {
    auto ctx = contexts();
    EchoServer server(ctx.server.get());
    auto first = connect(ctx.client.get(), server);
    ASSERT_TRUE(first.has_value()) << first.error().message();
    ASSERT_TRUE(first->session);
    EXPECT_EQ(first->info.certificate_type, "raw_public_key");
    const unsigned char* ticket = nullptr;
    std::size_t length = 0;
    SSL_SESSION_get0_ticket(first->session.get(), &ticket, &length);
    EXPECT_GT(length, 1974U);
    EXPECT_LT(length, 2600U);
}

TEST_F(Tickets, DisabledMeansNoResumption) {
    auto ctx = contexts(false);
    EchoServer server(ctx.server.get());
    auto first = connect(ctx.client.get(), server);
    ASSERT_TRUE(first.has_value()) << first.error().message();
    auto second = connect(ctx.client.get(), server, first->session.get());
    ASSERT_TRUE(second.has_value()) << second.error().message();
    EXPECT_FALSE(second->info.resumed);
}

// A ticket from one server context is useless at another (different keys).
TEST_F(Tickets, TicketFromAnotherServerIsNotAccepted) {
    auto ctx = contexts();
    auto other = contexts();
    EchoServer server(ctx.server.get());
    EchoServer other_server(other.server.get());
    auto first = connect(ctx.client.get(), server);
    ASSERT_TRUE(first.has_value()) << first.error().message();
    auto elsewhere = connect(ctx.client.get(), other_server, first->session.get());
    ASSERT_TRUE(elsewhere.has_value()) << elsewhere.error().message();
    EXPECT_FALSE(elsewhere->info.resumed);
}

// Replicas with the same ticket secret (cluster.ticket_keys) resume each
// other's tickets; a replica with another secret does not.
TEST_F(Tickets, SharedSecretResumesOnAnotherReplica) {
    auto a = contexts(true, secret('a'));
    auto b = contexts(true, secret('a'));
    auto c = contexts(true, secret('c'));
    EchoServer replica_a(a.server.get());
    EchoServer replica_b(b.server.get());
    EchoServer replica_c(c.server.get());
    auto first = connect(a.client.get(), replica_a);
    ASSERT_TRUE(first.has_value()) << first.error().message();
    EXPECT_FALSE(first->info.resumed);
    auto on_b = connect(a.client.get(), replica_b, first->session.get());
    ASSERT_TRUE(on_b.has_value()) << on_b.error().message();
    EXPECT_TRUE(on_b->info.resumed);
    EXPECT_EQ(on_b->info.group, "X25519MLKEM768");
    const auto events = replica_b.wait_for_events(1);
    ASSERT_EQ(events.size(), 1U);
    ASSERT_TRUE(events[0].result.has_value()) << events[0].result.error().message();
    EXPECT_EQ(events[0].result->peer_id, peers_.client.id);  // the client, as A saw it
    auto on_c = connect(a.client.get(), replica_c, first->session.get());
    ASSERT_TRUE(on_c.has_value()) << on_c.error().message();
    EXPECT_FALSE(on_c->info.resumed);
}

}  // namespace
}  // namespace pqmcp::tls
