// read(), parse_time() and describe(): the audit trail for people and SIEMs.
#include <algorithm>
#include <charconv>
#include <cstdint>
#include <ctime>
#include <limits>

#include <fmt/format.h>
#include <boost/json.hpp>

#include "pqmcp/audit/audit.hpp"
#include "store.hpp"

namespace pqmcp::audit {

namespace json = boost::json;

namespace {

tl::unexpected<Error> bad_time(std::string_view text) {
    return fail(Errc::invalid_argument,
                fmt::format("\"{}\" is not a time: expected 2026-11-24T10:00:00Z, 2026-11-24, or "
                            "a duration back from now such as 30s, 15m, 2h, 7d",
                            text.substr(0, 64)));
}

// Exactly `n` digits at text[pos].
std::optional<int> digits(std::string_view text, std::size_t pos, std::size_t n) {
    if (pos + n > text.size()) {
        return std::nullopt;
    }
    int v = 0;
    for (std::size_t i = pos; i < pos + n; ++i) {
        if (text[i] < '0' || text[i] > '9') {
            return std::nullopt;
        }
        v = v * 10 + (text[i] - '0');
    }
    return v;
}

bool leap_year(int y) {
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

int days_in_month(int y, int m) {
    constexpr std::array<int, 12> k_days = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    return m == 2 && leap_year(y) ? 29 : k_days.at(static_cast<std::size_t>(m - 1));
}

// "30s", "15m", "2h", "7d", "2w".
std::optional<std::chrono::seconds> parse_ago(std::string_view text) {
    if (text.size() < 2) {
        return std::nullopt;
    }
    const std::string_view number = text.substr(0, text.size() - 1);
    std::int64_t value = 0;
    const auto [end, ec] = std::from_chars(number.data(), number.data() + number.size(), value);
    if (ec != std::errc{} || end != number.data() + number.size() || value < 0) {
        return std::nullopt;
    }
    std::int64_t unit = 0;
    switch (text.back()) {
        case 's':
            unit = 1;
            break;
        case 'm':
            unit = 60;
            break;
        case 'h':
            unit = 3'600;
            break;
        case 'd':
            unit = 86'400;
            break;
        case 'w':
            unit = std::int64_t{7} * 86'400;
            break;
        default:
            return std::nullopt;
    }
    constexpr std::int64_t k_max = std::int64_t{200} * 366 * 86'400;  // 200 years
    if (value > k_max / unit) {
        return std::nullopt;
    }
    return std::chrono::seconds{value * unit};
}

// Stored strings shown to people: control characters (C0, DEL, C1) and the
// bidirectional overrides escaped, cut at `max` bytes on a UTF-8 boundary.
std::string clean(std::string_view s, std::size_t max = 160) {
    std::string out;
    out.reserve(std::min(s.size(), max) + 8);
    std::size_t i = 0;
    while (i < s.size()) {
        if (out.size() >= max) {
            out += "...";
            break;
        }
        const auto c = static_cast<unsigned char>(s[i]);
        if (c < 0x20 || c == 0x7f) {
            out += fmt::format("\\x{:02x}", c);
            ++i;
            continue;
        }
        if (c == 0xC2 && i + 1 < s.size() && static_cast<unsigned char>(s[i + 1]) >= 0x80 &&
            static_cast<unsigned char>(s[i + 1]) <= 0x9f) {
            out += fmt::format("\\u{{{:x}}}", static_cast<unsigned char>(s[i + 1]));
            i += 2;
            continue;
        }
        if (c == 0xE2 && i + 2 < s.size()) {
            const auto b1 = static_cast<unsigned char>(s[i + 1]);
            const auto b2 = static_cast<unsigned char>(s[i + 2]);
            const bool bidi = (b1 == 0x80 && b2 >= 0xAA && b2 <= 0xAE) ||  // U+202A..U+202E
                              (b1 == 0x81 && b2 >= 0xA6 && b2 <= 0xA9);    // U+2066..U+2069
            if (bidi) {
                const unsigned cp = 0x2000U + ((b1 & 0x0FU) << 6U) + (b2 & 0x3FU);
                out += fmt::format("\\u{{{:x}}}", cp);
                i += 3;
                continue;
            }
        }
        out.push_back(s[i]);
        ++i;
    }
    return out;
}

class Fields final {
  public:
    explicit Fields(const json::object& o) : o_(o) {}

    // A string member, cleaned; "" when absent.
    [[nodiscard]] std::string str(std::string_view key, std::size_t max = 160) const {
        const auto* v = o_.if_contains(key);
        if (v == nullptr || v->is_null()) {
            return {};
        }
        if (v->is_string()) {
            return clean(v->get_string(), max);
        }
        return clean(json::serialize(*v), max);
    }
    // The first `n` characters of a string member (an id shown short).
    [[nodiscard]] std::string prefix(std::string_view key, std::size_t n) const {
        const auto* v = o_.if_contains(key);
        if (v == nullptr || !v->is_string()) {
            return {};
        }
        return clean(std::string_view(v->get_string()).substr(0, n), n + 8);
    }
    [[nodiscard]] bool flag(std::string_view key) const {
        const auto* v = o_.if_contains(key);
        return v != nullptr && v->is_bool() && v->get_bool();
    }
    [[nodiscard]] bool has(std::string_view key) const {
        const auto* v = o_.if_contains(key);
        return v != nullptr && !v->is_null();
    }

  private:
    const json::object& o_;
};

// " key=value" when value is not empty.
std::string opt(std::string_view key, const std::string& value) {
    return value.empty() ? std::string{} : fmt::format(" {}={}", key, value);
}

std::string describe_request(const Fields& f) {
    std::string line = fmt::format(" {}", f.str("method"));
    std::string target = f.str("target");
    if (target.empty()) {
        target = f.str("upstream");
    }
    if (!target.empty()) {
        line += " " + target;
    }
    line += " " + (f.has("decision") ? f.str("decision") : std::string("?"));
    line += opt("rule", f.str("rule"));
    if (f.str("mode") == "shadow") {
        line += " (shadow)";
    }
    if (const std::string outcome = f.str("outcome"); !outcome.empty() && outcome != "ok") {
        line += " " + outcome;
    }
    if (f.has("latency_us")) {
        line += fmt::format(" {}us", f.str("latency_us"));
    }
    line += opt("session", f.prefix("session", 8));
    line += opt("peer", f.str("identity"));
    return line;
}

std::string describe_connection(const Fields& f) {
    std::string line = fmt::format(" {}", f.str("remote"));
    const std::string result = f.str("result");
    if (result != "ok") {
        line += fmt::format(" {}", result.empty() ? std::string("?") : result);
        if (const std::string error = f.str("error"); !error.empty()) {
            line += ": " + error;
        }
        return line;
    }
    line += " ok";
    line += opt("group", f.str("group"));
    line += opt("sig", f.str("own_signature"));
    line += opt("cipher", f.str("cipher"));
    line += opt("peer", f.str("peer_id"));
    line += opt("peer_sig", f.str("peer_signature"));
    if (f.flag("resumed")) {
        line += " resumed";
    }
    return line;
}

std::string describe_integrity(const Fields& f) {
    std::string line = fmt::format(" {} {}", f.str("event"), f.str("upstream"));
    if (const std::string item = f.str("item"); !item.empty()) {
        line += "/" + item;
    }
    line += opt("rule", f.str("rule"));
    line += opt("severity", f.str("severity"));
    line += opt("action", f.str("action"));
    if (const std::string detail = f.str("detail"); !detail.empty()) {
        line += ": " + detail;
    }
    return line;
}

std::string describe_policy(const Fields& f) {
    std::string line = fmt::format(" {}", f.str("event"));
    if (const std::string source = f.str("source"); !source.empty()) {
        line += " " + source;
    }
    line += opt("fingerprint", f.prefix("fingerprint", 16));
    if (const std::string error = f.str("error"); !error.empty()) {
        line += ": " + error;
    }
    return line;
}

std::string describe_lifecycle(const Fields& f) {
    std::string line = fmt::format(" {}", f.str("event"));
    line += opt("records", f.str("records"));
    line += opt("continues", f.str("continues"));
    line += opt("signer", f.str("signer"));
    return line;
}

std::string describe_other(const json::object& o) {
    json::object rest;
    for (const auto& kv : o) {
        if (kv.key() != "seq" && kv.key() != "ts" && kv.key() != "kind") {
            rest.emplace(kv.key(), kv.value());
        }
    }
    return rest.empty() ? std::string{} : " " + clean(json::serialize(rest), 240);
}

}  // namespace

Result<std::string> parse_time(std::string_view text, std::chrono::system_clock::time_point now) {
    if (text.empty()) {
        return bad_time(text);
    }
    if (text.front() >= '0' && text.front() <= '9' && text.back() >= 'a' && text.back() <= 'z' &&
        text.find('-') == std::string_view::npos) {
        const auto ago = parse_ago(text);
        if (!ago) {
            return bad_time(text);
        }
        return detail::format_utc(now - *ago);
    }
    // YYYY-MM-DD
    const auto year = digits(text, 0, 4);
    const auto month = digits(text, 5, 2);
    const auto day = digits(text, 8, 2);
    if (!year || !month || !day || text.size() < 10 || text[4] != '-' || text[7] != '-' ||
        *month < 1 || *month > 12 || *day < 1 || *day > days_in_month(*year, *month)) {
        return bad_time(text);
    }
    // The clock counts nanoseconds in 64 bits: it ends in 2262.
    if (*year < 1970 || *year > 2200) {
        return fail(Errc::invalid_argument,
                    fmt::format("\"{}\": the year must be between 1970 and 2200 (expected "
                                "2026-11-24T10:00:00Z, 2026-11-24 or 15m, 2h, 7d)",
                                text));
    }
    int hour = 0;
    int minute = 0;
    int second = 0;
    std::int64_t micros = 0;
    std::int64_t offset = 0;  // seconds east of UTC
    if (text.size() > 10) {
        // THH:MM:SS[.fraction](Z|+HH:MM|-HH:MM)
        const auto h = digits(text, 11, 2);
        const auto mi = digits(text, 14, 2);
        const auto s = digits(text, 17, 2);
        if ((text[10] != 'T' && text[10] != 't' && text[10] != ' ') || !h || !mi || !s ||
            text.size() < 20 || text[13] != ':' || text[16] != ':' || *h > 23 || *mi > 59 ||
            *s > 60) {
            return bad_time(text);
        }
        hour = *h;
        minute = *mi;
        second = *s;
        std::size_t i = 19;
        if (text[i] == '.') {
            ++i;
            std::size_t n = 0;
            std::int64_t scale = 100'000;
            while (i < text.size() && text[i] >= '0' && text[i] <= '9') {
                if (n < 6) {
                    micros += (text[i] - '0') * scale;
                    scale /= 10;
                }
                ++i;
                ++n;
            }
            if (n == 0) {
                return bad_time(text);
            }
        }
        const std::string_view zone = text.substr(i);
        if (zone == "Z" || zone == "z") {
            offset = 0;
        } else if (zone.size() == 6 && (zone[0] == '+' || zone[0] == '-') && zone[3] == ':') {
            const auto oh = digits(zone, 1, 2);
            const auto om = digits(zone, 4, 2);
            if (!oh || !om || *oh > 23 || *om > 59) {
                return bad_time(text);
            }
            offset =
                (std::int64_t{*oh} * 3'600 + std::int64_t{*om} * 60) * (zone[0] == '-' ? -1 : 1);
        } else {
            return bad_time(text);
        }
        if (second == 60) {  // a leap second: the last instant of the minute
            second = 59;
            micros = 999'999;
        }
    }
    std::tm tm{};
    tm.tm_year = *year - 1900;
    tm.tm_mon = *month - 1;
    tm.tm_mday = *day;
    tm.tm_hour = hour;
    tm.tm_min = minute;
    tm.tm_sec = second;
    const std::time_t t = timegm(&tm);
    const auto point = std::chrono::system_clock::time_point{} +
                       std::chrono::seconds{static_cast<std::int64_t>(t) - offset} +
                       std::chrono::microseconds{micros};
    return detail::format_utc(point);
}

Result<std::vector<Stored>> read(const std::filesystem::path& db, const Query& q) {
    const auto now = std::chrono::system_clock::now();
    std::optional<std::string> since;
    std::optional<std::string> until;
    if (q.since) {
        auto t = parse_time(*q.since, now);
        if (!t) {
            return tl::unexpected(t.error());
        }
        since = std::move(*t);
    }
    if (q.until) {
        auto t = parse_time(*q.until, now);
        if (!t) {
            return tl::unexpected(t.error());
        }
        until = std::move(*t);
    }
    auto handle = detail::open_read_only(db);
    if (!handle) {
        return tl::unexpected(handle.error());
    }
    // A trail of the current format finds the seqs to look at by time in
    // `spans` (a row per transaction, which holds its least and greatest ts;
    // every record is in one): from the first span that reaches `since`, up
    // to the last that starts before `until`. One in the old format has an
    // index on ts instead.
    const bool spans = (since || until) && detail::has_spans(handle->get());
    std::string sql = "SELECT seq, ts, kind, body, prev, hash FROM records WHERE seq > ?1";
    if (since) {
        sql += " AND ts >= ?2";
        if (spans) {
            sql +=
                " AND seq >= coalesce((SELECT min(first) FROM spans WHERE max_ts >= ?2), "
                "(SELECT last + 1 FROM spans ORDER BY first DESC LIMIT 1), 1)";
        }
    }
    if (until) {
        sql += " AND ts < ?3";
        if (spans) {
            sql += " AND seq <= (SELECT coalesce(max(last), 0) FROM spans WHERE min_ts < ?3)";
        }
    }
    if (q.kind) {
        sql += " AND kind = ?4";
    }
    const bool newest = q.last && q.limit > 0;
    sql += newest ? " ORDER BY seq DESC" : " ORDER BY seq";
    if (q.limit > 0) {
        sql += " LIMIT ?5";
    }
    auto s = detail::prepare(handle->get(), sql, Errc::not_an_audit_db);
    if (!s) {
        return tl::unexpected(s.error());
    }
    sqlite3_stmt* st = s->get();
    sqlite3_bind_int64(st, 1, q.after_seq);
    const auto bind_text = [st](int i, const std::string& text) {
        sqlite3_bind_text(st, i, text.data(), static_cast<int>(text.size()), SQLITE_STATIC);
    };
    if (since) {
        bind_text(2, *since);
    }
    if (until) {
        bind_text(3, *until);
    }
    if (q.kind) {
        bind_text(4, *q.kind);
    }
    if (q.limit > 0) {
        sqlite3_bind_int64(
            st, 5,
            static_cast<std::int64_t>(std::min<std::size_t>(
                q.limit, static_cast<std::size_t>(std::numeric_limits<std::int64_t>::max()))));
    }
    std::vector<Stored> out;
    int rc = 0;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        Stored r;
        r.seq = sqlite3_column_int64(st, 0);
        r.ts = detail::column_text(st, 1);
        r.kind = detail::column_text(st, 2);
        r.body = detail::column_text(st, 3);
        r.prev = detail::column_text(st, 4);
        r.hash = detail::column_text(st, 5);
        out.push_back(std::move(r));
    }
    if (rc != SQLITE_DONE) {
        return detail::sqlite_fail(Errc::open_failed, handle->get(), "reading records");
    }
    if (newest) {
        std::reverse(out.begin(), out.end());
    }
    return out;
}

std::string describe(const Stored& r) {
    std::string line = fmt::format("{} #{} {}", clean(r.ts, 40), r.seq, clean(r.kind, 40));
    boost::system::error_code ec;
    const json::value v = json::parse(r.body, ec);
    if (ec || !v.is_object()) {
        return line + " (body is not a JSON object: " + clean(r.body, 120) + ")";
    }
    const json::object& o = v.get_object();
    const Fields f(o);
    if (r.kind == k_request) {
        line += describe_request(f);
    } else if (r.kind == k_connection) {
        line += describe_connection(f);
    } else if (r.kind == k_integrity) {
        line += describe_integrity(f);
    } else if (r.kind == k_policy) {
        line += describe_policy(f);
    } else if (r.kind == k_lifecycle) {
        line += describe_lifecycle(f);
    } else {
        line += describe_other(o);
    }
    return line;
}

std::string format_time(std::chrono::system_clock::time_point t) {
    return detail::format_utc(t);
}

Result<std::vector<StoredCheckpoint>> read_checkpoints(const std::filesystem::path& db,
                                                       std::int64_t after_seq) {
    auto handle = detail::open_read_only(db);
    if (!handle) {
        return tl::unexpected(handle.error());
    }
    auto s = detail::prepare(handle->get(),
                             "SELECT seq, hash, ts, signer, alg, pub, sig FROM checkpoints "
                             "WHERE seq > ?1 ORDER BY seq",
                             Errc::not_an_audit_db);
    if (!s) {
        return tl::unexpected(s.error());
    }
    sqlite3_stmt* st = s->get();
    sqlite3_bind_int64(st, 1, after_seq);
    std::vector<StoredCheckpoint> out;
    int rc = 0;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        out.push_back(StoredCheckpoint{sqlite3_column_int64(st, 0), detail::column_text(st, 1),
                                       detail::column_text(st, 2), detail::column_text(st, 3),
                                       detail::column_text(st, 4), detail::column_text(st, 5),
                                       detail::column_text(st, 6)});
    }
    if (rc != SQLITE_DONE) {
        return detail::sqlite_fail(Errc::open_failed, handle->get(), "reading checkpoints");
    }
    return out;
}

}  // namespace pqmcp::audit
