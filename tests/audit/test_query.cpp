// parse_time(), read() filters and describe() lines; and `pqmcp audit` as a
// user runs it (when the test knows where build/pqmcp is).
#include <sys/wait.h>

#include <cstdio>
#include <cstdlib>

#include "helpers.hpp"

namespace pqmcp::audit::test {
namespace {

using std::chrono::system_clock;

system_clock::time_point at(std::int64_t unix_seconds) {
    return system_clock::time_point{} + std::chrono::seconds{unix_seconds};
}

constexpr std::int64_t k_now = 1'795'514'400;  // 2026-11-24T10:00:00Z

TEST(AuditParseTime, AbsoluteTimes) {
    const auto now = at(k_now);
    const auto ok = [&](std::string_view in) {
        auto r = parse_time(in, now);
        EXPECT_TRUE(r) << in << ": " << r.error().message();
        return r ? *r : std::string{};
    };
    EXPECT_EQ(ok("2026-11-24T10:00:00Z"), "2026-11-24T10:00:00.000000Z");
    EXPECT_EQ(ok("2026-11-24T10:00:00.5Z"), "2026-11-24T10:00:00.500000Z");
    EXPECT_EQ(ok("2026-11-24T10:00:00.123456789Z"), "2026-11-24T10:00:00.123456Z");
    EXPECT_EQ(ok("2026-11-24t10:00:00z"), "2026-11-24T10:00:00.000000Z");
    EXPECT_EQ(ok("2026-11-24"), "2026-11-24T00:00:00.000000Z");
    EXPECT_EQ(ok("2026-11-24T10:00:00+01:00"), "2026-11-24T09:00:00.000000Z");
    EXPECT_EQ(ok("2026-11-24T23:30:00-01:00"), "2026-11-25T00:30:00.000000Z");
    EXPECT_EQ(ok("2028-02-29"), "2028-02-29T00:00:00.000000Z");
    EXPECT_EQ(ok("2026-12-31T23:59:60Z"), "2026-12-31T23:59:59.999999Z");
}

TEST(AuditFormatTime, MicrosecondsAndTheSecondsAround) {
    using std::chrono::microseconds;
    // Within one second (the date is written once per second and thread), then the next.
    EXPECT_EQ(format_time(at(k_now) + microseconds{7}), "2026-11-24T10:00:00.000007Z");
    EXPECT_EQ(format_time(at(k_now) + microseconds{999'999}), "2026-11-24T10:00:00.999999Z");
    EXPECT_EQ(format_time(at(k_now + 1)), "2026-11-24T10:00:01.000000Z");
    EXPECT_EQ(format_time(at(k_now) + microseconds{123'456}), "2026-11-24T10:00:00.123456Z");
    EXPECT_EQ(format_time(at(0)), "1970-01-01T00:00:00.000000Z");
    EXPECT_EQ(format_time(at(0) - microseconds{1}), "1969-12-31T23:59:59.999999Z");
}

TEST(AuditParseTime, DurationsBackFromNow) {
    const auto now = at(k_now);
    EXPECT_EQ(*parse_time("30s", now), "2026-11-24T09:59:30.000000Z");
    EXPECT_EQ(*parse_time("15m", now), "2026-11-24T09:45:00.000000Z");
    EXPECT_EQ(*parse_time("2h", now), "2026-11-24T08:00:00.000000Z");
    EXPECT_EQ(*parse_time("7d", now), "2026-11-17T10:00:00.000000Z");
    EXPECT_EQ(*parse_time("2w", now), "2026-11-10T10:00:00.000000Z");
    EXPECT_EQ(*parse_time("0s", now), "2026-11-24T10:00:00.000000Z");
}

TEST(AuditParseTime, Errors) {
    const auto now = at(k_now);
    for (const std::string_view bad : {"",
                                       "yesterday",
                                       "15",
                                       "15x",
                                       "-5m",
                                       "1.5h",
                                       "99999999999999999999d",
                                       "2026-13-01",
                                       "2026-02-29",
                                       "2026-11-31",
                                       "2026-11-24T25:00:00Z",
                                       "2026-11-24T10:00Z",
                                       "2026-11-24T10:00:00",
                                       "2026-11-24T10:00:00.Z",
                                       "2026-11-24T10:00:00+1:00",
                                       "2026/11/24",
                                       "24-11-2026",
                                       "2026-11-24T10:00:00Z trailing",
                                       "2999-01-01",
                                       "1969-12-31"}) {
        auto r = parse_time(bad, now);
        ASSERT_FALSE(r) << bad << " -> " << *r;
        EXPECT_EQ(r.error().code, Errc::invalid_argument) << bad;
        EXPECT_NE(r.error().detail.find("expected 2026-11-24T10:00:00Z"), std::string::npos)
            << r.error().detail;
    }
}

class AuditRead : public ::testing::Test {
  protected:
    void SetUp() override {
        auto w = Writer::open(options_for(db_), id_);
        ASSERT_TRUE(w) << w.error().message();
        // #2..#11: one record a minute from 10:00, alternating kinds.
        for (int i = 0; i < 10; ++i) {
            auto r = i % 2 == 0 ? request_record(i)
                                : json::object{{"kind", "policy"}, {"event", "reloaded"}};
            r["ts"] = fmt::format("2026-11-24T10:{:02}:00.000000Z", i);
            ASSERT_TRUE((*w)->append(std::move(r)));
        }
        (*w)->close();
    }

    static std::vector<std::int64_t> seqs(const Result<std::vector<Stored>>& r) {
        EXPECT_TRUE(r) << r.error().message();
        std::vector<std::int64_t> out;
        if (r) {
            for (const auto& s : *r) {
                out.push_back(s.seq);
            }
        }
        return out;
    }

    pqmcp::test::TempDir dir_;
    identity::Identity id_ = make_identity(dir_.path() / "gw");
    std::filesystem::path db_ = dir_.path() / "audit.db";
};

using Seqs = std::vector<std::int64_t>;

TEST_F(AuditRead, Filters) {
    EXPECT_EQ(seqs(read(db_, Query{})), (Seqs{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}));
    Query q;
    q.after_seq = 9;
    EXPECT_EQ(seqs(read(db_, q)), (Seqs{10, 11, 12}));
    q = Query{};
    q.kind = "policy";
    EXPECT_EQ(seqs(read(db_, q)), (Seqs{3, 5, 7, 9, 11}));
    q = Query{};
    q.since = "2026-11-24T10:03:00Z";
    q.until = "2026-11-24T10:06:00Z";
    EXPECT_EQ(seqs(read(db_, q)), (Seqs{5, 6, 7}));
    q.kind = "request";
    EXPECT_EQ(seqs(read(db_, q)), (Seqs{6}));
    q = Query{};
    q.since = "2026-11-24";  // midnight
    q.until = "2026-11-24T10:02:00+00:00";
    EXPECT_EQ(seqs(read(db_, q)), (Seqs{2, 3}));
    q = Query{};
    q.limit = 3;
    EXPECT_EQ(seqs(read(db_, q)), (Seqs{1, 2, 3}));
    q.last = true;
    EXPECT_EQ(seqs(read(db_, q)), (Seqs{10, 11, 12}));
    q.kind = "request";
    EXPECT_EQ(seqs(read(db_, q)), (Seqs{6, 8, 10}));
    q = Query{};
    q.since = "last tuesday";
    auto bad = read(db_, q);
    ASSERT_FALSE(bad);
    EXPECT_EQ(bad.error().code, Errc::invalid_argument);
}

// Records that bring their own time out of order, in several transactions:
// what spans find by time is exactly what a look at every record finds.
TEST(AuditReadSpans, TimesOutOfOrderAcrossTransactions) {
    pqmcp::test::TempDir dir;
    const auto id = make_identity(dir.path() / "gw");
    const auto db = dir.path() / "audit.db";
    // A transaction per hour below (flush() commits what waits), in this
    // order of hours; the opened and closed records in their own, at today's time.
    {
        auto w = Writer::open(options_for(db), id);
        ASSERT_TRUE(w) << w.error().message();
        for (const int hour : {14, 9, 12, 9, 16, 11}) {
            for (int minute = 0; minute < 5; ++minute) {
                auto r = request_record(minute);
                r["ts"] =
                    fmt::format("2026-11-24T{:02}:{:02}:00.000000Z", hour, (minute * 37) % 60);
                ASSERT_TRUE((*w)->append(std::move(r)));
            }
            ASSERT_TRUE((*w)->flush(std::chrono::seconds{10}));
        }
        (*w)->close();
    }
    EXPECT_EQ(query_text(db, "SELECT count(*) FROM spans"), "8");
    auto all = read(db, Query{});
    ASSERT_TRUE(all) << all.error().message();
    ASSERT_EQ(all->size(), 6U * 5U + 2U);
    const std::vector<std::optional<std::string>> times = {
        std::nullopt,           "2026-11-24T08:00:00Z",
        "2026-11-24T09:30:00Z", "2026-11-24T11:00:00Z",
        "2026-11-24T12:10:00Z", "2026-11-24T15:00:00Z",
        "2026-11-24T17:00:00Z", "2030-01-01"};
    for (const auto& since : times) {
        for (const auto& until : times) {
            Query q;
            q.since = since;
            q.until = until;
            auto got = read(db, q);
            ASSERT_TRUE(got) << got.error().message();
            std::vector<std::int64_t> want;
            const auto bound = [](const std::optional<std::string>& t) {
                return t ? *parse_time(*t, std::chrono::system_clock::now()) : std::string{};
            };
            for (const auto& r : *all) {
                if ((!since || r.ts >= bound(since)) && (!until || r.ts < bound(until))) {
                    want.push_back(r.seq);
                }
            }
            std::vector<std::int64_t> seqs;
            for (const auto& r : *got) {
                seqs.push_back(r.seq);
            }
            EXPECT_EQ(seqs, want) << since.value_or("-") << " .. " << until.value_or("-");
        }
    }
}

TEST(AuditDescribe, OneLinePerKind) {
    Stored r;
    r.seq = 17;
    r.ts = "2026-11-24T10:00:00.123456Z";
    r.kind = "request";
    auto body = request_record(1);
    body["ts"] = r.ts;
    body["seq"] = 17;
    r.body = json::serialize(body);
    EXPECT_EQ(describe(r),
              "2026-11-24T10:00:00.123456Z #17 request tools/call demo__echo allow rule=r1 134us "
              "session=abcd1234 peer=pq1exampleexampleexampleexampleexampleexampleexamplexx");

    body["decision"] = "deny";
    body["mode"] = "shadow";
    body["outcome"] = "error -32010";
    r.body = json::serialize(body);
    EXPECT_NE(describe(r).find("demo__echo deny rule=r1 (shadow) error -32010 134us"),
              std::string::npos)
        << describe(r);

    r.kind = "connection";
    r.body =
        R"({"kind":"connection","remote":"127.0.0.1:5555","result":"ok",)"
        R"("group":"X25519MLKEM768","own_signature":"mldsa65","cipher":"TLS_AES_256_GCM_SHA384",)"
        R"("peer_id":null,"resumed":true})";
    EXPECT_EQ(describe(r),
              "2026-11-24T10:00:00.123456Z #17 connection 127.0.0.1:5555 ok group=X25519MLKEM768 "
              "sig=mldsa65 cipher=TLS_AES_256_GCM_SHA384 resumed");
    r.body =
        R"({"kind":"connection","remote":"10.0.0.9:4000","result":"failed","error":"no shared group"})";
    EXPECT_EQ(describe(r),
              "2026-11-24T10:00:00.123456Z #17 connection 10.0.0.9:4000 failed: no shared group");

    r.kind = "integrity";
    r.body = R"({"kind":"integrity","upstream":"files","event":"rug_pull","item":"read_file",)"
             R"("severity":"high","action":"blocked","detail":"description changed"})";
    EXPECT_EQ(describe(r),
              "2026-11-24T10:00:00.123456Z #17 integrity rug_pull files/read_file severity=high "
              "action=blocked: description changed");

    r.kind = "policy";
    r.body = R"({"kind":"policy","event":"reload_failed","source":"/etc/pqmcp/policy.yaml",)"
             R"("error":"line 3: unknown key"})";
    EXPECT_EQ(describe(r),
              "2026-11-24T10:00:00.123456Z #17 policy reload_failed /etc/pqmcp/policy.yaml: line "
              "3: unknown key");

    r.kind = "audit";
    r.body = R"({"kind":"audit","event":"closed","records":1234})";
    EXPECT_EQ(describe(r), "2026-11-24T10:00:00.123456Z #17 audit closed records=1234");

    r.kind = "custom";
    r.body = R"({"seq":17,"kind":"custom","x":1})";
    EXPECT_EQ(describe(r), R"(2026-11-24T10:00:00.123456Z #17 custom {"x":1})");

    r.body = "not json";
    EXPECT_NE(describe(r).find("not a JSON object"), std::string::npos);
}

TEST(AuditDescribe, EscapesControlCharacters) {
    Stored r;
    r.seq = 1;
    r.ts = "2026-11-24T10:00:00.000000Z";
    r.kind = "integrity";
    r.body = json::serialize(json::object{{"kind", "integrity"},
                                          {"event", "finding"},
                                          {"upstream", "evil"},
                                          {"detail",
                                           "a\x1b[2Jb\nc\xe2\x80\xae"
                                           "d"}});
    const std::string line = describe(r);
    EXPECT_EQ(line.find('\x1b'), std::string::npos) << line;
    EXPECT_EQ(line.find('\n'), std::string::npos) << line;
    EXPECT_NE(line.find(R"(a\x1b[2Jb\x0ac\u{202e}d)"), std::string::npos) << line;
}

// `pqmcp audit` when the build says where the CLI is (PQMCP_BIN).
struct Run {
    int rc = -1;
    std::string out;
};

Run run(const std::string& command) {
    Run r;
    std::FILE* p = ::popen((command + " 2>&1").c_str(), "r");
    if (p == nullptr) {
        return r;
    }
    char buf[4096];
    std::size_t n = 0;
    while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) {
        r.out.append(buf, n);
    }
    const int status = ::pclose(p);
    r.rc = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    return r;
}

TEST(AuditCli, VerifyTailExport) {
    const char* bin = std::getenv("PQMCP_BIN");
    if (bin == nullptr || !std::filesystem::exists(bin)) {
        GTEST_SKIP() << "PQMCP_BIN is not set to the built pqmcp";
    }
    const std::string pqmcp = bin;
    pqmcp::test::TempDir dir;
    const auto id = make_identity(dir.path() / "gw");
    const auto db = dir.path() / "audit.db";
    write_trail(db, id, 30);

    auto r = run(fmt::format("{} audit verify {}", pqmcp, db.string()));
    EXPECT_EQ(r.rc, 0) << r.out;
    EXPECT_EQ(r.out, fmt::format("OK: 32 records, 1 checkpoint signed by {}, last checkpoint at "
                                 "#32, 0 records after it not yet signed\n",
                                 id.id.str()));
    r = run(fmt::format("{} audit verify {} --signer {}", pqmcp, db.string(), id.id.str()));
    EXPECT_EQ(r.rc, 0) << r.out;
    r = run(fmt::format("{} audit verify {} --json", pqmcp, db.string()));
    EXPECT_EQ(r.rc, 0) << r.out;
    EXPECT_EQ(json::parse(r.out).at("records"), 32);

    r = run(fmt::format("{} audit tail {} -n 3", pqmcp, db.string()));
    EXPECT_EQ(r.rc, 0) << r.out;
    EXPECT_EQ(std::count(r.out.begin(), r.out.end(), '\n'), 3) << r.out;
    EXPECT_NE(r.out.find("#32 audit closed records=30"), std::string::npos) << r.out;
    r = run(fmt::format("{} audit tail {} -n 2 --json --kind request", pqmcp, db.string()));
    EXPECT_EQ(r.rc, 0) << r.out;
    const auto nl = r.out.find('\n');
    ASSERT_NE(nl, std::string::npos);
    const auto first = json::parse(r.out.substr(0, nl)).as_object();
    EXPECT_EQ(first.at("seq"), 30);
    EXPECT_EQ(first.at("kind"), "request");
    EXPECT_EQ(first.at("hash").as_string(),
              query_text(db, "SELECT hash FROM records WHERE seq = 30"));

    r = run(fmt::format("{} audit export {} --json --kind audit", pqmcp, db.string()));
    EXPECT_EQ(r.rc, 0) << r.out;
    EXPECT_EQ(std::count(r.out.begin(), r.out.end(), '\n'), 2) << r.out;
    const auto line = json::parse(r.out.substr(0, r.out.find('\n'))).as_object();
    EXPECT_EQ(line.at("prev").as_string(), std::string(64, '0'));
    EXPECT_EQ(line.at("event"), "opened");
    r = run(fmt::format("{} audit export {} --since 2000-01-01 --until 1h", pqmcp, db.string()));
    EXPECT_EQ(r.rc, 0) << r.out;
    EXPECT_EQ(r.out, "");
    r = run(fmt::format("{} audit export {} --since yesterday", pqmcp, db.string()));
    EXPECT_EQ(r.rc, 2) << r.out;

    const auto tampered = dir.path() / "tampered.db";
    std::filesystem::copy_file(db, tampered);
    exec(tampered, "UPDATE records SET body = replace(body, 'allow', 'deny') WHERE seq = 17");
    r = run(fmt::format("{} audit verify {}", pqmcp, tampered.string()));
    EXPECT_EQ(r.rc, 1) << r.out;
    EXPECT_EQ(r.out.rfind("#17 modified: ", 0), 0U) << r.out;

    const auto other = make_identity(dir.path() / "other");
    r = run(fmt::format("{} audit verify {} --signer {}", pqmcp, db.string(), other.id.str()));
    EXPECT_EQ(r.rc, 1) << r.out;
    EXPECT_NE(r.out.find("#32 unexpected_signer: "), std::string::npos) << r.out;

    const auto missing = dir.path() / "missing.db";
    r = run(fmt::format("{} audit verify {}", pqmcp, missing.string()));
    EXPECT_EQ(r.rc, 1) << r.out;
    EXPECT_NE(r.out.find(fmt::format("audit: {}: no such file", missing.string())),
              std::string::npos)
        << r.out;
    r = run(fmt::format("{} audit tail {}", pqmcp, missing.string()));
    EXPECT_EQ(r.rc, 1) << r.out;
    EXPECT_FALSE(std::filesystem::exists(missing));

    r = run(fmt::format("{} audit verify {} --signer not-a-peer-id", pqmcp, db.string()));
    EXPECT_EQ(r.rc, 2) << r.out;
    r = run(fmt::format("{} audit verify", pqmcp));
    EXPECT_EQ(r.rc, 2) << r.out;
}

}  // namespace
}  // namespace pqmcp::audit::test
