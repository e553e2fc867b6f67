// The tool-poisoning scanner's public face: loading a rule file (rule_file.cpp),
// the built-in rules, and a scan (walker.cpp over unicode.cpp's facts).
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>

#include "scanner_parts.hpp"

namespace pqmcp::integrity {

namespace detail {
extern const std::string_view k_builtin_rules;
}  // namespace detail

using yaml::Reader;

struct Scanner::Rules final : scanning::RuleSet {};

Scanner::Scanner(std::unique_ptr<Rules> rules) : rules_(std::move(rules)) {}
Scanner::Scanner(Scanner&&) noexcept = default;
Scanner& Scanner::operator=(Scanner&&) noexcept = default;
Scanner::~Scanner() = default;

Result<Scanner> Scanner::parse(std::string_view yaml, std::string_view origin) {
    try {
        const Reader reader(origin);
        const YAML::Node root = yaml::load(yaml, origin);
        auto rules = std::make_unique<Rules>();
        scanning::read_rules(reader, root, origin, *rules);
        return Scanner(std::move(rules));
    } catch (const yaml::Problem& e) {
        return fail(Errc::bad_rules, e.message);
    }
}

Result<Scanner> Scanner::load(const std::string& file) {
    std::ifstream in(file, std::ios::binary);
    if (!in) {
        return fail(Errc::bad_rules, file + ": cannot be read");
    }
    std::ostringstream text;
    text << in.rdbuf();
    return parse(text.str(), file);
}

std::shared_ptr<const Scanner> Scanner::builtin() {
    static const std::shared_ptr<const Scanner> scanner = [] {
        auto parsed = parse(detail::k_builtin_rules, "data/scanner-rules.yaml");
        if (!parsed) {
            // Fatal: the rule file is compiled in and tested; this is a build defect.
            (void)std::fprintf(stderr, "pqmcp: the built-in scanner rules do not load: %s\n",
                               parsed.error().detail.c_str());
            std::abort();
        }
        return std::make_shared<const Scanner>(std::move(*parsed));
    }();
    return scanner;
}

std::vector<Finding> Scanner::scan(const boost::json::object& definition, std::string_view kind,
                                   const ScanContext& context) const {
    return scanning::walk(*rules_, kind, definition, context);
}

std::size_t Scanner::rule_count() const noexcept {
    return rules_->rules.size();
}

std::vector<RuleInfo> Scanner::rules() const {
    std::vector<RuleInfo> out;
    out.reserve(rules_->rules.size());
    for (const auto& rule : rules_->rules) {
        std::string check = "pattern";
        for (const auto& c : scanning::k_checks) {
            if (c.check == rule.check) {
                check = c.name;
            }
        }
        out.push_back(RuleInfo{rule.id, rule.severity, rule.rationale, check});
    }
    return out;
}

}  // namespace pqmcp::integrity
