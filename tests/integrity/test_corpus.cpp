// The scanner measured on corpora written apart from its rules
// (tests/data/integrity/corpus, see the README there): a poisoned definition
// is caught when a finding reaches the gateway's default threshold (high); a
// benign one is a false positive when it does. The entries with an even
// number were used while the rules were worked on; the odd ones were held out
// and measured at the end. The figures go to docs/integrity.md; the floors
// below are those figures rounded down, so a rule change that loses ground
// fails here.
#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>
#include <map>
#include <sstream>

#include <boost/json/parse.hpp>

#include "pqmcp/integrity/scanner.hpp"
#include "test_paths.hpp"

namespace pqmcp::integrity {
namespace {

namespace json = boost::json;

struct Entry {
    std::string id;
    std::string cls;
    std::string kind;
    json::object definition;
    bool held_out = false;
};

std::vector<Entry> load(const std::string& name) {
    std::ifstream in(std::string(pqmcp::test_paths::source_dir()) +
                     "/tests/data/integrity/corpus/" + name);
    std::stringstream text;
    text << in.rdbuf();
    json::parse_options options;
    options.max_depth = 512;
    const json::value v = json::parse(text.str(), {}, options);
    std::vector<Entry> out;
    for (const auto& e : v.as_array()) {
        const auto& o = e.as_object();
        Entry entry;
        entry.id = std::string(o.at("id").as_string());
        entry.cls = std::string(o.at("class").as_string());
        entry.kind = std::string(o.at("kind").as_string());
        const auto& d = o.at("definition");
        if (d.is_string()) {
            entry.definition = json::object{{"instructions", d}};
        } else {
            entry.definition = d.as_object();
        }
        entry.held_out = std::stoi(entry.id.substr(2)) % 2 == 1;
        out.push_back(std::move(entry));
    }
    return out;
}

bool caught(const Scanner& s, const Entry& e) {
    const auto findings = s.scan(e.definition, e.kind);
    const auto w = worst(findings);
    return w && *w >= Severity::high;
}

struct Tally {
    std::size_t hits = 0;
    std::size_t total = 0;
};

struct Measure {
    std::map<std::string, Tally> poisoned_by_class;
    std::map<std::string, Tally> benign_by_class;
    Tally poisoned;
    Tally benign;  // hits: false positives
    [[nodiscard]] double recall() const {
        return static_cast<double>(poisoned.hits) / static_cast<double>(poisoned.total);
    }
    [[nodiscard]] double precision() const {
        const auto flagged = poisoned.hits + benign.hits;
        return flagged == 0 ? 1.0
                            : static_cast<double>(poisoned.hits) / static_cast<double>(flagged);
    }
};

Measure measure(const Scanner& s, bool held_out, std::vector<std::string>* missed,
                std::vector<std::string>* false_positives) {
    Measure m;
    // Each corpus once per process: both halves are measured from it.
    static const std::vector<Entry> poisoned = load("poisoned.json");
    static const std::vector<Entry> benign = load("benign.json");
    const auto count = [&](const std::vector<Entry>& entries, Tally& all,
                           std::map<std::string, Tally>& by_class, bool want_hit,
                           std::vector<std::string>* listed) {
        for (const auto& e : entries) {
            if (e.held_out != held_out) {
                continue;
            }
            const bool hit = caught(s, e);
            auto& c = by_class[e.cls];
            ++c.total;
            ++all.total;
            c.hits += hit ? 1U : 0U;
            all.hits += hit ? 1U : 0U;
            if (hit == want_hit && listed != nullptr) {
                listed->push_back(e.id + " (" + e.cls + ")");
            }
        }
    };
    count(poisoned, m.poisoned, m.poisoned_by_class, false, missed);
    count(benign, m.benign, m.benign_by_class, true, false_positives);
    return m;
}

void print(const char* title, const Measure& m) {
    std::printf("%s: recall %zu/%zu = %.3f, false positives %zu/%zu, precision %.3f\n", title,
                m.poisoned.hits, m.poisoned.total, m.recall(), m.benign.hits, m.benign.total,
                m.precision());
    for (const auto& [cls, t] : m.poisoned_by_class) {
        std::printf("  poisoned %-24s %zu/%zu\n", cls.c_str(), t.hits, t.total);
    }
    for (const auto& [cls, t] : m.benign_by_class) {
        if (t.hits > 0) {
            std::printf("  benign   %-24s %zu/%zu flagged\n", cls.c_str(), t.hits, t.total);
        }
    }
}

TEST(ScannerCorpus, RecallAndPrecisionAtTheDefaultThreshold) {
    const auto scanner = Scanner::builtin();
    std::vector<std::string> missed;
    std::vector<std::string> fps;
    const auto dev = measure(*scanner, false, &missed, &fps);
    const auto held = measure(*scanner, true, nullptr, nullptr);
    print("development half (even ids)", dev);
    print("held-out half (odd ids)", held);
    for (const auto& id : missed) {
        std::printf("  missed (development): %s\n", id.c_str());
    }
    for (const auto& id : fps) {
        std::printf("  false positive (development): %s\n", id.c_str());
    }
    EXPECT_GE(dev.recall(), PQMCP_CORPUS_RECALL_FLOOR);
    EXPECT_GE(held.recall(), PQMCP_CORPUS_RECALL_FLOOR);
    EXPECT_GE(dev.precision(), PQMCP_CORPUS_PRECISION_FLOOR);
    EXPECT_GE(held.precision(), PQMCP_CORPUS_PRECISION_FLOOR);
}

}  // namespace
}  // namespace pqmcp::integrity
