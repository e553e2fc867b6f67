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

// The pins in a local SQLite file (WAL), opened without SQLite's own mutex:
// the store calls one at a time.
class SqlitePins final : public PinBackend {
  public:
    static Result<std::unique_ptr<SqlitePins>> open(const std::filesystem::path& file) {
        auto db = std::unique_ptr<SqlitePins>(new SqlitePins());
        sqlite3* h = nullptr;
        const int rc = sqlite3_open_v2(
            file.c_str(), &h, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
            nullptr);
        db->handle_.reset(h);
        if (rc != SQLITE_OK) {
            return fail(Errc::store_failed,
                        fmt::format("{}: {}", file.string(),
                                    h != nullptr ? sqlite3_errmsg(h) : "cannot open"));
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
            "INSERT OR IGNORE INTO pins(upstream, kind, name, digest, definition, first_seen) "
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
        db->select_ = std::move(*select);
        db->insert_ = std::move(*insert);
        db->set_pending_ = std::move(*set_pending);
        db->data_version_ = std::move(*version);
        return db;
    }

    // Another connection (`pqmcp tools approve`) committed since the last look.
    Result<bool> changed() override {
        sqlite3_stmt* s = data_version_.get();
        sqlite3_reset(s);
        if (sqlite3_step(s) != SQLITE_ROW) {
            return failure("data_version");
        }
        const std::int64_t v = sqlite3_column_int64(s, 0);
        const bool moved = v != version_;
        version_ = v;
        return moved;
    }

    Result<std::optional<PinRow>> find(const PinKey& key) override {
        sqlite3_stmt* sel = select_.get();
        sqlite3_reset(sel);
        bind_key(sel, key);
        const int rc = sqlite3_step(sel);
        if (rc == SQLITE_DONE) {
            return std::optional<PinRow>{};
        }
        if (rc != SQLITE_ROW) {
            return failure("select pin");
        }
        PinRow row{column(sel, 0), column(sel, 1), column(sel, 2), column(sel, 3)};
        sqlite3_reset(sel);
        return std::optional<PinRow>(std::move(row));
    }

    Result<bool> insert(const PinKey& key, std::string_view digest, std::string_view definition,
                        std::string_view first_seen) override {
        sqlite3_stmt* ins = insert_.get();
        sqlite3_reset(ins);
        bind_key(ins, key);
        bind_text(ins, 4, digest);
        bind_text(ins, 5, definition);
        bind_text(ins, 6, first_seen);
        if (sqlite3_step(ins) != SQLITE_DONE) {
            return failure("insert pin");
        }
        return sqlite3_changes(handle_.get()) == 1;
    }

    Status set_pending(const PinKey& key, std::string_view digest, std::string_view definition,
                       std::string_view seen) override {
        sqlite3_stmt* up = set_pending_.get();
        sqlite3_reset(up);
        bind_key(up, key);
        bind_text(up, 4, digest);
        bind_text(up, 5, definition);
        bind_text(up, 6, seen);
        if (sqlite3_step(up) != SQLITE_DONE) {
            return failure("record pending definition");
        }
        return {};
    }

    Result<std::size_t> approve(std::string_view upstream, std::optional<std::string_view> name,
                                std::string_view when) override {
        auto stmt = prepare(
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
        bind_text(s, 3, when);
        if (sqlite3_step(s) != SQLITE_DONE) {
            return failure("approve");
        }
        return static_cast<std::size_t>(sqlite3_changes(handle_.get()));
    }

    Result<std::vector<PinRecord>> list(std::optional<std::string_view> upstream) override {
        auto stmt = prepare(
            "SELECT upstream, kind, name, digest, first_seen, approved, pending_digest, "
            "pending_seen FROM pins WHERE (?1 IS NULL OR upstream=?1) ORDER BY upstream, kind, "
            "name");
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
            return failure("list pins");
        }
        return out;
    }

    [[nodiscard]] std::string describe() const override { return "sqlite"; }

  private:
    SqlitePins() = default;

    [[nodiscard]] tl::unexpected<Error> failure(std::string_view what) const {
        return fail(Errc::store_failed, fmt::format("{}: {}", what, sqlite3_errmsg(handle_.get())));
    }

    Result<Stmt> prepare(std::string_view sql) const {
        sqlite3_stmt* s = nullptr;
        if (sqlite3_prepare_v2(handle_.get(), sql.data(), static_cast<int>(sql.size()), &s,
                               nullptr) != SQLITE_OK) {
            return failure("prepare");
        }
        return Stmt(s);
    }

    std::unique_ptr<sqlite3, DbDeleter> handle_;
    Stmt select_;
    Stmt insert_;
    Stmt set_pending_;
    Stmt data_version_;
    std::int64_t version_ = -1;
};

}  // namespace

struct PinStore::Db {
    // A backend's calls are one use each: every PinStore call holds this.
    std::mutex mutex;
    std::unique_ptr<PinBackend> backend;
    std::map<PinKey, std::string> cache;  // key -> pinned digest, until the backend changes
};

PinStore::PinStore(std::unique_ptr<PinBackend> backend) : db_(std::make_unique<Db>()) {
    db_->backend = std::move(backend);
}
PinStore::PinStore(PinStore&&) noexcept = default;
PinStore& PinStore::operator=(PinStore&&) noexcept = default;
PinStore::~PinStore() = default;

Result<PinStore> PinStore::open(const std::filesystem::path& file) {
    auto backend = SqlitePins::open(file);
    if (!backend) {
        return tl::unexpected(backend.error());
    }
    return PinStore(std::move(*backend));
}

std::string PinStore::describe() const {
    return db_->backend->describe();
}

Result<PinCheck> PinStore::check(const PinKey& key, const json::object& definition) {
    Db& db = *db_;
    const std::lock_guard lock(db.mutex);
    auto canonical = canonicalize(definition);
    if (!canonical) {
        return tl::unexpected(canonical.error());
    }
    PinCheck out;
    out.digest = to_hex(crypto::sha256(as_bytes(*canonical)));
    auto changed = db.backend->changed();
    if (!changed) {
        return tl::unexpected(changed.error());
    }
    if (*changed) {
        db.cache.clear();
    }
    if (const auto it = db.cache.find(key); it != db.cache.end() && it->second == out.digest) {
        out.pinned = out.digest;
        return out;
    }
    // Twice at most: another writer (a replica) may pin it between our look
    // and our insert; then its pin is the one to compare with.
    for (int attempt = 0; attempt < 2; ++attempt) {
        auto row = db.backend->find(key);
        if (!row) {
            return tl::unexpected(row.error());
        }
        if (!*row) {
            out.state = PinCheck::State::pinned_now;
            out.pinned = out.digest;
            out.first_seen = utc_now();
            auto inserted = db.backend->insert(key, out.digest, *canonical, out.first_seen);
            if (!inserted) {
                return tl::unexpected(inserted.error());
            }
            if (!*inserted) {
                continue;
            }
            db.cache[key] = out.digest;
            return out;
        }
        const PinRow& pin = **row;
        out.state = PinCheck::State::unchanged;
        out.pinned = pin.digest;
        out.first_seen = pin.first_seen;
        if (out.pinned == out.digest) {
            db.cache[key] = out.digest;
            return out;
        }
        out.state = PinCheck::State::changed;
        boost::system::error_code ec;
        const json::value before = json::parse(pin.definition, ec);
        out.diff = ec ? std::string("(the pinned definition cannot be read)")
                      : json_diff(before, definition);
        if (pin.pending_digest != out.digest) {
            if (auto s = db.backend->set_pending(key, out.digest, *canonical, utc_now()); !s) {
                return tl::unexpected(s.error());
            }
        }
        return out;
    }
    return fail(Errc::store_failed, "the pin of " + key.name + " keeps changing under us");
}

Result<std::size_t> PinStore::approve(std::string_view upstream,
                                      std::optional<std::string_view> name) {
    Db& db = *db_;
    const std::lock_guard lock(db.mutex);
    auto n = db.backend->approve(upstream, name, utc_now());
    db.cache.clear();
    return n;
}

Result<std::vector<PinRecord>> PinStore::list(std::optional<std::string_view> upstream) {
    Db& db = *db_;
    const std::lock_guard lock(db.mutex);
    return db.backend->list(upstream);
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
