#include "redis_common.hpp"

#include <openssl/evp.h>

#include <array>
#include <stdexcept>

#include <fmt/format.h>
#include <boost/url/parse.hpp>
#include <boost/url/url_view.hpp>

#include "pqmcp/core/bytes.hpp"
#include "pqmcp/crypto/util.hpp"

namespace pqmcp::cluster::detail {

Result<Address> parse_address(const std::string& url) {
    const auto parsed = boost::urls::parse_uri(url);
    if (!parsed) {
        return fail(Errc::bad_address,
                    fmt::format("{}: expected redis://HOST[:PORT][/DB] or unix:///PATH", url));
    }
    const boost::urls::url_view& u = *parsed;
    Address a;
    if (u.scheme() == "unix") {
        a.socket = std::string(u.path());
        if (a.socket.empty() || a.socket.front() != '/') {
            return fail(Errc::bad_address, fmt::format("{}: expected unix:///PATH", url));
        }
        a.shown = "redis unix:" + a.socket;
        return a;
    }
    if (u.scheme() != "redis") {
        return fail(Errc::bad_address,
                    fmt::format("{}: the scheme must be redis or unix (rediss, Redis over TLS, "
                                "is not supported: keep Redis on a private network or a socket)",
                                url));
    }
    a.host = std::string(u.host());
    if (a.host.empty()) {
        return fail(Errc::bad_address, fmt::format("{}: no host", url));
    }
    if (u.has_port()) {
        a.port = static_cast<int>(u.port_number());
        if (a.port <= 0) {
            return fail(Errc::bad_address, fmt::format("{}: bad port", url));
        }
    }
    if (u.has_userinfo()) {
        a.user = std::string(u.user());
        a.password = std::string(u.password());
    }
    const std::string path(u.path());
    if (!path.empty() && path != "/") {
        try {
            std::size_t used = 0;
            a.db = std::stoi(path.substr(1), &used);
            if (used != path.size() - 1 || a.db < 0) {
                throw std::invalid_argument("db");
            }
        } catch (const std::exception&) {
            return fail(Errc::bad_address,
                        fmt::format("{}: the path must be a database number", url));
        }
    }
    a.shown = fmt::format("redis {}:{}", a.host, a.port);
    return a;
}

std::string key_of(std::string_view kind, const std::string& slot) {
    const auto digest = crypto::sha256(as_bytes(slot));
    return fmt::format("pqmcp:{}:{{{}}}", kind, to_hex(digest).substr(0, 32));
}

std::string script_sha(std::string_view script) {
    std::array<unsigned char, EVP_MAX_MD_SIZE> md{};
    unsigned int n = 0;
    // SHA-1 only because Redis names scripts by it; nothing is protected by it.
    if (EVP_Digest(script.data(), script.size(), md.data(), &n, EVP_sha1(), nullptr) != 1) {
        return {};
    }
    return to_hex(ByteView(md.data(), n));
}

}  // namespace pqmcp::cluster::detail
