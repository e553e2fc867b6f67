// State that replicas of one gateway tier share, on real engines
// (docs/scale.md): rates, quotas and behaviour baselines on Redis (hiredis), pins and approvals
// on PostgreSQL (libpq), each replica's audit chain shipped to PostgreSQL.
// A single gateway needs none of it: its state stays in its own files.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include "pqmcp/audit/audit.hpp"
#include "pqmcp/core/error.hpp"
#include "pqmcp/integrity/pins.hpp"
#include "pqmcp/policy/behaviour.hpp"
#include "pqmcp/policy/limiter.hpp"

namespace boost::asio {
class io_context;
}  // namespace boost::asio

namespace pqmcp::cluster {

enum class Errc {
    bad_address = 1,  // not a redis:// or postgresql:// address this reads
    unreachable,      // the engine does not answer (connect, timeout)
    failed,           // it answered with an error
};
[[nodiscard]] const std::error_category& cluster_category() noexcept;
[[nodiscard]] std::error_code make_error_code(Errc e) noexcept;

// ---- Redis: rates and quotas every replica counts together ----

struct RedisOptions {
    // redis://[[USER]:PASSWORD@]HOST[:PORT][/DB] or unix:///PATH
    std::string url;
    // The longest a decision waits on Redis: connect, send and answer.
    std::chrono::milliseconds timeout{25};
    // After a failure, Redis is not asked again for this long (each decision
    // takes the fallback at once instead of waiting `timeout` again).
    std::chrono::milliseconds retry{1'000};
};

// Counts in Redis with two Lua scripts, each atomic on the server and timed
// by the server's clock (replicas' clocks do not matter): a token bucket for
// rates (a hash per slot) and a sliding-window log for quotas (a sorted set
// per slot, so N per window holds exactly across replicas). Keys are
// "pqmcp:rate:{H}" and "pqmcp:quota:{H}" with H the first 32 hex digits of
// SHA-256 of the slot, and expire after their window. Connections are kept
// in a small pool, one per thread in use. Errors (at start): bad_address.
// An unreachable server is not an error here: decisions take the fallback
// until it answers.
[[nodiscard]] Result<std::shared_ptr<policy::SharedCounts>> redis_counts(RedisOptions options);

// The same counts, and behaviour baselines, without blocking a thread: one
// pipelined connection per io_context (hiredis's asynchronous API on Asio),
// for the gateway's threads. Every call answers exactly once, never from
// inside the call (posted to `io`), within `timeout`: a count true (allowed)
// or false (used up), a baseline its snapshot, or nullopt (Redis did not
// answer; the caller's fallback decides). A call that times out drops the
// connection (its other calls answer nullopt); the next call after `retry`
// connects again. Use from `io`'s thread only.
class AsyncCounts final {
  public:
    using Done = std::function<void(std::optional<bool>)>;
    using Observed = std::function<void(std::optional<policy::Snapshot>)>;
    // Errors: bad_address.
    [[nodiscard]] static Result<std::unique_ptr<AsyncCounts>> create(boost::asio::io_context& io,
                                                                     RedisOptions options);
    ~AsyncCounts();  // answers nothing more: calls under way are dropped unanswered
    AsyncCounts(const AsyncCounts&) = delete;
    AsyncCounts& operator=(const AsyncCounts&) = delete;
    AsyncCounts(AsyncCounts&&) = delete;
    AsyncCounts& operator=(AsyncCounts&&) = delete;

    void take(const std::string& slot, const policy::Rate& rate, Done done);
    void count(const std::string& slot, const policy::Quota& quota, Done done);
    // `identity`'s behaviour baseline, shared by every replica (keys
    // "pqmcp:behaviour:{H}..." with H from the identity, kept for
    // policy::baseline_lifetime after its last call): the snapshot a call is
    // scored against (policy::Behaviour::score), and the baseline learns
    // from the call, in one script on Redis's clock.
    void observe(const std::string& identity, const policy::CallFacts& facts,
                 const policy::BehaviourSettings& settings, Observed done);
    [[nodiscard]] std::string describe() const;

    struct Impl;

  private:
    explicit AsyncCounts(std::shared_ptr<Impl> impl);
    std::shared_ptr<Impl> impl_;
};

// ---- PostgreSQL ----

// "postgresql://..." or "postgres://..." (libpq's URI forms).
[[nodiscard]] bool is_postgres(std::string_view spec) noexcept;

// Pins and approvals in PostgreSQL (table pqmcp_pins, created if missing).
// An approval (`pqmcp tools approve --state postgresql://...`) sends NOTIFY
// pqmcp_pins; every replica listening drops its cache on it, so the approval
// applies on the next listing everywhere. Every statement runs under a
// statement_timeout (5 s) on a connection opened with connect_timeout 5.
// Errors: bad_address, unreachable, failed (as integrity::Errc::store_failed
// detail when checking).
[[nodiscard]] Result<integrity::PinStore> postgres_pins(const std::string& conninfo);

// A pin store from `spec`: a PostgreSQL address, or a SQLite file.
[[nodiscard]] Result<integrity::PinStore> open_pins(const std::string& spec);

// Ships one replica's audit chain (its local SQLite database: records and
// signed checkpoints) to PostgreSQL (tables pqmcp_audit_records and
// pqmcp_audit_checkpoints, keyed by replica and seq), in order, in batches,
// from where PostgreSQL's copy ends. The local database stays the durability
// boundary: what is committed there is shipped, after a restart too.
struct ShipperOptions {
    std::string conninfo;
    std::filesystem::path local;  // the replica's audit database
    std::string replica;          // its name in PostgreSQL
    std::chrono::milliseconds interval{200};
    std::size_t batch = 2'000;
};

struct ShipperStats {
    std::int64_t shipped_seq = 0;  // the last record PostgreSQL has
    std::uint64_t records = 0;     // shipped by this shipper
    std::uint64_t failures = 0;    // rounds that failed (each retried)
    bool failing = false;
};

class Shipper final {
  public:
    // Starts the shipping thread (it connects in its own time; a PostgreSQL
    // that is down is retried). Errors: bad_address.
    [[nodiscard]] static Result<std::unique_ptr<Shipper>> start(ShipperOptions options);
    ~Shipper();  // stop()
    Shipper(const Shipper&) = delete;
    Shipper& operator=(const Shipper&) = delete;
    Shipper(Shipper&&) = delete;
    Shipper& operator=(Shipper&&) = delete;
    // Ships what the local database has now (up to `timeout`); true when all of it is shipped.
    bool flush(std::chrono::milliseconds timeout);
    // One last round, then stops the thread. Idempotent.
    void stop();
    [[nodiscard]] ShipperStats stats() const;

    struct Impl;

  private:
    explicit Shipper(std::unique_ptr<Impl> impl);
    std::unique_ptr<Impl> impl_;
};

// One replica's chain as PostgreSQL holds it, checked as `pqmcp audit verify`
// checks a local database.
struct ReplicaReport {
    std::string replica;
    audit::VerifyReport report;
};

// Errors: bad_address, unreachable, failed.
[[nodiscard]] Result<std::vector<ReplicaReport>> verify_postgres(
    const std::string& conninfo, const audit::VerifyOptions& options = {});

}  // namespace pqmcp::cluster

template <>
struct std::is_error_code_enum<pqmcp::cluster::Errc> : std::true_type {};
