#include "server_tls.hpp"

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <string>

#include <sys/socket.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <boost/asio/ssl/error.hpp>

namespace pqmcp::transport::detail {

DeadlineSocket::DeadlineSocket(tcp::socket socket)
    : state_(std::make_shared<State>(std::move(socket))) {}

void DeadlineSocket::expires_after(std::chrono::steady_clock::duration after) {
    set_deadline(Clock::now() + after);
}

void DeadlineSocket::disarm() {
    State& s = *state_;
    if (s.armed) {
        s.armed = false;
        ++s.generation;
        s.timer.cancel();
    }
}

int DeadlineSocket::release(tcp& protocol) {
    disarm();
    boost::system::error_code ec;
    protocol = state_->socket.local_endpoint(ec).protocol();
    const int fd = ec ? -1 : state_->socket.release(ec);
    // Its socket and timer belong to this thread's context: they go here.
    // A timer handler still queued finds the state gone (it holds a weak_ptr).
    state_.reset();
    return ec ? -1 : fd;
}

void DeadlineSocket::adopt(tcp::socket socket) {
    state_ = std::make_shared<State>(std::move(socket));
}

void DeadlineSocket::expires_never() {
    set_deadline(Clock::time_point::max());
}

void DeadlineSocket::set_deadline(Clock::time_point deadline) {
    disarm();
    State& s = *state_;
    ++s.generation;
    s.expired = false;
    s.deadline = deadline;
}

// The BIO's side: the socket, read at each call (a closed socket reads and
// writes nothing, whatever descriptor number it had); bytes for OpenSSL read
// by an Asio operation while it waited; bytes from OpenSSL the socket would
// not take yet (at most one write's worth: the BIO refuses more until they
// are out); the end of input; the errno of the last failed call.
struct SocketIo {
    tcp::socket* socket = nullptr;
    std::array<char, 512> input{};
    std::size_t input_begin = 0;
    std::size_t input_end = 0;
    std::string output;
    bool eof = false;
    int error = 0;
};

namespace {

// The classic BIO signatures: -1 is a failure (retryable when the retry flag
// is set), which the record layer needs to tell a failed write from an empty one.
int bio_write(BIO* bio, const char* data, int size) {
    auto* io = static_cast<SocketIo*>(BIO_get_data(bio));
    BIO_clear_retry_flags(bio);
    if (!io->output.empty()) {
        BIO_set_retry_write(bio);  // what is held goes first
        return -1;
    }
    if (!io->socket->is_open()) {
        io->error = EBADF;
        return -1;
    }
    const auto length = static_cast<std::size_t>(size);
    // MSG_NOSIGNAL: a peer that went away is an error here, not SIGPIPE.
    const ssize_t n = ::send(io->socket->native_handle(), data, length, MSG_NOSIGNAL);
    if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
        io->error = errno;
        return -1;
    }
    // What the socket did not take waits for an Asio write (ServerTls::Op).
    const auto sent = static_cast<std::size_t>(std::max<ssize_t>(n, 0));
    if (sent < length) {
        io->output.assign(data + sent, length - sent);
    }
    return size;
}

int bio_read(BIO* bio, char* data, int size) {
    auto* io = static_cast<SocketIo*>(BIO_get_data(bio));
    BIO_clear_retry_flags(bio);
    const auto length = static_cast<std::size_t>(size);
    if (io->input_begin < io->input_end) {
        const std::size_t n = std::min(length, io->input_end - io->input_begin);
        std::memcpy(data, io->input.data() + io->input_begin, n);
        io->input_begin += n;
        return static_cast<int>(n);
    }
    if (io->eof) {
        return 0;
    }
    if (!io->socket->is_open()) {
        io->error = EBADF;
        return -1;
    }
    const ssize_t n = ::recv(io->socket->native_handle(), data, length, 0);
    if (n > 0) {
        return static_cast<int>(n);
    }
    if (n == 0) {
        io->eof = true;
        return 0;
    }
    io->error = errno;
    if (io->error == EAGAIN || io->error == EWOULDBLOCK || io->error == EINTR) {
        BIO_set_retry_read(bio);
    }
    return -1;
}

long bio_ctrl(BIO* bio, int command, long /*number*/,
              void* /*pointer*/) {  // NOLINT(google-runtime-int): OpenSSL's type
    switch (command) {
        case BIO_CTRL_FLUSH:
            return 1;
        case BIO_CTRL_EOF:
            return static_cast<SocketIo*>(BIO_get_data(bio))->eof ? 1 : 0;
        default:
            return 0;
    }
}

int bio_create(BIO* bio) {
    BIO_set_init(bio, 1);
    return 1;
}

const BIO_METHOD* socket_method() {
    static const BIO_METHOD* const method = [] {
        BIO_METHOD* m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "pqmcp socket");
        if (m == nullptr || BIO_meth_set_write(m, bio_write) != 1 ||
            BIO_meth_set_read(m, bio_read) != 1 || BIO_meth_set_ctrl(m, bio_ctrl) != 1 ||
            BIO_meth_set_create(m, bio_create) != 1) {
            throw std::runtime_error("OpenSSL: cannot make the socket BIO method");
        }
        return m;
    }();
    return method;
}

}  // namespace

ServerTls::ServerTls(tcp::socket socket, asio::ssl::context& context)
    : next_(std::move(socket)), io_(std::make_unique<SocketIo>()) {
    io_->socket = &next_.socket();
    next_.socket().non_blocking(true);
    ssl_ = SSL_new(context.native_handle());
    BIO* bio = BIO_new(socket_method());
    if (ssl_ == nullptr || bio == nullptr) {
        BIO_free(bio);
        SSL_free(ssl_);
        throw std::runtime_error("OpenSSL: cannot make a connection");
    }
    BIO_set_data(bio, io_.get());
    SSL_set_bio(ssl_, bio, bio);  // the connection owns it
    SSL_set_mode(ssl_, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                           SSL_MODE_RELEASE_BUFFERS);
    // A record's header and body in one recv(2), and the records that came
    // with it: one system call per request instead of two.
    SSL_set_read_ahead(ssl_, 1);
    SSL_set_accept_state(ssl_);
}

void ServerTls::adopt_socket(tcp::socket socket) {
    next_.adopt(std::move(socket));
    io_->socket = &next_.socket();
    next_.socket().non_blocking(true);
}

ServerTls::~ServerTls() {
    SSL_free(ssl_);
}

bool ServerTls::has_output() const {
    return !io_->output.empty();
}

asio::const_buffer ServerTls::output() const {
    return asio::buffer(io_->output);
}

void ServerTls::output_sent() {
    std::string().swap(io_->output);  // an idle connection holds none
}

asio::mutable_buffer ServerTls::input_space() {
    return asio::buffer(io_->input);
}

void ServerTls::received(std::size_t bytes) {
    io_->input_begin = 0;
    io_->input_end = bytes;
}

void ServerTls::input_ended() {
    io_->eof = true;
}

ServerTls::Step ServerTls::outcome(int ret, std::size_t bytes) {
    if (ret > 0) {
        return {{}, bytes};
    }
    switch (SSL_get_error(ssl_, ret)) {
        case SSL_ERROR_WANT_READ:
            return {{}, 0, Step::Want::read};
        case SSL_ERROR_WANT_WRITE:
            return {{}, 0, Step::Want::write};
        case SSL_ERROR_ZERO_RETURN:
            return {asio::error::eof};
        case SSL_ERROR_SYSCALL:
            // The socket failed, or the peer closed it without close_notify.
            ERR_clear_error();
            if (io_->error != 0 && !io_->eof) {
                return {boost::system::error_code(io_->error, boost::system::system_category())};
            }
            return {asio::ssl::error::stream_truncated};
        default: {
            const unsigned long code =
                ERR_get_error();  // NOLINT(google-runtime-int): OpenSSL's type
            ERR_clear_error();
            if (ERR_GET_REASON(code) == SSL_R_UNEXPECTED_EOF_WHILE_READING) {
                return {asio::ssl::error::stream_truncated};
            }
            if (code == 0) {  // a want this stream does not serve (X.509 lookup, async...)
                return {boost::system::errc::make_error_code(boost::system::errc::protocol_error)};
            }
            return {
                boost::system::error_code(static_cast<int>(code), asio::error::get_ssl_category())};
        }
    }
}

ServerTls::Step ServerTls::handshake_step() {
    ERR_clear_error();
    io_->error = 0;
    return outcome(SSL_do_handshake(ssl_), 0);
}

ServerTls::Step ServerTls::read_step(asio::mutable_buffer into) {
    if (into.size() == 0) {
        return {};
    }
    ERR_clear_error();
    io_->error = 0;
    std::size_t read = 0;
    const int ret = SSL_read_ex(ssl_, into.data(), into.size(), &read);
    return outcome(ret, read);
}

ServerTls::Step ServerTls::write_step(asio::const_buffer from) {
    if (from.size() == 0) {
        return {};
    }
    ERR_clear_error();
    io_->error = 0;
    std::size_t written = 0;
    const int ret = SSL_write_ex(ssl_, from.data(), from.size(), &written);
    return outcome(ret, written);
}

ServerTls::Step ServerTls::shutdown_step() {
    ERR_clear_error();
    io_->error = 0;
    if ((SSL_get_shutdown(ssl_) & SSL_SENT_SHUTDOWN) == 0) {
        const int ret = SSL_shutdown(ssl_);
        if (ret != 0) {
            return ret > 0 ? Step{} : outcome(ret, 0);  // 1: the peer's had come already
        }
    }
    // Ours is out. What the peer still sends is read and dropped until its
    // close_notify or its close: closing with input unread would reset the
    // connection, which can destroy the response the peer has not read yet
    // (RFC 9112, 9.6). The caller's deadline bounds the wait; a few records a
    // step, so that a fast sender does not hold the thread, each read whole
    // (a record's plaintext is at most 16 KiB), so OpenSSL holds none back.
    std::array<char, 16'384> sink{};
    for (int records = 0; records < 16; ++records) {
        ERR_clear_error();
        std::size_t dropped = 0;
        const int ret = SSL_read_ex(ssl_, sink.data(), sink.size(), &dropped);
        if (ret > 0) {
            continue;
        }
        const Step step = outcome(ret, 0);
        if (step.ec == asio::error::eof) {
            return {};  // its close_notify
        }
        return step;  // wait for more, or the peer closed without one
    }
    return {{}, 0, Step::Want::read};
}

}  // namespace pqmcp::transport::detail
