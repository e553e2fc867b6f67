#include "pqmcp/tls/probe.hpp"

#include <algorithm>
#include <array>

#include <openssl/ssl.h>
#include <boost/json/object.hpp>
#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>

#include "asio.hpp"

#include "pqmcp/crypto/errors.hpp"
#include "pqmcp/crypto/ossl.hpp"
#include "pqmcp/tls/client.hpp"
#include "pqmcp/tls/handshake_info.hpp"
#include "state.hpp"

namespace pqmcp::tls {
namespace {

// IANA spellings, as OpenSSL reports them. Offered first, in this order
// (X25519MLKEM768 carries the key share, as in browsers); every other
// implemented group follows.
constexpr std::array<std::string_view, 12> k_preferred{
    "X25519MLKEM768",
    "SecP256r1MLKEM768",
    "SecP384r1MLKEM1024",
    "MLKEM768",
    "MLKEM1024",
    "MLKEM512",
    "x25519",
    "secp256r1",
    "secp384r1",
    "secp521r1",
    "x448",
    "ffdhe2048",
};

std::string group_list(bool post_quantum_too) {
    std::vector<std::string> groups;
    const auto implemented = available_groups();
    const auto has = [&implemented](std::string_view g) {
        return std::find(implemented.begin(), implemented.end(), g) != implemented.end();
    };
    for (const auto g : k_preferred) {
        if (has(g) && (post_quantum_too || !is_post_quantum_group(g))) {
            groups.emplace_back(g);
        }
    }
    for (const auto& g : implemented) {
        if (std::find(groups.begin(), groups.end(), g) == groups.end() &&
            (post_quantum_too || !is_post_quantum_group(g))) {
            groups.push_back(g);
        }
    }
    std::string list;
    for (const auto& g : groups) {
        list += list.empty() ? "" : ":";
        list += g;
    }
    return list;
}

// A client that reports instead of trusting: no verification, TLS 1.2 allowed
// so that legacy servers get a (classical) verdict rather than an error.
Result<crypto::SslCtxPtr> probe_context(bool post_quantum_too) {
    crypto::SslCtxPtr ctx(SSL_CTX_new_ex(nullptr, nullptr, TLS_client_method()));
    if (!ctx) {
        return crypto::openssl_fail(crypto::Errc::operation_failed, "SSL_CTX_new_ex");
    }
    const std::string groups = group_list(post_quantum_too);
    if (groups.empty() || SSL_CTX_set_min_proto_version(ctx.get(), TLS1_2_VERSION) != 1 ||
        SSL_CTX_set_max_proto_version(ctx.get(), TLS1_3_VERSION) != 1 ||
        SSL_CTX_set1_groups_list(ctx.get(), groups.c_str()) != 1) {
        return fail(Errc::context_failed,
                    "probe groups '" + groups + "': " + crypto::drain_openssl_errors());
    }
    SSL_CTX_set_verify(ctx.get(), SSL_VERIFY_NONE, nullptr);
    SSL_CTX_set_info_callback(ctx.get(), detail::info_callback);
    return ctx;
}

bool is_ip_address(std::string_view host) {
    boost::system::error_code ec;
    (void)boost::asio::ip::make_address(std::string(host), ec);
    return !ec;
}

}  // namespace

std::vector<std::string> available_groups() {
    std::vector<std::string> out;
    crypto::SslCtxPtr ctx(SSL_CTX_new_ex(nullptr, nullptr, TLS_client_method()));
    if (!ctx || SSL_CTX_set_min_proto_version(ctx.get(), TLS1_3_VERSION) != 1 ||
        SSL_CTX_set_max_proto_version(ctx.get(), TLS1_3_VERSION) != 1) {
        (void)crypto::drain_openssl_errors();
        return out;
    }
    STACK_OF(OPENSSL_CSTRING)* names = sk_OPENSSL_CSTRING_new_null();
    if (names == nullptr) {
        return out;
    }
    if (SSL_CTX_get0_implemented_groups(ctx.get(), 0, names) == 1) {
        for (int i = 0; i < sk_OPENSSL_CSTRING_num(names); ++i) {
            out.emplace_back(sk_OPENSSL_CSTRING_value(names, i));
        }
    }
    sk_OPENSSL_CSTRING_free(names);
    (void)crypto::drain_openssl_errors();
    return out;
}

Result<ProbeReport> probe(std::string_view host, std::uint16_t port,
                          std::chrono::milliseconds timeout) {
    ProbeReport report;
    report.host = host;
    report.port = port;

    ClientOptions options;
    options.timeout = timeout;
    if (!is_ip_address(host)) {
        options.server_name = host;
    }

    auto all = probe_context(true);
    if (!all) {
        return tl::unexpected(all.error());
    }
    auto first = connect_once(all->get(), host, port, options);
    if (!first) {
        return tl::unexpected(first.error());
    }
    const HandshakeInfo& info = first->info;
    report.protocol = info.protocol;
    report.group = info.group;
    report.signature = info.peer_signature;
    report.cipher = info.cipher;
    report.certificate_key = info.peer_certificate_key;
    report.peer_id = info.peer_id;

    if (!is_post_quantum_group(info.group)) {
        // Offered every ML-KEM group and still got a classical one.
        report.accepts_classical = true;
        report.classical_group = info.group;
        report.verdict = Verdict::classical;
        return report;
    }

    auto classical = probe_context(false);
    if (!classical) {
        return tl::unexpected(classical.error());
    }
    auto second = connect_once(classical->get(), host, port, options);
    if (second) {
        report.accepts_classical = true;
        report.classical_group = second->info.group;
        report.verdict = Verdict::hybrid_optional;
        return report;
    }
    // Only a refusal counts as "does not accept classical": the server must
    // answer the classical-only ClientHello with an alert that says it will not
    // negotiate (RFC 8446 section 4.1.1: "If the server is unable to negotiate a
    // supported set of parameters ... it MUST abort the handshake with either a
    // "handshake_failure" or an "insufficient_security" fatal alert"). A reset,
    // a timeout or any other failure says nothing either way and is an error.
    const std::string& why = second.error().detail;
    const bool refused = second.error().code == Errc::handshake_failed &&
                         (why.find("alert received: handshake failure") != std::string::npos ||
                          why.find("alert received: insufficient security") != std::string::npos ||
                          why.find("alert received: protocol version") != std::string::npos);
    if (!refused) {
        Error error = second.error();
        error.detail = "classical-only handshake failed without a refusal alert: " + error.detail;
        return tl::unexpected(std::move(error));
    }
    report.accepts_classical = false;
    report.verdict = Verdict::quantum_safe;
    return report;
}

std::string ProbeReport::to_json() const {
    boost::json::object o;
    o["host"] = host;
    o["port"] = port;
    o["protocol"] = protocol;
    o["group"] = group;
    o["signature"] = signature;
    o["cipher"] = cipher;
    o["certificate_key"] = certificate_key;
    o["peer_id"] = peer_id ? boost::json::value(peer_id->str()) : boost::json::value(nullptr);
    o["accepts_classical"] = accepts_classical;
    o["classical_group"] = classical_group;
    o["verdict"] = to_string(verdict);
    return boost::json::serialize(o);
}

}  // namespace pqmcp::tls
