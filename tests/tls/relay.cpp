#include "relay.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <stdexcept>

namespace pqmcp::tls::test {
namespace {

constexpr std::size_t k_record_header = 5;

class Fd final {
  public:
    explicit Fd(int fd = -1) : fd_(fd) {}
    ~Fd() {
        if (fd_ >= 0) {
            ::close(fd_);
        }
    }
    Fd(const Fd&) = delete;
    Fd& operator=(const Fd&) = delete;
    Fd(Fd&&) = delete;
    Fd& operator=(Fd&&) = delete;
    [[nodiscard]] int get() const { return fd_; }

  private:
    int fd_;
};

bool write_all(int fd, const std::uint8_t* data, std::size_t size) {
    while (size > 0) {
        const ssize_t n = ::send(fd, data, size, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            return false;
        }
        data += n;
        size -= static_cast<std::size_t>(n);
    }
    return true;
}

void set_nodelay(int fd) {
    const int one = 1;
    (void)::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

struct Pipe {
    Direction direction;
    int from;
    int to;
    std::vector<std::uint8_t> buffer;
    std::size_t records = 0;
    bool open = true;
};

}  // namespace

Relay::Relay(Options options) : options_(std::move(options)) {
    listener_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = 0;
    socklen_t len = sizeof addr;
    if (listener_ < 0 || ::bind(listener_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
        ::listen(listener_, 4) != 0 ||
        ::getsockname(listener_, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
        throw std::runtime_error("relay: listen failed");
    }
    port_ = ntohs(addr.sin_port);
    thread_ = std::thread([this] { run(); });
}

Relay::~Relay() {
    join();
    if (listener_ >= 0) {
        ::close(listener_);
    }
}

void Relay::join() {
    if (thread_.joinable()) {
        thread_.join();
    }
}

void Relay::run() {
    const auto deadline = std::chrono::steady_clock::now() + options_.limit;
    const auto remaining_ms = [&deadline] {
        const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
            deadline - std::chrono::steady_clock::now());
        return static_cast<int>(std::max<long long>(0, left.count()));
    };

    pollfd accept_poll{listener_, POLLIN, 0};
    if (::poll(&accept_poll, 1, remaining_ms()) != 1) {
        return;
    }
    const Fd client(::accept4(listener_, nullptr, nullptr, SOCK_CLOEXEC));
    if (client.get() < 0) {
        return;
    }
    const Fd server(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = htons(options_.upstream_port);
    if (server.get() < 0 ||
        ::connect(server.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
        return;
    }
    set_nodelay(client.get());
    set_nodelay(server.get());

    Pipe pipes[2] = {
        {Direction::client_to_server, client.get(), server.get(), {}, 0, true},
        {Direction::server_to_client, server.get(), client.get(), {}, 0, true},
    };
    std::uint8_t chunk[65536];
    while ((pipes[0].open || pipes[1].open) && remaining_ms() > 0) {
        pollfd fds[2];
        nfds_t count = 0;
        Pipe* order[2] = {};
        for (auto& p : pipes) {
            if (p.open) {
                fds[count] = {p.from, POLLIN, 0};
                order[count] = &p;
                ++count;
            }
        }
        const int ready = ::poll(fds, count, remaining_ms());
        if (ready <= 0) {
            break;
        }
        for (nfds_t i = 0; i < count; ++i) {
            if ((fds[i].revents & (POLLIN | POLLHUP | POLLERR)) == 0) {
                continue;
            }
            Pipe& p = *order[i];
            const ssize_t n = ::recv(p.from, chunk, sizeof chunk, 0);
            if (n <= 0) {
                // Forward what is left (a partial record) and the half-close.
                (void)write_all(p.to, p.buffer.data(), p.buffer.size());
                p.buffer.clear();
                ::shutdown(p.to, SHUT_WR);
                p.open = false;
                continue;
            }
            p.buffer.insert(p.buffer.end(), chunk, chunk + n);
            // Complete records only: header (type, version, length) + body.
            while (p.buffer.size() >= k_record_header) {
                const std::size_t body = (static_cast<std::size_t>(p.buffer[3]) << 8) | p.buffer[4];
                if (p.buffer.size() < k_record_header + body) {
                    break;
                }
                std::vector<std::uint8_t> record(
                    p.buffer.begin(),
                    p.buffer.begin() + static_cast<std::ptrdiff_t>(k_record_header + body));
                p.buffer.erase(p.buffer.begin(),
                               p.buffer.begin() + static_cast<std::ptrdiff_t>(record.size()));
                if (options_.hook) {
                    options_.hook(p.direction, p.records, record);
                }
                bool ok = true;
                if (p.direction == Direction::client_to_server && p.records == 0) {
                    first_size_ = record.size();
                    if (options_.trickle_first_client_record) {
                        for (const std::uint8_t byte : record) {
                            ok = ok && write_all(p.to, &byte, 1);
                            ++first_writes_;
                        }
                    } else {
                        ok = write_all(p.to, record.data(), record.size());
                        first_writes_ = 1;
                    }
                } else {
                    ok = write_all(p.to, record.data(), record.size());
                }
                ++p.records;
                if (!ok) {
                    return;  // the receiver is gone; closing both ends tells the other
                }
            }
        }
    }
}

}  // namespace pqmcp::tls::test
