// Fuzz target: what the gateway reads as keys and names of peers: PEM
// private and public keys (OpenSSL parses; the wrapper must not misuse the
// result), certificates from a file, and peer ids as written in flags and
// known_peers.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "pqmcp/crypto/util.hpp"
#include "pqmcp/identity/identity.hpp"

// NOLINTNEXTLINE(readability-identifier-naming): the name libFuzzer calls
extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const pqmcp::ByteView bytes(data, size);
    if (auto key = pqmcp::crypto::load_private_key_pem(bytes)) {
        (void)pqmcp::identity::PeerId::of_key(key->get());
    }
    if (auto key = pqmcp::crypto::load_public_key_pem(bytes)) {
        (void)pqmcp::identity::PeerId::of_key(key->get());
    }
    const std::string_view text(reinterpret_cast<const char*>(data), size);
    if (auto id = pqmcp::identity::PeerId::parse(text)) {
        (void)id->short_form();
    }
    return 0;
}
