// The MCP Streamable HTTP rules for each request (POST, GET, DELETE: sessions,
// versions, origins, content types) and each stream (a JSON response or SSE,
// resumption with Last-Event-ID).
#include "http_server_impl.hpp"

#include "pqmcp/core/scope.hpp"

namespace pqmcp::transport {

http::response<http::string_body> make_response(const Request& req, http::status status,
                                                std::string_view content_type, std::string body) {
    http::response<http::string_body> res{status, req.version()};
    res.set(http::field::server, "pqmcp");
    if (!content_type.empty()) {
        res.set(http::field::content_type, content_type);
    }
    res.set(http::field::cache_control, "no-store");
    res.body() = std::move(body);
    res.keep_alive(req.keep_alive());
    res.prepare_payload();
    return res;
}

// An HTTP error with a JSON-RPC error body that has no id, as the transport
// section allows ("The HTTP response body MAY comprise a JSON-RPC error response
// that has no id").
Outcome http_error(const Request& req, http::status status, int rpc_code,
                   const std::string& message, json::value data) {
    Outcome out;
    out.response =
        make_response(req, status, "application/json",
                      mcp::serialize(mcp::make_error(nullptr, rpc_code, message, std::move(data))));
    return out;
}

std::variant<std::shared_ptr<Session>, Outcome> new_session(HttpServer::Impl& server,
                                                            const Request& req,
                                                            const PeerInfo& peer) {
    std::string id = new_session_id(server.index, server.group->size());
    if (id.empty()) {
        return http_error(req, http::status::internal_server_error, mcp::code::internal_error,
                          "cannot draw a session id from the random number generator");
    }
    auto session = std::make_shared<Session>(server.shared_from_this(), std::move(id), peer);
    std::size_t count = 0;
    switch (session->reserve(server.options.limits, count)) {
        case Session::Refusal::identity: {
            Outcome out = http_error(
                req, http::status::too_many_requests, mcp::code::over_limit,
                "Too Many Requests: this identity has " + std::to_string(count) +
                    " sessions open, its limit (limits.max_sessions_per_identity); end one "
                    "(DELETE) or let it expire");
            out.response.set(http::field::retry_after, "5");
            return out;
        }
        case Session::Refusal::total: {
            Outcome out = http_error(req, http::status::service_unavailable, mcp::code::over_limit,
                                     "Service Unavailable: the gateway has " +
                                         std::to_string(count) + " sessions, its limit");
            out.response.set(http::field::retry_after, "5");
            return out;
        }
        case Session::Refusal::none:
            break;
    }
    return session;
}

namespace {

Outcome plain(const Request& req, http::status status, std::string body) {
    Outcome out;
    out.response = make_response(req, status, "text/plain; charset=utf-8", std::move(body));
    return out;
}

bool is_json_content(std::string_view content_type) {
    const auto semi = content_type.find(';');
    std::string_view type = content_type.substr(0, semi);
    while (!type.empty() && type.back() == ' ') {
        type.remove_suffix(1);
    }
    if (type.size() != 16) {
        return false;
    }
    for (std::size_t i = 0; i < type.size(); ++i) {
        if (std::tolower(static_cast<unsigned char>(type[i])) != "application/json"[i]) {
            return false;
        }
    }
    return true;
}

// The same TLS identity and, for a session opened with an access token, a
// token of the same subject, client, scopes and claims from the same issuer.
bool same_peer(const PeerInfo& a, const PeerInfo& b) {
    if (a.handshake.peer_id != b.handshake.peer_id) {
        return false;
    }
    if (!a.token) {
        return true;
    }
    // The scopes and claims too: the caller the policy knows is the one
    // that opened the session (a client with other scopes or claims opens a
    // session of its own).
    return b.token && *a.token == *b.token;
}

// Finds the session a request names; an Outcome with the HTTP error otherwise.
std::variant<std::shared_ptr<Session>, Outcome> find_session(HttpServer::Impl& server,
                                                             const Request& req,
                                                             const PeerInfo& peer) {
    const std::string_view id = header(req, k_session_header);
    if (id.empty()) {
        // "Servers that require a session ID SHOULD respond to requests without an
        // MCP-Session-Id header (other than initialization) with HTTP 400 Bad Request."
        return http_error(req, http::status::bad_request, mcp::code::invalid_request,
                          "Bad Request: the Mcp-Session-Id header is required");
    }
    const auto it = server.sessions.find(std::string(id));
    // A session belongs to the TLS identity (and token subject) that opened
    // it; for anyone else it does not exist.
    // (The sessions kept for 2026-07-28 callers are never named to a client.)
    if (it == server.sessions.end() || !same_peer(it->second->peer_, peer) ||
        it->second->stateless_) {
        // "...after which it MUST respond to requests containing that session ID
        // with HTTP 404 Not Found."
        return http_error(req, http::status::not_found, mcp::code::invalid_request,
                          "Session not found");
    }
    const std::shared_ptr<Session>& session = it->second;
    const std::string_view version = header(req, k_version_header);
    // "If the server receives a request with an invalid or unsupported
    // MCP-Protocol-Version, it MUST respond with 400 Bad Request."
    // A supported version other than the negotiated one is neither invalid
    // nor unsupported: the request is served with the session's semantics
    // ("The protocol version sent by the client SHOULD be the one negotiated
    // during initialization": a SHOULD for the client, no MUST to refuse).
    if (!version.empty() && !mcp::is_supported_version(version)) {
        return http_error(req, http::status::bad_request, mcp::code::invalid_request,
                          "Bad Request: unsupported MCP-Protocol-Version " + std::string(version) +
                              (session->version_.empty()
                                   ? std::string{}
                                   : " (this session negotiated " + session->version_ + ")"));
    }
    session->last_activity_ = Clock::now();
    return session;
}

// A POST without a session that is not initialize, when it shows another
// revision than the session ones: a version nobody here speaks, or a
// 2026-07-28 body without its header. (Otherwise the caller is told a
// session is needed, as before.)
std::optional<Outcome> refuse_sessionless(const Request& req, const mcp::Parsed& parsed,
                                          std::string_view version) {
    if (!version.empty() && !mcp::is_supported_version(version)) {
        // 2026-07-28: "it **MUST** respond with `400 Bad Request` and an
        // `UnsupportedProtocolVersionError` listing its supported versions."
        return http_error(req, http::status::bad_request, mcp::code::unsupported_version,
                          "Unsupported protocol version " + std::string(version),
                          json::object{{"supported", mcp::supported_versions()},
                                       {"requested", std::string(version)}});
    }
    if (version.empty() && !parsed.batch && parsed.items.front()) {
        const auto* meta = parsed.items.front()->meta();
        if (meta != nullptr && meta->contains(mcp::k_meta_protocol_version)) {
            return http_error(req, http::status::bad_request, mcp::code::header_mismatch,
                              "HeaderMismatch: a request of the stateless revision must carry "
                              "the MCP-Protocol-Version header");
        }
    }
    return std::nullopt;
}

Outcome handle_post(HttpServer::Impl& server, const Request& req, const PeerInfo& peer) {
    if (!is_json_content(header(req, "Content-Type"))) {
        return http_error(req, http::status::unsupported_media_type, mcp::code::invalid_request,
                          "Unsupported Media Type: the body must be application/json");
    }
    // "The client MUST include an Accept header, listing both application/json
    // and text/event-stream as supported content types."
    const std::string_view accept = header(req, "Accept");
    if (!accepts(accept, "application/json") || !accepts(accept, "text/event-stream")) {
        return http_error(req, http::status::not_acceptable, mcp::code::invalid_request,
                          "Not Acceptable: the client must accept both application/json and "
                          "text/event-stream");
    }
    auto parsed = mcp::parse(req.body(), server.options.message_limits);
    if (!parsed) {
        Outcome out;
        out.response = make_response(req, http::status::bad_request, "application/json",
                                     mcp::serialize(mcp::make_error(parsed.error())));
        return out;
    }
    const std::string_view version = header(req, k_version_header);
    if (version == mcp::k_stateless_version) {
        return handle_stateless(server, req, peer, std::move(*parsed));
    }
    if (header(req, k_session_header).empty()) {
        if (auto refused = refuse_sessionless(req, *parsed, version)) {
            return std::move(*refused);
        }
    }
    const bool is_initialize = !parsed->batch && parsed->items.front() &&
                               parsed->items.front()->is_request() &&
                               parsed->items.front()->method == mcp::method::initialize;
    std::shared_ptr<Session> session;
    if (is_initialize) {
        if (!header(req, k_session_header).empty()) {
            return http_error(req, http::status::bad_request, mcp::code::invalid_request,
                              "Bad Request: initialize starts a new session and must not carry "
                              "an Mcp-Session-Id");
        }
        auto made = new_session(server, req, peer);
        if (auto* refused = std::get_if<Outcome>(&made)) {
            return std::move(*refused);
        }
        session = std::get<std::shared_ptr<Session>>(std::move(made));
        if (!server.options.open_session) {
            return http_error(req, http::status::internal_server_error, mcp::code::internal_error,
                              "no session handler");
        }
        auto handler = server.options.open_session(*session);
        if (!handler) {
            Outcome out;
            const int rpc = handler.error().code == transport::Errc::too_large
                                ? mcp::code::over_limit
                                : mcp::code::internal_error;
            out.response =
                make_response(req, http::status::ok, "application/json",
                              mcp::serialize(mcp::make_error(parsed->items.front()->id, rpc,
                                                             handler.error().message())));
            return out;
        }
        session->handler_ = std::move(*handler);
        server.add_session(session);
    } else {
        auto found = find_session(server, req, peer);
        if (auto* error = std::get_if<Outcome>(&found)) {
            return std::move(*error);
        }
        session = std::get<std::shared_ptr<Session>>(std::move(found));
        if (parsed->batch) {
            const std::string& v = session->version_.empty()
                                       ? std::string(mcp::k_default_http_version)
                                       : session->version_;
            if (!mcp::allows_batches(v)) {
                return http_error(req, http::status::bad_request, mcp::code::invalid_request,
                                  "Invalid Request: JSON-RPC batches are not part of protocol "
                                  "version " +
                                      v);
            }
        }
        for (const auto& item : parsed->items) {
            if (item && item->is_request() && item->method == mcp::method::initialize) {
                return http_error(req, http::status::bad_request, mcp::code::invalid_request,
                                  "Invalid Request: the session is already initialized");
            }
        }
    }

    std::size_t requests = 0;
    std::size_t invalid = 0;
    for (const auto& item : parsed->items) {
        if (!item) {
            ++invalid;
        } else if (item->is_request()) {
            ++requests;
        }
    }
    if (requests == 0) {
        if (invalid > 0) {
            // "If the server cannot accept the input, it MUST return an HTTP
            // error status code (e.g., 400 Bad Request)."
            json::array errors;
            for (const auto& item : parsed->items) {
                if (!item) {
                    errors.push_back(mcp::make_error(item.error()));
                }
            }
            Outcome out;
            out.response = make_response(
                req, http::status::bad_request, "application/json",
                parsed->batch ? json::serialize(errors) : json::serialize(errors.front()));
            return out;
        }
        for (auto& item : parsed->items) {
            session->handler_->on_message(std::move(*item), k_standalone_stream);
        }
        // "If the server accepts the input, the server MUST return HTTP status
        // code 202 Accepted with no body."
        return plain(req, http::status::accepted, {});
    }
    if (session->attached_ >= server.options.limits.max_streams_per_session) {
        return http_error(req, http::status::too_many_requests, mcp::code::over_limit,
                          "Too Many Requests: " + std::to_string(session->attached_) +
                              " streams open on this session, its limit");
    }
    const StreamId id = session->next_stream_++;
    Stream stream;
    stream.id = id;
    stream.batch = parsed->batch;
    stream.pending = requests;
    session->streams_.emplace(id, std::move(stream));
    if (is_initialize) {
        session->init_stream_ = id;
    }
    Outcome out;
    out.session = session;
    out.stream = id;
    out.with_session_header = is_initialize;
    // The handler runs after the connection has attached to the stream (see
    // serve_stream()); answers given synchronously are queued until then.
    for (auto& item : parsed->items) {
        if (!item) {
            session->push(session->streams_.at(id), mcp::serialize(mcp::make_error(item.error())),
                          true);
        }
    }
    // The valid messages go to the handler once the writer has attached.
    std::vector<mcp::Message> messages;
    for (auto& item : parsed->items) {
        if (item) {
            messages.push_back(std::move(*item));
        }
    }
    out.deliver = [session, id, messages = std::move(messages)]() mutable {
        for (auto& m : messages) {
            if (session->closed_) {
                return;
            }
            session->handler_->on_message(std::move(m), id);
        }
    };
    return out;
}

Outcome handle_get(HttpServer::Impl& server, const Request& req, const PeerInfo& peer) {
    // "The client MUST include an Accept header, listing text/event-stream as a
    // supported content type."
    if (!accepts(header(req, "Accept"), "text/event-stream")) {
        return http_error(req, http::status::not_acceptable, mcp::code::invalid_request,
                          "Not Acceptable: the client must accept text/event-stream");
    }
    auto found = find_session(server, req, peer);
    if (auto* error = std::get_if<Outcome>(&found)) {
        return std::move(*error);
    }
    auto session = std::get<std::shared_ptr<Session>>(std::move(found));
    Outcome out;
    out.session = session;
    out.sse_only = true;
    out.stream = k_standalone_stream;
    const std::string_view last = header(req, k_last_event_header);
    if (!last.empty()) {
        // "The server MAY use this header to replay messages that would have been
        // sent after the last event ID, on the stream that was disconnected".
        const auto cursor = parse_event_id(last);
        if (cursor && session->streams_.contains(cursor->first)) {
            out.stream = cursor->first;
            out.resume_after = cursor->second;
            return out;
        }
        if (cursor && cursor->first != k_standalone_stream) {
            // A finished stream already delivered and gone: nothing to replay.
            return http_error(req, http::status::not_found, mcp::code::invalid_request,
                              "No stream to resume for Last-Event-ID " + std::string(last));
        }
    }
    Stream& standalone = session->streams_.at(k_standalone_stream);
    if (standalone.writer != nullptr) {
        return http_error(req, http::status::conflict, mcp::code::invalid_request,
                          "Conflict: this session already has an open GET stream");
    }
    if (session->attached_ >= server.options.limits.max_streams_per_session) {
        return http_error(req, http::status::too_many_requests, mcp::code::over_limit,
                          "Too Many Requests: too many streams open on this session");
    }
    return out;
}

Outcome handle_delete(HttpServer::Impl& server, const Request& req, const PeerInfo& peer) {
    auto found = find_session(server, req, peer);
    if (auto* error = std::get_if<Outcome>(&found)) {
        return std::move(*error);
    }
    std::get<std::shared_ptr<Session>>(found)->close("deleted by the client");
    return plain(req, http::status::ok, {});
}

}  // namespace

std::string_view header(const Request& req, std::string_view name) {
    const auto it = req.find(beast::string_view(name.data(), name.size()));
    return it == req.end() ? std::string_view{} : sv(it->value());
}

Outcome handle(HttpServer::Impl& server, const Request& req, const PeerInfo& peer) {
    const std::string_view target = sv(req.target());
    const std::string_view path = target.substr(0, target.find('?'));
    // "Servers MUST validate the Origin header on all incoming connections to
    // prevent DNS rebinding attacks. If the Origin header is present and
    // invalid, servers MUST respond with HTTP 403 Forbidden."
    if (!server.origins.allows(header(req, "Origin"))) {
        return http_error(
            req, http::status::forbidden, mcp::code::invalid_request,
            "Forbidden: Origin " + std::string(header(req, "Origin")) + " is not allowed");
    }
    if (path != server.options.path) {
        if (req.method() == http::verb::get && server.options.get_page) {
            const HttpServerOptions::PageRequest page_request{target, header(req, "Authorization"),
                                                              peer};
            if (auto page = server.options.get_page(page_request)) {
                Outcome out;
                out.response = make_response(req, static_cast<http::status>(page->status),
                                             page->content_type, std::move(page->body));
                for (const auto& [name, value] : page->headers) {
                    out.response.set(name, value);
                }
                return out;
            }
        }
        return plain(req, http::status::not_found, "not found\n");
    }
    // 2026-07-28 has no GET stream and no session to DELETE: "HTTP GET or
    // DELETE to the MCP endpoint: respond with `405 Method Not Allowed`" (a
    // SHOULD, for a server of that revision only; here for a request that
    // names it).
    if (req.method() != http::verb::post &&
        header(req, k_version_header) == mcp::k_stateless_version) {
        Outcome out = http_error(req, http::status::method_not_allowed, mcp::code::invalid_request,
                                 "Method Not Allowed: protocol version 2026-07-28 uses POST only");
        out.response.set(http::field::allow, "POST");
        return out;
    }
    switch (req.method()) {
        case http::verb::post:
            return handle_post(server, req, peer);
        case http::verb::get:
            return handle_get(server, req, peer);
        case http::verb::delete_:
            return handle_delete(server, req, peer);
        default: {
            Outcome out = plain(req, http::status::method_not_allowed, "method not allowed\n");
            out.response.set(http::field::allow, "GET, POST, DELETE");
            return out;
        }
    }
}

namespace {

// Writes one chunk of an SSE body with the write timeout; an empty `data`
// writes the last chunk, which ends the body.
asio::awaitable<bool> write_chunk(ServerTls& stream, std::string_view data,
                                  std::chrono::milliseconds timeout) {
    beast::get_lowest_layer(stream).expires_after(timeout);
    if (data.empty()) {
        auto [ec, n] = co_await asio::async_write(stream, http::make_chunk_last(), use);
        co_return !ec;
    }
    auto [ec, n] = co_await asio::async_write(
        stream, http::make_chunk(asio::buffer(data.data(), data.size())), use);
    co_return !ec;
}

}  // namespace

// Serves a stream on a connection: a JSON response when the stream finishes
// with nothing but responses before the keep-alive interval, SSE otherwise.
// Returns whether the connection can be reused.
asio::awaitable<bool> serve_stream(HttpServer::Impl& server, ServerTls& stream, const Request& req,
                                   Outcome& outcome) {
    Session& session = *outcome.session;
    const auto& timeouts = server.options.timeouts;
    auto executor = co_await asio::this_coro::executor;
    Signal signal(executor);
    // A client that goes away while the stream waits (it closed the
    // connection: a cancelled request, a crash) is noticed, not only at the
    // next keep-alive write: the socket turns readable and shows end of file.
    // Watched only once an answer takes longer than k_watch_after: most come
    // within microseconds, and arming the watch costs each request a system
    // call (the reactor re-registers the socket) and a cancelled handler.
    struct Watch {
        bool gone = false;
        Signal* signal = nullptr;
    };
    auto watch = std::make_shared<Watch>();
    watch->signal = &signal;
    auto& socket = beast::get_lowest_layer(stream).socket();
    bool watching = false;
    const auto arm_watch = [&] {
        watching = true;
        // On this coroutine's executor: the connection may belong to another
        // shard than the session this stream is of.
        socket.async_wait(tcp::socket::wait_read,
                          asio::bind_executor(executor, [watch, fd = socket.native_handle()](
                                                            const boost::system::error_code& ec) {
                              if (ec || watch->signal == nullptr) {
                                  return;
                              }
                              char c = 0;
                              const ssize_t n = ::recv(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
                              if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK)) {
                                  watch->gone = true;
                                  watch->signal->notify();
                              }
                          }));
    };
    const OnExit unwatch([watch, &socket, &watching] {
        watch->signal = nullptr;
        if (watching) {
            boost::system::error_code ignored;
            socket.cancel(ignored);
        }
    });
    auto found = session.streams_.find(outcome.stream);
    if (found == session.streams_.end()) {
        deliver_later(server.io, outcome);
        co_return false;
    }
    // A GET that resumes a stream another connection still holds takes it over.
    if (found->second.writer != nullptr) {
        found->second.writer->notify();
    }
    found->second.writer = &signal;
    ++session.attached_;
    ++server.open_streams;
    std::uint64_t cursor = outcome.resume_after
                               ? *outcome.resume_after
                               : (found->second.standalone ? found->second.delivered : 0);
    bool sse = outcome.sse_only;
    bool headers_sent = false;
    bool ok = true;
    bool reusable = req.keep_alive();

    bool detached = false;
    const auto detach = [&] {
        if (detached) {
            return;
        }
        detached = true;
        auto it = session.streams_.find(outcome.stream);
        if (it != session.streams_.end() && it->second.writer == &signal) {
            it->second.writer = nullptr;
            it->second.detached_at = Clock::now();
            if (it->second.finished() && it->second.delivered >= it->second.last_seq()) {
                session.erase_stream(it);
            }
        }
        --session.attached_;
        --server.open_streams;
        session.last_activity_ = Clock::now();
    };
    // However the frame ends (an exception, or destroyed while suspended),
    // the stream no longer points at this frame's signal.
    const OnExit detach_at_exit([&detach] { detach(); });

    const auto send_headers = [&]() -> asio::awaitable<bool> {
        http::response<http::empty_body> res{http::status::ok, req.version()};
        res.set(http::field::server, "pqmcp");
        res.set(http::field::content_type, "text/event-stream");
        res.set(http::field::cache_control, "no-cache");
        if (outcome.with_session_header) {
            res.set(beast::string_view(k_session_header.data(), k_session_header.size()),
                    session.id_);
        }
        res.keep_alive(req.keep_alive());
        res.chunked(true);
        http::response_serializer<http::empty_body> serializer{res};
        beast::get_lowest_layer(stream).expires_after(timeouts.write);
        auto [ec, n] = co_await http::async_write_header(stream, serializer, use);
        if (ec) {
            co_return false;
        }
        headers_sent = true;
        // "The server SHOULD immediately send an SSE event consisting of an event
        // ID and an empty data field in order to prime the client to reconnect".
        const std::string& version =
            session.version_.empty() ? std::string(mcp::k_latest_version) : session.version_;
        if (mcp::primes_sse_streams(version)) {
            co_return co_await write_chunk(
                stream,
                format_sse_event(event_id(outcome.stream, cursor), "", server.options.retry_ms),
                timeouts.write);
        }
        co_return true;
    };

    // The request's messages to the handler, now that answers find the
    // writer (an answer given at once is queued and written below).
    if (outcome.deliver) {
        std::exchange(outcome.deliver, {})();
    }
    for (;;) {
        auto it = session.streams_.find(outcome.stream);
        if (it == session.streams_.end() || it->second.writer != &signal) {
            // The stream is gone or another connection took it over.
            if (headers_sent) {
                (void)co_await write_chunk(stream, {}, timeouts.write);
            }
            ok = headers_sent;
            break;
        }
        Stream& s = it->second;
        if (!sse) {
            bool only_responses = true;
            for (const auto& e : s.events) {
                only_responses = only_responses && e.response;
            }
            if (!only_responses || (s.finished() && s.events.empty() && !s.batch)) {
                // Related messages first; or nothing at all to say (its
                // request was cancelled): an event stream that just ends.
                sse = true;
            } else if (s.finished()) {
                // All answered with nothing in between: one JSON response.
                std::string body;
                if (s.batch) {
                    body = "[";
                    for (const auto& e : s.events) {
                        body += (body.size() > 1 ? "," : "") + e.data;
                    }
                    body += "]";
                } else if (!s.events.empty()) {
                    body = s.events.back().data;
                }
                s.delivered = s.last_seq();
                auto res = make_response(req, static_cast<http::status>(s.status),
                                         "application/json", std::move(body));
                if (outcome.with_session_header && !session.init_failed_) {
                    res.set(beast::string_view(k_session_header.data(), k_session_header.size()),
                            session.id_);
                }
                detach();
                beast::get_lowest_layer(stream).expires_after(timeouts.write);
                auto [ec, n] = co_await http::async_write(stream, res, use);
                if (outcome.with_session_header && session.init_failed_) {
                    session.close("initialize failed");
                }
                co_return !ec && reusable;
            }
        }
        if (sse && !headers_sent) {
            if (!co_await send_headers()) {
                ok = false;
                break;
            }
            // The stream may have been taken over, or erased, while the
            // headers went out: `s` is looked up again.
            continue;
        }
        if (sse) {
            // Everything after the cursor that is still in the buffer.
            std::string batch;
            std::uint64_t last = cursor;
            for (const auto& e : s.events) {
                if (e.seq > cursor) {
                    batch += format_sse_event(event_id(s.id, e.seq), e.data);
                    last = e.seq;
                }
            }
            if (!batch.empty()) {
                if (!co_await write_chunk(stream, batch, timeouts.write)) {
                    ok = false;
                    break;
                }
                // The stream may have changed while we wrote.
                auto again = session.streams_.find(outcome.stream);
                if (again == session.streams_.end()) {
                    break;
                }
                cursor = last;
                again->second.delivered = std::max(again->second.delivered, last);
                continue;
            }
            if (s.finished() && cursor >= s.last_seq()) {
                // "After the JSON-RPC response has been sent, the server SHOULD
                // terminate the SSE stream."
                ok = co_await write_chunk(stream, {}, timeouts.write);
                break;
            }
        }
        if (session.closed_) {
            if (headers_sent) {
                (void)co_await write_chunk(stream, {}, timeouts.write);
            } else {
                // The session ended before anything was written (e.g. DELETE).
                auto res =
                    make_response(req, http::status::not_found, "application/json",
                                  mcp::serialize(mcp::make_error(
                                      nullptr, mcp::code::invalid_request, "Session not found")));
                beast::get_lowest_layer(stream).expires_after(timeouts.write);
                (void)co_await http::async_write(stream, res, use);
            }
            ok = false;
            break;
        }
        if (server.stopped) {
            ok = false;
            break;
        }
        if (!watching) {
            if (co_await signal.wait(std::min(k_watch_after, timeouts.keepalive))) {
                continue;
            }
            arm_watch();
        }
        const bool woken = co_await signal.wait(timeouts.keepalive);
        if (watch->gone) {
            ok = false;
            reusable = false;
            break;
        }
        if (!woken) {
            if (!sse) {
                sse = true;  // no answer yet: switch to SSE and keep the line warm
            } else if (!co_await write_chunk(stream, format_sse_comment("keep-alive"),
                                             timeouts.write)) {
                ok = false;
                break;
            }
        }
    }
    detach();
    co_return ok&& reusable;
}

asio::awaitable<bool> write_response(ServerTls& stream, http::response<http::string_body>& res,
                                     std::chrono::milliseconds timeout) {
    beast::get_lowest_layer(stream).expires_after(timeout);
    auto [ec, n] = co_await http::async_write(stream, res, use);
    co_return !ec;
}

// The answer to a request that could not be read, or none when the client
// simply went away. The connection closes after it.
std::optional<http::response<http::string_body>> read_failure(const boost::system::error_code& ec,
                                                              bool timed_out,
                                                              const HttpServerOptions& options) {
    Request dummy;
    dummy.version(11);
    dummy.keep_alive(false);
    const auto closing = [](Outcome out) {
        out.response.keep_alive(false);
        return std::move(out.response);
    };
    if (timed_out) {
        return closing(plain(dummy, http::status::request_timeout,
                             "request not received within " +
                                 std::to_string(options.timeouts.read.count()) + " ms\n"));
    }
    if (ec == http::error::header_limit) {
        return closing(plain(dummy, http::status::request_header_fields_too_large,
                             "request headers over " +
                                 std::to_string(options.limits.max_header_bytes) + " bytes\n"));
    }
    if (ec == http::error::body_limit) {
        return closing(http_error(dummy, http::status::payload_too_large,
                                  mcp::code::invalid_request,
                                  "Payload Too Large: the limit is " +
                                      std::to_string(options.limits.max_body_bytes) + " bytes"));
    }
    if (ec == http::error::end_of_stream || ec == asio::error::eof ||
        ec == asio::ssl::error::stream_truncated || ec == asio::error::operation_aborted) {
        return std::nullopt;
    }
    return closing(
        plain(dummy, http::status::bad_request, "malformed request: " + ec.message() + "\n"));
}

}  // namespace pqmcp::transport
