#include "pqmcp/yaml/reader.hpp"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cstdint>

#include "pqmcp/core/duration.hpp"

namespace pqmcp::yaml {

namespace json = boost::json;

bool valid_id(std::string_view id) noexcept {
    return !id.empty() && id.size() <= 128 && std::all_of(id.begin(), id.end(), [](char c) {
        return std::isalnum(static_cast<unsigned char>(c)) != 0 || c == '-' || c == '_' || c == '.';
    });
}

YAML::Node load(std::string_view text, std::string_view source) {
    try {
        return YAML::Load(std::string(text));
    } catch (const YAML::Exception& e) {
        std::string where(source);
        if (e.mark.line >= 0) {
            where +=
                ":" + std::to_string(e.mark.line + 1) + ":" + std::to_string(e.mark.column + 1);
        }
        throw Problem{where + ": " + e.msg};
    }
}

void Reader::error(const YAML::Node& node, std::string_view key, std::string_view why) const {
    std::string text;
    if (node.Mark().line < 0 && !unplaced_.empty()) {
        text = std::string(unplaced_);  // made from a flag, not the file
    } else {
        text = std::string(source_);
        if (node.Mark().line >= 0) {
            text += ":" + std::to_string(node.Mark().line + 1);
        }
        text += ": ";
    }
    text += key;
    text += ": ";
    text += why;
    throw Problem{std::move(text)};
}

void Reader::error(const YAML::Node& node, std::string_view what) const {
    std::string text(source_);
    if (node.Mark().line >= 0) {
        text += ":" + std::to_string(node.Mark().line + 1);
    }
    text += ": ";
    text += what;
    throw Problem{std::move(text)};
}

std::string Reader::string(const YAML::Node& node, const std::string& key) const {
    if (!node.IsScalar()) {
        error(node, key, "expected a string");
    }
    return node.Scalar();
}

std::vector<std::string> Reader::strings(const YAML::Node& node, const std::string& key) const {
    std::vector<std::string> out;
    if (node.IsScalar()) {
        out.push_back(node.Scalar());
        return out;
    }
    if (!node.IsSequence()) {
        error(node, key, "expected a string or a list of strings");
    }
    for (const auto& item : node) {
        out.push_back(string(item, key + "[]"));
    }
    return out;
}

bool Reader::boolean(const YAML::Node& node, const std::string& key) const {
    const std::string s = string(node, key);
    if (s == "true" || s == "yes" || s == "on") {
        return true;
    }
    if (s == "false" || s == "no" || s == "off") {
        return false;
    }
    error(node, key, "expected true or false, not \"" + s + "\"");
}

double Reader::number(const YAML::Node& node, const std::string& key) const {
    const std::string s = string(node, key);
    double value = 0;
    const auto* end = s.data() + s.size();
    const auto [ptr, ec] = std::from_chars(s.data(), end, value);
    if (s.empty() || ec != std::errc{} || ptr != end) {
        error(node, key, "expected a number, not \"" + s + "\"");
    }
    return value;
}

std::size_t Reader::size(const YAML::Node& node, const std::string& key, std::size_t min,
                         std::size_t max) const {
    const std::string s = string(node, key);
    std::size_t value = 0;
    const auto* end = s.data() + s.size();
    const auto [ptr, ec] = std::from_chars(s.data(), end, value);
    if (s.empty() || ec != std::errc{} || ptr != end || value < min || value > max) {
        error(node, key,
              "expected a whole number from " + std::to_string(min) + " to " + std::to_string(max) +
                  ", not \"" + s + "\"");
    }
    return value;
}

std::size_t Reader::count(const YAML::Node& node, const std::string& key) const {
    const std::string s = string(node, key);
    std::size_t value = 0;
    const auto* end = s.data() + s.size();
    const auto [ptr, ec] = std::from_chars(s.data(), end, value);
    if (s.empty() || ec != std::errc{} || ptr != end || value == 0) {
        error(node, key, "expected a positive whole number, not \"" + s + "\"");
    }
    return value;
}

std::chrono::milliseconds Reader::duration(const YAML::Node& node, const std::string& key) const {
    auto d = parse_duration(string(node, key));
    if (!d) {
        error(node, key, d.error());
    }
    return *d;
}

std::vector<std::pair<std::string, std::string>> Reader::map(const YAML::Node& node,
                                                             const std::string& key) const {
    if (!node.IsMap()) {
        error(node, key, "expected a mapping of names to strings");
    }
    std::vector<std::pair<std::string, std::string>> out;
    for (const auto& kv : node) {
        out.emplace_back(string(kv.first, key), string(kv.second, key + "." + kv.first.Scalar()));
    }
    return out;
}

json::value Reader::value(const YAML::Node& node, const std::string& key) const {
    if (!node.IsScalar()) {
        error(node, key, "expected a single value");
    }
    const std::string& s = node.Scalar();
    if (node.Tag() == "!") {
        return json::value(s);
    }
    if (s == "true") {
        return true;
    }
    if (s == "false") {
        return false;
    }
    if (s == "null" || s == "~") {
        return nullptr;
    }
    std::int64_t i = 0;
    const auto* end = s.data() + s.size();
    if (!s.empty() && std::from_chars(s.data(), end, i).ptr == end) {
        return i;
    }
    double d = 0;
    if (!s.empty() && std::from_chars(s.data(), end, d).ptr == end) {
        return d;
    }
    return json::value(s);
}

std::string Reader::unique_id(const YAML::Node& node, const std::string& where,
                              std::set<std::string>& seen) const {
    if (!node["id"]) {
        error(node, where + ": every rule needs an id");
    }
    std::string id = string(node["id"], where + ".id");
    if (!valid_id(id)) {
        error(node["id"], where + ".id: \"" + id + "\": use letters, digits, . - _");
    }
    if (!seen.insert(id).second) {
        error(node["id"], where + ".id: \"" + id + "\" is used twice");
    }
    return id;
}

void Reader::only(const YAML::Node& node, const std::string& where,
                  std::initializer_list<std::string_view> known) const {
    if (!node.IsMap()) {
        error(node, where.empty() ? "(top level)" : where, "expected a mapping");
    }
    for (const auto& kv : node) {
        const std::string k = kv.first.Scalar();
        if (std::find(known.begin(), known.end(), k) != known.end()) {
            continue;
        }
        std::string list;
        for (const auto& n : known) {
            list += list.empty() ? "" : ", ";
            list += n;
        }
        std::string path = where;
        if (!path.empty()) {
            path += '.';
        }
        path += k;
        std::string why = "unknown key (expected one of: ";
        why += list;
        why += ")";
        error(kv.first, path, why);
    }
}

}  // namespace pqmcp::yaml
