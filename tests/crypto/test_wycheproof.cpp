// Known-answer tests: every test case of every C2SP Wycheproof file under
// tests/data/wycheproof (source and licence in its README.md), run through the
// project's crypto wrappers. One generic runner per Wycheproof schema.
//
// For each case the runner reports whether all wrapper calls returned values
// ("accepted") or one returned an error value ("rejected", with its Errc), and
// whether every output the vector gives (K, ek, dk, c, sig, shared) matched.
//   valid       must be accepted with every output matching exactly;
//   invalid     must be rejected with an error value, with the specific Errc
//               where the vector's flags or comment say what is wrong (or, for
//               an ML-KEM decapsulation of a right-length ciphertext, return the
//               implicit-rejection K the vector gives);
//   acceptable  (x25519 only) may go either way; if accepted, the output must
//               still match. See run_xdh_comp for what each flag means.
#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <map>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <string_view>

#include <boost/json.hpp>

#include "pqmcp/core/bytes.hpp"
#include "pqmcp/crypto/algorithms.hpp"
#include "pqmcp/crypto/errors.hpp"
#include "pqmcp/crypto/mlkem.hpp"
#include "pqmcp/crypto/signature.hpp"
#include "pqmcp/crypto/x25519.hpp"
#include "test_paths.hpp"

namespace {

namespace json = boost::json;
using pqmcp::Bytes;
using pqmcp::ByteView;
using pqmcp::Error;
using pqmcp::crypto::Errc;

const std::filesystem::path k_dir =
    std::filesystem::path(pqmcp::test_paths::test_data_dir()) / "wycheproof";

// Every vector file in tests/data/wycheproof; VectorFiles.AllListed checks that
// none is left out.
constexpr std::array<std::string_view, 16> k_files{
    "mlkem_512_test.json",
    "mlkem_768_test.json",
    "mlkem_1024_test.json",
    "mlkem_768_encaps_test.json",
    "mlkem_1024_encaps_test.json",
    "mlkem_768_keygen_seed_test.json",
    "mlkem_1024_keygen_seed_test.json",
    "mlkem_768_semi_expanded_decaps_test.json",
    "mldsa_44_verify_test.json",
    "mldsa_65_verify_test.json",
    "mldsa_87_verify_test.json",
    "mldsa_65_sign_seed_test.json",
    "mldsa_87_sign_seed_test.json",
    "mldsa_65_sign_noseed_test.json",
    "x25519_test.json",
    "ed25519_test.json",
};

// ---------------------------------------------------------------------------
// JSON helpers

json::value load_json(const std::filesystem::path& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) {
        ADD_FAILURE() << "cannot open " << path;
        return {};
    }
    std::ostringstream text;
    text << in.rdbuf();
    return json::parse(text.str());
}

std::string_view str(const json::value& v) {
    const json::string& s = v.as_string();
    return {s.data(), s.size()};
}

const json::value* find(const json::object& o, std::string_view key) {
    const json::value* v = o.if_contains(key);
    return (v == nullptr || v->is_null()) ? nullptr : v;
}

bool has(const json::object& o, std::string_view key) {
    return find(o, key) != nullptr;
}

std::string text_field(const json::object& o, std::string_view key) {
    const json::value* v = find(o, key);
    return v != nullptr && v->is_string() ? std::string(str(*v)) : std::string();
}

// A hex field; absent or null is empty.
Bytes hex_field(const json::object& o, std::string_view key) {
    const json::value* v = find(o, key);
    if (v == nullptr) {
        return {};
    }
    auto bytes = pqmcp::from_hex(str(*v));
    if (!bytes) {
        ADD_FAILURE() << "field " << key << " is not hex";
        return {};
    }
    return *bytes;
}

std::set<std::string> flags_of(const json::object& test) {
    std::set<std::string> out;
    if (const json::value* f = find(test, "flags")) {
        for (const json::value& flag : f->as_array()) {
            out.emplace(str(flag));
        }
    }
    return out;
}

// ---------------------------------------------------------------------------
// What a runner reports for one case

struct Verdict {
    bool accepted = true;        // every wrapper call returned a value
    bool matches = true;         // every output the vector gives was equal
    bool compared_k = false;     // a non-empty expected K was compared (implicit rejection)
    std::optional<Error> error;  // the rejection
    std::string detail;          // what did not match

    // Records a rejection; returns true so runners can `if (v.reject(r)) return v;`.
    template <typename R>
    bool reject(const R& result) {
        if (result) {
            return false;
        }
        accepted = false;
        error = result.error();
        return true;
    }

    void compare(std::string_view what, ByteView got, ByteView want) {
        if (!std::equal(got.begin(), got.end(), want.begin(), want.end())) {
            matches = false;
            detail += std::string(what) + " differs: got " + pqmcp::to_hex(got).substr(0, 64) +
                      "..., want " + pqmcp::to_hex(want).substr(0, 64) + "...; ";
        }
    }
};

struct Schema {
    // Runs one test case of a group.
    std::function<Verdict(const json::object& file, const json::object& group,
                          const json::object& test)>
        run;
    // For an invalid case, the specific error the wrapper must report, if the
    // vector says what is wrong; nullopt accepts any crypto error.
    std::function<std::optional<Errc>(const json::object& test)> expected_error;
};

// ---------------------------------------------------------------------------
// ML-KEM

pqmcp::crypto::KemAlg kem_alg(const json::object& group) {
    auto alg = pqmcp::crypto::parse_kem_alg(text_field(group, "parameterSet"));
    EXPECT_TRUE(alg.has_value()) << "unknown parameterSet";
    return alg.value_or(pqmcp::crypto::KemAlg::ml_kem_768);
}

bool starts_with(std::string_view s, std::string_view prefix) {
    return s.substr(0, prefix.size()) == prefix;
}

// mlkem_test_schema.json: keygen from seed (d || z), check ek, decapsulate c,
// check K. Invalid cases have a seed or a ciphertext of the wrong length.
Verdict run_mlkem_test(const json::object&, const json::object& group, const json::object& t) {
    Verdict v;
    auto key = pqmcp::crypto::mlkem_generate_from_seed(kem_alg(group), hex_field(t, "seed"));
    if (v.reject(key)) {
        return v;
    }
    if (const Bytes ek = hex_field(t, "ek"); !ek.empty()) {
        auto pub = pqmcp::crypto::mlkem_public_bytes(key->get());
        if (v.reject(pub)) {
            return v;
        }
        v.compare("ek", *pub, ek);
    }
    auto k = pqmcp::crypto::mlkem_decapsulate(key->get(), hex_field(t, "c"));
    if (v.reject(k)) {
        return v;
    }
    if (const Bytes want = hex_field(t, "K"); !want.empty()) {
        v.compared_k = true;
        v.compare("K", k->view(), want);
    }
    return v;
}

std::optional<Errc> mlkem_test_error(const json::object& t) {
    const std::string comment = text_field(t, "comment");
    if (starts_with(comment, "Private key too")) {  // the 64-byte seed d || z
        return Errc::invalid_argument;
    }
    if (starts_with(comment, "Ciphertext too")) {
        return Errc::invalid_argument;
    }
    return std::nullopt;
}

// mlkem_encaps_test_schema.json: import ek (type and modulus checks), encapsulate
// with the fixed m, check c and K.
Verdict run_mlkem_encaps(const json::object&, const json::object& group, const json::object& t) {
    Verdict v;
    auto key = pqmcp::crypto::mlkem_public_key(kem_alg(group), hex_field(t, "ek"));
    if (v.reject(key)) {
        return v;
    }
    auto enc = pqmcp::crypto::mlkem_encapsulate_derand(key->get(), hex_field(t, "m"));
    if (v.reject(enc)) {
        return v;
    }
    v.compare("c", enc->ciphertext, hex_field(t, "c"));
    v.compare("K", enc->shared_secret.view(), hex_field(t, "K"));
    return v;
}

std::optional<Errc> mlkem_encaps_error(const json::object& t) {
    const std::string comment = text_field(t, "comment");
    if (flags_of(t).contains("ModulusOverflow") || starts_with(comment, "Public key")) {
        return Errc::invalid_key;  // wrong length, or not reduced mod q
    }
    return std::nullopt;
}

// mlkem_keygen_seed_test_schema.json: keygen from seed, check ek and the
// expanded dk.
Verdict run_mlkem_keygen_seed(const json::object&, const json::object& group,
                              const json::object& t) {
    Verdict v;
    auto key = pqmcp::crypto::mlkem_generate_from_seed(kem_alg(group), hex_field(t, "seed"));
    if (v.reject(key)) {
        return v;
    }
    auto pub = pqmcp::crypto::mlkem_public_bytes(key->get());
    auto prv = pqmcp::crypto::mlkem_private_bytes(key->get());
    if (v.reject(pub) || v.reject(prv)) {
        return v;
    }
    v.compare("ek", *pub, hex_field(t, "ek"));
    v.compare("dk", prv->view(), hex_field(t, "dk"));
    return v;
}

// mlkem_semi_expanded_decaps_test_schema.json: import the expanded dk (type and
// hash checks), check its embedded ek, decapsulate c, check K.
Verdict run_mlkem_semi_expanded_decaps(const json::object&, const json::object& group,
                                       const json::object& t) {
    Verdict v;
    auto key = pqmcp::crypto::mlkem_private_key(kem_alg(group), hex_field(t, "dk"));
    if (v.reject(key)) {
        return v;
    }
    if (const Bytes ek = hex_field(t, "ek"); !ek.empty()) {
        auto pub = pqmcp::crypto::mlkem_public_bytes(key->get());
        if (v.reject(pub)) {
            return v;
        }
        v.compare("ek", *pub, ek);
    }
    auto k = pqmcp::crypto::mlkem_decapsulate(key->get(), hex_field(t, "c"));
    if (v.reject(k)) {
        return v;
    }
    if (const Bytes want = hex_field(t, "K"); !want.empty()) {
        v.compared_k = true;
        v.compare("K", k->view(), want);
    }
    return v;
}

std::optional<Errc> mlkem_semi_expanded_error(const json::object& t) {
    const auto flags = flags_of(t);
    if (flags.contains("IncorrectCiphertextLength")) {
        return Errc::invalid_argument;
    }
    if (flags.contains("IncorrectDecapsulationKeyLength") ||
        flags.contains("InvalidDecapsulationKey")) {
        return Errc::invalid_key;
    }
    return std::nullopt;
}

// ---------------------------------------------------------------------------
// ML-DSA

pqmcp::crypto::SigAlg sig_alg(const json::object& file) {
    auto alg = pqmcp::crypto::parse_sig_alg(text_field(file, "algorithm"));
    EXPECT_TRUE(alg.has_value() && pqmcp::crypto::is_ml_dsa(*alg)) << "unknown algorithm";
    return alg.value_or(pqmcp::crypto::SigAlg::ml_dsa_65);
}

// mldsa_verify_schema.json: import the public key, verify (msg, ctx, sig).
Verdict run_mldsa_verify(const json::object& file, const json::object& group,
                         const json::object& t) {
    Verdict v;
    auto key = pqmcp::crypto::mldsa_public_key(sig_alg(file), hex_field(group, "publicKey"));
    if (v.reject(key)) {
        return v;
    }
    v.reject(pqmcp::crypto::verify(key->get(), hex_field(t, "msg"), hex_field(t, "sig"),
                                   hex_field(t, "ctx")));
    return v;
}

std::optional<Errc> mldsa_verify_error(const json::object& t) {
    const auto flags = flags_of(t);
    if (flags.contains("IncorrectPublicKeyLength")) {
        return Errc::invalid_key;
    }
    if (flags.contains("InvalidContext")) {  // longer than 255 bytes
        return Errc::invalid_argument;
    }
    // Wrong length, modified, bad hints, norm violations, strcmp-style c_tilde.
    return Errc::signature_invalid;
}

// The signing half shared by the seed and no-seed schemas: sign msg (with ctx;
// deterministic unless the vector gives rnd), sign mu through the external-mu
// entry point, check both against sig, and verify what was produced.
void mldsa_sign_checks(Verdict& v, EVP_PKEY* key, const json::object& group,
                       const json::object& t) {
    if (const Bytes pk = hex_field(group, "publicKey"); !pk.empty()) {
        auto pub = pqmcp::crypto::raw_public_bytes(key);
        if (v.reject(pub)) {
            return;
        }
        v.compare("public key", *pub, pk);
    }
    const Bytes want = hex_field(t, "sig");
    const Bytes ctx = hex_field(t, "ctx");
    const Bytes rnd = hex_field(t, "rnd");
    if (has(t, "msg")) {
        const Bytes msg = hex_field(t, "msg");
        pqmcp::crypto::SignOptions options;
        options.context = ctx;
        options.deterministic = rnd.empty();
        options.test_rnd = rnd;
        auto sig = pqmcp::crypto::sign(key, msg, options);
        if (v.reject(sig)) {
            return;
        }
        v.compare("sig", *sig, want);
        if (v.reject(pqmcp::crypto::verify(key, msg, *sig, ctx))) {
            v.detail += "own signature does not verify; ";
            return;
        }
    }
    // mldsa_sign_mu has no fixed-rnd input: the one Randomized vector is
    // checked through sign() above only.
    if (has(t, "mu") && rnd.empty()) {
        auto sig = pqmcp::crypto::mldsa_sign_mu(key, hex_field(t, "mu"), true);
        if (v.reject(sig)) {
            return;
        }
        v.compare("sig (from mu)", *sig, want);
    }
}

// mldsa_sign_seed_schema.json: key from the 32-byte seed xi.
Verdict run_mldsa_sign_seed(const json::object& file, const json::object& group,
                            const json::object& t) {
    Verdict v;
    auto key =
        pqmcp::crypto::mldsa_generate_from_seed(sig_alg(file), hex_field(group, "privateSeed"));
    if (v.reject(key)) {
        return v;
    }
    mldsa_sign_checks(v, key->get(), group, t);
    return v;
}

// mldsa_sign_noseed_schema.json: key from the expanded private key.
Verdict run_mldsa_sign_noseed(const json::object& file, const json::object& group,
                              const json::object& t) {
    Verdict v;
    auto key = pqmcp::crypto::mldsa_private_key(sig_alg(file), hex_field(group, "privateKey"));
    if (v.reject(key)) {
        return v;
    }
    mldsa_sign_checks(v, key->get(), group, t);
    return v;
}

std::optional<Errc> mldsa_sign_seed_error(const json::object& t) {
    const auto flags = flags_of(t);
    if (flags.contains("InvalidContext") || flags.contains("IncorrectPrivateKeyLength")) {
        return Errc::invalid_argument;  // context > 255 bytes; seed xi not 32 bytes
    }
    return std::nullopt;
}

std::optional<Errc> mldsa_sign_noseed_error(const json::object& t) {
    const auto flags = flags_of(t);
    if (flags.contains("InvalidContext")) {
        return Errc::invalid_argument;
    }
    if (flags.contains("IncorrectPrivateKeyLength") || flags.contains("InvalidPrivateKey")) {
        return Errc::invalid_key;  // wrong size; s1/s2 out of range or tr mismatch
    }
    return std::nullopt;
}

// ---------------------------------------------------------------------------
// X25519 and Ed25519

bool all_zero(ByteView b) {
    return std::all_of(b.begin(), b.end(), [](std::uint8_t x) { return x == 0; });
}

// xdh_comp_schema_v1.json. Every case is valid or acceptable; the acceptable
// flags, and what OpenSSL (through the wrapper) does with them:
//   Twist               public key on the quadratic twist: X25519 is defined
//                       there (RFC 7748 section 5); computed, must match.
//   NonCanonicalPublic  u >= 2^255 - 19: RFC 7748 section 5 says reduce it;
//                       OpenSSL does, so computed and must match.
//   SmallPublicKey, LowOrderPublic, ZeroSharedSecret
//                       a low-order point whose result is all zero: OpenSSL's
//                       derive refuses an all-zero secret (RFC 7748 section 6.1
//                       "MAY check ... and abort") and the wrapper reports
//                       Errc::operation_failed. The wrapper must never return
//                       an all-zero secret, whatever the vector's verdict.
//   EdgeCaseShared, EdgeCaseMultiplication, SpecialPublicKey
//                       arithmetic edge cases; computed, must match.
Verdict run_xdh_comp(const json::object&, const json::object& group, const json::object& t) {
    EXPECT_EQ(text_field(group, "curve"), "curve25519");
    Verdict v;
    auto own = pqmcp::crypto::x25519_private_key(hex_field(t, "private"));
    if (v.reject(own)) {
        return v;
    }
    auto peer = pqmcp::crypto::x25519_public_key(hex_field(t, "public"));
    if (v.reject(peer)) {
        return v;
    }
    auto shared = pqmcp::crypto::x25519_derive(own->get(), peer->get());
    if (v.reject(shared)) {
        return v;
    }
    EXPECT_FALSE(all_zero(shared->view())) << "the wrapper returned an all-zero X25519 secret";
    v.compare("shared", shared->view(), hex_field(t, "shared"));
    return v;
}

// eddsa_verify_schema_v1.json: import the 32-byte public key, verify.
Verdict run_eddsa_verify(const json::object&, const json::object& group, const json::object& t) {
    Verdict v;
    const json::object& pk = group.at("publicKey").as_object();
    EXPECT_EQ(text_field(pk, "curve"), "edwards25519");
    auto key = pqmcp::crypto::ed25519_public_key(hex_field(pk, "pk"));
    if (v.reject(key)) {
        return v;
    }
    v.reject(pqmcp::crypto::verify(key->get(), hex_field(t, "msg"), hex_field(t, "sig")));
    return v;
}

std::optional<Errc> eddsa_verify_error(const json::object&) {
    return Errc::signature_invalid;
}

std::optional<Errc> no_expectation(const json::object&) {
    return std::nullopt;
}

const std::map<std::string, Schema, std::less<>>& schemas() {
    static const std::map<std::string, Schema, std::less<>> table{
        {"mlkem_test_schema.json", {run_mlkem_test, mlkem_test_error}},
        {"mlkem_encaps_test_schema.json", {run_mlkem_encaps, mlkem_encaps_error}},
        {"mlkem_keygen_seed_test_schema.json", {run_mlkem_keygen_seed, no_expectation}},
        {"mlkem_semi_expanded_decaps_test_schema.json",
         {run_mlkem_semi_expanded_decaps, mlkem_semi_expanded_error}},
        {"mldsa_verify_schema.json", {run_mldsa_verify, mldsa_verify_error}},
        {"mldsa_sign_seed_schema.json", {run_mldsa_sign_seed, mldsa_sign_seed_error}},
        {"mldsa_sign_noseed_schema.json", {run_mldsa_sign_noseed, mldsa_sign_noseed_error}},
        {"xdh_comp_schema_v1.json", {run_xdh_comp, no_expectation}},
        {"eddsa_verify_schema_v1.json", {run_eddsa_verify, eddsa_verify_error}},
    };
    return table;
}

// ---------------------------------------------------------------------------
// The driver

struct Counts {
    std::int64_t cases = 0;
    std::int64_t valid_passed = 0;
    std::int64_t invalid_rejected = 0;
    std::int64_t implicit_rejections = 0;  // counted in invalid_rejected too
    std::int64_t acceptable_accepted = 0;
    std::int64_t acceptable_rejected = 0;
    std::int64_t failed = 0;

    Counts& operator+=(const Counts& o) {
        cases += o.cases;
        valid_passed += o.valid_passed;
        invalid_rejected += o.invalid_rejected;
        implicit_rejections += o.implicit_rejections;
        acceptable_accepted += o.acceptable_accepted;
        acceptable_rejected += o.acceptable_rejected;
        failed += o.failed;
        return *this;
    }

    [[nodiscard]] std::string summary() const {
        std::ostringstream out;
        out << cases << " cases (" << valid_passed << " valid passed, " << invalid_rejected
            << " invalid rejected";
        if (implicit_rejections > 0) {
            out << " [" << implicit_rejections << " by implicit rejection]";
        }
        const std::int64_t acceptable = acceptable_accepted + acceptable_rejected;
        out << ", " << acceptable << " acceptable";
        if (acceptable > 0) {
            out << ": " << acceptable_accepted << " accepted, " << acceptable_rejected
                << " rejected";
        }
        out << ")";
        if (failed > 0) {
            out << ", " << failed << " FAILED";
        }
        return out.str();
    }
};

Counts& grand_total() {
    static Counts total;
    return total;
}

void judge(const Schema& schema, const json::object& test, const Verdict& v, Counts& counts) {
    const std::string result = text_field(test, "result");
    const std::string error_text = v.error ? v.error->message() : std::string("none");
    bool ok = false;
    if (result == "valid") {
        ok = v.accepted && v.matches;
        EXPECT_TRUE(ok) << (v.accepted ? "outputs differ: " + v.detail
                                       : "rejected a valid case: " + error_text);
        counts.valid_passed += ok ? 1 : 0;
    } else if (result == "invalid") {
        if (v.accepted) {
            // Only an implicit-rejection K given by the vector may stand in for
            // an error here.
            ok = v.compared_k && v.matches;
            EXPECT_TRUE(ok) << "accepted an invalid case" << (v.detail.empty() ? "" : ": ")
                            << v.detail;
            counts.implicit_rejections += ok ? 1 : 0;
        } else {
            ok = v.error->code.category() == pqmcp::crypto::crypto_category();
            EXPECT_TRUE(ok) << "error from another category: " << error_text;
            if (const auto want = schema.expected_error(test)) {
                const bool specific = v.error->code == *want;
                EXPECT_TRUE(specific) << "rejected with " << error_text << ", want "
                                      << pqmcp::crypto::make_error_code(*want).message();
                ok = ok && specific;
            }
        }
        counts.invalid_rejected += ok ? 1 : 0;
    } else if (result == "acceptable") {
        ok = !v.accepted || v.matches;
        EXPECT_TRUE(ok) << "accepted an acceptable case with a wrong output: " << v.detail;
        if (ok) {
            (v.accepted ? counts.acceptable_accepted : counts.acceptable_rejected) += 1;
        }
    } else {
        ADD_FAILURE() << "unknown result '" << result << "'";
    }
    counts.failed += ok ? 0 : 1;
}

void run_file(std::string_view name) {
    const json::value doc = load_json(k_dir / name);
    ASSERT_TRUE(doc.is_object());
    const json::object& file = doc.as_object();
    const std::string schema_name = text_field(file, "schema");
    const auto it = schemas().find(schema_name);
    ASSERT_NE(it, schemas().end()) << "no runner for schema " << schema_name;
    const Schema& schema = it->second;

    Counts counts;
    for (const json::value& g : file.at("testGroups").as_array()) {
        const json::object& group = g.as_object();
        for (const json::value& tv : group.at("tests").as_array()) {
            const json::object& test = tv.as_object();
            SCOPED_TRACE(std::string(name) + " tcId " + std::to_string(test.at("tcId").as_int64()) +
                         " (" + text_field(test, "comment") + ")");
            ++counts.cases;
            judge(schema, test, schema.run(file, group, test), counts);
        }
    }
    std::cout << "wycheproof " << name << ": " << counts.summary() << std::endl;
    grand_total() += counts;
    EXPECT_EQ(counts.cases, file.at("numberOfTests").as_int64())
        << "cases run differ from numberOfTests";
    EXPECT_EQ(counts.failed, 0);
}

class TotalReport final : public ::testing::Environment {
  public:
    void TearDown() override {
        std::cout << "wycheproof total: " << grand_total().summary() << " in " << k_files.size()
                  << " files" << std::endl;
    }
};
[[maybe_unused]] ::testing::Environment* const k_total_report =
    ::testing::AddGlobalTestEnvironment(new TotalReport);

class Wycheproof : public ::testing::TestWithParam<std::string_view> {};

TEST_P(Wycheproof, EveryCase) {
    run_file(GetParam());
}

INSTANTIATE_TEST_SUITE_P(Files, Wycheproof, ::testing::ValuesIn(k_files),
                         [](const ::testing::TestParamInfo<std::string_view>& file) {
                             std::string n(file.param.substr(0, file.param.find('.')));
                             std::replace(n.begin(), n.end(), '-', '_');
                             return n;
                         });

TEST(VectorFiles, AllListed) {
    std::set<std::string> listed(k_files.begin(), k_files.end());
    for (const auto& entry : std::filesystem::directory_iterator(k_dir)) {
        if (entry.path().extension() == ".json") {
            EXPECT_TRUE(listed.contains(entry.path().filename().string()))
                << entry.path().filename() << " is in tests/data/wycheproof but not run";
        }
    }
    EXPECT_TRUE(std::filesystem::exists(k_dir / "LICENSE"));
    EXPECT_TRUE(std::filesystem::exists(k_dir / "README.md"));
}

}  // namespace
