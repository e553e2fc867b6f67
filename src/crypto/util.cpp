#include "pqmcp/crypto/util.hpp"

#include <algorithm>
#include <limits>
#include <memory>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/pem.h>
#include <openssl/provider.h>
#include <openssl/rand.h>
#include <openssl/x509.h>

namespace pqmcp::crypto {
namespace {

Digest32 digest(const char* name, ByteView data) {
    Digest32 out{};
    unsigned int len = 0;
    // Fetched once (explicitly: an implicit fetch looks the digest up in the
    // provider's cache on every call). Both are always in the default
    // provider, so failure here is a broken installation. Kept for the
    // process's life.
    static EVP_MD* const sha256_md = EVP_MD_fetch(nullptr, "SHA256", nullptr);
    static EVP_MD* const sha3_md = EVP_MD_fetch(nullptr, "SHA3-256", nullptr);
    const EVP_MD* md = (std::string_view(name) == "SHA256") ? sha256_md : sha3_md;
    if (md == nullptr) {
        OPENSSL_die("digest unavailable", __FILE__, __LINE__);
    }
    if (EVP_Digest(data.data(), data.size(), out.data(), &len, md, nullptr) != 1 ||
        len != out.size()) {
        OPENSSL_die("digest failed", __FILE__, __LINE__);
    }
    return out;
}

Result<BioPtr> memory_bio(ByteView data) {
    if (data.size() > static_cast<std::size_t>(std::numeric_limits<int>::max())) {
        return fail(Errc::invalid_argument, "PEM input too large");
    }
    BioPtr bio(BIO_new_mem_buf(data.data(), static_cast<int>(data.size())));
    if (!bio) {
        return openssl_fail(Errc::operation_failed, "BIO_new_mem_buf");
    }
    return bio;
}

// An explicit "no passphrase" answer: with no callback, OpenSSL would prompt
// on the terminal for an encrypted key and a server would hang there.
int no_passphrase(char* /*buf*/, int /*size*/, int /*rwflag*/, void* /*u*/) {
    return -1;
}

}  // namespace

Digest32 sha256(ByteView data) {
    return digest("SHA256", data);
}

Digest32 sha3_256(ByteView data) {
    return digest("SHA3-256", data);
}

Result<Bytes> random_bytes(std::size_t n) {
    Bytes out(n);
    if (n > 0 && RAND_bytes(out.data(), static_cast<int>(n)) != 1) {
        return openssl_fail(Errc::operation_failed, "RAND_bytes");
    }
    return out;
}

Result<SecretBytes> random_secret(std::size_t n) {
    SecretBytes out(n);
    if (n > 0 && RAND_priv_bytes(out.data(), static_cast<int>(n)) != 1) {
        return openssl_fail(Errc::operation_failed, "RAND_priv_bytes");
    }
    return out;
}

Result<SecretBytes> hkdf_sha256(ByteView key, ByteView salt, ByteView info, std::size_t length) {
    std::unique_ptr<EVP_KDF, decltype(&EVP_KDF_free)> kdf(EVP_KDF_fetch(nullptr, "HKDF", nullptr),
                                                          &EVP_KDF_free);
    std::unique_ptr<EVP_KDF_CTX, decltype(&EVP_KDF_CTX_free)> ctx(
        kdf ? EVP_KDF_CTX_new(kdf.get()) : nullptr, &EVP_KDF_CTX_free);
    if (!ctx) {
        return openssl_fail(Errc::operation_failed, "HKDF is not available");
    }
    char digest[] = "SHA256";
    // OpenSSL's parameters are not const; it only reads these.
    auto* k = const_cast<std::uint8_t*>(key.data());
    auto* s = const_cast<std::uint8_t*>(salt.data());
    auto* i = const_cast<std::uint8_t*>(info.data());
    const OSSL_PARAM params[] = {
        OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, digest, 0),
        OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, k, key.size()),
        OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SALT, s, salt.size()),
        OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, i, info.size()),
        OSSL_PARAM_construct_end(),
    };
    SecretBytes out(length);
    if (EVP_KDF_derive(ctx.get(), out.data(), out.size(), params) != 1) {
        return openssl_fail(Errc::operation_failed, "HKDF-SHA256");
    }
    return out;
}

Result<SecretBytes> derive_key(const EVP_PKEY* private_key, std::string_view purpose) {
    constexpr std::string_view salt = "pqmcp key derived from an identity v1";
    // The raw private key where the algorithm has one (ML-DSA's expanded key,
    // Ed25519's): unlike its PKCS#8 encoding, it does not change with the
    // provider's output format (ML-DSA seed or not). Else the encoding (EC, RSA).
    std::size_t length = 0;
    if (EVP_PKEY_get_raw_private_key(private_key, nullptr, &length) == 1 && length > 0) {
        SecretBytes raw(length);
        if (EVP_PKEY_get_raw_private_key(private_key, raw.data(), &length) == 1) {
            raw.truncate(length);
            return hkdf_sha256(raw.view(), as_bytes(salt), as_bytes(purpose), 32);
        }
    }
    ERR_clear_error();
    auto pem = private_key_pem(private_key);
    if (!pem) {
        return tl::unexpected(pem.error());
    }
    return hkdf_sha256(pem->view(), as_bytes(salt), as_bytes(purpose), 32);
}

Result<Bytes> public_key_der(const EVP_PKEY* key) {
    unsigned char* der = nullptr;
    const int len = i2d_PUBKEY(key, &der);
    if (len <= 0 || der == nullptr) {
        return openssl_fail(Errc::invalid_key, "i2d_PUBKEY");
    }
    Bytes out(der, der + len);
    OPENSSL_free(der);
    return out;
}

Result<SecretBytes> private_key_pem(const EVP_PKEY* key) {
    BioPtr bio(BIO_new(BIO_s_secmem()));
    if (!bio) {
        return openssl_fail(Errc::operation_failed, "BIO_new");
    }
    if (PEM_write_bio_PrivateKey(bio.get(), key, nullptr, nullptr, 0, nullptr, nullptr) != 1) {
        return openssl_fail(Errc::invalid_key, "PEM_write_bio_PrivateKey");
    }
    char* data = nullptr;
    const long len = BIO_get_mem_data(bio.get(), &data);
    if (len <= 0 || data == nullptr) {
        return openssl_fail(Errc::operation_failed, "BIO_get_mem_data");
    }
    return SecretBytes(
        ByteView(reinterpret_cast<const std::uint8_t*>(data), static_cast<std::size_t>(len)));
}

Result<PkeyPtr> load_private_key_pem(ByteView pem) {
    auto bio = memory_bio(pem);
    if (!bio) {
        return tl::unexpected(bio.error());
    }
    PkeyPtr key(PEM_read_bio_PrivateKey(bio->get(), nullptr, no_passphrase, nullptr));
    if (!key) {
        return openssl_fail(Errc::invalid_key, "not a PEM private key");
    }
    return key;
}

Result<PkeyPtr> load_public_key_pem(ByteView pem) {
    auto bio = memory_bio(pem);
    if (!bio) {
        return tl::unexpected(bio.error());
    }
    PkeyPtr key(PEM_read_bio_PUBKEY(bio->get(), nullptr, nullptr, nullptr));
    if (!key) {
        return openssl_fail(Errc::invalid_key, "not a PEM public key");
    }
    return key;
}

OpensslInfo openssl_info() {
    OpensslInfo info;
    info.version = OpenSSL_version(OPENSSL_VERSION);
    info.openssl_dir = OPENSSL_info(OPENSSL_INFO_CONFIG_DIR);
    info.modules_dir = OPENSSL_info(OPENSSL_INFO_MODULES_DIR);
    EVP_KEM_do_all_provided(
        nullptr,
        [](EVP_KEM* kem, void* arg) {
            auto* list = static_cast<std::vector<std::string>*>(arg);
            list->emplace_back(EVP_KEM_get0_name(kem));
        },
        &info.kems);
    EVP_SIGNATURE_do_all_provided(
        nullptr,
        [](EVP_SIGNATURE* sig, void* arg) {
            auto* list = static_cast<std::vector<std::string>*>(arg);
            list->emplace_back(EVP_SIGNATURE_get0_name(sig));
        },
        &info.signatures);
    for (auto* list : {&info.kems, &info.signatures}) {
        std::sort(list->begin(), list->end());
        list->erase(std::unique(list->begin(), list->end()), list->end());
    }
    return info;
}

std::string to_base64(ByteView data) {
    std::string out(4 * ((data.size() + 2) / 3) + 1, '\0');
    const int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()), data.data(),
                                  static_cast<int>(data.size()));
    out.resize(static_cast<std::size_t>(n));
    return out;
}

std::optional<Bytes> from_base64(std::string_view text) {
    if (text.size() % 4 != 0) {
        return std::nullopt;
    }
    Bytes out(text.size() / 4 * 3);
    const int n = EVP_DecodeBlock(out.data(), reinterpret_cast<const unsigned char*>(text.data()),
                                  static_cast<int>(text.size()));
    if (n < 0) {
        return std::nullopt;
    }
    // EVP_DecodeBlock counts the bytes the padding stands for.
    std::size_t size = static_cast<std::size_t>(n);
    for (std::size_t i = text.size(); i > 0 && text[i - 1] == '=' && size > 0; --i) {
        --size;
    }
    out.resize(size);
    return out;
}

}  // namespace pqmcp::crypto
