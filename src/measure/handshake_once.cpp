#include <sys/socket.h>
#include <unistd.h>

#include <array>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "pqmcp/measure/handshake.hpp"

namespace pqmcp::measure {

HandshakeOutcome handshake_once(SSL_CTX* client_ctx, SSL_CTX* server_ctx,
                                const HandshakeTweaks& tweaks) {
    HandshakeOutcome out;
    std::array<int, 2> fds{};
    if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, fds.data()) != 0) {
        out.error = "socketpair";
        return out;
    }
    {
        crypto::SslPtr client(SSL_new(client_ctx));
        crypto::SslPtr server(SSL_new(server_ctx));
        if (!client || !server || SSL_set_fd(client.get(), fds[0]) != 1 ||
            SSL_set_fd(server.get(), fds[1]) != 1) {
            ::close(fds[0]);
            ::close(fds[1]);
            out.error = "SSL_new";
            return out;
        }
        SSL_set_connect_state(client.get());
        SSL_set_accept_state(server.get());
        if (tweaks.resume != nullptr) {
            SSL_set_session(client.get(), tweaks.resume);
        }
        if (tweaks.client_groups != nullptr) {
            SSL_set1_groups_list(client.get(), tweaks.client_groups);
        }
        if (tweaks.client_sigalgs != nullptr) {
            SSL_set1_sigalgs_list(client.get(), tweaks.client_sigalgs);
        }
        bool client_done = false;
        bool server_done = false;
        const auto step = [&out](SSL* ssl, bool& done, const char* who) {
            const int r = SSL_do_handshake(ssl);
            if (r == 1) {
                done = true;
                return true;
            }
            const int e = SSL_get_error(ssl, r);
            if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
                return true;
            }
            std::array<char, 256> buf{};
            ERR_error_string_n(ERR_get_error(), buf.data(), buf.size());
            out.error = std::string(who) + ": " + buf.data();
            ERR_clear_error();
            return false;
        };
        for (int rounds = 0; (!client_done || !server_done) && rounds < 64; ++rounds) {
            if ((!client_done && !step(client.get(), client_done, "client")) ||
                (!server_done && !step(server.get(), server_done, "server"))) {
                break;
            }
        }
        if (client_done && server_done) {
            out.ok = true;
            out.resumed = SSL_session_reused(client.get()) == 1;
            out.client_to_server = BIO_number_written(SSL_get_wbio(client.get()));
            out.server_to_client = BIO_number_written(SSL_get_wbio(server.get()));
            if (tweaks.want_session) {
                char byte = 0;
                (void)SSL_read(client.get(), &byte, 1);  // processes NewSessionTicket
                ERR_clear_error();
                out.session.reset(SSL_get1_session(client.get()));
            }
        } else if (out.error.empty()) {
            out.error = "handshake did not finish";
        }
        // Without this SSL_free marks the session not resumable (an unclean
        // close); the measurement skips the close_notify exchange itself.
        SSL_set_shutdown(client.get(), SSL_SENT_SHUTDOWN | SSL_RECEIVED_SHUTDOWN);
        SSL_set_shutdown(server.get(), SSL_SENT_SHUTDOWN | SSL_RECEIVED_SHUTDOWN);
    }
    ::close(fds[0]);
    ::close(fds[1]);
    return out;
}

}  // namespace pqmcp::measure
