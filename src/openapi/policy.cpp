// `pqmcp openapi policy`: a starting policy for an API's tools, as YAML the
// operator edits (docs/policy.md has the format).
#include <cmath>

#include <fmt/format.h>
#include <re2/re2.h>
#include <boost/json/serialize.hpp>

#include "pqmcp/openapi/openapi.hpp"

namespace pqmcp::openapi {

namespace json = boost::json;

namespace {

// A JSON string is a YAML double-quoted scalar.
std::string yaml_string(std::string_view s) {
    return json::serialize(json::string_view(s));
}

std::string pointer_token(std::string_view s) {
    std::string out;
    for (const char c : s) {
        out += c == '~' ? std::string("~0") : c == '/' ? std::string("~1") : std::string(1, c);
    }
    return out;
}

const json::object* resolve(const json::object& root, const json::value& schema) {
    if (!schema.is_object()) {
        return nullptr;
    }
    const json::object* s = &schema.as_object();
    for (int hops = 0; hops < 8 && s != nullptr; ++hops) {
        const auto* ref = s->if_contains("$ref");
        if (ref == nullptr || !ref->is_string()) {
            return s;
        }
        const std::string_view r = ref->get_string();
        const std::string_view prefix = "#/$defs/";
        const auto* defs = root.if_contains("$defs");
        if (!r.starts_with(prefix) || defs == nullptr || !defs->is_object()) {
            return nullptr;
        }
        const auto* target = defs->as_object().if_contains(r.substr(prefix.size()));
        s = target != nullptr && target->is_object() ? &target->as_object() : nullptr;
    }
    return s;
}

bool has_type(const json::object& s, std::string_view t) {
    const auto* type = s.if_contains("type");
    if (type == nullptr) {
        return false;
    }
    if (type->is_string()) {
        return type->get_string() == t;
    }
    if (type->is_array()) {
        for (const auto& x : type->as_array()) {
            if (x.is_string() && x.get_string() == t) {
                return true;
            }
        }
    }
    return false;
}

struct Limit {
    std::string condition;  // "{ arg: /x, not_one_of: [...] }"
    std::string why;
};

// Conditions that hold when the value at `pointer` is outside what `s` allows
// (each holds only when the value is there: an absent optional one passes).
void limits_of(const json::object& s, const std::string& pointer, std::vector<Limit>& out,
               std::vector<std::string>& notes) {
    if (const auto* e = s.if_contains("enum");
        e != nullptr && e->is_array() && !e->as_array().empty()) {
        json::array values;
        for (const auto& v : e->as_array()) {
            if (!v.is_null()) {
                values.push_back(v);
            }
        }
        if (!values.empty()) {
            out.push_back(
                {fmt::format("{{ arg: {}, not_one_of: {} }}", pointer, json::serialize(values)),
                 "not one of the values the API lists"});
        }
    }
    const bool integer = has_type(s, "integer");
    if (const auto* m = s.if_contains("maximum"); m != nullptr && m->is_number()) {
        const double max = m->to_number<double>();
        const double over = integer ? std::floor(max) + 1 : std::nextafter(max, INFINITY);
        out.push_back({fmt::format("{{ arg: {}, min: {} }}", pointer,
                                   json::serialize(json::value(
                                       integer ? json::value(static_cast<std::int64_t>(over))
                                               : json::value(over)))),
                       fmt::format("above the maximum of {}", json::serialize(*m))});
    }
    if (const auto* m = s.if_contains("exclusiveMaximum"); m != nullptr && m->is_number()) {
        out.push_back(
            {fmt::format("{{ arg: {}, min: {} }}", pointer, json::serialize(*m)),
             fmt::format("at or above the exclusive maximum of {}", json::serialize(*m))});
    }
    if (const auto* m = s.if_contains("minimum"); m != nullptr && m->is_number()) {
        const double min = m->to_number<double>();
        const double under = integer ? std::ceil(min) - 1 : std::nextafter(min, -INFINITY);
        out.push_back({fmt::format("{{ arg: {}, max: {} }}", pointer,
                                   json::serialize(json::value(
                                       integer ? json::value(static_cast<std::int64_t>(under))
                                               : json::value(under)))),
                       fmt::format("below the minimum of {}", json::serialize(*m))});
    }
    if (const auto* m = s.if_contains("exclusiveMinimum"); m != nullptr && m->is_number()) {
        out.push_back(
            {fmt::format("{{ arg: {}, max: {} }}", pointer, json::serialize(*m)),
             fmt::format("at or below the exclusive minimum of {}", json::serialize(*m))});
    }
    if (const auto* p = s.if_contains("pattern"); p != nullptr && p->is_string()) {
        // The API's pattern is ECMA-262; RE2 reads most of them (not lookarounds
        // or backreferences): one it cannot read is left as a note.
        const std::string pattern(p->get_string());
        RE2::Options o;
        o.set_log_errors(false);
        if (RE2(pattern, o).ok()) {
            out.push_back(
                {fmt::format("{{ arg: {}, not_regex: {} }}", pointer, yaml_string(pattern)),
                 "does not match the API's pattern"});
        } else {
            notes.push_back(fmt::format("{}: pattern {} is not RE2 (no condition written)", pointer,
                                        yaml_string(pattern)));
        }
    }
    if (const auto* m = s.if_contains("maxLength");
        m != nullptr && m->is_int64() && has_type(s, "string")) {
        const auto n = m->get_int64();
        if (n >= 0 && n < 1'000) {
            out.push_back({fmt::format("{{ arg: {}, not_regex: {} }}", pointer,
                                       yaml_string(fmt::format("^(?s).{{0,{}}}$", n))),
                           fmt::format("longer than {} characters", n)});
        }
    }
}

}  // namespace

std::string starting_policy(const Catalog& catalog, std::string_view upstream,
                            std::string_view separator) {
    std::string out;
    out += fmt::format(
        "# A starting policy for the tools of {} {} (upstream {}), written by `pqmcp openapi "
        "policy`.\n"
        "# Edit it before use (docs/policy.md): reads are allowed, writes are asked about, "
        "deletes are\n"
        "# denied, and values outside what the API describes are refused. Rules are tried in "
        "order.\n",
        catalog.title.empty() ? std::string("the API") : catalog.title, catalog.api_version,
        upstream);
    out += "version: 1\ndefault: deny\nschema_validation: true\nrules:\n";
    for (const auto& op : catalog.operations) {
        const std::string tool = std::string(upstream) + std::string(separator) + op.tool;
        std::vector<Limit> limits;
        std::vector<std::string> notes;
        const auto* props = op.input_schema.if_contains("properties");
        if (props != nullptr && props->is_object()) {
            for (const auto& [name, schema] : props->as_object()) {
                const json::object* s = resolve(op.input_schema, schema);
                if (s == nullptr) {
                    continue;
                }
                const std::string pointer = "/" + pointer_token(name);
                limits_of(*s, pointer, limits, notes);
                // One level into an object body: its fields.
                if (op.body && name == op.body->property) {
                    const auto* fields = s->if_contains("properties");
                    if (fields != nullptr && fields->is_object()) {
                        for (const auto& [field, fs] : fields->as_object()) {
                            if (const json::object* f = resolve(op.input_schema, fs)) {
                                limits_of(*f, pointer + "/" + pointer_token(field), limits, notes);
                            }
                        }
                    }
                }
            }
        }
        out += fmt::format("\n  # {} {}{}\n", op.method, op.path,
                           op.title.empty() ? "" : ": " + op.title);
        for (const auto& n : notes) {
            out += "  # " + n + "\n";
        }
        for (std::size_t i = 0; i < limits.size(); ++i) {
            out += fmt::format("  - id: {}.limit-{}\n", op.tool, i + 1);
            out += fmt::format("    description: {}\n", yaml_string(limits[i].why));
            out += fmt::format("    match: {{ tool: {} }}\n", yaml_string(tool));
            out += fmt::format("    when:\n      - {}\n", limits[i].condition);
            out += "    effect: deny\n";
            out += fmt::format("    reason: {}\n", yaml_string(limits[i].why));
        }
        const bool read = op.method == "GET" || op.method == "HEAD" || op.method == "OPTIONS";
        const std::string effect = read ? "allow" : op.method == "DELETE" ? "deny" : "ask";
        out += fmt::format("  - id: {}\n", op.tool);
        out += fmt::format("    match: {{ tool: {} }}\n", yaml_string(tool));
        out += fmt::format("    effect: {}\n", effect);
        if (effect == "ask") {
            out += fmt::format("    reason: {}\n",
                               yaml_string(fmt::format("{} {} changes data", op.method, op.path)));
        } else if (effect == "deny") {
            out +=
                fmt::format("    reason: {}\n", yaml_string(fmt::format("{} {} deletes data: allow "
                                                                        "it by editing the policy",
                                                                        op.method, op.path)));
        }
    }
    return out;
}

}  // namespace pqmcp::openapi
