// Shared by the audit tests: an identity, typical records, and direct SQLite
// access to a database (to read what the writer stored, and to tamper with it).
#pragma once

#include <gtest/gtest.h>
#include <sqlite3.h>

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <boost/json.hpp>

#include "../common/temp_dir.hpp"
#include "pqmcp/audit/audit.hpp"
#include "pqmcp/core/bytes.hpp"
#include "pqmcp/crypto/util.hpp"
#include "pqmcp/identity/identity.hpp"

namespace pqmcp::audit::test {

namespace json = boost::json;

inline identity::Identity make_identity(const std::filesystem::path& dir) {
    auto id = identity::load_or_create(dir, identity::KeygenOptions{});
    EXPECT_TRUE(id) << id.error().message();
    return std::move(*id);
}

// What the gateway writes for a tools/call.
inline json::object request_record(int i) {
    return json::object{{"kind", "request"},
                        {"session", "abcd1234ef567890"},
                        {"request_id", i},
                        {"identity", "pq1exampleexampleexampleexampleexampleexampleexamplexx"},
                        {"upstream", "demo"},
                        {"method", "tools/call"},
                        {"target", "demo__echo"},
                        {"decision", "allow"},
                        {"rule", "r1"},
                        {"mode", "enforce"},
                        {"outcome", "ok"},
                        {"latency_us", 134},
                        {"args_sha256", std::string(64, 'a')}};
}

inline WriterOptions options_for(const std::filesystem::path& db) {
    WriterOptions o;
    o.path = db;
    o.checkpoint_records = 1'000'000;
    o.checkpoint_interval = std::chrono::hours{1};
    return o;
}

// Writes the opened record, `n` request records and the closed record:
// seq 1 .. n + 2.
inline void write_trail(const std::filesystem::path& db, const identity::Identity& id, int n,
                        std::size_t checkpoint_records = 1'000'000) {
    auto o = options_for(db);
    o.checkpoint_records = checkpoint_records;
    auto w = Writer::open(o, id);
    ASSERT_TRUE(w) << w.error().message();
    for (int i = 0; i < n; ++i) {
        ASSERT_TRUE((*w)->append(request_record(i)));
    }
    (*w)->close();
}

struct DbCloser {
    void operator()(sqlite3* db) const noexcept { sqlite3_close_v2(db); }
};
using Db = std::unique_ptr<sqlite3, DbCloser>;

// An existing database (or, with `create`, a new one).
inline Db open_db(const std::filesystem::path& path, bool create = false) {
    sqlite3* h = nullptr;
    EXPECT_EQ(sqlite3_open_v2(path.c_str(), &h,
                              SQLITE_OPEN_READWRITE | (create ? SQLITE_OPEN_CREATE : 0), nullptr),
              SQLITE_OK)
        << path;
    return Db(h);
}

inline void exec(sqlite3* db, const std::string& sql) {
    char* err = nullptr;
    const int rc = sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &err);
    EXPECT_EQ(rc, SQLITE_OK) << sql << ": " << (err != nullptr ? err : "");
    sqlite3_free(err);
}

inline void exec(const std::filesystem::path& path, const std::string& sql) {
    const Db db = open_db(path);
    exec(db.get(), sql);
}

// One text column of one row.
inline std::string query_text(const std::filesystem::path& path, const std::string& sql) {
    const Db db = open_db(path);
    sqlite3_stmt* s = nullptr;
    EXPECT_EQ(sqlite3_prepare_v2(db.get(), sql.c_str(), -1, &s, nullptr), SQLITE_OK) << sql;
    std::string out;
    if (sqlite3_step(s) == SQLITE_ROW) {
        const auto* t = sqlite3_column_text(s, 0);
        out = t == nullptr ? std::string{} : reinterpret_cast<const char*>(t);
    }
    sqlite3_finalize(s);
    return out;
}

inline std::vector<std::int64_t> query_ints(const std::filesystem::path& path,
                                            const std::string& sql) {
    const Db db = open_db(path);
    sqlite3_stmt* s = nullptr;
    EXPECT_EQ(sqlite3_prepare_v2(db.get(), sql.c_str(), -1, &s, nullptr), SQLITE_OK) << sql;
    std::vector<std::int64_t> out;
    while (sqlite3_step(s) == SQLITE_ROW) {
        out.push_back(sqlite3_column_int64(s, 0));
    }
    sqlite3_finalize(s);
    return out;
}

// The record hash as documented in src/audit/README.md.
inline std::string documented_hash(const std::string& prev, const std::string& body) {
    const std::string input = fmt::format("pqmcp audit record v1\n{}\n{}", prev, body);
    return to_hex(crypto::sha256(as_bytes(input)));
}

inline std::string problems_text(const VerifyReport& r) {
    std::string out;
    for (const auto& p : r.problems) {
        out += fmt::format("#{} {}: {}\n", p.seq, p.kind, p.detail);
    }
    return out;
}

// Verifies `db` and expects an intact trail; the report, for what a test
// checks further (an empty one, the failure reported, if verify could not run).
inline VerifyReport expect_intact(const std::filesystem::path& db) {
    auto r = verify(db);
    if (!r) {
        ADD_FAILURE() << "verify " << db << ": " << r.error().message();
        return {};
    }
    EXPECT_TRUE(r->ok()) << problems_text(*r);
    return std::move(*r);
}

}  // namespace pqmcp::audit::test
