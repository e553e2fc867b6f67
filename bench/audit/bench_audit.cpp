// What the audit trail costs. Records per second of a typical request record
// through audit::Writer (queue, writer thread, SHA-256 chain, group commit,
// a signed ML-DSA-65 checkpoint every 10,000 records), side by side with the
// baseline: the same records serialized and inserted into a plain SQLite WAL
// table in batched transactions, with no hashing, chain or thread. Then
// append() alone, the cost on the gateway's request path (from one thread
// and from two at once), and verify().
#include <benchmark/benchmark.h>
#include <sqlite3.h>

#include <cstdlib>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <boost/json.hpp>

#include "../../tests/common/temp_dir.hpp"
#include "pqmcp/audit/audit.hpp"
#include "pqmcp/identity/identity.hpp"

namespace {

namespace json = boost::json;
namespace audit = pqmcp::audit;

constexpr int k_records = 1'000;  // per iteration of the throughput benchmarks

using TempDir = pqmcp::test::TempDir;

const pqmcp::identity::Identity& gateway_identity() {
    static const pqmcp::identity::Identity id = [] {
        auto r = pqmcp::identity::generate(pqmcp::identity::KeygenOptions{});
        if (!r) {
            std::abort();
        }
        return std::move(*r);
    }();
    return id;
}

// What the gateway records for a tools/call (about 400 bytes stored).
json::object request_record(int i) {
    return json::object{
        {"kind", "request"},
        {"session", "3f9c2a7e51d04b6c8e2f1a0b9c7d6e5f"},
        {"request_id", i},
        {"identity", "pq1qk7wz3x5m2c8v4n6b9r1t0y2u4i6o8p0a2s4d6f8g1h3j5k7l9"},
        {"upstream", "files"},
        {"method", "tools/call"},
        {"target", "files__read_file"},
        {"decision", "allow"},
        {"rule", "allow-reads"},
        {"mode", "enforce"},
        {"outcome", "ok"},
        {"latency_us", 1'234},
        {"args_sha256", "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"}};
}

audit::WriterOptions writer_options(const std::filesystem::path& db, bool sync_full) {
    audit::WriterOptions o;
    o.path = db;
    o.sync_full = sync_full;
    return o;
}

// Append k_records, then flush: sustained records/s through the writer.
void writer_append_flush(benchmark::State& state) {
    const TempDir dir;
    auto w = audit::Writer::open(writer_options(dir.path() / "audit.db", state.range(0) != 0),
                                 gateway_identity());
    if (!w) {
        state.SkipWithError(w.error().message().c_str());
        return;
    }
    const json::object record = request_record(1);
    for (auto _ : state) {
        for (int i = 0; i < k_records; ++i) {
            (*w)->append(record);
        }
        if (!(*w)->flush()) {
            state.SkipWithError("flush timed out");
            break;
        }
    }
    (*w)->close();
    const auto st = (*w)->stats();
    state.SetItemsProcessed(state.iterations() * k_records);
    state.counters["dropped"] = static_cast<double>(st.dropped);
    state.counters["checkpoints"] = static_cast<double>(st.checkpoints);
}
// CPU is the whole process's (the writer's thread with the caller's), so the
// two rows compare the CPU a record costs, not only the wall clock.
BENCHMARK(writer_append_flush)
    ->ArgName("sync_full")
    ->Arg(0)
    ->Arg(1)
    ->Unit(benchmark::kMillisecond)
    ->MeasureProcessCPUTime()
    ->UseRealTime();

// The baseline: the same record with seq and ts, serialized and inserted into
// a plain WAL table with the trail's page size, 1,024 per transaction, on the
// calling thread.
void sqlite_batched_insert(benchmark::State& state) {
    const TempDir dir;
    sqlite3* db = nullptr;
    const auto path = dir.path() / "plain.db";
    if (sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, nullptr) !=
        SQLITE_OK) {
        state.SkipWithError("sqlite3_open_v2");
        return;
    }
    const bool full = state.range(0) != 0;
    const std::string setup = fmt::format(
        "PRAGMA page_size=16384; PRAGMA journal_mode=WAL; PRAGMA synchronous={}; CREATE TABLE "
        "records(seq INTEGER PRIMARY "
        "KEY, ts TEXT NOT NULL, kind TEXT NOT NULL, body TEXT NOT NULL); CREATE INDEX records_ts "
        "ON records(ts);",
        full ? "FULL" : "NORMAL");
    sqlite3_exec(db, setup.c_str(), nullptr, nullptr, nullptr);
    sqlite3_stmt* ins = nullptr;
    sqlite3_prepare_v2(db, "INSERT INTO records(seq, ts, kind, body) VALUES(?1, ?2, ?3, ?4)", -1,
                       &ins, nullptr);
    const json::object record = request_record(1);
    std::int64_t seq = 0;
    const std::string ts = "2026-11-24T10:00:00.123456Z";
    for (auto _ : state) {
        int in_tx = 0;
        sqlite3_exec(db, "BEGIN IMMEDIATE", nullptr, nullptr, nullptr);
        for (int i = 0; i < k_records; ++i) {
            json::object r = record;
            r["seq"] = ++seq;
            r["ts"] = ts;
            const std::string body = json::serialize(r);
            sqlite3_reset(ins);
            sqlite3_bind_int64(ins, 1, seq);
            sqlite3_bind_text(ins, 2, ts.data(), static_cast<int>(ts.size()), SQLITE_STATIC);
            sqlite3_bind_text(ins, 3, "request", -1, SQLITE_STATIC);
            sqlite3_bind_text(ins, 4, body.data(), static_cast<int>(body.size()), SQLITE_STATIC);
            sqlite3_step(ins);
            if (++in_tx == 1'024) {
                sqlite3_exec(db, "COMMIT; BEGIN IMMEDIATE", nullptr, nullptr, nullptr);
                in_tx = 0;
            }
        }
        sqlite3_exec(db, "COMMIT", nullptr, nullptr, nullptr);
    }
    sqlite3_finalize(ins);
    sqlite3_close_v2(db);
    state.SetItemsProcessed(state.iterations() * k_records);
}
BENCHMARK(sqlite_batched_insert)
    ->ArgName("sync_full")
    ->Arg(0)
    ->Arg(1)
    ->Unit(benchmark::kMillisecond)
    ->MeasureProcessCPUTime()
    ->UseRealTime();

// append() on the caller's thread while the writer drains in the background:
// what a request pays. The records are built and the queue drained outside
// the timed part.
void append_only(benchmark::State& state) {
    const TempDir dir;
    auto w =
        audit::Writer::open(writer_options(dir.path() / "audit.db", false), gateway_identity());
    if (!w) {
        state.SkipWithError(w.error().message().c_str());
        return;
    }
    constexpr std::size_t k_chunk = 4'096;
    std::vector<json::object> records(k_chunk, request_record(1));
    std::size_t next = 0;
    for (auto _ : state) {
        benchmark::DoNotOptimize((*w)->append(std::move(records[next])));
        if (++next == k_chunk) {
            state.PauseTiming();
            (void)(*w)->flush();
            records.assign(k_chunk, request_record(1));
            next = 0;
            state.ResumeTiming();
        }
    }
    (*w)->close();
    state.counters["dropped"] = static_cast<double>((*w)->stats().dropped);
    state.SetItemsProcessed(state.iterations());
}
BENCHMARK(append_only)->Unit(benchmark::kNanosecond);

// append() from several threads onto one writer, as every gateway thread
// records its requests: what a request pays when the others append too.
// Thread 0 opens the writer before the first iteration (every thread starts
// its loop together) and closes it after the last.
audit::Writer* g_shared_writer = nullptr;

void append_threads(benchmark::State& state) {
    std::unique_ptr<TempDir> dir;
    std::unique_ptr<audit::Writer> owned;
    if (state.thread_index() == 0) {
        dir = std::make_unique<TempDir>();
        auto w = audit::Writer::open(writer_options(dir->path() / "audit.db", false),
                                     gateway_identity());
        if (!w) {
            std::abort();
        }
        owned = std::move(*w);
        g_shared_writer = owned.get();
    }
    constexpr std::size_t k_chunk = 4'096;
    std::vector<json::object> records(k_chunk, request_record(1));
    std::size_t next = 0;
    for (auto _ : state) {
        benchmark::DoNotOptimize(g_shared_writer->append(std::move(records[next])));
        if (++next == k_chunk) {
            state.PauseTiming();
            (void)g_shared_writer->flush();
            records.assign(k_chunk, request_record(1));
            next = 0;
            state.ResumeTiming();
        }
    }
    state.SetItemsProcessed(state.iterations());
    if (owned) {
        owned->close();
        state.counters["dropped"] = static_cast<double>(owned->stats().dropped);
        g_shared_writer = nullptr;
    }
}
BENCHMARK(append_threads)->Unit(benchmark::kNanosecond)->Threads(1)->Threads(2)->UseRealTime();

// verify() over 10,000 records (one checkpoint at close): records/s.
void verify_trail(benchmark::State& state) {
    const TempDir dir;
    const auto db = dir.path() / "audit.db";
    {
        auto w = audit::Writer::open(writer_options(db, false), gateway_identity());
        if (!w) {
            state.SkipWithError(w.error().message().c_str());
            return;
        }
        const json::object record = request_record(1);
        for (int i = 0; i < 9'998; ++i) {
            (*w)->append(record);
        }
        (*w)->close();
    }
    for (auto _ : state) {
        auto r = audit::verify(db);
        if (!r || !r->ok()) {
            state.SkipWithError("verify failed");
            break;
        }
        benchmark::DoNotOptimize(r->records);
    }
    state.SetItemsProcessed(state.iterations() * 10'000);
}
BENCHMARK(verify_trail)->Unit(benchmark::kMillisecond);

}  // namespace

BENCHMARK_MAIN();
