// The REST client: a bounded pool of keep-alive connections and one HTTP
// exchange per request, with a deadline and response limits. See rest_client.hpp.
#include "pqmcp/transport/rest_client.hpp"

#include <deque>

#include <boost/asio/post.hpp>

#include "beast.hpp"
#include "pqmcp/core/descriptor.hpp"
#include "pqmcp/core/scope.hpp"
#include "pqmcp/tls/context.hpp"

namespace pqmcp::transport {

using namespace detail;  // NOLINT(google-build-using-namespace): this component's own helpers
using Clock = std::chrono::steady_clock;

namespace {

struct RestConnection {
    std::unique_ptr<beast::tcp_stream> plain;
    std::unique_ptr<TlsStream> tls;
    beast::flat_buffer buffer;
    std::optional<tls::HandshakeInfo> info;

    beast::tcp_stream& lowest() { return tls ? beast::get_lowest_layer(*tls) : *plain; }
    void close() {
        boost::system::error_code ignored;
        lowest().socket().shutdown(tcp::socket::shutdown_both, ignored);
        lowest().socket().close(ignored);
    }
};

struct Outcome {
    Result<RestResponse> response = pqmcp::fail(Errc::closed, "not sent");
    bool keep = false;          // the connection can serve another request
    bool nothing_back = false;  // the peer closed before a byte of the answer
};

}  // namespace

struct RestClient::Impl : std::enable_shared_from_this<RestClient::Impl> {
    Impl(const asio::any_io_executor& executor, RestClientOptions o)
        : ex(executor), options(std::move(o)), resolver(executor) {}

    asio::any_io_executor ex;
    RestClientOptions options;
    tcp::resolver resolver;
    std::vector<std::unique_ptr<RestConnection>> idle;
    std::size_t busy = 0;
    std::deque<asio::steady_timer*> waiters;
    bool closed = false;

    [[nodiscard]] std::string where() const { return options.base.authority(); }

    void wake_one() {
        if (!waiters.empty()) {
            waiters.front()->cancel();
        }
    }

    asio::awaitable<Result<std::unique_ptr<RestConnection>>> connect(Clock::time_point deadline) {
        const auto self = shared_from_this();
        auto [rec, endpoints] = co_await resolver.async_resolve(
            options.base.host, std::to_string(options.base.port), use);
        if (rec) {
            co_return pqmcp::fail(Errc::connect_failed,
                                  where() + ": cannot resolve: " + rec.message());
        }
        auto conn = std::make_unique<RestConnection>();
        beast::tcp_stream tcp_stream(ex);
        tcp_stream.expires_at(std::min(deadline, Clock::now() + options.connect_timeout));
        auto [cec, endpoint] = co_await tcp_stream.async_connect(endpoints, use);
        if (cec) {
            co_return pqmcp::fail(
                Errc::connect_failed,
                where() + ": " +
                    (cec == beast::error::timeout
                         ? "no TCP connection within " +
                               std::to_string(options.connect_timeout.count()) + " ms"
                         : cec.message()));
        }
        keep_from_children(tcp_stream.socket().native_handle());
        boost::system::error_code ignored;
        tcp_stream.socket().set_option(tcp::no_delay(true), ignored);
        if (!options.base.tls) {
            conn->plain = std::make_unique<beast::tcp_stream>(std::move(tcp_stream));
            co_return conn;
        }
        if (options.tls == nullptr) {
            co_return pqmcp::fail(Errc::connect_failed, where() + ": https needs a TLS context");
        }
        asio::ssl::context ctx(options.tls);
        SSL_CTX_up_ref(options.tls);  // the asio context frees its reference
        conn->tls = std::make_unique<TlsStream>(std::move(tcp_stream), ctx);
        SSL* native = conn->tls->native_handle();
        const std::string& name =
            options.server_name.empty() ? options.base.host : options.server_name;
        // SNI for a name (never for an address), and the certificate must be for it.
        boost::system::error_code addr_ec;
        (void)asio::ip::make_address(name, addr_ec);
        if (addr_ec) {
            (void)SSL_ctrl(native, SSL_CTRL_SET_TLSEXT_HOSTNAME, TLSEXT_NAMETYPE_host_name,
                           const_cast<char*>(name.c_str()));
        }
        if (SSL_set1_host(native, name.c_str()) != 1) {
            co_return pqmcp::fail(Errc::connect_failed,
                                  where() + ": cannot verify the name " + name);
        }
        beast::get_lowest_layer(*conn->tls)
            .expires_at(std::min(deadline, Clock::now() + options.connect_timeout));
        auto [hec] = co_await conn->tls->async_handshake(asio::ssl::stream_base::client, use);
        if (hec) {
            std::string detail;
            const long verify = SSL_get_verify_result(native);
            if (verify != X509_V_OK) {
                detail = "the server's certificate is refused: " +
                         std::string(X509_verify_cert_error_string(verify));
            } else if (hec == beast::error::timeout) {
                detail = "no TLS handshake within " +
                         std::to_string(options.connect_timeout.count()) + " ms";
            } else {
                detail = "TLS handshake failed: " + hec.message();
                const auto alerts = tls::last_alerts(native);
                if (!alerts.received.empty()) {
                    detail += "; alert received: " + alerts.received;
                }
            }
            co_return pqmcp::fail(Errc::connect_failed, where() + ": " + detail);
        }
        conn->info = tls::handshake_info(native);
        co_return conn;
    }

    template <typename Stream>
    asio::awaitable<Outcome> exchange_on(Stream& stream, RestConnection& conn, const RestRequest& r,
                                         Clock::time_point deadline) {
        Outcome out;
        const http::verb verb = http::string_to_verb(r.method);
        if (verb == http::verb::unknown) {
            out.response = pqmcp::fail(Errc::protocol_error, "unknown HTTP method " + r.method);
            co_return out;
        }
        http::request<http::string_body> req{verb, r.target, 11};
        req.set(http::field::host, options.base.authority());
        req.set(http::field::user_agent, "pqmcp");
        for (const auto& [name, value] : r.headers) {
            req.insert(beast::string_view(name.data(), name.size()),
                       beast::string_view(value.data(), value.size()));
        }
        if (!r.content_type.empty()) {
            req.set(http::field::content_type, r.content_type);
        }
        req.body() = r.body;
        req.keep_alive(true);
        req.prepare_payload();
        conn.lowest().expires_at(deadline);
        auto [wec, written] = co_await http::async_write(stream, req, use);
        if (wec) {
            out.nothing_back = true;
            out.response =
                pqmcp::fail(wec == beast::error::timeout ? Errc::timeout : Errc::io_error,
                            where() + ": sending the request: " + wec.message());
            co_return out;
        }
        http::response_parser<http::string_body> parser;
        parser.header_limit(static_cast<std::uint32_t>(options.max_header_bytes));
        parser.body_limit(options.max_response_bytes);
        if (verb == http::verb::head) {
            parser.skip(true);
        }
        auto [hec, n] = co_await http::async_read_header(stream, conn.buffer, parser, use);
        if (hec) {
            out.nothing_back =
                n == 0 &&
                (hec == http::error::end_of_stream || hec == asio::error::eof ||
                 hec == asio::error::connection_reset || hec == asio::ssl::error::stream_truncated);
            out.response =
                pqmcp::fail(hec == beast::error::timeout       ? Errc::timeout
                            : hec == http::error::header_limit ? Errc::too_large
                                                               : Errc::io_error,
                            where() + ": " +
                                (hec == beast::error::timeout
                                     ? "no answer within " +
                                           std::to_string(options.request_timeout.count()) + " ms"
                                     : "reading the answer: " + hec.message()));
            co_return out;
        }
        RestResponse res;
        {
            const auto& h = parser.get();
            res.status = h.result_int();
            res.reason = std::string(sv(h.reason()));
            if (const auto ct = h.find(http::field::content_type); ct != h.end()) {
                res.content_type = std::string(sv(ct->value()));
            }
            if (const auto loc = h.find(http::field::location); loc != h.end()) {
                res.location = std::string(sv(loc->value()));
            }
        }
        if (!parser.is_done()) {
            auto [bec, m] = co_await http::async_read(stream, conn.buffer, parser, use);
            if (bec == http::error::body_limit) {
                res.truncated = true;
                res.tls = conn.info;
                out.response = std::move(res);
                co_return out;  // the rest is not read: the connection goes
            }
            if (bec) {
                out.response =
                    pqmcp::fail(bec == beast::error::timeout ? Errc::timeout : Errc::io_error,
                                where() + ": reading the answer's body: " + bec.message());
                co_return out;
            }
        }
        out.keep = parser.get().keep_alive();
        res.body = std::move(parser.get().body());
        res.tls = conn.info;
        out.response = std::move(res);
        co_return out;
    }

    asio::awaitable<Outcome> exchange(RestConnection& conn, const RestRequest& r,
                                      Clock::time_point deadline) {
        if (conn.tls) {
            co_return co_await exchange_on(*conn.tls, conn, r, deadline);
        }
        co_return co_await exchange_on(*conn.plain, conn, r, deadline);
    }

    asio::awaitable<Result<RestResponse>> run(RestRequest r) {
        const auto self = shared_from_this();
        const auto deadline = Clock::now() + options.request_timeout;
        const auto wait_until = std::min(deadline, Clock::now() + options.pool_wait);
        while (busy >= options.max_connections && !closed) {
            if (Clock::now() >= wait_until) {
                co_return pqmcp::fail(Errc::timeout,
                                      where() + ": no connection became free within " +
                                          std::to_string(options.pool_wait.count()) + " ms (" +
                                          std::to_string(busy) + " requests in flight, the limit)");
            }
            asio::steady_timer turn(ex, wait_until);
            waiters.push_back(&turn);
            (void)co_await turn.async_wait(use);
            std::erase(waiters, &turn);
        }
        if (closed) {
            co_return pqmcp::fail(Errc::closed, "the client is closed");
        }
        ++busy;
        const OnExit slot([this] {
            --busy;
            wake_one();
        });
        // A kept-alive connection the server closed meanwhile fails before a
        // byte of the answer: the request goes again on a new one, once.
        for (int attempt = 0; attempt < 2; ++attempt) {
            std::unique_ptr<RestConnection> conn;
            bool reused = false;
            if (attempt == 0 && !idle.empty()) {
                conn = std::move(idle.back());
                idle.pop_back();
                reused = true;
            } else {
                auto made = co_await connect(deadline);
                if (!made) {
                    co_return tl::unexpected(made.error());
                }
                conn = std::move(*made);
            }
            Outcome out = co_await exchange(*conn, r, deadline);
            if (!out.response && reused && out.nothing_back) {
                conn->close();
                continue;
            }
            if (out.response) {
                out.response->reused = reused;
            }
            if (out.keep && !closed && idle.size() < options.max_connections) {
                idle.push_back(std::move(conn));
            } else {
                conn->close();
            }
            co_return std::move(out.response);
        }
        co_return pqmcp::fail(Errc::io_error, where() + ": the connection closed twice");
    }
};

RestClient::RestClient(const asio::any_io_executor& executor, RestClientOptions options)
    : impl_(std::make_shared<Impl>(executor, std::move(options))) {}

RestClient::~RestClient() {
    impl_->closed = true;
    for (auto& c : impl_->idle) {
        c->close();
    }
    impl_->idle.clear();
    for (auto* w : impl_->waiters) {
        w->cancel();
    }
}

void RestClient::send(RestRequest request, Done done) {
    auto impl = impl_;
    // Posted: the answer never comes from inside send().
    asio::post(impl->ex, [impl, request = std::move(request), done = std::move(done)]() mutable {
        asio::co_spawn(impl->ex, impl->run(std::move(request)),
                       [impl, done = std::move(done)](const std::exception_ptr& e,
                                                      Result<RestResponse> result) {
                           if (impl->closed) {
                               return;
                           }
                           if (e) {
                               done(pqmcp::fail(Errc::io_error, "the request failed"));
                               return;
                           }
                           done(std::move(result));
                       });
    });
}

}  // namespace pqmcp::transport
