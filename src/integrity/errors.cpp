#include <algorithm>
#include <array>

#include "pqmcp/integrity/scanner.hpp"

namespace pqmcp::integrity {

namespace {

class Category final : public std::error_category {
  public:
    [[nodiscard]] const char* name() const noexcept override { return "integrity"; }
    [[nodiscard]] std::string message(int code) const override {
        switch (static_cast<Errc>(code)) {
            case Errc::bad_rules:
                return "unusable scanner rules";
            case Errc::bad_manifest:
                return "not a tool manifest";
            case Errc::bad_signature:
                return "malformed signature";
            case Errc::signature_invalid:
                return "signature does not verify";
            case Errc::unsigned_list:
                return "list is not signed";
            case Errc::store_failed:
                return "tool state database failed";
        }
        return "unknown integrity error";
    }
};

constexpr std::array<std::string_view, 5> k_severities = {"info", "low", "medium", "high",
                                                          "critical"};

}  // namespace

const std::error_category& integrity_category() noexcept {
    static const Category category;
    return category;
}

std::error_code make_error_code(Errc e) noexcept {
    return {static_cast<int>(e), integrity_category()};
}

std::string_view to_string(Severity s) noexcept {
    return k_severities.at(static_cast<std::size_t>(s));
}

std::optional<Severity> parse_severity(std::string_view text) noexcept {
    for (std::size_t i = 0; i < k_severities.size(); ++i) {
        if (k_severities.at(i) == text) {
            return static_cast<Severity>(i);
        }
    }
    return std::nullopt;
}

std::optional<Severity> worst(const std::vector<Finding>& findings) noexcept {
    std::optional<Severity> w;
    for (const auto& f : findings) {
        if (!w || f.severity > *w) {
            w = f.severity;
        }
    }
    return w;
}

}  // namespace pqmcp::integrity
