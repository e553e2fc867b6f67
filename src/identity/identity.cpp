#include "pqmcp/identity/identity.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstring>

#include <openssl/bn.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "pqmcp/crypto/signature.hpp"
#include "pqmcp/crypto/util.hpp"

#include "files.hpp"

namespace pqmcp::identity {
namespace fs = std::filesystem;

namespace {

class IdentityCategory final : public std::error_category {
  public:
    [[nodiscard]] const char* name() const noexcept override { return "identity"; }
    [[nodiscard]] std::string message(int code) const override {
        switch (static_cast<Errc>(code)) {
            case Errc::io_error:
                return "I/O error";
            case Errc::already_exists:
                return "identity already exists";
            case Errc::invalid_key:
                return "invalid identity key";
            case Errc::invalid_certificate:
                return "invalid certificate";
            case Errc::key_mismatch:
                return "key and certificate do not match";
            case Errc::invalid_peer_id:
                return "invalid peer id";
            case Errc::known_peers_syntax:
                return "malformed known_peers file";
            case Errc::duplicate_peer:
                return "duplicate peer";
            case Errc::unsupported_algorithm:
                return "unsupported algorithm";
        }
        return "unknown identity error";
    }
};

constexpr std::size_t k_peer_id_body = 52;  // base32 of 32 bytes, unpadded

struct Prefix {
    std::string_view prefix;
    std::array<std::string_view, 3> key_types;
};
constexpr std::array<Prefix, 4> k_prefixes{{
    {"pq1", {"ML-DSA-44", "ML-DSA-65", "ML-DSA-87"}},
    {"ed1", {"ED25519", "", ""}},
    {"ec1", {"EC", "", ""}},
    {"rsa1", {"RSA", "RSA-PSS", ""}},
}};

Status add_extension(X509* cert, int nid, const std::string& value) {
    X509V3_CTX ctx;
    X509V3_set_ctx_nodb(&ctx);
    X509V3_set_ctx(&ctx, cert, cert, nullptr, nullptr, 0);
    X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value.c_str());
    if (ext == nullptr) {
        return tl::unexpected(crypto::openssl_error(crypto::Errc::invalid_argument,
                                                    "certificate extension " + value));
    }
    const int ok = X509_add_ext(cert, ext, -1);
    X509_EXTENSION_free(ext);
    if (ok != 1) {
        return tl::unexpected(
            crypto::openssl_error(crypto::Errc::operation_failed, "X509_add_ext"));
    }
    return {};
}

bool looks_like_ip(std::string_view name) {
    return !name.empty() && (name.find(':') != std::string_view::npos ||
                             name.find_first_not_of("0123456789.") == std::string_view::npos);
}

Result<crypto::X509Ptr> self_signed_certificate(EVP_PKEY* key, const PeerId& id,
                                                const KeygenOptions& options) {
    crypto::X509Ptr cert(X509_new());
    if (!cert || X509_set_version(cert.get(), X509_VERSION_3) != 1) {
        return crypto::openssl_fail(crypto::Errc::operation_failed, "X509_new");
    }
    // RFC 5280 section 4.1.2.2: a positive serial of at most 20 octets; 16 random bytes.
    auto serial_bytes = crypto::random_bytes(16);
    if (!serial_bytes) {
        return tl::unexpected(serial_bytes.error());
    }
    (*serial_bytes)[0] &= 0x7FU;
    BIGNUM* bn = BN_bin2bn(serial_bytes->data(), 16, nullptr);
    ASN1_INTEGER* serial = (bn != nullptr) ? BN_to_ASN1_INTEGER(bn, nullptr) : nullptr;
    BN_free(bn);
    if (serial == nullptr || X509_set_serialNumber(cert.get(), serial) != 1) {
        ASN1_INTEGER_free(serial);
        return crypto::openssl_fail(crypto::Errc::operation_failed, "serial number");
    }
    ASN1_INTEGER_free(serial);

    const long validity_seconds = static_cast<long>(options.validity.count()) * 86400L;
    if (X509_gmtime_adj(X509_getm_notBefore(cert.get()), -3600) == nullptr ||
        X509_gmtime_adj(X509_getm_notAfter(cert.get()), validity_seconds) == nullptr) {
        return crypto::openssl_fail(crypto::Errc::operation_failed, "validity");
    }
    X509_NAME* name = X509_get_subject_name(cert.get());
    if (X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                                   reinterpret_cast<const unsigned char*>(id.str().c_str()), -1, -1,
                                   0) != 1 ||
        X509_set_issuer_name(cert.get(), name) != 1 || X509_set_pubkey(cert.get(), key) != 1) {
        return crypto::openssl_fail(crypto::Errc::operation_failed, "subject");
    }
    // No keyUsage: a self-signed end-entity certificate without it is still
    // recognised as self-issued, so a peer can use it directly as its trust anchor.
    if (auto s = add_extension(cert.get(), NID_basic_constraints, "critical,CA:FALSE"); !s) {
        return tl::unexpected(s.error());
    }
    if (auto s = add_extension(cert.get(), NID_ext_key_usage, "serverAuth,clientAuth"); !s) {
        return tl::unexpected(s.error());
    }
    if (auto s = add_extension(cert.get(), NID_subject_key_identifier, "hash"); !s) {
        return tl::unexpected(s.error());
    }
    if (!options.names.empty()) {
        std::string san;
        for (const auto& n : options.names) {
            if (n.empty() || n.find_first_of(",\n\r") != std::string::npos) {
                return fail(Errc::invalid_certificate, "invalid subjectAltName entry '" + n + "'");
            }
            if (!san.empty()) {
                san += ",";
            }
            san += (looks_like_ip(n) ? "IP:" : "DNS:") + n;
        }
        if (auto s = add_extension(cert.get(), NID_subject_alt_name, san); !s) {
            return tl::unexpected(s.error());
        }
    }
    // ML-DSA and Ed25519 sign the certificate as a whole: no separate digest.
    const EVP_MD* md =
        crypto::is_ml_dsa(options.algorithm) || options.algorithm == crypto::SigAlg::ed25519
            ? nullptr
            : EVP_sha256();
    if (X509_sign(cert.get(), key, md) <= 0) {
        return crypto::openssl_fail(crypto::Errc::operation_failed, "X509_sign");
    }
    return cert;
}

}  // namespace

const std::error_category& identity_category() noexcept {
    static const IdentityCategory category;
    return category;
}

Result<PeerId> PeerId::parse(std::string_view text) {
    std::string lower(text);
    for (char& c : lower) {
        c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    }
    for (const auto& p : k_prefixes) {
        if (lower.size() == p.prefix.size() + k_peer_id_body && lower.starts_with(p.prefix)) {
            const std::string_view body = std::string_view(lower).substr(p.prefix.size());
            auto decoded = from_base32(body);
            if (decoded && decoded->size() == 32 && to_base32(*decoded) == body) {
                return PeerId(std::move(lower));
            }
            break;
        }
    }
    std::string detail = "'";
    detail.append(text.substr(0, 80));
    detail.append("' is not a peer id (pq1, ed1, ec1 or rsa1 followed by 52 base32 characters)");
    return fail(Errc::invalid_peer_id, std::move(detail));
}

Result<PeerId> PeerId::of_key(const EVP_PKEY* key) {
    if (key == nullptr) {
        return fail(Errc::invalid_key, "no key");
    }
    std::string_view prefix;
    for (const auto& p : k_prefixes) {
        for (const auto type : p.key_types) {
            if (!type.empty() && EVP_PKEY_is_a(key, std::string(type).c_str()) == 1) {
                prefix = p.prefix;
            }
        }
    }
    if (prefix.empty()) {
        return fail(Errc::unsupported_algorithm,
                    std::string("no peer id scheme for key type ") + EVP_PKEY_get0_type_name(key));
    }
    auto der = crypto::public_key_der(key);
    if (!der) {
        return tl::unexpected(der.error());
    }
    const auto digest = crypto::sha3_256(*der);
    return PeerId(std::string(prefix) + to_base32(digest));
}

Result<PeerId> PeerId::of_certificate(X509* cert) {
    if (cert == nullptr) {
        return fail(Errc::invalid_certificate, "no certificate");
    }
    EVP_PKEY* key = X509_get0_pubkey(cert);
    if (key == nullptr) {
        return tl::unexpected(
            crypto::openssl_error(crypto::Errc::invalid_key, "certificate public key"));
    }
    return of_key(key);
}

std::string PeerId::short_form() const {
    const auto pos = text_.find('1');
    return text_.substr(0, pos + 1 + 12);
}

Result<Identity> generate(const KeygenOptions& options) {
    if (!crypto::is_ml_dsa(options.algorithm) && options.algorithm != crypto::SigAlg::ed25519 &&
        options.algorithm != crypto::SigAlg::ecdsa_p256) {
        return fail(Errc::unsupported_algorithm,
                    std::string(crypto::cli_name(options.algorithm)) +
                        " is not an identity algorithm (use ml-dsa-65, ml-dsa-87 or ml-dsa-44)");
    }
    auto key = crypto::generate_signing_key(options.algorithm);
    if (!key) {
        return tl::unexpected(key.error());
    }
    auto id = PeerId::of_key(key->get());
    if (!id) {
        return tl::unexpected(id.error());
    }
    auto cert = self_signed_certificate(key->get(), *id, options);
    if (!cert) {
        return tl::unexpected(cert.error());
    }
    return Identity{std::move(*key), std::move(*cert), options.algorithm, std::move(*id)};
}

Status save(const Identity& id, const fs::path& dir, bool force) {
    std::error_code ec;
    fs::create_directories(dir, ec);
    if (ec) {
        return fail(Errc::io_error, "cannot create " + dir.string() + ": " + ec.message());
    }
    const fs::path key_path = dir / k_key_file;
    const fs::path cert_path = dir / k_cert_file;
    if (!force && (fs::exists(key_path) || fs::exists(cert_path))) {
        return fail(Errc::already_exists,
                    dir.string() + " already holds an identity; use --force to replace it");
    }
    auto pem = crypto::private_key_pem(id.key.get());
    if (!pem) {
        return tl::unexpected(pem.error());
    }
    crypto::BioPtr bio(BIO_new(BIO_s_mem()));
    if (!bio || PEM_write_bio_X509(bio.get(), id.certificate.get()) != 1) {
        return crypto::openssl_fail(crypto::Errc::operation_failed, "PEM_write_bio_X509");
    }
    char* data = nullptr;
    const long len = BIO_get_mem_data(bio.get(), &data);
    const ByteView cert_pem(reinterpret_cast<const std::uint8_t*>(data),
                            static_cast<std::size_t>(len));
    // The certificate first: a failure between the two renames leaves the old
    // key with a certificate that load() reports as a mismatch, never a new
    // key that nothing vouches for.
    if (auto s = write_file_atomic(cert_path, cert_pem, 0644); !s) {
        return s;
    }
    return write_file_atomic(key_path, pem->view(), 0600);
}

Result<crypto::X509Ptr> load_certificate(const fs::path& file) {
    auto text = read_file(file, 1U << 20U);
    if (!text) {
        return tl::unexpected(text.error());
    }
    crypto::BioPtr bio(BIO_new_mem_buf(text->data(), static_cast<int>(text->size())));
    crypto::X509Ptr cert(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
    if (!cert) {
        (void)crypto::drain_openssl_errors();
        return fail(Errc::invalid_certificate, file.string() + " is not a PEM certificate");
    }
    return cert;
}

Result<Identity> load(const fs::path& dir) {
    const fs::path key_path = dir / k_key_file;
    struct stat st {};
    if (::stat(key_path.c_str(), &st) != 0) {
        return fail(Errc::io_error, "no identity at " + dir.string() + " (missing " +
                                        key_path.string() + "); create one with pqmcp keygen");
    }
    if ((st.st_mode & 077U) != 0) {
        return fail(Errc::invalid_key,
                    key_path.string() + " is readable by group or others; chmod 600 it");
    }
    auto key_pem = read_secret_file(key_path, 64U << 10U);
    if (!key_pem) {
        return tl::unexpected(key_pem.error());
    }
    auto key = crypto::load_private_key_pem(key_pem->view());
    if (!key) {
        return fail(Errc::invalid_key, key_path.string() +
                                           " is not an unencrypted PKCS#8 PEM private key (" +
                                           key.error().detail + ")");
    }
    auto alg = crypto::signature_algorithm_of(key->get());
    if (!alg) {
        return fail(Errc::unsupported_algorithm,
                    key_path.string() + " holds an unsupported key type");
    }
    auto cert = load_certificate(dir / k_cert_file);
    if (!cert) {
        return tl::unexpected(cert.error());
    }
    if (X509_check_private_key(cert->get(), key->get()) != 1) {
        (void)crypto::drain_openssl_errors();
        return fail(Errc::key_mismatch, (dir / k_cert_file).string() +
                                            " does not carry the public key of " +
                                            key_path.string());
    }
    auto id = PeerId::of_key(key->get());
    if (!id) {
        return tl::unexpected(id.error());
    }
    return Identity{std::move(*key), std::move(*cert), *alg, std::move(*id)};
}

Result<Identity> load_or_create(const fs::path& dir, const KeygenOptions& options) {
    if (fs::exists(dir / k_key_file) || fs::exists(dir / k_cert_file)) {
        return load(dir);
    }
    auto id = generate(options);
    if (!id) {
        return id;
    }
    if (auto s = save(*id, dir, false); !s) {
        return tl::unexpected(s.error());
    }
    return id;
}

Result<PeerId> peer_id_of_path(const fs::path& path) {
    std::error_code ec;
    if (fs::is_directory(path, ec)) {
        auto cert = load_certificate(path / k_cert_file);
        if (!cert) {
            return tl::unexpected(cert.error());
        }
        return PeerId::of_certificate(cert->get());
    }
    auto cert = load_certificate(path);
    if (!cert) {
        return tl::unexpected(cert.error());
    }
    return PeerId::of_certificate(cert->get());
}

}  // namespace pqmcp::identity
