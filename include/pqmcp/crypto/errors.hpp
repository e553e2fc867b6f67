#pragma once

#include <string>
#include <system_error>

#include "pqmcp/core/error.hpp"

namespace pqmcp::crypto {

enum class Errc {
    invalid_key = 1,        // key material has the wrong size or does not decode
    invalid_argument,       // a seed, randomness, context or ciphertext of the wrong size
    unsupported_algorithm,  // the OpenSSL in use does not offer the algorithm
    signature_invalid,      // verification ran and the signature does not verify
    operation_failed,       // OpenSSL reported an error (details in Error::detail)
    io_error,               // reading or writing a PEM file failed
};

const std::error_category& crypto_category() noexcept;

inline std::error_code make_error_code(Errc e) noexcept {
    return {static_cast<int>(e), crypto_category()};
}

// Builds an Error from `code`, `what` and OpenSSL's error queue (drained).
[[nodiscard]] Error openssl_error(Errc code, std::string what);

// Same as openssl_error, wrapped for returning from a Result function.
[[nodiscard]] tl::unexpected<Error> openssl_fail(Errc code, std::string what);

// Drains OpenSSL's thread-local error queue into one line ("" if empty).
[[nodiscard]] std::string drain_openssl_errors();

}  // namespace pqmcp::crypto

template <>
struct std::is_error_code_enum<pqmcp::crypto::Errc> : std::true_type {};
