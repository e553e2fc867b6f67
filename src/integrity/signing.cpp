#include "pqmcp/integrity/signing.hpp"

#include <openssl/evp.h>
#include <openssl/x509.h>

#include <algorithm>
#include <array>
#include <vector>

#include <fmt/format.h>
#include <boost/json.hpp>

#include "pqmcp/crypto/signature.hpp"
#include "pqmcp/crypto/util.hpp"
#include "pqmcp/integrity/jcs.hpp"
#include "pqmcp/integrity/scanner.hpp"

namespace pqmcp::integrity {

namespace json = boost::json;

namespace {

constexpr std::string_view k_context = "pqmcp signed list v1";

bool is_mldsa(crypto::SigAlg alg) {
    return alg == crypto::SigAlg::ml_dsa_44 || alg == crypto::SigAlg::ml_dsa_65 ||
           alg == crypto::SigAlg::ml_dsa_87;
}

// The lists whose order carries no meaning: signed in canonical order.
constexpr std::array<std::string_view, 4> k_lists = {"tools", "prompts", "resourceTemplates",
                                                     "resources"};

// The result as the signature covers it: without its signature block (and
// without `_meta` if that held nothing else), its lists sorted by their
// items' canonical forms, so the same items in another order verify.
Result<json::object> signed_view(const json::object& result) {
    json::object copy = result;
    if (auto* meta = copy.if_contains("_meta"); meta != nullptr && meta->is_object()) {
        meta->as_object().erase(k_signature_member);
        if (meta->as_object().empty()) {
            copy.erase("_meta");
        }
    }
    for (const auto key : k_lists) {
        auto* list = copy.if_contains(key);
        if (list == nullptr || !list->is_array()) {
            continue;
        }
        std::vector<std::pair<std::string, json::value*>> items;
        items.reserve(list->as_array().size());
        for (auto& item : list->as_array()) {
            auto c = canonicalize(item);
            if (!c) {
                return tl::unexpected(c.error());
            }
            items.emplace_back(std::move(*c), &item);
        }
        std::sort(items.begin(), items.end(),
                  [](const auto& a, const auto& b) { return a.first < b.first; });
        json::array sorted;
        sorted.reserve(items.size());
        for (auto& [text, item] : items) {
            sorted.push_back(std::move(*item));
        }
        *list = std::move(sorted);
    }
    return copy;
}

Result<std::string> signed_bytes(const json::object& result, std::string_view method,
                                 std::string_view alg, std::string_view kid, std::string_view pub,
                                 std::string_view ts) {
    auto view = signed_view(result);
    if (!view) {
        return tl::unexpected(view.error());
    }
    return canonicalize(json::object{{"alg", alg},
                                     {"kid", kid},
                                     {"method", method},
                                     {"pub", pub},
                                     {"result", std::move(*view)},
                                     {"ts", ts}});
}

std::string_view string_member(const json::object& o, std::string_view key) {
    const auto* v = o.if_contains(key);
    return v != nullptr && v->is_string() ? std::string_view(v->get_string()) : std::string_view{};
}

}  // namespace

Result<Signer> make_signer(const identity::Identity& id) {
    auto der = crypto::public_key_der(id.key.get());
    if (!der) {
        return tl::unexpected(der.error());
    }
    return Signer{id.key.get(), id.algorithm, id.id.str(), crypto::to_base64(*der)};
}

Status sign_result(json::object& result, std::string_view method, const Signer& signer,
                   std::string_view timestamp) {
    const std::string_view alg = crypto::openssl_name(signer.algorithm);
    auto message = signed_bytes(result, method, alg, signer.kid, signer.public_b64, timestamp);
    if (!message) {
        return tl::unexpected(message.error());
    }
    crypto::SignOptions options;
    if (is_mldsa(signer.algorithm)) {
        options.context = as_bytes(k_context);
    }
    auto sig = crypto::sign(signer.key, as_bytes(*message), options);
    if (!sig) {
        return tl::unexpected(sig.error());
    }
    json::value& meta = result["_meta"];
    if (!meta.is_object()) {
        meta = json::object{};
    }
    meta.as_object()[k_signature_member] = json::object{{"alg", alg},
                                                        {"kid", signer.kid},
                                                        {"pub", signer.public_b64},
                                                        {"ts", timestamp},
                                                        {"sig", crypto::to_base64(*sig)}};
    return {};
}

Result<Verified> verify_result(const json::object& result, std::string_view method,
                               const identity::PeerId* expected) {
    const auto* meta = result.if_contains("_meta");
    const json::value* block = meta != nullptr && meta->is_object()
                                   ? meta->as_object().if_contains(k_signature_member)
                                   : nullptr;
    if (block == nullptr) {
        return fail(Errc::unsigned_list,
                    fmt::format("{} carries no _meta[\"{}\"]", method, k_signature_member));
    }
    if (!block->is_object()) {
        return fail(Errc::bad_signature, "the signature block is not an object");
    }
    const json::object& b = block->as_object();
    const std::string_view alg = string_member(b, "alg");
    const std::string_view kid_text = string_member(b, "kid");
    const std::string_view pub_b64 = string_member(b, "pub");
    const std::string_view ts = string_member(b, "ts");
    const std::string_view sig_b64 = string_member(b, "sig");
    if (alg.empty() || kid_text.empty() || pub_b64.empty() || ts.empty() || sig_b64.empty()) {
        return fail(Errc::bad_signature, "the signature block needs alg, kid, pub, ts and sig");
    }
    auto kid = identity::PeerId::parse(kid_text);
    if (!kid) {
        return fail(Errc::bad_signature, fmt::format("kid: {}", kid.error().message()));
    }
    if (expected != nullptr && *kid != *expected) {
        return fail(Errc::signature_invalid,
                    fmt::format("signed by {}, not by the pinned {}", kid->str(), expected->str()));
    }
    const auto pub = crypto::from_base64(pub_b64);
    const auto sig = crypto::from_base64(sig_b64);
    if (!pub || !sig) {
        return fail(Errc::bad_signature, "pub or sig is not base64");
    }
    const unsigned char* p = pub->data();
    crypto::PkeyPtr key(d2i_PUBKEY(nullptr, &p, static_cast<long>(pub->size())));
    if (!key) {
        return fail(Errc::bad_signature, "pub is not a public key");
    }
    const auto key_alg = crypto::signature_algorithm_of(key.get());
    if (!key_alg || crypto::openssl_name(*key_alg) != alg) {
        return fail(Errc::bad_signature, fmt::format("alg {} does not match the key", alg));
    }
    auto of_key = identity::PeerId::of_key(key.get());
    if (!of_key || *of_key != *kid) {
        return fail(Errc::bad_signature, "pub is not the key of kid");
    }
    auto message = signed_bytes(result, method, alg, kid_text, pub_b64, ts);
    if (!message) {
        return tl::unexpected(message.error());
    }
    if (auto ok = crypto::verify(key.get(), as_bytes(*message), *sig,
                                 is_mldsa(*key_alg) ? as_bytes(k_context) : ByteView{});
        !ok) {
        return fail(Errc::signature_invalid,
                    fmt::format("the {} signature of {} does not verify: the list was changed "
                                "after signing or signed for another method",
                                alg, method));
    }
    return Verified{*kid, std::string(alg), std::string(ts)};
}

}  // namespace pqmcp::integrity
