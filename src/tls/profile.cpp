#include "pqmcp/tls/profile.hpp"

#include <array>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include <openssl/ssl.h>

#include "apply_profile.hpp"
#include "pqmcp/crypto/errors.hpp"
#include "pqmcp/crypto/ossl.hpp"

namespace pqmcp::tls {
namespace {

using crypto::SigAlg;

constexpr std::array k_hybrid_identities{SigAlg::ml_dsa_65, SigAlg::ml_dsa_87, SigAlg::ml_dsa_44};
constexpr std::array k_strict_identities{SigAlg::ml_dsa_87};
constexpr std::array k_classical_identities{SigAlg::ed25519, SigAlg::ecdsa_p256,
                                            SigAlg::rsa_3072_pss};

// AES-256-GCM first (256-bit keys keep a 128-bit margin against Grover's
// search); ChaCha20-Poly1305 (256-bit key) for machines without AES
// instructions; AES-128-GCM last, for peers that offer nothing else.
// pq-strict: AES-256-GCM only (CNSA 2.0).
constexpr std::string_view k_suites =
    "TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256:TLS_AES_128_GCM_SHA256";

constexpr std::array<Profile, 3> k_profiles{{
    {
        ProfileId::pq_hybrid,
        "pq-hybrid",
        "2026-11-23",
        "default: hybrid ML-KEM key exchange, ML-DSA identities",
        "X25519MLKEM768:SecP256r1MLKEM768",
        "mldsa65:mldsa87:mldsa44",
        "ecdsa_secp256r1_sha256",
        k_suites,
        k_hybrid_identities,
        false,
    },
    {
        ProfileId::pq_strict,
        "pq-strict",
        "2026-11-23",
        "long-lived secrets, CNSA 2.0 style: ML-KEM-1024, ML-DSA-87, AES-256",
        "MLKEM1024:SecP384r1MLKEM1024",
        "mldsa87",
        "",
        "TLS_AES_256_GCM_SHA384",
        k_strict_identities,
        false,
    },
    {
        ProfileId::classical,
        "classical",
        "2026-11-23",
        "benchmarks and explicit legacy use only: NOT quantum-safe",
        "X25519:secp256r1",
        "ed25519:ecdsa_secp256r1_sha256:rsa_pss_rsae_sha256:rsa_pss_pss_sha256",
        "",
        k_suites,
        k_classical_identities,
        true,
    },
}};

std::string join(const std::vector<std::string>& items, std::string_view separator) {
    std::string out;
    for (const auto& item : items) {
        if (!out.empty()) {
            out += separator;
        }
        out += item;
    }
    return out;
}

}  // namespace

const Profile& profile(ProfileId id) noexcept {
    for (const auto& p : k_profiles) {
        if (p.id == id) {
            return p;
        }
    }
    return k_profiles[0];
}

std::span<const Profile> all_profiles() noexcept {
    return k_profiles;
}

Result<const Profile*> parse_profile(std::string_view name) {
    std::string names;
    for (const auto& p : k_profiles) {
        if (p.name == name) {
            return &p;
        }
        names += names.empty() ? "" : ", ";
        names += p.name;
    }
    return fail(Errc::unknown_profile, "'" + std::string(name) + "' (profiles: " + names + ")");
}

namespace detail {

Status apply_profile(SSL_CTX* ctx, const Profile& p, Role role, bool browser_certificate) {
    const auto openssl_fail = [](const std::string& what) {
        return tl::unexpected<Error>(Error{make_error_code(Errc::context_failed),
                                           what + ": " + crypto::drain_openssl_errors()});
    };
    // RFC 8446 is the only version: no downgrade to TLS 1.2 and its classical key exchange.
    if (SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION) != 1 ||
        SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION) != 1) {
        return openssl_fail("protocol version");
    }
    const std::string groups(p.groups);
    if (SSL_CTX_set1_groups_list(ctx, groups.c_str()) != 1) {
        return openssl_fail("groups " + groups);
    }
    std::string sigalgs(p.sigalgs);
    if (role == Role::server && browser_certificate && !p.browser_sigalgs.empty()) {
        sigalgs += ":";
        sigalgs += p.browser_sigalgs;
    }
    if (SSL_CTX_set1_sigalgs_list(ctx, sigalgs.c_str()) != 1) {
        return openssl_fail("signature algorithms " + sigalgs);
    }
    if (role == Role::server) {
        // What a client may authenticate with (CertificateRequest): the profile's
        // own schemes only, even when the server has a browser certificate.
        const std::string client_sigalgs(p.sigalgs);
        if (SSL_CTX_set1_client_sigalgs_list(ctx, client_sigalgs.c_str()) != 1) {
            return openssl_fail("client signature algorithms " + client_sigalgs);
        }
    }
    const std::string suites(p.ciphersuites);
    if (SSL_CTX_set_ciphersuites(ctx, suites.c_str()) != 1) {
        return openssl_fail("ciphersuites " + suites);
    }
    // RFC 8446 section 8: 0-RTT data is not forward secret and can be replayed;
    // pqmcp never sends or accepts it.
    if (SSL_CTX_set_max_early_data(ctx, 0) != 1 || SSL_CTX_set_recv_max_early_data(ctx, 0) != 1) {
        return openssl_fail("early data");
    }
    // RFC 8446 section 4.1.2: "Because TLS 1.3 forbids renegotiation, ... it MUST
    // terminate the connection"; the options also cover any TLS 1.2 code path.
    SSL_CTX_set_options(
        ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION | SSL_OP_CIPHER_SERVER_PREFERENCE);
    return {};
}

}  // namespace detail

namespace {

// What a client of the profile actually puts in its ClientHello, read back
// from the bytes OpenSSL writes (so the snapshot shows OpenSSL's resolution
// of the configured lists, not just the lists).
struct HelloSummary {
    std::size_t size = 0;  // handshake message bytes
    std::vector<std::string> versions;
    std::vector<std::string> suites;
    std::vector<std::string> groups;
    std::vector<std::string> key_shares;
    std::vector<std::string> sigalgs;
    bool early_data = false;
};

std::string hex16(unsigned v) {
    static constexpr char digits[] = "0123456789abcdef";
    std::string out = "0x";
    for (int shift = 12; shift >= 0; shift -= 4) {
        out += digits[(v >> static_cast<unsigned>(shift)) & 0xfU];
    }
    return out;
}

std::string sigalg_name(unsigned code) {
    // IANA TLS SignatureScheme registry.
    switch (code) {
        case 0x0403:
            return "ecdsa_secp256r1_sha256";
        case 0x0503:
            return "ecdsa_secp384r1_sha384";
        case 0x0603:
            return "ecdsa_secp521r1_sha512";
        case 0x0804:
            return "rsa_pss_rsae_sha256";
        case 0x0805:
            return "rsa_pss_rsae_sha384";
        case 0x0806:
            return "rsa_pss_rsae_sha512";
        case 0x0807:
            return "ed25519";
        case 0x0808:
            return "ed448";
        case 0x0809:
            return "rsa_pss_pss_sha256";
        case 0x080a:
            return "rsa_pss_pss_sha384";
        case 0x080b:
            return "rsa_pss_pss_sha512";
        case 0x0904:
            return "mldsa44";
        case 0x0905:
            return "mldsa65";
        case 0x0906:
            return "mldsa87";
        default:
            return hex16(code);
    }
}

class Reader {
  public:
    explicit Reader(std::span<const unsigned char> data) : data_(data) {}
    [[nodiscard]] bool ok() const { return ok_; }
    [[nodiscard]] std::size_t left() const { return ok_ ? data_.size() - at_ : 0; }
    unsigned u8() { return static_cast<unsigned>(take(1)[0]); }
    unsigned u16() {
        const auto b = take(2);
        return (static_cast<unsigned>(b[0]) << 8) | b[1];
    }
    std::span<const unsigned char> take(std::size_t n) {
        static constexpr unsigned char zero[2] = {0, 0};
        if (!ok_ || data_.size() - at_ < n) {
            ok_ = false;
            return {zero, n <= 2 ? n : 0};
        }
        const auto out = data_.subspan(at_, n);
        at_ += n;
        return out;
    }
    Reader sub(std::size_t n) { return Reader(take(n)); }

  private:
    std::span<const unsigned char> data_;
    std::size_t at_ = 0;
    bool ok_ = true;
};

std::optional<HelloSummary> client_hello(const Profile& p) {
    crypto::SslCtxPtr ctx(SSL_CTX_new_ex(nullptr, nullptr, TLS_client_method()));
    if (!ctx || !detail::apply_profile(ctx.get(), p, detail::Role::client, false)) {
        return std::nullopt;
    }
    crypto::SslPtr ssl(SSL_new(ctx.get()));
    BIO* in = BIO_new(BIO_s_mem());
    BIO* out = BIO_new(BIO_s_mem());
    if (!ssl || in == nullptr || out == nullptr) {
        BIO_free(in);
        BIO_free(out);
        return std::nullopt;
    }
    SSL_set_bio(ssl.get(), in, out);  // ssl owns both
    SSL_set_connect_state(ssl.get());
    (void)SSL_do_handshake(ssl.get());  // writes the ClientHello, then wants to read
    (void)crypto::drain_openssl_errors();
    char* bytes = nullptr;
    const long len = BIO_get_mem_data(out, &bytes);
    if (len <= 0 || bytes == nullptr) {
        return std::nullopt;
    }
    Reader record(
        std::span(reinterpret_cast<const unsigned char*>(bytes), static_cast<std::size_t>(len)));
    HelloSummary hello;
    if (record.u8() != 22) {  // handshake record
        return std::nullopt;
    }
    (void)record.u16();
    Reader body = record.sub(record.u16());
    if (body.u8() != 1) {  // client_hello
        return std::nullopt;
    }
    hello.size = 4 + (static_cast<std::size_t>(body.u8()) << 16) + body.u16();
    (void)body.u16();            // legacy_version
    (void)body.take(32);         // random
    (void)body.take(body.u8());  // legacy_session_id
    Reader suites = body.sub(body.u16());
    while (suites.ok() && suites.left() >= 2) {
        const unsigned code = suites.u16();
        const unsigned char id[2] = {static_cast<unsigned char>(code >> 8),
                                     static_cast<unsigned char>(code & 0xff)};
        const SSL_CIPHER* c = SSL_CIPHER_find(ssl.get(), id);
        hello.suites.emplace_back(c != nullptr ? SSL_CIPHER_standard_name(c) : hex16(code));
    }
    (void)body.take(body.u8());  // legacy_compression_methods
    const auto group_name = [&ssl](unsigned id) -> std::string {
        const char* name = SSL_group_to_name(ssl.get(), static_cast<int>(TLSEXT_nid_unknown | id));
        return name != nullptr ? name : hex16(id);
    };
    Reader extensions = body.sub(body.u16());
    while (extensions.ok() && extensions.left() >= 4) {
        const unsigned type = extensions.u16();
        Reader ext = extensions.sub(extensions.u16());
        switch (type) {
            case 10: {  // supported_groups
                Reader list = ext.sub(ext.u16());
                while (list.ok() && list.left() >= 2) {
                    hello.groups.push_back(group_name(list.u16()));
                }
                break;
            }
            case 13: {  // signature_algorithms
                Reader list = ext.sub(ext.u16());
                while (list.ok() && list.left() >= 2) {
                    hello.sigalgs.push_back(sigalg_name(list.u16()));
                }
                break;
            }
            case 42:  // early_data
                hello.early_data = true;
                break;
            case 43: {  // supported_versions
                Reader list = ext.sub(ext.u8());
                while (list.ok() && list.left() >= 2) {
                    const unsigned v = list.u16();
                    hello.versions.push_back(v == 0x0304   ? "TLSv1.3"
                                             : v == 0x0303 ? "TLSv1.2"
                                                           : hex16(v));
                }
                break;
            }
            case 51: {  // key_share
                Reader list = ext.sub(ext.u16());
                while (list.ok() && list.left() >= 4) {
                    const unsigned group = list.u16();
                    const std::size_t size = list.u16();
                    (void)list.take(size);
                    hello.key_shares.push_back(group_name(group) + " (" + std::to_string(size) +
                                               " bytes)");
                }
                break;
            }
            default:
                break;
        }
    }
    if (!record.ok() || !body.ok() || !extensions.ok()) {
        return std::nullopt;
    }
    return hello;
}

}  // namespace

std::string describe(const Profile& p) {
    std::string out;
    const auto line = [&out](std::string_view key, std::string_view value) {
        out += key;
        out += ": ";
        out += value;
        out += "\n";
    };
    line("profile", p.name);
    line("date", p.date);
    line("purpose", p.purpose);
    line("quantum-safe key exchange",
         p.classical ? "no (classical; only when named explicitly)" : "yes");
    line("groups", p.groups);
    line("signature algorithms (peer and own)", p.sigalgs);
    line("client certificate signature algorithms (CertificateRequest)", p.sigalgs);
    line("server with browser certificate adds",
         p.browser_sigalgs.empty() ? "(not allowed in this profile)" : p.browser_sigalgs);
    line("ciphersuites", p.ciphersuites);
    {
        std::vector<std::string> ids;
        for (const auto alg : p.identity_algorithms) {
            ids.emplace_back(crypto::cli_name(alg));
        }
        line("identity algorithms (first is the keygen default)", join(ids, " "));
    }

    crypto::SslCtxPtr ctx(SSL_CTX_new_ex(nullptr, nullptr, TLS_server_method()));
    if (!ctx) {
        line("error", "SSL_CTX_new_ex: " + crypto::drain_openssl_errors());
        return out;
    }
    if (auto applied = detail::apply_profile(ctx.get(), p, detail::Role::server, true); !applied) {
        line("error", applied.error().message());
        return out;
    }
    const auto version_name = [](long v) -> std::string {
        switch (v) {
            case TLS1_3_VERSION:
                return "TLSv1.3";
            case TLS1_2_VERSION:
                return "TLSv1.2";
            case 0:
                return "any";
            default:
                return std::to_string(v);
        }
    };
    line("server min protocol", version_name(SSL_CTX_get_min_proto_version(ctx.get())));
    line("server max protocol", version_name(SSL_CTX_get_max_proto_version(ctx.get())));
    line("server max early data (0-RTT)", std::to_string(SSL_CTX_get_max_early_data(ctx.get())));
    line("server recv max early data", std::to_string(SSL_CTX_get_recv_max_early_data(ctx.get())));
    const auto opts = SSL_CTX_get_options(ctx.get());
    line("renegotiation", (opts & SSL_OP_NO_RENEGOTIATION) != 0 ? "off" : "ON");
    line("compression", (opts & SSL_OP_NO_COMPRESSION) != 0 ? "off" : "ON");
    line("server preference", (opts & SSL_OP_CIPHER_SERVER_PREFERENCE) != 0 ? "yes" : "no");
    line("session tickets",
         "server: 1 per handshake, AES-256-CBC + HMAC-SHA256 under a key rotated every interval "
         "(default 43200 s); previous key accepted once more; lifetime <= 2 intervals");

    const auto hello = client_hello(p);
    if (!hello) {
        line("error", "cannot build a ClientHello: " + crypto::drain_openssl_errors());
        return out;
    }
    line("client hello: size (bytes)", std::to_string(hello->size));
    line("client hello: supported_versions", join(hello->versions, ":"));
    line("client hello: cipher_suites", join(hello->suites, ":"));
    line("client hello: supported_groups", join(hello->groups, ":"));
    line("client hello: key_share", join(hello->key_shares, ", "));
    line("client hello: signature_algorithms", join(hello->sigalgs, ":"));
    line("client hello: early_data", hello->early_data ? "OFFERED" : "not offered");
    return out;
}

}  // namespace pqmcp::tls
