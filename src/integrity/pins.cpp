#include "pqmcp/integrity/pins.hpp"

#include <sqlite3.h>

#include <chrono>
#include <ctime>
#include <map>
#include <mutex>

#include <fmt/format.h>
#include <boost/json.hpp>

#include "pqmcp/core/bytes.hpp"
#include "pqmcp/crypto/util.hpp"
#include "pqmcp/integrity/jcs.hpp"
#include "pqmcp/integrity/scanner.hpp"

namespace pqmcp::integrity {

namespace json = boost::json;

namespace {

struct StmtDeleter {
    void operator()(sqlite3_stmt* s) const noexcept { sqlite3_finalize(s); }
};
using Stmt = std::unique_ptr<sqlite3_stmt, StmtDeleter>;

struct DbDeleter {
    void operator()(sqlite3* db) const noexcept { sqlite3_close_v2(db); }
};

constexpr std::string_view k_schema = R"sql(
CREATE TABLE IF NOT EXISTS pins(
  upstream TEXT NOT NULL,
  kind TEXT NOT NULL,
  name TEXT NOT NULL,
  digest TEXT NOT NULL,
  definition TEXT NOT NULL,
  first_seen TEXT NOT NULL,
  approved TEXT NOT NULL DEFAULT '',
  pending_digest TEXT NOT NULL DEFAULT '',
  pending_definition TEXT NOT NULL DEFAULT '',
  pending_seen TEXT NOT NULL DEFAULT '',
  PRIMARY KEY(upstream, kind, name));
)sql";

std::string column(sqlite3_stmt* s, int i) {
    const auto* text = sqlite3_column_text(s, i);
    return text == nullptr ? std::string{}
                           : std::string(reinterpret_cast<const char*>(text),
                                         static_cast<std::size_t>(sqlite3_column_bytes(s, i)));
}

std::string quote_cut(const json::value& v, std::size_t max_value) {
    std::string s = json::serialize(v);
    if (s.size() > max_value) {
        std::size_t cut = max_value;
        while (cut > 0 && (static_cast<unsigned char>(s[cut]) & 0xC0U) == 0x80U) {
            --cut;  // not inside a UTF-8 sequence
        }
        s.resize(cut);
        s += "...";
    }
    return s;
}

std::string escape_token(std::string_view key) {
    std::string out;
    for (const char c : key) {
        if (c == '~') {
            out += "~0";
        } else if (c == '/') {
            out += "~1";
        } else {
            out.push_back(c);
        }
    }
    return out;
}

void diff_into(std::vector<std::string>& lines, const std::string& at, const json::value& a,
               const json::value& b, std::size_t max_value, std::size_t max_lines) {
    if (lines.size() >= max_lines || a == b) {
        return;
    }
    const std::string where = at.empty() ? std::string("/") : at;
    if (a.is_object() && b.is_object()) {
        const auto& oa = a.get_object();
        const auto& ob = b.get_object();
        std::map<std::string_view, std::pair<const json::value*, const json::value*>> keys;
        for (const auto& kv : oa) {
            keys[kv.key()].first = &kv.value();
        }
        for (const auto& kv : ob) {
            keys[kv.key()].second = &kv.value();
        }
        for (const auto& [k, pair] : keys) {
            const std::string p = at + "/" + escape_token(k);
            if (lines.size() >= max_lines) {
                return;
            }
            if (pair.second == nullptr) {
                lines.push_back(fmt::format("- {}: {}", p, quote_cut(*pair.first, max_value)));
            } else if (pair.first == nullptr) {
                lines.push_back(fmt::format("+ {}: {}", p, quote_cut(*pair.second, max_value)));
            } else {
                diff_into(lines, p, *pair.first, *pair.second, max_value, max_lines);
            }
        }
        return;
    }
    if (a.is_array() && b.is_array() && a.get_array().size() == b.get_array().size()) {
        for (std::size_t i = 0; i < a.get_array().size(); ++i) {
            diff_into(lines, at + "/" + std::to_string(i), a.get_array()[i], b.get_array()[i],
                      max_value, max_lines);
        }
        return;
    }
    lines.push_back(
        fmt::format("~ {}: {} -> {}", where, quote_cut(a, max_value), quote_cut(b, max_value)));
}

}  // namespace

struct PinStore::Db {
    // The connection is opened without SQLite's own mutex, and a statement's
    // bind, step and reset are one use: each call holds this for all of it.
    std::mutex mutex;
    std::unique_ptr<sqlite3, DbDeleter> handle;
    Stmt select;
    Stmt insert;
    Stmt set_pending;
    Stmt data_version;
    std::int64_t version = -1;
    std::map<PinKey, std::string> cache;  // key -> pinned digest, valid for `version`

    [[nodiscard]] tl::unexpected<Error> failure(std::string_view what) const {
        return fail(Errc::store_failed, fmt::format("{}: {}", what, sqlite3_errmsg(handle.get())));
    }

    Result<Stmt> prepare(std::string_view sql) const {
        sqlite3_stmt* s = nullptr;
        if (sqlite3_prepare_v2(handle.get(), sql.data(), static_cast<int>(sql.size()), &s,
                               nullptr) != SQLITE_OK) {
            return failure("prepare");
        }
        return Stmt(s);
    }

    // Another connection (`pqmcp tools approve`) committed: forget the cache.
    Status refresh() {
        sqlite3_stmt* s = data_version.get();
        sqlite3_reset(s);
        if (sqlite3_step(s) != SQLITE_ROW) {
            return failure("data_version");
        }
        const std::int64_t v = sqlite3_column_int64(s, 0);
        if (v != version) {
            cache.clear();
            version = v;
        }
        return {};
    }
};

PinStore::PinStore(std::unique_ptr<Db> db) : db_(std::move(db)) {}
PinStore::PinStore(PinStore&&) noexcept = default;
PinStore& PinStore::operator=(PinStore&&) noexcept = default;
PinStore::~PinStore() = default;

Result<PinStore> PinStore::open(const std::filesystem::path& file) {
    auto db = std::make_unique<Db>();
    sqlite3* h = nullptr;
    const int rc =
        sqlite3_open_v2(file.c_str(), &h,
                        SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, nullptr);
    db->handle.reset(h);
    if (rc != SQLITE_OK) {
        return fail(
            Errc::store_failed,
            fmt::format("{}: {}", file.string(), h != nullptr ? sqlite3_errmsg(h) : "cannot open"));
    }
    sqlite3_busy_timeout(h, 5000);
    const std::string setup =
        "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;" + std::string(k_schema);
    char* err = nullptr;
    if (sqlite3_exec(h, setup.c_str(), nullptr, nullptr, &err) != SQLITE_OK) {
        std::string why = err != nullptr ? err : "setup failed";
        sqlite3_free(err);
        return fail(Errc::store_failed, fmt::format("{}: {}", file.string(), why));
    }
    auto select = db->prepare(
        "SELECT digest, definition, first_seen, pending_digest FROM pins "
        "WHERE upstream=?1 AND kind=?2 AND name=?3");
    auto insert = db->prepare(
        "INSERT INTO pins(upstream, kind, name, digest, definition, first_seen) "
        "VALUES(?1, ?2, ?3, ?4, ?5, ?6)");
    auto set_pending = db->prepare(
        "UPDATE pins SET pending_digest=?4, pending_definition=?5, pending_seen=?6 "
        "WHERE upstream=?1 AND kind=?2 AND name=?3");
    auto version = db->prepare("PRAGMA data_version");
    if (!select || !insert || !set_pending || !version) {
        return tl::unexpected(!select        ? select.error()
                              : !insert      ? insert.error()
                              : !set_pending ? set_pending.error()
                                             : version.error());
    }
    db->select = std::move(*select);
    db->insert = std::move(*insert);
    db->set_pending = std::move(*set_pending);
    db->data_version = std::move(*version);
    return PinStore(std::move(db));
}

namespace {

void bind_key(sqlite3_stmt* s, const PinKey& key) {
    sqlite3_bind_text(s, 1, key.upstream.data(), static_cast<int>(key.upstream.size()),
                      SQLITE_TRANSIENT);
    sqlite3_bind_text(s, 2, key.kind.data(), static_cast<int>(key.kind.size()), SQLITE_TRANSIENT);
    sqlite3_bind_text(s, 3, key.name.data(), static_cast<int>(key.name.size()), SQLITE_TRANSIENT);
}

void bind_text(sqlite3_stmt* s, int i, std::string_view text) {
    sqlite3_bind_text(s, i, text.data(), static_cast<int>(text.size()), SQLITE_TRANSIENT);
}

}  // namespace

Result<PinCheck> PinStore::check(const PinKey& key, const json::object& definition) {
    Db& db = *db_;
    const std::lock_guard lock(db.mutex);
    auto canonical = canonicalize(definition);
    if (!canonical) {
        return tl::unexpected(canonical.error());
    }
    PinCheck out;
    out.digest = to_hex(crypto::sha256(as_bytes(*canonical)));
    if (auto s = db.refresh(); !s) {
        return tl::unexpected(s.error());
    }
    if (const auto it = db.cache.find(key); it != db.cache.end() && it->second == out.digest) {
        out.pinned = out.digest;
        return out;
    }
    sqlite3_stmt* sel = db.select.get();
    sqlite3_reset(sel);
    bind_key(sel, key);
    const int rc = sqlite3_step(sel);
    if (rc == SQLITE_DONE) {
        out.state = PinCheck::State::pinned_now;
        out.pinned = out.digest;
        out.first_seen = utc_now();
        sqlite3_stmt* ins = db.insert.get();
        sqlite3_reset(ins);
        bind_key(ins, key);
        bind_text(ins, 4, out.digest);
        bind_text(ins, 5, *canonical);
        bind_text(ins, 6, out.first_seen);
        if (sqlite3_step(ins) != SQLITE_DONE) {
            return db.failure("insert pin");
        }
        db.cache[key] = out.digest;
        return out;
    }
    if (rc != SQLITE_ROW) {
        return db.failure("select pin");
    }
    out.pinned = column(sel, 0);
    const std::string pinned_definition = column(sel, 1);
    out.first_seen = column(sel, 2);
    const std::string pending = column(sel, 3);
    sqlite3_reset(sel);
    if (out.pinned == out.digest) {
        db.cache[key] = out.digest;
        return out;
    }
    out.state = PinCheck::State::changed;
    boost::system::error_code ec;
    const json::value before = json::parse(pinned_definition, ec);
    out.diff =
        ec ? std::string("(the pinned definition cannot be read)") : json_diff(before, definition);
    if (pending != out.digest) {
        sqlite3_stmt* up = db.set_pending.get();
        sqlite3_reset(up);
        bind_key(up, key);
        bind_text(up, 4, out.digest);
        bind_text(up, 5, *canonical);
        bind_text(up, 6, utc_now());
        if (sqlite3_step(up) != SQLITE_DONE) {
            return db.failure("record pending definition");
        }
    }
    return out;
}

Result<std::size_t> PinStore::approve(std::string_view upstream,
                                      std::optional<std::string_view> name) {
    Db& db = *db_;
    const std::lock_guard lock(db.mutex);
    auto stmt = db.prepare(
        "UPDATE pins SET digest=pending_digest, definition=pending_definition, approved=?3, "
        "pending_digest='', pending_definition='', pending_seen='' "
        "WHERE upstream=?1 AND pending_digest!='' AND (?2 IS NULL OR name=?2)");
    if (!stmt) {
        return tl::unexpected(stmt.error());
    }
    sqlite3_stmt* s = stmt->get();
    bind_text(s, 1, upstream);
    if (name) {
        bind_text(s, 2, *name);
    } else {
        sqlite3_bind_null(s, 2);
    }
    bind_text(s, 3, utc_now());
    if (sqlite3_step(s) != SQLITE_DONE) {
        return db.failure("approve");
    }
    db.cache.clear();
    return static_cast<std::size_t>(sqlite3_changes(db.handle.get()));
}

Result<std::vector<PinRecord>> PinStore::list(std::optional<std::string_view> upstream) {
    Db& db = *db_;
    const std::lock_guard lock(db.mutex);
    auto stmt = db.prepare(
        "SELECT upstream, kind, name, digest, first_seen, approved, pending_digest, pending_seen "
        "FROM pins WHERE (?1 IS NULL OR upstream=?1) ORDER BY upstream, kind, name");
    if (!stmt) {
        return tl::unexpected(stmt.error());
    }
    sqlite3_stmt* s = stmt->get();
    if (upstream) {
        bind_text(s, 1, *upstream);
    } else {
        sqlite3_bind_null(s, 1);
    }
    std::vector<PinRecord> out;
    int rc = 0;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        out.push_back(PinRecord{PinKey{column(s, 0), column(s, 1), column(s, 2)}, column(s, 3),
                                column(s, 4), column(s, 5), column(s, 6), column(s, 7)});
    }
    if (rc != SQLITE_DONE) {
        return db.failure("list pins");
    }
    return out;
}

std::string json_diff(const json::value& before, const json::value& after, std::size_t max_value,
                      std::size_t max_lines) {
    std::vector<std::string> lines;
    diff_into(lines, {}, before, after, max_value, max_lines);
    std::string out;
    for (const auto& l : lines) {
        if (!out.empty()) {
            out.push_back('\n');
        }
        out += l;
    }
    if (lines.size() >= max_lines) {
        out += "\n(more changes not shown)";
    }
    return out;
}

std::string utc_now() {
    const std::time_t t = std::chrono::system_clock::to_time_t(std::chrono::system_clock::now());
    std::tm tm{};
    gmtime_r(&t, &tm);
    std::array<char, 32> buf{};
    const std::size_t n = std::strftime(buf.data(), buf.size(), "%Y-%m-%dT%H:%M:%SZ", &tm);
    return {buf.data(), n};
}

}  // namespace pqmcp::integrity
