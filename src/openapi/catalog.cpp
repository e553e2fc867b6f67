// An OpenAPI description's operations as MCP tools: which operations (the
// filters, max_tools), their names, descriptions, input and output schemas
// and annotations.
#include <fnmatch.h>

#include <algorithm>
#include <map>
#include <set>

#include <fmt/format.h>
#include <boost/json/serialize.hpp>

#include "documents.hpp"
#include "pqmcp/core/bytes.hpp"
#include "pqmcp/crypto/util.hpp"
#include "schema.hpp"

namespace pqmcp::openapi {

namespace json = boost::json;
using detail::Documents;
using detail::fail_with;
using detail::Location;
using detail::pointer_join;
using detail::Problem;

namespace {

constexpr std::array<std::string_view, 8> k_methods = {"get",     "put",  "post",  "delete",
                                                       "options", "head", "patch", "trace"};

std::string upper(std::string_view s) {
    std::string out(s);
    for (char& c : out) {
        c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    }
    return out;
}

std::string text_of(const json::value* v) {
    if (v == nullptr) {
        return {};
    }
    if (v->is_string()) {
        return std::string(v->get_string());
    }
    if (v->is_number()) {
        return json::serialize(*v);
    }
    return {};
}

bool glob(std::string_view pattern, std::string_view text) {
    return fnmatch(std::string(pattern).c_str(), std::string(text).c_str(), 0) == 0;
}

bool any_glob(const std::vector<std::string>& patterns, std::string_view text) {
    return std::any_of(patterns.begin(), patterns.end(),
                       [&](const std::string& p) { return glob(p, text); });
}

std::string short_hash(std::string_view text) {
    return to_hex(crypto::sha256(as_bytes(text))).substr(0, 8);
}

// [A-Za-z0-9_.-], runs of anything else one '_'.
std::string mcp_name(std::string_view raw) {
    std::string out;
    for (const char c : raw) {
        const bool ok =
            std::isalnum(static_cast<unsigned char>(c)) != 0 || c == '_' || c == '-' || c == '.';
        if (ok) {
            out += c;
        } else if (!out.empty() && out.back() != '_') {
            out += '_';
        }
    }
    while (!out.empty() && out.back() == '_') {
        out.pop_back();
    }
    return out;
}

std::string trimmed(const std::string& s) {
    const auto first = s.find_first_not_of(" \t\r\n");
    if (first == std::string::npos) {
        return {};
    }
    const auto last = s.find_last_not_of(" \t\r\n");
    return s.substr(first, last - first + 1);
}

// At most `max` bytes, cut at a UTF-8 boundary, with an ellipsis when cut.
std::string shortened(std::string s, std::size_t max) {
    if (s.size() <= max) {
        return s;
    }
    std::size_t cut = max >= 3 ? max - 3 : 0;
    while (cut > 0 && (static_cast<unsigned char>(s[cut]) & 0xC0U) == 0x80U) {
        --cut;
    }
    s.resize(cut);
    return s + "...";
}

bool is_json_media(std::string_view media) {
    const std::string_view type = media.substr(0, media.find(';'));
    return type == "application/json" || type.ends_with("+json");
}

class Builder final {
  public:
    Builder(Documents& docs, const Options& options, Catalog& out)
        : docs_(docs), options_(options), out_(out) {}

    void run() {
        const json::value& root = docs_.doc(0).root;
        if (!root.is_object()) {
            fail_with(Errc::invalid,
                      docs_.doc(0).name + ": not an OpenAPI description (not a mapping)");
        }
        const json::object& r = root.as_object();
        if (const auto* v = r.if_contains("openapi")) {
            out_.spec_version = text_of(v);
            if (!out_.spec_version.starts_with("3.0") && !out_.spec_version.starts_with("3.1")) {
                fail_with(Errc::unsupported,
                          fmt::format("{}#/openapi: version {} (pqmcp reads 2.0, 3.0 and 3.1)",
                                      docs_.doc(0).name, out_.spec_version));
            }
            legacy_ = out_.spec_version.starts_with("3.0");
        } else if (const auto* s = r.if_contains("swagger")) {
            out_.spec_version = text_of(s);
            if (out_.spec_version != "2.0") {
                fail_with(Errc::unsupported,
                          fmt::format("{}#/swagger: version {} (pqmcp reads 2.0, 3.0 and 3.1)",
                                      docs_.doc(0).name, out_.spec_version));
            }
            swagger_ = true;
            legacy_ = true;
        } else {
            fail_with(Errc::invalid, docs_.doc(0).name +
                                         ": not an OpenAPI description (no \"openapi\" or "
                                         "\"swagger\" version at the top)");
        }
        schemas_.emplace(docs_, legacy_, options_.limits, out_.warnings);
        if (const auto* info = r.if_contains("info"); info != nullptr && info->is_object()) {
            out_.title = text_of(info->as_object().if_contains("title"));
            out_.api_version = text_of(info->as_object().if_contains("version"));
            out_.description = text_of(info->as_object().if_contains("description"));
        }
        read_servers(r);
        if (swagger_) {
            consumes_ = strings(r.if_contains("consumes"));
            produces_ = strings(r.if_contains("produces"));
        }
        const auto* paths = r.if_contains("paths");
        if (paths == nullptr || !paths->is_object()) {
            if (r.contains("webhooks")) {
                return;  // 3.1: a description of webhooks only has no operations
            }
            fail_with(Errc::invalid, docs_.doc(0).name + "#/paths: missing or not a mapping");
        }
        for (const auto& [path, item] : paths->as_object()) {
            read_path(std::string(path), Location{0, pointer_join("/paths", path)});
        }
    }

  private:
    static std::vector<std::string> strings(const json::value* v) {
        std::vector<std::string> out;
        if (v != nullptr && v->is_array()) {
            for (const auto& s : v->as_array()) {
                if (s.is_string()) {
                    out.emplace_back(s.get_string());
                }
            }
        }
        return out;
    }

    void read_servers(const json::object& r) {
        if (swagger_) {
            const std::string host = text_of(r.if_contains("host"));
            const std::string base = text_of(r.if_contains("basePath"));
            auto schemes = strings(r.if_contains("schemes"));
            if (schemes.empty()) {
                schemes.emplace_back("https");
            }
            if (!host.empty()) {
                for (const auto& s : schemes) {
                    std::string url = s;
                    url += "://";
                    url += host;
                    url += base;
                    out_.servers.push_back(std::move(url));
                }
            } else if (!base.empty()) {
                out_.servers.push_back(base);
            }
            return;
        }
        const auto* servers = r.if_contains("servers");
        if (servers == nullptr || !servers->is_array()) {
            return;
        }
        for (const auto& s : servers->as_array()) {
            if (!s.is_object()) {
                continue;
            }
            std::string url = text_of(s.as_object().if_contains("url"));
            // Variables take their defaults.
            if (const auto* vars = s.as_object().if_contains("variables");
                vars != nullptr && vars->is_object()) {
                for (const auto& [name, var] : vars->as_object()) {
                    const std::string value =
                        var.is_object() ? text_of(var.as_object().if_contains("default")) : "";
                    const std::string token = "{" + std::string(name) + "}";
                    for (auto at = url.find(token); at != std::string::npos;
                         at = url.find(token, at + value.size())) {
                        url.replace(at, token.size(), value);
                    }
                }
            }
            if (!url.empty()) {
                out_.servers.push_back(url);
            }
        }
    }

    void read_path(const std::string& path, Location at) {
        try {
            at = docs_.follow(at);
        } catch (const Problem& p) {
            if (p.code == Errc::too_large) {
                throw;
            }
            warn(at, "path left out: " + p.message);
            return;
        }
        const json::value& item = docs_.at(at);
        if (!item.is_object()) {
            warn(at, "a path item that is not a mapping");
            return;
        }
        const json::object& o = item.as_object();
        for (const auto method : k_methods) {
            if (!o.contains(method)) {
                continue;
            }
            if (++out_.operations_read > options_.limits.max_operations) {
                fail_with(Errc::too_large,
                          fmt::format("{}: more than {} operations (openapi.max_operations)",
                                      docs_.doc(0).name, options_.limits.max_operations));
            }
            read_operation(path, method, at, Location{at.doc, pointer_join(at.pointer, method)});
        }
    }

    [[nodiscard]] bool wanted(const Operation& op) const {
        const auto matches = [&op](const Filter& f, bool include) {
            const auto check = [include](bool empty, bool hit) {
                return include ? (empty || hit) : (!empty && hit);
            };
            const bool tag_hit =
                std::any_of(op.tags.begin(), op.tags.end(),
                            [&](const std::string& t) { return any_glob(f.tags, t); });
            const bool method_hit =
                std::any_of(f.methods.begin(), f.methods.end(),
                            [&](const std::string& m) { return upper(m) == op.method; });
            const bool path_hit = any_glob(f.paths, op.path);
            const bool id_hit = !op.operation_id.empty() && any_glob(f.operations, op.operation_id);
            if (include) {
                return check(f.tags.empty(), tag_hit) && check(f.methods.empty(), method_hit) &&
                       check(f.paths.empty(), path_hit) && check(f.operations.empty(), id_hit);
            }
            return check(f.tags.empty(), tag_hit) || check(f.methods.empty(), method_hit) ||
                   check(f.paths.empty(), path_hit) || check(f.operations.empty(), id_hit);
        };
        return matches(options_.include, true) && !matches(options_.exclude, false);
    }

    void read_operation(const std::string& path, std::string_view method, const Location& item,
                        Location at) {
        at = docs_.follow(at);
        const json::value& v = docs_.at(at);
        if (!v.is_object()) {
            warn(at, "an operation that is not a mapping");
            ++out_.skipped;
            return;
        }
        const json::object& o = v.as_object();
        Operation op;
        op.method = upper(method);
        op.path = path;
        op.pointer = docs_.where(at);
        op.operation_id = text_of(o.if_contains("operationId"));
        op.tags = strings(o.if_contains("tags"));
        if (!wanted(op)) {
            ++out_.filtered_out;
            return;
        }
        if (out_.operations.size() >= options_.max_tools) {
            ++out_.over_limit;
            return;
        }
        try {
            if (!build(op, o, item, at)) {
                ++out_.skipped;
                return;
            }
        } catch (const Problem& p) {
            // A broken $ref inside one operation costs that operation, not the spec.
            if (p.code == Errc::too_large) {
                throw;
            }
            warn(at, "skipped: " + p.message);
            ++out_.skipped;
            return;
        }
        out_.operations.push_back(std::move(op));
    }

    // The operation's parameters, path-level first, the operation's own
    // overriding them (by name and location).
    std::vector<std::pair<Location, json::object>> parameters(const Location& item,
                                                              const Location& at) {
        std::vector<std::pair<Location, json::object>> out;
        for (const Location& owner : {item, at}) {
            const json::value& o = docs_.at(owner);
            const auto* list = o.as_object().if_contains("parameters");
            if (list == nullptr || !list->is_array()) {
                continue;
            }
            for (std::size_t i = 0; i < list->as_array().size(); ++i) {
                const Location raw{
                    owner.doc,
                    pointer_join(pointer_join(owner.pointer, "parameters"), std::to_string(i))};
                const Location p = docs_.follow(raw);
                const json::value& pv = docs_.at(p);
                if (!pv.is_object()) {
                    warn(p, "a parameter that is not a mapping");
                    continue;
                }
                const json::object& po = pv.as_object();
                const std::string name = text_of(po.if_contains("name"));
                const std::string in = text_of(po.if_contains("in"));
                const auto same = std::find_if(out.begin(), out.end(), [&](const auto& e) {
                    return text_of(e.second.if_contains("name")) == name &&
                           text_of(e.second.if_contains("in")) == in;
                });
                if (same != out.end()) {
                    *same = {p, po};
                } else {
                    out.emplace_back(p, po);
                }
            }
        }
        return out;
    }

    // Swagger 2.0's parameter (type, format, items, ...) as a schema.
    static json::object swagger_schema(const json::object& p) {
        json::object s;
        for (const auto& [k, v] : p) {
            if (k == "name" || k == "in" || k == "required" || k == "description" ||
                k == "collectionFormat" || k == "allowEmptyValue" || k.starts_with("x-")) {
                continue;
            }
            s[k] = v;
        }
        return s;
    }

    bool build(Operation& op, const json::object& o, const Location& item, const Location& at) {
        const std::string summary = trimmed(text_of(o.if_contains("summary")));
        const std::string details = trimmed(text_of(o.if_contains("description")));
        op.title = shortened(summary, 200);
        std::string description = summary;
        if (!details.empty() && details != summary) {
            description += (description.empty() ? "" : "\n\n") + details;
        }
        if (description.empty()) {
            description = op.method + " " + op.path;
        }
        op.description = shortened(description, options_.description_max_length);

        json::object properties;
        json::array required;
        std::set<std::string> taken;
        const auto claim = [&taken](const std::string& name, std::string_view in) {
            std::string p = mcp_name(name);
            if (p.empty()) {
                p = std::string(in);
            }
            if (taken.contains(p)) {
                p = std::string(in) + "_" + p;
            }
            for (int n = 2; taken.contains(p); ++n) {
                p = std::string(in) + "_" + mcp_name(name) + "_" + std::to_string(n);
            }
            taken.insert(p);
            return p;
        };
        // Path parameters first, so they keep their own names.
        auto params = parameters(item, at);
        std::stable_sort(params.begin(), params.end(), [](const auto& a, const auto& b) {
            const auto rank = [](const json::object& p) {
                const std::string in = text_of(p.if_contains("in"));
                return in == "path"     ? 0
                       : in == "query"  ? 1
                       : in == "header" ? 2
                       : in == "cookie" ? 3
                                        : 4;
            };
            return rank(a.second) < rank(b.second);
        });
        json::object form;  // Swagger formData
        json::array form_required;
        std::optional<Location> swagger_body;
        bool swagger_body_required = false;
        for (const auto& [where, p] : params) {
            Parameter param;
            param.name = text_of(p.if_contains("name"));
            param.in = text_of(p.if_contains("in"));
            const auto* req = p.if_contains("required");
            param.required =
                param.in == "path" || (req != nullptr && req->is_bool() && req->get_bool());
            if (param.name.empty()) {
                warn(where, "a parameter without a name: left out");
                continue;
            }
            if (swagger_ && param.in == "body") {
                swagger_body = Location{where.doc, pointer_join(where.pointer, "schema")};
                swagger_body_required = param.required;
                continue;
            }
            json::value schema;
            if (swagger_) {
                const std::string type = text_of(p.if_contains("type"));
                if (type == "file") {
                    warn(where, "a file upload (multipart/form-data): the operation is left out");
                    return false;
                }
                // A parameter's own keywords, as a schema of this description.
                schema = convert_inline(swagger_schema(p), where);
            } else if (p.contains("schema")) {
                schema =
                    schemas_->convert(Location{where.doc, pointer_join(where.pointer, "schema")});
            } else if (const auto* content = p.if_contains("content");
                       content != nullptr && content->is_object() &&
                       !content->as_object().empty()) {
                const auto& [media, mo] = *content->as_object().begin();
                param.json = is_json_media(media);
                const Location ms{
                    where.doc,
                    pointer_join(pointer_join(pointer_join(where.pointer, "content"), media),
                                 "schema")};
                schema = mo.is_object() && mo.as_object().contains("schema")
                             ? schemas_->convert(ms)
                             : json::value(json::object{});
            } else {
                schema = json::object{};
            }
            if (param.in == "formData") {
                const std::string& prop = param.name;  // the form's own field name
                add_description(schema, p);
                form[prop] = std::move(schema);
                if (param.required) {
                    form_required.push_back(json::value(prop));
                }
                continue;
            }
            if (param.in != "path" && param.in != "query" && param.in != "header" &&
                param.in != "cookie") {
                warn(where, "a parameter in \"" + param.in + "\": left out");
                continue;
            }
            // "If in is "header" and the name field is "Accept", "Content-Type" or
            // "Authorization", the parameter definition SHALL be ignored."
            if (param.in == "header") {
                const std::string lower = [&] {
                    std::string l = param.name;
                    for (char& c : l) {
                        c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
                    }
                    return l;
                }();
                if (lower == "accept" || lower == "content-type" || lower == "authorization") {
                    continue;
                }
            }
            if (param.in == "path" && op.path.find("{" + param.name + "}") == std::string::npos) {
                warn(where, "path parameter " + param.name + " is not in the path: left out");
                continue;
            }
            if (swagger_) {
                const std::string format = text_of(p.if_contains("collectionFormat"));
                param.style = param.in == "query" || param.in == "cookie" ? "form" : "simple";
                param.explode = format == "multi";
                if (format == "ssv") {
                    param.style = "spaceDelimited";
                } else if (format == "pipes") {
                    param.style = "pipeDelimited";
                } else if (format == "tsv") {
                    warn(where, "collectionFormat tsv: the operation is left out");
                    return false;
                }
            } else {
                param.style = text_of(p.if_contains("style"));
                if (param.style.empty()) {
                    param.style = param.in == "query" || param.in == "cookie" ? "form" : "simple";
                }
                const auto* explode = p.if_contains("explode");
                param.explode = explode != nullptr && explode->is_bool() ? explode->get_bool()
                                                                         : param.style == "form";
                const auto* reserved = p.if_contains("allowReserved");
                param.allow_reserved =
                    reserved != nullptr && reserved->is_bool() && reserved->get_bool();
            }
            add_description(schema, p);
            param.property = claim(param.name, param.in);
            properties[param.property] = std::move(schema);
            if (param.required) {
                required.push_back(json::value(param.property));
            }
            op.parameters.push_back(std::move(param));
        }
        // Every {name} of the path needs its parameter.
        for (std::size_t open = op.path.find('{'); open != std::string::npos;
             open = op.path.find('{', open + 1)) {
            const auto close = op.path.find('}', open);
            const std::string name = op.path.substr(open + 1, close - open - 1);
            if (std::none_of(op.parameters.begin(), op.parameters.end(), [&](const Parameter& p) {
                    return p.in == "path" && p.name == name;
                })) {
                warn(at, "the path names {" + name +
                             "} and no parameter describes it: the operation is left out");
                return false;
            }
        }

        // The request body.
        std::optional<json::value> body_schema;
        if (swagger_ && swagger_body) {
            op.body = Body{"application/json", claim("body", "request"), swagger_body_required};
            body_schema = schemas_->convert(*swagger_body);
        } else if (swagger_ && !form.empty()) {
            const auto consumes = strings(o.if_contains("consumes"));
            const auto& list = consumes.empty() ? consumes_ : consumes;
            if (!list.empty() && std::none_of(list.begin(), list.end(), [](const std::string& m) {
                    return m.starts_with("application/x-www-form-urlencoded");
                })) {
                warn(at, "a form body of multipart/form-data only: the operation is left out");
                return false;
            }
            op.body = Body{"application/x-www-form-urlencoded", claim("body", "request"),
                           !form_required.empty()};
            json::object s{{"type", "object"}, {"properties", std::move(form)}};
            if (!form_required.empty()) {
                s["required"] = std::move(form_required);
            }
            body_schema = std::move(s);
        } else if (!swagger_ && o.contains("requestBody")) {
            const Location rb =
                docs_.follow(Location{at.doc, pointer_join(at.pointer, "requestBody")});
            const json::value& rbv = docs_.at(rb);
            const auto* content =
                rbv.is_object() ? rbv.as_object().if_contains("content") : nullptr;
            if (content == nullptr || !content->is_object()) {
                warn(rb, "a request body without content: left out");
            } else {
                std::string chosen;
                for (const auto& [media, ignored] : content->as_object()) {
                    const std::string_view m = media;
                    if (is_json_media(m)) {
                        chosen = std::string(media);
                        break;
                    }
                    if (chosen.empty() && (m.starts_with("application/x-www-form-urlencoded") ||
                                           m.starts_with("text/plain"))) {
                        chosen = std::string(media);
                    }
                }
                if (chosen.empty()) {
                    std::string kinds;
                    for (const auto& [media, ignored] : content->as_object()) {
                        kinds += (kinds.empty() ? "" : ", ") + std::string(media);
                    }
                    warn(rb, "a request body of " + kinds +
                                 " only (JSON, form and text bodies are sent): the operation is "
                                 "left out");
                    return false;
                }
                const auto* req = rbv.as_object().if_contains("required");
                op.body = Body{chosen.substr(0, chosen.find(';')), claim("body", "request"),
                               req != nullptr && req->is_bool() && req->get_bool()};
                const Location ms{
                    rb.doc, pointer_join(pointer_join(pointer_join(rb.pointer, "content"), chosen),
                                         "schema")};
                boost::system::error_code ec;
                body_schema = docs_.doc(ms.doc).root.find_pointer(ms.pointer, ec) != nullptr
                                  ? schemas_->convert(ms)
                                  : json::value(chosen.starts_with("text/plain")
                                                    ? json::value(json::object{{"type", "string"}})
                                                    : json::value(json::object{}));
                if (const auto* d = rbv.as_object().if_contains("description");
                    d != nullptr && d->is_string() && body_schema->is_object() &&
                    !body_schema->as_object().contains("description")) {
                    body_schema->as_object()["description"] = *d;
                }
            }
        }
        if (op.body) {
            properties[op.body->property] = std::move(*body_schema);
            if (op.body->required) {
                required.push_back(json::value(op.body->property));
            }
        }
        op.input_schema = json::object{{"type", "object"}, {"properties", std::move(properties)}};
        if (!required.empty()) {
            op.input_schema["required"] = std::move(required);
        }
        op.input_schema["additionalProperties"] = false;
        if (auto defs = schemas_->take_defs(); !defs.empty()) {
            op.input_schema["$defs"] = std::move(defs);
        }
        if (options_.output_schema) {
            read_output(op, o, at);
        }
        annotate(op);
        return true;
    }

    // A schema made here from the keywords of the parameter at `where`.
    json::value convert_inline(const json::object& schema, const Location& where) {
        return schemas_->convert_value(schema, where);
    }

    static void add_description(json::value& schema, const json::object& p) {
        const auto* d = p.if_contains("description");
        if (d != nullptr && d->is_string() && schema.is_object() &&
            !schema.as_object().contains("description") && !schema.as_object().contains("$ref")) {
            schema.as_object()["description"] = *d;
        }
    }

    void read_output(Operation& op, const json::object& o, const Location& at) {
        const auto* responses = o.if_contains("responses");
        if (responses == nullptr || !responses->is_object()) {
            return;
        }
        std::string code;
        for (const auto& [c, ignored] : responses->as_object()) {
            const std::string_view k = c;
            // The lowest 2xx; "2XX" only when there is none.
            const bool exact = k.size() == 3 && k[0] == '2' &&
                               (code.empty() || k < code || code == "2XX" || code == "2xx");
            const bool range = (k == "2XX" || k == "2xx") && code.empty();
            if (exact || range) {
                code = std::string(k);
            }
        }
        if (code.empty()) {
            return;
        }
        const Location r = docs_.follow(
            Location{at.doc, pointer_join(pointer_join(at.pointer, "responses"), code)});
        const json::value& rv = docs_.at(r);
        if (!rv.is_object()) {
            return;
        }
        std::optional<Location> schema_at;
        if (swagger_) {
            if (rv.as_object().contains("schema")) {
                schema_at = Location{r.doc, pointer_join(r.pointer, "schema")};
            }
        } else if (const auto* content = rv.as_object().if_contains("content");
                   content != nullptr && content->is_object()) {
            for (const auto& [media, mo] : content->as_object()) {
                if (is_json_media(media) && mo.is_object() && mo.as_object().contains("schema")) {
                    schema_at = Location{
                        r.doc, pointer_join(pointer_join(pointer_join(r.pointer, "content"), media),
                                            "schema")};
                    break;
                }
            }
        }
        if (!schema_at) {
            return;
        }
        json::value schema = schemas_->convert(*schema_at);
        auto defs = schemas_->take_defs();
        if (!schema.is_object() || schema.as_object().empty()) {
            return;  // any value: nothing a client could check
        }
        // A reference to a component that is an object is that object here
        // (its $defs stay for what it refers to, itself included).
        if (const auto* ref = schema.as_object().if_contains("$ref");
            ref != nullptr && ref->is_string() && schema.as_object().size() == 1 &&
            ref->get_string().starts_with("#/$defs/")) {
            const auto* def = defs.if_contains(std::string_view(ref->get_string()).substr(8));
            if (def != nullptr && def->is_object()) {
                const auto* t = def->as_object().if_contains("type");
                if ((t != nullptr && t->is_string() && t->get_string() == "object") ||
                    (t == nullptr && def->as_object().contains("properties"))) {
                    schema = *def;
                }
            }
        }
        // structuredContent is an object: anything else is wrapped.
        const auto* type = schema.as_object().if_contains("type");
        const bool object =
            (type != nullptr && type->is_string() && type->get_string() == "object") ||
            (type == nullptr && schema.as_object().contains("properties"));
        json::object out;
        if (object) {
            out = std::move(schema.as_object());
        } else {
            out = json::object{{"type", "object"},
                               {"properties", json::object{{"result", std::move(schema)}}},
                               {"required", json::array{"result"}}};
            op.wrapped_output = true;
        }
        if (!defs.empty()) {
            out["$defs"] = std::move(defs);
        }
        op.output_schema = std::move(out);
    }

    static void annotate(Operation& op) {
        json::object a;
        const std::string& m = op.method;
        if (m == "GET" || m == "HEAD" || m == "OPTIONS") {
            a["readOnlyHint"] = true;
            a["idempotentHint"] = true;
        } else {
            a["readOnlyHint"] = false;
            a["destructiveHint"] = m == "DELETE" || m == "PUT";
            a["idempotentHint"] = m == "DELETE" || m == "PUT";
        }
        a["openWorldHint"] = true;
        if (!op.title.empty()) {
            a["title"] = op.title;
        }
        op.annotations = std::move(a);
    }

    void warn(const Location& at, std::string message) {
        out_.warnings.push_back({docs_.where(at), std::move(message)});
    }

    Documents& docs_;
    const Options& options_;
    Catalog& out_;
    bool swagger_ = false;
    bool legacy_ = false;
    std::optional<detail::SchemaConverter> schemas_;
    std::vector<std::string> consumes_;
    std::vector<std::string> produces_;
};

// Tool names: valid for MCP, at most name_max_length with the gateway's
// prefix, unique; what had to change is reported.
void name_tools(Catalog& c, const Options& options) {
    const std::size_t max = options.name_max_length - options.prefix_length;
    std::set<std::string> taken;
    const auto fit = [max](const std::string& name, std::string_view seed) {
        if (name.size() <= max) {
            return name;
        }
        return name.substr(0, max - 9) + "_" + short_hash(seed);
    };
    for (auto& op : c.operations) {
        std::string base = op.operation_id;
        if (base.empty()) {
            base = op.method + "_" + op.path;
            for (char& ch : base) {
                ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
            }
        }
        std::string name = mcp_name(base);
        if (name.empty()) {
            name = "operation";
        }
        std::string chosen = fit(name, base);
        if (chosen != name) {
            c.warnings.push_back({op.pointer, fmt::format("tool name {} is longer than {} "
                                                          "characters: named {}",
                                                          name, max, chosen)});
        }
        if (taken.contains(chosen)) {
            const std::string seed = op.method + " " + op.path;
            std::string other =
                (name.size() + 9 <= max ? name : name.substr(0, max - 9)) + "_" + short_hash(seed);
            for (int n = 2; taken.contains(other); ++n) {
                other = (name.size() + 9 <= max ? name : name.substr(0, max - 9)) + "_" +
                        short_hash(seed + "#" + std::to_string(n));
            }
            c.warnings.push_back({op.pointer, fmt::format("tool name {} is taken by another "
                                                          "operation: named {}",
                                                          chosen, other)});
            chosen = other;
        }
        taken.insert(chosen);
        op.tool = chosen;
    }
}

Result<Catalog> run(Documents& docs, std::size_t index, const Options& options) {
    (void)index;
    if (options.name_max_length < options.prefix_length + 16) {
        return fail(Errc::bad_options,
                    fmt::format("name_max_length {} leaves fewer than 16 characters after the "
                                "prefix of {}",
                                options.name_max_length, options.prefix_length));
    }
    Catalog c;
    try {
        Builder(docs, options, c).run();
    } catch (const Problem& p) {
        return fail(p.code, p.message);
    }
    if (c.over_limit > 0) {
        c.warnings.push_back(
            {docs.doc(0).name, fmt::format("{} more operations than max_tools ({}) were left out: "
                                           "include the ones the agents need (include: tags, "
                                           "paths, methods, operations) or raise max_tools",
                                           c.over_limit, options.max_tools)});
    }
    name_tools(c, options);
    c.documents = docs.count();
    return c;
}

}  // namespace

json::object Operation::tool_json() const {
    json::object t{{"name", tool}, {"description", description}, {"inputSchema", input_schema}};
    if (!title.empty()) {
        t["title"] = title;
    }
    if (output_schema) {
        t["outputSchema"] = *output_schema;
    }
    t["annotations"] = annotations;
    return t;
}

const Operation* Catalog::find(std::string_view tool) const {
    const auto it = std::find_if(operations.begin(), operations.end(),
                                 [tool](const Operation& op) { return op.tool == tool; });
    return it == operations.end() ? nullptr : &*it;
}

Result<Catalog> load(const std::filesystem::path& path, const Options& options) {
    std::error_code ec;
    const auto real = std::filesystem::weakly_canonical(path, ec);
    if (ec || !std::filesystem::is_regular_file(real, ec)) {
        return fail(Errc::unreadable, path.string() + ": no such file");
    }
    Documents docs(options.limits, real.parent_path());
    try {
        (void)docs.open(real);
    } catch (const Problem& p) {
        return fail(p.code, p.message);
    }
    return run(docs, 0, options);
}

Result<Catalog> parse(std::string_view text, std::string_view source,
                      const std::filesystem::path& base, const Options& options) {
    Documents docs(options.limits, base.empty() ? base : std::filesystem::weakly_canonical(base));
    try {
        (void)docs.add(text, std::string(source),
                       base.empty()
                           ? std::filesystem::path{}
                           : std::filesystem::weakly_canonical(base) / std::string(source));
    } catch (const Problem& p) {
        return fail(p.code, p.message);
    }
    return run(docs, 0, options);
}

}  // namespace pqmcp::openapi
