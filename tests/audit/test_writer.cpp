// The writer: what it stores (body, chain, checkpoints, lifecycle records),
// group commit and flush, the bounded queue, one writer per database, and
// continuing a chain after a clean close and after kill -9.
#include <signal.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <regex>
#include <thread>

#include "helpers.hpp"
#include "pqmcp/crypto/signature.hpp"

namespace pqmcp::audit::test {
namespace {

using namespace std::chrono_literals;

class AuditWriter : public ::testing::Test {
  protected:
    pqmcp::test::TempDir dir_;
    identity::Identity id_ = make_identity(dir_.path() / "gw");
    std::filesystem::path db_ = dir_.path() / "audit.db";
};

// Polls `done` until it holds or `limit` passes (for the writer thread's
// progress, which has no event the test could wait on).
template <typename F>
bool eventually(F done, std::chrono::milliseconds limit = 10s) {
    const auto end = std::chrono::steady_clock::now() + limit;
    while (!done()) {
        if (std::chrono::steady_clock::now() > end) {
            return false;
        }
        std::this_thread::sleep_for(5ms);
    }
    return true;
}

TEST_F(AuditWriter, AppendsCloseAndVerify) {
    {
        auto w = Writer::open(options_for(db_), id_);
        ASSERT_TRUE(w) << w.error().message();
        for (int i = 0; i < 50; ++i) {
            EXPECT_TRUE((*w)->append(request_record(i)));
        }
        (*w)->close();
        const auto st = (*w)->stats();
        EXPECT_EQ(st.queued, 50U);
        EXPECT_EQ(st.written, 50U);
        EXPECT_EQ(st.dropped, 0U);
        EXPECT_EQ(st.checkpoints, 1U);
        EXPECT_EQ(st.depth, 0U);
        EXPECT_EQ((*w)->last_error(), "");
    }
    const VerifyReport r = expect_intact(db_);
    EXPECT_EQ(r.records, 52);
    EXPECT_EQ(r.first_seq, 1);
    EXPECT_EQ(r.last_seq, 52);
    EXPECT_EQ(r.checkpoints, 1);
    EXPECT_EQ(r.last_checkpoint_seq, 52);
    EXPECT_EQ(r.unsigned_tail, 0);
    ASSERT_EQ(r.signer_ids.size(), 1U);
    EXPECT_EQ(r.signer_ids[0], id_.id.str());

    auto all = read(db_, Query{});
    ASSERT_TRUE(all);
    ASSERT_EQ(all->size(), 52U);
    const auto opened = json::parse(all->front().body).as_object();
    EXPECT_EQ(opened.at("kind"), "audit");
    EXPECT_EQ(opened.at("event"), "opened");
    EXPECT_EQ(opened.at("signer").as_string(), id_.id.str());
    const auto closed = json::parse(all->back().body).as_object();
    EXPECT_EQ(closed.at("event"), "closed");
    EXPECT_EQ(closed.at("records"), 50);
}

TEST_F(AuditWriter, StoresTheDocumentedFormat) {
    write_trail(db_, id_, 3);
    auto all = read(db_, Query{});
    ASSERT_TRUE(all);
    ASSERT_EQ(all->size(), 5U);
    const std::regex ts(R"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z)");
    std::string prev(64, '0');
    for (const auto& r : *all) {
        // "seq" and "ts" first, then the record as appended.
        EXPECT_EQ(r.body.rfind(fmt::format(R"({{"seq":{},"ts":")", r.seq), 0), 0U) << r.body;
        EXPECT_TRUE(std::regex_match(r.ts, ts)) << r.ts;
        const auto body = json::parse(r.body).as_object();
        EXPECT_EQ(body.at("seq"), r.seq);
        EXPECT_EQ(body.at("ts").as_string(), r.ts);
        EXPECT_EQ(body.at("kind").as_string(), r.kind);
        EXPECT_EQ(r.prev, prev);
        EXPECT_EQ(r.hash, documented_hash(r.prev, r.body));
        prev = r.hash;
    }
    const auto request = json::parse((*all)[1].body).as_object();
    auto expected = request_record(0);
    for (const auto& kv : expected) {
        EXPECT_EQ(request.at(kv.key()), kv.value()) << kv.key();
    }

    // The checkpoint: ML-DSA over {"hash":..,"seq":N,"ts":..} with the
    // documented context, by the key in `pub`, whose peer id is `signer`.
    const std::string hash = query_text(db_, "SELECT hash FROM checkpoints WHERE seq=5");
    const std::string cts = query_text(db_, "SELECT ts FROM checkpoints WHERE seq=5");
    const std::string pub = query_text(db_, "SELECT pub FROM checkpoints WHERE seq=5");
    const std::string sig = query_text(db_, "SELECT sig FROM checkpoints WHERE seq=5");
    EXPECT_EQ(hash, all->back().hash);
    EXPECT_EQ(query_text(db_, "SELECT signer FROM checkpoints WHERE seq=5"), id_.id.str());
    EXPECT_EQ(query_text(db_, "SELECT alg FROM checkpoints WHERE seq=5"), "ML-DSA-65");
    const auto der = from_hex(pub);
    const auto own = crypto::public_key_der(id_.key.get());
    ASSERT_TRUE(der && own);
    EXPECT_EQ(*der, *own);
    const std::string message = fmt::format(R"({{"hash":"{}","seq":5,"ts":"{}"}})", hash, cts);
    const auto signature = from_hex(sig);
    ASSERT_TRUE(signature);
    EXPECT_TRUE(crypto::verify(id_.key.get(), as_bytes(message), *signature,
                               as_bytes(std::string_view("pqmcp audit checkpoint v1"))));
    EXPECT_EQ(query_text(db_, "SELECT value FROM meta WHERE key='format'"), "pqmcp-audit-2");
    // No index on records(ts): one row in spans for the transaction, which
    // holds the least and greatest ts of its records.
    EXPECT_EQ(query_text(db_,
                         "SELECT count(*) FROM sqlite_master WHERE type='index' AND "
                         "tbl_name='records'"),
              "0");
    EXPECT_EQ(query_text(db_, "SELECT count(*) FROM spans"), "2");  // opened; the rest at close
    EXPECT_EQ(query_text(db_,
                         "SELECT group_concat(first || '-' || last, ',') FROM "
                         "(SELECT * FROM spans ORDER BY first)"),
              "1-1,2-5");
    EXPECT_EQ(query_text(db_, "SELECT max_ts FROM spans WHERE first = 2"), all->back().ts);
    EXPECT_EQ(query_text(db_, "PRAGMA journal_mode"), "wal");
    EXPECT_EQ(std::filesystem::status(db_).permissions() & std::filesystem::perms::all,
              std::filesystem::perms::owner_read | std::filesystem::perms::owner_write);
}

TEST_F(AuditWriter, KeepsAGivenTimestampAndReplacesSeq) {
    {
        auto w = Writer::open(options_for(db_), id_);
        ASSERT_TRUE(w);
        EXPECT_TRUE((*w)->append(json::object{{"kind", "policy"},
                                              {"event", "loaded"},
                                              {"seq", 999},
                                              {"ts", "2026-11-24T10:00:00Z"}}));
        (*w)->close();
    }
    auto all = read(db_, Query{});
    ASSERT_TRUE(all);
    ASSERT_EQ(all->size(), 3U);
    EXPECT_EQ((*all)[1].ts, "2026-11-24T10:00:00Z");
    EXPECT_EQ((*all)[1].body,
              R"({"seq":2,"ts":"2026-11-24T10:00:00Z","kind":"policy","event":"loaded"})");
}

TEST_F(AuditWriter, CheckpointEveryNRecords) {
    write_trail(db_, id_, 99, 10);  // opened + 99 = #1..#100, closed #101
    EXPECT_EQ(query_ints(db_, "SELECT seq FROM checkpoints ORDER BY seq"),
              (std::vector<std::int64_t>{10, 20, 30, 40, 50, 60, 70, 80, 90, 100, 101}));
    const VerifyReport r = expect_intact(db_);
    EXPECT_EQ(r.checkpoints, 11);
    EXPECT_EQ(r.last_checkpoint_seq, 101);
    EXPECT_EQ(r.unsigned_tail, 0);
}

TEST_F(AuditWriter, CheckpointEveryIntervalWhileRunning) {
    auto o = options_for(db_);
    o.checkpoint_interval = 50ms;
    auto w = Writer::open(o, id_);
    ASSERT_TRUE(w);
    for (int i = 0; i < 5; ++i) {
        ASSERT_TRUE((*w)->append(request_record(i)));
    }
    ASSERT_TRUE((*w)->flush());
    // Verified while the writer runs (read-only, WAL): the tail gets signed
    // without new records arriving.
    EXPECT_TRUE(eventually([this] {
        auto r = verify(db_);
        return r && r->ok() && r->last_checkpoint_seq == 6 && r->unsigned_tail == 0;
    }));
    // No new records, no new checkpoints.
    const auto before = (*w)->stats().checkpoints;
    std::this_thread::sleep_for(150ms);
    EXPECT_EQ((*w)->stats().checkpoints, before);
    (*w)->close();
}

TEST_F(AuditWriter, ContinuesTheChainAfterReopen) {
    write_trail(db_, id_, 10);  // #1..#12
    write_trail(db_, id_, 10);  // #13..#24
    const VerifyReport r = expect_intact(db_);
    EXPECT_EQ(r.records, 24);
    EXPECT_EQ(r.checkpoints, 2);
    auto second = read(db_, Query{12, {}, {}, {}, 1, false});
    ASSERT_TRUE(second);
    ASSERT_EQ(second->size(), 1U);
    const auto opened = json::parse(second->front().body).as_object();
    EXPECT_EQ(opened.at("event"), "opened");
    EXPECT_EQ(opened.at("continues"), 12);
    EXPECT_EQ(opened.at("unsigned"), 0);
    EXPECT_EQ(second->front().prev, query_text(db_, "SELECT hash FROM records WHERE seq=12"));
}

// A new trail gets 16 KiB pages (a quarter of the writes of SQLite's 4 KiB
// for the same records); a trail made with another page size keeps it, and
// its chain goes on.
TEST_F(AuditWriter, NewTrailsUseLargePagesAndOldOnesKeepTheirs) {
    write_trail(db_, id_, 3);
    EXPECT_EQ(query_text(db_, "PRAGMA page_size"), "16384");

    const auto old = dir_.path() / "old.db";
    write_trail(old, id_, 3);  // #1..#5
    // What a trail made before has: SQLite's default page size.
    {
        const Db db = open_db(old);
        exec(db.get(), "PRAGMA journal_mode=DELETE");
        exec(db.get(), "PRAGMA page_size=4096");
        exec(db.get(), "VACUUM");
        exec(db.get(), "PRAGMA journal_mode=WAL");
    }
    ASSERT_EQ(query_text(old, "PRAGMA page_size"), "4096");
    write_trail(old, id_, 3);  // #6..#10
    EXPECT_EQ(query_text(old, "PRAGMA page_size"), "4096");
    const VerifyReport r = expect_intact(old);
    EXPECT_EQ(r.records, 10);
    EXPECT_EQ(r.checkpoints, 2);
}

// Every transaction adds its row to spans, and the rows tile the records:
// each record in exactly one, between its least and greatest ts.
TEST_F(AuditWriter, SpansTileTheRecords) {
    write_trail(db_, id_, 40);
    write_trail(db_, id_, 7);
    EXPECT_EQ(query_text(db_, "SELECT count(*) FROM records"), "51");
    // Each span starts where the one before ended.
    EXPECT_EQ(query_text(db_,
                         "SELECT count(*) FROM spans s WHERE first > 1 AND NOT EXISTS "
                         "(SELECT 1 FROM spans t WHERE t.last = s.first - 1)"),
              "0");
    EXPECT_EQ(query_text(db_, "SELECT min(first) || '-' || max(last) FROM spans"), "1-51");
    // Its least and greatest ts are its records'.
    EXPECT_EQ(query_text(db_,
                         "SELECT count(*) FROM spans s WHERE min_ts != (SELECT min(ts) FROM "
                         "records WHERE seq BETWEEN s.first AND s.last) OR max_ts != "
                         "(SELECT max(ts) FROM records WHERE seq BETWEEN s.first AND s.last)"),
              "0");
}

// A trail in the format before spans (an index on ts, pqmcp-audit-1) is
// continued in its own format, and read and verified as before.
TEST_F(AuditWriter, ContinuesATrailOfTheOldFormatInItsFormat) {
    write_trail(db_, id_, 3);  // #1..#5
    {
        const Db db = open_db(db_);
        exec(db.get(), "DROP TABLE spans");
        exec(db.get(), "CREATE INDEX records_ts ON records(ts)");
        exec(db.get(), "UPDATE meta SET value = 'pqmcp-audit-1' WHERE key = 'format'");
    }
    write_trail(db_, id_, 3);  // #6..#10
    EXPECT_EQ(query_text(db_, "SELECT count(*) FROM sqlite_master WHERE name='spans'"), "0");
    EXPECT_EQ(query_text(db_, "SELECT value FROM meta WHERE key='format'"), "pqmcp-audit-1");
    const VerifyReport r = expect_intact(db_);
    EXPECT_EQ(r.records, 10);
    Query q;
    q.since = "2000-01-01";
    auto since = read(db_, q);
    ASSERT_TRUE(since) << since.error().message();
    EXPECT_EQ(since->size(), 10U);
    // Another format is still refused.
    exec(db_, "UPDATE meta SET value = 'pqmcp-audit-9' WHERE key = 'format'");
    auto other = read(db_, Query{});
    ASSERT_FALSE(other);
    EXPECT_EQ(other.error().code, Errc::not_an_audit_db);
    EXPECT_NE(other.error().detail.find("\"pqmcp-audit-9\", expected \"pqmcp-audit-2\" or "
                                        "\"pqmcp-audit-1\""),
              std::string::npos)
        << other.error().detail;
}

TEST_F(AuditWriter, RefusesASecondWriter) {
    auto first = Writer::open(options_for(db_), id_);
    ASSERT_TRUE(first);
    auto second = Writer::open(options_for(db_), id_);
    ASSERT_FALSE(second);
    EXPECT_EQ(second.error().code, Errc::in_use);
    EXPECT_NE(second.error().detail.find(fmt::format("pid {}", ::getpid())), std::string::npos)
        << second.error().detail;
    (*first)->close();
    auto third = Writer::open(options_for(db_), id_);
    ASSERT_TRUE(third) << third.error().message();
    (*third)->close();
    const VerifyReport r = expect_intact(db_);
    EXPECT_EQ(r.records, 4);
}

// A writer killed with -9 leaves no lock behind; the next one continues the
// chain and its first checkpoint signs the tail the dead one left unsigned.
TEST_F(AuditWriter, ContinuesAfterKill9) {
    const pid_t child = ::fork();
    ASSERT_GE(child, 0);
    if (child == 0) {
        auto w = Writer::open(options_for(db_), id_);
        if (!w) {
            ::_exit(3);
        }
        for (int i = 0; i < 5; ++i) {
            (void)(*w)->append(request_record(i));
        }
        (void)(*w)->flush();
        ::kill(::getpid(), SIGKILL);
        ::_exit(4);
    }
    int status = 0;
    ASSERT_EQ(::waitpid(child, &status, 0), child);
    ASSERT_TRUE(WIFSIGNALED(status)) << status;
    EXPECT_EQ(WTERMSIG(status), SIGKILL);

    auto dead = verify(db_);
    ASSERT_TRUE(dead) << dead.error().message();
    EXPECT_TRUE(dead->ok()) << problems_text(*dead);
    EXPECT_EQ(dead->records, 6);
    EXPECT_EQ(dead->checkpoints, 0);
    EXPECT_EQ(dead->unsigned_tail, 6);

    auto w = Writer::open(options_for(db_), id_);
    ASSERT_TRUE(w) << w.error().message();
    (*w)->close();
    const VerifyReport r = expect_intact(db_);
    EXPECT_EQ(r.records, 8);
    EXPECT_EQ(r.last_checkpoint_seq, 8);
    EXPECT_EQ(r.unsigned_tail, 0);
    auto opened = read(db_, Query{6, {}, {}, {}, 1, false});
    ASSERT_TRUE(opened);
    const auto body = json::parse(opened->front().body).as_object();
    EXPECT_EQ(body.at("continues"), 6);
    EXPECT_EQ(body.at("unsigned"), 6);
}

// Another connection holds the write lock: the writer waits (busy timeout)
// with one batch in hand while the queue fills; beyond its capacity records
// are dropped and counted, never blocking append(). Each record's "ts" is when
// append() took it, not when it was committed.
TEST_F(AuditWriter, FullQueueDropsAndFlushWaits) {
    auto o = options_for(db_);
    o.queue_capacity = 4;
    auto w = Writer::open(o, id_);
    ASSERT_TRUE(w);
    EXPECT_TRUE((*w)->healthy());
    const Db blocker = open_db(db_);
    exec(blocker.get(), "BEGIN IMMEDIATE");

    ASSERT_TRUE((*w)->append(request_record(0)));
    ASSERT_TRUE(
        eventually([&] { return (*w)->stats().depth == 0; }));  // taken, waiting on the lock
    for (int i = 1; i <= 4; ++i) {
        EXPECT_TRUE((*w)->append(request_record(i))) << i;
    }
    EXPECT_FALSE((*w)->healthy()) << "the queue is full";
    EXPECT_FALSE((*w)->append(request_record(5)));
    auto st = (*w)->stats();
    EXPECT_EQ(st.queued, 5U);
    EXPECT_EQ(st.dropped, 1U);
    EXPECT_EQ(st.depth, 4U);
    EXPECT_EQ(st.written, 0U);
    EXPECT_FALSE((*w)->flush(50ms));  // nothing can commit yet

    std::this_thread::sleep_for(2ms);
    const std::string released = query_text(db_, "SELECT strftime('%Y-%m-%dT%H:%M:%f', 'now')");
    exec(blocker.get(), "ROLLBACK");
    EXPECT_TRUE((*w)->flush());
    st = (*w)->stats();
    EXPECT_EQ(st.written, 5U);
    EXPECT_EQ(st.depth, 0U);
    EXPECT_TRUE((*w)->healthy()) << "room again";
    (*w)->close();
    EXPECT_FALSE((*w)->healthy()) << "closed";

    auto all = read(db_, Query{1, {}, {}, std::string("request"), 0, false});
    ASSERT_TRUE(all);
    ASSERT_EQ(all->size(), 5U);
    for (const auto& r : *all) {
        EXPECT_LT(r.ts.substr(0, 23), released) << "seq " << r.seq;
    }
    const VerifyReport r = expect_intact(db_);
}

TEST_F(AuditWriter, FlushCoversEverythingAppendedBefore) {
    auto w = Writer::open(options_for(db_), id_);
    ASSERT_TRUE(w);
    for (int round = 0; round < 5; ++round) {
        for (int i = 0; i < 200; ++i) {
            ASSERT_TRUE((*w)->append(request_record(i)));
        }
        ASSERT_TRUE((*w)->flush());
        // Committed: visible to another (read-only) connection.
        auto rows = read(db_, Query{0, {}, {}, std::string("request"), 0, false});
        ASSERT_TRUE(rows);
        EXPECT_EQ(rows->size(), static_cast<std::size_t>(200 * (round + 1)));
        EXPECT_EQ((*w)->stats().written, static_cast<std::uint64_t>(200 * (round + 1)));
    }
    (*w)->close();
    EXPECT_TRUE((*w)->flush(0ms));
}

// flush() with nothing to commit returns at once and leaves the writer
// asleep: it does not spin (holding its lock, which would also stall every
// later append) until a record comes.
TEST_F(AuditWriter, FlushWithNothingWaitingLeavesTheWriterAsleep) {
    auto w = Writer::open(options_for(db_), id_);
    ASSERT_TRUE(w);
    ASSERT_TRUE((*w)->append(request_record(0)));
    ASSERT_TRUE((*w)->flush());
    EXPECT_TRUE((*w)->flush(1s));  // nothing waits now
    const auto cpu = [] {
        timespec t{};
        ::clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
        return std::chrono::seconds{t.tv_sec} + std::chrono::nanoseconds{t.tv_nsec};
    };
    const auto before = cpu();
    std::this_thread::sleep_for(300ms);
    ASSERT_LT(cpu() - before, 100ms) << "the writer thread is busy with nothing to do";
    ASSERT_TRUE((*w)->append(request_record(1)));
    EXPECT_TRUE((*w)->flush());
    EXPECT_EQ((*w)->stats().written, 2U);
    (*w)->close();
}

TEST_F(AuditWriter, ConcurrentAppendersKeepOneChain) {
    auto o = options_for(db_);
    o.checkpoint_records = 100;
    auto w = Writer::open(o, id_);
    ASSERT_TRUE(w);
    std::vector<std::thread> threads;
    threads.reserve(4);
    for (int t = 0; t < 4; ++t) {
        threads.emplace_back([&w] {
            for (int i = 0; i < 250; ++i) {
                EXPECT_TRUE((*w)->append(request_record(i)));
            }
        });
    }
    for (auto& t : threads) {
        t.join();
    }
    (*w)->close();
    const VerifyReport r = expect_intact(db_);
    EXPECT_EQ(r.records, 1'002);
    EXPECT_EQ(r.checkpoints, 11);
}

// Each thread appends to its own shard of the queue, and the writer takes
// from all of them by time: what one thread appended before handing over to
// another comes first in the chain. Two threads take turns, one record each.
TEST_F(AuditWriter, ThreadsTakingTurnsKeepTheirOrderInTheChain) {
    auto w = Writer::open(options_for(db_), id_);
    ASSERT_TRUE(w);
    constexpr int k_turns = 600;
    std::mutex m;
    std::condition_variable cv;
    int turn = 0;
    const auto player = [&](int me) {
        std::unique_lock lk(m);
        for (;;) {
            cv.wait(lk, [&] { return turn >= k_turns || turn % 2 == me; });
            if (turn >= k_turns) {
                return;
            }
            EXPECT_TRUE((*w)->append(request_record(turn)));
            ++turn;
            cv.notify_all();
        }
    };
    std::thread a(player, 0);
    std::thread b(player, 1);
    a.join();
    b.join();
    (*w)->close();
    auto rows = read(db_, Query{0, {}, {}, std::string("request"), 0, false});
    ASSERT_TRUE(rows);
    ASSERT_EQ(rows->size(), static_cast<std::size_t>(k_turns));
    for (int i = 0; i < k_turns; ++i) {
        const auto body = json::parse((*rows)[static_cast<std::size_t>(i)].body).as_object();
        ASSERT_EQ(body.at("request_id").as_int64(), i) << "the record at " << i;
    }
    const VerifyReport r = expect_intact(db_);
}

// append_then() from several threads: each `done` runs once, with true, once
// its record is committed; a record after close is answered false at once.
TEST_F(AuditWriter, AppendThenFromSeveralThreadsAnswersEachOnceCommitted) {
    auto w = Writer::open(options_for(db_), id_);
    ASSERT_TRUE(w);
    constexpr int k_threads = 4;
    constexpr int k_each = 300;
    std::atomic<int> answered_true{0};
    std::atomic<int> answered_early{0};
    std::vector<std::thread> threads;
    threads.reserve(k_threads);
    for (int t = 0; t < k_threads; ++t) {
        threads.emplace_back([&, t] {
            for (int i = 0; i < k_each; ++i) {
                // This thread's first i + 1 records are in the trail by then.
                const auto done = [&, i](bool ok) {
                    if (!ok) {
                        return;
                    }
                    if ((*w)->stats().written < static_cast<std::uint64_t>(i) + 1) {
                        ++answered_early;
                    }
                    ++answered_true;
                };
                const bool taken = (*w)->append_then(request_record(t * k_each + i), done);
                EXPECT_TRUE(taken);
            }
        });
    }
    for (auto& t : threads) {
        t.join();
    }
    ASSERT_TRUE(eventually([&] { return answered_true.load() == k_threads * k_each; }))
        << answered_true.load();
    EXPECT_EQ(answered_early.load(), 0);
    (*w)->close();
    bool late = true;
    EXPECT_FALSE((*w)->append_then(request_record(0), [&late](bool ok) { late = ok; }));
    EXPECT_FALSE(late);
    EXPECT_EQ(answered_true.load(), k_threads * k_each);
    const VerifyReport r = expect_intact(db_);
    EXPECT_EQ(r.records, k_threads * k_each + 2);
}

// The queue's bound is per thread: a thread whose shard is full has its
// records refused (and healthy() is false meanwhile), while another thread
// still appends. flush() covers what every thread appended before it.
TEST_F(AuditWriter, AFullShardRefusesItsThreadOnly) {
    auto o = options_for(db_);
    o.queue_capacity = 4;
    auto w = Writer::open(o, id_);
    ASSERT_TRUE(w);
    const Db blocker = open_db(db_);
    exec(blocker.get(), "BEGIN IMMEDIATE");
    ASSERT_TRUE((*w)->append(request_record(0)));
    ASSERT_TRUE(eventually([&] { return (*w)->stats().depth == 0; }));  // taken, waiting
    for (int i = 1; i <= 4; ++i) {
        EXPECT_TRUE((*w)->append(request_record(i))) << i;
    }
    EXPECT_FALSE((*w)->append(request_record(5)));
    EXPECT_FALSE((*w)->healthy());
    bool other = false;
    std::thread([&] { other = (*w)->append(request_record(6)); }).join();
    EXPECT_TRUE(other) << "another thread's shard has room";
    EXPECT_EQ((*w)->stats().depth, 5U);
    exec(blocker.get(), "ROLLBACK");
    EXPECT_TRUE((*w)->flush());
    EXPECT_EQ((*w)->stats().written, 6U);
    EXPECT_EQ((*w)->stats().dropped, 1U);
    EXPECT_TRUE((*w)->healthy());
    (*w)->close();
    const VerifyReport r = expect_intact(db_);
}

TEST_F(AuditWriter, RefusesRecordsWithoutKindAndAfterClose) {
    auto w = Writer::open(options_for(db_), id_);
    ASSERT_TRUE(w);
    EXPECT_FALSE((*w)->append(json::object{{"event", "x"}}));
    EXPECT_FALSE((*w)->append(json::object{{"kind", 3}}));
    (*w)->close();
    (*w)->close();  // idempotent
    EXPECT_FALSE((*w)->append(request_record(0)));
    EXPECT_EQ((*w)->stats().dropped, 3U);
    EXPECT_EQ((*w)->stats().queued, 0U);
}

TEST_F(AuditWriter, RefusesBadOptionsAndForeignFiles) {
    auto o = options_for(db_);
    o.batch = 0;
    auto bad = Writer::open(o, id_);
    ASSERT_FALSE(bad);
    EXPECT_EQ(bad.error().code, Errc::invalid_argument);

    const auto other = dir_.path() / "other.db";
    exec(open_db(other, true).get(), "CREATE TABLE pins(x TEXT)");
    auto w = Writer::open(options_for(other), id_);
    ASSERT_FALSE(w);
    EXPECT_EQ(w.error().code, Errc::not_an_audit_db);
    auto v = verify(other);
    ASSERT_FALSE(v);
    EXPECT_EQ(v.error().code, Errc::not_an_audit_db);

    const auto text = dir_.path() / "notes.txt";
    {
        std::FILE* f = std::fopen(text.c_str(), "w");
        ASSERT_NE(f, nullptr);
        EXPECT_GT(std::fputs("this is not a database, it is a text file of some length\n", f), 0);
        EXPECT_EQ(std::fclose(f), 0);
    }
    auto t = Writer::open(options_for(text), id_);
    ASSERT_FALSE(t);
    EXPECT_EQ(t.error().code, Errc::not_an_audit_db) << t.error().message();

    auto missing_dir = Writer::open(options_for(dir_.path() / "no" / "such" / "audit.db"), id_);
    ASSERT_FALSE(missing_dir);
    EXPECT_EQ(missing_dir.error().code, Errc::open_failed);
}

TEST_F(AuditWriter, VerifyAndReadNeverCreateTheFile) {
    const auto missing = dir_.path() / "missing.db";
    auto v = verify(missing);
    ASSERT_FALSE(v);
    EXPECT_EQ(v.error().code, Errc::open_failed);
    EXPECT_NE(v.error().detail.find("no such file"), std::string::npos);
    auto r = read(missing, Query{});
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().code, Errc::open_failed);
    EXPECT_FALSE(std::filesystem::exists(missing));
}

}  // namespace
}  // namespace pqmcp::audit::test
