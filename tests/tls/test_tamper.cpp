// A man in the middle flips bits in the handshake: it must fail quickly and
// clearly on both sides. And a ClientHello split into one-byte TCP segments
// must still work.
#include <atomic>

#include <gtest/gtest.h>

#include "helpers.hpp"
#include "pqmcp/tls/client.hpp"
#include "relay.hpp"

namespace pqmcp::tls {
namespace {

using crypto::SigAlg;
using test::Direction;
using test::EchoServer;
using test::Relay;

constexpr std::uint8_t k_handshake = 22;
constexpr std::uint8_t k_application_data = 23;
constexpr std::uint8_t k_server_hello = 2;
constexpr std::uint16_t k_key_share = 0x0033;
constexpr std::uint16_t k_x25519mlkem768 = 0x11EC;
// draft-ietf-tls-ecdhe-mlkem: the X25519MLKEM768 server share is the ML-KEM-768
// ciphertext (1088 bytes) followed by the X25519 share (32 bytes).
constexpr std::size_t k_mlkem768_ciphertext = 1088;
constexpr std::chrono::milliseconds k_handshake_timeout{5'000};

std::uint16_t be16(const std::vector<std::uint8_t>& b, std::size_t at) {
    return static_cast<std::uint16_t>((b.at(at) << 8) | b.at(at + 1));
}

// Finds the key_share extension's key_exchange in a ServerHello record;
// returns {offset, length, group} or length 0.
struct Share {
    std::size_t offset = 0;
    std::size_t length = 0;
    std::uint16_t group = 0;
};
Share find_server_share(const std::vector<std::uint8_t>& record) {
    if (record.size() < 9 || record[0] != k_handshake || record[5] != k_server_hello) {
        return {};
    }
    std::size_t at = 9 + 2 + 32;  // record + handshake headers, version, random
    at += 1U + record.at(at);     // legacy_session_id_echo
    at += 2 + 1;                  // cipher_suite, legacy_compression_method
    const std::size_t end = at + 2U + be16(record, at);
    at += 2;
    while (at + 4 <= end) {
        const std::uint16_t type = be16(record, at);
        const std::uint16_t len = be16(record, at + 2);
        if (type == k_key_share) {
            return {at + 8U, be16(record, at + 6), be16(record, at + 4)};
        }
        at += 4U + len;
    }
    return {};
}

class Tamper : public ::testing::Test {
  protected:
    test::Peers peers_{test::make_identity(SigAlg::ml_dsa_65),
                       test::make_identity(SigAlg::ml_dsa_65)};
    test::ContextPair ctx_ = test::make_pair(ProfileId::pq_hybrid, peers_);

    // Runs one handshake through a relay with `hook`; checks that both sides
    // fail well within the handshake timeout with an error naming `expect`.
    void expect_both_sides_fail(const Relay::Hook& hook, const std::atomic<bool>& tampered,
                                std::string_view expect) {
        EchoServer server(ctx_.server.get(), k_handshake_timeout);
        Relay relay({server.port(), hook, false, std::chrono::milliseconds{20'000}});
        auto options = test::with_payload();
        options.timeout = k_handshake_timeout;
        const auto start = std::chrono::steady_clock::now();
        auto result = connect_once(ctx_.client.get(), "127.0.0.1", relay.port(), options);
        const auto events = server.wait_for_events(1);
        const auto elapsed = std::chrono::steady_clock::now() - start;
        relay.join();

        ASSERT_TRUE(tampered.load()) << "the relay did not find what to tamper with";
        ASSERT_FALSE(result.has_value());
        EXPECT_EQ(result.error().code, Errc::handshake_failed) << result.error().message();
        EXPECT_NE(result.error().detail.find(expect), std::string::npos)
            << result.error().message();
        ASSERT_EQ(events.size(), 1U);
        ASSERT_FALSE(events[0].result.has_value());
        EXPECT_EQ(events[0].result.error().code, Errc::handshake_failed)
            << events[0].result.error().message();
        // The server learns of the failure from the client's alert, but the
        // client closes right after sending it while the server's flight is
        // still unread; the kernel then answers with a RST, which can discard
        // the alert before the relay reads it. The server's error is then the
        // truncated stream: still a prompt, clear handshake failure.
        const std::string& server_detail = events[0].result.error().detail;
        EXPECT_TRUE(server_detail.find(expect) != std::string::npos ||
                    server_detail.find("stream truncated") != std::string::npos ||
                    server_detail.find("reset by peer") != std::string::npos)
            << events[0].result.error().message();
        // Not a timeout: the failure is detected, not waited out.
        EXPECT_LT(elapsed, k_handshake_timeout / 2);
    }
};

// (a) One bit of the ML-KEM ciphertext in the server's key_share: ML-KEM's
// implicit rejection gives the client a different shared secret, so the first
// encrypted record does not authenticate.
TEST_F(Tamper, FlippedBitInMlKemCiphertextOfServerHello) {
    std::atomic<bool> tampered{false};
    std::atomic<std::size_t> share_length{0};
    std::atomic<std::uint16_t> share_group{0};
    const auto hook = [&](Direction d, std::size_t, std::vector<std::uint8_t>& record) {
        if (d != Direction::server_to_client || tampered) {
            return;
        }
        const Share share = find_server_share(record);
        if (share.length == 0) {
            return;
        }
        share_group = share.group;
        share_length = share.length;
        record.at(share.offset + k_mlkem768_ciphertext / 2) ^= 0x10;
        tampered = true;
    };
    expect_both_sides_fail(hook, tampered, "bad record mac");
    EXPECT_EQ(share_group.load(), k_x25519mlkem768);
    EXPECT_EQ(share_length.load(), k_mlkem768_ciphertext + 32);
}

// (b) One bit of the encrypted record carrying the server's Certificate (its
// ML-DSA-65 raw public key, about 2 kB) or its CertificateVerify (the ML-DSA-65
// signature): the AEAD tag fails. OpenSSL writes each handshake message of the
// flight in its own record, so the records are told apart by size.
struct RecordWindow {
    const char* name;
    std::size_t min_size;
    std::size_t max_size;
};

// CertificateVerify: record header 5 + handshake header 4 + scheme 2 + length 2
// + ML-DSA-65 signature 3309 + inner content type 1 + AES-256-GCM tag 16.
constexpr std::size_t k_certificate_verify_record = 5 + 4 + 2 + 2 + 3309 + 1 + 16;

class TamperEncrypted : public Tamper, public ::testing::WithParamInterface<RecordWindow> {};

TEST_P(TamperEncrypted, FlippedBitInEncryptedHandshakeRecord) {
    const RecordWindow window = GetParam();
    std::atomic<bool> tampered{false};
    std::atomic<std::size_t> tampered_size{0};
    const auto hook = [&](Direction d, std::size_t, std::vector<std::uint8_t>& record) {
        if (d != Direction::server_to_client || tampered || record[0] != k_application_data ||
            record.size() < window.min_size || record.size() > window.max_size) {
            return;
        }
        tampered_size = record.size();
        record.at(record.size() / 2) ^= 0x01;
        tampered = true;
    };
    expect_both_sides_fail(hook, tampered, "bad record mac");
    EXPECT_GE(tampered_size.load(), window.min_size);
    EXPECT_LE(tampered_size.load(), window.max_size);
}

INSTANTIATE_TEST_SUITE_P(CertificateAndCertificateVerify, TamperEncrypted,
                         // (Pinned peers: the Certificate message carries the
                         // server's raw public key, RFC 7250: 1,952 bytes of ML-DSA-65
                         // key in its SubjectPublicKeyInfo.)
                         ::testing::Values(RecordWindow{"Certificate", 1'950, 2'600},
                                           RecordWindow{"CertificateVerify",
                                                        k_certificate_verify_record,
                                                        k_certificate_verify_record}),
                         [](const auto& tp) { return std::string(tp.param.name); });

// A hybrid ClientHello is larger than one typical TCP segment's worth of
// payload; delivered one byte per segment it must still be reassembled.
TEST(Fragmentation, ClientHelloOneBytePerSegment) {
    const test::Peers peers{test::make_identity(SigAlg::ml_dsa_65),
                            test::make_identity(SigAlg::ml_dsa_65)};
    auto ctx = test::make_pair(ProfileId::pq_hybrid, peers);
    EchoServer server(ctx.server.get(), k_handshake_timeout);
    Relay relay({server.port(), {}, true, std::chrono::milliseconds{20'000}});
    auto options = test::with_payload();
    options.timeout = std::chrono::milliseconds{15'000};
    auto result = connect_once(ctx.client.get(), "127.0.0.1", relay.port(), options);
    relay.join();
    ASSERT_TRUE(result.has_value()) << result.error().message();
    EXPECT_EQ(result->info.group, "X25519MLKEM768");
    EXPECT_EQ(result->reply, "hello, quantum world");
    // X25519MLKEM768 key share alone is 1216 bytes.
    EXPECT_GT(relay.first_client_record_size(), 1200U);
    EXPECT_EQ(relay.first_client_record_writes(), relay.first_client_record_size());
}

}  // namespace
}  // namespace pqmcp::tls
