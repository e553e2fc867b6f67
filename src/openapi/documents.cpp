#include "documents.hpp"

#include <fstream>
#include <system_error>

#include <fmt/format.h>
#include <boost/json/parse.hpp>
#include <boost/json/parse_options.hpp>

#include "pqmcp/yaml/reader.hpp"

namespace pqmcp::openapi::detail {

namespace json = boost::json;

void fail_with(Errc code, std::string message) {
    throw Problem{code, std::move(message)};
}

std::string escape_token(std::string_view token) {
    std::string out;
    out.reserve(token.size());
    for (const char c : token) {
        if (c == '~') {
            out += "~0";
        } else if (c == '/') {
            out += "~1";
        } else {
            out += c;
        }
    }
    return out;
}

std::string pointer_join(std::string_view base, std::string_view token) {
    std::string out(base);
    out += '/';
    out += escape_token(token);
    return out;
}

namespace {

// YAML's values as JSON, with the depth and the number of values bounded
// (aliases can make a small document expand without end: "billion laughs").
class YamlToJson final {
  public:
    YamlToJson(const yaml::Reader& reader, const Limits& limits, std::size_t budget,
               std::string name)
        : reader_(reader), limits_(limits), budget_(budget), name_(std::move(name)) {}

    json::value convert(const YAML::Node& node, std::size_t depth) {
        if (depth > limits_.max_depth) {
            fail_with(Errc::too_large, fmt::format("{}:{}: nested deeper than {} levels", name_,
                                                   yaml::Reader::line(node), limits_.max_depth));
        }
        if (++values_ > budget_) {
            fail_with(Errc::too_large,
                      fmt::format("{}: more than {} values (its aliases expand too far)", name_,
                                  budget_));
        }
        switch (node.Type()) {
            case YAML::NodeType::Null:
            case YAML::NodeType::Undefined:
                return nullptr;
            case YAML::NodeType::Scalar:
                return reader_.value(node, "value");
            case YAML::NodeType::Sequence: {
                json::array out;
                out.reserve(node.size());
                for (const auto& item : node) {
                    out.push_back(convert(item, depth + 1));
                }
                return out;
            }
            case YAML::NodeType::Map: {
                json::object out;
                out.reserve(node.size());
                for (const auto& kv : node) {
                    if (!kv.first.IsScalar()) {
                        fail_with(Errc::invalid,
                                  fmt::format("{}:{}: a key that is not a single value", name_,
                                              yaml::Reader::line(kv.first)));
                    }
                    out[kv.first.Scalar()] = convert(kv.second, depth + 1);
                }
                return out;
            }
        }
        return nullptr;
    }

  private:
    const yaml::Reader& reader_;
    const Limits& limits_;
    std::size_t budget_;
    std::string name_;
    std::size_t values_ = 0;
};

int hex_digit(char c) {
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    if (c >= 'A' && c <= 'F') {
        return c - 'A' + 10;
    }
    return -1;
}

// A $ref's URI parts as text ("%7B" -> "{"); a '%' without two hex digits stays.
std::string percent_decode(std::string_view s) {
    std::string out;
    out.reserve(s.size());
    for (std::size_t i = 0; i < s.size(); ++i) {
        if (s[i] == '%' && i + 2 < s.size()) {
            const int hi = hex_digit(s[i + 1]);
            const int lo = hex_digit(s[i + 2]);
            if (hi >= 0 && lo >= 0) {
                out += static_cast<char>(hi * 16 + lo);
                i += 2;
                continue;
            }
        }
        out += s[i];
    }
    return out;
}

bool is_remote(std::string_view ref) {
    if (ref.starts_with("//")) {
        return true;
    }
    // A scheme: letters, digits, '+', '-', '.' before a ':' (RFC 3986 3.1).
    const auto colon = ref.find(':');
    const auto stop = ref.find_first_of("/#?");
    if (colon == std::string_view::npos || (stop != std::string_view::npos && stop < colon) ||
        colon == 0) {
        return false;
    }
    for (std::size_t i = 0; i < colon; ++i) {
        const char c = ref[i];
        if (std::isalnum(static_cast<unsigned char>(c)) == 0 && c != '+' && c != '-' && c != '.') {
            return false;
        }
    }
    return true;
}

// `inner` is `outer` or below it (both absolute and normal).
bool is_under(const std::filesystem::path& inner, const std::filesystem::path& outer) {
    auto i = inner.begin();
    for (auto o = outer.begin(); o != outer.end(); ++o, ++i) {
        if (o->empty()) {
            continue;  // a trailing separator
        }
        if (i == inner.end() || *i != *o) {
            return false;
        }
    }
    return true;
}

}  // namespace

std::size_t Documents::add(std::string_view text, std::string name, std::filesystem::path file) {
    if (docs_.size() >= limits_.max_documents) {
        fail_with(Errc::too_large, fmt::format("{}: more than {} files in one description", name,
                                               limits_.max_documents));
    }
    if (text.size() > limits_.max_bytes) {
        fail_with(Errc::too_large,
                  fmt::format("{}: {} bytes, over the limit of {} (openapi.max_bytes)", name,
                              text.size(), limits_.max_bytes));
    }
    auto doc = std::make_unique<Document>();
    doc->name = name;
    doc->file = std::move(file);
    const auto first = text.find_first_not_of(" \t\r\n");
    const bool is_json =
        first != std::string_view::npos && (text[first] == '{' || text[first] == '[');
    if (is_json) {
        json::parse_options opts;
        opts.max_depth = limits_.max_depth;
        boost::system::error_code ec;
        doc->root = json::parse(text, ec, {}, opts);
        if (ec) {
            fail_with(ec == json::error::too_deep ? Errc::too_large : Errc::invalid,
                      fmt::format("{}: not valid JSON: {}", name, ec.message()));
        }
    } else {
        try {
            const YAML::Node node = yaml::load(text, name);
            const yaml::Reader reader(name);
            YamlToJson convert(reader, limits_, text.size() + 1'024, name);
            doc->root = convert.convert(node, 0);
        } catch (const yaml::Problem& p) {
            fail_with(Errc::invalid, "not valid YAML: " + p.message);
        }
    }
    docs_.push_back(std::move(doc));
    return docs_.size() - 1;
}

std::size_t Documents::open(const std::filesystem::path& file) {
    std::error_code ec;
    auto canonical = std::filesystem::weakly_canonical(file, ec);
    if (ec) {
        canonical = file;
    }
    if (const auto it = by_file_.find(canonical); it != by_file_.end()) {
        return it->second;
    }
    std::string name = canonical.filename().string();
    if (!base_.empty()) {
        name = canonical.lexically_relative(base_).string();
    }
    const auto size = std::filesystem::file_size(canonical, ec);
    if (ec) {
        fail_with(Errc::unreadable, fmt::format("{}: {}", file.string(), ec.message()));
    }
    if (size > limits_.max_bytes) {
        fail_with(Errc::too_large,
                  fmt::format("{}: {} bytes, over the limit of {} (openapi.max_bytes)", name, size,
                              limits_.max_bytes));
    }
    std::ifstream in(canonical, std::ios::binary);
    if (!in) {
        fail_with(Errc::unreadable, fmt::format("{}: cannot be opened", file.string()));
    }
    std::string text(static_cast<std::size_t>(size), '\0');
    in.read(text.data(), static_cast<std::streamsize>(text.size()));
    text.resize(static_cast<std::size_t>(in.gcount()));
    const std::size_t index = add(text, std::move(name), canonical);
    by_file_.emplace(canonical, index);
    return index;
}

const json::value& Documents::at(const Location& at) const {
    boost::system::error_code ec;
    const json::value* v = docs_.at(at.doc)->root.find_pointer(at.pointer, ec);
    if (v == nullptr) {
        fail_with(Errc::bad_ref, fmt::format("{}: no such place", where(at)));
    }
    return *v;
}

std::string Documents::where(const Location& at) const {
    return docs_.at(at.doc)->name + "#" + at.pointer;
}

Location Documents::resolve(const Location& from, std::string_view ref) {
    if (++refs_ > limits_.max_refs) {
        fail_with(Errc::too_large, fmt::format("{}: more than {} $ref resolutions in all",
                                               where(from), limits_.max_refs));
    }
    if (is_remote(ref)) {
        fail_with(Errc::remote_ref,
                  fmt::format("{}: $ref \"{}\" is on the network, and pqmcp never fetches a $ref: "
                              "save it next to the spec and refer to it by a relative path",
                              where(from), ref));
    }
    const auto hash = ref.find('#');
    const std::string_view file_part = ref.substr(0, hash);
    const std::string fragment =
        hash == std::string_view::npos ? std::string{} : percent_decode(ref.substr(hash + 1));
    if (!fragment.empty() && fragment.front() != '/') {
        fail_with(Errc::bad_ref,
                  fmt::format("{}: $ref \"{}\": only JSON Pointer fragments (#/...) are followed",
                              where(from), ref));
    }
    Location target;
    target.pointer = fragment;
    target.doc = from.doc;
    if (!file_part.empty()) {
        const Document& here = doc(from.doc);
        if (here.file.empty() || base_.empty()) {
            fail_with(Errc::bad_ref, fmt::format("{}: $ref \"{}\" names a file, and this document "
                                                 "was not read from one",
                                                 where(from), ref));
        }
        const std::filesystem::path relative(percent_decode(file_part));
        if (relative.is_absolute()) {
            fail_with(Errc::bad_ref,
                      fmt::format("{}: $ref \"{}\" is an absolute path: only paths relative to the "
                                  "spec are followed",
                                  where(from), ref));
        }
        const auto wanted = (here.file.parent_path() / relative).lexically_normal();
        std::error_code ec;
        const auto real = std::filesystem::weakly_canonical(wanted, ec);
        if (ec || !is_under(real, base_)) {
            fail_with(Errc::bad_ref, fmt::format("{}: $ref \"{}\" leaves the spec's directory {}",
                                                 where(from), ref, base_.string()));
        }
        if (!std::filesystem::is_regular_file(real, ec)) {
            fail_with(Errc::bad_ref,
                      fmt::format("{}: $ref \"{}\": no such file", where(from), ref));
        }
        try {
            target.doc = open(real);
        } catch (const Problem& p) {
            fail_with(p.code, fmt::format("{}: $ref \"{}\": {}", where(from), ref, p.message));
        }
    }
    boost::system::error_code ec;
    if (docs_.at(target.doc)->root.find_pointer(target.pointer, ec) == nullptr) {
        fail_with(Errc::bad_ref,
                  fmt::format("{}: $ref \"{}\" points at nothing", where(from), ref));
    }
    return target;
}

Location Documents::follow(Location at) {
    for (int hops = 0; hops < 64; ++hops) {
        const json::value& v = this->at(at);
        const auto* ref = v.is_object() ? v.as_object().if_contains("$ref") : nullptr;
        if (ref == nullptr || !ref->is_string()) {
            return at;
        }
        at = resolve(Location{at.doc, at.pointer + "/$ref"}, ref->get_string());
    }
    fail_with(Errc::bad_ref, fmt::format("{}: $ref after $ref without end (a loop)", where(at)));
}

}  // namespace pqmcp::openapi::detail
