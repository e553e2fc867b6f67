#include "pqmcp/crypto/aead.hpp"

#include <array>
#include <cstring>
#include <limits>
#include <memory>

#include <openssl/evp.h>

#include "pqmcp/crypto/ossl.hpp"
#include "pqmcp/crypto/util.hpp"

namespace pqmcp::crypto {
namespace {

constexpr std::size_t k_key = 32;
constexpr std::size_t k_nonce = 12;
constexpr std::size_t k_tag = 16;

using CipherCtx = CipherCtxPtr;

int as_int(std::size_t n) {
    return n > static_cast<std::size_t>(std::numeric_limits<int>::max()) ? -1 : static_cast<int>(n);
}

}  // namespace

Sealer::Sealer(std::chrono::milliseconds rotation) : rotation_(rotation) {
    rotate();
}

void Sealer::rotate() {
    auto key = random_secret(k_key);
    if (!key) {
        OPENSSL_die("no randomness for a sealing key", __FILE__, __LINE__);
    }
    previous_ = std::move(current_);
    current_ = std::move(*key);
    ++current_id_;
    rotated_at_ = Clock::now();
}

void Sealer::rotate_if_due() {
    if (Clock::now() - rotated_at_ >= rotation_) {
        rotate();
    }
}

Result<Bytes> seal_with(const SecretBytes& key, ByteView plaintext, ByteView aad) {
    if (key.size() != k_key) {
        return fail(Errc::invalid_argument, "an AES-256-GCM key is 32 bytes");
    }
    auto nonce = random_bytes(k_nonce);
    if (!nonce) {
        return tl::unexpected(nonce.error());
    }
    Bytes out;
    out.reserve(k_nonce + plaintext.size() + k_tag);
    out.insert(out.end(), nonce->begin(), nonce->end());
    out.resize(k_nonce + plaintext.size() + k_tag);
    std::uint8_t* body = out.data() + k_nonce;
    CipherCtx ctx(EVP_CIPHER_CTX_new());
    int n = 0;
    int tail = 0;
    if (!ctx || as_int(plaintext.size()) < 0 || as_int(aad.size()) < 0 ||
        EVP_EncryptInit_ex2(ctx.get(), EVP_aes_256_gcm(), key.data(), nonce->data(), nullptr) !=
            1 ||
        (!aad.empty() &&
         EVP_EncryptUpdate(ctx.get(), nullptr, &n, aad.data(), as_int(aad.size())) != 1) ||
        EVP_EncryptUpdate(ctx.get(), body, &n, plaintext.data(), as_int(plaintext.size())) != 1 ||
        EVP_EncryptFinal_ex(ctx.get(), body + n, &tail) != 1 ||
        EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_GET_TAG, static_cast<int>(k_tag),
                            body + plaintext.size()) != 1) {
        return fail(Errc::operation_failed, "AES-256-GCM seal failed");
    }
    return out;
}

Result<Bytes> open_with(const SecretBytes& key, ByteView sealed, ByteView aad) {
    if (key.size() != k_key) {
        return fail(Errc::invalid_argument, "an AES-256-GCM key is 32 bytes");
    }
    if (sealed.size() < k_nonce + k_tag) {
        return fail(Errc::invalid_argument, "too short to be sealed");
    }
    const std::uint8_t* nonce = sealed.data();
    const std::uint8_t* body = nonce + k_nonce;
    const std::size_t length = sealed.size() - k_nonce - k_tag;
    // EVP_CTRL_GCM_SET_TAG takes a non-const pointer; it only reads.
    std::array<std::uint8_t, k_tag> tag{};
    std::memcpy(tag.data(), body + length, k_tag);
    Bytes out(length);
    CipherCtx ctx(EVP_CIPHER_CTX_new());
    int n = 0;
    int tail = 0;
    if (!ctx || as_int(length) < 0 || as_int(aad.size()) < 0 ||
        EVP_DecryptInit_ex2(ctx.get(), EVP_aes_256_gcm(), key.data(), nonce, nullptr) != 1 ||
        (!aad.empty() &&
         EVP_DecryptUpdate(ctx.get(), nullptr, &n, aad.data(), as_int(aad.size())) != 1) ||
        EVP_DecryptUpdate(ctx.get(), out.data(), &n, body, as_int(length)) != 1 ||
        EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_SET_TAG, static_cast<int>(k_tag), tag.data()) !=
            1) {
        return fail(Errc::operation_failed, "AES-256-GCM open failed");
    }
    if (EVP_DecryptFinal_ex(ctx.get(), out.data() + n, &tail) != 1) {
        return fail(Errc::signature_invalid,
                    "altered, or sealed under another key or for another use");
    }
    return out;
}

Result<std::string> Sealer::seal(ByteView plaintext, ByteView aad) {
    rotate_if_due();
    auto sealed = seal_with(current_, plaintext, aad);
    if (!sealed) {
        return tl::unexpected(sealed.error());
    }
    Bytes out;
    out.reserve(1 + sealed->size());
    out.push_back(current_id_);
    out.insert(out.end(), sealed->begin(), sealed->end());
    return to_base32(out);
}

Result<Bytes> Sealer::open(std::string_view token, ByteView aad) {
    rotate_if_due();
    auto raw = from_base32(token);
    if (!raw || raw->size() < 1 + k_nonce + k_tag) {
        return fail(Errc::invalid_argument, "not a sealed token");
    }
    const std::uint8_t id = raw->front();
    const SecretBytes* key = nullptr;
    if (id == current_id_) {
        key = &current_;
    } else if (id == static_cast<std::uint8_t>(current_id_ - 1) && !previous_.empty()) {
        key = &previous_;
    } else {
        return fail(Errc::signature_invalid, "sealed under a key that is no longer kept");
    }
    auto out = open_with(*key, ByteView(raw->data() + 1, raw->size() - 1), aad);
    if (!out && out.error().code == Errc::signature_invalid) {
        return fail(Errc::signature_invalid, "the token was altered or is not for this request");
    }
    return out;
}

}  // namespace pqmcp::crypto
