// The tamper-evident audit trail: records in SQLite (WAL), each holding the
// hash of its predecessor, with checkpoints signed by the gateway's ML-DSA
// identity. The gateway appends through a bounded queue that a writer thread
// drains in batches (group commit), so the request path never waits on disk.
//
// A record is a JSON object whose "kind" says what it is (connection, request,
// integrity, policy, audit). Its hash is SHA-256 over a domain string, the
// predecessor's hash and the record's stored text, so the stored bytes are
// what is verified. A checkpoint signs (seq, hash, ts) of the record it covers.
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include <boost/json/object.hpp>

#include "pqmcp/core/error.hpp"
#include "pqmcp/identity/identity.hpp"

namespace pqmcp::audit {

enum class Errc {
    open_failed = 1,   // the database cannot be opened or created
    not_an_audit_db,   // it has no audit tables
    write_failed,      // an insert or commit failed
    invalid_argument,  // a bad --since, a bad option
    in_use,            // another writer (this or another process) has the database open
};
[[nodiscard]] const std::error_category& audit_category() noexcept;
[[nodiscard]] std::error_code make_error_code(Errc e) noexcept;

// The record kinds.
inline constexpr std::string_view k_connection = "connection";
inline constexpr std::string_view k_request = "request";
inline constexpr std::string_view k_integrity = "integrity";
inline constexpr std::string_view k_policy = "policy";
inline constexpr std::string_view k_lifecycle = "audit";  // writer started / stopped

struct WriterOptions {
    std::filesystem::path path;
    // Records waiting for the writer, per thread that appends (the queue has
    // a shard per thread); beyond it that thread's records are dropped and counted.
    std::size_t queue_capacity = 65'536;
    // The writer commits at least this often while records wait: what a crash
    // (kill -9) can lose is what arrived within this window (plus one
    // commit's duration). In practice it commits as soon as the previous
    // commit is done (group commit: what arrived meanwhile goes together), so
    // records wait far less; this is the bound it guarantees.
    std::chrono::milliseconds flush_interval{100};
    // At most this many records per transaction.
    std::size_t batch = 1'024;
    // A signed checkpoint every N records or T seconds (whichever comes first,
    // only when there are new records), and always at close().
    std::size_t checkpoint_records = 10'000;
    std::chrono::milliseconds checkpoint_interval{10'000};
    // PRAGMA synchronous: false = NORMAL (a committed record survives a crash
    // of the process, not of the machine), true = FULL (survives power loss).
    bool sync_full = false;
};

struct WriterStats {
    std::uint64_t queued = 0;   // accepted by append()
    std::uint64_t written = 0;  // of those, committed (the lifecycle records are not counted)
    std::uint64_t dropped = 0;  // refused: queue full or writer failed
    std::uint64_t checkpoints = 0;
    std::size_t depth = 0;       // waiting now
    std::uint64_t failures = 0;  // commits that failed (each retried later)
    bool failing = false;        // the last commit failed: records wait
};

// Appends records; thread-safe. One writer per database at a time (a second
// one, in this process or another, is refused with Errc::in_use: the chain
// must have one head). The lock is flock(2) on "<path>.lock", released by the
// kernel when the holder dies, so a killed gateway never leaves it stale.
class Writer final {
  public:
    // Opens (creating if needed, mode 0600) the database, continues its chain
    // from its last record, writes the {"kind":"audit","event":"opened"}
    // record, signs checkpoints with `signer` (kept by reference; must outlive
    // the writer) and starts the writer thread. Errors: open_failed,
    // not_an_audit_db, in_use, write_failed, invalid_argument (an option of 0).
    [[nodiscard]] static Result<std::unique_ptr<Writer>> open(WriterOptions options,
                                                              const identity::Identity& signer);
    ~Writer();  // close()
    Writer(const Writer&) = delete;
    Writer& operator=(const Writer&) = delete;
    Writer(Writer&&) = delete;
    Writer& operator=(Writer&&) = delete;

    // Queues a record (must have a string "kind"); the writer adds "ts" (UTC,
    // RFC 3339 with microseconds) if absent. Never blocks on disk; false when
    // dropped (queue full or the writer stopped after an error).
    bool append(boost::json::object record);
    // As append(), and `done` runs once the record is committed (true), or
    // once it never will be (false: dropped now, or lost when the writer
    // gave up). It runs on the writer thread (here when dropped), so it must
    // be quick: post the real work elsewhere.
    bool append_then(boost::json::object record, std::function<void(bool)> done);
    // Blocks until every record queued before the call is committed (or the
    // timeout passes). True when all were.
    bool flush(std::chrono::milliseconds timeout = std::chrono::seconds{10});
    // Commits what is queued, writes the {"kind":"audit","event":"closed",
    // "records":N} record (N: records append() accepted and this writer
    // committed) and a final checkpoint, and stops the thread. Idempotent;
    // append() refuses records afterwards.
    void close();
    [[nodiscard]] WriterStats stats() const;
    // Whether what is appended now will be committed: false while commits
    // fail (it keeps trying), after it gave up, and while a shard of the queue is full.
    [[nodiscard]] bool healthy() const;
    // The last error the writer met ("" if none).
    [[nodiscard]] std::string last_error() const;

    struct Impl;

  private:
    explicit Writer(std::unique_ptr<Impl> impl);
    std::unique_ptr<Impl> impl_;
};

// A stored record as read back.
struct Stored {
    std::int64_t seq = 0;
    std::string ts;
    std::string kind;
    std::string body;  // the JSON text as stored (hashed as is)
    std::string prev;  // hex
    std::string hash;  // hex
};

// One thing `verify` found wrong, at a record's position.
struct Problem {
    std::int64_t seq = 0;  // the record (or checkpoint's record) concerned
    // "modified", "deleted", "inserted", "reordered", "broken_link",
    // "checkpoint_mismatch", "checkpoint_signature", "checkpoint_missing_record",
    // "signer_changed", "unexpected_signer", and for what read() finds
    // records by: "column_mismatch", "span_mismatch"
    std::string kind;
    std::string detail;
};

struct VerifyOptions {
    // The peer ids whose checkpoints are trusted (pq1...): a checkpoint by
    // another is "unexpected_signer". Empty: any signer, listed in the report;
    // then a checkpoint signed by another key than the one before it is
    // "signer_changed" (name both to accept a rotated gateway identity).
    std::vector<std::string> signers;
};

struct VerifyReport {
    std::int64_t records = 0;
    std::int64_t first_seq = 0;
    std::int64_t last_seq = 0;
    std::int64_t checkpoints = 0;
    std::int64_t last_checkpoint_seq = 0;  // the last checkpoint that verifies; 0: none
    // Records after that checkpoint: chained but not yet signed (a writer
    // that is running, or one that was killed before its next checkpoint).
    // Nothing vouches for them beyond the chain itself.
    std::int64_t unsigned_tail = 0;
    std::vector<std::string> signer_ids;  // peer ids that signed checkpoints, first seen first
    std::vector<Problem> problems;
    [[nodiscard]] bool ok() const noexcept { return problems.empty(); }
    [[nodiscard]] std::string to_json() const;
};

// Reads the whole database in one read transaction (read-only; a running
// writer is not disturbed). Keeps about 100 bytes per record and 300 per
// span in memory.
// Errors: open_failed (also for a missing file, which is never created),
// not_an_audit_db.
[[nodiscard]] Result<VerifyReport> verify(const std::filesystem::path& db,
                                          const VerifyOptions& options = {});

// A checkpoint as stored.
struct StoredCheckpoint {
    std::int64_t seq = 0;
    std::string hash;
    std::string ts;
    std::string signer;
    std::string alg;
    std::string pub;
    std::string sig;
};

// The checks of `verify` over a chain read from elsewhere (one replica's
// records and checkpoints shipped to PostgreSQL). Keeps about 100 bytes per
// record; the order of the calls does not matter.
class ChainVerifier final {
  public:
    ChainVerifier();
    ~ChainVerifier();
    ChainVerifier(const ChainVerifier&) = delete;
    ChainVerifier& operator=(const ChainVerifier&) = delete;
    ChainVerifier(ChainVerifier&&) = delete;
    ChainVerifier& operator=(ChainVerifier&&) = delete;
    void record(std::int64_t seq, std::string_view body, std::string_view prev,
                std::string_view hash);
    // With the record's `ts` and `kind` columns as stored there, which are
    // checked against its body as verify() does ("column_mismatch").
    void record(std::int64_t seq, std::string_view body, std::string_view prev,
                std::string_view hash, std::string_view ts, std::string_view kind);
    void checkpoint(const StoredCheckpoint& cp);
    [[nodiscard]] VerifyReport finish(const VerifyOptions& options = {});

  private:
    struct State;
    std::unique_ptr<State> state_;
};

struct Query {
    std::int64_t after_seq = 0;        // records with seq > this
    std::optional<std::string> since;  // ts >= (RFC 3339, UTC)
    std::optional<std::string> until;  // ts <  (RFC 3339, UTC)
    std::optional<std::string> kind;
    std::size_t limit = 0;  // 0: no limit
    bool last = false;      // with limit: the newest `limit` records (in seq order)
};

// Read-only access for tail/export. Errors: open_failed, not_an_audit_db.
[[nodiscard]] Result<std::vector<Stored>> read(const std::filesystem::path& db, const Query& q);

// The checkpoints after `after_seq`, in order. Errors: as read().
[[nodiscard]] Result<std::vector<StoredCheckpoint>> read_checkpoints(
    const std::filesystem::path& db, std::int64_t after_seq);

// A time as records store it: "2026-11-24T10:00:00.123456Z" (UTC).
[[nodiscard]] std::string format_time(std::chrono::system_clock::time_point t);

// "2026-11-24T10:00:00Z" (optionally with a fraction of a second, or an
// offset "+01:00" instead of "Z"), "2026-11-24" (midnight UTC), or a duration
// back from now ("30s", "15m", "2h", "7d", "2w") to an RFC 3339 UTC time
// string with microseconds, comparable with stored "ts". Errors:
// invalid_argument, the detail saying what was expected.
[[nodiscard]] Result<std::string> parse_time(std::string_view text,
                                             std::chrono::system_clock::time_point now);

// One line for people: "2026-11-24T10:00:00.123456Z #17 request ...".
// Control characters in stored strings are escaped, long fields cut.
[[nodiscard]] std::string describe(const Stored& r);

}  // namespace pqmcp::audit

template <>
struct std::is_error_code_enum<pqmcp::audit::Errc> : std::true_type {};
