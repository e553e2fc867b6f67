// The tool-poisoning scanner: every string of a tool, prompt or resource
// template definition (description, titles, parameter descriptions, defaults,
// enum values, names) is checked against a rule set loaded from data (RE2
// patterns plus named structural checks); each finding carries the rule id,
// its severity, the JSON Pointer of the string and an excerpt.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <boost/json/object.hpp>

#include "pqmcp/core/error.hpp"
#include "pqmcp/integrity/errors.hpp"

namespace pqmcp::integrity {

enum class Severity { info = 0, low, medium, high, critical };

[[nodiscard]] std::string_view to_string(Severity s) noexcept;
[[nodiscard]] std::optional<Severity> parse_severity(std::string_view text) noexcept;

struct Finding {
    // The rule's id, e.g. "hidden-instruction-marker".
    std::string rule;
    Severity severity = Severity::info;
    // RFC 6901 pointer into the definition, e.g. "/inputSchema/properties/path/description".
    std::string pointer;
    // At most ~120 bytes around the match, invisible characters shown as \u{...}.
    std::string excerpt;
    // Why the rule exists (from the rule file).
    std::string rationale;
};

// What the definition sits next to: the other upstreams' items of the same
// kind, for the shadowing and imitation checks.
struct ScanContext {
    std::string_view upstream;  // the upstream the definition comes from
    struct Other {
        std::string upstream;
        std::string name;  // the upstream's own name, without the gateway's prefix
    };
    std::vector<Other> others;
};

// One rule of a loaded rule set, for listings (`pqmcp scan --rules`) and tests.
struct RuleInfo {
    std::string id;
    Severity severity = Severity::info;
    std::string rationale;
    std::string check;  // the structural check's name, or "pattern"
};

class Scanner final {
  public:
    // The rule file (YAML, see data/scanner-rules.yaml); `origin` names it in errors.
    [[nodiscard]] static Result<Scanner> parse(std::string_view yaml, std::string_view origin);
    [[nodiscard]] static Result<Scanner> load(const std::string& file);
    // The rule set compiled into the binary from data/scanner-rules.yaml.
    [[nodiscard]] static std::shared_ptr<const Scanner> builtin();

    // kind: "tool", "prompt" or "resourceTemplate" (also for a resource: its uri is scanned
    // like a uriTemplate). Only the members a client shows the model are scanned (_meta, icons
    // and execution are not); an unknown kind has every member scanned by the rules without
    // kinds:. Findings come sorted by severity (worst first), pointer and rule id.
    [[nodiscard]] std::vector<Finding> scan(const boost::json::object& definition,
                                            std::string_view kind,
                                            const ScanContext& context = {}) const;

    [[nodiscard]] std::size_t rule_count() const noexcept;
    // The rules in file order.
    [[nodiscard]] std::vector<RuleInfo> rules() const;

    Scanner(const Scanner&) = delete;
    Scanner& operator=(const Scanner&) = delete;
    Scanner(Scanner&&) noexcept;
    Scanner& operator=(Scanner&&) noexcept;
    ~Scanner();

  private:
    struct Rules;
    explicit Scanner(std::unique_ptr<Rules> rules);
    std::unique_ptr<Rules> rules_;
};

// The highest severity among findings, if any.
[[nodiscard]] std::optional<Severity> worst(const std::vector<Finding>& findings) noexcept;

}  // namespace pqmcp::integrity
