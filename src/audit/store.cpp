#include "store.hpp"

#include <array>
#include <ctime>
#include <system_error>

#include <fmt/format.h>

#include "pqmcp/core/bytes.hpp"
#include "pqmcp/crypto/util.hpp"

namespace pqmcp::audit::detail {

namespace {

constexpr const char* k_schema = R"sql(
CREATE TABLE records(
  seq INTEGER PRIMARY KEY,
  ts TEXT NOT NULL,
  kind TEXT NOT NULL,
  body TEXT NOT NULL,
  prev TEXT NOT NULL,
  hash TEXT NOT NULL);
CREATE TABLE spans(
  first INTEGER PRIMARY KEY,
  last INTEGER NOT NULL,
  min_ts TEXT NOT NULL,
  max_ts TEXT NOT NULL);
CREATE INDEX spans_max_ts ON spans(max_ts);
CREATE INDEX spans_min_ts ON spans(min_ts);
CREATE TABLE checkpoints(
  seq INTEGER PRIMARY KEY,
  hash TEXT NOT NULL,
  ts TEXT NOT NULL,
  signer TEXT NOT NULL,
  alg TEXT NOT NULL,
  pub TEXT NOT NULL,
  sig TEXT NOT NULL);
CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
)sql";

}  // namespace

std::string record_hash(std::string_view prev_hex, std::string_view body, std::string& scratch) {
    scratch.clear();
    scratch.reserve(k_record_domain.size() + prev_hex.size() + 1 + body.size());
    scratch.append(k_record_domain);
    scratch.append(prev_hex);
    scratch.push_back('\n');
    scratch.append(body);
    const auto digest = crypto::sha256(as_bytes(scratch));
    return to_hex(digest);
}

std::string checkpoint_message(std::string_view hash_hex, std::int64_t seq, std::string_view ts) {
    return fmt::format(R"({{"hash":"{}","seq":{},"ts":"{}"}})", hash_hex, seq, ts);
}

std::string format_utc(std::chrono::system_clock::time_point t) {
    const auto micros =
        std::chrono::duration_cast<std::chrono::microseconds>(t.time_since_epoch()).count();
    std::int64_t secs = micros / 1'000'000;
    std::int64_t frac = micros % 1'000'000;
    if (frac < 0) {
        frac += 1'000'000;
        --secs;
    }
    // Every record is stamped: the date and time of the last second are
    // kept per thread, so a stamp in the same second only writes its digits.
    struct Second {
        std::int64_t secs = -1;
        std::string text;  // "YYYY-MM-DDTHH:MM:SS"
    };
    thread_local Second last;
    if (secs != last.secs) {
        const auto tt = static_cast<std::time_t>(secs);
        std::tm tm{};
        gmtime_r(&tt, &tm);
        last.text = fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}", tm.tm_year + 1900,
                                tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
        last.secs = secs;
    }
    std::string out;
    out.reserve(last.text.size() + 8);
    out += last.text;
    out += '.';
    std::array<char, 6> digits{};
    auto f = static_cast<std::uint32_t>(frac);
    for (std::size_t i = digits.size(); i-- > 0;) {
        digits[i] = static_cast<char>('0' + f % 10);
        f /= 10;
    }
    out.append(digits.data(), digits.size());
    out += 'Z';
    return out;
}

std::string_view column_view(sqlite3_stmt* s, int i) {
    const auto* text = sqlite3_column_text(s, i);
    return text == nullptr ? std::string_view{}
                           : std::string_view(reinterpret_cast<const char*>(text),
                                              static_cast<std::size_t>(sqlite3_column_bytes(s, i)));
}

std::string column_text(sqlite3_stmt* s, int i) {
    return std::string(column_view(s, i));
}

tl::unexpected<Error> sqlite_fail(Errc code, sqlite3* db, std::string_view what) {
    return fail(code,
                fmt::format("{}: {}", what, db != nullptr ? sqlite3_errmsg(db) : "out of memory"));
}

Result<Stmt> prepare(sqlite3* db, std::string_view sql, Errc code) {
    sqlite3_stmt* s = nullptr;
    if (sqlite3_prepare_v2(db, sql.data(), static_cast<int>(sql.size()), &s, nullptr) !=
        SQLITE_OK) {
        return sqlite_fail(code, db, sql);
    }
    return Stmt(s);
}

Status exec(sqlite3* db, const char* sql, Errc code) {
    char* err = nullptr;
    if (sqlite3_exec(db, sql, nullptr, nullptr, &err) != SQLITE_OK) {
        std::string why = err != nullptr ? err : sqlite3_errmsg(db);
        sqlite3_free(err);
        return fail(code, fmt::format("{}: {}", sql, why));
    }
    return {};
}

Status check_format(sqlite3* db, const std::filesystem::path& path) {
    auto s = prepare(db, "SELECT value FROM meta WHERE key='format'", Errc::not_an_audit_db);
    if (!s) {
        // No meta table, or not a database at all ("file is not a database").
        return fail(Errc::not_an_audit_db,
                    fmt::format("{}: {}", path.string(), sqlite3_errmsg(db)));
    }
    const int rc = sqlite3_step(s->get());
    if (rc != SQLITE_ROW) {
        return fail(Errc::not_an_audit_db,
                    fmt::format("{}: no format in its meta table", path.string()));
    }
    const std::string_view format = column_view(s->get(), 0);
    if (format != k_format && format != k_format_v1) {
        return fail(Errc::not_an_audit_db,
                    fmt::format("{}: format \"{}\", expected \"{}\" or \"{}\"", path.string(),
                                format, k_format, k_format_v1));
    }
    return {};
}

bool has_spans(sqlite3* db) {
    auto s = prepare(db, "SELECT 1 FROM sqlite_master WHERE type='table' AND name='spans'",
                     Errc::not_an_audit_db);
    return s && sqlite3_step(s->get()) == SQLITE_ROW;
}

Status ensure_schema(sqlite3* db, const std::filesystem::path& path) {
    auto count = prepare(db, "SELECT count(*) FROM sqlite_master", Errc::not_an_audit_db);
    if (!count) {
        return fail(Errc::not_an_audit_db,
                    fmt::format("{}: {}", path.string(), sqlite3_errmsg(db)));
    }
    if (sqlite3_step(count->get()) != SQLITE_ROW) {
        return sqlite_fail(Errc::not_an_audit_db, db, path.string());
    }
    if (sqlite3_column_int64(count->get(), 0) != 0) {
        return check_format(db, path);
    }
    if (auto s = exec(db, k_schema, Errc::write_failed); !s) {
        return s;
    }
    auto ins = prepare(db, "INSERT INTO meta(key, value) VALUES('format', ?1)", Errc::write_failed);
    if (!ins) {
        return tl::unexpected(ins.error());
    }
    sqlite3_bind_text(ins->get(), 1, k_format.data(), static_cast<int>(k_format.size()),
                      SQLITE_STATIC);
    if (sqlite3_step(ins->get()) != SQLITE_DONE) {
        return sqlite_fail(Errc::write_failed, db, "meta");
    }
    return {};
}

Result<DbHandle> open_read_only(const std::filesystem::path& path) {
    std::error_code ec;
    if (!std::filesystem::is_regular_file(path, ec)) {
        return fail(Errc::open_failed, fmt::format("{}: no such file", path.string()));
    }
    sqlite3* h = nullptr;
    const int rc =
        sqlite3_open_v2(path.c_str(), &h, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX, nullptr);
    DbHandle db(h);
    if (rc != SQLITE_OK) {
        return fail(
            Errc::open_failed,
            fmt::format("{}: {}", path.string(), h != nullptr ? sqlite3_errmsg(h) : "cannot open"));
    }
    sqlite3_busy_timeout(h, k_busy_timeout_ms);
    if (auto s = check_format(h, path); !s) {
        return tl::unexpected(s.error());
    }
    return db;
}

}  // namespace pqmcp::audit::detail
