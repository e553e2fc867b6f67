#include "pqmcp/tls/web.hpp"

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "pqmcp/tls/errors.hpp"

namespace pqmcp::tls {

namespace {

std::string openssl_errors() {
    std::string out;
    unsigned long e = 0;
    while ((e = ERR_get_error()) != 0) {
        char buf[256];
        ERR_error_string_n(e, buf, sizeof buf);
        out += (out.empty() ? "" : "; ") + std::string(buf);
    }
    return out;
}

}  // namespace

Result<crypto::SslCtxPtr> make_web_client_context(const WebClientOptions& options) {
    ERR_clear_error();
    crypto::SslCtxPtr ctx(SSL_CTX_new(TLS_client_method()));
    if (!ctx) {
        return fail(Errc::context_failed, "SSL_CTX_new: " + openssl_errors());
    }
    if (SSL_CTX_set_min_proto_version(ctx.get(), TLS1_2_VERSION) != 1 ||
        SSL_CTX_set1_groups_list(ctx.get(), k_web_groups) != 1) {
        return fail(Errc::context_failed,
                    "groups " + std::string(k_web_groups) + ": " + openssl_errors());
    }
    const std::string ca =
        options.ca_file.empty() ? std::string(k_system_ca_file) : options.ca_file.string();
    if (SSL_CTX_load_verify_file(ctx.get(), ca.c_str()) != 1) {
        return fail(Errc::context_failed,
                    "the CA certificates in " + ca + " cannot be read: " + openssl_errors());
    }
    SSL_CTX_set_verify(ctx.get(), SSL_VERIFY_PEER, nullptr);
    SSL_CTX_set_mode(ctx.get(), SSL_MODE_RELEASE_BUFFERS);
    // No renegotiation, no compression (already off in 3.x builds).
    SSL_CTX_set_options(ctx.get(), SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION);
    return ctx;
}

}  // namespace pqmcp::tls
