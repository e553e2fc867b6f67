// Small HTTP helpers without Beast: URLs, Accept negotiation, Origin checks.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "pqmcp/core/error.hpp"
#include "pqmcp/transport/errors.hpp"

namespace pqmcp::transport {

struct Url {
    bool tls = false;        // https
    std::string host;        // without brackets for IPv6
    std::uint16_t port = 0;  // explicit or the scheme's default
    std::string target;      // path and query, at least "/"

    // "https://host:port/path" (brackets around an IPv6 host).
    [[nodiscard]] std::string str() const;
    // "host:port" as used in a Host header.
    [[nodiscard]] std::string authority() const;
};

// http:// and https:// only; no user info, no fragment. Errors: invalid_url.
[[nodiscard]] Result<Url> parse_url(std::string_view text);

// RFC 9110 section 12.5.1: does `accept` admit `media_type` ("application/json")?
// Wildcards ("*/*", "application/*") match; a range with q=0 excludes. An
// absent header (empty) admits everything.
[[nodiscard]] bool accepts(std::string_view accept, std::string_view media_type);

// A URL host that names this machine's loopback ("127.0.0.1", "::1",
// "localhost"): where plain http is acceptable.
[[nodiscard]] bool is_loopback_host(std::string_view host) noexcept;

// 2026-07-28 header values (Mcp-Name, Mcp-Param-*): one that is not plain
// printable ASCII, or that starts or ends with whitespace, travels as
// "=?base64?<Base64 of its UTF-8>?=".
[[nodiscard]] std::string encode_header_value(std::string_view value);
// What a header value says, the sentinel decoded; nullopt for a malformed one.
[[nodiscard]] std::optional<std::string> decode_header_value(std::string_view value);

// The Origin allow-list: exact origins ("https://app.example:8443") compared
// after lower-casing scheme and host and dropping a default port, or "*".
class OriginPolicy final {
  public:
    OriginPolicy() = default;
    explicit OriginPolicy(const std::vector<std::string>& allowed);

    // True when the request carries no Origin header (not a browser) or an allowed one.
    [[nodiscard]] bool allows(std::string_view origin_header) const;
    [[nodiscard]] const std::vector<std::string>& allowed() const noexcept { return allowed_; }
    void add(std::string_view origin);

  private:
    std::vector<std::string> allowed_;  // normalised
    bool any_ = false;
};

// A resource URI as policies and upstreams see it: RFC 3986 normalization
// (scheme and host lower-cased, percent-encoding of unreserved characters
// decoded and of the rest upper-cased, dot segments removed, section 6.2.2).
// Refused (invalid_url): what is not a URI, a NUL (raw or %00), and an
// encoded "/" or "\" in the path (%2F, %5C), which a server decoding it
// would read as a separator the normalization never saw.
[[nodiscard]] Result<std::string> normalize_resource_uri(std::string_view uri);

// "https://Host:443" -> "https://host"; empty if the text is not an origin.
[[nodiscard]] std::string normalize_origin(std::string_view origin);

}  // namespace pqmcp::transport
