#include "pqmcp/openapi/openapi.hpp"

namespace pqmcp::openapi {

namespace {

class Category final : public std::error_category {
  public:
    [[nodiscard]] const char* name() const noexcept override { return "openapi"; }
    [[nodiscard]] std::string message(int ev) const override {
        switch (static_cast<Errc>(ev)) {
            case Errc::unreadable:
                return "the OpenAPI description cannot be read";
            case Errc::too_large:
                return "the OpenAPI description is over a limit";
            case Errc::invalid:
                return "not a usable OpenAPI description";
            case Errc::unsupported:
                return "an OpenAPI version pqmcp does not read";
            case Errc::bad_ref:
                return "a $ref that cannot be followed";
            case Errc::remote_ref:
                return "a $ref to the network (never fetched)";
            case Errc::bad_arguments:
                return "the arguments cannot make the request";
            case Errc::bad_options:
                return "the openapi options cannot work";
        }
        return "openapi error";
    }
};

}  // namespace

const std::error_category& openapi_category() noexcept {
    static const Category category;
    return category;
}

std::error_code make_error_code(Errc e) noexcept {
    return {static_cast<int>(e), openapi_category()};
}

}  // namespace pqmcp::openapi
