// Unit and negative tests of the crypto wrappers: round trips, determinism,
// context strings, the specific error of every rejected input, secrets, key
// encodings, hashes, and the core byte encodings they rely on.
#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <string>
#include <utility>
#include <vector>

#include <openssl/evp.h>

#include "pqmcp/core/bytes.hpp"
#include "pqmcp/crypto/aead.hpp"
#include "pqmcp/crypto/algorithms.hpp"
#include "pqmcp/crypto/errors.hpp"
#include "pqmcp/crypto/mlkem.hpp"
#include "pqmcp/crypto/rsa.hpp"
#include "pqmcp/crypto/secret.hpp"
#include "pqmcp/crypto/signature.hpp"
#include "pqmcp/crypto/util.hpp"
#include "pqmcp/crypto/x25519.hpp"

namespace {

using namespace pqmcp;          // NOLINT(google-build-using-namespace)
using namespace pqmcp::crypto;  // NOLINT(google-build-using-namespace)

constexpr std::array<KemAlg, 3> k_kems{KemAlg::ml_kem_512, KemAlg::ml_kem_768, KemAlg::ml_kem_1024};
constexpr std::array<SigAlg, 6> k_sigs{SigAlg::ml_dsa_44, SigAlg::ml_dsa_65,  SigAlg::ml_dsa_87,
                                       SigAlg::ed25519,   SigAlg::ecdsa_p256, SigAlg::rsa_3072_pss};
constexpr std::array<SigAlg, 3> k_ml_dsas{SigAlg::ml_dsa_44, SigAlg::ml_dsa_65, SigAlg::ml_dsa_87};

// The result is an error carrying exactly `want`.
template <typename R>
::testing::AssertionResult fails_with(const R& result, Errc want) {
    if (result) {
        return ::testing::AssertionFailure()
               << "succeeded, want " << make_error_code(want).message();
    }
    if (result.error().code != make_error_code(want)) {
        return ::testing::AssertionFailure() << "failed with '" << result.error().message()
                                             << "', want " << make_error_code(want).message();
    }
    return ::testing::AssertionSuccess();
}

Bytes bytes_of(std::string_view s) {
    const ByteView v = as_bytes(s);
    return {v.begin(), v.end()};
}

Bytes filled(std::size_t n, std::uint8_t value) {
    return Bytes(n, value);
}

// Every test leaves OpenSSL's thread-local error queue empty: wrappers drain it
// into the Error they return.
class Crypto : public ::testing::Test {
  protected:
    void TearDown() override { EXPECT_EQ(drain_openssl_errors(), ""); }
};

// ---------------------------------------------------------------------------
// ML-KEM

TEST_F(Crypto, MlKemRoundTripEveryParameterSet) {
    for (const KemAlg alg : k_kems) {
        SCOPED_TRACE(std::string(cli_name(alg)));
        const KemSizes sizes = kem_sizes(alg);
        auto key = mlkem_generate(alg);
        ASSERT_TRUE(key) << key.error().message();

        auto ek = mlkem_public_bytes(key->get());
        auto dk = mlkem_private_bytes(key->get());
        ASSERT_TRUE(ek && dk);
        EXPECT_EQ(ek->size(), sizes.encapsulation_key);
        EXPECT_EQ(dk->size(), sizes.decapsulation_key);

        // Encapsulate to an imported public key, decapsulate with an imported
        // private key: both halves survive their byte encodings.
        auto pub = mlkem_public_key(alg, *ek);
        ASSERT_TRUE(pub) << pub.error().message();
        auto enc = mlkem_encapsulate(pub->get());
        ASSERT_TRUE(enc) << enc.error().message();
        EXPECT_EQ(enc->ciphertext.size(), sizes.ciphertext);
        EXPECT_EQ(enc->shared_secret.size(), sizes.shared_secret);

        auto prv = mlkem_private_key(alg, dk->view());
        ASSERT_TRUE(prv) << prv.error().message();
        auto k1 = mlkem_decapsulate(prv->get(), enc->ciphertext);
        auto k2 = mlkem_decapsulate(key->get(), enc->ciphertext);
        ASSERT_TRUE(k1 && k2);
        EXPECT_TRUE(*k1 == enc->shared_secret);
        EXPECT_TRUE(*k2 == enc->shared_secret);

        // Fresh randomness each time.
        auto enc2 = mlkem_encapsulate(pub->get());
        ASSERT_TRUE(enc2);
        EXPECT_NE(enc2->ciphertext, enc->ciphertext);
        EXPECT_FALSE(enc2->shared_secret == enc->shared_secret);
    }
}

TEST_F(Crypto, MlKemSeedIsDeterministic) {
    const Bytes seed = filled(64, 0x42);
    auto a = mlkem_generate_from_seed(KemAlg::ml_kem_768, seed);
    auto b = mlkem_generate_from_seed(KemAlg::ml_kem_768, seed);
    auto c = mlkem_generate_from_seed(KemAlg::ml_kem_768, filled(64, 0x43));
    ASSERT_TRUE(a && b && c);
    EXPECT_EQ(*mlkem_public_bytes(a->get()), *mlkem_public_bytes(b->get()));
    EXPECT_TRUE(*mlkem_private_bytes(a->get()) == *mlkem_private_bytes(b->get()));
    EXPECT_NE(*mlkem_public_bytes(a->get()), *mlkem_public_bytes(c->get()));

    // Encaps_internal with the same m is deterministic too.
    const Bytes m = filled(32, 0x07);
    auto e1 = mlkem_encapsulate_derand(a->get(), m);
    auto e2 = mlkem_encapsulate_derand(b->get(), m);
    ASSERT_TRUE(e1 && e2);
    EXPECT_EQ(e1->ciphertext, e2->ciphertext);
    EXPECT_TRUE(e1->shared_secret == e2->shared_secret);
}

TEST_F(Crypto, MlKemImplicitRejection) {
    auto key = mlkem_generate(KemAlg::ml_kem_768);
    ASSERT_TRUE(key);
    auto enc = mlkem_encapsulate(key->get());
    ASSERT_TRUE(enc);
    Bytes tampered = enc->ciphertext;
    tampered[17] ^= 0x01;
    // A right-length but wrong ciphertext is not an error: it yields the
    // pseudorandom rejection secret, the same one every time.
    auto k1 = mlkem_decapsulate(key->get(), tampered);
    auto k2 = mlkem_decapsulate(key->get(), tampered);
    ASSERT_TRUE(k1 && k2);
    EXPECT_EQ(k1->size(), 32U);
    EXPECT_FALSE(*k1 == enc->shared_secret);
    EXPECT_TRUE(*k1 == *k2);
}

TEST_F(Crypto, MlKemWrongLengthsGiveSpecificErrors) {
    const KemSizes s = kem_sizes(KemAlg::ml_kem_768);
    EXPECT_TRUE(fails_with(mlkem_generate_from_seed(KemAlg::ml_kem_768, filled(63, 1)),
                           Errc::invalid_argument));
    EXPECT_TRUE(
        fails_with(mlkem_generate_from_seed(KemAlg::ml_kem_768, {}), Errc::invalid_argument));
    EXPECT_TRUE(fails_with(mlkem_public_key(KemAlg::ml_kem_768, filled(s.encapsulation_key - 1, 0)),
                           Errc::invalid_key));
    // ML-KEM-512's size is not ML-KEM-768's.
    EXPECT_TRUE(
        fails_with(mlkem_public_key(KemAlg::ml_kem_768,
                                    filled(kem_sizes(KemAlg::ml_kem_512).encapsulation_key, 0)),
                   Errc::invalid_key));
    EXPECT_TRUE(
        fails_with(mlkem_private_key(KemAlg::ml_kem_768, filled(s.decapsulation_key + 1, 0)),
                   Errc::invalid_key));

    auto key = mlkem_generate(KemAlg::ml_kem_768);
    ASSERT_TRUE(key);
    EXPECT_TRUE(fails_with(mlkem_decapsulate(key->get(), filled(s.ciphertext - 1, 0)),
                           Errc::invalid_argument));
    EXPECT_TRUE(fails_with(mlkem_decapsulate(key->get(), {}), Errc::invalid_argument));
    EXPECT_TRUE(
        fails_with(mlkem_encapsulate_derand(key->get(), filled(31, 0)), Errc::invalid_argument));
}

TEST_F(Crypto, MlKemRejectsBadKeys) {
    // Every coefficient 0xFFF >= q fails the FIPS 203 modulus check.
    EXPECT_TRUE(
        fails_with(mlkem_public_key(KemAlg::ml_kem_768, filled(1184, 0xFF)), Errc::invalid_key));
    auto key = mlkem_generate(KemAlg::ml_kem_768);
    ASSERT_TRUE(key);
    auto dk = mlkem_private_bytes(key->get());
    ASSERT_TRUE(dk);
    // Corrupt H(ek) inside dk: the hash check fails.
    SecretBytes bad(dk->view());
    bad.data()[768 * 3 + 32 + 5] ^= 0x80;
    EXPECT_TRUE(fails_with(mlkem_private_key(KemAlg::ml_kem_768, bad.view()), Errc::invalid_key));

    // Decapsulation needs the private half; other key types are refused.
    auto pub = mlkem_public_key(KemAlg::ml_kem_768, *mlkem_public_bytes(key->get()));
    ASSERT_TRUE(pub);
    EXPECT_TRUE(fails_with(mlkem_decapsulate(pub->get(), filled(1088, 0)), Errc::invalid_key));
    EXPECT_TRUE(fails_with(mlkem_private_bytes(pub->get()), Errc::invalid_key));
    auto ed = generate_signing_key(SigAlg::ed25519);
    ASSERT_TRUE(ed);
    EXPECT_TRUE(fails_with(mlkem_encapsulate(ed->get()), Errc::invalid_key));
    EXPECT_TRUE(fails_with(mlkem_decapsulate(ed->get(), filled(1088, 0)), Errc::invalid_key));
    EXPECT_TRUE(fails_with(mlkem_public_bytes(ed->get()), Errc::invalid_key));
    EXPECT_TRUE(fails_with(mlkem_encapsulate(nullptr), Errc::invalid_key));
}

// ---------------------------------------------------------------------------
// Signatures

TEST_F(Crypto, SignVerifyRoundTripEveryAlgorithm) {
    const Bytes msg = bytes_of("tools/list from peer abc");
    for (const SigAlg alg : k_sigs) {
        SCOPED_TRACE(std::string(cli_name(alg)));
        auto key = generate_signing_key(alg);
        ASSERT_TRUE(key) << key.error().message();
        EXPECT_EQ(signature_algorithm_of(key->get()), alg);

        auto sig = sign(key->get(), msg);
        ASSERT_TRUE(sig) << sig.error().message();
        if (is_ml_dsa(alg)) {
            EXPECT_EQ(sig->size(), ml_dsa_sizes(alg).signature);
        }
        auto ok = verify(key->get(), msg, *sig);
        EXPECT_TRUE(ok) << ok.error().message();

        // Verification with only the public key, after a DER round trip.
        auto der = public_key_der(key->get());
        ASSERT_TRUE(der);
        const unsigned char* p = der->data();
        PkeyPtr pub(d2i_PUBKEY(nullptr, &p, static_cast<long>(der->size())));
        ASSERT_TRUE(pub);
        EXPECT_TRUE(verify(pub.get(), msg, *sig));
        EXPECT_TRUE(fails_with(sign(pub.get(), msg), Errc::invalid_key));

        Bytes other = msg;
        other.back() ^= 0x01;
        EXPECT_TRUE(fails_with(verify(pub.get(), other, *sig), Errc::signature_invalid));
        Bytes bad_sig = *sig;
        bad_sig[bad_sig.size() / 2] ^= 0x01;
        EXPECT_TRUE(fails_with(verify(pub.get(), msg, bad_sig), Errc::signature_invalid));
        EXPECT_TRUE(fails_with(verify(pub.get(), msg, {}), Errc::signature_invalid));

        // Empty messages are messages too.
        auto empty_sig = sign(key->get(), {});
        ASSERT_TRUE(empty_sig);
        EXPECT_TRUE(verify(pub.get(), {}, *empty_sig));
    }
}

TEST_F(Crypto, MlDsaSeedIsDeterministic) {
    const Bytes seed = filled(32, 0x2a);
    auto a = mldsa_generate_from_seed(SigAlg::ml_dsa_65, seed);
    auto b = mldsa_generate_from_seed(SigAlg::ml_dsa_65, seed);
    auto c = mldsa_generate_from_seed(SigAlg::ml_dsa_65, filled(32, 0x2b));
    ASSERT_TRUE(a && b && c);
    EXPECT_EQ(*raw_public_bytes(a->get()), *raw_public_bytes(b->get()));
    EXPECT_NE(*raw_public_bytes(a->get()), *raw_public_bytes(c->get()));
    EXPECT_EQ(raw_public_bytes(a->get())->size(), ml_dsa_sizes(SigAlg::ml_dsa_65).public_key);
}

TEST_F(Crypto, MlDsaDeterministicAndHedged) {
    const Bytes msg = bytes_of("hello");
    for (const SigAlg alg : k_ml_dsas) {
        SCOPED_TRACE(std::string(cli_name(alg)));
        auto key = generate_signing_key(alg);
        ASSERT_TRUE(key);
        SignOptions det;
        det.deterministic = true;
        auto d1 = sign(key->get(), msg, det);
        auto d2 = sign(key->get(), msg, det);
        ASSERT_TRUE(d1 && d2);
        EXPECT_EQ(*d1, *d2);

        auto h1 = sign(key->get(), msg);
        auto h2 = sign(key->get(), msg);
        ASSERT_TRUE(h1 && h2);
        EXPECT_NE(*h1, *h2);
        EXPECT_NE(*h1, *d1);
        EXPECT_TRUE(verify(key->get(), msg, *h1));
        EXPECT_TRUE(verify(key->get(), msg, *h2));
        EXPECT_TRUE(verify(key->get(), msg, *d1));

        // A fixed rnd is reproducible and differs from rnd = 0^32.
        const Bytes rnd = filled(32, 0x99);
        SignOptions fixed;
        fixed.test_rnd = rnd;
        auto f1 = sign(key->get(), msg, fixed);
        auto f2 = sign(key->get(), msg, fixed);
        ASSERT_TRUE(f1 && f2);
        EXPECT_EQ(*f1, *f2);
        EXPECT_NE(*f1, *d1);
        EXPECT_TRUE(verify(key->get(), msg, *f1));
    }
}

TEST_F(Crypto, MlDsaContextStrings) {
    auto key = generate_signing_key(SigAlg::ml_dsa_65);
    ASSERT_TRUE(key);
    const Bytes msg = bytes_of("message");
    const Bytes ctx_a = bytes_of("pqmcp/tool-list/v1");
    const Bytes ctx_b = bytes_of("pqmcp/audit/v1");
    SignOptions options;
    options.context = ctx_a;
    auto sig = sign(key->get(), msg, options);
    ASSERT_TRUE(sig);
    EXPECT_TRUE(verify(key->get(), msg, *sig, ctx_a));
    EXPECT_TRUE(fails_with(verify(key->get(), msg, *sig, ctx_b), Errc::signature_invalid));
    EXPECT_TRUE(fails_with(verify(key->get(), msg, *sig), Errc::signature_invalid));

    // Without a context, verifying with one fails the other way round too.
    auto plain = sign(key->get(), msg);
    ASSERT_TRUE(plain);
    EXPECT_TRUE(fails_with(verify(key->get(), msg, *plain, ctx_a), Errc::signature_invalid));

    // 255 bytes is the longest context FIPS 204 allows; 256 is an error.
    const Bytes longest = filled(255, 0x41);
    const Bytes too_long = filled(256, 0x41);
    options.context = longest;
    auto sig255 = sign(key->get(), msg, options);
    ASSERT_TRUE(sig255);
    EXPECT_TRUE(verify(key->get(), msg, *sig255, longest));
    options.context = too_long;
    EXPECT_TRUE(fails_with(sign(key->get(), msg, options), Errc::invalid_argument));
    EXPECT_TRUE(fails_with(verify(key->get(), msg, *sig255, too_long), Errc::invalid_argument));
}

TEST_F(Crypto, MlDsaExternalMu) {
    // Signing mu directly is ML-DSA.Sign_internal; the result verifies as a
    // signature over some message only if mu was computed from it, so here we
    // just check shape, determinism and argument checks.
    auto key = mldsa_generate_from_seed(SigAlg::ml_dsa_44, filled(32, 1));
    ASSERT_TRUE(key);
    const Bytes mu = filled(64, 0x5a);
    auto s1 = mldsa_sign_mu(key->get(), mu, true);
    auto s2 = mldsa_sign_mu(key->get(), mu, true);
    ASSERT_TRUE(s1 && s2);
    EXPECT_EQ(*s1, *s2);
    EXPECT_EQ(s1->size(), ml_dsa_sizes(SigAlg::ml_dsa_44).signature);
    EXPECT_TRUE(fails_with(mldsa_sign_mu(key->get(), filled(63, 0), true), Errc::invalid_argument));
    auto ed = generate_signing_key(SigAlg::ed25519);
    ASSERT_TRUE(ed);
    EXPECT_TRUE(fails_with(mldsa_sign_mu(ed->get(), mu, true), Errc::invalid_key));
}

TEST_F(Crypto, SignatureWrongLengthsGiveSpecificErrors) {
    for (const SigAlg alg : k_ml_dsas) {
        SCOPED_TRACE(std::string(cli_name(alg)));
        const MlDsaSizes s = ml_dsa_sizes(alg);
        EXPECT_TRUE(
            fails_with(mldsa_generate_from_seed(alg, filled(31, 0)), Errc::invalid_argument));
        EXPECT_TRUE(
            fails_with(mldsa_generate_from_seed(alg, filled(33, 0)), Errc::invalid_argument));
        EXPECT_TRUE(
            fails_with(mldsa_public_key(alg, filled(s.public_key - 1, 0)), Errc::invalid_key));
        EXPECT_TRUE(
            fails_with(mldsa_private_key(alg, filled(s.private_key + 1, 0)), Errc::invalid_key));

        auto key = generate_signing_key(alg);
        ASSERT_TRUE(key);
        auto sig = sign(key->get(), bytes_of("m"));
        ASSERT_TRUE(sig);
        Bytes longer = *sig;
        longer.push_back(0);
        EXPECT_TRUE(fails_with(verify(key->get(), bytes_of("m"), longer), Errc::signature_invalid));
        SignOptions bad_rnd;
        const Bytes rnd = filled(31, 0);
        bad_rnd.test_rnd = rnd;
        EXPECT_TRUE(fails_with(sign(key->get(), bytes_of("m"), bad_rnd), Errc::invalid_argument));
    }
    EXPECT_TRUE(fails_with(mldsa_generate_from_seed(SigAlg::ed25519, filled(32, 0)),
                           Errc::invalid_argument));
    EXPECT_TRUE(fails_with(ed25519_public_key(filled(31, 0)), Errc::invalid_key));
    EXPECT_TRUE(fails_with(ed25519_private_key(filled(33, 0)), Errc::invalid_key));

    auto ed = generate_signing_key(SigAlg::ed25519);
    ASSERT_TRUE(ed);
    auto sig = sign(ed->get(), bytes_of("m"));
    ASSERT_TRUE(sig);
    EXPECT_EQ(sig->size(), 64U);
    sig->pop_back();
    EXPECT_TRUE(fails_with(verify(ed->get(), bytes_of("m"), *sig), Errc::signature_invalid));
}

TEST_F(Crypto, ClassicalSignaturesRefuseMlDsaOptions) {
    const Bytes ctx = bytes_of("ctx");
    for (const SigAlg alg : {SigAlg::ed25519, SigAlg::ecdsa_p256}) {
        SCOPED_TRACE(std::string(cli_name(alg)));
        auto key = generate_signing_key(alg);
        ASSERT_TRUE(key);
        SignOptions options;
        options.context = ctx;
        EXPECT_TRUE(fails_with(sign(key->get(), bytes_of("m"), options), Errc::invalid_argument));
        auto sig = sign(key->get(), bytes_of("m"));
        ASSERT_TRUE(sig);
        EXPECT_TRUE(
            fails_with(verify(key->get(), bytes_of("m"), *sig, ctx), Errc::invalid_argument));
    }
}

TEST_F(Crypto, Ed25519KeysFromBytes) {
    // RFC 8032 section 7.1, TEST 1.
    const auto sk = from_hex("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60");
    const auto pk = from_hex("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a");
    const auto want = from_hex(
        "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701c"
        "f9b4"
        "6bd25bf5f0595bbe24655141438e7a100b");
    ASSERT_TRUE(sk && pk && want);
    auto key = ed25519_private_key(*sk);
    ASSERT_TRUE(key);
    EXPECT_EQ(*raw_public_bytes(key->get()), *pk);
    auto sig = sign(key->get(), {});
    ASSERT_TRUE(sig);
    EXPECT_EQ(*sig, *want);
    auto pub = ed25519_public_key(*pk);
    ASSERT_TRUE(pub);
    EXPECT_TRUE(verify(pub->get(), {}, *sig));
}

TEST_F(Crypto, SigningNeedsAPrivateKeyOfOurs) {
    auto x = x25519_generate();
    ASSERT_TRUE(x);
    EXPECT_FALSE(signature_algorithm_of(x->get()).has_value());
    EXPECT_FALSE(signature_algorithm_of(nullptr).has_value());
    EXPECT_TRUE(fails_with(sign(x->get(), bytes_of("m")), Errc::invalid_key));
    EXPECT_TRUE(fails_with(verify(x->get(), bytes_of("m"), filled(64, 0)), Errc::invalid_key));

    auto key = generate_signing_key(SigAlg::ml_dsa_65);
    ASSERT_TRUE(key);
    auto pub = mldsa_public_key(SigAlg::ml_dsa_65, *raw_public_bytes(key->get()));
    ASSERT_TRUE(pub);
    EXPECT_TRUE(fails_with(sign(pub->get(), bytes_of("m")), Errc::invalid_key));
    EXPECT_TRUE(fails_with(mldsa_sign_mu(pub->get(), filled(64, 0), true), Errc::invalid_key));

    // A P-384 key is EC but not ours.
    PkeyPtr p384(EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-384"));
    ASSERT_TRUE(p384);
    EXPECT_FALSE(signature_algorithm_of(p384.get()).has_value());
}

// ---------------------------------------------------------------------------
// X25519 and RSA

TEST_F(Crypto, X25519Agreement) {
    auto a = x25519_generate();
    auto b = x25519_generate();
    ASSERT_TRUE(a && b);
    auto a_pub = x25519_public_key(*raw_public_bytes(a->get()));
    auto b_pub = x25519_public_key(*raw_public_bytes(b->get()));
    ASSERT_TRUE(a_pub && b_pub);
    auto ab = x25519_derive(a->get(), b_pub->get());
    auto ba = x25519_derive(b->get(), a_pub->get());
    ASSERT_TRUE(ab && ba);
    EXPECT_EQ(ab->size(), 32U);
    EXPECT_TRUE(*ab == *ba);
}

TEST_F(Crypto, X25519Rfc7748Vector) {
    // RFC 7748 section 6.1.
    auto alice = x25519_private_key(
        *from_hex("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a"));
    auto bob_pub = x25519_public_key(
        *from_hex("de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f"));
    ASSERT_TRUE(alice && bob_pub);
    EXPECT_EQ(to_hex(*raw_public_bytes(alice->get())),
              "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a");
    auto k = x25519_derive(alice->get(), bob_pub->get());
    ASSERT_TRUE(k);
    EXPECT_EQ(to_hex(k->view()),
              "4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742");
}

TEST_F(Crypto, X25519Errors) {
    EXPECT_TRUE(fails_with(x25519_private_key(filled(31, 1)), Errc::invalid_key));
    EXPECT_TRUE(fails_with(x25519_public_key(filled(33, 1)), Errc::invalid_key));
    auto a = x25519_generate();
    ASSERT_TRUE(a);
    // u = 0 is a low-order point: the shared secret would be all zero.
    auto zero = x25519_public_key(filled(32, 0));
    ASSERT_TRUE(zero);
    EXPECT_TRUE(fails_with(x25519_derive(a->get(), zero->get()), Errc::operation_failed));
    auto ml = mlkem_generate(KemAlg::ml_kem_512);
    ASSERT_TRUE(ml);
    EXPECT_TRUE(fails_with(x25519_derive(a->get(), ml->get()), Errc::invalid_key));
    EXPECT_TRUE(fails_with(x25519_derive(nullptr, a->get()), Errc::invalid_key));
}

TEST_F(Crypto, RsaOaep) {
    EXPECT_TRUE(fails_with(rsa_generate(1024), Errc::invalid_argument));
    auto key = rsa_generate(3072);
    ASSERT_TRUE(key) << key.error().message();
    EXPECT_EQ(signature_algorithm_of(key->get()), SigAlg::rsa_3072_pss);
    const Bytes secret = filled(32, 0x11);
    auto ct = rsa_oaep_encrypt(key->get(), secret);
    ASSERT_TRUE(ct) << ct.error().message();
    EXPECT_EQ(ct->size(), 384U);
    auto pt = rsa_oaep_decrypt(key->get(), *ct);
    ASSERT_TRUE(pt) << pt.error().message();
    EXPECT_TRUE(pt->equals(secret));

    // OAEP is randomised.
    auto ct2 = rsa_oaep_encrypt(key->get(), secret);
    ASSERT_TRUE(ct2);
    EXPECT_NE(*ct, *ct2);

    // 384 - 2 * 32 - 2 = 318 bytes is the most OAEP-SHA256 carries.
    EXPECT_TRUE(rsa_oaep_encrypt(key->get(), filled(318, 1)));
    EXPECT_TRUE(fails_with(rsa_oaep_encrypt(key->get(), filled(319, 1)), Errc::invalid_argument));
    EXPECT_TRUE(fails_with(rsa_oaep_decrypt(key->get(), filled(383, 1)), Errc::invalid_argument));
    Bytes tampered = *ct;
    tampered[100] ^= 0x01;
    EXPECT_TRUE(fails_with(rsa_oaep_decrypt(key->get(), tampered), Errc::operation_failed));
    auto ed = generate_signing_key(SigAlg::ed25519);
    ASSERT_TRUE(ed);
    EXPECT_TRUE(fails_with(rsa_oaep_encrypt(ed->get(), secret), Errc::invalid_key));
}

// ---------------------------------------------------------------------------
// SecretBytes

TEST(SecretBytes, MoveCleansesTheSource) {
    SecretBytes a(as_bytes("top secret"));
    EXPECT_EQ(a.size(), 10U);
    SecretBytes b(std::move(a));
    EXPECT_TRUE(a.empty());  // NOLINT(bugprone-use-after-move): checking the moved-from state
    EXPECT_EQ(a.size(), 0U);
    EXPECT_TRUE(b.equals(as_bytes("top secret")));

    SecretBytes c(as_bytes("other"));
    c = std::move(b);
    EXPECT_TRUE(b.empty());  // NOLINT(bugprone-use-after-move)
    EXPECT_TRUE(c.equals(as_bytes("top secret")));
}

TEST(SecretBytes, ConstantTimeEquality) {
    const SecretBytes a(as_bytes("abcdef"));
    const SecretBytes b(as_bytes("abcdef"));
    const SecretBytes c(as_bytes("abcdeg"));
    EXPECT_TRUE(a == b);
    EXPECT_FALSE(a == c);
    EXPECT_FALSE(a.equals(as_bytes("abcde")));  // different size
    EXPECT_TRUE(SecretBytes().equals({}));
    EXPECT_FALSE(SecretBytes().equals(as_bytes("x")));
}

TEST(SecretBytes, TruncateAndClear) {
    SecretBytes s(as_bytes("0123456789"));
    s.truncate(4);
    EXPECT_TRUE(s.equals(as_bytes("0123")));
    s.truncate(10);  // never grows
    EXPECT_EQ(s.size(), 4U);
    s.clear();
    EXPECT_TRUE(s.empty());
    SecretBytes zeros(8);
    EXPECT_TRUE(zeros.equals(Bytes(8, 0)));
}

// ---------------------------------------------------------------------------
// Key encodings, hashes, randomness

std::string pem_of_der(std::string_view label, const Bytes& der) {
    std::string b64(4 * ((der.size() + 2) / 3) + 1, '\0');
    const int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(b64.data()), der.data(),
                                  static_cast<int>(der.size()));
    b64.resize(static_cast<std::size_t>(n));
    std::string pem = "-----BEGIN " + std::string(label) + "-----\n";
    for (std::size_t i = 0; i < b64.size(); i += 64) {
        pem += b64.substr(i, 64) + "\n";
    }
    return pem + "-----END " + std::string(label) + "-----\n";
}

TEST_F(Crypto, PemAndDerRoundTrip) {
    std::vector<PkeyPtr> keys;
    for (const SigAlg alg : k_sigs) {
        auto key = generate_signing_key(alg);
        ASSERT_TRUE(key);
        keys.push_back(std::move(*key));
    }
    for (const KemAlg alg : k_kems) {
        auto key = mlkem_generate(alg);
        ASSERT_TRUE(key);
        keys.push_back(std::move(*key));
    }
    for (const PkeyPtr& key : keys) {
        SCOPED_TRACE(EVP_PKEY_get0_type_name(key.get()));
        auto der = public_key_der(key.get());
        ASSERT_TRUE(der) << der.error().message();
        auto pem = private_key_pem(key.get());
        ASSERT_TRUE(pem) << pem.error().message();
        const std::string_view pem_text(reinterpret_cast<const char*>(pem->data()), pem->size());
        EXPECT_EQ(pem_text.substr(0, 27), "-----BEGIN PRIVATE KEY-----");

        auto loaded = load_private_key_pem(pem->view());
        ASSERT_TRUE(loaded) << loaded.error().message();
        EXPECT_EQ(*public_key_der(loaded->get()), *der);
        EXPECT_EQ(EVP_PKEY_eq(loaded->get(), key.get()), 1);

        auto pub = load_public_key_pem(as_bytes(pem_of_der("PUBLIC KEY", *der)));
        ASSERT_TRUE(pub) << pub.error().message();
        EXPECT_EQ(*public_key_der(pub->get()), *der);
    }
    EXPECT_TRUE(fails_with(load_private_key_pem(as_bytes("not a key")), Errc::invalid_key));
    EXPECT_TRUE(fails_with(load_public_key_pem(as_bytes("-----BEGIN PUBLIC KEY-----\nAAAA\n"
                                                        "-----END PUBLIC KEY-----\n")),
                           Errc::invalid_key));
}

TEST(Hashes, KnownAnswers) {
    EXPECT_EQ(to_hex(sha3_256({})),
              "a7ffc6f8bf1ed76651c14756a061d662f580ff4de43b49fa82d80a4b80f8434a");
    EXPECT_EQ(to_hex(sha3_256(as_bytes("abc"))),
              "3a985da74fe225b2045c172d6bd390bd855f086e3e9d525b46bfe24511431532");
    EXPECT_EQ(to_hex(sha256({})),
              "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    EXPECT_EQ(to_hex(sha256(as_bytes("abc"))),
              "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

TEST(Random, BytesAndSecrets) {
    auto a = random_bytes(32);
    auto b = random_bytes(32);
    ASSERT_TRUE(a && b);
    EXPECT_EQ(a->size(), 32U);
    EXPECT_NE(*a, *b);
    auto s = random_secret(48);
    ASSERT_TRUE(s);
    EXPECT_EQ(s->size(), 48U);
    auto none = random_bytes(0);
    ASSERT_TRUE(none);
    EXPECT_TRUE(none->empty());
}

TEST(OpensslInfo, OffersWhatWeUse) {
    const OpensslInfo info = openssl_info();
    EXPECT_EQ(info.version.substr(0, 11), "OpenSSL 3.5") << info.version;
    for (const char* kem : {"ML-KEM-512", "ML-KEM-768", "ML-KEM-1024", "X25519MLKEM768"}) {
        EXPECT_NE(std::find(info.kems.begin(), info.kems.end(), kem), info.kems.end()) << kem;
    }
    for (const char* sig : {"ML-DSA-44", "ML-DSA-65", "ML-DSA-87", "ED25519"}) {
        EXPECT_NE(std::find(info.signatures.begin(), info.signatures.end(), sig),
                  info.signatures.end())
            << sig;
    }
}

TEST(Algorithms, NamesRoundTrip) {
    for (const KemAlg alg : k_kems) {
        EXPECT_EQ(parse_kem_alg(cli_name(alg)), alg);
        EXPECT_EQ(parse_kem_alg(openssl_name(alg)), alg);
    }
    for (const SigAlg alg : k_sigs) {
        EXPECT_EQ(parse_sig_alg(cli_name(alg)), alg);
    }
    EXPECT_FALSE(parse_kem_alg("kyber768").has_value());
    EXPECT_FALSE(parse_sig_alg("dilithium3").has_value());
}

TEST(Errors, MessageNamesTheCategory) {
    const Error e{make_error_code(Errc::invalid_key), "ek has 3 bytes"};
    EXPECT_EQ(e.message(), "crypto: invalid key: ek has 3 bytes");
}

}  // namespace

namespace pqmcp::crypto {
namespace {

TEST(Sealer, OpensWhatItSealedAndNothingElse) {
    Sealer sealer;
    const std::string secret = R"({"jti":"abc","exp":1})";
    const std::string aad = "pq1caller\nrequest digest";
    auto token = sealer.seal(as_bytes(secret), as_bytes(aad));
    ASSERT_TRUE(token) << token.error().message();
    EXPECT_EQ(token->find(secret), std::string::npos);  // not readable
    auto opened = sealer.open(*token, as_bytes(aad));
    ASSERT_TRUE(opened) << opened.error().message();
    EXPECT_EQ(std::string(opened->begin(), opened->end()), secret);
    // Each seal draws a fresh nonce.
    EXPECT_NE(*sealer.seal(as_bytes(secret), as_bytes(aad)), *token);

    // Another caller or request (other associated data): refused.
    auto other = sealer.open(*token, as_bytes(std::string("pq1other\nrequest digest")));
    ASSERT_FALSE(other);
    EXPECT_EQ(other.error().code, make_error_code(Errc::signature_invalid));
    // Any character changed: refused.
    for (const std::size_t at :
         {std::size_t{0}, std::size_t{5}, token->size() / 2, token->size() - 1}) {
        std::string altered = *token;
        altered[at] = altered[at] == 'a' ? 'b' : 'a';
        auto r = sealer.open(altered, as_bytes(aad));
        EXPECT_FALSE(r) << "position " << at;
    }
    // Not a token at all.
    auto junk = sealer.open("not base32!", as_bytes(aad));
    ASSERT_FALSE(junk);
    EXPECT_EQ(junk.error().code, make_error_code(Errc::invalid_argument));
    EXPECT_FALSE(sealer.open("", as_bytes(aad)));
    // Another sealer's token (another key): refused.
    Sealer stranger;
    auto foreign = stranger.seal(as_bytes(secret), as_bytes(aad));
    ASSERT_TRUE(foreign);
    EXPECT_FALSE(sealer.open(*foreign, as_bytes(aad)));
}

Bytes hex(std::string_view text) {
    Bytes out;
    for (std::size_t i = 0; i + 1 < text.size(); i += 2) {
        out.push_back(
            static_cast<std::uint8_t>(std::stoi(std::string(text.substr(i, 2)), nullptr, 16)));
    }
    return out;
}

// RFC 5869 appendix A.1 (test case 1).
TEST(Hkdf, KnownAnswerRfc5869Case1) {
    const Bytes ikm(22, 0x0b);
    const Bytes salt = hex("000102030405060708090a0b0c");
    const Bytes info = hex("f0f1f2f3f4f5f6f7f8f9");
    auto okm = hkdf_sha256(ikm, salt, info, 42);
    ASSERT_TRUE(okm) << okm.error().message();
    EXPECT_TRUE(
        okm->equals(hex("3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf"
                        "34007208d5b887185865")));
}

// The GCM specification's test cases 13 and 14 (AES-256, zero key and IV).
TEST(SealWith, OpensTheGcmSpecificationVectors) {
    const SecretBytes key(Bytes(32, 0));
    Bytes empty = Bytes(12, 0);
    const Bytes tag13 = hex("530f8afbc74536b9a963b4f1c4cb738b");
    empty.insert(empty.end(), tag13.begin(), tag13.end());
    auto opened = open_with(key, empty, {});
    ASSERT_TRUE(opened) << opened.error().message();
    EXPECT_TRUE(opened->empty());

    Bytes sealed = Bytes(12, 0);
    for (const auto* part :
         {"cea7403d4d606b6e074ec5d3baf39d18", "d0d1c8a799996bf0265b98b5d48ab919"}) {
        const Bytes b = hex(part);
        sealed.insert(sealed.end(), b.begin(), b.end());
    }
    opened = open_with(key, sealed, {});
    ASSERT_TRUE(opened) << opened.error().message();
    EXPECT_EQ(*opened, Bytes(16, 0));
    sealed.back() ^= 1U;
    auto altered = open_with(key, sealed, {});
    ASSERT_FALSE(altered);
    EXPECT_EQ(altered.error().code, make_error_code(Errc::signature_invalid));
}

TEST(SealWith, BindsTheKeyAndTheAssociatedData) {
    auto key = random_secret(32);
    auto other = random_secret(32);
    ASSERT_TRUE(key && other);
    const std::string secret = "a refresh token";
    auto sealed = seal_with(*key, as_bytes(secret), as_bytes(std::string_view("for p")));
    ASSERT_TRUE(sealed);
    EXPECT_EQ(sealed->size(), 12 + secret.size() + 16);
    auto opened = open_with(*key, *sealed, as_bytes(std::string_view("for p")));
    ASSERT_TRUE(opened);
    EXPECT_EQ(std::string(opened->begin(), opened->end()), secret);
    EXPECT_FALSE(open_with(*other, *sealed, as_bytes(std::string_view("for p"))));
    EXPECT_FALSE(open_with(*key, *sealed, as_bytes(std::string_view("for q"))));
    auto short_one = open_with(*key, Bytes(27, 0), {});
    ASSERT_FALSE(short_one);
    EXPECT_EQ(short_one.error().code, make_error_code(Errc::invalid_argument));
    EXPECT_FALSE(seal_with(SecretBytes(Bytes(16, 1)), as_bytes(secret), {}));
}

TEST(DeriveKey, SameKeySamePurposeSameBytesAndNothingElse) {
    auto a = generate_signing_key(SigAlg::ml_dsa_65);
    auto b = generate_signing_key(SigAlg::ml_dsa_65);
    ASSERT_TRUE(a && b);
    auto k1 = derive_key(a->get(), "tokens");
    auto k2 = derive_key(a->get(), "tokens");
    auto other_purpose = derive_key(a->get(), "other");
    auto other_key = derive_key(b->get(), "tokens");
    ASSERT_TRUE(k1 && k2 && other_purpose && other_key);
    EXPECT_EQ(k1->size(), 32U);
    EXPECT_TRUE(*k1 == *k2);
    EXPECT_FALSE(*k1 == *other_purpose);
    EXPECT_FALSE(*k1 == *other_key);
    // From the raw key (not its encoding, which may change with OpenSSL's
    // output format settings): ML-DSA has one.
    std::size_t raw = 0;
    EXPECT_EQ(EVP_PKEY_get_raw_private_key(a->get(), nullptr, &raw), 1);
    EXPECT_GT(raw, 0U);
    // The same key saved and loaded again: the same derived key.
    auto pem = private_key_pem(a->get());
    ASSERT_TRUE(pem);
    auto reloaded = load_private_key_pem(pem->view());
    ASSERT_TRUE(reloaded);
    auto k3 = derive_key(reloaded->get(), "tokens");
    ASSERT_TRUE(k3);
    EXPECT_TRUE(*k1 == *k3);
    // A key without a raw form (ECDSA): from its encoding.
    auto ec = generate_signing_key(SigAlg::ecdsa_p256);
    ASSERT_TRUE(ec);
    auto e1 = derive_key(ec->get(), "tokens");
    auto e2 = derive_key(ec->get(), "tokens");
    ASSERT_TRUE(e1 && e2);
    EXPECT_TRUE(*e1 == *e2);
}

TEST(Sealer, ATokenOutlivesOneRotationNotTwo) {
    Sealer sealer;
    const std::string aad = "x";
    auto token = sealer.seal(as_bytes(std::string("state")), as_bytes(aad));
    ASSERT_TRUE(token);
    sealer.rotate();
    EXPECT_TRUE(sealer.open(*token, as_bytes(aad)));
    sealer.rotate();
    auto gone = sealer.open(*token, as_bytes(aad));
    ASSERT_FALSE(gone);
    EXPECT_EQ(gone.error().code, make_error_code(Errc::signature_invalid));
}

}  // namespace
}  // namespace pqmcp::crypto
