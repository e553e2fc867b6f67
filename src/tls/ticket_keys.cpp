#include "ticket_keys.hpp"

#include <array>
#include <cstring>
#include <string_view>
#include <utility>

#include <openssl/core_names.h>
#include <openssl/params.h>
#include <openssl/rand.h>

#include "pqmcp/crypto/util.hpp"

namespace pqmcp::tls::detail {
namespace {

constexpr std::size_t k_aes_key_size = 32;
constexpr std::size_t k_mac_key_size = 32;

}  // namespace

TicketKeyManager::TicketKeyManager(std::chrono::seconds interval, TicketClock clock,
                                   std::shared_ptr<const crypto::SecretBytes> shared)
    : interval_(interval.count() > 0 ? interval : std::chrono::seconds{1}),
      clock_(clock ? std::move(clock)
                   : TicketClock([] { return std::chrono::steady_clock::now(); })),
      start_(clock_()),
      shared_(std::move(shared)),
      aes_(EVP_CIPHER_fetch(nullptr, "AES-256-CBC", nullptr)) {}

TicketKeyManager::~TicketKeyManager() {
    EVP_CIPHER_free(aes_);
}

std::int64_t TicketKeyManager::epoch_now() const {
    if (shared_) {
        // Every replica counts the same epochs: those of the wall clock.
        const auto since = std::chrono::system_clock::now().time_since_epoch();
        return since.count() < 0 ? 0 : static_cast<std::int64_t>(since / interval_);
    }
    const auto elapsed = clock_() - start_;
    if (elapsed.count() < 0) {
        return 0;  // a clock that goes backwards keeps the current key
    }
    return static_cast<std::int64_t>(elapsed / interval_);
}

std::optional<TicketKeyManager::Key> TicketKeyManager::derived_key(std::int64_t epoch) const {
    // HKDF-SHA256 (RFC 5869) of the shared secret, the epoch in the info:
    // name, cipher key and MAC key, the same on every replica.
    constexpr std::string_view salt = "pqmcp session ticket keys v1";
    std::array<unsigned char, 8> info{};
    for (std::size_t i = 0; i < info.size(); ++i) {
        info.at(i) = static_cast<unsigned char>(static_cast<std::uint64_t>(epoch) >> (56 - 8 * i));
    }
    auto out =
        crypto::hkdf_sha256(shared_->view(), as_bytes(salt), ByteView(info.data(), info.size()),
                            k_name_size + k_aes_key_size + k_mac_key_size);
    if (!out) {
        return std::nullopt;
    }
    Key key;
    key.epoch = epoch;
    std::memcpy(key.name.data(), out->data(), k_name_size);
    key.cipher_key = crypto::SecretBytes(ByteView(out->data() + k_name_size, k_aes_key_size));
    key.mac_key =
        crypto::SecretBytes(ByteView(out->data() + k_name_size + k_aes_key_size, k_mac_key_size));
    return key;
}

std::optional<TicketKeyManager::Key> TicketKeyManager::new_key(std::int64_t epoch) const {
    if (shared_) {
        return derived_key(epoch);
    }
    Key key;
    key.epoch = epoch;
    // The key name is public (it travels in the ticket); the keys are secret.
    if (RAND_bytes(key.name.data(), static_cast<int>(key.name.size())) != 1) {
        return std::nullopt;
    }
    auto cipher_key = crypto::random_secret(k_aes_key_size);
    auto mac_key = crypto::random_secret(k_mac_key_size);
    if (!cipher_key || !mac_key) {
        return std::nullopt;
    }
    key.cipher_key = std::move(*cipher_key);
    key.mac_key = std::move(*mac_key);
    return key;
}

bool TicketKeyManager::rotate_to(std::int64_t epoch) {
    if (current_ && current_->epoch >= epoch) {
        return true;
    }
    auto fresh = new_key(epoch);
    if (!fresh) {
        return false;
    }
    if (current_ && current_->epoch == epoch - 1) {
        previous_ = std::move(current_);
    } else {
        previous_.reset();  // more than one interval passed: the old key is too old too
    }
    current_ = std::move(fresh);
    if (shared_ && !previous_ && epoch > 0) {
        // The other replicas' previous key is ours too, even on a replica
        // that just started: their tickets of the last interval still resume.
        previous_ = derived_key(epoch - 1);
    }
    return true;
}

bool TicketKeyManager::init(const Key& key, unsigned char* iv, EVP_CIPHER_CTX* cipher,
                            EVP_MAC_CTX* mac, bool encrypt) const {
    if (aes_ == nullptr) {
        return false;
    }
    char digest[] = "SHA256";
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_octet_string(
            OSSL_MAC_PARAM_KEY, const_cast<std::uint8_t*>(key.mac_key.data()), key.mac_key.size()),
        OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest, 0),
        OSSL_PARAM_construct_end(),
    };
    if (EVP_MAC_CTX_set_params(mac, params) != 1) {
        return false;
    }
    if (encrypt) {
        return EVP_EncryptInit_ex2(cipher, aes_, key.cipher_key.data(), iv, nullptr) == 1;
    }
    return EVP_DecryptInit_ex2(cipher, aes_, key.cipher_key.data(), iv, nullptr) == 1;
}

int TicketKeyManager::callback(unsigned char* key_name, unsigned char* iv, EVP_CIPHER_CTX* cipher,
                               EVP_MAC_CTX* mac, int enc) {
    const std::lock_guard lock(mutex_);
    if (!rotate_to(epoch_now())) {
        return -1;
    }
    if (enc == 1) {
        const int iv_len = EVP_CIPHER_get_iv_length(aes_);
        if (iv_len <= 0 || RAND_bytes(iv, iv_len) != 1) {
            return -1;
        }
        std::memcpy(key_name, current_->name.data(), k_name_size);
        return init(*current_, iv, cipher, mac, true) ? 1 : -1;
    }
    // A ticket under the current key is fine; under the previous key it is
    // accepted once more and replaced (2 = renew); anything else is unknown.
    if (std::memcmp(key_name, current_->name.data(), k_name_size) == 0) {
        return init(*current_, iv, cipher, mac, false) ? 1 : -1;
    }
    if (previous_ && std::memcmp(key_name, previous_->name.data(), k_name_size) == 0) {
        return init(*previous_, iv, cipher, mac, false) ? 2 : -1;
    }
    return 0;
}

}  // namespace pqmcp::tls::detail
