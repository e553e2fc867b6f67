#include "pqmcp/transport/errors.hpp"

#include <string>

namespace pqmcp::transport {
namespace {

class TransportCategory final : public std::error_category {
  public:
    [[nodiscard]] const char* name() const noexcept override { return "transport"; }
    [[nodiscard]] std::string message(int code) const override {
        switch (static_cast<Errc>(code)) {
            case Errc::io_error:
                return "I/O error";
            case Errc::closed:
                return "closed by the peer";
            case Errc::too_large:
                return "over the size limit";
            case Errc::timeout:
                return "timed out";
            case Errc::invalid_url:
                return "invalid URL";
            case Errc::spawn_failed:
                return "cannot start the process";
            case Errc::http_status:
                return "HTTP error status";
            case Errc::protocol_error:
                return "protocol error";
            case Errc::connect_failed:
                return "cannot connect";
            case Errc::session_expired:
                return "session expired";
            case Errc::listen_failed:
                return "cannot listen";
        }
        return "unknown transport error";
    }
};

}  // namespace

const std::error_category& transport_category() noexcept {
    static const TransportCategory category;
    return category;
}

}  // namespace pqmcp::transport
