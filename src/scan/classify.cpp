// What data a server's tools touch, from their names and descriptions.
#include "pqmcp/scan/discovery.hpp"

#include <algorithm>
#include <array>
#include <cctype>
#include <optional>
#include <string>
#include <vector>

#include <boost/json.hpp>

#include "text.hpp"

namespace pqmcp::scan {

namespace json = boost::json;

// ---- harvest now, decrypt later ----------------------------------------------

std::string_view to_string(DataClass data) noexcept {
    switch (data) {
        case DataClass::files:
            return "files";
        case DataClass::secrets:
            return "secrets";
        case DataClass::personal:
            return "personal";
        case DataClass::health:
            return "health";
        case DataClass::finance:
            return "finance";
        case DataClass::network:
            return "network";
    }
    return "files";
}

bool is_sensitive(DataClass data) noexcept {
    return data != DataClass::network;
}

namespace {

struct Keywords {
    DataClass data = DataClass::files;
    // Whole words, space-separated phrases; a trailing '*' matches any word ending.
    std::initializer_list<std::string_view> words;
};

const std::array<Keywords, 6>& keyword_table() {
    static const std::array<Keywords, 6> table = {{
        {DataClass::files, {"file*", "director*", "folder*", "filesystem*", "disk", "glob"}},
        {DataClass::secrets,
         {"secret*", "password*", "passwd", "credential*", "api key*", "apikey*", "private key*",
          "access token*", "auth token*", "api token*", "bearer", "ssh", "env",
          "environment variable*", "env var*", "keychain*", "vault*"}},
        {DataClass::personal,
         {"email*", "e mail*", "inbox*", "gmail", "contact*", "calendar*", "address book*",
          "phone number*", "personal", "pii", "customer*", "user profile*", "social security",
          "passport*", "date of birth", "birth date*", "location history", "home address*"}},
        {DataClass::health,
         {"medical*", "patient*", "diagnos*", "prescription*", "clinical*", "fhir", "ehr", "hipaa",
          "symptom*", "medication*", "healthcare", "health record*", "lab result*"}},
        {DataClass::finance,
         {"payment*",     "bank*",    "invoice*", "credit card*",     "card number*",
          "transaction*", "financ*",  "billing",  "stripe",           "paypal",
          "iban",         "tax",      "taxes",    "account balance*", "payroll",
          "salary",       "salaries", "wallet*",  "ledger*",          "brokerage",
          "trading"}},
        {DataClass::network,
         {"fetch*", "http", "https", "url*", "download*", "web", "website*", "webpage*", "browse*",
          "browser*", "scrape*", "crawl*", "webhook*", "internet"}},
    }};
    return table;
}

// " words split on case changes and punctuation, lower case "
std::string normalize(std::string_view text) {
    std::string out = " ";
    char previous = ' ';
    for (const char c : text) {
        const auto u = static_cast<unsigned char>(c);
        if (std::isalnum(u) != 0) {
            if (std::isupper(u) != 0 && std::islower(static_cast<unsigned char>(previous)) != 0) {
                out += ' ';
            }
            out += static_cast<char>(std::tolower(u));
        } else if (out.back() != ' ') {
            out += ' ';
        }
        previous = c;
    }
    if (out.back() != ' ') {
        out += ' ';
    }
    return out;
}

bool matches(const std::string& text, std::string_view word) {
    if (word.ends_with('*')) {
        return text.find(" " + std::string(word.substr(0, word.size() - 1))) != std::string::npos;
    }
    return text.find(" " + std::string(word) + " ") != std::string::npos;
}

void append_text(std::string& text, const json::object& o, std::string_view key) {
    if (const auto* v = o.if_contains(key); v != nullptr && v->is_string()) {
        text += ' ';
        text.append(v->get_string());
    }
}

}  // namespace

std::vector<DataTouch> classify_data(const json::array& definitions) {
    std::vector<std::optional<std::string>> found(keyword_table().size());
    const auto note = [&found](DataClass d, const std::string& item) {
        auto& slot = found.at(static_cast<std::size_t>(d));
        if (!slot) {
            slot = item;
        }
    };
    for (const auto& v : definitions) {
        if (!v.is_object()) {
            continue;
        }
        const json::object& o = v.get_object();
        std::string item;
        for (const std::string_view key : {"name", "uri", "uriTemplate"}) {
            if (const auto* n = o.if_contains(key);
                item.empty() && n != nullptr && n->is_string()) {
                item = std::string(n->get_string());
            }
        }
        std::string raw;
        for (const std::string_view key : {"name", "title", "description"}) {
            append_text(raw, o, key);
        }
        const json::object* annotations = nullptr;
        if (const auto* a = o.if_contains("annotations"); a != nullptr && a->is_object()) {
            annotations = &a->get_object();
            append_text(raw, *annotations, "title");
        }
        const std::string text = normalize(raw);
        for (const auto& k : keyword_table()) {
            if (std::any_of(k.words.begin(), k.words.end(),
                            [&text](std::string_view w) { return matches(text, w); })) {
                note(k.data, item);
            }
        }
        for (const std::string_view key : {"uri", "uriTemplate"}) {
            if (const auto* u = o.if_contains(key);
                u != nullptr && u->is_string() && lower(u->get_string()).starts_with("file://")) {
                note(DataClass::files, item);
            }
        }
        if (annotations != nullptr) {
            if (const auto* open = annotations->if_contains("openWorldHint");
                open != nullptr && open->is_bool() && open->get_bool()) {
                note(DataClass::network, item);
            }
        }
    }
    std::vector<DataTouch> out;
    for (std::size_t i = 0; i < found.size(); ++i) {
        if (found[i]) {
            out.push_back({static_cast<DataClass>(i), *found[i]});
        }
    }
    return out;
}

}  // namespace pqmcp::scan
