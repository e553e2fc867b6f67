#include "pqmcp/transport/http_util.hpp"

#include "pqmcp/crypto/util.hpp"

#include <algorithm>
#include <cctype>
#include <charconv>

#include <boost/url/parse.hpp>
#include <boost/url/url.hpp>
#include <boost/url/url_view.hpp>

namespace pqmcp::transport {
namespace {

std::string lower(std::string_view s) {
    std::string out(s);
    std::transform(out.begin(), out.end(), out.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    return out;
}

std::string_view trim(std::string_view s) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) {
        s.remove_prefix(1);
    }
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) {
        s.remove_suffix(1);
    }
    return s;
}

bool iequals(std::string_view a, std::string_view b) {
    return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
               return std::tolower(static_cast<unsigned char>(x)) ==
                      std::tolower(static_cast<unsigned char>(y));
           });
}

std::string bracket(const std::string& host) {
    return host.find(':') != std::string::npos ? "[" + host + "]" : host;
}

}  // namespace

std::string Url::authority() const {
    return bracket(host) + ":" + std::to_string(port);
}

std::string Url::str() const {
    return std::string(tls ? "https://" : "http://") + authority() + target;
}

Result<std::string> normalize_resource_uri(std::string_view uri) {
    if (uri.find('\0') != std::string_view::npos) {
        return fail(Errc::invalid_url, "a resource URI with a NUL character");
    }
    auto parsed = boost::urls::parse_uri(uri);
    if (!parsed) {
        return fail(Errc::invalid_url, "not a URI (RFC 3986): " + parsed.error().message());
    }
    const auto has = [](std::string_view text, std::string_view what) {
        for (std::size_t i = 0; i + what.size() <= text.size(); ++i) {
            bool same = true;
            for (std::size_t j = 0; j < what.size() && same; ++j) {
                same = std::toupper(static_cast<unsigned char>(text[i + j])) == what[j];
            }
            if (same) {
                return true;
            }
        }
        return false;
    };
    // Checked on the URI as sent, before anything is decoded.
    if (has(uri, "%00")) {
        return fail(Errc::invalid_url, "a resource URI with an encoded NUL (%00)");
    }
    const std::string_view raw_path = parsed->encoded_path();
    if (has(raw_path, "%2F") || has(raw_path, "%5C")) {
        return fail(Errc::invalid_url, "a resource URI with an encoded path separator (%2F, %5C)");
    }
    boost::urls::url u(*parsed);
    u.normalize();
    // RFC 3986 section 5.2.4: ".." segments above the root of an absolute
    // path are dropped ("/../a" is "/a"); Boost.URL 1.81 keeps them.
    std::string path(u.encoded_path());
    while (path.rfind("/../", 0) == 0 || path == "/..") {
        path.erase(0, path.size() == 3 ? 2 : 3);
    }
    if (path != u.encoded_path()) {
        u.set_encoded_path(path);
    }
    return std::string(u.buffer());
}

Result<Url> parse_url(std::string_view text) {
    auto parsed = boost::urls::parse_absolute_uri(text);
    if (!parsed) {
        return fail(Errc::invalid_url, std::string(text) + ": " + parsed.error().message());
    }
    const boost::urls::url_view& u = *parsed;
    Url url;
    const std::string scheme = lower(u.scheme());
    if (scheme == "https") {
        url.tls = true;
    } else if (scheme != "http") {
        return fail(Errc::invalid_url, std::string(text) + ": the scheme must be http or https");
    }
    if (!u.has_authority() || u.host().empty()) {
        return fail(Errc::invalid_url, std::string(text) + ": no host");
    }
    if (u.has_userinfo()) {
        return fail(Errc::invalid_url, std::string(text) + ": user information is not supported");
    }
    if (u.has_fragment()) {
        return fail(Errc::invalid_url, std::string(text) + ": a fragment is not allowed");
    }
    url.host = u.host_type() == boost::urls::host_type::ipv6 ? std::string(u.host_address())
                                                             : std::string(u.host());
    if (u.has_port()) {
        const std::string_view port = u.port();
        unsigned value = 0;
        const auto* end = port.data() + port.size();
        if (std::from_chars(port.data(), end, value).ptr != end || value == 0 || value > 65535) {
            return fail(Errc::invalid_url, std::string(text) + ": bad port");
        }
        url.port = static_cast<std::uint16_t>(value);
    } else {
        url.port = url.tls ? 443 : 80;
    }
    url.target = std::string(u.encoded_path());
    if (url.target.empty()) {
        url.target = "/";
    }
    if (u.has_query()) {
        url.target += "?" + std::string(u.encoded_query());
    }
    return url;
}

bool accepts(std::string_view accept, std::string_view media_type) {
    if (trim(accept).empty()) {
        return true;
    }
    const auto slash = media_type.find('/');
    const std::string_view type = media_type.substr(0, slash);
    while (!accept.empty()) {
        const auto comma = accept.find(',');
        std::string_view range = accept.substr(0, comma);
        accept = comma == std::string_view::npos ? std::string_view{} : accept.substr(comma + 1);
        // media-range *( ";" parameter ), with "q" the weight.
        const auto semi = range.find(';');
        const std::string_view mr = trim(range.substr(0, semi));
        bool excluded = false;
        std::string_view params = semi == std::string_view::npos ? "" : range.substr(semi + 1);
        while (!params.empty()) {
            const auto next = params.find(';');
            const std::string_view p = trim(params.substr(0, next));
            params = next == std::string_view::npos ? std::string_view{} : params.substr(next + 1);
            if (p.size() >= 2 && (p[0] == 'q' || p[0] == 'Q') && p[1] == '=') {
                const std::string_view q = trim(p.substr(2));
                // q=0, 0.0, 0.00, 0.000: not acceptable.
                excluded = !q.empty() && q.find_first_not_of("0.") == std::string_view::npos;
            }
        }
        if (excluded) {
            continue;
        }
        if (mr == "*/*" || iequals(mr, media_type)) {
            return true;
        }
        if (mr.size() == type.size() + 2 && iequals(mr.substr(0, type.size()), type) &&
            mr.substr(type.size()) == "/*") {
            return true;
        }
    }
    return false;
}

std::string normalize_origin(std::string_view origin) {
    auto parsed = boost::urls::parse_absolute_uri(trim(origin));
    if (!parsed || !parsed->has_authority() || parsed->host().empty()) {
        return {};
    }
    const boost::urls::url_view& u = *parsed;
    const std::string scheme = lower(u.scheme());
    std::string out =
        scheme + "://" +
        lower(u.encoded_host_and_port().substr(
            0, u.encoded_host_and_port().size() - (u.has_port() ? u.port().size() + 1 : 0)));
    if (u.has_port()) {
        const bool default_port =
            (scheme == "https" && u.port() == "443") || (scheme == "http" && u.port() == "80");
        if (!default_port) {
            out += ":" + std::string(u.port());
        }
    }
    return out;
}

OriginPolicy::OriginPolicy(const std::vector<std::string>& allowed) {
    for (const auto& origin : allowed) {
        if (origin == "*") {
            any_ = true;
            continue;
        }
        std::string normalized = normalize_origin(origin);
        if (!normalized.empty()) {
            allowed_.push_back(std::move(normalized));
        }
    }
}

void OriginPolicy::add(std::string_view origin) {
    std::string normalized = normalize_origin(origin);
    if (!normalized.empty() &&
        std::find(allowed_.begin(), allowed_.end(), normalized) == allowed_.end()) {
        allowed_.push_back(std::move(normalized));
    }
}

bool OriginPolicy::allows(std::string_view origin_header) const {
    if (origin_header.empty()) {
        return true;
    }
    if (any_) {
        return true;
    }
    const std::string normalized = normalize_origin(origin_header);
    return !normalized.empty() &&
           std::find(allowed_.begin(), allowed_.end(), normalized) != allowed_.end();
}

namespace {
constexpr std::string_view k_b64_open = "=?base64?";
constexpr std::string_view k_b64_close = "?=";
}  // namespace

std::string encode_header_value(std::string_view value) {
    const bool plain =
        !value.empty() && value.front() != ' ' && value.front() != '\t' && value.back() != ' ' &&
        value.back() != '\t' &&
        std::all_of(value.begin(), value.end(), [](char c) { return c >= 0x20 && c < 0x7f; });
    if (plain || value.empty()) {
        return std::string(value);
    }
    return std::string(k_b64_open) + crypto::to_base64(as_bytes(value)) + std::string(k_b64_close);
}

std::optional<std::string> decode_header_value(std::string_view value) {
    if (!value.starts_with(k_b64_open) || !value.ends_with(k_b64_close) ||
        value.size() < k_b64_open.size() + k_b64_close.size()) {
        return std::string(value);
    }
    const std::string_view b64 =
        value.substr(k_b64_open.size(), value.size() - k_b64_open.size() - k_b64_close.size());
    if (b64.size() > (1U << 20U)) {
        return std::nullopt;
    }
    auto bytes = crypto::from_base64(b64);
    if (!bytes) {
        return std::nullopt;
    }
    return std::string(bytes->begin(), bytes->end());
}

bool is_loopback_host(std::string_view host) noexcept {
    return host == "127.0.0.1" || host == "::1" || host == "localhost";
}

}  // namespace pqmcp::transport
