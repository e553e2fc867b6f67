// Internal: session-ticket keys that rotate on a clock.
//
// Time is divided into epochs of `interval` since the manager was created.
// The key of the current epoch encrypts new tickets; tickets under the key of
// the previous epoch are still accepted (and the client gets a fresh ticket);
// anything older is unknown, so the handshake falls back to a full one. Keys
// come from RAND_priv_bytes and are cleansed when dropped (SecretBytes).
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>

#include <openssl/evp.h>

#include "pqmcp/crypto/secret.hpp"
#include "pqmcp/tls/context.hpp"

namespace pqmcp::tls::detail {

class TicketKeyManager final {
  public:
    static constexpr std::size_t k_name_size = 16;

    // `shared`: derive each epoch's keys from it (epochs of the wall clock)
    // instead of drawing random ones.
    TicketKeyManager(std::chrono::seconds interval, TicketClock clock,
                     std::shared_ptr<const crypto::SecretBytes> shared = nullptr);
    ~TicketKeyManager();
    TicketKeyManager(const TicketKeyManager&) = delete;
    TicketKeyManager& operator=(const TicketKeyManager&) = delete;
    TicketKeyManager(TicketKeyManager&&) = delete;
    TicketKeyManager& operator=(TicketKeyManager&&) = delete;

    // The SSL_CTX_set_tlsext_ticket_key_evp_cb contract: 1 ok, 2 ok but renew,
    // 0 unknown key (full handshake), -1 error.
    int callback(unsigned char* key_name, unsigned char* iv, EVP_CIPHER_CTX* cipher,
                 EVP_MAC_CTX* mac, int enc);

  private:
    struct Key {
        std::array<unsigned char, k_name_size> name{};
        crypto::SecretBytes cipher_key;  // AES-256-CBC
        crypto::SecretBytes mac_key;     // HMAC-SHA256
        std::int64_t epoch = 0;
    };

    [[nodiscard]] std::int64_t epoch_now() const;
    // Brings current_/previous_ up to `epoch`; false if no randomness.
    [[nodiscard]] bool rotate_to(std::int64_t epoch);
    [[nodiscard]] std::optional<Key> new_key(std::int64_t epoch) const;
    [[nodiscard]] std::optional<Key> derived_key(std::int64_t epoch) const;
    [[nodiscard]] bool init(const Key& key, unsigned char* iv, EVP_CIPHER_CTX* cipher,
                            EVP_MAC_CTX* mac, bool encrypt) const;

    std::chrono::seconds interval_;
    TicketClock clock_;
    std::chrono::steady_clock::time_point start_;
    std::shared_ptr<const crypto::SecretBytes> shared_;
    EVP_CIPHER* aes_ = nullptr;
    std::mutex mutex_;
    std::optional<Key> current_;
    std::optional<Key> previous_;
};

}  // namespace pqmcp::tls::detail
