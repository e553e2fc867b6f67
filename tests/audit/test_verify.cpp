// verify() against tampered copies of a trail: each kind of tampering is
// reported once, as what it is, at the record it concerns.
#include <algorithm>
#include <set>
#include <string>

#include "helpers.hpp"

namespace pqmcp::audit::test {
namespace {

constexpr int k_requests = 30;  // #1 opened, #2..#31 requests, #32 closed
const std::set<std::string> k_chain_kinds = {"modified", "deleted", "inserted", "reordered",
                                             "broken_link"};

class AuditVerify : public ::testing::Test {
  protected:
    void SetUp() override { write_trail(pristine_, id_, k_requests); }

    // A copy to tamper with (the writer is closed: no WAL left to copy).
    std::filesystem::path copy(std::size_t checkpoint_records = 0) {
        auto path = dir_.path() / fmt::format("copy{}.db", ++copies_);
        if (checkpoint_records != 0) {
            write_trail(path, id_, k_requests, checkpoint_records);
        } else {
            std::filesystem::copy_file(pristine_, path);
        }
        EXPECT_FALSE(std::filesystem::exists(path.string() + "-wal"));
        return path;
    }

    static VerifyReport check(const std::filesystem::path& db, const VerifyOptions& o = {}) {
        auto r = verify(db, o);
        EXPECT_TRUE(r) << r.error().message();
        return r ? *r : VerifyReport{};
    }

    // The one problem `r` has: at `seq`, of `kind`, its detail containing `says`.
    static void expect_only(const VerifyReport& r, std::int64_t seq, const std::string& kind,
                            const std::string& says = "") {
        ASSERT_EQ(r.problems.size(), 1U) << problems_text(r);
        EXPECT_EQ(r.problems[0].seq, seq);
        EXPECT_EQ(r.problems[0].kind, kind);
        EXPECT_NE(r.problems[0].detail.find(says), std::string::npos) << r.problems[0].detail;
    }

    // The problems about the chain (not the checkpoints).
    static std::vector<Problem> chain_problems(const VerifyReport& r) {
        std::vector<Problem> out;
        for (const auto& p : r.problems) {
            if (k_chain_kinds.count(p.kind) != 0) {
                out.push_back(p);
            }
        }
        return out;
    }

    // Moves every record with seq >= from by delta (in two steps, so the
    // primary key never collides).
    static void renumber(sqlite3* db, int from, int delta) {
        exec(db,
             fmt::format("UPDATE records SET seq = -(seq + ({})) WHERE seq >= {}", delta, from));
        exec(db, "UPDATE records SET seq = -seq WHERE seq < 0");
    }

    pqmcp::test::TempDir dir_;
    identity::Identity id_ = make_identity(dir_.path() / "gw");
    std::filesystem::path pristine_ = dir_.path() / "audit.db";
    int copies_ = 0;
};

TEST_F(AuditVerify, PristineTrailIsOk) {
    const auto r = check(pristine_);
    EXPECT_TRUE(r.ok()) << problems_text(r);
    EXPECT_EQ(r.records, 32);
    EXPECT_EQ(r.last_checkpoint_seq, 32);
    const auto j = json::parse(r.to_json()).as_object();
    EXPECT_EQ(j.at("ok"), true);
    EXPECT_EQ(j.at("records"), 32);
    EXPECT_EQ(j.at("unsigned_tail"), 0);
    EXPECT_EQ(j.at("signers").as_array().at(0).as_string(), id_.id.str());
    EXPECT_TRUE(j.at("problems").as_array().empty());
}

TEST_F(AuditVerify, ModifiedBody) {
    const auto db = copy();
    exec(db, "UPDATE records SET body = replace(body, 'demo__echo', 'demo__evil') WHERE seq = 17");
    const auto r = check(db);
    expect_only(r, 17, "modified");
    const auto j = json::parse(r.to_json()).as_object();
    EXPECT_EQ(j.at("ok"), false);
    EXPECT_EQ(j.at("problems").as_array().at(0).at("kind"), "modified");
}

TEST_F(AuditVerify, ModifiedPrevOrHashIsOneProblem) {
    const auto a = copy();
    exec(a, "UPDATE records SET hash = replace(hash, substr(hash, 1, 1), 'x') WHERE seq = 17");
    auto r = check(a);
    expect_only(r, 17, "modified");

    const auto b = copy();
    exec(b, "UPDATE records SET prev = (SELECT hash FROM records WHERE seq = 3) WHERE seq = 17");
    r = check(b);
    expect_only(r, 17, "modified");
}

TEST_F(AuditVerify, DeletedRecord) {
    const auto db = copy();
    exec(db, "DELETE FROM records WHERE seq = 17");
    const auto r = check(db);
    expect_only(r, 17, "deleted");
    EXPECT_EQ(r.records, 31);
}

TEST_F(AuditVerify, DeletedRange) {
    const auto db = copy();
    exec(db, "DELETE FROM records WHERE seq BETWEEN 17 AND 20");
    const auto r = check(db);
    expect_only(r, 17, "deleted", "#17..#20");
}

TEST_F(AuditVerify, DeletedAndRenumbered) {
    const auto db = copy();
    const Db h = open_db(db);
    exec(h.get(), "DELETE FROM records WHERE seq = 17");
    renumber(h.get(), 18, -1);
    const auto r = check(db);
    const auto chain = chain_problems(r);
    ASSERT_EQ(chain.size(), 1U) << problems_text(r);
    EXPECT_EQ(chain[0].seq, 17);
    EXPECT_EQ(chain[0].kind, "deleted");
    EXPECT_EQ(r.problems.front().seq, 17) << problems_text(r);
    // The checkpoint signed #32, which is now #31: accurate, and says so.
    ASSERT_EQ(r.problems.size(), 2U) << problems_text(r);
    EXPECT_EQ(r.problems[1].kind, "checkpoint_missing_record");
    EXPECT_EQ(r.problems[1].seq, 32);
    EXPECT_NE(r.problems[1].detail.find("now #31"), std::string::npos) << r.problems[1].detail;
}

TEST_F(AuditVerify, DeletedHead) {
    const auto db = copy();
    exec(db, "DELETE FROM records WHERE seq <= 3");
    const auto r = check(db);
    expect_only(r, 1, "deleted");
}

TEST_F(AuditVerify, DeletedTailIsCaughtByTheCheckpoint) {
    const auto db = copy();
    exec(db, "DELETE FROM records WHERE seq >= 30");
    const auto r = check(db);
    expect_only(r, 32, "checkpoint_missing_record");
}

// A forged record at #17 with a hash correctly chained to #16, the genuine
// #17.. moved up by one.
TEST_F(AuditVerify, InsertedRecord) {
    const auto db = copy();
    const Db h = open_db(db);
    renumber(h.get(), 17, +1);
    const std::string prev = query_text(db, "SELECT hash FROM records WHERE seq = 16");
    const std::string ts = query_text(db, "SELECT ts FROM records WHERE seq = 16");
    auto forged = request_record(99);
    forged["decision"] = "deny";
    std::string body = json::serialize(forged);
    body = fmt::format(R"({{"seq":17,"ts":"{}",{})", ts, body.substr(1));
    const std::string hash = documented_hash(prev, body);
    exec(h.get(), fmt::format("INSERT INTO records(seq, ts, kind, body, prev, hash) "
                              "VALUES(17, '{}', 'request', '{}', '{}', '{}')",
                              ts, body, prev, hash));
    const auto r = check(db);
    const auto chain = chain_problems(r);
    ASSERT_EQ(chain.size(), 1U) << problems_text(r);
    EXPECT_EQ(chain[0].seq, 17);
    EXPECT_EQ(chain[0].kind, "inserted");
    EXPECT_EQ(r.problems.front().seq, 17) << problems_text(r);
    // The checkpoint signed the record now at #33.
    ASSERT_EQ(r.problems.size(), 2U) << problems_text(r);
    EXPECT_EQ(r.problems[1].kind, "checkpoint_mismatch");
    EXPECT_NE(r.problems[1].detail.find("now #33"), std::string::npos) << r.problems[1].detail;
}

TEST_F(AuditVerify, InsertedCopy) {
    const auto db = copy();
    const Db h = open_db(db);
    renumber(h.get(), 18, +1);
    exec(h.get(),
         "INSERT INTO records(seq, ts, kind, body, prev, hash) "
         "SELECT 18, ts, kind, body, prev, hash FROM records WHERE seq = 17");
    const auto r = check(db);
    const auto chain = chain_problems(r);
    ASSERT_EQ(chain.size(), 1U) << problems_text(r);
    EXPECT_EQ(chain[0].seq, 18);
    EXPECT_EQ(chain[0].kind, "inserted");
}

TEST_F(AuditVerify, SwappedRecords) {
    const auto db = copy();
    const Db h = open_db(db);
    exec(h.get(), "UPDATE records SET seq = -1 WHERE seq = 17");
    exec(h.get(), "UPDATE records SET seq = 17 WHERE seq = 18");
    exec(h.get(), "UPDATE records SET seq = 18 WHERE seq = -1");
    const auto r = check(db);
    ASSERT_EQ(r.problems.size(), 1U) << problems_text(r);
    EXPECT_EQ(r.problems[0].kind, "reordered");
    EXPECT_TRUE(r.problems[0].seq == 17 || r.problems[0].seq == 18) << problems_text(r);
}

TEST_F(AuditVerify, MovedRecord) {
    // #10 taken out and put back between #20 and #21 (the records between
    // renumbered down to keep the numbers dense).
    const auto db = copy();
    const Db h = open_db(db);
    exec(h.get(), "UPDATE records SET seq = -100 WHERE seq = 10");
    exec(h.get(), "UPDATE records SET seq = -(seq - 1) WHERE seq BETWEEN 11 AND 20");
    exec(h.get(), "UPDATE records SET seq = -seq WHERE seq < 0 AND seq > -100");
    exec(h.get(), "UPDATE records SET seq = 20 WHERE seq = -100");
    const auto r = check(db);
    const auto chain = chain_problems(r);
    ASSERT_EQ(chain.size(), 1U) << problems_text(r);
    EXPECT_EQ(chain[0].kind, "reordered");
    EXPECT_EQ(chain[0].seq, 20);
}

// A record changed and every hash after it recomputed: the chain is
// consistent again, only the signed checkpoints can tell.
TEST_F(AuditVerify, RewrittenChainIsCaughtByCheckpoints) {
    const auto db = copy(8);  // checkpoints at #8, #16, #24, #32
    EXPECT_EQ(query_ints(db, "SELECT seq FROM checkpoints ORDER BY seq"),
              (std::vector<std::int64_t>{8, 16, 24, 32}));
    const Db h = open_db(db);
    exec(h.get(),
         "UPDATE records SET body = replace(body, '\"allow\"', '\"deny\"') WHERE seq = 10");
    std::string prev = query_text(db, "SELECT hash FROM records WHERE seq = 9");
    for (int seq = 10; seq <= 32; ++seq) {
        const std::string body =
            query_text(db, fmt::format("SELECT body FROM records WHERE seq = {}", seq));
        const std::string hash = documented_hash(prev, body);
        exec(h.get(), fmt::format("UPDATE records SET prev = '{}', hash = '{}' WHERE seq = {}",
                                  prev, hash, seq));
        prev = hash;
    }
    const auto r = check(db);
    EXPECT_TRUE(chain_problems(r).empty()) << problems_text(r);
    ASSERT_EQ(r.problems.size(), 3U) << problems_text(r);
    EXPECT_EQ(r.problems[0].seq, 16);
    for (const auto& p : r.problems) {
        EXPECT_EQ(p.kind, "checkpoint_mismatch") << problems_text(r);
    }
    EXPECT_EQ(r.last_checkpoint_seq, 8);
    EXPECT_EQ(r.unsigned_tail, 24);
}

TEST_F(AuditVerify, CorruptCheckpointSignature) {
    const auto db = copy();
    // Flip the first hex digit of the signature.
    exec(db,
         "UPDATE checkpoints SET sig = (CASE substr(sig, 1, 1) WHEN '0' THEN '1' ELSE '0' END) || "
         "substr(sig, 2) WHERE seq = 32");
    auto r = check(db);
    expect_only(r, 32, "checkpoint_signature");
    EXPECT_EQ(r.last_checkpoint_seq, 0);
    EXPECT_EQ(r.unsigned_tail, 32);

    // A checkpoint moved to another record: its signature no longer holds.
    const auto moved = copy();
    exec(moved,
         "UPDATE checkpoints SET seq = 31, hash = (SELECT hash FROM records WHERE seq = 31)");
    r = check(moved);
    expect_only(r, 31, "checkpoint_signature");

    // Another key in `pub` than the signer's.
    const auto other = make_identity(dir_.path() / "other");
    const auto der = crypto::public_key_der(other.key.get());
    ASSERT_TRUE(der);
    const auto swapped = copy();
    exec(swapped, fmt::format("UPDATE checkpoints SET pub = '{}'", to_hex(*der)));
    r = check(swapped);
    ASSERT_EQ(r.problems.size(), 1U) << problems_text(r);
    EXPECT_EQ(r.problems[0].kind, "checkpoint_signature");
    EXPECT_NE(r.problems[0].detail.find("not that of the signer"), std::string::npos);
}

TEST_F(AuditVerify, ExpectedSigners) {
    const auto other = make_identity(dir_.path() / "other");
    auto r = check(pristine_, VerifyOptions{{other.id.str()}});
    expect_only(r, 32, "unexpected_signer");
    EXPECT_EQ(r.last_checkpoint_seq, 0);
    r = check(pristine_, VerifyOptions{{other.id.str(), id_.id.str()}});
    EXPECT_TRUE(r.ok()) << problems_text(r);
}

TEST_F(AuditVerify, SignerChanged) {
    const auto db = copy();
    const auto other = make_identity(dir_.path() / "other");
    write_trail(db, other, 2);  // #33..#36, signed by the other key
    auto r = check(db);
    expect_only(r, 36, "signer_changed");
    EXPECT_EQ(r.signer_ids, (std::vector<std::string>{id_.id.str(), other.id.str()}));
    r = check(db, VerifyOptions{{id_.id.str(), other.id.str()}});
    EXPECT_TRUE(r.ok()) << problems_text(r);
}

TEST_F(AuditVerify, UnsignedTailIsReported) {
    const auto db = copy();
    exec(db, "DELETE FROM checkpoints");
    const auto r = check(db);
    EXPECT_TRUE(r.ok()) << problems_text(r);
    EXPECT_EQ(r.checkpoints, 0);
    EXPECT_EQ(r.last_checkpoint_seq, 0);
    EXPECT_EQ(r.unsigned_tail, 32);
}

// What `audit tail` and `export` find records by is not hashed: the ts and
// kind columns and the spans. An edit there hides a record from a query by
// time or kind; verify compares them with the records.
bool finds(const std::filesystem::path& db, const Query& q, std::int64_t seq) {
    auto got = read(db, q);
    EXPECT_TRUE(got) << got.error().message();
    return got &&
           std::any_of(got->begin(), got->end(), [seq](const Stored& s) { return s.seq == seq; });
}

TEST_F(AuditVerify, EditedTimeColumn) {
    const auto db = copy();
    Query q;
    q.since = query_text(db, "SELECT ts FROM records WHERE seq = 17");
    ASSERT_TRUE(finds(db, q, 17));
    exec(db, "UPDATE records SET ts = '2000-01-01T00:00:00.000000Z' WHERE seq = 17");
    EXPECT_FALSE(finds(db, q, 17));
    const auto r = check(db);
    expect_only(r, 17, "column_mismatch", "ts column says \"2000-01-01T00:00:00.000000Z\"");
}

TEST_F(AuditVerify, EditedKindColumn) {
    const auto db = copy();
    Query q;
    q.kind = "request";
    ASSERT_TRUE(finds(db, q, 17));
    exec(db, "UPDATE records SET kind = 'lifecycle' WHERE seq = 17");
    EXPECT_FALSE(finds(db, q, 17));
    const auto r = check(db);
    expect_only(r, 17, "column_mismatch", "kind column says \"lifecycle\"");
}

TEST_F(AuditVerify, EditedSpan) {
    const auto db = copy();
    const std::string span = "first <= 17 AND last >= 17";
    const auto first = std::stoll(query_text(db, "SELECT first FROM spans WHERE " + span));
    Query q;
    q.since = query_text(db, "SELECT ts FROM records WHERE seq = 17");
    ASSERT_TRUE(finds(db, q, 17));
    exec(db, "UPDATE spans SET max_ts = '2000-01-01T00:00:00.000000Z' WHERE " + span);
    EXPECT_FALSE(finds(db, q, 17));
    const auto r = check(db);
    expect_only(r, first, "span_mismatch", R"(to "2000-01-01T00:00:00.000000Z"; they are)");
}

TEST_F(AuditVerify, DeletedSpan) {
    const auto db = copy();
    const std::string span = "first <= 17 AND last >= 17";
    const auto first = std::stoll(query_text(db, "SELECT first FROM spans WHERE " + span));
    exec(db, "DELETE FROM spans WHERE " + span);
    const auto r = check(db);
    expect_only(r, first, "span_mismatch", "in no span");
}

// SQL compares a blob with text as greater than any text: a time or kind
// stored as a blob reads the same but hides the record from a query.
TEST_F(AuditVerify, ColumnsAndSpansStoredAsBlobs) {
    const auto kind = copy();
    Query q;
    q.kind = "request";
    exec(kind, "UPDATE records SET kind = CAST(kind AS BLOB) WHERE seq = 17");
    EXPECT_FALSE(finds(kind, q, 17));
    expect_only(check(kind), 17, "column_mismatch", "is not text");

    const auto span = copy();
    const std::string which = "first <= 17 AND last >= 17";
    const auto first = std::stoll(query_text(span, "SELECT first FROM spans WHERE " + which));
    exec(span, "UPDATE spans SET min_ts = CAST(min_ts AS BLOB) WHERE " + which);
    expect_only(check(span), first, "span_mismatch", "not stored as a number and two times");
}

// Records the writer stores as given: arguments nested deeper than the JSON
// parser's default limit, and records whose "kind" is not their first member
// (verify parses those instead of reading the writer's layout).
TEST_F(AuditVerify, DeepRecordsAndOtherLayoutsAreOk) {
    const auto db = dir_.path() / "deep.db";
    {
        auto w = Writer::open(options_for(db), id_);
        ASSERT_TRUE(w) << w.error().message();
        json::value deep = json::array{};
        for (int i = 0; i < 60; ++i) {
            deep = json::array{deep};
        }
        auto r = request_record(1);
        r["args"] = deep;
        ASSERT_TRUE((*w)->append(std::move(r)));
        ASSERT_TRUE((*w)->append(json::object{{"tool", "a__b"}, {"kind", "integrity"}}));
        (*w)->close();
    }
    const auto r = check(db);
    EXPECT_TRUE(r.ok()) << problems_text(r);
    EXPECT_EQ(r.records, 4);
    // And a column edited on such a record is still seen.
    exec(db, "UPDATE records SET kind = 'request' WHERE seq = 3");
    expect_only(check(db), 3, "column_mismatch", R"(kind column says "request")");
}

// Without the checkpoints, the chain alone cannot tell a trail cut short
// (UnsignedTailIsReported); its spans still name the records that were there.
TEST_F(AuditVerify, TruncatedUnsignedTailIsCaughtByTheSpans) {
    const auto db = copy();
    exec(db, "DELETE FROM checkpoints");
    exec(db, "DELETE FROM records WHERE seq >= 31");
    const auto r = check(db);
    expect_only(r, 31, "deleted", "#31..#32 are missing");
}

}  // namespace
}  // namespace pqmcp::audit::test
