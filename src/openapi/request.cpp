// A tools/call as the API's HTTP request (OpenAPI's parameter serialization
// styles, RFC 3986 percent-encoding, JSON, form and text bodies), and the
// API's answer as the tool's result.
#include <algorithm>

#include <fmt/format.h>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

#include "pqmcp/core/bytes.hpp"
#include "pqmcp/crypto/util.hpp"
#include "pqmcp/openapi/openapi.hpp"

namespace pqmcp::openapi {

namespace json = boost::json;

namespace {

struct BadArguments {
    std::string message;
};

[[noreturn]] void refuse(std::string message) {
    throw BadArguments{std::move(message)};
}

bool unreserved(char c) {
    return std::isalnum(static_cast<unsigned char>(c)) != 0 || c == '-' || c == '.' || c == '_' ||
           c == '~';
}

// RFC 3986 percent-encoding of everything but the unreserved characters
// (and, with `reserved`, the reserved ones that cannot break a query pair).
std::string encode(std::string_view s, bool reserved = false) {
    static constexpr char k_hex[] = "0123456789ABCDEF";
    std::string out;
    out.reserve(s.size());
    for (const char c : s) {
        const auto u = static_cast<unsigned char>(c);
        if (unreserved(c) ||
            (reserved && std::string_view(":/?@!$'()*+,;[]").find(c) != std::string_view::npos)) {
            out += c;
        } else {
            out += '%';
            out += k_hex[u >> 4U];
            out += k_hex[u & 0x0FU];
        }
    }
    return out;
}

// A primitive's text; objects and arrays are the caller's.
std::string scalar(const json::value& v, std::string_view what) {
    switch (v.kind()) {
        case json::kind::string:
            return std::string(v.get_string());
        case json::kind::bool_:
            return v.get_bool() ? "true" : "false";
        case json::kind::null:
            return {};
        case json::kind::int64:
        case json::kind::uint64:
        case json::kind::double_:
            return json::serialize(v);
        default:
            refuse(fmt::format("{}: a nested object or array cannot be sent here", what));
    }
}

// The pieces of a value for a style: a primitive is one, an array its
// items, an object its names and values in turn (explode: name=value each).
struct Pieces {
    std::vector<std::string> items;
    std::vector<std::pair<std::string, std::string>> pairs;
    bool is_object = false;
};

Pieces pieces(const json::value& v, std::string_view what) {
    Pieces p;
    if (v.is_array()) {
        for (const auto& item : v.as_array()) {
            p.items.push_back(scalar(item, what));
        }
    } else if (v.is_object()) {
        p.is_object = true;
        for (const auto& [k, item] : v.as_object()) {
            p.pairs.emplace_back(std::string(k), scalar(item, what));
        }
    } else {
        p.items.push_back(scalar(v, what));
    }
    return p;
}

void check_path_value(std::string_view value, const std::string& name) {
    // A path parameter names one segment of the path, no more: "." and ".."
    // move up, a '/' (or a '\\' some servers take for one) adds a segment.
    if (value.empty()) {
        refuse(fmt::format("path parameter {} is empty", name));
    }
    if (value == "." || value == "..") {
        refuse(fmt::format("path parameter {} is \"{}\": it would change the path", name, value));
    }
    for (const char c : value) {
        const auto u = static_cast<unsigned char>(c);
        if (c == '/' || c == '\\') {
            refuse(
                fmt::format("path parameter {} contains '{}': it would change the path", name, c));
        }
        if (u < 0x20U || u == 0x7FU) {
            refuse(fmt::format("path parameter {} contains a control character", name));
        }
    }
}

std::string path_value(const Parameter& p, const json::value& v) {
    const std::string what = "path parameter " + p.name;
    Pieces parts = p.json ? Pieces{{json::serialize(v)}, {}, false} : pieces(v, what);
    std::vector<std::string> encoded;
    for (const auto& item : parts.items) {
        check_path_value(item, p.name);
        encoded.push_back(encode(item));
    }
    for (const auto& [k, item] : parts.pairs) {
        check_path_value(k, p.name);
        check_path_value(item, p.name);
        encoded.push_back(encode(k) + (p.explode ? "=" : ",") + encode(item));
    }
    if (encoded.empty()) {
        refuse(fmt::format("path parameter {} is empty", p.name));
    }
    std::string joined;
    const std::string sep = p.style == "label" && p.explode ? "."
                            : p.style == "matrix" && p.explode
                                ? ";" + (parts.is_object ? std::string{} : encode(p.name) + "=")
                                : ",";
    for (std::size_t i = 0; i < encoded.size(); ++i) {
        joined += (i == 0 ? "" : sep) + encoded[i];
    }
    if (p.style == "label") {
        return "." + joined;
    }
    if (p.style == "matrix") {
        return ";" + (parts.is_object && p.explode ? std::string{} : encode(p.name) + "=") + joined;
    }
    return joined;
}

void query_value(const Parameter& p, const json::value& v, std::vector<std::string>& out) {
    const std::string what = "query parameter " + p.name;
    const std::string name = encode(p.name);
    if (p.json) {
        out.push_back(name + "=" + encode(json::serialize(v)));
        return;
    }
    const Pieces parts = pieces(v, what);
    const auto val = [&p](const std::string& s) { return encode(s, p.allow_reserved); };
    if (p.style == "deepObject") {
        if (!parts.is_object) {
            refuse(fmt::format("{}: deepObject style takes an object", what));
        }
        for (const auto& [k, item] : parts.pairs) {
            out.push_back(name + "%5B" + encode(k) + "%5D=" + val(item));
        }
        return;
    }
    if (p.style == "spaceDelimited" || p.style == "pipeDelimited") {
        const std::string sep = p.style == "spaceDelimited" ? "%20" : "%7C";
        std::string joined;
        for (const auto& item : parts.items) {
            joined += (joined.empty() ? "" : sep) + val(item);
        }
        out.push_back(name + "=" + joined);
        return;
    }
    // form (the default for queries)
    if (parts.is_object) {
        if (p.explode) {
            for (const auto& [k, item] : parts.pairs) {
                out.push_back(encode(k) + "=" + val(item));
            }
        } else {
            std::string joined;
            for (const auto& [k, item] : parts.pairs) {
                joined += (joined.empty() ? "" : ",") + val(k) + "," + val(item);
            }
            out.push_back(name + "=" + joined);
        }
        return;
    }
    if (p.explode) {
        for (const auto& item : parts.items) {
            out.push_back(name + "=" + val(item));
        }
        return;
    }
    std::string joined;
    for (const auto& item : parts.items) {
        joined += (joined.empty() ? "" : ",") + val(item);
    }
    out.push_back(name + "=" + joined);
}

std::string header_value(const Parameter& p, const json::value& v) {
    const std::string what = "header " + p.name;
    std::string text;
    if (p.json) {
        text = json::serialize(v);
    } else {
        const Pieces parts = pieces(v, what);
        for (const auto& item : parts.items) {
            text += (text.empty() ? "" : ",") + item;
        }
        for (const auto& [k, item] : parts.pairs) {
            if (!text.empty()) {
                text += ',';
            }
            text += k;
            text += p.explode ? '=' : ',';
            text += item;
        }
    }
    // RFC 9110 5.5: a field value has no CR, LF or NUL (they would start another field).
    for (const char c : text) {
        const auto u = static_cast<unsigned char>(c);
        if (c == '\r' || c == '\n' || c == '\0' || (u < 0x20U && c != '\t') || u == 0x7FU) {
            refuse(fmt::format("{} contains a control character", what));
        }
    }
    return text;
}

bool valid_token(std::string_view name) {
    // RFC 9110 5.6.2: a field name is a token.
    return !name.empty() && std::all_of(name.begin(), name.end(), [](char c) {
        return std::isalnum(static_cast<unsigned char>(c)) != 0 ||
               std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
    });
}

std::string form_body(const json::value& v, std::string_view what) {
    if (!v.is_object()) {
        refuse(fmt::format("{}: a form body is an object of fields", what));
    }
    std::string out;
    for (const auto& [key, item] : v.as_object()) {
        const std::string name = encode(key);
        const auto add = [&out, &name](const std::string& value) {
            if (!out.empty()) {
                out += '&';
            }
            out += name;
            out += '=';
            out += encode(value);
        };
        if (item.is_array()) {
            for (const auto& e : item.as_array()) {
                add(e.is_object() || e.is_array() ? json::serialize(e) : scalar(e, what));
            }
        } else if (item.is_object()) {
            add(json::serialize(item));
        } else {
            add(scalar(item, what));
        }
    }
    return out;
}

// At most `max` bytes of `s`, cut at a UTF-8 boundary.
std::string excerpt(std::string_view s, std::size_t max) {
    if (s.size() <= max) {
        return std::string(s);
    }
    std::size_t cut = max;
    while (cut > 0 && (static_cast<unsigned char>(s[cut]) & 0xC0U) == 0x80U) {
        --cut;
    }
    return std::string(s.substr(0, cut)) + "...";
}

bool is_text(std::string_view type) {
    return type.starts_with("text/") || type.find("xml") != std::string_view::npos ||
           type.starts_with("application/x-www-form-urlencoded") ||
           type.starts_with("application/javascript");
}

bool is_json(std::string_view type) {
    const std::string_view t = type.substr(0, type.find(';'));
    return t == "application/json" || t.ends_with("+json");
}

// Valid UTF-8 (a text content block must be).
bool utf8(std::string_view s) {
    std::size_t i = 0;
    while (i < s.size()) {
        const auto c = static_cast<unsigned char>(s[i]);
        std::size_t n = c < 0x80U            ? 1
                        : (c >> 5U) == 0x6U  ? 2
                        : (c >> 4U) == 0xEU  ? 3
                        : (c >> 3U) == 0x1EU ? 4
                                             : 0;
        if (n == 0 || i + n > s.size()) {
            return false;
        }
        for (std::size_t k = 1; k < n; ++k) {
            if ((static_cast<unsigned char>(s[i + k]) & 0xC0U) != 0x80U) {
                return false;
            }
        }
        i += n;
    }
    return true;
}

json::object text_result(std::string text, bool is_error) {
    json::object r{
        {"content", json::array{json::object{{"type", "text"}, {"text", std::move(text)}}}}};
    if (is_error) {
        r["isError"] = true;
    }
    return r;
}

}  // namespace

Result<HttpRequest> build_request(const Operation& op, const json::object& arguments) {
    HttpRequest req;
    req.method = op.method;
    try {
        // A fragment is no part of a request (some specs tell operations on one
        // path apart with one: "/cookies#exploded").
        std::string path = op.path.substr(0, op.path.find('#'));
        std::vector<std::string> query;
        std::string cookies;
        for (const auto& p : op.parameters) {
            const json::value* v = arguments.if_contains(p.property);
            if (v == nullptr || v->is_null()) {
                if (p.required) {
                    refuse(
                        fmt::format("{} is required ({} parameter {})", p.property, p.in, p.name));
                }
                continue;
            }
            if (p.in == "path") {
                const std::string token = "{" + p.name + "}";
                const std::string value = path_value(p, *v);
                for (auto at = path.find(token); at != std::string::npos;
                     at = path.find(token, at + value.size())) {
                    path.replace(at, token.size(), value);
                }
            } else if (p.in == "query") {
                query_value(p, *v, query);
            } else if (p.in == "header") {
                if (!valid_token(p.name)) {
                    refuse(fmt::format("header name {} is not a valid field name", p.name));
                }
                req.headers.emplace_back(p.name, header_value(p, *v));
            } else if (p.in == "cookie") {
                const std::string text = p.json ? json::serialize(*v) : header_value(p, *v);
                cookies += (cookies.empty() ? "" : "; ") + encode(p.name) + "=" + encode(text);
            }
        }
        if (!cookies.empty()) {
            req.headers.emplace_back("Cookie", cookies);
        }
        req.path = path;
        for (const auto& q : query) {
            req.query += (req.query.empty() ? "" : "&") + q;
        }
        if (op.body) {
            const json::value* v = arguments.if_contains(op.body->property);
            if (v == nullptr) {
                if (op.body->required) {
                    refuse(fmt::format("{} is required (the request body)", op.body->property));
                }
            } else if (op.body->media_type == "application/x-www-form-urlencoded") {
                req.body = form_body(*v, op.body->property);
                req.content_type = op.body->media_type;
            } else if (op.body->media_type.starts_with("text/")) {
                if (!v->is_string()) {
                    refuse(fmt::format("{}: a text body is a string", op.body->property));
                }
                req.body = std::string(v->get_string());
                req.content_type = op.body->media_type + "; charset=utf-8";
            } else {
                req.body = json::serialize(*v);
                req.content_type = op.body->media_type;
            }
        }
    } catch (const BadArguments& b) {
        return fail(Errc::bad_arguments, b.message);
    }
    req.headers.emplace_back("Accept",
                             op.output_schema ? "application/json" : "application/json, */*;q=0.8");
    return req;
}

json::object to_result(const Operation& op, const HttpAnswer& answer, std::string_view url,
                       std::size_t excerpt_bytes) {
    const std::string status =
        fmt::format("HTTP {}{}{}", answer.status, answer.reason.empty() ? "" : " ", answer.reason);
    if (answer.status < 200 || answer.status >= 300) {
        std::string text = fmt::format("{} {}: {}", op.method, op.path, status);
        if (answer.status >= 300 && answer.status < 400) {
            text += " (redirects are not followed)";
        }
        if (!answer.body.empty()) {
            text += "\n" + (utf8(answer.body)
                                ? excerpt(answer.body, excerpt_bytes)
                                : fmt::format("({} bytes of {})", answer.body.size(),
                                              answer.content_type.empty() ? "binary data"
                                                                          : answer.content_type));
        }
        return text_result(std::move(text), true);
    }
    if (answer.truncated) {
        return text_result(fmt::format("{} {}: {}, and its body is over the gateway's response "
                                       "limit (openapi.max_response_bytes); not returned",
                                       op.method, op.path, status),
                           true);
    }
    if (answer.body.empty()) {
        json::object r = text_result(status + " (no content)", false);
        if (op.output_schema && op.wrapped_output) {
            r["structuredContent"] = json::object{{"result", nullptr}};
        }
        return r;
    }
    // JSON by its type; or, when the type says nothing of use and the spec
    // promises JSON, by its first character.
    const bool looks_json = answer.body.front() == '{' || answer.body.front() == '[';
    const bool json_type =
        is_json(answer.content_type) ||
        (looks_json && (answer.content_type.empty() || op.output_schema.has_value() ||
                        answer.content_type.starts_with("text/plain")));
    if (json_type) {
        boost::system::error_code ec;
        json::value v = json::parse(answer.body, ec);
        if (!ec) {
            json::object r = text_result(answer.body, false);
            if (op.wrapped_output) {
                r["structuredContent"] = json::object{{"result", std::move(v)}};
            } else if (v.is_object()) {
                r["structuredContent"] = std::move(v);
            }
            return r;
        }
    }
    if (answer.content_type.empty() || is_text(answer.content_type) || json_type) {
        if (utf8(answer.body)) {
            return text_result(answer.body, false);
        }
    }
    // Anything else is a blob the client may save or show.
    const std::string uri(url);
    return json::object{
        {"content",
         json::array{json::object{
             {"type", "resource"},
             {"resource", json::object{{"uri", uri},
                                       {"mimeType", answer.content_type.empty()
                                                        ? std::string("application/octet-stream")
                                                        : answer.content_type},
                                       {"blob", crypto::to_base64(as_bytes(answer.body))}}}}}}};
}

}  // namespace pqmcp::openapi
