#include "pqmcp/identity/known_peers.hpp"

#include <cctype>
#include <chrono>
#include <cstring>
#include <ctime>

#include "files.hpp"

namespace pqmcp::identity {
namespace fs = std::filesystem;

namespace {

constexpr std::size_t k_max_file_bytes = 4U << 20U;
constexpr std::size_t k_max_name = 64;

bool is_valid_date(std::string_view d) {
    if (d.size() != 10 || d[4] != '-' || d[7] != '-') {
        return false;
    }
    for (const std::size_t i : {0U, 1U, 2U, 3U, 5U, 6U, 8U, 9U}) {
        if (std::isdigit(static_cast<unsigned char>(d[i])) == 0) {
            return false;
        }
    }
    const int month = (d[5] - '0') * 10 + (d[6] - '0');
    const int day = (d[8] - '0') * 10 + (d[9] - '0');
    return month >= 1 && month <= 12 && day >= 1 && day <= 31;
}

std::vector<std::string_view> split_fields(std::string_view line) {
    std::vector<std::string_view> out;
    std::size_t i = 0;
    while (i < line.size()) {
        while (i < line.size() && (line[i] == ' ' || line[i] == '\t')) {
            ++i;
        }
        const std::size_t start = i;
        while (i < line.size() && line[i] != ' ' && line[i] != '\t') {
            ++i;
        }
        if (i > start) {
            out.push_back(line.substr(start, i - start));
        }
    }
    return out;
}

}  // namespace

bool is_valid_peer_name(std::string_view name) noexcept {
    if (name.empty() || name.size() > k_max_name) {
        return false;
    }
    for (const char c : name) {
        if (std::isalnum(static_cast<unsigned char>(c)) == 0 && c != '.' && c != '_' && c != '@' &&
            c != '-') {
            return false;
        }
    }
    return true;
}

std::string today_utc() {
    const std::time_t now = std::chrono::system_clock::to_time_t(std::chrono::system_clock::now());
    std::tm tm{};
    gmtime_r(&now, &tm);
    char buf[16];
    if (std::strftime(buf, sizeof buf, "%Y-%m-%d", &tm) == 0) {
        return "1970-01-01";  // unreachable: the format always fits
    }
    return buf;
}

Result<KnownPeers> KnownPeers::parse(std::string_view text, std::string_view source) {
    KnownPeers out;
    std::size_t line_no = 0;
    std::size_t pos = 0;
    const auto where = [&] { return std::string(source) + ":" + std::to_string(line_no) + ": "; };
    while (pos <= text.size()) {
        const std::size_t end = text.find('\n', pos);
        std::string_view line =
            text.substr(pos, end == std::string_view::npos ? std::string_view::npos : end - pos);
        pos = (end == std::string_view::npos) ? text.size() + 1 : end + 1;
        ++line_no;
        if (!line.empty() && line.back() == '\r') {
            line.remove_suffix(1);
        }
        const auto fields = split_fields(line);
        if (fields.empty() || fields[0].starts_with('#')) {
            continue;
        }
        if (fields.size() != 3) {
            return fail(Errc::known_peers_syntax,
                        where() + "expected '<peer id> <name> <YYYY-MM-DD>', found " +
                            std::to_string(fields.size()) + " field(s)");
        }
        auto id = PeerId::parse(fields[0]);
        if (!id) {
            return fail(Errc::known_peers_syntax, where() + id.error().detail);
        }
        if (!is_valid_peer_name(fields[1])) {
            return fail(Errc::known_peers_syntax, where() + "invalid name '" +
                                                      std::string(fields[1].substr(0, 80)) +
                                                      "' (1-64 characters of A-Z a-z 0-9 . _ @ -)");
        }
        if (!is_valid_date(fields[2])) {
            return fail(Errc::known_peers_syntax, where() + "invalid date '" +
                                                      std::string(fields[2].substr(0, 40)) +
                                                      "' (expected YYYY-MM-DD)");
        }
        if (auto s = out.add(KnownPeer{*id, std::string(fields[1]), std::string(fields[2])}); !s) {
            return fail(Errc::known_peers_syntax, where() + s.error().detail);
        }
    }
    return out;
}

Result<KnownPeers> KnownPeers::load(const fs::path& file) {
    auto text = read_file(file, k_max_file_bytes);
    if (!text) {
        return tl::unexpected(text.error());
    }
    return parse(*text, file.string());
}

Status KnownPeers::add(KnownPeer peer) {
    if (!is_valid_peer_name(peer.name)) {
        return fail(Errc::known_peers_syntax, "invalid name '" + peer.name + "'");
    }
    if (peer.added.empty()) {
        peer.added = today_utc();
    } else if (!is_valid_date(peer.added)) {
        return fail(Errc::known_peers_syntax, "invalid date '" + peer.added + "'");
    }
    if (const auto* p = find(peer.id)) {
        return fail(Errc::duplicate_peer,
                    "peer " + peer.id.str() + " is already known as '" + p->name + "'");
    }
    if (find_by_name(peer.name) != nullptr) {
        return fail(Errc::duplicate_peer, "name '" + peer.name + "' is already in use");
    }
    peers_.push_back(std::move(peer));
    return {};
}

const KnownPeer* KnownPeers::find(const PeerId& id) const noexcept {
    for (const auto& p : peers_) {
        if (p.id == id) {
            return &p;
        }
    }
    return nullptr;
}

const KnownPeer* KnownPeers::find_by_name(std::string_view name) const noexcept {
    for (const auto& p : peers_) {
        if (p.name == name) {
            return &p;
        }
    }
    return nullptr;
}

std::string KnownPeers::serialize() const {
    std::string out = "# pqmcp known_peers: <peer id> <name> <added YYYY-MM-DD>\n";
    for (const auto& p : peers_) {
        out += p.id.str() + " " + p.name + " " + p.added + "\n";
    }
    return out;
}

Status KnownPeers::save(const fs::path& file) const {
    return write_file_atomic(file, as_bytes(serialize()), 0644);
}

}  // namespace pqmcp::identity
