#include "pqmcp/oauth/login.hpp"

#include <algorithm>
#include <memory>
#include <optional>
#include <utility>

#include <spdlog/spdlog.h>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/empty_body.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>
#include <boost/url/parse.hpp>
#include <boost/url/url.hpp>

#include "fetch.hpp"
#include "pqmcp/core/bytes.hpp"
#include "pqmcp/crypto/util.hpp"
#include "pqmcp/transport/http_util.hpp"

namespace pqmcp::oauth {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = boost::beast::http;
using tcp = asio::ip::tcp;

namespace {

constexpr auto use = asio::as_tuple(asio::use_awaitable);
constexpr std::size_t k_max_header_bytes = 16U << 10U;
constexpr std::size_t k_max_connections = 8;

// RFC 7636 appendix A: base64url without padding.
std::string base64url(ByteView data) {
    std::string s = crypto::to_base64(data);
    while (!s.empty() && s.back() == '=') {
        s.pop_back();
    }
    std::replace(s.begin(), s.end(), '+', '-');
    std::replace(s.begin(), s.end(), '/', '_');
    return s;
}

Result<std::string> random_text(std::size_t bytes) {
    auto raw = crypto::random_bytes(bytes);
    if (!raw) {
        return tl::unexpected(raw.error());
    }
    return base64url(*raw);
}

// What the browser brought back to the redirect URI.
struct Callback {
    std::string code;
    std::string state;
    std::string iss;
    std::string error;
    std::string error_description;
};

struct Flow : std::enable_shared_from_this<Flow> {
    Flow(asio::io_context& i, const LoginOptions& o)
        : io(i), options(o), acceptor(i), deadline(i) {}

    asio::io_context& io;
    const LoginOptions& options;
    tcp::acceptor acceptor;
    asio::steady_timer deadline;
    detail::ServerMetadata server;
    std::string verifier;
    std::string state;
    std::string redirect_uri;
    std::optional<Result<StoredGrant>> result;
    std::size_t connections = 0;
    bool answered = false;

    void finish(Result<StoredGrant> r) {
        if (result) {
            return;
        }
        result = std::move(r);
        boost::system::error_code ignored;
        acceptor.close(ignored);
        deadline.cancel();
        io.stop();
    }

    void start() {
        detail::Discovery what{options.resource, options.issuer, options.resource_tls, options.tls,
                               options.timeout};
        detail::discover(io.get_executor(), std::move(what),
                         [self = shared_from_this()](Result<detail::ServerMetadata> found) {
                             if (!found) {
                                 self->finish(tl::unexpected(found.error()));
                                 return;
                             }
                             self->server = std::move(*found);
                             self->authorize();
                         });
    }

    void authorize() {
        if (server.authorization_endpoint.empty()) {
            finish(fail(Errc::login_failed,
                        server.issuer + " has no authorization_endpoint in its metadata"));
            return;
        }
        // MCP authorization (2025-11-25), Authorization Code Protection: "If
        // code_challenge_methods_supported is absent, the authorization
        // server does not support PKCE and MCP clients MUST refuse to
        // proceed." and "MCP clients MUST use the S256 code challenge method
        // when technically capable".
        const auto& methods = server.code_challenge_methods;
        if (std::find(methods.begin(), methods.end(), "S256") == methods.end()) {
            finish(fail(Errc::login_failed,
                        server.issuer + " does not offer PKCE with S256 "
                                        "(code_challenge_methods_supported): refusing to proceed"));
            return;
        }
        auto v = random_text(32);  // RFC 7636 section 4.1: 43 characters, 256 bits
        auto s = random_text(16);
        if (!v || !s) {
            finish(tl::unexpected(!v ? v.error() : s.error()));
            return;
        }
        verifier = std::move(*v);
        state = std::move(*s);
        const auto digest = crypto::sha256(as_bytes(verifier));

        // RFC 8252 section 7.3: the loopback IP literal, a port of our own.
        boost::system::error_code ec;
        const tcp::endpoint at(asio::ip::make_address_v4("127.0.0.1"), options.port);
        acceptor.open(at.protocol(), ec);
        if (!ec) {
            acceptor.set_option(tcp::acceptor::reuse_address(true), ec);
        }
        if (!ec) {
            acceptor.bind(at, ec);
        }
        if (!ec) {
            acceptor.listen(4, ec);
        }
        if (ec) {
            finish(fail(Errc::login_failed,
                        "cannot listen on 127.0.0.1:" + std::to_string(options.port) + ": " +
                            ec.message()));
            return;
        }
        redirect_uri =
            "http://127.0.0.1:" + std::to_string(acceptor.local_endpoint().port()) + "/callback";

        auto url = boost::urls::parse_uri(server.authorization_endpoint);
        // The MCP specification: "All authorization server endpoints MUST be
        // served over HTTPS" (plain HTTP only on loopback, for tests).
        const bool https = url && url->scheme() == "https";
        const bool loopback_http =
            url && url->scheme() == "http" && transport::is_loopback_host(std::string(url->host()));
        if (url && !https && !loopback_http) {
            finish(fail(Errc::login_failed,
                        "authorization_endpoint is not https: " + server.authorization_endpoint));
            return;
        }
        if (!url) {
            finish(fail(Errc::login_failed,
                        "authorization_endpoint is not a URL: " + server.authorization_endpoint));
            return;
        }
        boost::urls::url request(*url);
        request.params().append({"response_type", "code"});
        request.params().append({"client_id", options.client_id});
        request.params().append({"redirect_uri", redirect_uri});
        request.params().append({"code_challenge", base64url(digest)});
        request.params().append({"code_challenge_method", "S256"});
        request.params().append({"state", state});
        // RFC 8707 section 2, and the MCP specification: "MCP clients MUST
        // include the resource parameter in both authorization requests and
        // token requests".
        request.params().append({"resource", server.resource});
        // MCP authorization (2025-11-25), Scope Selection Strategy: without
        // scopes of our own, those of the resource's scopes_supported; none
        // when it names none.
        const auto& scopes = options.scopes.empty() ? server.resource_scopes : options.scopes;
        if (!scopes.empty()) {
            std::string scope;
            for (const auto& one : scopes) {
                scope.append(scope.empty() ? "" : " ").append(one);
            }
            request.params().append({"scope", scope});
        }
        deadline.expires_after(options.wait);
        deadline.async_wait([self = shared_from_this()](const boost::system::error_code& e) {
            if (!e) {
                self->finish(fail(Errc::login_failed,
                                  "the browser did not come back within " +
                                      std::to_string(self->options.wait.count()) + " s"));
            }
        });
        if (options.show) {
            options.show(std::string(request.buffer()), redirect_uri);
        }
        asio::co_spawn(io, accept_loop(), asio::detached);
    }

    // Each connection on its own (a local process that connects and says
    // nothing does not hold up the browser), a few at a time, each given
    // 5 s for its request.
    asio::awaitable<void> accept_loop() {
        auto self = shared_from_this();
        while (!result) {
            auto [ec, socket] = co_await acceptor.async_accept(use);
            if (ec) {
                co_return;  // closed
            }
            if (connections >= k_max_connections) {
                boost::system::error_code ignored;
                socket.close(ignored);
                continue;
            }
            asio::co_spawn(io, serve(std::move(socket)), asio::detached);
        }
    }

    asio::awaitable<void> serve(tcp::socket socket) {
        auto self = shared_from_this();
        ++connections;
        auto got = co_await one_request(std::move(socket));
        --connections;
        // The first answer with our state is the answer; any later one
        // (a replay, a second tab) changes nothing.
        if (got && !answered) {
            answered = true;
            handle(std::move(*got));
        }
    }

    // One request on one connection: the callback, or anything else (a
    // browser's favicon, a stray client) answered and forgotten.
    asio::awaitable<std::optional<Callback>> one_request(tcp::socket socket) {
        beast::tcp_stream stream(std::move(socket));
        beast::flat_buffer buffer;
        http::request_parser<http::empty_body> parser;
        parser.header_limit(k_max_header_bytes);
        parser.body_limit(0);
        stream.expires_after(std::chrono::seconds{5});
        auto [ec, n] = co_await http::async_read(stream, buffer, parser, use);
        if (ec) {
            co_return std::nullopt;
        }
        const auto& req = parser.get();
        auto target = boost::urls::parse_origin_form(req.target());
        std::optional<Callback> out;
        http::status status = http::status::not_found;
        std::string page = "not here\n";
        if (target && target->path() == "/callback" && req.method() == http::verb::get) {
            Callback cb;
            for (const auto& p : target->params()) {
                if (p.key == "code") {
                    cb.code = p.value;
                } else if (p.key == "state") {
                    cb.state = p.value;
                } else if (p.key == "iss") {
                    cb.iss = p.value;
                } else if (p.key == "error") {
                    cb.error = p.value;
                } else if (p.key == "error_description") {
                    cb.error_description = p.value;
                }
            }
            // RFC 6749 section 10.12: an answer without our state is not an
            // answer to our request (a forged one on loopback): ignored.
            if (cb.state != state) {
                status = http::status::bad_request;
                page = "this is not the answer to pqmcp's authorization request\n";
                spdlog::warn(
                    "oauth login: a request to the redirect URI without our state: ignored");
            } else {
                status = http::status::ok;
                page = cb.error.empty() ? "pqmcp is authorized: you can close this window.\n"
                                        : "pqmcp was not authorized: " + cb.error + "\n";
                out = std::move(cb);
            }
        }
        http::response<http::string_body> res{status, req.version()};
        res.set(http::field::content_type, "text/plain; charset=utf-8");
        res.set(http::field::cache_control, "no-store");
        res.keep_alive(false);
        res.body() = std::move(page);
        res.prepare_payload();
        co_await http::async_write(stream, res, use);
        boost::system::error_code ignored;
        stream.socket().shutdown(tcp::socket::shutdown_both, ignored);
        co_return out;
    }

    void handle(Callback cb) {
        boost::system::error_code ignored;
        acceptor.close(ignored);
        deadline.cancel();  // the browser is back; the exchange has its own timeout
        if (!cb.error.empty()) {
            // RFC 6749 section 4.1.2.1.
            finish(fail(
                Errc::login_failed,
                "the authorization server answered " + cb.error +
                    (cb.error_description.empty() ? std::string{} : ": " + cb.error_description)));
            return;
        }
        // RFC 9207 section 2.4: an iss that is not the server asked is a
        // mix-up; a server that says it sends iss must send it.
        if ((!cb.iss.empty() && cb.iss != server.issuer) ||
            (cb.iss.empty() && server.iss_parameter)) {
            finish(fail(Errc::login_failed,
                        "the answer came from \"" + cb.iss + "\", not " + server.issuer));
            return;
        }
        if (cb.code.empty()) {
            finish(fail(Errc::login_failed, "the answer has no code"));
            return;
        }
        // RFC 6749 section 4.1.3, RFC 7636 section 4.5, RFC 8707 section 2.
        std::vector<std::pair<std::string, std::string>> form{{"grant_type", "authorization_code"},
                                                              {"code", cb.code},
                                                              {"redirect_uri", redirect_uri},
                                                              {"code_verifier", verifier},
                                                              {"resource", server.resource}};
        detail::request_token(
            io.get_executor(), server.token_endpoint, options.tls, options.timeout,
            {options.client_id, options.client_secret}, form,
            [self = shared_from_this()](Result<detail::TokenResponse> got) {
                if (!got) {
                    self->finish(tl::unexpected(got.error()));
                    return;
                }
                if (got->refresh_token.empty()) {
                    self->finish(fail(Errc::login_failed,
                                      "the authorization server issued no refresh token (the "
                                      "client may need the refresh_token grant, or a scope such "
                                      "as offline_access)"));
                    return;
                }
                StoredGrant grant;
                grant.resource = self->server.resource;
                grant.issuer = self->server.issuer;
                grant.client_id = self->options.client_id;
                grant.refresh_token = std::move(got->refresh_token);
                self->finish(std::move(grant));
            });
    }
};

}  // namespace

Result<StoredGrant> login(const LoginOptions& options) {
    asio::io_context io(1);
    auto flow = std::make_shared<Flow>(io, options);
    flow->start();
    io.run();
    if (!flow->result) {
        return fail(Errc::login_failed, "stopped before an answer");
    }
    return std::move(*flow->result);
}

Result<StoredGrant> login_and_store(const LoginOptions& options, const TokenFile& file) {
    auto grant = login(options);
    if (!grant) {
        return grant;
    }
    auto held = file.lock(std::chrono::seconds{30});
    if (!held) {
        return tl::unexpected(held.error());
    }
    if (const Status saved = file.write(*grant); !saved) {
        return tl::unexpected(saved.error());
    }
    return grant;
}

}  // namespace pqmcp::oauth
