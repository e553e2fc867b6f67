#include "pqmcp/crypto/errors.hpp"

#include <openssl/err.h>

namespace pqmcp::crypto {
namespace {

class CryptoCategory final : public std::error_category {
  public:
    [[nodiscard]] const char* name() const noexcept override { return "crypto"; }
    [[nodiscard]] std::string message(int code) const override {
        switch (static_cast<Errc>(code)) {
            case Errc::invalid_key:
                return "invalid key";
            case Errc::invalid_argument:
                return "invalid argument";
            case Errc::unsupported_algorithm:
                return "unsupported algorithm";
            case Errc::signature_invalid:
                return "signature does not verify";
            case Errc::operation_failed:
                return "cryptographic operation failed";
            case Errc::io_error:
                return "I/O error";
        }
        return "unknown crypto error";
    }
};

}  // namespace

const std::error_category& crypto_category() noexcept {
    static const CryptoCategory category;
    return category;
}

std::string drain_openssl_errors() {
    std::string out;
    const char* file = nullptr;
    int line = 0;
    const char* func = nullptr;
    const char* data = nullptr;
    int flags = 0;
    unsigned long code = 0;
    while ((code = ERR_get_error_all(&file, &line, &func, &data, &flags)) != 0) {
        char buf[256];
        ERR_error_string_n(code, buf, sizeof buf);
        if (!out.empty()) {
            out += "; ";
        }
        out += buf;
        if (data != nullptr && (flags & ERR_TXT_STRING) != 0 && data[0] != '\0') {
            out += " (";
            out += data;
            out += ")";
        }
    }
    return out;
}

Error openssl_error(Errc code, std::string what) {
    std::string queue = drain_openssl_errors();
    if (!queue.empty()) {
        what += ": ";
        what += queue;
    }
    return Error{make_error_code(code), std::move(what)};
}

tl::unexpected<Error> openssl_fail(Errc code, std::string what) {
    return tl::unexpected<Error>(openssl_error(code, std::move(what)));
}

}  // namespace pqmcp::crypto
