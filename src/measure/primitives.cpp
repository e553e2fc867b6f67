// Key exchanges and signatures, each operation timed through the project's
// crypto wrappers (what pqmcp itself calls), post-quantum beside classical.
#include <openssl/x509.h>

#include <algorithm>
#include <array>
#include <string>
#include <utility>

#include "pqmcp/core/bytes.hpp"
#include "pqmcp/crypto/algorithms.hpp"
#include "pqmcp/crypto/ecdh.hpp"
#include "pqmcp/crypto/mlkem.hpp"
#include "pqmcp/crypto/rsa.hpp"
#include "pqmcp/crypto/signature.hpp"
#include "pqmcp/crypto/x25519.hpp"
#include "pqmcp/measure/measure.hpp"
#include "rows.hpp"

namespace pqmcp::measure {
namespace {

using crypto::KemAlg;
using crypto::PkeyPtr;
using crypto::SigAlg;

// RSA key transport carries a 32-byte secret, as an ML-KEM shared secret is.
constexpr std::size_t k_secret_size = 32;
constexpr unsigned k_rsa_bits = 3072;

template <typename T>
Result<T> setup(Result<T> r, const std::string& what) {
    if (!r) {
        return fail(Errc::setup_failed, what + ": " + r.error().message());
    }
    return r;
}

Result<Row> kem_row(KemAlg alg, const Budget& budget, const Progress& progress) {
    Row row;
    row.name = std::string(crypto::openssl_name(alg));
    row.label = row.name;
    row.quantum_safe = true;
    auto key = setup(crypto::mlkem_generate(alg), row.name + " keygen");
    if (!key) {
        return tl::unexpected(key.error());
    }
    auto ek = setup(crypto::mlkem_public_bytes(key->get()), "export");
    if (!ek) {
        return tl::unexpected(ek.error());
    }
    auto pub = setup(crypto::mlkem_public_key(alg, *ek), "import");
    if (!pub) {
        return tl::unexpected(pub.error());
    }
    auto sample = setup(crypto::mlkem_encapsulate(pub->get()), "encaps");
    if (!sample) {
        return tl::unexpected(sample.error());
    }
    row.bytes = ek->size() + sample->ciphertext.size();
    row.note = "key share " + std::to_string(ek->size()) + " B + ciphertext " +
               std::to_string(sample->ciphertext.size()) + " B";
    RowBuilder b(budget, progress, row);
    auto s = b.part("keygen", 1, [alg] { return crypto::mlkem_generate(alg).has_value(); });
    if (s) {
        s = b.part("encaps", 1,
                   [&pub] { return crypto::mlkem_encapsulate(pub->get()).has_value(); });
    }
    if (s) {
        s = b.part("decaps", 1, [&key, &sample] {
            return crypto::mlkem_decapsulate(key->get(), sample->ciphertext).has_value();
        });
    }
    if (!s) {
        return tl::unexpected(s.error());
    }
    return row;
}

// Two key pairs and two derivations: both ends of one exchange.
Result<Row> dh_row(const std::string& name, const std::function<Result<PkeyPtr>()>& generate,
                   const std::function<bool(EVP_PKEY*, EVP_PKEY*)>& derive,
                   const std::function<Result<Bytes>(const EVP_PKEY*)>& share, const Budget& budget,
                   const Progress& progress) {
    Row row;
    row.name = name;
    row.label = name;
    auto a = setup(generate(), name + " keygen");
    auto b = setup(generate(), name + " keygen");
    if (!a || !b) {
        return tl::unexpected(a ? b.error() : a.error());
    }
    auto bytes = setup(share(a->get()), name + " share");
    if (!bytes) {
        return tl::unexpected(bytes.error());
    }
    row.bytes = 2 * bytes->size();
    row.note = "two key shares of " + std::to_string(bytes->size()) + " B";
    RowBuilder builder(budget, progress, row);
    auto s = builder.part("keygen", 2, [&generate] { return generate().has_value(); });
    if (s) {
        s = builder.part("derive", 2, [&] { return derive(a->get(), b->get()); });
    }
    if (!s) {
        return tl::unexpected(s.error());
    }
    return row;
}

std::size_t spki_size(EVP_PKEY* key) {
    const int n = i2d_PUBKEY(key, nullptr);
    return n > 0 ? static_cast<std::size_t>(n) : 0;
}

// RSA key transport: the server's long-term key encrypts nothing but a
// secret; its key generation is not part of an exchange.
Result<Row> rsa_row(const Budget& budget, const Progress& progress) {
    Row row;
    row.name = "RSA-3072";
    row.label = row.name;
    if (progress) {
        progress("RSA-3072 key generation (set-up, not timed)");
    }
    auto key = setup(crypto::rsa_generate(k_rsa_bits), "RSA-3072 keygen");
    if (!key) {
        return tl::unexpected(key.error());
    }
    const Bytes secret(k_secret_size, 0x5a);
    auto sample = setup(crypto::rsa_oaep_encrypt(key->get(), secret), "RSA-OAEP encrypt");
    if (!sample) {
        return tl::unexpected(sample.error());
    }
    const std::size_t pub = spki_size(key->get());
    row.bytes = pub + sample->size();
    row.note = "public key " + std::to_string(pub) + " B + ciphertext " +
               std::to_string(sample->size()) + " B (OAEP key transport)";
    RowBuilder b(budget, progress, row);
    auto s = b.part("encrypt", 1, [&key, &secret] {
        return crypto::rsa_oaep_encrypt(key->get(), secret).has_value();
    });
    if (s) {
        s = b.part("decrypt", 1, [&key, &sample] {
            return crypto::rsa_oaep_decrypt(key->get(), *sample).has_value();
        });
    }
    if (!s) {
        return tl::unexpected(s.error());
    }
    return row;
}

Result<Row> signature_row(SigAlg alg, const Budget& budget, const Progress& progress) {
    Row row;
    row.name = std::string(crypto::openssl_name(alg));
    switch (alg) {
        case SigAlg::ed25519:
            row.name = "Ed25519";
            break;
        case SigAlg::ecdsa_p256:
            row.name = "ECDSA P-256";
            break;
        case SigAlg::rsa_3072_pss:
            row.name = "RSA-3072";
            break;
        default:
            break;
    }
    row.label = row.name;
    row.quantum_safe = crypto::is_ml_dsa(alg);
    auto key = setup(crypto::generate_signing_key(alg), row.name + " keygen");
    if (!key) {
        return tl::unexpected(key.error());
    }
    // What a TLS CertificateVerify signs is built around a transcript hash.
    const Bytes message(k_secret_size, 0x5a);
    auto sample = setup(crypto::sign(key->get(), message), row.name + " sign");
    if (!sample) {
        return tl::unexpected(sample.error());
    }
    const std::size_t pub = spki_size(key->get());
    row.bytes = pub + sample->size();
    row.note = "public key " + std::to_string(pub) + " B + signature " +
               std::to_string(sample->size()) + " B";
    RowBuilder b(budget, progress, row);
    auto s = b.part("sign", 1,
                    [&key, &message] { return crypto::sign(key->get(), message).has_value(); });
    if (s) {
        s = b.part("verify", 1, [&key, &message, &sample] {
            return crypto::verify(key->get(), message, *sample).has_value();
        });
    }
    if (!s) {
        return tl::unexpected(s.error());
    }
    return row;
}

}  // namespace

Result<Section> key_exchanges(const Budget& budget, const Progress& progress) {
    Section section;
    section.id = "key_exchange";
    section.title = "Key exchange";
    section.time_meaning = "both ends of one exchange";
    section.bytes_meaning = "on the wire: key share or public key, plus ciphertext or reply";
    for (const KemAlg alg : {KemAlg::ml_kem_512, KemAlg::ml_kem_768, KemAlg::ml_kem_1024}) {
        auto row = kem_row(alg, budget, progress);
        if (!row) {
            return tl::unexpected(row.error());
        }
        section.rows.push_back(std::move(*row));
    }
    auto x25519 = dh_row(
        "X25519", [] { return crypto::x25519_generate(); },
        [](EVP_PKEY* a, EVP_PKEY* b) { return crypto::x25519_derive(a, b).has_value(); },
        [](const EVP_PKEY* k) { return crypto::raw_public_bytes(k); }, budget, progress);
    if (!x25519) {
        return tl::unexpected(x25519.error());
    }
    section.rows.push_back(std::move(*x25519));
    auto p256 = dh_row(
        "ECDH P-256", [] { return crypto::ecdh_p256_generate(); },
        [](EVP_PKEY* a, EVP_PKEY* b) { return crypto::ecdh_p256_derive(a, b).has_value(); },
        [](const EVP_PKEY* k) { return crypto::ec_public_point(k); }, budget, progress);
    if (!p256) {
        return tl::unexpected(p256.error());
    }
    section.rows.push_back(std::move(*p256));
    auto rsa = rsa_row(budget, progress);
    if (!rsa) {
        return tl::unexpected(rsa.error());
    }
    section.rows.push_back(std::move(*rsa));
    return section;
}

Result<Section> signatures(const Budget& budget, const Progress& progress) {
    Section section;
    section.id = "signatures";
    section.title = "Signatures";
    section.time_meaning = "one signature and its verification";
    section.bytes_meaning = "on the wire: public key (SubjectPublicKeyInfo) plus signature";
    for (const SigAlg alg : {SigAlg::ml_dsa_44, SigAlg::ml_dsa_65, SigAlg::ml_dsa_87,
                             SigAlg::ed25519, SigAlg::ecdsa_p256, SigAlg::rsa_3072_pss}) {
        auto row = signature_row(alg, budget, progress);
        if (!row) {
            return tl::unexpected(row.error());
        }
        section.rows.push_back(std::move(*row));
    }
    return section;
}

}  // namespace pqmcp::measure
