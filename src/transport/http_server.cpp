// The Streamable HTTP server's listener and connections: accept (bounded per
// address, evicting under pressure), TLS handshake, keep-alive reads with
// deadlines, sessions swept when idle. The MCP rules per request are in
// http_requests.cpp.
#include "http_server_impl.hpp"

#include <array>
#include <exception>
#include "pqmcp/core/heap.hpp"
#include "pqmcp/tls/listener.hpp"

namespace pqmcp::transport {

void Session::account(std::ptrdiff_t delta) {
    if (const auto server = server_.lock()) {
        // Modulo 2^64, a negative delta subtracts.
        server->buffered.fetch_add(static_cast<std::size_t>(delta), std::memory_order_relaxed);
    }
}

Session::Refusal Session::reserve(const HttpServerLimits& limits, std::size_t& count) {
    const std::lock_guard lock(group_->mutex);
    const std::string key = identity_key(peer_);
    const auto own = group_->by_identity.find(key);
    count = own == group_->by_identity.end() ? 0 : own->second;
    if (count >= limits.max_sessions_per_identity) {
        return Refusal::identity;
    }
    if (group_->sessions >= limits.max_sessions) {
        count = group_->sessions;
        return Refusal::total;
    }
    ++group_->by_identity[key];
    ++group_->sessions;
    reserved_ = true;
    return Refusal::none;
}

void Session::release() {
    if (!reserved_) {
        return;
    }
    reserved_ = false;
    const std::lock_guard lock(group_->mutex);
    --group_->sessions;
    const auto own = group_->by_identity.find(identity_key(peer_));
    if (own != group_->by_identity.end() && --own->second == 0) {
        group_->by_identity.erase(own);
    }
}

void HttpServer::Impl::add_session(const std::shared_ptr<Session>& session) {
    sessions.emplace(session->id_, session);
    session_count = sessions.size();
}

void HttpServer::Impl::remove_session(const std::string& id) {
    if (const auto it = sessions.find(id); it != sessions.end() && it->second->stateless_) {
        if (const auto c = stateless.find(it->second->stateless_caller_); c != stateless.end()) {
            c->second.erase(it->second->stateless_caps_);
            if (c->second.empty()) {
                stateless.erase(c);
            }
        }
    }
    sessions.erase(id);
    session_count = sessions.size();
}

std::shared_ptr<HttpServer::Impl> HttpServer::Impl::shard_at(std::size_t shard) {
    if (shard != index) {
        if (auto other = group->shards[shard].lock()) {
            return other;
        }
    }
    return shared_from_this();
}

std::shared_ptr<HttpServer::Impl> HttpServer::Impl::stateless_home(const PeerInfo& peer) {
    if (group->size() == 1) {
        return shared_from_this();
    }
    return shard_at(std::hash<std::string>{}(stateless_caller(peer)) % group->size());
}

std::shared_ptr<HttpServer::Impl> HttpServer::Impl::new_session_home() {
    if (group->size() == 1) {
        return shared_from_this();
    }
    return shard_at(group->next_session++ % group->size());
}

std::shared_ptr<HttpServer::Impl> HttpServer::Impl::home(std::string_view session_id) {
    if (group->size() > 1 && !session_id.empty()) {
        if (const auto shard = home_of(session_id, group->size())) {
            return shard_at(*shard);
        }
    }
    return shared_from_this();
}

void HttpServer::Impl::shed() {
    std::vector<std::pair<std::size_t, std::pair<Session*, StreamId>>> idle;
    for (auto& [sid, session] : sessions) {
        for (auto& [id, stream] : session->streams_) {
            if (stream.writer == nullptr && stream.bytes > 0) {
                idle.push_back({stream.bytes, {session.get(), id}});
            }
        }
    }
    std::sort(idle.begin(), idle.end(),
              [](const auto& a, const auto& b) { return a.first > b.first; });
    for (const auto& [bytes, where] : idle) {
        if (buffered <= options.limits.buffer_bytes) {
            break;
        }
        auto& [session, id] = where;
        const auto it = session->streams_.find(id);
        if (it == session->streams_.end()) {
            continue;
        }
        spdlog::warn(
            "session {}: stream {} dropped with {} bytes nobody read: the gateway's stream "
            "buffers are full (limits.buffer_bytes {})",
            session->short_id(), id, bytes, options.limits.buffer_bytes);
        if (it->second.standalone) {
            account_standalone_drop(*session, it->second);
        } else {
            session->erase_stream(it);
        }
    }
}

void HttpServer::Impl::account_standalone_drop(Session& session, Stream& stream) {
    // The GET stream stays (the session needs it); what it held goes.
    session.account(-static_cast<std::ptrdiff_t>(stream.bytes));
    stream.bytes = 0;
    stream.delivered = stream.last_seq();
    stream.events.clear();
}

const HttpServerLimits& Session::limits() const {
    static const HttpServerLimits k_defaults;
    const auto server = server_.lock();
    return server ? server->options.limits : k_defaults;
}

void Session::close(std::string_view reason) {
    if (closed_) {
        return;
    }
    closed_ = true;
    auto server = server_.lock();
    if (server) {
        server->remove_session(id_);
    }
    release();
    for (auto& [id, stream] : streams_) {
        if (stream.writer != nullptr) {
            stream.writer->notify();
        }
    }
    spdlog::debug("session {} closed: {}", short_id(), reason);
    // The handler may be what called close(): end it from the event loop.
    // The session stays until then (closed: send() refuses), so that what
    // the handler queued before, an upstream's answer say, finds it there.
    if (handler_ && server) {
        asio::post(server->io, [self = weak_from_this().lock(), handler = std::move(handler_),
                                why = std::string(reason)] { handler->on_closed(why); });
    }
}

void deliver_later(asio::io_context& io, Outcome& out) {
    if (out.deliver) {
        asio::post(io, std::exchange(out.deliver, {}));
    }
}

namespace {

// How a connection's coroutine ends: an exception (a bug, since errors are
// values here; a session handler's, say) closes that connection only, and is
// logged rather than lost.
void log_failure(const std::exception_ptr& failure) {
    if (!failure) {
        return;
    }
    try {
        std::rethrow_exception(failure);
    } catch (const std::exception& e) {
        spdlog::error("a connection ended on an exception: {}", e.what());
    } catch (...) {
        spdlog::error("a connection ended on an exception");
    }
}

// Gives `bytes` to Beast's `parser` until it is done, wants more than they
// hold, or fails (`ec`); how many bytes it took.
std::size_t feed(http::request_parser<http::string_body>& parser, asio::const_buffer bytes,
                 boost::system::error_code& ec) {
    std::size_t used = 0;
    while (!ec && !parser.is_done() && used < bytes.size()) {
        used += parser.put(
            asio::buffer(static_cast<const char*>(bytes.data()) + used, bytes.size() - used), ec);
        if (ec == http::error::need_more) {
            ec = {};
            break;
        }
    }
    return used;
}

// Half-closes `socket` and reads what the peer still sends until it closes
// too, for at most half a second.
asio::awaitable<void> drain_before_close(tcp::socket& socket) {
    boost::system::error_code ignored;
    socket.shutdown(tcp::socket::shutdown_send, ignored);
    asio::steady_timer limit(socket.get_executor(), std::chrono::milliseconds{500});
    // The timer may have fired as the loop ended: its handler then finds
    // `done` and leaves the socket (gone by then) alone.
    auto done = std::make_shared<bool>(false);
    limit.async_wait([&socket, done](const boost::system::error_code& ec) {
        if (!ec && !*done) {
            boost::system::error_code ignore;
            socket.cancel(ignore);
        }
    });
    std::array<char, 2048> sink{};
    for (;;) {
        auto [ec] = co_await socket.async_wait(tcp::socket::wait_read, use);
        if (ec) {
            break;
        }
        const auto n = socket.read_some(asio::buffer(sink), ec);
        if (ec == asio::error::would_block) {
            continue;
        }
        if (ec || n == 0) {
            break;
        }
    }
    *done = true;
    limit.cancel();
}

}  // namespace

asio::awaitable<void> HttpServer::Impl::serve(std::unique_ptr<ServerTls> owned,
                                              [[maybe_unused]] ConnectionGuard guard) {
    auto self = shared_from_this();
    ServerTls& stream = *owned;
    auto* tcp = &beast::get_lowest_layer(stream);
    boost::system::error_code ignored;
    const auto endpoint = tcp->socket().remote_endpoint(ignored);
    PeerInfo peer;
    peer.remote = endpoint.address().to_string() + ":" + std::to_string(endpoint.port());
    tcp->socket().set_option(tcp::no_delay(true), ignored);
    const auto& t = options.timeouts;

    const auto accepted = Clock::now();
    const auto handshake_deadline = scaled(t.handshake);
    beast::get_lowest_layer(stream).expires_after(handshake_deadline);
    auto [hec] = co_await stream.async_handshake(asio::ssl::stream_base::server, use);
    if (hec) {
        if (options.on_handshake) {
            std::string detail =
                hec == beast::error::timeout
                    ? "no handshake within " + std::to_string(handshake_deadline.count()) + " ms"
                    : hec.message();
            const std::string reason = tls::verification_failure(stream.native_handle());
            if (!reason.empty()) {
                detail = reason;
            }
            const auto me = connections.find(tcp);
            const bool evicted_here = me != connections.end() && me->second.evicted;
            const bool closed =
                evicted_here || (reason.empty() &&
                                 (hec == asio::ssl::error::stream_truncated ||
                                  hec == asio::error::eof || hec == asio::error::connection_reset));
            if (evicted_here) {
                detail = "closed before its handshake ended, to make room for other connections";
            } else if (closed) {
                detail = "the client closed the connection during the handshake";
            }
            options.on_handshake(peer.remote,
                                 fail(closed ? Errc::closed : Errc::connect_failed, detail),
                                 Clock::now() - accepted);
        }
        // A refused certificate: TLS 1.3 clients meet the alert only on their
        // first read, after sending a request. Closing with that request
        // unread would reset the connection and could lose the alert, so the
        // request is drained first (briefly).
        if (!tls::verification_failure(stream.native_handle()).empty()) {
            co_await drain_before_close(stream.next_layer().socket());
        }
        co_return;
    }
    peer.handshake = tls::handshake_info(stream.native_handle());
    set_phase(tcp, Phase::idle);
    if (options.on_handshake) {
        options.on_handshake(peer.remote, peer.handshake, Clock::now() - accepted);
    }
    co_await serve_requests(std::move(owned), std::move(guard), std::move(peer),
                            beast::flat_buffer{}, std::nullopt);
}

asio::awaitable<void> HttpServer::Impl::serve_requests(std::unique_ptr<ServerTls> owned,
                                                       ConnectionGuard guard, PeerInfo peer,
                                                       beast::flat_buffer buffer,
                                                       std::optional<Arrived> arrived) {
    auto self = shared_from_this();
    const bool moved = arrived.has_value();
    ServerTls& stream = *owned;
    auto* tcp = &beast::get_lowest_layer(stream);
    const auto& t = options.timeouts;
    asio::steady_timer read_timer(io);
    bool timed_out = false;
    std::uint64_t reads = 0;
    std::uint64_t reading = 0;  // the read the timer is for (0: none)
    for (;;) {
        if (stopped) {
            break;
        }
        if (arrived) {
            // Read on the shard this connection came from, which handed it
            // over: answered here, then the connection stays.
            set_phase(tcp, Phase::busy);
            Arrived here = std::move(*arrived);
            arrived.reset();
            if (!co_await respond(stream, here.request, here.who)) {
                break;
            }
            continue;
        }
        // Keep-alive: wait (at most `idle`) for the first byte of the next request.
        if (buffer.size() == 0) {
            set_phase(tcp, Phase::idle);
            beast::get_lowest_layer(stream).expires_after(scaled(t.idle));
            auto [ec, n] = co_await stream.async_read_some(buffer.prepare(4096), use);
            if (ec) {
                break;
            }
            buffer.commit(n);
        }
        set_phase(tcp, Phase::reading);
        beast::get_lowest_layer(stream).expires_never();
        http::request_parser<http::string_body> parser;
        parser.header_limit(static_cast<std::uint32_t>(options.limits.max_header_bytes));
        parser.body_limit(options.limits.max_body_bytes);
        timed_out = false;
        // What has arrived is most often the whole request: parsed here, it
        // needs no read, no timer and no turn of the event loop.
        boost::system::error_code rec;
        buffer.consume(feed(parser, buffer.data(), rec));
        if (!rec && !parser.is_done()) {
            // Then the rest within `read`; on expiry the read is cancelled
            // (not the connection) so that the client still gets its 408.
            // A timer that expires as the read ends must not cancel what
            // comes after it (a write, maybe from another shard): it acts
            // only while its own read is going on.
            const std::uint64_t this_read = ++reads;
            reading = this_read;
            read_timer.expires_after(t.read);
            read_timer.async_wait(
                [&timed_out, &reading, &stream, this_read](const boost::system::error_code& ec) {
                    if (!ec && reading == this_read) {
                        timed_out = true;
                        boost::system::error_code ignore;
                        beast::get_lowest_layer(stream).socket().cancel(ignore);
                    }
                });
            auto [read_ec, n] = co_await http::async_read(stream, buffer, parser, use);
            rec = read_ec;
            reading = 0;
            read_timer.cancel();
        }
        if (rec) {
            auto failure = read_failure(rec, timed_out, options);
            if (failure) {
                spdlog::debug("{}: {} ({})", peer.remote, failure->result_int(), rec.message());
                (void)co_await write_response(stream, *failure, t.write);
            }
            break;
        }
        Request req = parser.release();
        set_phase(tcp, Phase::busy);
        // The authorization hook sees every request to the MCP path first; an
        // allowed one carries its token's identity on.
        const PeerInfo* who = &peer;
        PeerInfo with_token;
        if (options.authorize && target_path(req) == options.path) {
            auto decision = co_await authorize(req, peer);
            if (decision.status != 0) {
                auto res = make_response(req, static_cast<http::status>(decision.status),
                                         "application/json", std::move(decision.body));
                for (const auto& [name, value] : decision.headers) {
                    res.set(name, value);
                }
                if (!co_await write_response(stream, res, t.write) || !res.keep_alive()) {
                    break;
                }
                continue;
            }
            if (decision.token) {
                with_token = peer;
                with_token.token = std::move(decision.token);
                who = &with_token;
            }
        }
        // A session's requests are answered on its home shard: this
        // coroutine waits while another one uses the connection there.
        // A 2026-07-28 caller's requests, on the home of the session kept
        // for it (one per caller for the whole server). A request that may
        // open a session goes to the shard whose turn it is: were sessions
        // homed where their initialize arrives, a client that opens two
        // connections per session (one for its stream) would home every
        // session on the same shard of two.
        const std::string_view session = header(req, k_session_header);
        std::shared_ptr<Impl> shard;
        if (!session.empty()) {
            shard = home(session);
        } else if (header(req, k_version_header) == mcp::k_stateless_version) {
            shard = stateless_home(*who);
        } else if (req.method() == http::verb::post && target_path(req) == options.path) {
            shard = new_session_home();
        } else {
            shard = shared_from_this();
        }
        bool keep = false;
        if (shard.get() == this) {
            keep = co_await respond(stream, req, *who);
        } else if (!moved && handover(shard, owned, guard, peer, buffer, req, *who)) {
            // The connection goes on there: a client that keeps it for its
            // session's requests no longer has each handed across. (A
            // connection moves once: one that carries several sessions'
            // requests is not bounced between shards.) The read timer's
            // handler, if it is queued already, runs before this frame ends.
            co_await asio::post(io, use);
            co_return;
        } else {
            lend(tcp, true);
            keep = co_await asio::co_spawn(shard->io, shard->respond(stream, req, *who),
                                           asio::use_awaitable);
            lend(tcp, false);
        }
        if (!keep) {
            break;
        }
    }
    // close_notify, bounded.
    beast::get_lowest_layer(stream).expires_after(std::chrono::milliseconds{1'000});
    (void)co_await stream.async_shutdown(use);
}

std::string_view target_path(const Request& req) {
    const std::string_view target(req.target().data(), req.target().size());
    return target.substr(0, target.find('?'));
}

// The hook's decision; a `wait` is waited for on this shard (the hook's
// callback may run on any thread) and the hook asked once more.
asio::awaitable<AuthDecision> HttpServer::Impl::authorize(const Request& req,
                                                          const PeerInfo& peer) {
    const std::string_view authorization = header(req, "Authorization");
    AuthDecision decision = options.authorize(authorization, peer);
    if (!decision.wait) {
        co_return decision;
    }
    auto executor = co_await asio::this_coro::executor;
    co_await asio::async_initiate<decltype(asio::use_awaitable), void()>(
        [&decision, executor](auto handler) {
            auto shared = std::make_shared<decltype(handler)>(std::move(handler));
            decision.wait(
                [shared, executor] { asio::post(executor, [shared] { std::move (*shared)(); }); });
        },
        asio::use_awaitable);
    decision = options.authorize(authorization, peer);
    if (decision.wait) {
        decision = AuthDecision{};
        decision.status = 503;
        decision.headers.emplace_back("Retry-After", "5");
        decision.body =
            R"({"error":"temporarily_unavailable","error_description":"the authorization server did not answer in time"})";
    }
    co_return decision;
}

asio::awaitable<bool> HttpServer::Impl::respond(ServerTls& stream, const Request& req,
                                                const PeerInfo& peer) {
    auto self = shared_from_this();
    Outcome out = handle(*this, req, peer);
    if (out.session) {
        co_return co_await serve_stream(*this, stream, req, out);
    }
    deliver_later(io, out);
    co_return out.response.keep_alive() &&
        co_await write_response(stream, out.response, options.timeouts.write);
}

namespace {

// On `io`'s thread: a descriptor from another shard as a socket of `io`;
// nothing (and the descriptor closed) when it cannot be registered there. A
// descriptor that never gets there (the shard stopped first) is closed with
// the posted handler that owns it.
std::optional<tcp::socket> socket_on(asio::io_context& io, tcp protocol, OwnedFd fd) {
    boost::system::error_code ec;
    tcp::socket socket(io);
    socket.assign(protocol, fd.get(), ec);
    if (ec) {
        return std::nullopt;
    }
    (void)fd.release();  // the socket's now
    return socket;
}

}  // namespace

bool HttpServer::Impl::handover(const std::shared_ptr<Impl>& to, std::unique_ptr<ServerTls>& owned,
                                ConnectionGuard& guard, PeerInfo& peer, beast::flat_buffer& buffer,
                                Request& req, const PeerInfo& who) {
    if (stopped) {
        return false;
    }
    auto address = guard.leave();
    if (!address) {
        return false;
    }
    tcp protocol = tcp::v4();
    OwnedFd fd(owned->release_socket(protocol));
    if (!fd.valid()) {
        spdlog::debug("{}: the connection could not move to its session's thread", peer.remote);
        return true;  // its socket is gone: the connection ends
    }
    // (`who` may be `peer` itself: copied before `peer` moves.)
    Arrived request{std::move(req), who};
    asio::post(to->io, [to, stream = std::move(owned), fd = std::move(fd), protocol,
                        address = std::move(*address), peer = std::move(peer),
                        buffer = std::move(buffer), arrived = std::move(request)]() mutable {
        if (auto socket = socket_on(to->io, protocol, std::move(fd))) {
            to->adopt(std::move(stream), std::move(*socket), std::move(address), std::move(peer),
                      std::move(buffer), std::move(arrived));
        }
    });
    group->connections_moved.fetch_add(1, std::memory_order_relaxed);
    return true;
}

void HttpServer::Impl::adopt(std::unique_ptr<ServerTls> stream, tcp::socket socket,
                             std::string address, PeerInfo peer, beast::flat_buffer buffer,
                             Arrived arrived) {
    if (stopped) {
        return;  // the socket closes
    }
    stream->adopt_socket(std::move(socket));
    ConnectionGuard guard(shared_from_this(), beast::get_lowest_layer(*stream), std::move(address),
                          ConnectionGuard::HandedOver{});
    asio::co_spawn(io,
                   serve_requests(std::move(stream), std::move(guard), std::move(peer),
                                  std::move(buffer), std::move(arrived)),
                   log_failure);
}

asio::awaitable<void> HttpServer::Impl::accept_loop() {
    auto self = shared_from_this();
    co_await tls::accept_each(acceptor, [this](tcp::socket socket) {
        if (stopped) {
            return false;
        }
        // Connections are dealt to the shards in turn.
        const std::size_t to = group->size() == 1 ? 0 : group->next++ % group->size();
        auto shard = to == index ? shared_from_this() : group->shards[to].lock();
        if (!shard) {
            return true;
        }
        boost::system::error_code ec;
        std::string address = socket.remote_endpoint(ec).address().to_string();
        if (shard.get() == this) {
            admit(std::move(socket), std::move(address));
            return true;
        }
        const auto protocol = socket.local_endpoint(ec).protocol();
        OwnedFd fd(socket.release(ec));
        if (ec) {
            return true;
        }
        asio::post(shard->io,
                   [shard, protocol, fd = std::move(fd), address = std::move(address)]() mutable {
                       if (auto moved = socket_on(shard->io, protocol, std::move(fd))) {
                           shard->admit(std::move(*moved), std::move(address));
                       }
                   });
        return true;
    });
}

void HttpServer::Impl::admit(tcp::socket socket, std::string address) {
    boost::system::error_code ignored;
    if (stopped) {
        socket.close(ignored);
        return;
    }
    // One address cannot hold more than its share of handshakes: its
    // oldest unfinished one makes room.
    if (const auto h = handshaking.find(address);
        h != handshaking.end() && h->second >= options.limits.max_handshakes_per_address) {
        (void)evict_oldest(Phase::handshake, &address);
    }
    if (live() >= options.limits.max_connections && !evict_oldest(Phase::handshake) &&
        !evict_oldest(Phase::idle)) {
        ++refused;
        const auto now = Clock::now();
        if (now - last_refusal_log > std::chrono::seconds{5}) {
            last_refusal_log = now;
            spdlog::warn(
                "connection limit ({}) reached with every connection at work; closing new ones",
                options.limits.max_connections * group->size());
        }
        socket.close(ignored);
        return;
    }
    auto stream = std::make_unique<ServerTls>(std::move(socket), ssl);
    ConnectionGuard guard(shared_from_this(), beast::get_lowest_layer(*stream), std::move(address));
    asio::co_spawn(io, serve(std::move(stream), std::move(guard)), log_failure);
}

asio::awaitable<void> HttpServer::Impl::pressure_loop() {
    auto self = shared_from_this();
    while (!stopped) {
        pressure.expires_after(std::chrono::milliseconds{250});
        auto [ec] = co_await pressure.async_wait(use);
        if (ec || stopped) {
            break;
        }
        if (overload() >= 1.0) {
            continue;
        }
        const auto now = Clock::now();
        const auto handshake = scaled(options.timeouts.handshake);
        const auto idle = scaled(options.timeouts.idle);
        std::vector<DeadlineSocket*> late;
        for (auto& [tcp, c] : connections) {
            if (!c.evicted && ((c.phase == Phase::handshake && now - c.since > handshake) ||
                               (c.phase == Phase::idle && now - c.since > idle))) {
                late.push_back(tcp);
            }
        }
        for (auto* tcp : late) {
            evict(tcp);
        }
    }
}

asio::awaitable<void> HttpServer::Impl::sweep_loop() {
    auto self = shared_from_this();
    const auto period =
        std::clamp(options.timeouts.session_idle / 4, std::chrono::milliseconds{100},
                   std::chrono::milliseconds{30'000});
    while (!stopped) {
        sweeper.expires_after(period);
        auto [ec] = co_await sweeper.async_wait(use);
        if (ec || stopped) {
            break;
        }
        const auto now = Clock::now();
        std::vector<std::shared_ptr<Session>> expired;
        for (auto& [id, session] : sessions) {
            if (session->attached_ == 0 &&
                now - session->last_activity_ > options.timeouts.session_idle) {
                expired.push_back(session);
                continue;
            }
            // Questions of input_required results nobody came back for:
            // answered with an error now, not at the session's next request.
            if (session->stateless_) {
                session->stateless_expire();
            }
            // Streams whose client left and never came back.
            for (auto it = session->streams_.begin(); it != session->streams_.end();) {
                if (!it->second.standalone && it->second.writer == nullptr &&
                    now - it->second.detached_at > k_stream_linger) {
                    const auto gone = it++;
                    session->erase_stream(gone);
                } else {
                    ++it;
                }
            }
        }
        for (auto& session : expired) {
            session->close("idle for longer than the session timeout");
        }
        // After a wave of connections ended, hand the heap they used back to
        // the system: the allocator keeps freed memory otherwise, and a
        // gateway that once held many connections would keep their footprint.
        // The heap is the process's: one shard releases it, for all of them.
        if (index == 0 && group->closed.exchange(0, std::memory_order_relaxed) >= 64) {
            (void)release_free_heap();
        }
    }
}

HttpServer::HttpServer(asio::io_context& io, SSL_CTX* ctx, const HttpServerOptions& options)
    : HttpServer(std::vector<asio::io_context*>{&io}, ctx, options) {}

HttpServer::HttpServer(const std::vector<asio::io_context*>& shards, SSL_CTX* ctx,
                       const HttpServerOptions& options) {
    // A session id's first byte names its home: at most 256 shards.
    if (shards.empty() || shards.size() > 256) {
        throw std::invalid_argument("HttpServer: between 1 and 256 shards");
    }
    auto group = std::make_shared<ServerGroup>(shards.size());
    for (std::size_t i = 0; i < shards.size(); ++i) {
        shards_.push_back(std::make_shared<Impl>(*shards[i], ctx, options, group, i));
        group->shards.push_back(shards_.back());
    }
}

HttpServer::~HttpServer() {
    try {
        stop();
    } catch (...) {  // NOLINT(bugprone-empty-catch): out of memory while closing
    }
}

Result<std::uint16_t> HttpServer::start() {
    Impl& first = *shards_.front();
    const auto port = tls::listen_on(first.acceptor, first.options.host, first.options.port);
    if (!port) {
        return fail(Errc::listen_failed, port.error());
    }
    // The server's own origin is never a DNS-rebinding page: the pages of
    // https://HOST:PORT are this server's own (its dashboard), and nothing can
    // serve a page from http://HOST:PORT, a TLS-only port. A rebinding page
    // has another host name, and stays refused.
    std::string host = first.options.host;
    if (host.find(':') != std::string::npos) {
        host = "[" + host + "]";
    }
    std::vector<std::string> hosts{host};
    if (host == "127.0.0.1" || host == "[::1]") {
        hosts.emplace_back("localhost");
    }
    for (const auto& shard : shards_) {
        for (const auto& h : hosts) {
            for (const char* scheme : {"https://", "http://"}) {
                shard->origins.add(scheme + h + ":" + std::to_string(*port));
            }
        }
    }
    asio::co_spawn(first.io, first.accept_loop(), asio::detached);
    for (const auto& shard : shards_) {
        asio::co_spawn(shard->io, shard->sweep_loop(), asio::detached);
        asio::co_spawn(shard->io, shard->pressure_loop(), asio::detached);
    }
    return *port;
}

void HttpServer::Impl::stop_here() {
    if (stopped) {
        return;
    }
    stopped = true;
    boost::system::error_code ignored;
    acceptor.close(ignored);
    sweeper.cancel();
    pressure.cancel();
    std::vector<std::shared_ptr<Session>> all;
    all.reserve(sessions.size());
    for (auto& [id, session] : sessions) {
        all.push_back(session);
    }
    for (auto& session : all) {
        session->close("the gateway is shutting down");
    }
    for (auto& [tcp, c] : connections) {
        // A lent connection comes back when the other shard has ended its
        // stream; its coroutine here closes it then.
        if (!c.lent) {
            tcp->socket().close(ignored);
        }
    }
}

void HttpServer::Impl::lend(DeadlineSocket* tcp, bool out) {
    if (const auto it = connections.find(tcp); it != connections.end()) {
        it->second.lent = out;
    }
    if (out) {
        ++group->lent;
    } else {
        --group->lent;
    }
}

std::size_t HttpServer::lent() const {
    return shards_.front()->group->lent;
}

void HttpServer::stop() {
    for (const auto& shard : shards_) {
        // On the shard's own thread; here when that is this one, or when
        // nothing runs the shard any more (the server outlived its threads).
        if (shard->io.get_executor().running_in_this_thread() || shard->io.stopped()) {
            shard->stop_here();
        } else {
            asio::post(shard->io, [shard] { shard->stop_here(); });
        }
    }
}

HttpServer::RawAnswer HttpServer::answer(std::string_view bytes, const PeerInfo& peer) {
    const auto& options = shards_.front()->options;
    http::request_parser<http::string_body> parser;
    parser.header_limit(static_cast<std::uint32_t>(options.limits.max_header_bytes));
    parser.body_limit(options.limits.max_body_bytes);
    RawAnswer out;
    boost::system::error_code ec;
    out.used = feed(parser, asio::buffer(bytes.data(), bytes.size()), ec);
    if (ec) {
        const auto failure = read_failure(ec, false, options);
        out.status = failure ? static_cast<int>(failure->result_int()) : 0;
        out.used = bytes.size();
        return out;
    }
    if (!parser.is_done()) {
        out.used = bytes.size();
        return out;
    }
    const Request req = parser.release();
    Outcome answer = handle(*shards_.front(), req, peer);
    deliver_later(shards_.front()->io, answer);
    out.status = static_cast<int>(answer.response.result_int());
    if (answer.with_session_header && answer.session) {
        out.session_id = answer.session->id();
    }
    return out;
}

HttpServerStats HttpServer::stats() const {
    HttpServerStats out;
    for (const auto& shard : shards_) {
        out.connections += shard->connection_count;
        out.sessions += shard->session_count;
        out.streams += shard->open_streams;
        out.buffered_bytes += shard->buffered;
        out.evicted += shard->evicted;
        out.refused += shard->refused;
        out.overload = std::min(out.overload, shard->overload());
    }
    out.connections_moved = shards_.front()->group->connections_moved;
    return out;
}

}  // namespace pqmcp::transport
