// `pqmcp audit ...`: the operator's side of the audit trail (read-only; none
// of these creates or changes the database, and each works while the gateway
// writes to it).
//   audit verify   the hash chain and the signed checkpoints
//   audit tail     the newest records, and with --follow new ones as they come
//   audit export   JSON Lines for a SIEM
#include <signal.h>

#include <cerrno>
#include <ctime>
#include <filesystem>
#include <iostream>
#include <memory>

#include <fmt/format.h>
#include <boost/json.hpp>

#include "commands.hpp"
#include "pqmcp/audit/audit.hpp"
#include "pqmcp/cluster/cluster.hpp"
#include "pqmcp/identity/identity.hpp"

namespace pqmcp::cli {
namespace {

namespace json = boost::json;

// Records per read while exporting or following, so memory stays bounded.
constexpr std::size_t k_page = 10'000;

std::string plural(std::int64_t n, std::string_view word) {
    return fmt::format("{} {}{}", n, word, n == 1 ? "" : "s");
}

// A missing file is an error, never created.
bool exists_or_complain(const std::string& db) {
    std::error_code ec;
    if (std::filesystem::is_regular_file(db, ec)) {
        return true;
    }
    std::cerr << "pqmcp audit: " << db << ": no such file\n";
    return false;
}

// The stored body with "seq", "prev" and "hash" (a body that is not a JSON
// object, which only tampering produces, is carried as text).
std::string export_line(const audit::Stored& r) {
    boost::system::error_code ec;
    json::value v = json::parse(r.body, ec);
    json::object o;
    if (!ec && v.is_object()) {
        o = std::move(v.as_object());
        if (!o.contains("seq")) {
            o["seq"] = r.seq;
        }
    } else {
        o = json::object{{"seq", r.seq}, {"ts", r.ts}, {"kind", r.kind}, {"body_text", r.body}};
    }
    o["prev"] = r.prev;
    o["hash"] = r.hash;
    return json::serialize(o);
}

void print(const audit::Stored& r, bool as_json) {
    std::cout << (as_json ? export_line(r) : audit::describe(r)) << "\n";
}

struct VerifyArgs {
    std::string db;
    std::vector<std::string> signers;
    bool json = false;
};

// One line for a chain that verifies.
std::string ok_line(const audit::VerifyReport& r) {
    std::string line = fmt::format("OK: {}", plural(r.records, "record"));
    if (r.checkpoints == 0) {
        if (r.records > 0) {
            line += ", no checkpoints: none of them signed yet";
        }
        return line;
    }
    std::string signers;
    for (const auto& s : r.signer_ids) {
        signers += signers.empty() ? s : ", " + s;
    }
    line += fmt::format(", {} signed by {}, last checkpoint at #{}, {} after it not yet signed",
                        plural(r.checkpoints, "checkpoint"), signers, r.last_checkpoint_seq,
                        plural(r.unsigned_tail, "record"));
    return line;
}

void print_problems(const audit::VerifyReport& r, std::string_view prefix) {
    for (const auto& p : r.problems) {
        std::cout << prefix << "#" << p.seq << " " << p.kind << ": " << p.detail << "\n";
    }
    std::cout << fmt::format("{}FAILED: {} in {} (#{}..#{})\n", prefix,
                             plural(static_cast<std::int64_t>(r.problems.size()), "problem"),
                             plural(r.records, "record"), r.first_seq, r.last_seq);
}

// Every replica's chain as shipped to PostgreSQL.
int verify_shipped(const VerifyArgs& a, const audit::VerifyOptions& options) {
    auto reports = cluster::verify_postgres(a.db, options);
    if (!reports) {
        std::cerr << "pqmcp " << reports.error().message() << "\n";
        return k_exit_error;
    }
    bool ok = !reports->empty();
    if (a.json) {
        json::array out;
        for (const auto& r : *reports) {
            out.push_back(
                json::object{{"replica", r.replica}, {"report", json::parse(r.report.to_json())}});
            ok = ok && r.report.ok();
        }
        std::cout << json::serialize(json::object{{"replicas", std::move(out)}}) << "\n";
        return ok ? k_exit_ok : k_exit_error;
    }
    if (reports->empty()) {
        std::cout << "FAILED: no replica has shipped records to this database\n";
        return k_exit_error;
    }
    for (const auto& r : *reports) {
        if (r.report.ok()) {
            std::cout << "replica " << r.replica << ": " << ok_line(r.report) << "\n";
        } else {
            ok = false;
            print_problems(r.report, "replica " + r.replica + ": ");
        }
    }
    return ok ? k_exit_ok : k_exit_error;
}

int run_verify(const VerifyArgs& a) {
    const bool shipped = cluster::is_postgres(a.db);
    if (!shipped && !exists_or_complain(a.db)) {
        return k_exit_error;
    }
    audit::VerifyOptions options;
    for (const auto& s : a.signers) {
        // A peer id, or an identity directory / certificate to take it from.
        auto id = identity::PeerId::parse(s);
        if (!id) {
            id = identity::peer_id_of_path(s);
        }
        if (!id) {
            std::cerr << "pqmcp audit verify: --signer " << s
                      << ": neither a peer id nor an identity directory or certificate\n";
            return k_exit_usage;
        }
        options.signers.push_back(id->str());
    }
    if (shipped) {
        return verify_shipped(a, options);
    }
    auto r = audit::verify(a.db, options);
    if (!r) {
        std::cerr << "pqmcp " << r.error().message() << "\n";
        return k_exit_error;
    }
    if (a.json) {
        std::cout << r->to_json() << "\n";
        return r->ok() ? k_exit_ok : k_exit_error;
    }
    if (!r->ok()) {
        print_problems(*r, "");
        return k_exit_error;
    }
    std::cout << ok_line(*r) << "\n";
    return k_exit_ok;
}

struct TailArgs {
    std::string db;
    std::size_t lines = 20;
    bool follow = false;
    bool json = false;
    std::string kind;
};

// Waits up to `ms` for SIGINT or SIGTERM (blocked, so they arrive here and
// not as a default action). True when one came.
bool interrupted(const sigset_t& signals, long ms) {
    timespec timeout{};
    timeout.tv_sec = ms / 1000;
    timeout.tv_nsec = (ms % 1000) * 1'000'000;
    const int sig = ::sigtimedwait(&signals, nullptr, &timeout);
    return sig == SIGINT || sig == SIGTERM;
}

int run_tail(const TailArgs& a) {
    if (!exists_or_complain(a.db)) {
        return k_exit_error;
    }
    // Blocked before the first read, so a Ctrl-C during it is not lost.
    sigset_t signals;
    sigemptyset(&signals);
    sigaddset(&signals, SIGINT);
    sigaddset(&signals, SIGTERM);
    if (a.follow) {
        (void)::sigprocmask(SIG_BLOCK, &signals, nullptr);
    }
    std::optional<std::string> kind;
    if (!a.kind.empty()) {
        kind = a.kind;
    }
    std::int64_t after = 0;
    if (a.lines > 0) {
        audit::Query q;
        q.kind = kind;
        q.limit = a.lines;
        q.last = true;
        auto rows = audit::read(a.db, q);
        if (!rows) {
            std::cerr << "pqmcp " << rows.error().message() << "\n";
            return k_exit_error;
        }
        for (const auto& r : *rows) {
            print(r, a.json);
            after = r.seq;
        }
    }
    if (!a.follow) {
        return k_exit_ok;
    }
    {
        // Follow from the head, whatever --kind skipped.
        audit::Query head;
        head.limit = 1;
        head.last = true;
        auto rows = audit::read(a.db, head);
        if (!rows) {
            std::cerr << "pqmcp " << rows.error().message() << "\n";
            return k_exit_error;
        }
        if (!rows->empty()) {
            after = std::max(after, rows->back().seq);
        }
    }
    std::cout << std::flush;
    while (!interrupted(signals, 250)) {
        for (;;) {
            audit::Query q;
            q.after_seq = after;
            q.kind = kind;
            q.limit = k_page;
            auto rows = audit::read(a.db, q);
            if (!rows) {
                std::cerr << "pqmcp " << rows.error().message() << "\n";
                return k_exit_error;
            }
            for (const auto& r : *rows) {
                print(r, a.json);
                after = r.seq;
            }
            std::cout << std::flush;
            if (rows->size() < k_page) {
                break;
            }
        }
    }
    return k_exit_ok;
}

struct ExportArgs {
    std::string db;
    std::string since;
    std::string until;
    std::string kind;
    bool json = false;
};

int run_export(const ExportArgs& a) {
    audit::Query q;
    const auto now = std::chrono::system_clock::now();
    for (const auto& [flag, text, slot] :
         {std::tuple{"--since", &a.since, &q.since}, std::tuple{"--until", &a.until, &q.until}}) {
        if (text->empty()) {
            continue;
        }
        auto t = audit::parse_time(*text, now);
        if (!t) {
            std::cerr << "pqmcp audit export: " << flag << ": " << t.error().detail << "\n";
            return k_exit_usage;
        }
        *slot = std::move(*t);
    }
    if (!exists_or_complain(a.db)) {
        return k_exit_error;
    }
    if (!a.kind.empty()) {
        q.kind = a.kind;
    }
    q.limit = k_page;
    for (;;) {
        auto rows = audit::read(a.db, q);
        if (!rows) {
            std::cerr << "pqmcp " << rows.error().message() << "\n";
            return k_exit_error;
        }
        for (const auto& r : *rows) {
            print(r, a.json);
            q.after_seq = r.seq;
        }
        if (rows->size() < k_page) {
            break;
        }
    }
    std::cout << std::flush;
    return std::cout ? k_exit_ok : k_exit_error;
}

}  // namespace

void add_audit_commands(CLI::App& app, int& exit_code) {
    CLI::App* cmd = app.add_subcommand(
        "audit", "The audit trail: verify its hash chain and signatures, tail it, export it");
    cmd->require_subcommand(1);

    auto verify_args = std::make_shared<VerifyArgs>();
    CLI::App* verify = cmd->add_subcommand(
        "verify",
        "Check every record's hash, the chain and the signed checkpoints (exit 1 on any "
        "problem)");
    verify
        ->add_option("db", verify_args->db,
                     "the audit database, or postgresql://... to check every replica's chain "
                     "shipped there")
        ->required();
    verify
        ->add_option("--signer", verify_args->signers,
                     "a trusted signer: a peer id, an identity directory or a certificate "
                     "(repeatable; default: any, listed)")
        ->allow_extra_args(false);
    verify->add_flag("--json", verify_args->json, "the report as JSON");
    verify->callback([verify_args, &exit_code] { exit_code = run_verify(*verify_args); });

    auto tail_args = std::make_shared<TailArgs>();
    CLI::App* tail = cmd->add_subcommand("tail", "The newest records, one line each");
    tail->add_option("db", tail_args->db, "the audit database")->required();
    tail->add_option("-n,--lines", tail_args->lines, "how many (default 20)");
    tail->add_flag("-f,--follow", tail_args->follow,
                   "then print new records as they are written, until Ctrl-C");
    tail->add_flag("--json", tail_args->json,
                   "JSON Lines: each record's body with seq, prev and hash");
    tail->add_option("--kind", tail_args->kind,
                     "only records of this kind: connection, request, integrity, policy, audit");
    tail->callback([tail_args, &exit_code] { exit_code = run_tail(*tail_args); });

    auto export_args = std::make_shared<ExportArgs>();
    CLI::App* exp = cmd->add_subcommand("export", "Records for a SIEM, oldest first");
    exp->add_option("db", export_args->db, "the audit database")->required();
    exp->add_option("--since", export_args->since,
                    "from this time: 2026-11-24T10:00:00Z, 2026-11-24, or back from now: 30s, 15m, "
                    "2h, 7d");
    exp->add_option("--until", export_args->until, "before this time (same forms)");
    exp->add_option("--kind", export_args->kind, "only records of this kind");
    exp->add_flag("--json", export_args->json,
                  "JSON Lines: each record's body with seq, prev and hash (else one line each for "
                  "people)");
    exp->callback([export_args, &exit_code] { exit_code = run_export(*export_args); });
}

}  // namespace pqmcp::cli
