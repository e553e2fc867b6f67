// The writer: a bounded queue in front of one thread that owns the SQLite
// connection and commits what waits in one transaction (group commit).
#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <algorithm>
#include <array>
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
#include "pqmcp/core/thread_shard.hpp"
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
    std::size_t shard = 0;                     // the queue's shard it waits in
    std::uint64_t ticket = 0;                  // its place in that shard (append_then, flush)
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

// The queue is sharded by thread (pqmcp::thread_shard()): a request thread
// appends to its own shard, under that shard's lock, so no lock is shared by
// every request.
constexpr std::size_t k_shards = k_thread_shards;

using Waiter = std::pair<std::uint64_t, std::function<void(bool)>>;

// One thread's part of the queue, on cache lines of its own.
struct alignas(64) Shard {
    std::mutex mu;
    std::deque<Pending> queue;
    std::uint64_t accepted = 0;  // records it took: tickets, in its queue order
    std::uint64_t dropped = 0;   // records it refused
    bool closed = false;         // close() began, or the writer stopped: refuse
    bool full = false;           // counted in Impl::full_shards
    std::deque<Waiter> waiters;  // append_then(): by ticket
    // Its first `written` tickets are committed: moved by the writer, read
    // by flush() and stats(). Their sum is every record committed.
    std::atomic<std::uint64_t> written{0};
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

    // The queue: a shard per request thread, each under its own lock.
    mutable std::array<Shard, k_shards> shards;
    // Shards [0, in_use) have taken a record at some time: the writer,
    // flush() and stats() look at those only (threads are numbered from 0
    // process-wide, so a gateway's request threads use the first few).
    // Raised under the shard's lock before its first record goes in, so
    // that the writer's last look (wait_for_work()) covers it.
    std::atomic<std::size_t> in_use{0};
    [[nodiscard]] std::size_t shards_in_use() const { return in_use.load(); }
    void raise_in_use(std::size_t n) {
        std::size_t seen = in_use.load();
        while (seen < n && !in_use.compare_exchange_weak(seen, n)) {
        }
    }
    // Shards at their capacity (queue_capacity each): healthy() is false
    // while any is. Marked by append(), cleared by the writer as it drains.
    std::atomic<std::size_t> full_shards{0};
    void mark_full(Shard& sh) {  // under sh.mu
        if (!sh.full && sh.queue.size() >= options.queue_capacity) {
            sh.full = true;
            full_shards.fetch_add(1, std::memory_order_release);
        }
    }
    void clear_full(Shard& sh) {  // under sh.mu
        if (sh.full && sh.queue.size() < options.queue_capacity) {
            sh.full = false;
            full_shards.fetch_sub(1, std::memory_order_release);
        }
    }

    // Whether the writer waits, so that an appender knows when to wake it:
    // written by the writer under `mu` before it looks at the shards for the
    // last time, read by appenders after they pushed (see wait_for_work()).
    static constexpr int k_awake = 0;
    static constexpr int k_idle = 1;       // for a record
    static constexpr int k_lingering = 2;  // for more records, to commit together
    std::atomic<int> asleep{k_awake};

    // Shared with append() / flush() / stats(), under `mu`.
    mutable std::mutex mu;
    std::condition_variable wake;  // the writer: records or stop
    bool signal = false;           // an appender woke the writer from its sleep on empty shards
    // Commit without lingering: flush(), an answer that waits for its
    // record, a full batch. (A plain `signal` does not cut a linger short:
    // an appender may still poke a writer that has seen its record.)
    bool hurry = false;
    std::condition_variable committed;  // flush(): the writer made progress
    std::uint64_t dropped = 0;          // lost when the writer stopped (the shards count theirs)
    std::uint64_t checkpoints = 0;
    bool stopping = false;  // close() called: refuse records, drain, stop
    bool failed = false;    // the writer gave up after an error (at close)
    bool failing = false;   // the last commit failed; records wait and it tries again
    // healthy() without a lock (request threads ask on every tools/call):
    // the writer's state, recomputed under `mu` wherever it changes and
    // written only when it changes, so its cache line stays shared; and
    // full_shards.
    std::atomic<bool> unhealthy{false};
    void note_health() {
        const bool now = failing || failed || stopping;
        if (unhealthy.load(std::memory_order_relaxed) != now) {
            unhealthy.store(now, std::memory_order_release);
        }
    }
    std::uint64_t failures = 0;  // failed commits so far
    bool finished = false;       // the thread is done
    std::string error;

    // Wakes the writer (an appender saw it asleep); `now`: out of its linger too.
    void poke(bool now) {
        {
            std::lock_guard lk(mu);
            signal = true;
            hurry = hurry || now;
        }
        wake.notify_one();
    }

    // Runs the waiters of `sh` whose records are committed.
    static void run_answered(Shard& sh) {
        std::vector<std::function<void(bool)>> ready;
        {
            std::lock_guard lk(sh.mu);
            const std::uint64_t done = sh.written.load(std::memory_order_relaxed);
            while (!sh.waiters.empty() && sh.waiters.front().first <= done) {
                ready.push_back(std::move(sh.waiters.front().second));
                sh.waiters.pop_front();
            }
        }
        for (auto& f : ready) {
            f(true);
        }
    }

    // The writer stopped: every shard refuses from now on, what waits in them
    // is lost (and counted) and every waiter still waiting is answered false.
    void stop_shards() {
        for (auto& sh : shards) {
            std::deque<Waiter> left;
            {
                std::lock_guard lk(sh.mu);
                sh.closed = true;
                sh.dropped += sh.queue.size();
                sh.queue.clear();
                clear_full(sh);
                left.swap(sh.waiters);
            }
            for (auto& w : left) {
                w.second(false);
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

    // What waits in the shards, seen under each shard's lock.
    struct Survey {
        bool any = false;
        // An answer waits for a record (append_then), or a shard holds a
        // full batch: commit without lingering.
        bool urgent = false;
        std::chrono::system_clock::time_point oldest = std::chrono::system_clock::time_point::max();
    };
    Survey survey() {
        Survey out;
        for (std::size_t i = 0, n = shards_in_use(); i < n; ++i) {
            Shard& sh = shards.at(i);
            std::lock_guard lk(sh.mu);
            if (sh.queue.empty()) {
                continue;
            }
            out.any = true;
            out.oldest = std::min(out.oldest, sh.queue.front().at);
            out.urgent = out.urgent || !sh.waiters.empty() || sh.queue.size() >= options.batch;
        }
        return out;
    }

    // Waits for records (or a due checkpoint, or close()), then lingers a
    // quarter of the flush interval after the oldest record so that a steady
    // trickle is committed in batches, not one transaction per record;
    // flush() and close() cut it short, a full batch too, and so does an
    // answer that waits for its record (append_then): those commit at once,
    // with whatever arrived during the commit before. Whether close() began.
    //
    // Appenders push under their shard's lock, then read `asleep`. The writer
    // writes `asleep`, then reads `in_use` and looks at those shards under
    // their locks. So either it sees the record, or the appender sees it
    // asleep and pokes it (a shard's first record raises `in_use` before it
    // is pushed, under the same lock, so the writer that misses the raise
    // wrote `asleep` before the appender reads it).
    bool wait_for_work() {
        std::unique_lock lk(mu);
        asleep.store(k_idle);
        Survey s = survey();
        while (!s.any && !stopping) {
            signal = false;
            // Not `hurry`: a flush() with nothing to commit leaves it set.
            const auto woken = [this] { return signal || stopping; };
            if (chain.since_checkpoint > 0) {
                if (!wake.wait_until(lk, last_checkpoint_at + options.checkpoint_interval, woken)) {
                    break;  // a checkpoint is due
                }
            } else {
                wake.wait(lk, woken);
            }
            s = survey();
        }
        if (s.any && !stopping && !hurry && !s.urgent) {
            asleep.store(k_lingering);
            s = survey();  // an urgent record pushed meanwhile is seen here, or pokes
            if (!s.urgent) {
                wake.wait_until(lk, s.oldest + options.flush_interval / 4,
                                [this] { return stopping || hurry; });
            }
        }
        hurry = false;
        asleep.store(k_awake);
        return stopping;
    }

    // Takes up to `batch` records out of the shards: each shard's in its
    // order, and across shards by the time append() took them, so that what
    // one thread recorded before handing a connection to another comes
    // first. Whether the shards are empty now.
    bool take(std::vector<Pending>& batch) {
        std::array<std::unique_lock<std::mutex>, k_shards> locks;
        std::array<Shard*, k_shards> busy{};
        std::size_t n_busy = 0;
        const std::size_t n = shards_in_use();
        for (std::size_t i = 0; i < n; ++i) {
            locks.at(i) = std::unique_lock(shards.at(i).mu);
            if (!shards.at(i).queue.empty()) {
                busy.at(n_busy++) = &shards.at(i);
            }
        }
        while (batch.size() < options.batch && n_busy > 0) {
            std::size_t pick = 0;
            for (std::size_t i = 1; i < n_busy; ++i) {
                if (busy.at(i)->queue.front().at < busy.at(pick)->queue.front().at) {
                    pick = i;
                }
            }
            Shard& sh = *busy.at(pick);
            batch.push_back(std::move(sh.queue.front()));
            sh.queue.pop_front();
            if (sh.queue.empty()) {
                busy.at(pick) = busy.at(--n_busy);
            }
        }
        for (std::size_t i = 0; i < n; ++i) {
            clear_full(shards.at(i));
        }
        return n_busy == 0;
    }

    // A batch that did not commit goes back to the front of its shards, in
    // order, to be tried again.
    void put_back(std::vector<Pending>& batch) {
        for (auto it = batch.rbegin(); it != batch.rend(); ++it) {
            Shard& sh = shards.at(it->shard);
            std::lock_guard lk(sh.mu);
            sh.queue.push_front(std::move(*it));
            mark_full(sh);
        }
    }

    // Records committed so far: every shard's (only the writer moves them).
    [[nodiscard]] std::uint64_t committed_records() const {
        std::uint64_t n = 0;
        for (std::size_t i = 0, used = shards_in_use(); i < used; ++i) {
            n += shards.at(i).written.load(std::memory_order_acquire);
        }
        return n;
    }

    // A batch committed: each shard's `written` moves to its last ticket in
    // it. The shards whose waiters may have answers.
    std::array<bool, k_shards> note_committed(const std::vector<Pending>& batch) {
        std::array<std::uint64_t, k_shards> last{};
        for (const auto& p : batch) {
            last.at(p.shard) = p.ticket;  // rising within a shard
        }
        std::array<bool, k_shards> touched{};
        for (std::size_t i = 0; i < k_shards; ++i) {
            if (last.at(i) != 0) {
                shards.at(i).written.store(last.at(i), std::memory_order_release);
                touched.at(i) = true;
            }
        }
        return touched;
    }

    void run() {
        std::vector<Pending> batch;
        batch.reserve(std::min<std::size_t>(options.batch, 4'096));
        for (;;) {
            const bool stop = wait_for_work();
            // No shard takes records once close() began, so drained stays drained.
            const bool last = take(batch) && stop;
            const std::uint64_t written_before = committed_records();
            auto s = write_batch(batch, last, written_before);
            // A busy database (another process holding a write lock past the
            // busy timeout) gets two more tries at once.
            for (int attempt = 1; !s && attempt <= 2; ++attempt) {
                std::this_thread::sleep_for(std::chrono::milliseconds{100 * attempt});
                s = write_batch(batch, last, written_before);
            }
            std::array<bool, k_shards> touched{};
            if (s) {
                touched = note_committed(batch);
            } else if (!last) {
                // The records wait (in order, at the front) and the writer
                // tries again: a full disk that gets space back, a lock
                // that goes away. Meanwhile healthy() is false, and a
                // gateway with audit.on_failure: refuse refuses to act.
                put_back(batch);
            }
            {
                std::lock_guard lk(mu);
                if (s) {
                    checkpoints += *s;
                    failing = false;
                    backoff = k_first_backoff;
                } else if (last) {
                    // Closing and still failing: what is left is lost, and counted.
                    failed = true;
                    failing = true;
                    error = s.error().message();
                    dropped += batch.size();
                } else {
                    failing = true;
                    ++failures;
                    error = s.error().message();
                }
                if (last) {
                    finished = true;
                }
                note_health();
            }
            committed.notify_all();
            for (std::size_t i = 0; i < k_shards; ++i) {
                if (touched.at(i)) {
                    run_answered(shards.at(i));
                }
            }
            batch.clear();
            if (last) {
                stop_shards();  // answers what waits for a record that was lost
                return;
            }
            if (!s) {
                std::unique_lock lk(mu);
                wake.wait_for(lk, backoff, [this] { return stopping; });
                backoff = std::min(backoff * 2, k_last_backoff);
            }
        }
    }

    // Queues `p` in the calling thread's shard and, with `done`, what runs
    // once it is committed. False when refused (counted).
    bool push(Pending p, std::function<void(bool)>* done) {
        const std::size_t i = thread_shard();
        Shard& sh = shards.at(i);
        bool was_empty = false;
        bool batch_full = false;
        {
            std::lock_guard lk(sh.mu);
            if (sh.accepted == 0) {  // counted from now on (a refusal too)
                raise_in_use(i + 1);
            }
            if (p.kind.empty() || sh.closed || sh.queue.size() >= options.queue_capacity) {
                ++sh.dropped;
                return false;
            }
            p.shard = i;
            p.ticket = ++sh.accepted;
            was_empty = sh.queue.empty();
            sh.queue.push_back(std::move(p));
            mark_full(sh);
            batch_full = sh.queue.size() == options.batch;
            if (done != nullptr) {
                sh.waiters.emplace_back(sh.accepted, std::move(*done));
            }
        }
        // The writer sleeps on empty shards, or lingers on a short batch;
        // an answer that waits for its record wakes it from either.
        const int state = asleep.load();
        if (done != nullptr
                ? state != k_awake
                : (state == k_idle && was_empty) || (state == k_lingering && batch_full)) {
            poke(done != nullptr || batch_full);
        }
        return true;
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
                raw->note_health();
            }
            raw->stop_shards();
            raw->committed.notify_all();
        }
    });
    return std::unique_ptr<Writer>(new Writer(std::move(impl)));
}

bool Writer::append(json::object record) {
    return impl_->push(Pending(std::move(record), std::chrono::system_clock::now()), nullptr);
}

bool Writer::append_then(json::object record, std::function<void(bool)> done) {
    if (!impl_->push(Pending(std::move(record), std::chrono::system_clock::now()), &done)) {
        done(false);
        return false;
    }
    return true;
}

bool Writer::flush(std::chrono::milliseconds timeout) {
    Impl& s = *impl_;
    std::array<std::uint64_t, k_shards> target{};
    const std::size_t used = s.shards_in_use();  // later shards: records after this call
    for (std::size_t i = 0; i < used; ++i) {
        std::lock_guard lk(s.shards.at(i).mu);
        target.at(i) = s.shards.at(i).accepted;
    }
    const auto done = [&s, &target, used] {
        for (std::size_t i = 0; i < used; ++i) {
            if (s.shards.at(i).written.load(std::memory_order_acquire) < target.at(i)) {
                return false;
            }
        }
        return true;
    };
    std::unique_lock lk(s.mu);
    s.hurry = true;
    s.signal = true;
    s.wake.notify_one();
    s.committed.wait_for(lk, timeout, [&s, &done] { return s.finished || done(); });
    return done();
}

void Writer::close() {
    Impl& s = *impl_;
    std::lock_guard close_lock(s.close_mu);
    if (s.closed) {
        return;
    }
    s.closed = true;
    for (auto& sh : s.shards) {  // first: what a shard took before is drained
        std::lock_guard lk(sh.mu);
        sh.closed = true;
    }
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
    WriterStats out;
    for (std::size_t i = 0, used = s.shards_in_use(); i < used; ++i) {
        auto& sh = s.shards.at(i);
        std::lock_guard lk(sh.mu);
        out.queued += sh.accepted;
        out.dropped += sh.dropped;
        out.depth += sh.queue.size();
    }
    out.written = s.committed_records();
    std::lock_guard lk(s.mu);
    out.dropped += s.dropped;
    out.checkpoints = s.checkpoints;
    out.failures = s.failures;
    out.failing = s.failing;
    return out;
}

bool Writer::healthy() const {
    return !impl_->unhealthy.load(std::memory_order_acquire) &&
           impl_->full_shards.load(std::memory_order_acquire) == 0;
}

std::string Writer::last_error() const {
    const Impl& s = *impl_;
    std::lock_guard lk(s.mu);
    return s.error;
}

}  // namespace pqmcp::audit
