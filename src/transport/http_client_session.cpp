// The Streamable HTTP client's MCP session: each message posted (a JSON or
// SSE answer), SSE resumption with Last-Event-ID, re-initialization when the
// server forgot the session, the GET stream, and DELETE at the end.
#include "http_client_impl.hpp"

#include <algorithm>
#include <array>

#include "pqmcp/core/scope.hpp"

namespace pqmcp::transport {

asio::awaitable<void> McpHttpClient::Impl::post(json::object message, bool bypass) {
    const auto self = shared_from_this();
    const bool internal = is_internal(message);
    const std::string method = method_of(message);
    // A caller of 2026-07-28 (pass_stateless): nothing of the session applies.
    const bool passed = options.pass_stateless && carries_stateless_envelope(message);
    if (passed) {
        bypass = true;
    }
    if (holding && !bypass && !internal) {
        held.push_back(std::move(message));
        co_return;
    }
    if (method == mcp::method::initialize && !internal && !passed) {
        // A new session from the client itself.
        init_request = message;
        session_id.clear();
        version.clear();
        stateless = false;
        if (options.revision != HttpClientOptions::Revision::sessions) {
            // 2026-07-28 first, if the server offers it: server/discover in
            // place of initialize, whose answer is made from it.
            holding = true;
            discover_id = "pqmcp-discover-" + std::to_string(++internal_counter);
            internal_ids.insert(discover_id);
            discovered.reset();
            stateless = true;  // the probe is a request of that revision
            co_await post(mcp::make_request(json::value(json::string(discover_id)),
                                            mcp::method::server_discover, {}),
                          true);
            stateless = false;
            internal_ids.erase(discover_id);
            bool offered = false;
            if (discovered) {
                if (const auto* v = discovered->if_contains("supportedVersions");
                    v != nullptr && v->is_array()) {
                    for (const auto& x : v->as_array()) {
                        offered = offered || x == json::value(mcp::k_stateless_version);
                    }
                }
            }
            if (offered) {
                stateless = true;
                version = std::string(mcp::k_stateless_version);
                json::object result;
                const auto* params = member(message, "params");
                const json::object* p =
                    params != nullptr && params->is_object() ? &params->as_object() : nullptr;
                const auto* requested = p != nullptr ? p->if_contains("protocolVersion") : nullptr;
                result["protocolVersion"] = mcp::negotiate_version(
                    requested != nullptr && requested->is_string() ? requested->get_string()
                                                                   : mcp::k_latest_version);
                const auto* caps = discovered->if_contains("capabilities");
                result["capabilities"] = caps != nullptr ? *caps : json::object{};
                json::value info = json::object{{"name", options.url.host}, {"version", ""}};
                if (const auto* meta = discovered->if_contains("_meta");
                    meta != nullptr && meta->is_object()) {
                    if (const auto* i = meta->as_object().if_contains(mcp::k_meta_server_info)) {
                        info = *i;
                    }
                }
                result["serverInfo"] = std::move(info);
                if (const auto* instructions = discovered->if_contains("instructions")) {
                    result["instructions"] = *instructions;
                }
                spdlog::info("{}: speaks MCP 2026-07-28 (server/discover); no session",
                             options.url.str());
                if (callbacks.on_message) {
                    callbacks.on_message(*mcp::classify(
                        json::value(mcp::make_result(message.at("id"), std::move(result)))));
                }
                release_hold();
                co_return;
            }
            if (options.revision == HttpClientOptions::Revision::stateless) {
                holding = false;
                fail(message,
                     Error{make_error_code(Errc::protocol_error),
                           "the server does not offer protocol version 2026-07-28 through "
                           "server/discover"},
                     nullptr);
                co_return;
            }
        }
    }
    if (stateless) {
        if (method == mcp::method::initialized) {
            // No lifecycle in 2026-07-28, and no GET stream: the list changes
            // come on a subscriptions/listen stream.
            start_listening();
            co_return;
        }
        if (!passed && (method == mcp::method::resources_subscribe ||
                        method == mcp::method::resources_unsubscribe)) {
            // This revision has no resources/subscribe: a subscription is a
            // URI in subscriptions/listen's resourceSubscriptions. The listen
            // stream is reopened with the new set, and the request answered here.
            resubscribe(message);
            co_return;
        }
        if (!internal && is_request(message)) {
            stateless_sent[mcp::id_text(message.at("id"))] = message;
        }
        stateless_envelope(message);
    }
    // Until this notification is through, later messages wait (the server may
    // act on it: server-everything registers tools then).
    bool holds = false;
    const OnExit hold([this, &holds] {
        if (holds) {
            try {
                release_hold();
            } catch (...) {  // NOLINT(bugprone-empty-catch): out of memory; held messages stay
            }
        }
    });
    if (method == mcp::method::initialized) {
        holding = true;
        holds = true;
        co_await open_listener();
    } else if (method == mcp::method::initialize && !internal) {
        // What the client sends before the answer names the session waits for
        // it (sent without the session, it would get "Mcp-Session-Id header
        // is required").
        holding = true;
        holds = true;
    }
    const json::value* request_id = is_request(message) ? member(message, "id") : nullptr;
    const std::string key = request_id != nullptr ? mcp::id_text(*request_id) : std::string{};
    auto req = make_request(http::verb::post, mcp::serialize(message));
    if (stateless || passed) {
        stateless_headers(req, message);
    }
    if (stateless && !passed) {
        add_param_headers(req, message);
        add_forwarded(req, message, key);
    }
    if (passed) {
        req.erase(beast::string_view(k_session_header.data(), k_session_header.size()));
    }
    // The overall deadline of a request: its connection is closed when it
    // passes, whatever keeps the stream alive.
    std::optional<asio::steady_timer> deadline;
    auto expired = std::make_shared<bool>(false);
    if (request_id != nullptr) {
        deadline.emplace(ex, options.request_deadline);
        deadline->async_wait(
            [this, key, expired, weak = weak_from_this()](const boost::system::error_code& ec) {
                const auto alive = weak.lock();
                if (ec || !alive) {
                    return;
                }
                *expired = true;
                if (const auto it = active.find(key); it != active.end()) {
                    it->second->close();
                }
            });
    }
    const OnExit untrack([this, key] {
        if (key.empty()) {
            return;
        }
        active.erase(key);
        cancelled.erase(key);
        posted.erase(key);
        // (A stateless request answered input_required lives on in its
        // Round; one that failed needs no retry.)
        stateless_sent.erase(key);
        // Its retry, if it was made before this post ended: the two share the
        // id, and with it this bookkeeping.
        if (const auto r = retries.find(key); r != retries.end()) {
            auto retry = std::move(r->second);
            retries.erase(r);
            try {
                asio::co_spawn(ex, post(std::move(retry)), asio::detached);
            } catch (...) {  // NOLINT(bugprone-empty-catch): out of memory; the
                             // request's deadline answers its caller
            }
        }
    });
    if (!key.empty()) {
        posted.insert(key);
    }
    const auto given_up = [this, &key, &expired, &message]() -> bool {
        if (!key.empty() && cancelled.contains(key)) {
            return true;  // the caller does not want to hear of it
        }
        if (*expired) {
            fail(message,
                 Error{make_error_code(Errc::timeout),
                       "no response within the request deadline of " +
                           std::to_string(options.request_deadline.count()) + " ms"},
                 nullptr);
            return true;
        }
        return false;
    };

    Result<Exchange> result = pqmcp::fail(Errc::closed, "not sent");
    for (int attempt = 0; attempt < 2; ++attempt) {
        auto conn = co_await acquire();
        if (!conn) {
            if (!given_up()) {
                fail(message, conn.error(), nullptr);
            }
            co_return;
        }
        if (given_up()) {
            release(std::move(*conn), true);
            co_return;
        }
        const bool reused = (*conn)->reused;
        if (!key.empty()) {
            active[key] = conn->get();
        }
        result = co_await round_trip(**conn, req, request_id, false);
        active.erase(key);
        if (given_up()) {
            release(std::move(*conn), false);
            co_return;
        }
        release(std::move(*conn), result && result->keep_alive);
        // A kept-alive connection the server closed meanwhile: once more, fresh.
        if (!result && reused && result.error().code == Errc::io_error) {
            continue;
        }
        break;
    }
    if (!result) {
        fail(message, result.error(), nullptr);
        co_return;
    }
    Exchange& ex_result = *result;
    if (method == mcp::method::initialize && ex_result.status == 200) {
        session_id = ex_result.session_header;
    }
    if (ex_result.status == 404 && !session_id.empty() && method != mcp::method::initialize &&
        !passed) {
        if (options.reinitialize && init_request && !internal) {
            held.push_back(std::move(message));
            if (!reinitializing) {
                reinitializing = true;
                holding = true;
                asio::co_spawn(ex, reinitialize(), asio::detached);
            }
            co_return;
        }
        fail(message,
             Error{make_error_code(Errc::session_expired),
                   describe_status(404, "Not Found", ex_result.error_body)},
             nullptr);
        co_return;
    }
    if (ex_result.status != 200 && ex_result.status != 202 && ex_result.status != 204) {
        boost::system::error_code ec;
        json::value body = json::parse(ex_result.error_body, ec);
        // A JSON-RPC error object, not any JSON with "error" (an OAuth error
        // body of a 401 has a string there, RFC 6750 section 3).
        const json::object* server_error = !ec && body.is_object() &&
                                                   body.as_object().contains("error") &&
                                                   body.as_object().at("error").is_object()
                                               ? &body.as_object()
                                               : nullptr;
        fail(message,
             Error{make_error_code(Errc::http_status),
                   describe_status(ex_result.status, "", ex_result.error_body)},
             server_error);
        co_return;
    }
    if (request_id != nullptr && !ex_result.response_seen) {
        // The SSE stream ended before the response: resume it (GET Last-Event-ID).
        bool resumed = false;
        if (!ex_result.last_event_id.empty()) {
            resumed = co_await resume(message, ex_result.last_event_id);
        }
        if (given_up()) {
            co_return;
        }
        if (!resumed) {
            fail(message,
                 Error{make_error_code(Errc::protocol_error),
                       "the server ended the response stream without answering the request"},
                 nullptr);
        }
        co_return;
    }
}

asio::awaitable<bool> McpHttpClient::Impl::resume(const json::object& message, std::string cursor) {
    const auto self = shared_from_this();
    const json::value* request_id = member(message, "id");
    for (std::size_t attempt = 0; attempt < options.resume_attempts && !closed; ++attempt) {
        auto conn = co_await acquire();
        if (!conn) {
            continue;
        }
        auto req = make_request(http::verb::get, {});
        req.set("Last-Event-ID", cursor);
        const std::string key = request_id != nullptr ? mcp::id_text(*request_id) : std::string{};
        if (!key.empty()) {
            active[key] = conn->get();
        }
        auto result = co_await round_trip(**conn, req, request_id, false);
        active.erase(key);
        if (!key.empty() && cancelled.contains(key)) {
            release(std::move(*conn), false);
            co_return true;  // given up: nobody waits for it
        }
        release(std::move(*conn), result && result->keep_alive);
        if (result && result->response_seen) {
            co_return true;
        }
        if (result && !result->last_event_id.empty()) {
            cursor = result->last_event_id;
        }
        if (result && result->status != 200) {
            break;
        }
    }
    co_return false;
}

asio::awaitable<void> McpHttpClient::Impl::reinitialize() {
    const auto self = shared_from_this();
    spdlog::info("{}: the session expired; starting a new one", options.url.str());
    session_id.clear();
    version.clear();
    ++listen_generation;  // the old GET stream belongs to the old session
    listening = false;
    json::object init = *init_request;
    const std::string id = "pqmcp-reinit-" + std::to_string(++internal_counter);
    internal_ids.insert(id);
    init["id"] = id;
    auto req = make_request(http::verb::post, mcp::serialize(init));
    const json::value request_id(id);
    auto conn = co_await acquire();
    Result<Exchange> result =
        conn ? Result<Exchange>(pqmcp::fail(Errc::closed, "")) : tl::unexpected(conn.error());
    if (conn) {
        result = co_await round_trip(**conn, req, &request_id, false);
        release(std::move(*conn), result && result->keep_alive);
    }
    internal_ids.erase(id);
    reinitializing = false;
    if (!result || result->status != 200 || result->session_header.empty()) {
        std::vector<json::object> waiting = std::move(held);
        held.clear();
        holding = false;
        const Error error =
            !result ? result.error()
                    : Error{make_error_code(Errc::session_expired),
                            "a new session could not be started: " +
                                describe_status(result->status, "", result->error_body)};
        for (const auto& m : waiting) {
            fail(m, error, nullptr);
        }
        co_return;
    }
    session_id = result->session_header;
    // The new session needs its initialized notification before anything
    // else; post() opens the GET stream first and releases what waited.
    co_await post(mcp::make_notification(mcp::method::initialized, {}), true);
}

asio::awaitable<void> McpHttpClient::Impl::listen(std::uint64_t generation) {
    const auto self = shared_from_this();
    auto backoff = std::chrono::milliseconds{500};
    while (!closed && generation == listen_generation && (stateless || !session_id.empty())) {
        auto conn = co_await connect();
        bool got_events = false;
        std::uint64_t retry = 0;
        if (!conn) {
            listen_opened = true;  // nobody should wait for it
            listen_signal.notify();
        }
        if (conn) {
            open.insert(conn->get());
            listener = conn->get();
            auto req = stateless ? listen_request() : make_request(http::verb::get, {});
            if (!stateless && !listen_cursor.empty()) {
                req.set("Last-Event-ID", listen_cursor);
            }
            boost::system::error_code ignored;
            (*conn)->lowest().socket().set_option(asio::socket_base::keep_alive(true), ignored);
            auto result = co_await round_trip(**conn, req, nullptr, true);
            listener = nullptr;
            open.erase(conn->get());
            (*conn)->close();
            if (result) {
                if (!result->last_event_id.empty()) {
                    listen_cursor = result->last_event_id;
                    got_events = true;
                }
                retry = result->retry_ms;
                // "...or else return HTTP 405 Method Not Allowed, indicating that
                // the server does not offer an SSE stream at this endpoint."
                if (result->status == 405) {
                    spdlog::debug("{}: no GET stream offered", options.url.str());
                    break;
                }
                if (result->status == 404) {
                    break;  // the session is gone; a re-initialization restarts us
                }
                if (result->status == 200) {
                    got_events = true;
                }
            }
        }
        if (closed || generation != listen_generation) {
            break;
        }
        backoff = got_events ? std::chrono::milliseconds{500}
                             : std::min(backoff * 2, options.reconnect_max);
        // "The client MUST respect the retry field, waiting the given number of
        // milliseconds before attempting to reconnect."
        const auto wait = retry > 0 ? std::chrono::milliseconds{retry} : backoff;
        listen_wait.expires_after(wait);
        (void)co_await listen_wait.async_wait(use);
    }
    if (generation == listen_generation) {
        listening = false;
    }
}

json::object McpHttpClient::Impl::listen_filter() const {
    json::object filter;
    const auto* caps = discovered ? discovered->if_contains("capabilities") : nullptr;
    const auto* c = caps != nullptr ? caps->if_object() : nullptr;
    if (c == nullptr) {
        return filter;
    }
    static constexpr std::array<std::pair<std::string_view, std::string_view>, 3> k_kinds{{
        {"tools", "toolsListChanged"},
        {"prompts", "promptsListChanged"},
        {"resources", "resourcesListChanged"},
    }};
    for (const auto& [kind, key] : k_kinds) {
        const auto* k = c->if_contains(kind);
        const auto* o = k != nullptr ? k->if_object() : nullptr;
        const auto* changed = o != nullptr ? o->if_contains("listChanged") : nullptr;
        if (changed != nullptr && changed->is_bool() && changed->get_bool()) {
            filter[key] = true;
        }
    }
    const auto* resources = c->if_contains("resources");
    const auto* r = resources != nullptr ? resources->if_object() : nullptr;
    const auto* subscribe = r != nullptr ? r->if_contains("subscribe") : nullptr;
    if (!listen_uris.empty() && subscribe != nullptr && subscribe->is_bool() &&
        subscribe->get_bool()) {
        json::array uris;
        for (const auto& u : listen_uris) {
            uris.emplace_back(u);
        }
        filter["resourceSubscriptions"] = std::move(uris);
    }
    return filter;
}

void McpHttpClient::Impl::resubscribe(const json::object& message) {
    const auto* params = member(message, "params");
    const auto* p = params != nullptr ? params->if_object() : nullptr;
    const auto* uri = p != nullptr ? p->if_contains("uri") : nullptr;
    const auto* id = member(message, "id");
    json::object answer;
    if (uri == nullptr || !uri->is_string()) {
        answer = mcp::make_error(id != nullptr ? *id : json::value(), mcp::code::invalid_params,
                                 "params.uri is required");
    } else if (method_of(message) == mcp::method::resources_unsubscribe) {
        listen_uris.erase(std::string(uri->get_string()));
        answer = mcp::make_result(id != nullptr ? *id : json::value(), json::object{});
    } else if (listen_uris.size() >= 256) {
        answer = mcp::make_error(id != nullptr ? *id : json::value(), mcp::code::over_limit,
                                 "more than 256 resource subscriptions on this upstream");
    } else {
        listen_uris.insert(std::string(uri->get_string()));
        answer = mcp::make_result(id != nullptr ? *id : json::value(), json::object{});
    }
    ++listen_generation;
    if (listener != nullptr) {
        listener->close();
    }
    listening = false;
    start_listening();
    if (id != nullptr && callbacks.on_message) {
        if (auto item = mcp::classify(json::value(std::move(answer)))) {
            callbacks.on_message(std::move(*item));
        }
    }
}

http::request<http::string_body> McpHttpClient::Impl::listen_request() {
    // "subscriptions/listen": the stream stays open and carries the
    // notification types asked for, after an acknowledgement (dropped in
    // deliver()). Its id is internal: its end is nobody's answer.
    const std::string id = "pqmcp-listen-" + std::to_string(listen_generation);
    if (listen_id != id) {
        internal_ids.erase(listen_id);  // the previous generation's stream is over
        listen_id = id;
        internal_ids.insert(id);
    }
    json::object message =
        mcp::make_request(json::value(json::string(id)), mcp::method::subscriptions_listen,
                          json::object{{"notifications", listen_filter()}});
    stateless_envelope(message);
    auto req = make_request(http::verb::post, mcp::serialize(message));
    stateless_headers(req, message);
    return req;
}

asio::awaitable<void> McpHttpClient::Impl::terminate(std::function<void()> done) {
    const auto self = shared_from_this();
    if (!session_id.empty() && !closed) {
        // "Clients that no longer need a particular session ... SHOULD send an HTTP
        // DELETE to the MCP endpoint with the MCP-Session-Id header".
        auto conn = co_await acquire();
        if (conn) {
            auto req = make_request(http::verb::delete_, {});
            auto saved = options.response_timeout;
            options.response_timeout = std::min(options.response_timeout, options.write_timeout);
            auto result = co_await round_trip(**conn, req, nullptr, false);
            options.response_timeout = saved;
            release(std::move(*conn), false);
        }
    }
    closed = true;
    ++listen_generation;
    close_all();
    if (done) {
        done();
    }
}

void McpHttpClient::Impl::stateless_envelope(json::object& message) const {
    json::object& m = mcp::writable_meta(message);
    m[mcp::k_meta_protocol_version] = mcp::k_stateless_version;
    json::value caps = json::object{};
    json::value info = json::object{{"name", "pqmcp"}, {"version", ""}};
    if (init_request) {
        if (const auto* p = init_request->if_contains("params"); p != nullptr && p->is_object()) {
            if (const auto* c = p->as_object().if_contains("capabilities")) {
                caps = *c;
            }
            if (const auto* i = p->as_object().if_contains("clientInfo")) {
                info = *i;
            }
        }
    }
    m[mcp::k_meta_client_capabilities] = std::move(caps);
    m[mcp::k_meta_client_info] = std::move(info);
}

void McpHttpClient::Impl::stateless_headers(http::request<http::string_body>& req,
                                            const json::object& message) {
    req.set(beast::string_view(k_version_header.data(), k_version_header.size()),
            std::string(mcp::k_stateless_version));
    if (!is_request(message)) {
        return;
    }
    const std::string method = method_of(message);
    req.set("Mcp-Method", method);
    const auto* params = member(message, "params");
    if (params == nullptr || !params->is_object()) {
        return;
    }
    if (const std::string_view field = mcp::method::named_field(method); !field.empty()) {
        if (const auto* v = params->as_object().if_contains(field);
            v != nullptr && v->is_string()) {
            // "If the `Mcp-Name` source value cannot be safely represented as a
            // plain ASCII header value, clients **MUST** encode it using the
            // Base64 sentinel format"
            req.set("Mcp-Name", encode_header_value(v->get_string()));
        }
    }
}

void McpHttpClient::Impl::learn_param_headers(json::object& result) {
    auto* tools = result.if_contains("tools");
    if (tools == nullptr || !tools->is_array()) {
        return;
    }
    auto& list = tools->as_array();
    for (auto it = list.begin(); it != list.end();) {
        const auto* tool = it->if_object();
        const auto* name = tool != nullptr ? tool->if_contains("name") : nullptr;
        const auto* schema = tool != nullptr ? tool->if_contains("inputSchema") : nullptr;
        if (name == nullptr || !name->is_string() || schema == nullptr) {
            ++it;
            continue;
        }
        const std::string tool_name(name->get_string());
        auto marks = param_headers_of(*schema);
        if (!marks) {
            // "Clients using the Streamable HTTP transport MUST reject tool
            // definitions where any x-mcp-header value violates these
            // constraints. Rejection means the client MUST exclude the
            // invalid tool from the result of tools/list. Clients SHOULD log
            // a warning when rejecting a tool definition, including the tool
            // name and the reason for rejection."
            spdlog::warn("{}: tool {} left out: {}", options.url.str(), tool_name, marks.error());
            param_headers.erase(tool_name);
            it = list.erase(it);
            continue;
        }
        if (marks->empty()) {
            param_headers.erase(tool_name);
        } else if (param_headers.size() < 4096) {
            param_headers[tool_name] = std::move(*marks);
        }
        ++it;
    }
}

void McpHttpClient::Impl::add_param_headers(http::request<http::string_body>& req,
                                            const json::object& message) const {
    if (method_of(message) != mcp::method::tools_call) {
        return;
    }
    const auto* params = member(message, "params");
    const auto* p = params != nullptr ? params->if_object() : nullptr;
    const auto* name = p != nullptr ? p->if_contains("name") : nullptr;
    const auto* args = p != nullptr ? p->if_contains("arguments") : nullptr;
    if (name == nullptr || !name->is_string() || args == nullptr) {
        return;
    }
    const auto it = param_headers.find(std::string(name->get_string()));
    if (it == param_headers.end()) {
        return;
    }
    // Streamable HTTP, custom headers: a marked argument's value goes in
    // Mcp-Param-{Name}, in the Base64 sentinel when it is not plain ASCII;
    // null or absent: none.
    for (const auto& mark : it->second) {
        if (const auto text = param_header_text(argument_at(*args, mark.path))) {
            req.set(std::string(k_param_header_prefix) + mark.name, encode_header_value(*text));
        }
    }
}

void McpHttpClient::Impl::send_retry(const std::string& key, json::object retry) {
    if (posted.contains(key)) {
        retries[key] = std::move(retry);  // sent when the first post ends
        return;
    }
    asio::co_spawn(ex, post(std::move(retry)), asio::detached);
}

void McpHttpClient::Impl::forget_request(const std::string& key) {
    stateless_requests.erase(key);
    retries.erase(key);
    if (rounds.erase(key) > 0) {
        std::erase_if(questions, [&key](const auto& q) { return q.second == key; });
    }
}

void McpHttpClient::Impl::add_forwarded(http::request<http::string_body>& req,
                                        const json::object& message, const std::string& key) const {
    const auto it = stateless_requests.find(key);
    if (it == stateless_requests.end() || it->second.forward.empty()) {
        return;
    }
    const auto* params = member(message, "params");
    const auto* p = params != nullptr ? params->if_object() : nullptr;
    const auto* name = p != nullptr ? p->if_contains("name") : nullptr;
    const auto marks = name != nullptr && name->is_string()
                           ? param_headers.find(std::string(name->get_string()))
                           : param_headers.end();
    // "Intermediate servers that do not recognize an `Mcp-Param-{Name}`
    // header **MUST** forward it and otherwise ignore it"
    for (const auto& [header, value] : it->second.forward) {
        if (marks != param_headers.end() && param_header_declared(marks->second, header)) {
            continue;
        }
        req.set(std::string(k_param_header_prefix) + header, value);
    }
}

bool McpHttpClient::Impl::stateless_input_required(const mcp::Message& m) {
    const auto* result = m.body.if_contains("result");
    if (result == nullptr || !result->is_object()) {
        return false;
    }
    const auto& r = result->as_object();
    const auto* type = r.if_contains("resultType");
    if (type == nullptr || *type != json::value("input_required")) {
        return false;
    }
    const std::string key = mcp::id_text(m.id);
    const auto sent = stateless_sent.find(key);
    if (sent == stateless_sent.end()) {
        return false;
    }
    // Bounded: a server that keeps answering input_required (or that many
    // requests wait for answers at once) ends the request with an error.
    auto& tracked = stateless_requests[key];
    if (++tracked.rounds > k_max_input_rounds || rounds.size() >= k_max_rounds ||
        stateless_requests.size() > k_max_stateless_requests) {
        fail(sent->second,
             Error{make_error_code(Errc::protocol_error),
                   "the server asked for input more than " + std::to_string(k_max_input_rounds) +
                       " times, or too many requests wait for input"},
             nullptr);
        return true;
    }
    Round round;
    round.request = sent->second;
    if (const auto* state = r.if_contains("requestState")) {
        round.state = *state;
    }
    std::vector<json::object> asks;
    if (const auto* inputs = r.if_contains("inputRequests");
        inputs != nullptr && inputs->is_object()) {
        for (const auto& [name, ask] : inputs->as_object()) {
            if (!ask.is_object() || asks.size() >= 16) {
                continue;
            }
            const std::string qid = "pqmcp-input-" + std::to_string(++internal_counter);
            round.keys[qid] = std::string(name);
            questions[qid] = key;
            json::object request{{"jsonrpc", "2.0"}, {"id", qid}};
            if (const auto* method = ask.as_object().if_contains("method")) {
                request["method"] = *method;
            }
            if (const auto* params = ask.as_object().if_contains("params")) {
                request["params"] = *params;
            }
            asks.push_back(std::move(request));
        }
    }
    if (asks.empty()) {
        // requestState alone: the server wants the request again as it is.
        json::object retry = round.request;
        if (!round.state.is_null()) {
            mcp::writable_params(retry)["requestState"] = round.state;
        }
        send_retry(key, std::move(retry));
        return true;
    }
    rounds[key] = std::move(round);
    for (auto& a : asks) {
        auto item = mcp::classify(json::value(std::move(a)));
        if (item && callbacks.on_message) {
            callbacks.on_message(std::move(*item));
        } else if (!item) {
            spdlog::warn("{}: an input request that is not a request: {}", options.url.str(),
                         item.error().reason);
        }
    }
    return true;
}

bool McpHttpClient::Impl::stateless_answer(const json::object& message) {
    const auto* id = member(message, "id");
    if (id == nullptr || !id->is_string()) {
        return false;
    }
    const auto q = questions.find(std::string(id->get_string()));
    if (q == questions.end()) {
        return false;
    }
    const std::string key = q->second;
    questions.erase(q);
    const auto r = rounds.find(key);
    if (r == rounds.end()) {
        return true;
    }
    Round& round = r->second;
    const auto k = round.keys.find(std::string(id->get_string()));
    if (k != round.keys.end()) {
        if (const auto* result = message.if_contains("result")) {
            round.answers[k->second] = *result;
        }
        round.keys.erase(k);
    }
    if (!round.keys.empty()) {
        return true;  // more answers to come
    }
    json::object retry = std::move(round.request);
    json::object& params = mcp::writable_params(retry);
    params["inputResponses"] = std::move(round.answers);
    if (!round.state.is_null()) {
        params["requestState"] = std::move(round.state);
    }
    rounds.erase(r);
    send_retry(key, std::move(retry));
    return true;
}

McpHttpClient::McpHttpClient(const asio::any_io_executor& executor, HttpClientOptions options,
                             HttpClientCallbacks callbacks)
    : impl_(std::make_shared<Impl>(executor, std::move(options), std::move(callbacks))) {}

McpHttpClient::~McpHttpClient() {
    impl_->callbacks = {};
    impl_->closed = true;
    ++impl_->listen_generation;
    impl_->close_all();
}

void McpHttpClient::send(json::object message,
                         std::vector<std::pair<std::string, std::string>> param_headers) {
    Impl& s = *impl_;
    if (s.closed) {
        s.fail(message, Error{make_error_code(Errc::closed), "the client is closed"}, nullptr);
        return;
    }
    // A request the sender cancels gets no answer ("SHOULD NOT send a
    // response"): its exchange is given up, and its connection freed.
    std::optional<json::value> cancelled;
    if (method_of(message) == mcp::method::cancelled && !message.contains("id")) {
        if (const auto* p = message.if_contains("params"); p != nullptr && p->is_object()) {
            if (const auto* rid = p->as_object().if_contains("requestId")) {
                cancelled = *rid;
            }
        }
    }
    if (s.stateless && !message.contains("method") && s.stateless_answer(message)) {
        return;  // an answer to a question of an input_required result
    }
    if (s.stateless && !param_headers.empty() && is_request(message)) {
        if (const auto* id = member(message, "id");
            id != nullptr && s.stateless_requests.size() < Impl::k_max_stateless_requests) {
            s.stateless_requests[mcp::id_text(*id)].forward = std::move(param_headers);
        }
    }
    asio::co_spawn(s.ex, s.post(std::move(message)), asio::detached);
    if (cancelled) {
        cancel(*cancelled);
    }
}

std::size_t McpHttpClient::pending_requests() const {
    const Impl& s = *impl_;
    return s.posted.size() +
           static_cast<std::size_t>(std::count_if(s.held.begin(), s.held.end(), is_request));
}

void McpHttpClient::cancel(const json::value& id) {
    Impl& s = *impl_;
    const std::string key = mcp::id_text(id);
    s.forget_request(key);
    if (const auto it = s.active.find(key); it != s.active.end()) {
        s.cancelled.insert(key);
        it->second->close();  // its read fails; post() frees the connection
        return;
    }
    // Not yet on a connection (waiting for one, or held): it will not be reported.
    if (s.posted.contains(key)) {
        s.cancelled.insert(key);
    }
    std::erase_if(s.held, [&key](const json::object& m) {
        const auto* v = m.if_contains("id");
        return v != nullptr && mcp::id_text(*v) == key;
    });
}

void McpHttpClient::close(std::function<void()> done) {
    asio::co_spawn(impl_->ex, impl_->terminate(std::move(done)), asio::detached);
}

const std::string& McpHttpClient::session_id() const noexcept {
    return impl_->session_id;
}

const std::string& McpHttpClient::protocol_version() const noexcept {
    return impl_->version;
}

}  // namespace pqmcp::transport
