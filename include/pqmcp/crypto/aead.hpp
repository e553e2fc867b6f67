// AES-256-GCM (OpenSSL's EVP): sealed tokens under a key that rotates, for
// state the gateway hands a client and must get back unchanged (the
// requestState of a 2026-07-28 multi round-trip request), and secrets kept at
// rest under a key derived from an identity.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>

#include "pqmcp/core/bytes.hpp"
#include "pqmcp/core/error.hpp"
#include "pqmcp/crypto/errors.hpp"
#include "pqmcp/crypto/secret.hpp"

namespace pqmcp::crypto {

// Sealed under `key` (32 bytes): nonce (12, random), ciphertext, tag (16).
// `aad` is bound to the result without being in it.
[[nodiscard]] Result<Bytes> seal_with(const SecretBytes& key, ByteView plaintext, ByteView aad);
// The plaintext; Errc::signature_invalid when `sealed` was altered, sealed
// under another key or with other `aad`; Errc::invalid_argument when too short.
[[nodiscard]] Result<Bytes> open_with(const SecretBytes& key, ByteView sealed, ByteView aad);

// Not thread-safe: one per thread that uses it.
class Sealer final {
  public:
    using Clock = std::chrono::steady_clock;
    // A new random key every `rotation`; a token sealed under the previous
    // key still opens (so a token lives at least one rotation).
    explicit Sealer(std::chrono::milliseconds rotation = std::chrono::minutes{10});

    // The token: key id (1 byte), nonce (12), ciphertext, tag (16), in
    // lower-case base32. `aad` is bound to it without being in it: opening
    // with other `aad` fails.
    [[nodiscard]] Result<std::string> seal(ByteView plaintext, ByteView aad);
    // The plaintext; Errc::signature_invalid for a token that was altered,
    // sealed with other `aad`, or under a key that has rotated out (or that
    // is not one of ours); Errc::invalid_argument for one that does not decode.
    [[nodiscard]] Result<Bytes> open(std::string_view token, ByteView aad);

    // For tests: rotate now.
    void rotate();

  private:
    void rotate_if_due();
    std::chrono::milliseconds rotation_;
    Clock::time_point rotated_at_{};
    std::uint8_t current_id_ = 0;
    SecretBytes current_;
    SecretBytes previous_;
};

}  // namespace pqmcp::crypto
