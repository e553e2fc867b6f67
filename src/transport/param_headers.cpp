#include "pqmcp/transport/param_headers.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <string>

#include "pqmcp/mcp/jsonrpc.hpp"
#include "pqmcp/transport/http_util.hpp"

namespace pqmcp::transport {

namespace json = boost::json;

namespace {

// RFC 9110 section 5.6.2: tchar.
bool is_token(std::string_view s) {
    constexpr std::string_view k_special = "!#$%&'*+-.^_`|~";
    return !s.empty() && std::all_of(s.begin(), s.end(), [&](char c) {
        return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
               k_special.find(c) != std::string_view::npos;
    });
}

bool iequal(std::string_view a, std::string_view b) {
    return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
               return std::tolower(static_cast<unsigned char>(x)) ==
                      std::tolower(static_cast<unsigned char>(y));
           });
}

// The primitive type a marked property declares: "string", "integer",
// "boolean" (a type list may add "null"); "" for anything else.
std::string primitive_type(const json::object& schema) {
    const auto* type = schema.if_contains("type");
    if (type == nullptr) {
        return {};
    }
    const auto primitive = [](std::string_view t) {
        return t == "string" || t == "integer" || t == "boolean";
    };
    if (type->is_string()) {
        return primitive(type->get_string()) ? std::string(type->get_string()) : std::string{};
    }
    if (!type->is_array()) {
        return {};
    }
    std::string found;
    for (const auto& t : type->get_array()) {
        if (!t.is_string()) {
            return {};
        }
        if (t.get_string() == "null") {
            continue;
        }
        if (!primitive(t.get_string()) || !found.empty()) {
            return {};
        }
        found = std::string(t.get_string());
    }
    return found;
}

// Keywords whose values are data, not schemas (a default may hold any key).
bool is_data_keyword(std::string_view key) {
    return key == "const" || key == "enum" || key == "default" || key == "examples";
}

struct Scan {
    std::vector<ParamHeader> found;
    std::vector<std::string> path;
    std::string error;

    // `schema` at `path`; `property`: reached through a chain of
    // `properties` keys from the root (the only place a mark may be).
    void visit(const json::value& schema, bool property) {
        if (!error.empty()) {
            return;
        }
        if (schema.is_array()) {
            for (const auto& v : schema.get_array()) {
                visit(v, false);
            }
            return;
        }
        const auto* o = schema.if_object();
        if (o == nullptr) {
            return;
        }
        if (const auto* mark = o->if_contains("x-mcp-header"); mark != nullptr) {
            mark_here(*o, *mark, property);
            if (!error.empty()) {
                return;
            }
        }
        const bool reachable = property || path.empty();
        for (const auto& [key, value] : *o) {
            if (is_data_keyword(key) || key == "x-mcp-header") {
                continue;
            }
            if (key == "properties" && value.is_object()) {
                for (const auto& [name, sub] : value.get_object()) {
                    path.emplace_back(name);
                    visit(sub, reachable);
                    path.pop_back();
                }
                continue;
            }
            // Anything else (items, oneOf, $ref targets in $defs, ...) is not
            // statically reachable; a mark in it makes the definition invalid.
            path.emplace_back(std::string("(") + std::string(key) + ")");
            visit(value, false);
            path.pop_back();
        }
    }

    void mark_here(const json::object& schema, const json::value& mark, bool property) {
        std::string where = path.empty() ? std::string("the schema root") : "/" + joined();
        if (!property || path.empty()) {
            error = "x-mcp-header at " + where +
                    " is not reachable from the root through properties alone";
            return;
        }
        if (!mark.is_string() || !is_token(mark.get_string())) {
            error = "x-mcp-header at " + where + " is not an HTTP token (RFC 9110 tchar)";
            return;
        }
        const std::string name(mark.get_string());
        const std::string type = primitive_type(schema);
        if (type.empty()) {
            error = "x-mcp-header " + name + " at " + where +
                    " marks a property that is not a string, integer or boolean";
            return;
        }
        for (const auto& f : found) {
            if (iequal(f.name, name)) {
                error = "x-mcp-header " + name + " is declared twice (names ignore case)";
                return;
            }
        }
        if (found.size() == k_max_param_headers) {
            error = "more than " + std::to_string(k_max_param_headers) + " x-mcp-header marks";
            return;
        }
        found.push_back(ParamHeader{name, path, type == "integer"});
    }

    [[nodiscard]] std::string joined() const {
        std::string out;
        for (const auto& p : path) {
            out += (out.empty() ? "" : "/") + p;
        }
        return out;
    }
};

// RFC 9110 field values: visible ASCII, space and tab.
bool header_safe(std::string_view v) {
    return std::all_of(v.begin(), v.end(),
                       [](char c) { return c == '\t' || (c >= 0x20 && c < 0x7f); });
}

std::optional<double> number_of(std::string_view text) {
    double d = 0;
    const auto* end = text.data() + text.size();
    const auto [p, ec] = std::from_chars(text.data(), end, d);
    if (ec != std::errc{} || p != end || !std::isfinite(d)) {
        return std::nullopt;
    }
    return d;
}

}  // namespace

tl::expected<std::vector<ParamHeader>, std::string> param_headers_of(
    const json::value& input_schema) {
    Scan scan;
    scan.visit(input_schema, false);
    if (!scan.error.empty()) {
        return tl::unexpected(std::move(scan.error));
    }
    return std::move(scan.found);
}

const json::value* argument_at(const json::value& arguments, const std::vector<std::string>& path) {
    const json::value* at = &arguments;
    for (const auto& key : path) {
        const auto* o = at->if_object();
        at = o != nullptr ? o->if_contains(key) : nullptr;
        if (at == nullptr) {
            return nullptr;
        }
    }
    return at;
}

std::optional<std::string> param_header_text(const json::value* argument) {
    if (argument == nullptr) {
        return std::nullopt;
    }
    if (argument->is_string()) {
        return std::string(argument->get_string());
    }
    if (argument->is_int64() || argument->is_uint64() || argument->is_bool()) {
        return mcp::serialize(*argument);
    }
    if (argument->is_double()) {
        // 42.0 is the integer 42; a fraction gets no header.
        const double d = argument->get_double();
        constexpr double k_safe = 9007199254740991.0;  // 2^53 - 1
        if (std::trunc(d) == d && std::fabs(d) <= k_safe) {
            return std::to_string(static_cast<std::int64_t>(d));
        }
    }
    return std::nullopt;
}

bool param_header_declared(const std::vector<ParamHeader>& declared, std::string_view name) {
    return std::any_of(declared.begin(), declared.end(),
                       [&](const ParamHeader& h) { return iequal(h.name, name); });
}

std::string check_param_headers(const std::vector<ParamHeader>& declared,
                                const json::value& arguments, const ParamHeaderValues& headers) {
    for (const auto& d : declared) {
        const std::string header = std::string(k_param_header_prefix) + d.name;
        const auto expected = param_header_text(argument_at(arguments, d.path));
        const auto sent = std::find_if(headers.begin(), headers.end(),
                                       [&](const auto& h) { return iequal(h.first, d.name); });
        if (sent == headers.end()) {
            if (expected) {
                return "the arguments carry " + d.name + " but the required " + header +
                       " header is absent";
            }
            continue;
        }
        // "Servers MUST reject requests with a recognized Mcp-Param-{Name}
        // header that contains invalid characters."
        if (!header_safe(sent->second)) {
            return "the " + header + " header carries characters a header value may not";
        }
        const auto decoded = decode_header_value(sent->second);
        if (!decoded) {
            return "the " + header + " header's Base64 value does not decode";
        }
        if (!expected) {
            return "the " + header + " header is present but the arguments carry no value for it";
        }
        bool same = *decoded == *expected;
        if (!same && d.integer) {
            // "servers SHOULD compare the header value and the body value
            // numerically rather than as strings"
            const auto a = number_of(*decoded);
            const auto b = number_of(*expected);
            same = a && b && *a == *b;
        }
        if (!same) {
            return "the " + header + " header does not match the arguments";
        }
    }
    return {};
}

}  // namespace pqmcp::transport
