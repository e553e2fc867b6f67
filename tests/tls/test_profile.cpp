// Profiles: parsing, golden snapshots, and what the context builder refuses.
#include <cstdlib>
#include <fstream>
#include <sstream>

#include <gtest/gtest.h>
#include <boost/json/parse.hpp>

#include "helpers.hpp"
#include "pqmcp/tls/context.hpp"
#include "pqmcp/tls/handshake_info.hpp"
#include "pqmcp/tls/probe.hpp"
#include "pqmcp/tls/profile.hpp"
#include "test_paths.hpp"

namespace pqmcp::tls {
namespace {

using crypto::SigAlg;

std::string read_file(const std::filesystem::path& file) {
    std::ifstream in(file, std::ios::binary);
    std::ostringstream out;
    out << in.rdbuf();
    return out.str();
}

TEST(Profile, ParsesEachNameAndRejectsOthers) {
    for (const auto& p : all_profiles()) {
        auto parsed = parse_profile(p.name);
        ASSERT_TRUE(parsed.has_value()) << p.name;
        EXPECT_EQ((*parsed)->id, p.id);
    }
    for (const char* bad : {"", "PQ-HYBRID", "pq_hybrid", "hybrid", "classical "}) {
        auto parsed = parse_profile(bad);
        ASSERT_FALSE(parsed.has_value()) << bad;
        EXPECT_EQ(parsed.error().code, Errc::unknown_profile);
        EXPECT_NE(parsed.error().detail.find("pq-hybrid"), std::string::npos);
    }
    EXPECT_EQ(profile(k_default_profile).name, "pq-hybrid");
    EXPECT_FALSE(profile(ProfileId::pq_hybrid).classical);
    EXPECT_FALSE(profile(ProfileId::pq_strict).classical);
    EXPECT_TRUE(profile(ProfileId::classical).classical);
}

TEST(Profile, PostQuantumProfilesOfferNoClassicalOnlyGroup) {
    for (const auto& p : all_profiles()) {
        std::string groups(p.groups);
        std::stringstream in(groups);
        for (std::string g; std::getline(in, g, ':');) {
            EXPECT_EQ(is_post_quantum_group(g), !p.classical) << p.name << ": " << g;
        }
    }
}

// s2n-style snapshot: any change of a profile shows up as a diff here.
TEST(Profile, GoldenSnapshots) {
    const bool update = std::getenv("PQMCP_UPDATE_GOLDEN") != nullptr;
    for (const auto& p : all_profiles()) {
        const auto file = std::filesystem::path(pqmcp::test_paths::test_data_dir()) / "profiles" /
                          (std::string(p.name) + ".txt");
        const std::string actual = describe(p);
        EXPECT_EQ(actual.find("error:"), std::string::npos) << actual;
        if (update) {
            std::ofstream(file, std::ios::binary) << actual;
            continue;
        }
        EXPECT_EQ(read_file(file), actual)
            << "profile " << p.name << " differs from " << file
            << ". A profile is immutable: if the change is intended, give it a new date (or "
               "name), then regenerate with PQMCP_UPDATE_GOLDEN=1 test_tls "
               "--gtest_filter=Profile.GoldenSnapshots and review the diff.";
    }
}

TEST(Profile, AvailableGroupsIncludeHybridsAndClassical) {
    const auto groups = available_groups();
    for (const char* g : {"X25519MLKEM768", "SecP256r1MLKEM768", "SecP384r1MLKEM1024", "MLKEM512",
                          "MLKEM768", "MLKEM1024", "x25519", "secp256r1"}) {
        EXPECT_NE(std::find(groups.begin(), groups.end(), g), groups.end()) << g;
    }
}

class ContextOptionsTest : public ::testing::Test {
  protected:
    identity::Identity mldsa65_ = test::make_identity(SigAlg::ml_dsa_65);
    identity::Identity mldsa87_ = test::make_identity(SigAlg::ml_dsa_87);
    identity::Identity ed25519_ = test::make_identity(SigAlg::ed25519);
    identity::Identity p256_ = test::make_identity(SigAlg::ecdsa_p256);
};

void expect_invalid(const Result<crypto::SslCtxPtr>& r, std::string_view mention) {
    ASSERT_FALSE(r.has_value());
    EXPECT_EQ(r.error().code, Errc::invalid_options);
    EXPECT_NE(r.error().detail.find(mention), std::string::npos) << r.error().message();
}

TEST_F(ContextOptionsTest, ServerNeedsAnIdentity) {
    ContextOptions o;
    o.verify.require_peer_certificate = false;
    expect_invalid(make_server_context(o), "identity");
}

TEST_F(ContextOptionsTest, IdentityAlgorithmMustBelongToTheProfile) {
    ContextOptions o;
    o.verify.require_peer_certificate = false;
    o.profile = ProfileId::pq_strict;
    o.identity = &mldsa65_;
    expect_invalid(make_server_context(o), "ml-dsa-65");
    o.identity = &mldsa87_;
    EXPECT_TRUE(make_server_context(o).has_value());

    o.profile = ProfileId::pq_hybrid;
    o.identity = &ed25519_;
    expect_invalid(make_server_context(o), "ed25519");

    o.profile = ProfileId::classical;
    o.identity = &mldsa65_;
    expect_invalid(make_server_context(o), "ml-dsa-65");
    o.identity = &ed25519_;
    EXPECT_TRUE(make_server_context(o).has_value());
}

TEST_F(ContextOptionsTest, VerifyingSideNeedsATrustAnchor) {
    ContextOptions o;
    o.identity = &mldsa65_;
    expect_invalid(make_client_context(o), "pin");
    expect_invalid(make_server_context(o), "pin");  // mutual TLS by default
    o.verify.pinned = {mldsa87_.id};
    EXPECT_TRUE(make_client_context(o).has_value());
    // A client without an identity (server authentication only) is fine.
    o.identity = nullptr;
    EXPECT_TRUE(make_client_context(o).has_value());
}

TEST_F(ContextOptionsTest, BrowserCertificateOnlyOnPqHybridServersAndOnlyP256) {
    ContextOptions o;
    o.identity = &mldsa65_;
    o.verify.require_peer_certificate = false;
    o.browser_certificate = {p256_.certificate.get(), p256_.key.get()};
    EXPECT_TRUE(make_server_context(o).has_value());

    o.browser_certificate = {ed25519_.certificate.get(), ed25519_.key.get()};
    expect_invalid(make_server_context(o), "P-256");

    o.browser_certificate = {p256_.certificate.get(), p256_.key.get()};
    o.verify.pinned = {mldsa87_.id};
    expect_invalid(make_client_context(o), "servers only");

    o.profile = ProfileId::pq_strict;
    o.identity = &mldsa87_;
    expect_invalid(make_server_context(o), "browser");
}

TEST_F(ContextOptionsTest, MissingCaFileIsAContextError) {
    ContextOptions o;
    o.identity = &mldsa65_;
    o.verify.ca_file = "/nonexistent/ca.pem";
    o.verify.ca_host = "localhost";
    auto r = make_client_context(o);
    ASSERT_FALSE(r.has_value());
    EXPECT_EQ(r.error().code, Errc::context_failed);
    EXPECT_NE(r.error().detail.find("/nonexistent/ca.pem"), std::string::npos);
}

TEST_F(ContextOptionsTest, ClientTrustingACaMustNameTheServer) {
    ContextOptions o;
    o.identity = &mldsa65_;
    o.verify.ca_file = "/nonexistent/ca.pem";
    auto r = make_client_context(o);
    ASSERT_FALSE(r.has_value());
    EXPECT_EQ(r.error().code, Errc::invalid_options);
    EXPECT_NE(r.error().detail.find("ca_host"), std::string::npos) << r.error().detail;
}

TEST(HandshakeInfo, JsonHasEveryField) {
    HandshakeInfo info;
    info.protocol = "TLSv1.3";
    info.cipher = "TLS_AES_256_GCM_SHA384";
    info.group = "X25519MLKEM768";
    info.peer_signature = "mldsa65";
    info.resumed = true;
    info.bytes_sent = 1234;
    const auto v = boost::json::parse(info.to_json());
    const auto& o = v.as_object();
    EXPECT_EQ(o.at("group").as_string(), "X25519MLKEM768");
    EXPECT_EQ(o.at("peer_signature").as_string(), "mldsa65");
    EXPECT_TRUE(o.at("peer_id").is_null());
    EXPECT_TRUE(o.at("resumed").as_bool());
    EXPECT_EQ(o.at("bytes_sent").to_number<std::uint64_t>(), 1234U);
    for (const char* key : {"protocol", "cipher", "own_signature", "peer_certificate_key",
                            "peer_name", "quantum_safe_group", "bytes_received"}) {
        EXPECT_TRUE(o.contains(key)) << key;
    }
}

}  // namespace
}  // namespace pqmcp::tls
