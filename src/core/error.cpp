#include "pqmcp/core/error.hpp"

namespace pqmcp {

std::string Error::message() const {
    std::string out = code.category().name();
    out += ": ";
    out += code.message();
    if (!detail.empty()) {
        out += ": ";
        out += detail;
    }
    return out;
}

}  // namespace pqmcp
