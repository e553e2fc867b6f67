#include "pqmcp/crypto/secret.hpp"

#include <openssl/crypto.h>

namespace pqmcp::crypto {

SecretBytes::SecretBytes(std::size_t size) : bytes_(size, 0) {}

SecretBytes::SecretBytes(ByteView data) : bytes_(data.begin(), data.end()) {}

SecretBytes::~SecretBytes() {
    clear();
}

SecretBytes::SecretBytes(SecretBytes&& other) noexcept : bytes_(std::move(other.bytes_)) {
    other.clear();
}

SecretBytes& SecretBytes::operator=(SecretBytes&& other) noexcept {
    if (this != &other) {
        clear();
        bytes_ = std::move(other.bytes_);
        other.clear();
    }
    return *this;
}

void SecretBytes::truncate(std::size_t n) noexcept {
    if (n < bytes_.size()) {
        OPENSSL_cleanse(bytes_.data() + n, bytes_.size() - n);
        bytes_.resize(n);
    }
}

void SecretBytes::clear() noexcept {
    if (!bytes_.empty()) {
        OPENSSL_cleanse(bytes_.data(), bytes_.size());
    }
    bytes_.clear();
}

bool SecretBytes::equals(ByteView other) const noexcept {
    if (other.size() != bytes_.size()) {
        return false;
    }
    if (bytes_.empty()) {
        return true;
    }
    return CRYPTO_memcmp(bytes_.data(), other.data(), bytes_.size()) == 0;
}

}  // namespace pqmcp::crypto
