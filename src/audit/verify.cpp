// verify(): recompute every record's hash, follow the chain, and check the
// signed checkpoints against it. One tampering should read as one problem at
// the record it concerns, so each broken link is explained once, by the
// simplest change that produces it (see README.md, "Verification").
#include <openssl/x509.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <iterator>
#include <optional>
#include <unordered_map>

#include <fmt/format.h>
#include <boost/json.hpp>

#include "pqmcp/audit/audit.hpp"
#include "pqmcp/core/bytes.hpp"
#include "pqmcp/crypto/signature.hpp"
#include "pqmcp/identity/identity.hpp"
#include "store.hpp"

namespace pqmcp::audit {

namespace json = boost::json;

namespace {

using Digest = std::array<std::uint8_t, 32>;

struct DigestHash {
    std::size_t operator()(const Digest& d) const noexcept {
        std::size_t h = 0;
        std::memcpy(&h, d.data(), sizeof h);
        return h;
    }
};

struct Row {
    std::int64_t seq = 0;
    std::int64_t body_seq = -1;  // the body's own "seq" (covered by its hash); -1: none
    Digest prev{};
    Digest hash{};
    bool prev_ok = false;  // prev / hash are 64 hex digits
    bool hash_ok = false;
    bool valid = false;  // the stored hash is the hash of the stored prev and body
};

struct CheckpointRow {
    std::int64_t seq = 0;
    std::string hash;
    std::string ts;
    std::string signer;
    std::string alg;
    std::string pub;
    std::string sig;
};

std::optional<Digest> parse_digest(std::string_view hex) {
    if (hex.size() != 64) {
        return std::nullopt;
    }
    const auto bytes = from_hex(hex);
    if (!bytes || bytes->size() != 32) {
        return std::nullopt;
    }
    Digest d{};
    std::copy(bytes->begin(), bytes->end(), d.begin());
    return d;
}

// A stored body as JSON. Records nest as deep as the gateway let messages
// nest (limits.max_json_depth, configurable), deeper than Boost.JSON's
// default of 32; a monotonic resource frees the value without recursion.
json::value parse_body(std::string_view body, json::monotonic_resource& memory,
                       boost::system::error_code& ec) {
    json::parse_options o;
    o.max_depth = 100'000;
    o.allow_invalid_utf8 = true;
    return json::parse(body, ec, &memory, o);
}

// A column's or a span's stored text, as JSON shows it: what a tampered
// trail put there reaches the terminal escaped.
std::string json_text(std::string_view text) {
    return json::serialize(json::string_view(text.data(), text.size()));
}

// The body's "seq": the writer puts it first, so the prefix usually says;
// otherwise the body is parsed.
std::int64_t body_seq_of(std::string_view body) {
    constexpr std::string_view k_prefix = R"({"seq":)";
    if (body.substr(0, k_prefix.size()) == k_prefix) {
        std::int64_t v = 0;
        std::size_t i = k_prefix.size();
        std::size_t digits = 0;
        while (i < body.size() && body[i] >= '0' && body[i] <= '9' && digits < 18) {
            v = v * 10 + (body[i] - '0');
            ++i;
            ++digits;
        }
        if (digits > 0 && i < body.size() && (body[i] == ',' || body[i] == '}')) {
            return v;
        }
    }
    json::monotonic_resource memory;
    boost::system::error_code ec;
    const json::value v = parse_body(body, memory, ec);
    if (ec || !v.is_object()) {
        return -1;
    }
    const auto* s = v.get_object().if_contains("seq");
    if (s == nullptr || !s->is_int64()) {
        return -1;
    }
    return s->get_int64();
}

// Characters checkpoint_message() may embed without escaping.
bool plain_time(std::string_view ts) {
    return !ts.empty() && ts.size() <= 40 && std::all_of(ts.begin(), ts.end(), [](char c) {
        return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
               c == ':' || c == '.' || c == '-' || c == '+';
    });
}

std::string normalise_peer(std::string_view text) {
    auto id = identity::PeerId::parse(text);
    return id ? id->str() : std::string(text);
}

// Why a checkpoint's signature does not hold, or nullopt when it does.
std::optional<std::string> check_signature(const CheckpointRow& cp) {
    if (!parse_digest(cp.hash)) {
        return "its hash is not 64 hex digits";
    }
    if (!plain_time(cp.ts)) {
        return "its time is not an RFC 3339 time";
    }
    const auto pub = from_hex(cp.pub);
    const auto sig = from_hex(cp.sig);
    if (!pub || pub->empty() || !sig || sig->empty()) {
        return "its pub or sig is not hex";
    }
    const unsigned char* p = pub->data();
    crypto::PkeyPtr key(d2i_PUBKEY(nullptr, &p, static_cast<long>(pub->size())));
    if (!key || p != pub->data() + pub->size()) {
        return "its pub is not a SubjectPublicKeyInfo";
    }
    const auto alg = crypto::signature_algorithm_of(key.get());
    if (!alg || crypto::openssl_name(*alg) != cp.alg) {
        return fmt::format("its alg {} is not that of its key", cp.alg);
    }
    auto of_key = identity::PeerId::of_key(key.get());
    auto signer = identity::PeerId::parse(cp.signer);
    if (!of_key || !signer || *of_key != *signer) {
        return fmt::format("its key is not that of the signer {} (the key's peer id is {})",
                           cp.signer, of_key ? of_key->str() : std::string("unknown"));
    }
    const std::string message = detail::checkpoint_message(cp.hash, cp.seq, cp.ts);
    const ByteView context =
        crypto::is_ml_dsa(*alg) ? as_bytes(detail::k_checkpoint_context) : ByteView{};
    if (!crypto::verify(key.get(), as_bytes(message), *sig, context)) {
        return fmt::format(
            "the {} signature over (#{}, {}, {}) does not verify: the checkpoint was changed",
            cp.alg, cp.seq, cp.hash.substr(0, 16), cp.ts);
    }
    return std::nullopt;
}

class Analysis final {
  public:
    Analysis(const std::vector<Row>& rows, std::vector<Problem>& out) : rows_(rows), out_(out) {}

    void chain() {
        const std::size_t n = rows_.size();
        std::vector<char> explained(n, 0);
        std::vector<std::size_t> reorder;  // links that point at another present record
        for (std::size_t i = 0; i < n; ++i) {
            const Row& r = rows_[i];
            if (!r.valid) {
                add(r.seq, "modified",
                    fmt::format("#{}'s hash does not match its content: the record was changed "
                                "after it was written",
                                r.seq));
            }
            if (explained[i] != 0) {
                continue;
            }
            if (i == 0) {
                first(r, reorder);
                continue;
            }
            const Row& p = rows_[i - 1];
            const bool gap = r.seq > p.seq + 1;
            if (links(r, p)) {
                if (gap) {
                    add(r.seq, "broken_link",
                        fmt::format("#{} follows #{} in the chain but the numbers jump: records "
                                    "were renumbered",
                                    r.seq, p.seq));
                }
                continue;
            }
            if (gap) {
                add(p.seq + 1, "deleted",
                    r.seq == p.seq + 2
                        ? fmt::format("#{} is missing (#{} is followed by #{})", p.seq + 1, p.seq,
                                      r.seq)
                        : fmt::format("#{}..#{} are missing (#{} is followed by #{})", p.seq + 1,
                                      r.seq - 1, p.seq, r.seq));
                continue;
            }
            const auto pred = predecessor(r);
            // A changed record (its stored hash too, perhaps) explains the
            // links into and out of it.
            if (!r.valid || (!p.valid && !pred)) {
                continue;
            }
            if (r.hash_ok && p.hash_ok && r.hash == p.hash) {
                add(r.seq, "inserted", fmt::format("#{} is a copy of #{}", r.seq, p.seq));
                continue;
            }
            if (r.prev_ok && p.prev_ok && r.prev == p.prev) {
                inserted(i, explained);
                continue;
            }
            if (pred) {
                reorder.push_back(i);
                continue;
            }
            if (r.body_seq > r.seq) {
                const std::int64_t missing = r.body_seq - r.seq;
                add(r.seq, "deleted",
                    fmt::format("#{} was written as #{} and its predecessor is not in the "
                                "database: {} record{} before it {} deleted and the rest "
                                "renumbered",
                                r.seq, r.body_seq, missing, missing == 1 ? "" : "s",
                                missing == 1 ? "was" : "were"));
                continue;
            }
            if (i + 1 == n) {
                add(r.seq, "inserted",
                    fmt::format("#{} has a valid hash but does not continue the chain from #{}: "
                                "it was appended by someone else",
                                r.seq, p.seq));
                continue;
            }
            add(r.seq, "broken_link",
                fmt::format("#{} names a predecessor that is neither #{} nor any other record: "
                            "#{} was rewritten with a new hash, or #{}'s link was changed",
                            r.seq, p.seq, p.seq, r.seq));
        }
        if (!reorder.empty()) {
            reordered(reorder);
        }
    }

    void checkpoints(const std::vector<CheckpointRow>& cps, const VerifyOptions& options,
                     VerifyReport& report) {
        std::vector<std::string> trusted;
        trusted.reserve(options.signers.size());
        for (const auto& s : options.signers) {
            trusted.push_back(normalise_peer(s));
        }
        std::string previous_signer;
        for (const auto& cp : cps) {
            ++report.checkpoints;
            bool good = true;
            if (auto why = check_signature(cp)) {
                add(cp.seq, "checkpoint_signature",
                    fmt::format("checkpoint #{}: {}", cp.seq, *why));
                good = false;
            } else {
                const std::string signer = normalise_peer(cp.signer);
                if (std::find(report.signer_ids.begin(), report.signer_ids.end(), signer) ==
                    report.signer_ids.end()) {
                    report.signer_ids.push_back(signer);
                }
                if (!trusted.empty()) {
                    if (std::find(trusted.begin(), trusted.end(), signer) == trusted.end()) {
                        add(cp.seq, "unexpected_signer",
                            fmt::format("checkpoint #{} is signed by {}, not by a trusted signer",
                                        cp.seq, signer));
                        good = false;
                    }
                } else if (!previous_signer.empty() && signer != previous_signer) {
                    add(cp.seq, "signer_changed",
                        fmt::format("checkpoint #{} is signed by {}, the one before by {} (name "
                                    "both with --signer if both are trusted)",
                                    cp.seq, signer, previous_signer));
                }
                previous_signer = signer;
            }
            const Row* r = row_at(cp.seq);
            const auto signed_hash = parse_digest(cp.hash);
            const Row* moved = signed_hash ? with_hash(*signed_hash) : nullptr;
            const std::string where =
                moved != nullptr && moved->seq != cp.seq
                    ? fmt::format(" (the signed record is now #{}: records were renumbered)",
                                  moved->seq)
                    : std::string{};
            if (r == nullptr) {
                add(cp.seq, "checkpoint_missing_record",
                    fmt::format("checkpoint #{} signs a record that is not in the database{}",
                                cp.seq, where));
                good = false;
            } else if (!signed_hash || !r->hash_ok || r->hash != *signed_hash) {
                add(cp.seq, "checkpoint_mismatch",
                    fmt::format("#{} is not the record checkpoint #{} signed: records up to #{} "
                                "were rewritten after signing{}",
                                cp.seq, cp.seq, cp.seq, where));
                good = false;
            }
            if (good) {
                report.last_checkpoint_seq = std::max(report.last_checkpoint_seq, cp.seq);
            }
        }
    }

  private:
    void add(std::int64_t seq, std::string_view kind, std::string detail) {
        out_.push_back(Problem{seq, std::string(kind), std::move(detail)});
    }

    static bool links(const Row& r, const Row& p) {
        return r.prev_ok && p.hash_ok && r.prev == p.hash;
    }

    const Row* with_hash(const Digest& d) {
        if (!indexed_) {
            indexed_ = true;
            by_hash_.reserve(rows_.size());
            for (const auto& r : rows_) {
                if (r.hash_ok) {
                    by_hash_.emplace(r.hash, &r);
                }
            }
        }
        const auto it = by_hash_.find(d);
        return it == by_hash_.end() ? nullptr : it->second;
    }

    // The present record a row's prev names, if any.
    const Row* predecessor(const Row& r) { return r.prev_ok ? with_hash(r.prev) : nullptr; }

    const Row* row_at(std::int64_t seq) const {
        const auto it = std::lower_bound(rows_.begin(), rows_.end(), seq,
                                         [](const Row& r, std::int64_t s) { return r.seq < s; });
        return it != rows_.end() && it->seq == seq ? &*it : nullptr;
    }

    void first(const Row& r, std::vector<std::size_t>& reorder) {
        const Digest genesis{};
        if (r.prev_ok && r.prev == genesis) {
            if (r.seq != 1) {
                add(r.seq, "broken_link",
                    fmt::format("#{} starts the chain but is not #1: records were renumbered",
                                r.seq));
            }
            return;
        }
        if (!r.valid) {
            return;
        }
        if (predecessor(r) != nullptr) {
            reorder.push_back(0);
            return;
        }
        if (r.seq > 1) {
            add(1, "deleted",
                fmt::format("#1..#{} are missing: the trail starts at #{}", r.seq - 1, r.seq));
        } else {
            add(r.seq, "deleted",
                fmt::format("#1 was written as #{} and its predecessor is not in the database: "
                            "records before it were deleted and the rest renumbered",
                            r.body_seq));
        }
    }

    // rows i-1 and i name the same predecessor: one of them was inserted.
    // The genuine one is the one the next record follows; at the end, the
    // later one, unless its own seq says an insertion pushed it up.
    void inserted(std::size_t i, std::vector<char>& explained) {
        const Row& r = rows_[i];
        const Row& p = rows_[i - 1];
        const bool has_next = i + 1 < rows_.size();
        const bool next_follows_r = has_next && links(rows_[i + 1], r);
        const bool next_follows_p = has_next && links(rows_[i + 1], p);
        const Row* forged = &p;
        const Row* genuine = &r;
        if (next_follows_p && !next_follows_r) {
            forged = &r;
            genuine = &p;
            explained[i + 1] = 1;
        } else if (!has_next && !(r.body_seq >= 0 && r.body_seq < r.seq)) {
            forged = &r;
            genuine = &p;
        }
        add(forged->seq, "inserted",
            fmt::format("#{} was not written by the chain's writer: it and #{} both follow the "
                        "same predecessor, and the chain continues through #{}",
                        forged->seq, genuine->seq, genuine->seq));
    }

    // Links that point at a present record other than the one before: the
    // records that moved are those outside the longest run of rows whose
    // written seq (in their hashed bodies) keeps increasing.
    void reordered(const std::vector<std::size_t>& candidates) {
        std::vector<std::size_t> part;  // rows taking part: valid, with a body seq
        for (std::size_t i = 0; i < rows_.size(); ++i) {
            if (rows_[i].valid && rows_[i].body_seq >= 0) {
                part.push_back(i);
            }
        }
        // Longest non-decreasing subsequence of body_seq over `part`.
        std::vector<std::size_t> tails;  // indexes into part
        std::vector<std::ptrdiff_t> parent(part.size(), -1);
        for (std::size_t k = 0; k < part.size(); ++k) {
            const std::int64_t v = rows_[part[k]].body_seq;
            const auto it = std::upper_bound(tails.begin(), tails.end(), v,
                                             [this, &part](std::int64_t x, std::size_t t) {
                                                 return x < rows_[part[t]].body_seq;
                                             });
            if (it != tails.begin()) {
                parent[k] = static_cast<std::ptrdiff_t>(*(it - 1));
            }
            if (it == tails.end()) {
                tails.push_back(k);
            } else {
                *it = k;
            }
        }
        std::vector<char> in_order(rows_.size(), 0);
        for (auto k = tails.empty() ? std::ptrdiff_t{-1}
                                    : static_cast<std::ptrdiff_t>(tails.back());
             k >= 0; k = parent[static_cast<std::size_t>(k)]) {
            in_order[part[static_cast<std::size_t>(k)]] = 1;
        }
        bool any = false;
        for (const std::size_t i : candidates) {
            const Row& r = rows_[i];
            if (in_order[i] != 0 || r.body_seq < 0 || !r.valid) {
                continue;
            }
            any = true;
            const Row* pred = predecessor(r);
            add(r.seq, "reordered",
                fmt::format("#{} was written as #{}{}: records were moved", r.seq, r.body_seq,
                            pred != nullptr
                                ? fmt::format(" and follows #{} in the chain", pred->seq)
                                : std::string{}));
        }
        if (any) {
            return;
        }
        for (const std::size_t i : candidates) {
            const Row& r = rows_[i];
            const Row* pred = predecessor(r);
            add(r.seq, "reordered",
                fmt::format("#{} follows #{} in the chain, not #{}", r.seq,
                            pred != nullptr ? pred->seq : 0, i > 0 ? rows_[i - 1].seq : 0));
        }
    }

    const std::vector<Row>& rows_;
    std::vector<Problem>& out_;
    bool indexed_ = false;
    std::unordered_map<Digest, const Row*, DigestHash> by_hash_;
};

// What `read` finds records by (`audit tail | export --since | --until |
// --kind`): each record's `ts` and `kind` columns, and in the current format
// the `spans` rows. None of it is hashed, so an edit there would hide records
// from a query by time or kind without touching the chain; verify checks it
// against the bodies, which are.
class QueryIndex final {
  public:
    struct Span {
        std::int64_t first = 0;
        std::int64_t last = 0;
        std::string min_ts;
        std::string max_ts;
        bool typed = true;  // last an integer, min_ts and max_ts text (as SQL compares them)
        // What its records' times are, as their bodies say.
        std::int64_t seen = 0;
        std::string seen_min;
        std::string seen_max;
    };

    void set_spans(std::vector<Span> spans) {
        has_spans_ = true;
        spans_ = std::move(spans);
    }

    // One record, in seq order. Only a record whose hash holds (`valid`) is
    // looked at: a changed one is reported as "modified" already. Its span is
    // checked against the time in its body (hashed), not its column (which
    // is checked on its own).
    // `typed`: both columns are text (SQL compares a blob with text as
    // greater than any text, so a time or kind stored as a blob hides the
    // record from a query however its bytes read).
    void record(const Row& row, std::string_view body, std::string_view ts_column,
                std::string_view kind_column, bool typed = true) {
        if (!row.valid) {
            return;
        }
        const std::int64_t seq = row.seq;
        if (!typed) {
            column_problems_.push_back(Problem{
                seq, "column_mismatch",
                fmt::format("#{}'s ts or kind column is not text: audit tail and export select "
                            "records by those columns, and miss it",
                            seq)});
        }
        const std::string_view ts = columns(seq, row.body_seq, body, ts_column, kind_column);
        if (!has_spans_) {
            return;
        }
        while (next_ < spans_.size() && spans_[next_].last < seq) {
            ++next_;
        }
        if (next_ < spans_.size() && spans_[next_].first <= seq) {
            Span& sp = spans_[next_];
            if (sp.seen == 0 || ts < sp.seen_min) {
                sp.seen_min.assign(ts.data(), ts.size());
            }
            if (sp.seen == 0 || ts > sp.seen_max) {
                sp.seen_max.assign(ts.data(), ts.size());
            }
            ++sp.seen;
            return;
        }
        if (!uncovered_.empty() && uncovered_.back().second + 1 == seq) {
            uncovered_.back().second = seq;
        } else {
            uncovered_.emplace_back(seq, seq);
        }
    }

    // The column problems, and with `chain_holds` the spans'. Spans tile the
    // records as the writer wrote them: where records were deleted, inserted
    // or moved, they cannot match, and the chain's problem says so already.
    // Spans that name records after the last show a truncated trail, unless
    // `truncation_seen` (a checkpoint's record is missing: reported there).
    void report(bool chain_holds, bool truncation_seen, std::int64_t last_seq,
                std::vector<Problem>& out) const {
        out.insert(out.end(), column_problems_.begin(), column_problems_.end());
        if (!has_spans_ || !chain_holds) {
            return;
        }
        const auto add = [&out](std::int64_t seq, std::string detail) {
            out.push_back(Problem{seq, "span_mismatch", std::move(detail)});
        };
        for (const auto& [from, to] : uncovered_) {
            add(from, from == to ? fmt::format("#{} is in no span: audit tail and export by time "
                                               "do not find it",
                                               from)
                                 : fmt::format("#{}..#{} are in no span: audit tail and export "
                                               "by time do not find them",
                                               from, to));
        }
        std::int64_t covered = 0;  // the greatest seq a span before covers
        for (const auto& sp : spans_) {
            if (!sp.typed) {
                add(sp.first, fmt::format("span #{}..#{}'s bounds are not stored as a number and "
                                          "two times: audit tail and export by time compare "
                                          "them wrongly",
                                          sp.first, sp.last));
            } else if (sp.first > sp.last || sp.first <= covered) {
                add(sp.first,
                    fmt::format("span #{}..#{} {} records of another span", sp.first, sp.last,
                                sp.first > sp.last ? "ends before it starts: no" : "overlaps the"));
            } else if (sp.last > last_seq) {
                // Its records after the last are gone (below); its bounds
                // may have been theirs.
            } else if (sp.seen != sp.last - sp.first + 1 || sp.seen_min != sp.min_ts ||
                       sp.seen_max != sp.max_ts) {
                add(sp.first,
                    fmt::format("span #{}..#{} says its records' times are {} to {}; they are {} "
                                "to {}: audit tail and export by time can miss them",
                                sp.first, sp.last, json_text(sp.min_ts), json_text(sp.max_ts),
                                json_text(sp.seen_min), json_text(sp.seen_max)));
            }
            covered = std::max(covered, sp.last);
        }
        if (covered > last_seq && !truncation_seen) {
            out.push_back(Problem{
                last_seq + 1, "deleted",
                fmt::format("{} missing: the trail ends at #{} but its spans name records up to "
                            "#{} (the trail was truncated, or a span edited)",
                            covered == last_seq + 1
                                ? fmt::format("#{} is", covered)
                                : fmt::format("#{}..#{} are", last_seq + 1, covered),
                            last_seq, covered)});
        }
    }

  private:
    // Compares the columns with the body; the body's ts (valid until the
    // next call, or the column's view).
    std::string_view columns(std::int64_t seq, std::int64_t body_seq, std::string_view body,
                             std::string_view ts, std::string_view kind) {
        // The writer's layout, `{"seq":N,"ts":"...","kind":"...",` with the
        // columns' values, is seen without parsing the whole body (the
        // strings put in it by the JSON serializer); anything else is parsed.
        if (body_seq >= 0) {
            std::string& prefix = scratch_;
            prefix.clear();
            fmt::format_to(std::back_inserter(prefix), R"({{"seq":{},"ts":)", body_seq);
            prefix += json::serialize(json::string_view(ts.data(), ts.size()));
            prefix += R"(,"kind":)";
            prefix += json::serialize(json::string_view(kind.data(), kind.size()));
            if (body.size() > prefix.size() && body.substr(0, prefix.size()) == prefix &&
                (body[prefix.size()] == ',' || body[prefix.size()] == '}')) {
                return ts;
            }
        }
        json::monotonic_resource memory;
        boost::system::error_code ec;
        const json::value v = parse_body(body, memory, ec);
        if (ec || !v.is_object()) {
            column_problems_.push_back(Problem{
                seq, "column_mismatch",
                fmt::format("#{}'s record is not a JSON object verify can read ({}): its ts and "
                            "kind columns cannot be checked",
                            seq, ec ? ec.message() : std::string("not an object"))});
            body_ts_.clear();
            return body_ts_;
        }
        const json::object* o = &v.get_object();
        const auto member = [o](std::string_view key) -> std::string_view {
            const auto* m = o != nullptr ? o->if_contains(key) : nullptr;
            return m != nullptr && m->is_string() ? std::string_view(m->get_string())
                                                  : std::string_view{};
        };
        const std::string_view body_ts = member("ts");
        const std::string_view body_kind = member("kind");
        if (ts != body_ts || kind != body_kind) {
            const bool time = ts != body_ts;
            column_problems_.push_back(Problem{
                seq, "column_mismatch",
                fmt::format("#{}'s {} column says {} where its record says {}: audit tail and "
                            "export select records by that column",
                            seq, time ? "ts" : "kind", json_text(time ? ts : kind),
                            json_text(time ? body_ts : body_kind))});
        }
        body_ts_.assign(body_ts.data(), body_ts.size());
        return body_ts_;
    }

    bool has_spans_ = false;
    std::vector<Span> spans_;  // by first
    std::size_t next_ = 0;     // the span the next record may be in
    std::vector<std::pair<std::int64_t, std::int64_t>> uncovered_;  // runs of seqs in no span
    std::vector<Problem> column_problems_;
    std::string scratch_;
    std::string body_ts_;
};

Row make_row(std::int64_t seq, std::string_view body, std::string_view prev, std::string_view hash,
             std::string& scratch) {
    Row r;
    r.seq = seq;
    r.valid = detail::record_hash(prev, body, scratch) == hash;
    r.body_seq = body_seq_of(body);
    if (const auto d = parse_digest(prev)) {
        r.prev = *d;
        r.prev_ok = true;
    }
    if (const auto d = parse_digest(hash)) {
        r.hash = *d;
        r.hash_ok = true;
    }
    return r;
}

// The spans of a trail in the current format, by first.
Result<std::vector<QueryIndex::Span>> load_spans(sqlite3* db) {
    auto s = detail::prepare(db, "SELECT first, last, min_ts, max_ts FROM spans ORDER BY first",
                             Errc::not_an_audit_db);
    if (!s) {
        return tl::unexpected(s.error());
    }
    std::vector<QueryIndex::Span> out;
    int rc = 0;
    while ((rc = sqlite3_step(s->get())) == SQLITE_ROW) {
        QueryIndex::Span sp;
        // The types first: reading a column as another type converts it.
        sp.typed = sqlite3_column_type(s->get(), 1) == SQLITE_INTEGER &&
                   sqlite3_column_type(s->get(), 2) == SQLITE_TEXT &&
                   sqlite3_column_type(s->get(), 3) == SQLITE_TEXT;
        sp.first = sqlite3_column_int64(s->get(), 0);
        sp.last = sqlite3_column_int64(s->get(), 1);
        sp.min_ts = detail::column_text(s->get(), 2);
        sp.max_ts = detail::column_text(s->get(), 3);
        out.push_back(std::move(sp));
    }
    if (rc != SQLITE_DONE) {
        return detail::sqlite_fail(Errc::open_failed, db, "reading spans");
    }
    return out;
}

Result<std::vector<Row>> load_records(sqlite3* db, QueryIndex& index) {
    auto s = detail::prepare(db, "SELECT seq, body, prev, hash, ts, kind FROM records ORDER BY seq",
                             Errc::not_an_audit_db);
    if (!s) {
        return tl::unexpected(s.error());
    }
    std::vector<Row> rows;
    std::string scratch;
    int rc = 0;
    while ((rc = sqlite3_step(s->get())) == SQLITE_ROW) {
        sqlite3_stmt* st = s->get();
        // Before the columns are read as text (which converts them).
        const bool typed =
            sqlite3_column_type(st, 4) == SQLITE_TEXT && sqlite3_column_type(st, 5) == SQLITE_TEXT;
        const std::string_view body = detail::column_view(st, 1);
        rows.push_back(make_row(sqlite3_column_int64(st, 0), body, detail::column_view(st, 2),
                                detail::column_view(st, 3), scratch));
        index.record(rows.back(), body, detail::column_view(st, 4), detail::column_view(st, 5),
                     typed);
    }
    if (rc != SQLITE_DONE) {
        return detail::sqlite_fail(Errc::open_failed, db, "reading records");
    }
    return rows;
}

Result<std::vector<CheckpointRow>> load_checkpoints(sqlite3* db) {
    auto s = detail::prepare(
        db, "SELECT seq, hash, ts, signer, alg, pub, sig FROM checkpoints ORDER BY seq",
        Errc::not_an_audit_db);
    if (!s) {
        return tl::unexpected(s.error());
    }
    std::vector<CheckpointRow> out;
    int rc = 0;
    while ((rc = sqlite3_step(s->get())) == SQLITE_ROW) {
        CheckpointRow cp;
        cp.seq = sqlite3_column_int64(s->get(), 0);
        cp.hash = detail::column_text(s->get(), 1);
        cp.ts = detail::column_text(s->get(), 2);
        cp.signer = detail::column_text(s->get(), 3);
        cp.alg = detail::column_text(s->get(), 4);
        cp.pub = detail::column_text(s->get(), 5);
        cp.sig = detail::column_text(s->get(), 6);
        out.push_back(std::move(cp));
    }
    if (rc != SQLITE_DONE) {
        return detail::sqlite_fail(Errc::open_failed, db, "reading checkpoints");
    }
    return out;
}

VerifyReport analyse(const std::vector<Row>& rows, const std::vector<CheckpointRow>& cps,
                     const VerifyOptions& options, const QueryIndex* index = nullptr) {
    VerifyReport report;
    report.records = static_cast<std::int64_t>(rows.size());
    if (!rows.empty()) {
        report.first_seq = rows.front().seq;
        report.last_seq = rows.back().seq;
    }
    Analysis analysis(rows, report.problems);
    analysis.chain();
    const bool chain_holds = report.problems.empty();
    analysis.checkpoints(cps, options, report);
    if (index != nullptr) {
        const bool truncation_seen =
            std::any_of(report.problems.begin(), report.problems.end(), [&](const Problem& p) {
                return p.kind == "checkpoint_missing_record" && p.seq > report.last_seq;
            });
        index->report(chain_holds, truncation_seen, report.last_seq, report.problems);
    }
    std::stable_sort(report.problems.begin(), report.problems.end(),
                     [](const Problem& a, const Problem& b) { return a.seq < b.seq; });
    const auto after = std::upper_bound(rows.begin(), rows.end(), report.last_checkpoint_seq,
                                        [](std::int64_t s, const Row& r) { return s < r.seq; });
    report.unsigned_tail = static_cast<std::int64_t>(rows.end() - after);
    return report;
}

}  // namespace

Result<VerifyReport> verify(const std::filesystem::path& db, const VerifyOptions& options) {
    auto handle = detail::open_read_only(db);
    if (!handle) {
        return tl::unexpected(handle.error());
    }
    sqlite3* h = handle->get();
    // One snapshot: records and checkpoints as of the same commit, whatever a
    // running writer does meanwhile.
    if (auto s = detail::exec(h, "BEGIN", Errc::open_failed); !s) {
        return tl::unexpected(s.error());
    }
    QueryIndex index;
    const auto read_rows = [h, &index]() -> Result<std::vector<Row>> {
        if (detail::has_spans(h)) {
            auto spans = load_spans(h);
            if (!spans) {
                return tl::unexpected(spans.error());
            }
            index.set_spans(std::move(*spans));
        }
        return load_records(h, index);
    };
    auto rows = read_rows();
    auto cps = rows ? load_checkpoints(h) : Result<std::vector<CheckpointRow>>{};
    (void)detail::exec(h, "COMMIT", Errc::open_failed);
    if (!rows) {
        return tl::unexpected(rows.error());
    }
    if (!cps) {
        return tl::unexpected(cps.error());
    }

    return analyse(*rows, *cps, options, &index);
}

struct ChainVerifier::State {
    std::vector<Row> rows;
    QueryIndex index;  // the columns, where given (no spans: records come in any order)
    std::vector<CheckpointRow> checkpoints;
    std::string scratch;
};

ChainVerifier::ChainVerifier() : state_(std::make_unique<State>()) {}
ChainVerifier::~ChainVerifier() = default;

void ChainVerifier::record(std::int64_t seq, std::string_view body, std::string_view prev,
                           std::string_view hash) {
    state_->rows.push_back(make_row(seq, body, prev, hash, state_->scratch));
}

void ChainVerifier::record(std::int64_t seq, std::string_view body, std::string_view prev,
                           std::string_view hash, std::string_view ts, std::string_view kind) {
    record(seq, body, prev, hash);
    state_->index.record(state_->rows.back(), body, ts, kind);
}

void ChainVerifier::checkpoint(const StoredCheckpoint& cp) {
    state_->checkpoints.push_back(
        CheckpointRow{cp.seq, cp.hash, cp.ts, cp.signer, cp.alg, cp.pub, cp.sig});
}

VerifyReport ChainVerifier::finish(const VerifyOptions& options) {
    auto& rows = state_->rows;
    std::stable_sort(rows.begin(), rows.end(),
                     [](const Row& a, const Row& b) { return a.seq < b.seq; });
    auto& cps = state_->checkpoints;
    std::stable_sort(cps.begin(), cps.end(),
                     [](const CheckpointRow& a, const CheckpointRow& b) { return a.seq < b.seq; });
    return analyse(rows, cps, options, &state_->index);
}

std::string VerifyReport::to_json() const {
    json::array problem_list;
    for (const auto& p : problems) {
        problem_list.push_back(
            json::object{{"seq", p.seq}, {"kind", p.kind}, {"detail", p.detail}});
    }
    json::array signers;
    for (const auto& s : signer_ids) {
        signers.emplace_back(s);
    }
    const json::object o{{"ok", ok()},
                         {"records", records},
                         {"first_seq", first_seq},
                         {"last_seq", last_seq},
                         {"checkpoints", checkpoints},
                         {"last_checkpoint_seq", last_checkpoint_seq},
                         {"unsigned_tail", unsigned_tail},
                         {"signers", std::move(signers)},
                         {"problems", std::move(problem_list)}};
    return json::serialize(o);
}

}  // namespace pqmcp::audit
