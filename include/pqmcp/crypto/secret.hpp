// A move-only byte buffer for secrets (shared secrets, private keys, seeds).
// Cleansed with OPENSSL_cleanse on destruction and on move-from; compared in
// constant time; deliberately has no operator<< and no implicit conversion to
// anything printable.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "pqmcp/core/bytes.hpp"

namespace pqmcp::crypto {

class SecretBytes final {
  public:
    SecretBytes() = default;
    explicit SecretBytes(std::size_t size);
    explicit SecretBytes(ByteView data);
    ~SecretBytes();

    SecretBytes(const SecretBytes&) = delete;
    SecretBytes& operator=(const SecretBytes&) = delete;
    SecretBytes(SecretBytes&& other) noexcept;
    SecretBytes& operator=(SecretBytes&& other) noexcept;

    [[nodiscard]] std::uint8_t* data() noexcept { return bytes_.data(); }
    [[nodiscard]] const std::uint8_t* data() const noexcept { return bytes_.data(); }
    [[nodiscard]] std::size_t size() const noexcept { return bytes_.size(); }
    [[nodiscard]] bool empty() const noexcept { return bytes_.empty(); }
    [[nodiscard]] ByteView view() const noexcept { return {bytes_.data(), bytes_.size()}; }

    // Shrinks to `n` bytes, cleansing the tail.
    void truncate(std::size_t n) noexcept;
    void clear() noexcept;

    // Constant-time equality (CRYPTO_memcmp); different sizes compare unequal.
    [[nodiscard]] bool equals(ByteView other) const noexcept;
    friend bool operator==(const SecretBytes& a, const SecretBytes& b) noexcept {
        return a.equals(b.view());
    }

  private:
    std::vector<std::uint8_t> bytes_;
};

}  // namespace pqmcp::crypto
