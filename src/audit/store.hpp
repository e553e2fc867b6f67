// Internal: the audit database's schema, SQLite handles, the record hash and
// the checkpoint message, shared by the writer, verify and read.
#pragma once

#include <sqlite3.h>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>

#include "pqmcp/audit/audit.hpp"
#include "pqmcp/core/error.hpp"

namespace pqmcp::audit::detail {

struct StmtDeleter {
    void operator()(sqlite3_stmt* s) const noexcept { sqlite3_finalize(s); }
};
using Stmt = std::unique_ptr<sqlite3_stmt, StmtDeleter>;

struct DbDeleter {
    void operator()(sqlite3* db) const noexcept { sqlite3_close_v2(db); }
};
using DbHandle = std::unique_ptr<sqlite3, DbDeleter>;

// meta('format') of a trail this code creates: records without an index on
// `ts`, and a `spans` row per transaction that finds them by time instead.
inline constexpr std::string_view k_format = "pqmcp-audit-2";
// The format before 2026-12-07 (an index on records(ts), no spans): read, and
// continued in its own format.
inline constexpr std::string_view k_format_v1 = "pqmcp-audit-1";
// hash = SHA-256(k_record_domain || prev_hex || "\n" || body), lower-case hex.
inline constexpr std::string_view k_record_domain = "pqmcp audit record v1\n";
// The ML-DSA context string (FIPS 204, ctx) of checkpoint signatures.
inline constexpr std::string_view k_checkpoint_context = "pqmcp audit checkpoint v1";
// The predecessor of the first record.
inline constexpr std::string_view k_genesis =
    "0000000000000000000000000000000000000000000000000000000000000000";
inline constexpr int k_busy_timeout_ms = 5'000;
// The page size of a new trail (one that exists keeps its own). A record is
// about 600 bytes and every commit writes each page twice (WAL, then the
// database): 16 KiB pages take a quarter of the write calls of SQLite's 4 KiB
// default for the same bytes (docs/benchmarks.md).
inline constexpr int k_page_size = 16'384;

// The record hash (hex). `scratch` is reused between calls to avoid allocating.
[[nodiscard]] std::string record_hash(std::string_view prev_hex, std::string_view body,
                                      std::string& scratch);

// What a checkpoint signs: {"hash":"<hex>","seq":N,"ts":"<ts>"}, the RFC 8785
// form of that object (members sorted; the values are hex and an RFC 3339
// time, which need no escaping — callers check that before building it).
[[nodiscard]] std::string checkpoint_message(std::string_view hash_hex, std::int64_t seq,
                                             std::string_view ts);

// "2026-11-24T10:00:00.123456Z".
[[nodiscard]] std::string format_utc(std::chrono::system_clock::time_point t);

// The text of column i ("" for NULL).
[[nodiscard]] std::string column_text(sqlite3_stmt* s, int i);
[[nodiscard]] std::string_view column_view(sqlite3_stmt* s, int i);

// "<what>: <sqlite message>" as an Error with `code`.
[[nodiscard]] tl::unexpected<Error> sqlite_fail(Errc code, sqlite3* db, std::string_view what);

[[nodiscard]] Result<Stmt> prepare(sqlite3* db, std::string_view sql, Errc code);
[[nodiscard]] Status exec(sqlite3* db, const char* sql, Errc code);

// An existing audit database, read-only (SQLITE_OPEN_READONLY; a missing file
// is open_failed "no such file", never created), format checked.
[[nodiscard]] Result<DbHandle> open_read_only(const std::filesystem::path& path);

// not_an_audit_db unless meta('format') is k_format or k_format_v1.
[[nodiscard]] Status check_format(sqlite3* db, const std::filesystem::path& path);

// Whether the trail has a `spans` table (k_format), which every transaction
// of records adds a row to.
[[nodiscard]] bool has_spans(sqlite3* db);

// Creates the tables and meta('format') in an empty database (inside the
// caller's transaction), or checks the format of an existing one.
[[nodiscard]] Status ensure_schema(sqlite3* db, const std::filesystem::path& path);

}  // namespace pqmcp::audit::detail
