// The writer: a bounded queue in front of one thread that owns the SQLite
// connection and commits what waits in one transaction (group commit).
#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <exception>
#include <functional>
#include <mutex>
#include <thread>
#include <utility>
#include <vector>

#include <fmt/format.h>
#include <boost/json.hpp>

#include "pqmcp/audit/audit.hpp"
#include "pqmcp/core/bytes.hpp"
#include "pqmcp/crypto/signature.hpp"
#include "pqmcp/crypto/util.hpp"
#include "store.hpp"

namespace pqmcp::audit {

namespace json = boost::json;
using steady = std::chrono::steady_clock;
using detail::Stmt;

namespace {

// An exclusive flock(2) on "<db>.lock". The kernel drops it when the process
// dies, so kill -9 never leaves the database locked.
class LockFile final {
  public:
    LockFile() = default;
    ~LockFile() { release(); }
    LockFile(const LockFile&) = delete;
    LockFile& operator=(const LockFile&) = delete;
    LockFile(LockFile&& o) noexcept : fd_(std::exchange(o.fd_, -1)) {}
    LockFile& operator=(LockFile&& o) noexcept {
        if (this != &o) {
            release();
            fd_ = std::exchange(o.fd_, -1);
        }
        return *this;
    }

    [[nodiscard]] static Result<LockFile> acquire(const std::filesystem::path& db) {
        const std::string path = db.string() + ".lock";
        LockFile lock;
        lock.fd_ = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
        if (lock.fd_ < 0) {
            return fail(Errc::open_failed, fmt::format("{}: {}", path, std::strerror(errno)));
        }
        if (::flock(lock.fd_, LOCK_EX | LOCK_NB) != 0) {
            if (errno == EWOULDBLOCK) {
                std::string holder(32, '\0');
                const auto n = ::pread(lock.fd_, holder.data(), holder.size(), 0);
                holder.resize(n > 0 ? static_cast<std::size_t>(n) : 0);
                return fail(
                    Errc::in_use,
                    fmt::format("{}: another audit writer has it open{}", db.string(),
                                holder.empty() ? std::string{} : fmt::format(" (pid {})", holder)));
            }
            return fail(Errc::open_failed,
                        fmt::format("{}: flock: {}", path, std::strerror(errno)));
        }
        // Who holds it, for the message a second writer prints.
        const std::string pid = std::to_string(::getpid());
        if (::ftruncate(lock.fd_, 0) == 0) {
            (void)::pwrite(lock.fd_, pid.data(), pid.size(), 0);
        }
        return lock;
    }

    void release() noexcept {
        if (fd_ >= 0) {
            (void)::ftruncate(fd_, 0);
            ::close(fd_);  // drops the flock
            fd_ = -1;
        }
    }

  private:
    int fd_ = -1;
};

// A record as the writer stores it, less its place in the chain. It is made
// by the thread that appends the record, so that the record's memory is
// serialized and freed where it was built (hot in that thread's cache and
// allocator) and the writer thread handles text only.
struct Pending {
    Pending(json::object record, std::chrono::system_clock::time_point t) : at(t) {
        const auto* given = record.if_contains("ts");
        if (given != nullptr && given->is_string() && !given->get_string().empty()) {
            ts = std::string(given->get_string());
            ts_json = json::serialize(json::string_view(ts));
        } else {
            ts = detail::format_utc(at);
            ts_json = fmt::format("\"{}\"", ts);
        }
        record.erase("seq");
        record.erase("ts");
        const auto* k = record.if_contains("kind");
        kind = k != nullptr && k->is_string() ? std::string(k->get_string()) : std::string{};
        rest = json::serialize(record);
    }

    std::chrono::system_clock::time_point at;  // when append() took it: its "ts"
    std::string ts;
    std::string ts_json;  // ts as a JSON string
    std::string kind;     // empty: not a record (refused)
    std::string rest;     // the record without "seq" and "ts", serialized
};

// The stored body: "seq" and "ts" first, so a body reads (and verify finds
// its seq) at a glance, then the record's members in their order.
std::string record_body(const Pending& p, std::int64_t seq) {
    if (p.rest.size() <= 2) {  // "{}"
        return fmt::format(R"({{"seq":{},"ts":{}}})", seq, p.ts_json);
    }
    return fmt::format(R"({{"seq":{},"ts":{},{})", seq, p.ts_json,
                       std::string_view(p.rest).substr(1));
}

// The head of the chain. The writer works on a copy inside a transaction and
// keeps it only when the transaction commits.
struct Chain {
    std::int64_t next_seq = 1;
    std::string last_hash = std::string(detail::k_genesis);
    std::int64_t since_checkpoint = 0;  // records after the last checkpoint
    std::uint64_t checkpoints = 0;      // written in the current transaction
    // The current transaction's records, for its row in `spans`: the first
    // seq (0: none yet) and the least and greatest ts.
    std::int64_t span_first = 0;
    std::string span_min_ts;
    std::string span_max_ts;

    // A copy to work on in a new transaction.
    [[nodiscard]] Chain for_transaction() const {
        Chain c = *this;
        c.checkpoints = 0;
        c.span_first = 0;
        return c;
    }
};

void bind_text(sqlite3_stmt* s, int i, std::string_view text) {
    sqlite3_bind_text(s, i, text.data(), static_cast<int>(text.size()), SQLITE_STATIC);
}

}  // namespace

struct Writer::Impl {
    Impl(WriterOptions o, const identity::Identity& id) : options(std::move(o)), signer(&id) {}

    WriterOptions options;
    const identity::Identity* signer;  // not owned; outlives the writer
    std::string signer_id;
    std::string alg_name;
    std::string pub_hex;
    LockFile lock;
    detail::DbHandle db;
    Stmt insert_record;
    Stmt insert_checkpoint;
    Stmt insert_span;  // null for a trail in the old format (k_format_v1: an index on ts)

    // Shared with append() / flush() / stats(), under `mu`.
    mutable std::mutex mu;
    std::condition_variable wake;       // the writer: records or stop
    bool hurry = false;                 // flush(): commit without lingering
    std::condition_variable committed;  // flush(): the writer made progress
    std::deque<Pending> queue;
    std::uint64_t accepted = 0;  // records append() took (tickets, in queue order)
    std::uint64_t written = 0;   // of those, committed: the first `written` tickets
    std::uint64_t dropped = 0;
    std::uint64_t checkpoints = 0;
    bool stopping = false;  // close() called: refuse records, drain, stop
    bool failed = false;    // the writer gave up after an error (at close)
    bool failing = false;   // the last commit failed; records wait and it tries again
    // healthy() without the lock (request threads ask on every tools/call):
    // recomputed under `mu` wherever one of its inputs changes, and written
    // only when it changes, so its cache line stays shared.
    std::atomic<bool> unhealthy{false};
    void note_health() {
        const bool now = failing || failed || stopping || queue.size() >= options.queue_capacity;
        if (unhealthy.load(std::memory_order_relaxed) != now) {
            unhealthy.store(now, std::memory_order_release);
        }
    }
    std::uint64_t failures = 0;  // failed commits so far
    bool finished = false;       // the thread is done
    std::string error;
    // append_then(): what runs once the first `ticket` records are committed.
    std::deque<std::pair<std::uint64_t, std::function<void(bool)>>> waiters;

    // Takes the waiters that are answered (committed, or never will be) out
    // of the list; the caller runs them without the lock.
    std::vector<std::function<void(bool)>> answered(bool* ok) {
        std::vector<std::function<void(bool)>> out;
        while (!waiters.empty() && waiters.front().first <= written) {
            out.push_back(std::move(waiters.front().second));
            waiters.pop_front();
        }
        *ok = true;
        if (out.empty() && finished) {
            for (auto& w : waiters) {
                out.push_back(std::move(w.second));
            }
            waiters.clear();
            *ok = false;
        }
        return out;
    }

    void run_answered() {
        for (;;) {
            bool ok = true;
            std::vector<std::function<void(bool)>> ready;
            {
                std::lock_guard lk(mu);
                ready = answered(&ok);
            }
            if (ready.empty()) {
                return;
            }
            for (auto& f : ready) {
                f(ok);
            }
        }
    }

    std::mutex close_mu;  // serialises close()
    bool closed = false;  // under close_mu

    // The writer thread's own (and open()'s, before the thread starts).
    static constexpr std::chrono::milliseconds k_first_backoff{200};
    static constexpr std::chrono::milliseconds k_last_backoff{5'000};
    std::chrono::milliseconds backoff = k_first_backoff;
    Chain chain;
    steady::time_point last_checkpoint_at = steady::now();
    std::string scratch;
    std::thread thread;

    [[nodiscard]] Status begin() const {
        return detail::exec(db.get(), "BEGIN IMMEDIATE", Errc::write_failed);
    }
    [[nodiscard]] Status commit() const {
        return detail::exec(db.get(), "COMMIT", Errc::write_failed);
    }
    void rollback() const {
        if (sqlite3_get_autocommit(db.get()) == 0) {
            (void)detail::exec(db.get(), "ROLLBACK", Errc::write_failed);
        }
    }

    // Signs (seq, hash, ts) of the chain's head and stores the checkpoint.
    [[nodiscard]] Status checkpoint(Chain& c) {
        const std::int64_t seq = c.next_seq - 1;
        const std::string ts = detail::format_utc(std::chrono::system_clock::now());
        const std::string message = detail::checkpoint_message(c.last_hash, seq, ts);
        crypto::SignOptions so;
        if (crypto::is_ml_dsa(signer->algorithm)) {
            so.context = as_bytes(detail::k_checkpoint_context);
        }
        auto sig = crypto::sign(signer->key.get(), as_bytes(message), so);
        if (!sig) {
            return fail(Errc::write_failed,
                        fmt::format("signing checkpoint #{}: {}", seq, sig.error().message()));
        }
        const std::string sig_hex = to_hex(*sig);
        sqlite3_stmt* s = insert_checkpoint.get();
        sqlite3_reset(s);
        sqlite3_bind_int64(s, 1, seq);
        bind_text(s, 2, c.last_hash);
        bind_text(s, 3, ts);
        bind_text(s, 4, signer_id);
        bind_text(s, 5, alg_name);
        bind_text(s, 6, pub_hex);
        bind_text(s, 7, sig_hex);
        const int rc = sqlite3_step(s);
        sqlite3_clear_bindings(s);
        if (rc != SQLITE_DONE) {
            return detail::sqlite_fail(Errc::write_failed, db.get(),
                                       fmt::format("checkpoint #{}", seq));
        }
        c.since_checkpoint = 0;
        ++c.checkpoints;
        return {};
    }

    // Inserts one (prepared) record at the head of `c` inside a transaction,
    // and a checkpoint when it completes checkpoint_records.
    [[nodiscard]] Status insert(Chain& c, const Pending& p) {
        const std::int64_t seq = c.next_seq;
        const std::string body = record_body(p, seq);
        std::string hash = detail::record_hash(c.last_hash, body, scratch);
        sqlite3_stmt* s = insert_record.get();
        sqlite3_reset(s);
        sqlite3_bind_int64(s, 1, seq);
        bind_text(s, 2, p.ts);
        bind_text(s, 3, p.kind);
        bind_text(s, 4, body);
        bind_text(s, 5, c.last_hash);
        bind_text(s, 6, hash);
        const int rc = sqlite3_step(s);
        sqlite3_clear_bindings(s);
        if (rc != SQLITE_DONE) {
            return detail::sqlite_fail(Errc::write_failed, db.get(),
                                       fmt::format("record #{}", seq));
        }
        c.last_hash = std::move(hash);
        if (c.span_first == 0) {
            c.span_first = seq;
            c.span_min_ts = p.ts;
            c.span_max_ts = p.ts;
        } else if (p.ts < c.span_min_ts) {
            c.span_min_ts = p.ts;
        } else if (p.ts > c.span_max_ts) {
            c.span_max_ts = p.ts;
        }
        ++c.next_seq;
        ++c.since_checkpoint;
        if (c.since_checkpoint >= static_cast<std::int64_t>(options.checkpoint_records)) {
            return checkpoint(c);
        }
        return {};
    }

    // The transaction's row in `spans`: what `read` finds records by time with.
    [[nodiscard]] Status close_span(const Chain& c) {
        if (!insert_span || c.span_first == 0) {
            return {};
        }
        sqlite3_stmt* s = insert_span.get();
        sqlite3_reset(s);
        sqlite3_bind_int64(s, 1, c.span_first);
        sqlite3_bind_int64(s, 2, c.next_seq - 1);
        bind_text(s, 3, c.span_min_ts);
        bind_text(s, 4, c.span_max_ts);
        const int rc = sqlite3_step(s);
        sqlite3_clear_bindings(s);
        if (rc != SQLITE_DONE) {
            return detail::sqlite_fail(Errc::write_failed, db.get(),
                                       fmt::format("span #{}", c.span_first));
        }
        return {};
    }

    // A lifecycle record, in its own transaction (open()).
    [[nodiscard]] Status write_one(json::object record) {
        const Pending p(std::move(record), std::chrono::system_clock::now());
        Chain c = chain.for_transaction();
        Status s = begin();
        if (s) {
            s = insert(c, p);
        }
        if (s) {
            s = close_span(c);
        }
        if (s) {
            s = commit();
        }
        if (!s) {
            rollback();
            return s;
        }
        checkpoints += c.checkpoints;
        if (c.checkpoints > 0) {
            last_checkpoint_at = steady::now();
        }
        chain = std::move(c);
        return {};
    }

    [[nodiscard]] bool checkpoint_due(const Chain& c, steady::time_point now) const {
        return c.since_checkpoint > 0 && now - last_checkpoint_at >= options.checkpoint_interval;
    }

    // One transaction: the batch, a checkpoint if one is due, and with
    // `last` the closing record and the final checkpoint. The chain head moves
    // only if it commits. The number of checkpoints written.
    [[nodiscard]] Result<std::uint64_t> write_batch(std::vector<Pending>& batch, bool last,
                                                    std::uint64_t records_total) {
        const auto now = steady::now();
        if (batch.empty() && !last && !checkpoint_due(chain, now)) {
            return 0;
        }
        Chain c = chain.for_transaction();
        auto run_tx = [&]() -> Status {
            if (auto s = begin(); !s) {
                return s;
            }
            for (const auto& p : batch) {
                if (auto s = insert(c, p); !s) {
                    return s;
                }
            }
            if (last) {
                Pending closing(json::object{{"kind", k_lifecycle},
                                             {"event", "closed"},
                                             {"records", records_total + batch.size()}},
                                std::chrono::system_clock::now());
                if (auto s = insert(c, closing); !s) {
                    return s;
                }
            }
            if ((last || checkpoint_due(c, now)) && c.since_checkpoint > 0) {
                if (auto s = checkpoint(c); !s) {
                    return s;
                }
            }
            if (auto s = close_span(c); !s) {
                return s;
            }
            return commit();
        };
        if (auto s = run_tx(); !s) {
            rollback();
            return tl::unexpected(s.error());
        }
        const std::uint64_t written_checkpoints = c.checkpoints;
        if (written_checkpoints > 0) {
            last_checkpoint_at = now;
        }
        chain = std::move(c);
        return written_checkpoints;
    }

    void run() {
        std::vector<Pending> batch;
        batch.reserve(std::min<std::size_t>(options.batch, 4'096));
        for (;;) {
            bool last = false;
            std::uint64_t written_before = 0;
            {
                std::unique_lock lk(mu);
                const auto ready = [this] { return !queue.empty() || stopping; };
                if (chain.since_checkpoint > 0) {
                    wake.wait_until(lk, last_checkpoint_at + options.checkpoint_interval, ready);
                } else {
                    wake.wait(lk, ready);
                }
                // Linger a quarter of the flush interval after the oldest
                // record so that a steady trickle is committed in batches,
                // not one transaction per record; flush() and close() cut it
                // short, a full batch too, and so does an answer that waits
                // for its record (append_then): those commit at once, with
                // whatever arrived during the commit before.
                if (!queue.empty() && !stopping && !hurry && waiters.empty()) {
                    const auto linger = options.flush_interval / 4;
                    wake.wait_until(lk, queue.front().at + linger, [this] {
                        return stopping || hurry || queue.size() >= options.batch;
                    });
                }
                hurry = false;
                const std::size_t n = std::min(queue.size(), options.batch);
                for (std::size_t i = 0; i < n; ++i) {
                    batch.push_back(std::move(queue.front()));
                    queue.pop_front();
                }
                note_health();
                last = stopping && queue.empty();
                written_before = written;
            }
            auto s = write_batch(batch, last, written_before);
            // A busy database (another process holding a write lock past the
            // busy timeout) gets two more tries at once.
            for (int attempt = 1; !s && attempt <= 2; ++attempt) {
                std::this_thread::sleep_for(std::chrono::milliseconds{100 * attempt});
                s = write_batch(batch, last, written_before);
            }
            bool retry_later = false;
            {
                std::lock_guard lk(mu);
                if (s) {
                    written += batch.size();
                    checkpoints += *s;
                    failing = false;
                    backoff = k_first_backoff;
                } else if (last) {
                    // Closing and still failing: what is left is lost, and counted.
                    failed = true;
                    failing = true;
                    error = s.error().message();
                    dropped += batch.size() + queue.size();
                    queue.clear();
                } else {
                    // The records wait (in order, at the front) and the writer
                    // tries again: a full disk that gets space back, a lock
                    // that goes away. Meanwhile healthy() is false, and a
                    // gateway with audit.on_failure: refuse refuses to act.
                    failing = true;
                    ++failures;
                    error = s.error().message();
                    queue.insert(queue.begin(), std::make_move_iterator(batch.begin()),
                                 std::make_move_iterator(batch.end()));
                    retry_later = true;
                }
                if (last) {
                    finished = true;
                }
                note_health();
            }
            committed.notify_all();
            run_answered();
            batch.clear();
            if (last) {
                return;
            }
            if (retry_later) {
                std::unique_lock lk(mu);
                wake.wait_for(lk, backoff, [this] { return stopping; });
                backoff = std::min(backoff * 2, k_last_backoff);
            }
        }
    }
};

Writer::Writer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

Writer::~Writer() {
    close();
}

Result<std::unique_ptr<Writer>> Writer::open(WriterOptions options,
                                             const identity::Identity& signer) {
    if (options.queue_capacity == 0 || options.batch == 0 || options.checkpoint_records == 0 ||
        options.flush_interval.count() <= 0 || options.checkpoint_interval.count() <= 0) {
        return fail(Errc::invalid_argument,
                    "queue_capacity, batch, checkpoint_records and the intervals must be positive");
    }
    if (!signer.key) {
        return fail(Errc::invalid_argument, "the signing identity has no key");
    }
    auto impl = std::make_unique<Impl>(std::move(options), signer);
    const std::filesystem::path& path = impl->options.path;
    auto lock = LockFile::acquire(path);
    if (!lock) {
        return tl::unexpected(lock.error());
    }
    impl->lock = std::move(*lock);

    // Created 0600 before SQLite sees it (its -wal and -shm files take the
    // database file's mode): the trail names peers, tools and arguments.
    if (const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600); fd >= 0) {
        ::close(fd);
    } else {
        return fail(Errc::open_failed, fmt::format("{}: {}", path.string(), std::strerror(errno)));
    }
    sqlite3* h = nullptr;
    const int rc =
        sqlite3_open_v2(path.c_str(), &h, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, nullptr);
    impl->db.reset(h);
    if (rc != SQLITE_OK) {
        return fail(
            Errc::open_failed,
            fmt::format("{}: {}", path.string(), h != nullptr ? sqlite3_errmsg(h) : "cannot open"));
    }
    sqlite3_busy_timeout(h, detail::k_busy_timeout_ms);
    // Before journal_mode: switching to WAL writes the header of an empty
    // file, and with it the page size. On a trail that exists this does nothing.
    if (auto s = detail::exec(h, fmt::format("PRAGMA page_size={}", detail::k_page_size).c_str(),
                              Errc::open_failed);
        !s) {
        return tl::unexpected(s.error());
    }
    // journal_mode answers with the mode in effect; anything but wal means the
    // file is not a database we can use.
    {
        auto mode = detail::prepare(h, "PRAGMA journal_mode=WAL", Errc::not_an_audit_db);
        if (!mode) {
            return fail(Errc::not_an_audit_db,
                        fmt::format("{}: {}", path.string(), mode.error().detail));
        }
        if (sqlite3_step(mode->get()) != SQLITE_ROW ||
            detail::column_view(mode->get(), 0) != "wal") {
            return detail::sqlite_fail(Errc::open_failed, h,
                                       fmt::format("{}: journal_mode=WAL", path.string()));
        }
    }
    if (auto s = detail::exec(
            h, impl->options.sync_full ? "PRAGMA synchronous=FULL" : "PRAGMA synchronous=NORMAL",
            Errc::open_failed);
        !s) {
        return tl::unexpected(s.error());
    }
    if (auto s = impl->begin(); !s) {
        return fail(Errc::open_failed, s.error().detail);
    }
    if (auto s = detail::ensure_schema(h, path); !s) {
        impl->rollback();
        return tl::unexpected(s.error());
    }
    if (auto s = impl->commit(); !s) {
        impl->rollback();
        return tl::unexpected(s.error());
    }

    // Continue the chain from the last stored record.
    std::int64_t last_checkpoint = 0;
    {
        auto head = detail::prepare(h, "SELECT seq, hash FROM records ORDER BY seq DESC LIMIT 1",
                                    Errc::not_an_audit_db);
        auto cp = detail::prepare(h, "SELECT coalesce(max(seq), 0) FROM checkpoints",
                                  Errc::not_an_audit_db);
        if (!head || !cp) {
            return tl::unexpected(!head ? head.error() : cp.error());
        }
        if (sqlite3_step(head->get()) == SQLITE_ROW) {
            impl->chain.next_seq = sqlite3_column_int64(head->get(), 0) + 1;
            impl->chain.last_hash = detail::column_text(head->get(), 1);
        }
        if (sqlite3_step(cp->get()) == SQLITE_ROW) {
            last_checkpoint = sqlite3_column_int64(cp->get(), 0);
        }
        impl->chain.since_checkpoint =
            std::max<std::int64_t>(0, impl->chain.next_seq - 1 - last_checkpoint);
    }

    auto ins = detail::prepare(
        h, "INSERT INTO records(seq, ts, kind, body, prev, hash) VALUES(?1, ?2, ?3, ?4, ?5, ?6)",
        Errc::write_failed);
    auto cps = detail::prepare(h,
                               "INSERT INTO checkpoints(seq, hash, ts, signer, alg, pub, sig) "
                               "VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                               Errc::write_failed);
    if (!ins || !cps) {
        return tl::unexpected(!ins ? ins.error() : cps.error());
    }
    impl->insert_record = std::move(*ins);
    impl->insert_checkpoint = std::move(*cps);
    if (detail::has_spans(h)) {
        auto spans = detail::prepare(
            h, "INSERT INTO spans(first, last, min_ts, max_ts) VALUES(?1, ?2, ?3, ?4)",
            Errc::write_failed);
        if (!spans) {
            return tl::unexpected(spans.error());
        }
        impl->insert_span = std::move(*spans);
    }

    auto der = crypto::public_key_der(signer.key.get());
    if (!der) {
        return fail(Errc::invalid_argument,
                    fmt::format("the signing key: {}", der.error().message()));
    }
    impl->pub_hex = to_hex(*der);
    impl->signer_id = signer.id.str();
    impl->alg_name = std::string(crypto::openssl_name(signer.algorithm));

    // The opened record, written now: a database we cannot write fails here,
    // not on the first request.
    {
        json::object opened{{"kind", k_lifecycle},
                            {"event", "opened"},
                            {"signer", impl->signer_id},
                            {"pid", static_cast<std::int64_t>(::getpid())}};
        if (impl->chain.next_seq > 1) {
            opened["continues"] = impl->chain.next_seq - 1;
            opened["unsigned"] = impl->chain.since_checkpoint;
        }
        if (auto s = impl->write_one(std::move(opened)); !s) {
            return tl::unexpected(s.error());
        }
    }

    Impl* raw = impl.get();
    impl->thread = std::thread([raw] {
        try {
            raw->run();
        } catch (const std::exception& e) {  // out of memory: stop like a failed commit
            {
                std::lock_guard lk(raw->mu);
                raw->failed = true;
                raw->finished = true;
                raw->error = fmt::format("writer stopped: {}", e.what());
                raw->dropped += raw->queue.size();
                raw->queue.clear();
                raw->note_health();
            }
            raw->committed.notify_all();
            raw->run_answered();
        }
    });
    return std::unique_ptr<Writer>(new Writer(std::move(impl)));
}

bool Writer::append(json::object record) {
    Impl& s = *impl_;
    Pending p(std::move(record), std::chrono::system_clock::now());
    const bool has_kind = !p.kind.empty();
    bool was_empty = false;
    bool full = false;
    {
        std::lock_guard lk(s.mu);
        if (!has_kind || s.stopping || s.failed || s.queue.size() >= s.options.queue_capacity) {
            ++s.dropped;
            return false;
        }
        was_empty = s.queue.empty();
        s.queue.push_back(std::move(p));
        s.note_health();
        full = s.queue.size() == s.options.batch;
        ++s.accepted;
    }
    // The writer sleeps on an empty queue, or lingers on a short batch.
    if (was_empty || full) {
        s.wake.notify_one();
    }
    return true;
}

bool Writer::append_then(json::object record, std::function<void(bool)> done) {
    Impl& s = *impl_;
    Pending p(std::move(record), std::chrono::system_clock::now());
    const bool has_kind = !p.kind.empty();
    {
        std::lock_guard lk(s.mu);
        if (!has_kind || s.stopping || s.failed || s.queue.size() >= s.options.queue_capacity) {
            ++s.dropped;
        } else {
            s.queue.push_back(std::move(p));
            s.note_health();
            ++s.accepted;
            s.waiters.emplace_back(s.accepted, std::move(done));
            done = nullptr;
        }
    }
    if (done) {
        done(false);
        return false;
    }
    s.wake.notify_one();  // a lingering writer commits now: an answer waits
    return true;
}

bool Writer::flush(std::chrono::milliseconds timeout) {
    Impl& s = *impl_;
    std::unique_lock lk(s.mu);
    const std::uint64_t target = s.accepted;
    s.hurry = true;
    s.wake.notify_one();
    s.committed.wait_for(lk, timeout, [&s, target] { return s.written >= target || s.finished; });
    return s.written >= target;
}

void Writer::close() {
    Impl& s = *impl_;
    std::lock_guard close_lock(s.close_mu);
    if (s.closed) {
        return;
    }
    s.closed = true;
    {
        std::lock_guard lk(s.mu);
        s.stopping = true;
        s.note_health();
    }
    s.wake.notify_all();
    if (s.thread.joinable()) {
        s.thread.join();
    }
    s.insert_record.reset();
    s.insert_checkpoint.reset();
    s.db.reset();
    s.lock.release();
}

WriterStats Writer::stats() const {
    const Impl& s = *impl_;
    std::lock_guard lk(s.mu);
    WriterStats out;
    out.queued = s.accepted;
    out.written = s.written;
    out.dropped = s.dropped;
    out.checkpoints = s.checkpoints;
    out.depth = s.queue.size();
    out.failures = s.failures;
    out.failing = s.failing;
    return out;
}

bool Writer::healthy() const {
    return !impl_->unhealthy.load(std::memory_order_acquire);
}

std::string Writer::last_error() const {
    const Impl& s = *impl_;
    std::lock_guard lk(s.mu);
    return s.error;
}

}  // namespace pqmcp::audit
