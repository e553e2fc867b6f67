#include "pqmcp/cluster/cluster.hpp"

namespace pqmcp::cluster {

namespace {

class Category final : public std::error_category {
  public:
    [[nodiscard]] const char* name() const noexcept override { return "cluster"; }
    [[nodiscard]] std::string message(int code) const override {
        switch (static_cast<Errc>(code)) {
            case Errc::bad_address:
                return "unusable address of a shared store";
            case Errc::unreachable:
                return "shared store unreachable";
            case Errc::failed:
                return "shared store failed";
        }
        return "unknown cluster error";
    }
};

}  // namespace

const std::error_category& cluster_category() noexcept {
    static const Category category;
    return category;
}

std::error_code make_error_code(Errc e) noexcept {
    return {static_cast<int>(e), cluster_category()};
}

}  // namespace pqmcp::cluster
