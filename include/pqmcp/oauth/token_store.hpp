// A refresh token kept at rest (issue 17, item 4): enrolled once by
// `pqmcp auth login`, then used and rotated by the gateway. The file (JSON,
// mode 0600) names in the clear what the token is for, and holds the token
// sealed (AES-256-GCM) under a key derived from the gateway's identity, with
// what it names bound as associated data: a file copied to another identity,
// or edited to name another resource, server or client, does not open.
#pragma once

#include <chrono>
#include <filesystem>
#include <string>
#include <utility>

#include <openssl/evp.h>

#include "pqmcp/core/error.hpp"
#include "pqmcp/crypto/secret.hpp"
#include "pqmcp/oauth/resource.hpp"

namespace pqmcp::oauth {

struct StoredGrant {
    std::string resource;       // the protected resource (RFC 8707) the token is for
    std::string issuer;         // the authorization server that issued it
    std::string client_id;      // the client it was issued to
    std::string refresh_token;  // never logged
};

class TokenFile final {
  public:
    // The key for `path` is derived from `identity_key` (the gateway's private key).
    [[nodiscard]] static Result<TokenFile> open(std::filesystem::path path,
                                                const EVP_PKEY* identity_key);

    // not_enrolled when there is no file; store_failed when it cannot be read,
    // is not such a file, or does not open under this identity.
    [[nodiscard]] Result<StoredGrant> read() const;
    // Written beside it, then renamed over it (mode 0600; a directory that
    // is missing is created, mode 0700). store_failed when that fails.
    [[nodiscard]] Status write(const StoredGrant& grant) const;

    // An exclusive advisory lock (flock on PATH.lock) for a read, refresh,
    // write: gateways that share the file take turns, so that a rotated
    // token is never used twice. Released when the returned object goes.
    class Lock final {
      public:
        explicit Lock(int fd) noexcept : fd_(fd) {}
        ~Lock();
        Lock(const Lock&) = delete;
        Lock& operator=(const Lock&) = delete;
        Lock(Lock&& other) noexcept : fd_(other.fd_) { other.fd_ = -1; }
        Lock& operator=(Lock&&) = delete;

      private:
        int fd_;
    };
    // Does not wait: store_failed "busy" when another process holds it.
    [[nodiscard]] Result<Lock> try_lock() const;
    // Waits up to `wait` (blocking the thread: for commands, not the gateway).
    [[nodiscard]] Result<Lock> lock(std::chrono::milliseconds wait) const;
    // The same for the file at `path`, without its key (to remove it).
    [[nodiscard]] static Result<Lock> try_lock_path(const std::filesystem::path& path);
    [[nodiscard]] static Result<Lock> lock_path(const std::filesystem::path& path,
                                                std::chrono::milliseconds wait);

    [[nodiscard]] const std::filesystem::path& path() const noexcept { return path_; }

  private:
    TokenFile(std::filesystem::path path, crypto::SecretBytes key)
        : path_(std::move(path)), key_(std::move(key)) {}
    std::filesystem::path path_;
    crypto::SecretBytes key_;
};

}  // namespace pqmcp::oauth
