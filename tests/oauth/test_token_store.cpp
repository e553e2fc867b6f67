// The refresh token kept at rest: sealed under a key derived from the
// identity, bound to what the file names, written 0600, one refresher at a time.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <boost/json.hpp>

#include "pqmcp/crypto/signature.hpp"
#include "pqmcp/oauth/token_store.hpp"

namespace pqmcp::oauth {
namespace {

namespace fs = std::filesystem;

class TokenStore : public ::testing::Test {
  protected:
    void SetUp() override {
        dir_ = fs::temp_directory_path() /
               ("pqmcp-token-store-" + std::to_string(::getpid()) + "-" +
                ::testing::UnitTest::GetInstance()->current_test_info()->name());
        fs::remove_all(dir_);
        auto k = crypto::generate_signing_key(crypto::SigAlg::ml_dsa_65);
        auto o = crypto::generate_signing_key(crypto::SigAlg::ml_dsa_65);
        ASSERT_TRUE(k && o);
        key_ = std::move(*k);
        other_ = std::move(*o);
    }
    void TearDown() override { fs::remove_all(dir_); }

    static StoredGrant grant() {
        return {"https://up.example/mcp", "https://as.example", "operator", "rt-secret-1"};
    }
    static std::string read(const fs::path& p) {
        std::ifstream in(p);
        std::stringstream s;
        s << in.rdbuf();
        return s.str();
    }

    fs::path dir_;
    crypto::PkeyPtr key_;
    crypto::PkeyPtr other_;
};

TEST_F(TokenStore, WritesSealedReadsBack) {
    auto file = TokenFile::open(dir_ / "oauth" / "p.token", key_.get());
    ASSERT_TRUE(file);
    auto missing = file->read();
    ASSERT_FALSE(missing);
    EXPECT_EQ(missing.error().code, make_error_code(Errc::not_enrolled));

    ASSERT_TRUE(file->write(grant()));
    struct stat st {};
    ASSERT_EQ(::stat(file->path().c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 0777U, 0600U);
    ASSERT_EQ(::stat((dir_ / "oauth").c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 0777U, 0700U);
    const std::string text = read(file->path());
    EXPECT_EQ(text.find("rt-secret-1"), std::string::npos);
    EXPECT_NE(text.find("\"client_id\":\"operator\""), std::string::npos);

    auto back = file->read();
    ASSERT_TRUE(back) << back.error().message();
    EXPECT_EQ(back->refresh_token, "rt-secret-1");
    EXPECT_EQ(back->resource, "https://up.example/mcp");
    EXPECT_EQ(back->issuer, "https://as.example");
    EXPECT_EQ(back->client_id, "operator");
    EXPECT_FALSE(fs::exists(file->path().string() + ".new"));
}

TEST_F(TokenStore, AnotherIdentityCannotOpenIt) {
    auto mine = TokenFile::open(dir_ / "p.token", key_.get());
    auto theirs = TokenFile::open(dir_ / "p.token", other_.get());
    ASSERT_TRUE(mine && theirs);
    ASSERT_TRUE(mine->write(grant()));
    auto r = theirs->read();
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().code, make_error_code(Errc::store_failed));
    EXPECT_NE(r.error().detail.find("does not open under this identity"), std::string::npos);
}

TEST_F(TokenStore, WhatItNamesIsBoundToIt) {
    auto file = TokenFile::open(dir_ / "p.token", key_.get());
    ASSERT_TRUE(file);
    ASSERT_TRUE(file->write(grant()));
    const std::string original = read(file->path());
    for (const char* field : {"resource", "issuer", "client_id"}) {
        auto doc = boost::json::parse(original).as_object();
        doc[field] = "https://elsewhere.example";
        std::ofstream(file->path(), std::ios::trunc) << boost::json::serialize(doc);
        auto r = file->read();
        ASSERT_FALSE(r) << field;
        EXPECT_EQ(r.error().code, make_error_code(Errc::store_failed)) << field;
    }
}

TEST_F(TokenStore, RefusesWhatIsNotATokenFile) {
    auto file = TokenFile::open(dir_ / "p.token", key_.get());
    ASSERT_TRUE(file);
    fs::create_directories(dir_);
    for (const std::string& text : std::vector<std::string>{
             "", "not json", R"({"version":2})", R"({"version":1,"resource":"r"})",
             R"({"version":1,"resource":"r","issuer":"i","client_id":"c","sealed":"!!"})",
             std::string(70'000, ' ')}) {
        std::ofstream(file->path(), std::ios::trunc) << text;
        auto r = file->read();
        ASSERT_FALSE(r) << text.substr(0, 40);
        EXPECT_EQ(r.error().code, make_error_code(Errc::store_failed)) << text.substr(0, 40);
    }
}

TEST_F(TokenStore, OneRefresherAtATime) {
    auto file = TokenFile::open(dir_ / "p.token", key_.get());
    ASSERT_TRUE(file);
    {
        auto first = file->try_lock();
        ASSERT_TRUE(first) << first.error().message();
        auto second = file->try_lock();
        ASSERT_FALSE(second);
        EXPECT_EQ(second.error().code, make_error_code(Errc::store_failed));
        EXPECT_NE(second.error().detail.find("busy"), std::string::npos);
    }
    EXPECT_TRUE(file->try_lock());  // released with the first
}

}  // namespace
}  // namespace pqmcp::oauth
