#include <string>

#include "pqmcp/audit/audit.hpp"

namespace pqmcp::audit {

namespace {

class Category final : public std::error_category {
  public:
    [[nodiscard]] const char* name() const noexcept override { return "audit"; }
    [[nodiscard]] std::string message(int code) const override {
        switch (static_cast<Errc>(code)) {
            case Errc::open_failed:
                return "cannot open the audit database";
            case Errc::not_an_audit_db:
                return "not an audit database";
            case Errc::write_failed:
                return "audit write failed";
            case Errc::invalid_argument:
                return "invalid argument";
            case Errc::in_use:
                return "the audit database has a writer already";
        }
        return "unknown audit error";
    }
};

}  // namespace

const std::error_category& audit_category() noexcept {
    static const Category category;
    return category;
}

std::error_code make_error_code(Errc e) noexcept {
    return {static_cast<int>(e), audit_category()};
}

}  // namespace pqmcp::audit
