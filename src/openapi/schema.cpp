#include "schema.hpp"

#include <deque>

#include <fmt/format.h>

namespace pqmcp::openapi::detail {

namespace json = boost::json;

namespace {

std::string key_of(const Documents& docs, const Location& at) {
    return docs.doc(at.doc).name + "#" + at.pointer;
}

// The component's name when `pointer` is one ("/components/schemas/Pet",
// Swagger's "/definitions/Pet"); "" otherwise.
std::string component_name(std::string_view pointer) {
    for (const std::string_view prefix : {"/components/schemas/", "/definitions/"}) {
        if (pointer.starts_with(prefix)) {
            const std::string_view rest = pointer.substr(prefix.size());
            if (!rest.empty() && rest.find('/') == std::string_view::npos) {
                std::string name;
                for (std::size_t i = 0; i < rest.size(); ++i) {
                    if (rest[i] == '~' && i + 1 < rest.size()) {
                        name += rest[i + 1] == '1' ? '/' : '~';
                        ++i;
                    } else {
                        name += rest[i];
                    }
                }
                return name;
            }
        }
    }
    return {};
}

// A $defs name: letters, digits, '.', '_', '-' (no escaping needed in a pointer).
std::string def_name(std::string_view raw) {
    std::string out;
    for (const char c : raw) {
        const bool ok =
            std::isalnum(static_cast<unsigned char>(c)) != 0 || c == '.' || c == '_' || c == '-';
        out += ok ? c : '_';
    }
    return out.empty() ? std::string("schema") : out;
}

bool one_of(std::string_view k, std::initializer_list<std::string_view> set) {
    for (const auto s : set) {
        if (k == s) {
            return true;
        }
    }
    return false;
}

}  // namespace

json::value SchemaConverter::convert(const Location& at) {
    std::set<std::string> uses;
    json::value out = walk(at, 0, uses);
    noted_.insert(uses.begin(), uses.end());
    return out;
}

json::value SchemaConverter::convert_value(const json::value& v, const Location& at) {
    std::set<std::string> uses;
    json::value out = walk_value(v, at, 0, uses);
    noted_.insert(uses.begin(), uses.end());
    return out;
}

json::value SchemaConverter::subschemas(const Location& at, const json::value& v,
                                        std::string_view kind, std::size_t depth,
                                        std::set<std::string>& uses) {
    const Location here{at.doc, pointer_join(at.pointer, kind)};
    if (one_of(kind,
               {"properties", "patternProperties", "$defs", "definitions", "dependentSchemas"})) {
        if (!v.is_object()) {
            return v;
        }
        json::object out;
        for (const auto& [name, sub] : v.as_object()) {
            out[name] = walk(Location{at.doc, pointer_join(here.pointer, name)}, depth + 1, uses);
        }
        return out;
    }
    if (one_of(kind, {"allOf", "anyOf", "oneOf", "prefixItems"}) ||
        (kind == "items" && v.is_array())) {
        if (!v.is_array()) {
            return v;
        }
        json::array out;
        for (std::size_t i = 0; i < v.as_array().size(); ++i) {
            out.push_back(walk(Location{at.doc, pointer_join(here.pointer, std::to_string(i))},
                               depth + 1, uses));
        }
        return out;
    }
    return walk(here, depth + 1, uses);
}

json::value SchemaConverter::walk(const Location& at, std::size_t depth,
                                  std::set<std::string>& uses) {
    return walk_value(docs_.at(at), at, depth, uses);
}

json::value SchemaConverter::walk_value(const json::value& v, const Location& at, std::size_t depth,
                                        std::set<std::string>& uses) {
    if (v.is_bool()) {
        return v;
    }
    if (!v.is_object()) {
        warnings_.push_back({docs_.where(at), "a schema that is not an object: any value"});
        return json::object{};
    }
    if (depth > limits_.max_schema_depth) {
        warnings_.push_back(
            {docs_.where(at), fmt::format("schemas nested deeper than {}: any value "
                                          "from here",
                                          limits_.max_schema_depth)});
        return json::object{};
    }
    const json::object& in = v.as_object();
    if (const auto* ref = in.if_contains("$ref"); ref != nullptr && ref->is_string()) {
        return reference(at, in, depth, uses);
    }
    json::object out;
    bool drop_maximum = false;
    bool drop_minimum = false;
    for (const auto& [key, value] : in) {
        const std::string_view k = key;
        if (k.starts_with("x-") || one_of(k, {"discriminator", "xml", "externalDocs"})) {
            continue;
        }
        if (legacy_ && k == "nullable") {
            continue;
        }
        if (k == "example") {
            if (!in.contains("examples")) {
                out["examples"] = json::array{value};
            }
            continue;
        }
        if (one_of(k, {"properties",
                       "patternProperties",
                       "$defs",
                       "definitions",
                       "dependentSchemas",
                       "allOf",
                       "anyOf",
                       "oneOf",
                       "prefixItems",
                       "items",
                       "additionalProperties",
                       "not",
                       "contains",
                       "propertyNames",
                       "if",
                       "then",
                       "else",
                       "unevaluatedProperties",
                       "unevaluatedItems",
                       "additionalItems"})) {
            out[key] = subschemas(at, value, k, depth, uses);
            continue;
        }
        if (legacy_ && (k == "exclusiveMaximum" || k == "exclusiveMinimum") && value.is_bool()) {
            // OpenAPI 3.0 (JSON Schema draft 5): a flag on maximum/minimum;
            // 2020-12: the bound itself.
            const bool is_max = k == "exclusiveMaximum";
            const auto* bound = in.if_contains(is_max ? "maximum" : "minimum");
            if (value.get_bool() && bound != nullptr) {
                out[key] = *bound;
                (is_max ? drop_maximum : drop_minimum) = true;
            }
            continue;
        }
        if (k == "type" && value.is_string() && value.get_string() == "file") {
            out["type"] = "string";  // Swagger 2.0: an upload
            out["format"] = "binary";
            continue;
        }
        out[key] = value;
    }
    if (drop_maximum) {
        out.erase("maximum");
    }
    if (drop_minimum) {
        out.erase("minimum");
    }
    const auto* nullable = in.if_contains("nullable");
    if (legacy_ && nullable != nullptr && nullable->is_bool() && nullable->get_bool()) {
        if (auto* type = out.if_contains("type"); type != nullptr && type->is_string()) {
            *type = json::array{*type, "null"};
        }
        if (auto* e = out.if_contains("enum"); e != nullptr && e->is_array()) {
            e->as_array().push_back(nullptr);
        }
    }
    return out;
}

json::value SchemaConverter::reference(const Location& at, const json::object& schema,
                                       std::size_t depth, std::set<std::string>& uses) {
    const Location target = docs_.resolve(Location{at.doc, pointer_join(at.pointer, "$ref")},
                                          schema.at("$ref").get_string());
    const std::string key = key_of(docs_, target);
    const std::string component = component_name(target.pointer);
    if (!component.empty()) {
        auto [it, added] = defs_.try_emplace(key);
        if (added) {
            std::string name = def_name(component);
            for (int n = 2; names_.contains(name); ++n) {
                name = def_name(component) + "_" + std::to_string(n);
            }
            names_.insert(name);
            it->second.name = name;
            where_.emplace(key, target);
        }
        uses.insert(key);
        json::object out{{"$ref", "#/$defs/" + it->second.name}};
        // Beside a $ref, 3.1 (JSON Schema 2020-12) keeps the annotations; 3.0 ignores them.
        if (!legacy_) {
            for (const std::string_view k : {"description", "title", "default", "examples",
                                             "deprecated", "readOnly", "writeOnly"}) {
                if (const auto* v = schema.if_contains(k)) {
                    out[k] = *v;
                }
            }
        }
        return out;
    }
    // Anything else is inlined, once per path through it.
    if (std::find(inline_stack_.begin(), inline_stack_.end(), key) != inline_stack_.end()) {
        warnings_.push_back({docs_.where(at),
                             "a $ref that refers back to itself outside "
                             "the components: any value from here"});
        return json::object{};
    }
    inline_stack_.push_back(key);
    json::value out = walk(target, depth + 1, uses);
    inline_stack_.pop_back();
    return out;
}

void SchemaConverter::complete(const std::string& key) {
    Def& d = defs_.at(key);
    if (d.done) {
        return;
    }
    d.done = true;  // before walking: a schema that refers to itself finds it done
    std::set<std::string> uses;
    json::value schema = walk(where_.at(key), 0, uses);
    Def& again = defs_.at(key);
    again.schema = std::move(schema);
    again.uses = std::move(uses);
}

json::object SchemaConverter::take_defs() {
    json::object out;
    std::deque<std::string> queue(noted_.begin(), noted_.end());
    std::set<std::string> seen;
    while (!queue.empty()) {
        const std::string key = std::move(queue.front());
        queue.pop_front();
        if (!seen.insert(key).second) {
            continue;
        }
        complete(key);
        const Def& d = defs_.at(key);
        out[d.name] = d.schema;
        for (const auto& u : d.uses) {
            queue.push_back(u);
        }
    }
    noted_.clear();
    return out;
}

}  // namespace pqmcp::openapi::detail
