// Each replica's audit chain shipped to PostgreSQL, and verified there. See
// cluster.hpp.
#include <algorithm>
#include <condition_variable>
#include <mutex>
#include <thread>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "pg.hpp"

namespace pqmcp::cluster {

namespace {

using detail::Pg;
using detail::text;

constexpr std::string_view k_schema = R"sql(
CREATE TABLE IF NOT EXISTS pqmcp_audit_records(
  replica TEXT NOT NULL,
  seq BIGINT NOT NULL,
  ts TEXT NOT NULL,
  kind TEXT NOT NULL,
  body TEXT NOT NULL,
  prev TEXT NOT NULL,
  hash TEXT NOT NULL,
  PRIMARY KEY(replica, seq));
CREATE TABLE IF NOT EXISTS pqmcp_audit_checkpoints(
  replica TEXT NOT NULL,
  seq BIGINT NOT NULL,
  hash TEXT NOT NULL,
  ts TEXT NOT NULL,
  signer TEXT NOT NULL,
  alg TEXT NOT NULL,
  pub TEXT NOT NULL,
  sig TEXT NOT NULL,
  PRIMARY KEY(replica, seq)))sql";

Status ensure_schema(Pg& pg) {
    if (auto s = detail::exec_all(pg, k_schema); s) {
        return s;
    }
    return detail::exec_all(pg, k_schema);  // lost a race with another replica's CREATE
}

Result<std::int64_t> max_seq(Pg& pg, std::string_view table, const std::string& replica) {
    auto r = pg.exec(fmt::format("SELECT coalesce(max(seq), 0) FROM {} WHERE replica=$1", table),
                     {replica});
    if (!r) {
        return tl::unexpected(r.error());
    }
    return std::stoll(std::string(text(r->get(), 0, 0)));
}

audit::Query query(std::int64_t after, std::size_t limit) {
    audit::Query q;
    q.after_seq = after;
    q.limit = limit;
    return q;
}

audit::Query newest_record() {
    audit::Query q;
    q.limit = 1;
    q.last = true;
    return q;
}

}  // namespace

struct Shipper::Impl {
    ShipperOptions options;
    std::optional<Pg> pg;
    std::int64_t checkpoint_seq = 0;  // the last checkpoint PostgreSQL has
    bool checked = false;             // PostgreSQL's copy is known to be this chain's

    mutable std::mutex mutex;
    std::condition_variable wake;   // the thread: a flush, or stop
    std::condition_variable round;  // flush(): a round ended
    bool stopping = false;
    bool in_round = false;  // a round is shipping now
    std::uint64_t rounds = 0;
    ShipperStats stats;
    std::thread thread;

    // One round: connect if needed, then ship what is new. True when the
    // local database has nothing more to ship.
    Result<bool> ship() {
        if (!pg) {
            auto c = Pg::connect(options.conninfo);
            if (!c) {
                return tl::unexpected(c.error());
            }
            pg.emplace(std::move(*c));
            if (auto s = ensure_schema(*pg); !s) {
                pg.reset();
                return tl::unexpected(s.error());
            }
            auto last = max_seq(*pg, "pqmcp_audit_records", options.replica);
            auto last_cp = last ? max_seq(*pg, "pqmcp_audit_checkpoints", options.replica) : last;
            if (!last || !last_cp) {
                pg.reset();
                return tl::unexpected(!last ? last.error() : last_cp.error());
            }
            const std::lock_guard lock(mutex);
            stats.shipped_seq = *last;
            checkpoint_seq = *last_cp;
        }
        std::int64_t from = 0;
        {
            const std::lock_guard lock(mutex);
            from = stats.shipped_seq;
        }
        if (!checked && from > 0) {
            // The record PostgreSQL ends with must be the local one: a new
            // local database under an old replica name would otherwise leave
            // a chain that verify cannot join.
            auto local = audit::read(options.local, query(from - 1, 1));
            if (!local) {
                return tl::unexpected(local.error());
            }
            auto theirs =
                pg->exec("SELECT hash FROM pqmcp_audit_records WHERE replica=$1 AND seq=$2",
                         {options.replica, std::to_string(from)});
            if (!theirs) {
                return tl::unexpected(theirs.error());
            }
            if (local->empty() || local->front().seq != from || PQntuples(theirs->get()) != 1 ||
                text(theirs->get(), 0, 0) != local->front().hash) {
                return fail(Errc::failed,
                            fmt::format("replica {}: PostgreSQL's chain does not continue in {} "
                                        "(record {} differs or is missing); give this replica "
                                        "another name (cluster.replica)",
                                        options.replica, options.local.string(), from));
            }
        }
        checked = true;
        auto records = audit::read(options.local, query(from, options.batch));
        if (!records) {
            return tl::unexpected(records.error());
        }
        auto cps = audit::read_checkpoints(options.local, checkpoint_seq);
        if (!cps) {
            return tl::unexpected(cps.error());
        }
        const std::int64_t last = records->empty() ? from : records->back().seq;
        if (records->empty() && cps->empty()) {
            return true;
        }
        if (auto r = pg->exec("BEGIN"); !r) {
            pg.reset();
            return tl::unexpected(r.error());
        }
        const auto abort = [this](const Error& e) -> tl::unexpected<Error> {
            (void)pg->exec("ROLLBACK");
            return tl::unexpected(e);
        };
        for (const auto& r : *records) {
            auto ins = pg->exec(
                "INSERT INTO pqmcp_audit_records(replica, seq, ts, kind, body, prev, hash) "
                "VALUES($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING",
                {options.replica, std::to_string(r.seq), r.ts, r.kind, r.body, r.prev, r.hash});
            if (!ins) {
                return abort(ins.error());
            }
        }
        // Checkpoints only of records shipped (in this or an earlier round).
        std::int64_t cp_last = checkpoint_seq;
        for (const auto& cp : *cps) {
            if (cp.seq > last) {
                break;
            }
            auto ins = pg->exec(
                "INSERT INTO pqmcp_audit_checkpoints(replica, seq, hash, ts, signer, alg, pub, "
                "sig) VALUES($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT DO NOTHING",
                {options.replica, std::to_string(cp.seq), cp.hash, cp.ts, cp.signer, cp.alg, cp.pub,
                 cp.sig});
            if (!ins) {
                return abort(ins.error());
            }
            cp_last = cp.seq;
        }
        if (auto c = pg->exec("COMMIT"); !c) {
            pg.reset();
            return tl::unexpected(c.error());
        }
        checkpoint_seq = cp_last;
        const std::lock_guard lock(mutex);
        stats.records += records->size();
        stats.shipped_seq = last;
        return records->size() < options.batch;
    }

    void run() {
        std::unique_lock lock(mutex);
        bool more = false;
        for (;;) {
            if (!more) {
                wake.wait_for(lock, options.interval, [this] { return stopping; });
            }
            const bool last_round = stopping;
            in_round = true;
            lock.unlock();
            auto done = ship();
            lock.lock();
            in_round = false;
            if (!done) {
                ++stats.failures;
                if (!stats.failing) {
                    spdlog::warn(
                        "audit: shipping replica {}'s chain to PostgreSQL fails ({}); "
                        "its records wait in {} and are shipped once it works",
                        options.replica, done.error().message(), options.local.string());
                }
                stats.failing = true;
                if (done.error().code == Errc::failed || done.error().code == Errc::unreachable) {
                    pg.reset();
                }
                more = false;
            } else {
                if (stats.failing) {
                    spdlog::info("audit: shipping replica {}'s chain to PostgreSQL works again",
                                 options.replica);
                }
                stats.failing = false;
                more = !*done;
            }
            ++rounds;
            round.notify_all();
            if (last_round && !more) {
                return;
            }
        }
    }
};

Shipper::Shipper(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

Result<std::unique_ptr<Shipper>> Shipper::start(ShipperOptions options) {
    if (!is_postgres(options.conninfo)) {
        return fail(Errc::bad_address,
                    fmt::format("{}: expected a postgresql:// address", options.conninfo));
    }
    if (options.replica.empty() || options.batch == 0 || options.interval.count() <= 0) {
        return fail(Errc::bad_address, "audit shipping: a replica name, a batch and an interval");
    }
    auto impl = std::make_unique<Impl>();
    impl->options = std::move(options);
    Impl* raw = impl.get();
    impl->thread = std::thread([raw] { raw->run(); });
    return std::unique_ptr<Shipper>(new Shipper(std::move(impl)));
}

Shipper::~Shipper() {
    stop();
}

bool Shipper::flush(std::chrono::milliseconds timeout) {
    auto newest = audit::read(impl_->options.local, newest_record());
    const std::int64_t target = newest && !newest->empty() ? newest->back().seq : 0;
    std::unique_lock lock(impl_->mutex);
    // A round that started after the call (not one already under way), and went well.
    const std::uint64_t asked = impl_->rounds + (impl_->in_round ? 1 : 0);
    const auto done = [&] {
        return impl_->rounds > asked && !impl_->stats.failing && impl_->stats.shipped_seq >= target;
    };
    impl_->wake.notify_all();
    return impl_->round.wait_for(lock, timeout, [&] {
        impl_->wake.notify_all();
        return done() || !impl_->thread.joinable();
    }) && done();
}

void Shipper::stop() {
    {
        const std::lock_guard lock(impl_->mutex);
        impl_->stopping = true;
    }
    impl_->wake.notify_all();
    if (impl_->thread.joinable()) {
        impl_->thread.join();
    }
}

ShipperStats Shipper::stats() const {
    const std::lock_guard lock(impl_->mutex);
    return impl_->stats;
}

Result<std::vector<ReplicaReport>> verify_postgres(const std::string& conninfo,
                                                   const audit::VerifyOptions& options) {
    if (!is_postgres(conninfo)) {
        return fail(Errc::bad_address,
                    fmt::format("{}: expected a postgresql:// address", conninfo));
    }
    auto pg = Pg::connect(conninfo);
    if (!pg) {
        return tl::unexpected(pg.error());
    }
    // One snapshot of every replica's chain.
    if (auto r = pg->exec("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"); !r) {
        return tl::unexpected(r.error());
    }
    auto tables = pg->exec(
        "SELECT to_regclass('pqmcp_audit_records') IS NOT NULL AND "
        "to_regclass('pqmcp_audit_checkpoints') IS NOT NULL");
    if (!tables) {
        return tl::unexpected(tables.error());
    }
    if (text(tables->get(), 0, 0) != "t") {
        return fail(Errc::failed, "no audit tables in this database (no replica shipped to it)");
    }
    auto names = pg->exec(
        "SELECT replica FROM pqmcp_audit_records UNION SELECT replica FROM "
        "pqmcp_audit_checkpoints ORDER BY 1");
    if (!names) {
        return tl::unexpected(names.error());
    }
    std::vector<ReplicaReport> out;
    for (int i = 0; i < PQntuples(names->get()); ++i) {
        ReplicaReport rep;
        rep.replica = std::string(text(names->get(), i, 0));
        audit::ChainVerifier chain;
        auto rows = pg->exec(
            "SELECT seq, body, prev, hash, ts, kind FROM pqmcp_audit_records WHERE replica=$1 "
            "ORDER BY seq",
            {rep.replica});
        if (!rows) {
            return tl::unexpected(rows.error());
        }
        for (int j = 0; j < PQntuples(rows->get()); ++j) {
            chain.record(std::stoll(std::string(text(rows->get(), j, 0))), text(rows->get(), j, 1),
                         text(rows->get(), j, 2), text(rows->get(), j, 3), text(rows->get(), j, 4),
                         text(rows->get(), j, 5));
        }
        rows->reset();
        auto cps = pg->exec(
            "SELECT seq, hash, ts, signer, alg, pub, sig FROM pqmcp_audit_checkpoints WHERE "
            "replica=$1 ORDER BY seq",
            {rep.replica});
        if (!cps) {
            return tl::unexpected(cps.error());
        }
        for (int j = 0; j < PQntuples(cps->get()); ++j) {
            const auto col = [&](int c) { return std::string(text(cps->get(), j, c)); };
            chain.checkpoint(audit::StoredCheckpoint{std::stoll(col(0)), col(1), col(2), col(3),
                                                     col(4), col(5), col(6)});
        }
        rep.report = chain.finish(options);
        out.push_back(std::move(rep));
    }
    (void)pg->exec("COMMIT");
    return out;
}

}  // namespace pqmcp::cluster
