// Interop with OpenSSL 3.5's own tools (PQMCP_OPENSSL_BIN, the bootstrap prefix):
//  - openssl s_client against the project's TLS echo server (in process);
//  - probe() against openssl s_server with different group lists.
#include <filesystem>
#include <regex>

#include <gtest/gtest.h>

#include "child_process.hpp"
#include "helpers.hpp"
#include "pqmcp/tls/probe.hpp"

namespace pqmcp::tls {
namespace {

namespace fs = std::filesystem;
using crypto::SigAlg;
using pqmcp::test::ChildProcess;

constexpr auto k_timeout = std::chrono::milliseconds{15'000};
const std::string k_openssl = PQMCP_OPENSSL_BIN;

// Runs `openssl args...` to completion; returns its output (fails the test on
// a non-zero exit).
std::string openssl(std::vector<std::string> args) {
    args.insert(args.begin(), k_openssl);
    ChildProcess child(args);
    child.close_stdin();
    const auto status = child.wait(k_timeout);
    EXPECT_EQ(status, 0) << child.output();
    return child.output();
}

// A self-signed certificate and key made by the openssl CLI itself.
void openssl_keypair(const fs::path& dir, const std::string& algorithm, const std::string& cn) {
    std::vector<std::string> args{"req",     "-x509",
                                  "-newkey", algorithm,
                                  "-keyout", (dir / "key.pem").string(),
                                  "-out",    (dir / "cert.pem").string(),
                                  "-subj",   "/CN=" + cn,
                                  "-days",   "2",
                                  "-nodes"};
    if (algorithm == "ec") {
        args.insert(args.begin() + 4, {"-pkeyopt", "ec_paramgen_curve:P-256"});
    }
    (void)openssl(args);
}

TEST(Interop, OpensslRunsAndHasTheHybridGroups) {
    const auto version = openssl({"version"});
    EXPECT_NE(version.find("OpenSSL 3.5"), std::string::npos) << version;
    const auto groups = openssl({"list", "-tls1_3", "-tls-groups"});
    EXPECT_NE(groups.find("X25519MLKEM768"), std::string::npos) << groups;
}

class SClient : public ::testing::Test {
  protected:
    test::TempDir dir_;
    identity::Identity server_id_ = test::make_identity(SigAlg::ml_dsa_65);
    fs::path server_cert_ = dir_.path() / "server" / std::string(identity::k_cert_file);

    void SetUp() override {
        auto saved = identity::save(server_id_, dir_.path() / "server", false);
        ASSERT_TRUE(saved.has_value()) << saved.error().message();
    }

    crypto::SslCtxPtr server_context(std::optional<identity::PeerId> client) {
        ContextOptions o;
        o.identity = &server_id_;
        o.verify.require_peer_certificate = client.has_value();
        if (client) {
            o.verify.pinned = {*client};
        }
        auto ctx = make_server_context(o);
        EXPECT_TRUE(ctx.has_value()) << ctx.error().message();
        return ctx ? std::move(*ctx) : nullptr;
    }

    // An ML-DSA-65 key pair made by the openssl CLI for s_client (client/cert.pem,
    // client/key.pem) and the peer id pqmcp computes for it.
    fs::path client_dir_ = dir_.path() / "client";
    identity::PeerId openssl_client() {
        fs::create_directories(client_dir_);
        openssl_keypair(client_dir_, "mldsa65", "s_client");
        auto id = identity::peer_id_of_path(client_dir_ / "cert.pem");
        EXPECT_TRUE(id.has_value()) << id.error().message();
        return id ? *id : server_id_.id;
    }
    // s_client's arguments with that key pair as its identity.
    std::vector<std::string> s_client_with_key(std::uint16_t port, bool verify = true) {
        auto args = s_client(port, "X25519MLKEM768");
        if (!verify) {
            args.pop_back();  // -verify_return_error: s_client cannot trust a bare key
        }
        args.insert(args.end(), {"-cert", (client_dir_ / "cert.pem").string(), "-key",
                                 (client_dir_ / "key.pem").string()});
        return args;
    }

    std::vector<std::string> s_client(std::uint16_t port, const std::string& groups) {
        return {k_openssl,
                "s_client",
                "-connect",
                "127.0.0.1:" + std::to_string(port),
                "-groups",
                groups,
                "-CAfile",
                server_cert_.string(),
                "-verify_return_error"};
    }
};

// (a) s_client offering X25519MLKEM768 verifies our ML-DSA-65 certificate
// (given as its CA file) and exchanges data.
TEST_F(SClient, NegotiatesX25519MLKEM768AndVerifiesMlDsa65) {
    auto ctx = server_context(std::nullopt);
    test::EchoServer server(ctx.get());
    ChildProcess client(s_client(server.port(), "X25519MLKEM768"));
    ASSERT_TRUE(client.wait_for_text("Verify return code", k_timeout)) << client.output();
    ASSERT_TRUE(client.write_stdin("ping from s_client\n"));
    EXPECT_TRUE(client.wait_for_output(
        [](const std::string& out) {
            // The echo comes back after s_client's session summary.
            const auto summary = out.find("Verify return code");
            return summary != std::string::npos &&
                   out.find("ping from s_client", summary) != std::string::npos;
        },
        k_timeout))
        << client.output();
    client.close_stdin();
    (void)client.wait(k_timeout);
    const std::string& out = client.output();
    EXPECT_NE(out.find("Negotiated TLS1.3 group: X25519MLKEM768"), std::string::npos) << out;
    EXPECT_NE(out.find("Peer signature type: mldsa65"), std::string::npos) << out;
    EXPECT_NE(out.find("Verification: OK"), std::string::npos) << out;
    EXPECT_NE(out.find("Verify return code: 0 (ok)"), std::string::npos) << out;
    EXPECT_NE(out.find("Cipher is TLS_AES_256_GCM_SHA384"), std::string::npos) << out;

    const auto events = server.wait_for_events(1);
    ASSERT_EQ(events.size(), 1U);
    ASSERT_TRUE(events[0].result.has_value()) << events[0].result.error().message();
    EXPECT_EQ(events[0].result->group, "X25519MLKEM768");
    EXPECT_EQ(events[0].result->own_signature, "mldsa65");
    EXPECT_FALSE(events[0].result->peer_id.has_value());
}

// Mutual TLS with a client certificate made by the openssl CLI: the server
// pins its peer id (computed by pqmcp from the same certificate).
TEST_F(SClient, MutualTlsWithOpensslMadeMlDsaCertificate) {
    const auto client_id = openssl_client();

    auto ctx = server_context(client_id);
    test::EchoServer server(ctx.get());
    ChildProcess client(s_client_with_key(server.port()));
    ASSERT_TRUE(client.wait_for_text("Verify return code", k_timeout)) << client.output();
    ASSERT_TRUE(client.write_stdin("mutual\n"));
    EXPECT_TRUE(client.wait_for_output(
        [](const std::string& out) {
            const auto summary = out.find("Verify return code");
            return summary != std::string::npos && out.find("mutual", summary) != std::string::npos;
        },
        k_timeout))
        << client.output();
    client.close_stdin();
    (void)client.wait(k_timeout);

    const auto events = server.wait_for_events(1);
    ASSERT_EQ(events.size(), 1U);
    ASSERT_TRUE(events[0].result.has_value()) << events[0].result.error().message();
    EXPECT_EQ(events[0].result->peer_id, client_id);
    EXPECT_EQ(events[0].result->peer_signature, "mldsa65");
    EXPECT_EQ(events[0].result->peer_certificate_key, "ML-DSA-65");
}

// RFC 7250 both ways: s_client asks for the server's raw public key and
// sends its own; pqmcp identifies it by the key alone (pinned), and the
// handshake is smaller by a certificate each way.
TEST_F(SClient, RawPublicKeysBothWays) {
    const auto client_id = openssl_client();
    auto ctx = server_context(client_id);
    test::EchoServer server(ctx.get());
    const auto run = [&](std::vector<std::string> extra) {
        auto args = s_client_with_key(server.port(), false);
        args.insert(args.end(), extra.begin(), extra.end());
        ChildProcess client(args);
        EXPECT_TRUE(client.wait_for_text("Verify return code", k_timeout)) << client.output();
        client.close_stdin();
        (void)client.wait(k_timeout);
        return client.output();
    };
    const std::string rpk = run({"-enable_server_rpk", "-enable_client_rpk"});
    EXPECT_NE(rpk.find("Server-to-client raw public key negotiated"), std::string::npos) << rpk;
    EXPECT_NE(rpk.find("Client-to-server raw public key negotiated"), std::string::npos) << rpk;
    EXPECT_NE(rpk.find("Negotiated TLS1.3 group: X25519MLKEM768"), std::string::npos) << rpk;
    const std::string x509 = run({});
    EXPECT_EQ(x509.find("raw public key negotiated"), std::string::npos) << x509;

    const auto events = server.wait_for_events(2);
    ASSERT_EQ(events.size(), 2U);
    ASSERT_TRUE(events[0].result.has_value()) << events[0].result.error().message();
    ASSERT_TRUE(events[1].result.has_value()) << events[1].result.error().message();
    EXPECT_EQ(events[0].result->certificate_type, "raw_public_key");
    EXPECT_EQ(events[0].result->peer_id, client_id);
    EXPECT_EQ(events[0].result->peer_certificate_key, "ML-DSA-65");
    EXPECT_TRUE(events[0].result->peer_verified);
    EXPECT_EQ(events[1].result->certificate_type, "x509");
    EXPECT_EQ(events[1].result->peer_id, client_id);
    // Without the two certificates (their wrapping and self-signatures) on the wire.
    EXPECT_LT(events[0].result->bytes_sent + events[0].result->bytes_received + 6'000,
              events[1].result->bytes_sent + events[1].result->bytes_received);
}

// A raw public key that is not pinned is refused like a certificate.
TEST_F(SClient, UnpinnedRawPublicKeyIsRefused) {
    (void)openssl_client();
    auto ctx = server_context(server_id_.id);  // pins someone else
    test::EchoServer server(ctx.get());
    auto args = s_client_with_key(server.port(), false);
    args.insert(args.end(), {"-enable_server_rpk", "-enable_client_rpk"});
    ChildProcess client(args);
    client.close_stdin();
    (void)client.wait(k_timeout);
    const auto events = server.wait_for_events(1);
    ASSERT_EQ(events.size(), 1U);
    ASSERT_FALSE(events[0].result.has_value());
    EXPECT_NE(events[0].result.error().message().find("is not pinned"), std::string::npos)
        << events[0].result.error().message();
}

// s_client offering only X25519 is refused with a handshake_failure alert.
TEST_F(SClient, ClassicalOnlyClientIsRefused) {
    auto ctx = server_context(std::nullopt);
    test::EchoServer server(ctx.get());
    ChildProcess client(s_client(server.port(), "X25519"));
    client.close_stdin();
    const auto status = client.wait(k_timeout);
    EXPECT_NE(status, 0);
    EXPECT_NE(client.output().find("alert handshake failure"), std::string::npos)
        << client.output();
    const auto events = server.wait_for_events(1);
    ASSERT_EQ(events.size(), 1U);
    ASSERT_FALSE(events[0].result.has_value());
    EXPECT_EQ(events[0].result.error().code, Errc::handshake_failed);
}

// (b) probe() against openssl s_server with an openssl-made certificate.
class SServer : public ::testing::Test {
  protected:
    test::TempDir dir_;

    // Starts s_server on an ephemeral port and returns it (0 on failure).
    std::uint16_t start(ChildProcess& server) {
        EXPECT_TRUE(server.wait_for_output(
            [](const std::string& out) {
                return out.find("ACCEPT") != std::string::npos &&
                       out.find('\n', out.find("ACCEPT")) != std::string::npos;
            },
            k_timeout))
            << server.output();
        std::smatch m;
        static const std::regex accept(R"(ACCEPT [^\n]*:(\d+)\n)");
        if (!std::regex_search(server.output(), m, accept)) {
            return 0;
        }
        return static_cast<std::uint16_t>(std::stoi(m[1].str()));
    }

    std::vector<std::string> s_server(const std::string& groups) {
        // stdin stays open: s_server quits when it reads EOF there.
        return {k_openssl, "s_server",
                "-accept", "127.0.0.1:0",
                "-cert",   (dir_.path() / "cert.pem").string(),
                "-key",    (dir_.path() / "key.pem").string(),
                "-groups", groups};
    }

    Result<ProbeReport> probe_s_server(const std::string& groups) {
        ChildProcess server(s_server(groups));
        const std::uint16_t port = start(server);
        if (port == 0) {
            return fail(Errc::connect_failed, "s_server did not start: " + server.output());
        }
        return probe("127.0.0.1", port, std::chrono::milliseconds{10'000});
    }
};

TEST_F(SServer, HybridOnlyIsQuantumSafe) {
    openssl_keypair(dir_.path(), "mldsa65", "localhost");
    auto report = probe_s_server("X25519MLKEM768");
    ASSERT_TRUE(report.has_value()) << report.error().message();
    EXPECT_EQ(report->group, "X25519MLKEM768");
    EXPECT_EQ(report->signature, "mldsa65");
    EXPECT_EQ(report->certificate_key, "ML-DSA-65");
    EXPECT_EQ(report->protocol, "TLSv1.3");
    EXPECT_FALSE(report->accepts_classical);
    EXPECT_EQ(report->verdict, Verdict::quantum_safe);
    EXPECT_NE(report->to_json().find(R"("verdict":"quantum-safe")"), std::string::npos);
}

TEST_F(SServer, HybridPlusX25519IsHybridOptional) {
    openssl_keypair(dir_.path(), "mldsa65", "localhost");
    auto report = probe_s_server("X25519MLKEM768:X25519");
    ASSERT_TRUE(report.has_value()) << report.error().message();
    EXPECT_EQ(report->group, "X25519MLKEM768");
    EXPECT_TRUE(report->accepts_classical);
    EXPECT_EQ(report->classical_group, "x25519");
    EXPECT_EQ(report->verdict, Verdict::hybrid_optional);
    EXPECT_NE(report->to_json().find(R"("verdict":"hybrid-optional")"), std::string::npos);
}

TEST_F(SServer, X25519OnlyIsClassical) {
    openssl_keypair(dir_.path(), "mldsa65", "localhost");
    auto report = probe_s_server("X25519");
    ASSERT_TRUE(report.has_value()) << report.error().message();
    EXPECT_EQ(report->group, "x25519");
    EXPECT_EQ(report->signature, "mldsa65");
    EXPECT_TRUE(report->accepts_classical);
    EXPECT_EQ(report->verdict, Verdict::classical);
    EXPECT_NE(report->to_json().find(R"("verdict":"classical")"), std::string::npos);
}

// pqmcp as the client of s_server -enable_server_rpk: it asks for the bare
// key, pins it by its peer id, and is refused for a wrong pin.
TEST_F(SServer, PinnedServerRawPublicKey) {
    openssl_keypair(dir_.path(), "mldsa65", "localhost");
    auto server_id = identity::peer_id_of_path(dir_.path() / "cert.pem");
    ASSERT_TRUE(server_id.has_value()) << server_id.error().message();
    auto args = s_server("X25519MLKEM768");
    args.emplace_back("-enable_server_rpk");
    ChildProcess server(args);
    const std::uint16_t port = start(server);
    ASSERT_NE(port, 0) << server.output();
    const auto connect = [&](const identity::PeerId& pin) {
        ContextOptions o;
        o.verify.pinned = {pin};
        auto ctx = make_client_context(o);
        EXPECT_TRUE(ctx.has_value()) << ctx.error().message();
        ClientOptions c;
        c.timeout = std::chrono::milliseconds{10'000};
        return connect_once(ctx->get(), "127.0.0.1", port, c);
    };
    auto ok = connect(*server_id);
    ASSERT_TRUE(ok.has_value()) << ok.error().message();
    EXPECT_EQ(ok->info.certificate_type, "raw_public_key");
    EXPECT_EQ(ok->info.peer_id, *server_id);
    EXPECT_EQ(ok->info.group, "X25519MLKEM768");
    const identity::Identity other = test::make_identity(SigAlg::ml_dsa_65);
    auto refused = connect(other.id);
    ASSERT_FALSE(refused.has_value());
    EXPECT_EQ(refused.error().code, Errc::peer_rejected) << refused.error().message();
}

// The certificate key type is reported whatever the key exchange.
TEST_F(SServer, EcdsaCertificateBehindHybridGroup) {
    openssl_keypair(dir_.path(), "ec", "localhost");
    auto report = probe_s_server("X25519MLKEM768");
    ASSERT_TRUE(report.has_value()) << report.error().message();
    EXPECT_EQ(report->certificate_key, "EC P-256");
    EXPECT_EQ(report->signature, "ecdsa_secp256r1_sha256");
    EXPECT_EQ(report->verdict, Verdict::quantum_safe);
}

}  // namespace
}  // namespace pqmcp::tls
