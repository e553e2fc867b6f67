#include "pqmcp/oauth/token_store.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string_view>
#include <system_error>
#include <thread>

#include <openssl/crypto.h>
#include <boost/json.hpp>

#include "fetch.hpp"
#include "pqmcp/core/bytes.hpp"
#include "pqmcp/crypto/aead.hpp"
#include "pqmcp/crypto/util.hpp"

namespace pqmcp::oauth {

namespace json = boost::json;
namespace fs = std::filesystem;

namespace {

constexpr int k_version = 1;
constexpr std::size_t k_max_file = 64U << 10U;  // a refresh token is far smaller

// What the sealed token is bound to: the file's clear fields, each with its length.
Bytes associated_data(const StoredGrant& g) {
    std::string aad = "pqmcp refresh token v1";
    for (const std::string* field : {&g.resource, &g.issuer, &g.client_id}) {
        aad += '\n' + std::to_string(field->size()) + ':';
        aad += *field;
    }
    const ByteView view = as_bytes(aad);
    return {view.begin(), view.end()};
}

}  // namespace

TokenFile::Lock::~Lock() {
    if (fd_ >= 0) {
        ::close(fd_);  // releases the flock
    }
}

Result<TokenFile> TokenFile::open(fs::path path, const EVP_PKEY* identity_key) {
    auto key = crypto::derive_key(identity_key, "pqmcp oauth refresh tokens");
    if (!key) {
        return fail(Errc::store_failed, "no key from the identity: " + key.error().message());
    }
    return TokenFile(std::move(path), std::move(*key));
}

Result<StoredGrant> TokenFile::read() const {
    std::error_code ec;
    if (!fs::exists(path_, ec)) {
        return fail(Errc::not_enrolled, path_.string() + " does not exist");
    }
    std::ifstream in(path_, std::ios::binary);
    std::string text(k_max_file + 1, '\0');
    in.read(text.data(), static_cast<std::streamsize>(text.size()));
    if (in.bad()) {
        return fail(Errc::store_failed, path_.string() + ": cannot be read");
    }
    text.resize(static_cast<std::size_t>(in.gcount()));
    if (text.size() > k_max_file) {
        return fail(Errc::store_failed, path_.string() + ": too large for a token file");
    }
    boost::system::error_code jec;
    const json::value doc = json::parse(text, jec);
    const auto version = !jec && doc.is_object() ? doc.as_object().if_contains("version") : nullptr;
    if (version == nullptr || !version->is_int64() || version->as_int64() != k_version) {
        return fail(Errc::store_failed, path_.string() + ": not a pqmcp token file (version 1)");
    }
    StoredGrant g;
    const auto resource = detail::string_field(doc, "resource");
    const auto issuer = detail::string_field(doc, "issuer");
    const auto client = detail::string_field(doc, "client_id");
    const auto sealed_text = detail::string_field(doc, "sealed");
    const auto sealed = sealed_text ? crypto::from_base64(*sealed_text) : std::nullopt;
    if (!resource || !issuer || !client || !sealed) {
        return fail(Errc::store_failed,
                    path_.string() + ": needs resource, issuer, client_id and sealed (base64)");
    }
    g.resource = *resource;
    g.issuer = *issuer;
    g.client_id = *client;
    const Bytes aad = associated_data(g);
    auto opened = crypto::open_with(key_, *sealed, aad);
    if (!opened) {
        return fail(Errc::store_failed,
                    path_.string() +
                        ": does not open under this identity (enrolled with another identity, "
                        "or altered): run pqmcp auth login again");
    }
    g.refresh_token.assign(opened->begin(), opened->end());
    OPENSSL_cleanse(opened->data(), opened->size());
    return g;
}

Status TokenFile::write(const StoredGrant& g) const {
    const Bytes aad = associated_data(g);
    auto sealed = crypto::seal_with(key_, as_bytes(g.refresh_token), aad);
    if (!sealed) {
        return fail(Errc::store_failed, "sealing the token: " + sealed.error().message());
    }
    json::object doc;
    doc["version"] = k_version;
    doc["resource"] = g.resource;
    doc["issuer"] = g.issuer;
    doc["client_id"] = g.client_id;
    doc["sealed"] = crypto::to_base64(*sealed);
    const std::string text = json::serialize(doc) + "\n";

    std::error_code ec;
    const fs::path dir = path_.has_parent_path() ? path_.parent_path() : fs::path(".");
    if (!fs::exists(dir, ec)) {
        // Only a directory made here is made private; one that was there is
        // the operator's and keeps its modes.
        fs::create_directories(dir, ec);
        if (ec) {
            return fail(Errc::store_failed, dir.string() + ": cannot be created: " + ec.message());
        }
        fs::permissions(dir, fs::perms::owner_all, fs::perm_options::replace, ec);
    }
    // A name of its own (O_EXCL): two writers never share a temporary file.
    auto suffix = crypto::random_bytes(8);
    if (!suffix) {
        return fail(Errc::store_failed, "no randomness for a temporary name");
    }
    std::string hex;
    for (const std::uint8_t b : *suffix) {
        constexpr std::string_view digits = "0123456789abcdef";
        hex += digits[b >> 4U];
        hex += digits[b & 15U];
    }
    const fs::path temporary = path_.string() + ".new-" + hex;
    const int fd = ::open(temporary.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW,
                          S_IRUSR | S_IWUSR);
    if (fd < 0) {
        return fail(Errc::store_failed,
                    temporary.string() + ": cannot be written: " + std::strerror(errno));
    }
    std::size_t done = 0;
    bool ok = ::fchmod(fd, S_IRUSR | S_IWUSR) == 0;
    while (ok && done < text.size()) {
        const ssize_t n = ::write(fd, text.data() + done, text.size() - done);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        ok = n > 0;
        done += ok ? static_cast<std::size_t>(n) : 0;
    }
    ok = ok && ::fsync(fd) == 0;
    ok = (::close(fd) == 0) && ok;
    if (!ok || ::rename(temporary.c_str(), path_.c_str()) != 0) {
        const std::string why = std::strerror(errno);
        ::unlink(temporary.c_str());
        return fail(Errc::store_failed, path_.string() + ": cannot be written: " + why);
    }
    // The rename itself made durable.
    if (const int d = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC); d >= 0) {
        ::fsync(d);
        ::close(d);
    }
    return {};
}

Result<TokenFile::Lock> TokenFile::lock_path(const fs::path& path, std::chrono::milliseconds wait) {
    const auto until = std::chrono::steady_clock::now() + wait;
    for (;;) {
        auto held = try_lock_path(path);
        if (held || std::chrono::steady_clock::now() >= until) {
            return held;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds{50});
    }
}

Result<TokenFile::Lock> TokenFile::lock(std::chrono::milliseconds wait) const {
    return lock_path(path_, wait);
}

Result<TokenFile::Lock> TokenFile::try_lock_path(const fs::path& path_) {
    std::error_code ec;
    if (path_.has_parent_path()) {
        fs::create_directories(path_.parent_path(), ec);
    }
    const fs::path file = path_.string() + ".lock";
    const int fd =
        ::open(file.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, S_IRUSR | S_IWUSR);
    if (fd < 0) {
        return fail(Errc::store_failed, file.string() + ": " + std::strerror(errno));
    }
    Lock lock(fd);
    if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
        return fail(Errc::store_failed, errno == EWOULDBLOCK
                                            ? file.string() + ": busy (another process refreshes)"
                                            : file.string() + ": " + std::strerror(errno));
    }
    return lock;
}

Result<TokenFile::Lock> TokenFile::try_lock() const {
    return try_lock_path(path_);
}

}  // namespace pqmcp::oauth
