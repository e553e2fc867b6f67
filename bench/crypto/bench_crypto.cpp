// Crypto micro-benchmarks, all through the project's wrappers, so the numbers
// include what pqmcp adds on top of OpenSSL (size checks, context setup,
// OSSL_PARAM building, result types). bench/crypto/compare.sh sets them next
// to `openssl speed` from the same OpenSSL prefix.
//
// Names are "<algorithm>/<operation>"; compare.sh relies on them.
#include <benchmark/benchmark.h>

#include <string>
#include <utility>

#include "pqmcp/core/bytes.hpp"
#include "pqmcp/crypto/algorithms.hpp"
#include "pqmcp/crypto/mlkem.hpp"
#include "pqmcp/crypto/rsa.hpp"
#include "pqmcp/crypto/signature.hpp"
#include "pqmcp/crypto/x25519.hpp"

namespace {

using pqmcp::Bytes;
using pqmcp::crypto::KemAlg;
using pqmcp::crypto::PkeyPtr;
using pqmcp::crypto::SigAlg;

// A 32-byte message: what a handshake transcript hash or a tool-list digest
// looks like when it is signed.
const Bytes k_message(32, 0x5a);

// Unwraps a set-up result, or marks the benchmark as failed.
template <typename T>
bool setup(benchmark::State& state, pqmcp::Result<T>& result, const char* what) {
    if (!result) {
        state.SkipWithError((std::string(what) + ": " + result.error().message()).c_str());
        return false;
    }
    return true;
}

template <typename R>
bool ok(benchmark::State& state, const R& result) {
    if (!result) {
        state.SkipWithError(result.error().message().c_str());
        return false;
    }
    return true;
}

// --- KEMs -------------------------------------------------------------------

void kem_keygen(benchmark::State& state, KemAlg alg) {
    for (auto _ : state) {
        auto key = pqmcp::crypto::mlkem_generate(alg);
        if (!ok(state, key)) {
            break;
        }
        benchmark::DoNotOptimize(key->get());
    }
}

void kem_encaps(benchmark::State& state, KemAlg alg) {
    auto key = pqmcp::crypto::mlkem_generate(alg);
    if (!setup(state, key, "keygen")) {
        return;
    }
    auto ek = pqmcp::crypto::mlkem_public_bytes(key->get());
    if (!setup(state, ek, "export")) {
        return;
    }
    auto pub = pqmcp::crypto::mlkem_public_key(alg, *ek);
    if (!setup(state, pub, "import")) {
        return;
    }
    for (auto _ : state) {
        auto enc = pqmcp::crypto::mlkem_encapsulate(pub->get());
        if (!ok(state, enc)) {
            break;
        }
        benchmark::DoNotOptimize(enc->ciphertext.data());
    }
}

void kem_decaps(benchmark::State& state, KemAlg alg) {
    auto key = pqmcp::crypto::mlkem_generate(alg);
    if (!setup(state, key, "keygen")) {
        return;
    }
    auto enc = pqmcp::crypto::mlkem_encapsulate(key->get());
    if (!setup(state, enc, "encaps")) {
        return;
    }
    for (auto _ : state) {
        auto shared = pqmcp::crypto::mlkem_decapsulate(key->get(), enc->ciphertext);
        if (!ok(state, shared)) {
            break;
        }
        benchmark::DoNotOptimize(shared->data());
    }
}

void x25519_keygen(benchmark::State& state) {
    for (auto _ : state) {
        auto key = pqmcp::crypto::x25519_generate();
        if (!ok(state, key)) {
            break;
        }
        benchmark::DoNotOptimize(key->get());
    }
}

void x25519_derive(benchmark::State& state) {
    auto own = pqmcp::crypto::x25519_generate();
    auto peer = pqmcp::crypto::x25519_generate();
    if (!setup(state, own, "keygen") || !setup(state, peer, "keygen")) {
        return;
    }
    for (auto _ : state) {
        auto shared = pqmcp::crypto::x25519_derive(own->get(), peer->get());
        if (!ok(state, shared)) {
            break;
        }
        benchmark::DoNotOptimize(shared->data());
    }
}

void rsa_keygen(benchmark::State& state) {
    for (auto _ : state) {
        auto key = pqmcp::crypto::rsa_generate(3072);
        if (!ok(state, key)) {
            break;
        }
        benchmark::DoNotOptimize(key->get());
    }
}

void rsa_encrypt(benchmark::State& state) {
    auto key = pqmcp::crypto::rsa_generate(3072);
    if (!setup(state, key, "keygen")) {
        return;
    }
    const Bytes secret(32, 0x11);
    for (auto _ : state) {
        auto ct = pqmcp::crypto::rsa_oaep_encrypt(key->get(), secret);
        if (!ok(state, ct)) {
            break;
        }
        benchmark::DoNotOptimize(ct->data());
    }
}

void rsa_decrypt(benchmark::State& state) {
    auto key = pqmcp::crypto::rsa_generate(3072);
    if (!setup(state, key, "keygen")) {
        return;
    }
    auto ct = pqmcp::crypto::rsa_oaep_encrypt(key->get(), Bytes(32, 0x11));
    if (!setup(state, ct, "encrypt")) {
        return;
    }
    for (auto _ : state) {
        auto pt = pqmcp::crypto::rsa_oaep_decrypt(key->get(), *ct);
        if (!ok(state, pt)) {
            break;
        }
        benchmark::DoNotOptimize(pt->data());
    }
}

// --- Signatures -----------------------------------------------------------

void sig_sign(benchmark::State& state, SigAlg alg) {
    auto key = pqmcp::crypto::generate_signing_key(alg);
    if (!setup(state, key, "keygen")) {
        return;
    }
    for (auto _ : state) {
        auto sig = pqmcp::crypto::sign(key->get(), k_message);
        if (!ok(state, sig)) {
            break;
        }
        benchmark::DoNotOptimize(sig->data());
    }
}

void sig_verify(benchmark::State& state, SigAlg alg) {
    auto key = pqmcp::crypto::generate_signing_key(alg);
    if (!setup(state, key, "keygen")) {
        return;
    }
    auto sig = pqmcp::crypto::sign(key->get(), k_message);
    if (!setup(state, sig, "sign")) {
        return;
    }
    for (auto _ : state) {
        auto verdict = pqmcp::crypto::verify(key->get(), k_message, *sig);
        if (!ok(state, verdict)) {
            break;
        }
    }
}

std::string display_name(SigAlg alg) {
    switch (alg) {
        case SigAlg::ed25519:
            return "Ed25519";
        case SigAlg::ecdsa_p256:
            return "ECDSA-P256";
        case SigAlg::rsa_3072_pss:
            return "RSA-3072-PSS";
        default:
            return std::string(pqmcp::crypto::openssl_name(alg));
    }
}

void register_all() {
    for (const KemAlg alg : {KemAlg::ml_kem_768, KemAlg::ml_kem_1024}) {
        const std::string name(pqmcp::crypto::openssl_name(alg));
        benchmark::RegisterBenchmark((name + "/keygen").c_str(), kem_keygen, alg);
        benchmark::RegisterBenchmark((name + "/encaps").c_str(), kem_encaps, alg);
        benchmark::RegisterBenchmark((name + "/decaps").c_str(), kem_decaps, alg);
    }
    benchmark::RegisterBenchmark("X25519/keygen", x25519_keygen);
    benchmark::RegisterBenchmark("X25519/derive", x25519_derive);
    // RSA key generation is slow and its time varies a lot with the primes
    // found; a fixed minimum time keeps the run short and the mean honest.
    benchmark::RegisterBenchmark("RSA-3072-OAEP/keygen", rsa_keygen)->MinTime(2.0);
    benchmark::RegisterBenchmark("RSA-3072-OAEP/encrypt", rsa_encrypt);
    benchmark::RegisterBenchmark("RSA-3072-OAEP/decrypt", rsa_decrypt);
    for (const SigAlg alg : {SigAlg::ml_dsa_44, SigAlg::ml_dsa_65, SigAlg::ml_dsa_87,
                             SigAlg::ed25519, SigAlg::ecdsa_p256, SigAlg::rsa_3072_pss}) {
        const std::string name = display_name(alg);
        benchmark::RegisterBenchmark((name + "/sign").c_str(), sig_sign, alg);
        benchmark::RegisterBenchmark((name + "/verify").c_str(), sig_verify, alg);
    }
}

}  // namespace

int main(int argc, char** argv) {
    register_all();
    benchmark::Initialize(&argc, argv);
    if (benchmark::ReportUnrecognizedArguments(argc, argv)) {
        return 1;
    }
    benchmark::RunSpecifiedBenchmarks();
    benchmark::Shutdown();
    return 0;
}
