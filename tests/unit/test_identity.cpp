#include <sys/stat.h>

#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>
#include <openssl/pem.h>

#include "pqmcp/crypto/signature.hpp"
#include "pqmcp/identity/identity.hpp"
#include "pqmcp/identity/known_peers.hpp"

namespace pqmcp::identity {
namespace {
namespace fs = std::filesystem;

class TempDir {
  public:
    TempDir() {
        std::string templ = (fs::temp_directory_path() / "pqmcp-test-XXXXXX").string();
        path_ = ::mkdtemp(templ.data());
    }
    ~TempDir() {
        std::error_code ec;
        fs::remove_all(path_, ec);
    }
    TempDir(const TempDir&) = delete;
    TempDir& operator=(const TempDir&) = delete;
    TempDir(TempDir&&) = delete;
    TempDir& operator=(TempDir&&) = delete;
    [[nodiscard]] const fs::path& path() const { return path_; }

  private:
    fs::path path_;
};

TEST(PeerId, ParseNormalisesAndRejects) {
    const std::string body(52, 'a');
    auto id = PeerId::parse("PQ1" + std::string(51, 'A') + "A");
    ASSERT_TRUE(id.has_value()) << id.error().message();
    EXPECT_EQ(id->str(), "pq1" + body);
    EXPECT_EQ(id->short_form(), "pq1" + std::string(12, 'a'));

    for (const std::string& bad :
         {std::string("pq1"), "pq1" + body + "a", "xx1" + body, "pq1" + std::string(51, 'a') + "1",
          // the last character carries 4 padding bits that must be zero
          "pq1" + std::string(51, 'a') + "b"}) {
        auto r = PeerId::parse(bad);
        ASSERT_FALSE(r.has_value()) << bad;
        EXPECT_EQ(r.error().code, Errc::invalid_peer_id);
    }
}

TEST(Identity, KeygenSaveLoadAndPeerIdAreStable) {
    for (const auto alg :
         {crypto::SigAlg::ml_dsa_44, crypto::SigAlg::ml_dsa_65, crypto::SigAlg::ml_dsa_87}) {
        TempDir dir;
        KeygenOptions options;
        options.algorithm = alg;
        options.names = {"localhost", "127.0.0.1"};
        auto id = generate(options);
        ASSERT_TRUE(id.has_value()) << id.error().message();
        EXPECT_TRUE(id->id.str().starts_with("pq1"));
        EXPECT_EQ(id->id.str().size(), 55U);
        ASSERT_TRUE(save(*id, dir.path(), false).has_value());

        struct stat st {};
        ASSERT_EQ(::stat((dir.path() / k_key_file).c_str(), &st), 0);
        EXPECT_EQ(st.st_mode & 0777U, 0600U);

        auto loaded = load(dir.path());
        ASSERT_TRUE(loaded.has_value()) << loaded.error().message();
        EXPECT_EQ(loaded->id, id->id);
        EXPECT_EQ(loaded->algorithm, alg);

        auto from_cert = peer_id_of_path(dir.path() / k_cert_file);
        ASSERT_TRUE(from_cert.has_value());
        EXPECT_EQ(*from_cert, id->id);
        auto from_dir = peer_id_of_path(dir.path());
        ASSERT_TRUE(from_dir.has_value());
        EXPECT_EQ(*from_dir, id->id);

        // CN = peer id
        char cn[128] = {};
        X509_NAME_get_text_by_NID(X509_get_subject_name(loaded->certificate.get()), NID_commonName,
                                  cn, sizeof cn);
        EXPECT_EQ(std::string(cn), id->id.str());
        // self-signed by the identity key
        EXPECT_EQ(X509_verify(loaded->certificate.get(), loaded->key.get()), 1);
    }
}

TEST(Identity, RefusesToOverwriteWithoutForce) {
    TempDir dir;
    auto a = generate({});
    auto b = generate({});
    ASSERT_TRUE(a && b);
    ASSERT_TRUE(save(*a, dir.path(), false).has_value());
    auto again = save(*b, dir.path(), false);
    ASSERT_FALSE(again.has_value());
    EXPECT_EQ(again.error().code, Errc::already_exists);
    ASSERT_TRUE(save(*b, dir.path(), true).has_value());
    EXPECT_EQ(load(dir.path())->id, b->id);
}

TEST(Identity, LoadOrCreateKeepsTheFirstIdentity) {
    TempDir dir;
    auto first = load_or_create(dir.path() / "id", {});
    ASSERT_TRUE(first.has_value()) << first.error().message();
    auto second = load_or_create(dir.path() / "id", {});
    ASSERT_TRUE(second.has_value());
    EXPECT_EQ(first->id, second->id);
}

TEST(Identity, RejectsGroupReadableKeyAndMismatchedCertificate) {
    TempDir dir;
    TempDir other;
    auto a = generate({});
    auto b = generate({});
    ASSERT_TRUE(a && b);
    ASSERT_TRUE(save(*a, dir.path(), false).has_value());
    ASSERT_TRUE(save(*b, other.path(), false).has_value());

    fs::copy_file(other.path() / k_cert_file, dir.path() / k_cert_file,
                  fs::copy_options::overwrite_existing);
    auto mismatch = load(dir.path());
    ASSERT_FALSE(mismatch.has_value());
    EXPECT_EQ(mismatch.error().code, Errc::key_mismatch);

    ::chmod((dir.path() / k_key_file).c_str(), 0644);
    auto readable = load(dir.path());
    ASSERT_FALSE(readable.has_value());
    EXPECT_EQ(readable.error().code, Errc::invalid_key);
}

TEST(Identity, EncryptedKeyIsRefusedWithoutPrompting) {
    TempDir dir;
    auto a = generate({});
    ASSERT_TRUE(a.has_value());
    ASSERT_TRUE(save(*a, dir.path(), false).has_value());
    // Replace the key with a passphrase-protected PKCS#8 copy: loading must fail
    // at once (no terminal prompt) with a clear error.
    crypto::BioPtr bio(BIO_new(BIO_s_mem()));
    static char pass[] = "secret";
    ASSERT_EQ(PEM_write_bio_PKCS8PrivateKey(bio.get(), a->key.get(), EVP_aes_256_cbc(), pass, 6,
                                            nullptr, nullptr),
              1);
    char* data = nullptr;
    const long len = BIO_get_mem_data(bio.get(), &data);
    {
        std::ofstream out(dir.path() / k_key_file, std::ios::trunc | std::ios::binary);
        out.write(data, len);
    }
    auto r = load(dir.path());
    ASSERT_FALSE(r.has_value());
    EXPECT_EQ(r.error().code, Errc::invalid_key);
    EXPECT_NE(r.error().detail.find("unencrypted"), std::string::npos) << r.error().detail;
}

TEST(KnownPeers, EndlessInputIsBounded) {
    auto r = KnownPeers::load("/dev/zero");
    ASSERT_FALSE(r.has_value());
    EXPECT_EQ(r.error().code, Errc::io_error);
    EXPECT_NE(r.error().detail.find("larger than"), std::string::npos) << r.error().detail;
}

TEST(Identity, MissingIdentityIsAClearError) {
    TempDir dir;
    auto r = load(dir.path());
    ASSERT_FALSE(r.has_value());
    EXPECT_EQ(r.error().code, Errc::io_error);
    EXPECT_NE(r.error().detail.find("pqmcp keygen"), std::string::npos);
}

TEST(Identity, ClassicalKeysGetTheirOwnPrefix) {
    auto ed = crypto::generate_signing_key(crypto::SigAlg::ed25519);
    ASSERT_TRUE(ed.has_value());
    auto id = PeerId::of_key(ed->get());
    ASSERT_TRUE(id.has_value());
    EXPECT_TRUE(id->str().starts_with("ed1"));
    auto parsed = PeerId::parse(id->str());
    ASSERT_TRUE(parsed.has_value());
    EXPECT_EQ(*parsed, *id);
}

TEST(KnownPeers, ParseAddLookupSerialize) {
    auto a = generate({});
    auto b = generate({});
    ASSERT_TRUE(a && b);
    const std::string text = "# comment\n\n" + a->id.str() + "  alice\t2026-11-01\r\n";
    auto peers = KnownPeers::parse(text, "peers.txt");
    ASSERT_TRUE(peers.has_value()) << peers.error().message();
    ASSERT_EQ(peers->peers().size(), 1U);
    ASSERT_NE(peers->find(a->id), nullptr);
    EXPECT_EQ(peers->find(a->id)->name, "alice");
    EXPECT_EQ(peers->find(b->id), nullptr);
    EXPECT_EQ(peers->find_by_name("alice")->id, a->id);

    ASSERT_TRUE(peers->add({b->id, "bob", ""}).has_value());
    EXPECT_EQ(peers->find(b->id)->added, today_utc());
    auto dup_id = peers->add({b->id, "bob2", ""});
    ASSERT_FALSE(dup_id.has_value());
    EXPECT_EQ(dup_id.error().code, Errc::duplicate_peer);
    auto dup_name = peers->add({a->id, "bob", ""});
    ASSERT_FALSE(dup_name.has_value());
    EXPECT_EQ(dup_name.error().code, Errc::duplicate_peer);

    auto reparsed = KnownPeers::parse(peers->serialize());
    ASSERT_TRUE(reparsed.has_value());
    EXPECT_EQ(reparsed->peers().size(), 2U);

    TempDir dir;
    ASSERT_TRUE(peers->save(dir.path() / "known_peers").has_value());
    auto loaded = KnownPeers::load(dir.path() / "known_peers");
    ASSERT_TRUE(loaded.has_value());
    EXPECT_EQ(loaded->find_by_name("bob")->id, b->id);
}

TEST(KnownPeers, MalformedLinesNameTheLine) {
    auto a = generate({});
    ASSERT_TRUE(a.has_value());
    const std::string good = a->id.str() + " alice 2026-11-01\n";
    const std::pair<std::string, std::string> cases[] = {
        {good + "pq1abc bob 2026-11-01\n", "peers:2:"},
        {good + a->id.str() + " bob\n", "peers:2:"},
        {"\n\n" + a->id.str() + " bad/name 2026-11-01\n", "peers:3:"},
        {a->id.str() + " alice 2026-13-01\n", "peers:1:"},
        {good + a->id.str() + " again 2026-11-01\n", "peers:2:"},
    };
    for (const auto& [text, where] : cases) {
        auto r = KnownPeers::parse(text, "peers");
        ASSERT_FALSE(r.has_value()) << text;
        EXPECT_EQ(r.error().code, Errc::known_peers_syntax);
        EXPECT_TRUE(r.error().detail.starts_with(where)) << r.error().detail;
    }
}

}  // namespace
}  // namespace pqmcp::identity
