#include "pqmcp/tls/errors.hpp"

#include <string>

namespace pqmcp::tls {
namespace {

class TlsCategory final : public std::error_category {
  public:
    [[nodiscard]] const char* name() const noexcept override { return "tls"; }
    [[nodiscard]] std::string message(int code) const override {
        switch (static_cast<Errc>(code)) {
            case Errc::unknown_profile:
                return "unknown security profile";
            case Errc::invalid_options:
                return "invalid TLS options";
            case Errc::context_failed:
                return "TLS context setup failed";
            case Errc::resolve_failed:
                return "host name does not resolve";
            case Errc::connect_failed:
                return "TCP connect failed";
            case Errc::listen_failed:
                return "cannot listen";
            case Errc::timeout:
                return "timed out";
            case Errc::handshake_failed:
                return "TLS handshake failed";
            case Errc::peer_rejected:
                return "peer not trusted";
            case Errc::io_error:
                return "TLS I/O error";
        }
        return "unknown tls error";
    }
};

}  // namespace

const std::error_category& tls_category() noexcept {
    static const TlsCategory category;
    return category;
}

}  // namespace pqmcp::tls
