// The Streamable HTTP client's connections: a bounded pool with a deadline
// for a free one, TLS or plain connects, and one HTTP exchange with its
// limits and timeouts.
#include "http_client_impl.hpp"

namespace pqmcp::transport {

asio::awaitable<Result<std::unique_ptr<Connection>>> McpHttpClient::Impl::connect() {
    const auto self = shared_from_this();
    const std::string where = options.url.authority();
    auto [rec, endpoints] =
        co_await resolver.async_resolve(options.url.host, std::to_string(options.url.port), use);
    if (rec) {
        co_return pqmcp::fail(Errc::connect_failed, where + ": cannot resolve: " + rec.message());
    }
    auto conn = std::make_unique<Connection>();
    beast::tcp_stream tcp_stream(ex);
    tcp_stream.expires_after(options.connect_timeout);
    auto [cec, endpoint] = co_await tcp_stream.async_connect(endpoints, use);
    if (cec) {
        co_return pqmcp::fail(Errc::connect_failed,
                              where + ": " +
                                  (cec == beast::error::timeout
                                       ? "no TCP connection within " +
                                             std::to_string(options.connect_timeout.count()) + " ms"
                                       : cec.message()));
    }
    keep_from_children(tcp_stream.socket().native_handle());
    boost::system::error_code ignored;
    tcp_stream.socket().set_option(tcp::no_delay(true), ignored);
    if (!options.url.tls) {
        conn->plain = std::make_unique<beast::tcp_stream>(std::move(tcp_stream));
        co_return conn;
    }
    if (!ssl) {
        co_return pqmcp::fail(Errc::connect_failed, where + ": https needs a TLS context");
    }
    conn->tls = std::make_unique<TlsStream>(std::move(tcp_stream), *ssl);
    SSL* native = conn->tls->native_handle();
    if (resumable) {
        (void)SSL_set_session(native, resumable.get());
    }
    if (!options.server_name.empty()) {
        // SSL_set_tlsext_host_name, spelled out: the macro uses a C cast.
        (void)SSL_ctrl(native, SSL_CTRL_SET_TLSEXT_HOSTNAME, TLSEXT_NAMETYPE_host_name,
                       const_cast<char*>(options.server_name.c_str()));
    }
    beast::get_lowest_layer(*conn->tls).expires_after(options.connect_timeout);
    auto [hec] = co_await conn->tls->async_handshake(asio::ssl::stream_base::client, use);
    if (hec) {
        std::string detail;
        if (std::string reason = tls::verification_failure(native); !reason.empty()) {
            detail = "the server's identity is refused: " + reason;
        } else if (hec == beast::error::timeout) {
            detail = "no TLS handshake within " + std::to_string(options.connect_timeout.count()) +
                     " ms";
        } else {
            detail = "TLS handshake failed: " + hec.message();
            const auto alerts = tls::last_alerts(native);
            if (!alerts.received.empty()) {
                detail += "; alert received: " + alerts.received;
            }
            if (!alerts.sent.empty()) {
                detail += "; alert sent: " + alerts.sent;
            }
            if (alerts.received == "handshake failure" || alerts.sent == "handshake failure" ||
                hec.message().find("no suitable") != std::string::npos) {
                const auto* p = tls::context_profile(options.tls);
                detail +=
                    " (the server shares no key exchange group or signature algorithm "
                    "with profile " +
                    std::string(p != nullptr ? p->name : "?") +
                    "; a classical-only server is refused)";
            }
        }
        co_return pqmcp::fail(Errc::connect_failed, where + ": " + detail);
    }
    if (callbacks.on_connected) {
        callbacks.on_connected(tls::handshake_info(native));
    }
    co_return conn;
}

asio::awaitable<Result<std::unique_ptr<Connection>>> McpHttpClient::Impl::acquire() {
    const auto self = shared_from_this();
    const auto deadline = std::chrono::steady_clock::now() + options.pool_wait;
    while (busy >= options.max_connections && !closed) {
        const auto now = std::chrono::steady_clock::now();
        if (now >= deadline) {
            co_return pqmcp::fail(Errc::timeout, "no connection to " + options.url.authority() +
                                                     " became free within " +
                                                     std::to_string(options.pool_wait.count()) +
                                                     " ms (" + std::to_string(busy) +
                                                     " requests in flight, the limit)");
        }
        asio::steady_timer turn(ex, std::min<std::chrono::steady_clock::duration>(
                                        deadline - now, std::chrono::seconds{1}));
        slot_waiters.push_back(&turn);
        (void)co_await turn.async_wait(use);
        std::erase(slot_waiters, &turn);
    }
    if (closed) {
        co_return pqmcp::fail(Errc::closed, "the client is closed");
    }
    ++busy;
    if (!idle.empty()) {
        auto conn = std::move(idle.back());
        idle.pop_back();
        conn->reused = true;
        co_return conn;
    }
    auto conn = co_await connect();
    if (!conn) {
        --busy;
        wake_one_waiter();
    } else {
        open.insert(conn->get());
    }
    co_return conn;
}

void McpHttpClient::Impl::release(std::unique_ptr<Connection> conn, bool reusable) {
    --busy;
    wake_one_waiter();
    if (conn->tls) {
        // Tickets arrive after the handshake; by now they have been read.
        SSL_SESSION* session = SSL_get1_session(conn->tls->native_handle());
        if (session != nullptr && SSL_SESSION_is_resumable(session) == 1) {
            resumable.reset(session);
        } else if (session != nullptr) {
            SSL_SESSION_free(session);
        }
    }
    if (reusable && !closed && conn->buffer.size() == 0) {
        conn->reused = false;
        idle.push_back(std::move(conn));
        return;
    }
    open.erase(conn.get());
    conn->close();
}

void McpHttpClient::Impl::deliver(json::value&& value, const json::value* request_id,
                                  Exchange& exchange) {
    auto item = mcp::classify(std::move(value));
    if (!item) {
        spdlog::warn("{}: ignoring an invalid message from the server: {}", options.url.str(),
                     item.error().reason);
        return;
    }
    mcp::Message& m = *item;
    if (stateless && m.method == mcp::method::subscriptions_acknowledged) {
        spdlog::debug("{}: subscriptions/listen acknowledged: {}", options.url.str(),
                      mcp::serialize(m.body));
        return;
    }
    if (m.is_response()) {
        if (request_id != nullptr && m.id == *request_id) {
            exchange.response_seen = true;
        }
        if (m.id.is_string() && m.id.get_string() == discover_id) {
            internal_ids.erase(discover_id);
            if (const auto* r = m.body.if_contains("result"); r != nullptr && r->is_object()) {
                discovered = r->as_object();
            }
            return;
        }
        if (stateless) {
            if (stateless_input_required(m)) {
                return;
            }
            const std::string key = mcp::id_text(m.id);
            if (const auto sent = stateless_sent.find(key); sent != stateless_sent.end()) {
                if (method_of(sent->second) == mcp::method::tools_list) {
                    if (auto* r = m.body.if_contains("result"); r != nullptr && r->is_object()) {
                        learn_param_headers(r->as_object());
                    }
                }
                stateless_sent.erase(sent);
            }
            forget_request(key);
            // The revision's own fields mean nothing to a caller of the older ones.
            if (auto* r = m.body.if_contains("result"); r != nullptr && r->is_object()) {
                r->as_object().erase("resultType");
            }
        }
        if (m.id.is_string() && internal_ids.erase(std::string(m.id.get_string())) > 0) {
            // The answer to our own re-initialization.
            if (const auto* r = m.body.if_contains("result"); r != nullptr && r->is_object()) {
                if (const auto* v = r->as_object().if_contains("protocolVersion");
                    v != nullptr && v->is_string()) {
                    version = std::string(v->get_string());
                }
            }
            return;
        }
        if (init_request && m.id == init_request->at("id")) {
            if (const auto* r = m.body.if_contains("result"); r != nullptr && r->is_object()) {
                if (const auto* v = r->as_object().if_contains("protocolVersion");
                    v != nullptr && v->is_string()) {
                    version = std::string(v->get_string());
                }
            }
        }
    }
    if (callbacks.on_message) {
        callbacks.on_message(std::move(m));
    }
}

template <typename Stream>
asio::awaitable<Result<Exchange>> McpHttpClient::Impl::exchange(
    Stream& stream, Connection& conn, http::request<http::string_body>& req,
    const json::value* request_id, bool sse_only) {
    const auto self = shared_from_this();
    Exchange out;
    conn.lowest().expires_after(options.write_timeout);
    auto [wec, written] = co_await http::async_write(stream, req, use);
    if (wec) {
        if (auto refused = refusal(conn)) {
            co_return tl::unexpected(*refused);
        }
        co_return pqmcp::fail(Errc::io_error, "sending the request: " + wec.message());
    }
    http::response_parser<http::buffer_body> parser;
    parser.header_limit(64U << 10U);
    parser.body_limit(boost::none);
    conn.lowest().expires_after(options.response_timeout);
    auto [hec, hn] = co_await http::async_read_header(stream, conn.buffer, parser, use);
    if (hec) {
        if (auto refused = refusal(conn)) {
            co_return tl::unexpected(*refused);
        }
        co_return pqmcp::fail(
            hec == beast::error::timeout ? Errc::timeout : Errc::io_error,
            hec == beast::error::timeout
                ? "no response within " + std::to_string(options.response_timeout.count()) + " ms"
                : "reading the response: " + hec.message());
    }
    const auto& head = parser.get();
    out.status = head.result_int();
    if (sse_only) {
        listen_opened = true;
        listen_signal.notify();
    }
    out.keep_alive = head.keep_alive();
    if (const auto it =
            head.find(beast::string_view(k_session_header.data(), k_session_header.size()));
        it != head.end()) {
        out.session_header = std::string(sv(it->value()));
        // An answer to a request without a session (initialize) that opens one:
        // known before any message of the response is delivered, since the
        // client may react to the initialize result at once.
        if (out.status == 200 &&
            req.find(beast::string_view(k_session_header.data(), k_session_header.size())) ==
                req.end()) {
            session_id = out.session_header;
        }
    }
    const std::string content_type = [&] {
        const auto it = head.find(http::field::content_type);
        return it == head.end() ? std::string{} : std::string(sv(it->value()));
    }();
    const bool is_sse = content_type.rfind("text/event-stream", 0) == 0;

    // Reads the body in pieces; `sink` gets each piece and may stop (false).
    std::array<char, 16'384> chunk{};
    const auto read_body = [&](auto&& sink, bool timed) -> asio::awaitable<Status> {
        while (!parser.is_done()) {
            parser.get().body().data = chunk.data();
            parser.get().body().size = chunk.size();
            // What the buffer holds already (most often the whole body came
            // with the header) is parsed here: no read, no turn of the loop.
            // One put() parses one piece (a chunk's header, its data): on to
            // the first that gives the sink bytes, which it then gets before
            // any wait for more (not eager, as Beast's read_some).
            boost::system::error_code ec;
            bool progress = false;
            while (!ec && !progress && conn.buffer.size() > 0) {
                const std::size_t used = parser.put(conn.buffer.data(), ec);
                conn.buffer.consume(used);
                progress = parser.get().body().size < chunk.size() || parser.is_done();
                if (used == 0) {
                    break;
                }
            }
            if (ec == http::error::need_more || ec == http::error::need_buffer) {
                ec = {};
            }
            if (!ec && !progress) {
                if (timed) {
                    conn.lowest().expires_after(options.response_timeout);
                } else {
                    conn.lowest().expires_never();
                }
                auto [read_ec, n] =
                    co_await http::async_read_some(stream, conn.buffer, parser, use);
                ec = read_ec;
            }
            if (ec == http::error::need_buffer) {
                ec = {};
            }
            if (ec) {
                co_return pqmcp::fail(ec == beast::error::timeout ? Errc::timeout : Errc::io_error,
                                      ec == beast::error::timeout
                                          ? "no data within " +
                                                std::to_string(options.response_timeout.count()) +
                                                " ms"
                                          : ec.message());
            }
            const std::size_t got = chunk.size() - parser.get().body().size;
            if (!sink(std::string_view(chunk.data(), got))) {
                co_return pqmcp::fail(Errc::too_large, "response over the size limit");
            }
        }
        co_return Status{};
    };

    if (out.status == 202 || out.status == 204 || head.result() == http::status::not_modified) {
        std::string ignored_body;
        (void)co_await read_body([&](std::string_view) { return true; }, true);
        co_return out;
    }
    if (out.status != 200) {
        auto st = co_await read_body(
            [&](std::string_view piece) {
                if (out.error_body.size() < k_error_body_limit) {
                    out.error_body.append(
                        piece.substr(0, k_error_body_limit - out.error_body.size()));
                }
                return true;
            },
            true);
        out.keep_alive = out.keep_alive && st.has_value();
        co_return out;
    }
    if (is_sse) {
        SseParser sse(options.message_limits.max_message_bytes + 1'024);
        std::vector<SseEvent> events;
        Status parse_status;
        auto st = co_await read_body(
            [&](std::string_view piece) {
                parse_status = sse.feed(piece, events);
                for (auto& e : events) {
                    if (e.retry) {
                        out.retry_ms = *e.retry;
                    }
                    if (e.data.empty() || (e.type != "message")) {
                        continue;  // priming events, other event types
                    }
                    auto parsed = mcp::parse(e.data, options.message_limits);
                    if (!parsed) {
                        spdlog::warn("{}: ignoring an SSE event that is not JSON-RPC: {}",
                                     options.url.str(), parsed.error().message());
                        continue;
                    }
                    for (auto& it : parsed->items) {
                        if (it) {
                            deliver(json::value(std::move(it->body)), request_id, out);
                        }
                    }
                }
                events.clear();
                return parse_status.has_value();
            },
            !sse_only);
        out.last_event_id = sse.last_event_id();
        if (!st) {
            out.keep_alive = false;
            if (!out.response_seen && request_id != nullptr && st.error().code == Errc::timeout) {
                co_return tl::unexpected(st.error());
            }
        }
        co_return out;
    }
    // application/json: one message or a batch, bounded.
    std::string body;
    const std::size_t limit = options.message_limits.max_message_bytes;
    auto st = co_await read_body(
        [&](std::string_view piece) {
            if (body.size() + piece.size() > limit) {
                return false;
            }
            body.append(piece);
            return true;
        },
        true);
    if (!st) {
        co_return tl::unexpected(st.error());
    }
    auto parsed = mcp::parse(body, options.message_limits);
    if (!parsed) {
        co_return pqmcp::fail(Errc::protocol_error,
                              "the response is not JSON-RPC: " + parsed.error().message());
    }
    for (auto& it : parsed->items) {
        if (it) {
            deliver(json::value(std::move(it->body)), request_id, out);
        }
    }
    co_return out;
}

// The two streams an exchange runs on, for round_trip() in the session's file.
template asio::awaitable<Result<Exchange>> McpHttpClient::Impl::exchange<TlsStream>(
    TlsStream&, Connection&, http::request<http::string_body>&, const json::value*, bool);
template asio::awaitable<Result<Exchange>> McpHttpClient::Impl::exchange<beast::tcp_stream>(
    beast::tcp_stream&, Connection&, http::request<http::string_body>&, const json::value*, bool);

}  // namespace pqmcp::transport
