// Peer identities: an ML-DSA key pair, a self-signed X.509 certificate that
// carries it, and the peer id derived from its SubjectPublicKeyInfo.
#pragma once

#include <chrono>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include "pqmcp/core/error.hpp"
#include "pqmcp/crypto/algorithms.hpp"
#include "pqmcp/crypto/ossl.hpp"

namespace pqmcp::identity {

enum class Errc {
    io_error = 1,         // a file could not be read or written
    already_exists,       // keygen would overwrite an identity (use force)
    invalid_key,          // identity.key does not parse or is not a supported key
    invalid_certificate,  // identity.crt (or a peer certificate) does not parse
    key_mismatch,         // identity.key and identity.crt do not belong together
    invalid_peer_id,      // text that is not a peer id
    known_peers_syntax,   // a malformed line in a known_peers file
    duplicate_peer,       // a peer id or name already in a known_peers file
    unsupported_algorithm,
};

const std::error_category& identity_category() noexcept;
inline std::error_code make_error_code(Errc e) noexcept {
    return {static_cast<int>(e), identity_category()};
}

// A peer id: "<scheme prefix><base32(SHA3-256(SubjectPublicKeyInfo DER))>".
// Prefixes: "pq1" for ML-DSA keys (any parameter set; the set is part of the
// hashed SPKI), "ed1" Ed25519, "ec1" ECDSA, "rsa1" RSA. Lower case, 52 base32
// characters after the prefix.
class PeerId final {
  public:
    // Accepts upper or lower case; normalises to lower case.
    [[nodiscard]] static Result<PeerId> parse(std::string_view text);
    [[nodiscard]] static Result<PeerId> of_key(const EVP_PKEY* key);
    [[nodiscard]] static Result<PeerId> of_certificate(X509* cert);

    [[nodiscard]] const std::string& str() const noexcept { return text_; }
    // First 12 characters after the prefix, for display only (never for pinning).
    [[nodiscard]] std::string short_form() const;

    friend bool operator==(const PeerId&, const PeerId&) = default;
    friend auto operator<=>(const PeerId&, const PeerId&) = default;

  private:
    explicit PeerId(std::string text) : text_(std::move(text)) {}
    std::string text_;
};

struct Identity {
    crypto::PkeyPtr key;
    crypto::X509Ptr certificate;
    crypto::SigAlg algorithm = crypto::SigAlg::ml_dsa_65;
    PeerId id;
};

struct KeygenOptions {
    crypto::SigAlg algorithm = crypto::SigAlg::ml_dsa_65;
    // subjectAltName entries: DNS names or IP addresses ("localhost", "127.0.0.1").
    std::vector<std::string> names;
    std::chrono::days validity{3650};
};

inline constexpr std::string_view k_key_file = "identity.key";
inline constexpr std::string_view k_cert_file = "identity.crt";

// A new key pair and a self-signed certificate (CN = peer id, SAN = names).
[[nodiscard]] Result<Identity> generate(const KeygenOptions& options);
// Writes identity.key (PKCS#8 PEM, mode 0600) and identity.crt into dir
// (created if missing). Refuses to overwrite unless force.
[[nodiscard]] Status save(const Identity& id, const std::filesystem::path& dir, bool force);
// Loads dir/identity.key and dir/identity.crt and checks they match.
[[nodiscard]] Result<Identity> load(const std::filesystem::path& dir);
// Loads the identity in dir, or generates and saves a new one if dir has none.
[[nodiscard]] Result<Identity> load_or_create(const std::filesystem::path& dir,
                                              const KeygenOptions& options);

[[nodiscard]] Result<crypto::X509Ptr> load_certificate(const std::filesystem::path& file);
// The peer id of an identity directory or of a certificate file (PEM).
[[nodiscard]] Result<PeerId> peer_id_of_path(const std::filesystem::path& path);

}  // namespace pqmcp::identity

template <>
struct std::is_error_code_enum<pqmcp::identity::Errc> : std::true_type {};
