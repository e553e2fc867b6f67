// The 2026-07-28 revision on the same /mcp as the session revisions: each
// POST stands alone (its version and the client's capabilities in _meta, its
// method and name repeated in headers), server/discover instead of
// initialize, no GET stream and no DELETE.
//
// Behind it the gateway is unchanged: this shard keeps one session of its
// own per caller (TLS identity and declared capabilities), opened with an
// initialize it writes itself, never named to the client, expiring like any
// idle session. A stateless client therefore reaches the same handler, with
// the same policy, integrity and audit, as a 2025-11-25 client; when the
// kept session expires the next request opens another, and the client never
// notices.
#include "http_server_impl.hpp"

#include <boost/json/parse.hpp>

#include "pqmcp/crypto/util.hpp"
#include "pqmcp/transport/param_headers.hpp"

namespace pqmcp::transport {

namespace {

constexpr std::string_view k_method_header = "Mcp-Method";
constexpr std::string_view k_name_header = "Mcp-Name";
// The id of the initialize the server writes for a kept session.
constexpr std::string_view k_init_id = "pqmcp-stateless-initialize";

// A refusal of one request: HTTP 400 with a JSON-RPC error that carries the
// request's id (a client matches it to the request it sent).
Outcome refuse(const Request& req, const json::value& id, int code, const std::string& message,
               json::value data = nullptr) {
    Outcome out;
    out.response =
        make_response(req, http::status::bad_request, "application/json",
                      mcp::serialize(mcp::make_error(id, code, message, std::move(data))));
    return out;
}

Outcome mismatch(const Request& req, const json::value& id, const std::string& header_value,
                 const std::string& what) {
    return refuse(req, id, mcp::code::header_mismatch, "HeaderMismatch: " + what,
                  json::object{{"mismatch", json::object{{"header", header_value}}}});
}

// What a retry must repeat of its first request: the method and the params
// without _meta and the round's own fields.
// (Serialized member by member, as json::serialize would write the object
// without those keys, and without copying the params.)
std::string request_digest(const mcp::Message& m) {
    std::string text = m.method + "\n{";
    bool first = true;
    if (const auto* p = m.params()) {
        for (const auto& [key, value] : *p) {
            if (key == "_meta" || key == "inputResponses" || key == "requestState") {
                continue;
            }
            text += first ? "" : ",";
            text += json::serialize(json::string_view(key));
            text += ':';
            text += json::serialize(value);
            first = false;
        }
    }
    text += '}';
    return to_hex(crypto::sha256(as_bytes(text)));
}

// How long a requestState can be used (an elicitation waits for a person).
constexpr auto k_input_window = std::chrono::minutes{5};
// input_required answers one kept session has waiting at once.
constexpr std::size_t k_max_pending_inputs = 64;
// Messages held for one answered stream until its retry.
constexpr std::size_t k_max_held = 64;

// Removes the revision's own keys from params._meta before the request goes
// on (upstreams of the session revisions do not know them).
void strip_meta(mcp::Message& m) {
    auto* meta = m.meta();
    if (meta == nullptr) {
        return;
    }
    for (const auto key :
         {mcp::k_meta_protocol_version, mcp::k_meta_client_capabilities, mcp::k_meta_client_info}) {
        meta->erase(key);
    }
    auto* params = m.params();  // (there is one: it holds the _meta)
    if (meta->empty()) {
        params->erase("_meta");
    }
    if (params->empty()) {
        m.body.erase("params");
    }
}

// The kept session for a caller, opened if there is none (or an HTTP error).
std::variant<std::shared_ptr<Session>, Outcome> kept_session(HttpServer::Impl& server,
                                                             const Request& req,
                                                             const PeerInfo& peer,
                                                             const json::object& meta) {
    // Callers with a verified or proven identity are told apart by it;
    // anonymous callers (no client certificate) by their connection, so that
    // two of them never share an upstream process. Declared capabilities
    // count too: an upstream learns them once, at its initialize.
    const auto* caps = meta.if_contains(mcp::k_meta_client_capabilities);
    std::string caller = stateless_caller(peer);
    std::string declared = json::serialize(caps->as_object());
    if (const auto c = server.stateless.find(caller); c != server.stateless.end()) {
        if (const auto it = c->second.find(declared); it != c->second.end()) {
            const auto s = server.sessions.find(it->second);
            if (s != server.sessions.end() && !s->second->closed_ && !s->second->init_failed_) {
                s->second->last_activity_ = Clock::now();
                return s->second;
            }
        }
    }
    auto made = new_session(server, req, peer);
    if (std::holds_alternative<Outcome>(made)) {
        return made;
    }
    auto session = std::get<std::shared_ptr<Session>>(std::move(made));
    session->stateless_ = true;
    session->stateless_caller_ = caller;
    session->stateless_caps_ = declared;
    if (!server.options.open_session) {
        return http_error(req, http::status::internal_server_error, mcp::code::internal_error,
                          "no session handler");
    }
    auto handler = server.options.open_session(*session);
    if (!handler) {
        return http_error(req, http::status::service_unavailable, mcp::code::over_limit,
                          handler.error().message());
    }
    session->handler_ = std::move(*handler);
    server.add_session(session);
    server.stateless[std::move(caller)][std::move(declared)] = session->id_;
    // Its initialize, on a stream nobody reads: the answer is kept
    // (Session::send hands it to stateless_initialized).
    Stream init;
    init.id = session->next_stream_++;
    init.pending = 1;
    session->init_stream_ = init.id;
    const StreamId init_id = init.id;
    session->streams_.emplace(init_id, std::move(init));
    json::object params{{"protocolVersion", std::string(mcp::k_latest_version)},
                        {"capabilities", caps->as_object()}};
    if (const auto* info = meta.if_contains(mcp::k_meta_client_info);
        info != nullptr && info->is_object()) {
        params["clientInfo"] = info->as_object();
    } else {
        params["clientInfo"] = json::object{{"name", "stateless client"}, {"version", "0"}};
    }
    auto init_message = mcp::classify(json::value(mcp::make_request(
        json::value(json::string(k_init_id)), mcp::method::initialize, std::move(params))));
    asio::post(server.io, [session, init_id, m = std::move(*init_message)]() mutable {
        if (!session->closed_) {
            session->handler_->on_message(std::move(m), init_id);
        }
    });
    return session;
}

}  // namespace

Outcome handle_stateless(HttpServer::Impl& server, const Request& req, const PeerInfo& peer,
                         mcp::Parsed parsed) {
    if (parsed.batch) {
        return http_error(req, http::status::bad_request, mcp::code::invalid_request,
                          "Invalid Request: JSON-RPC batches are not part of protocol version "
                          "2026-07-28");
    }
    if (!header(req, k_session_header).empty()) {
        return http_error(req, http::status::bad_request, mcp::code::invalid_request,
                          "Bad Request: protocol version 2026-07-28 has no sessions; a request "
                          "must not carry Mcp-Session-Id");
    }
    auto& item = parsed.items.front();
    if (!item) {
        Outcome out;
        out.response = make_response(req, http::status::bad_request, "application/json",
                                     mcp::serialize(mcp::make_error(item.error())));
        return out;
    }
    mcp::Message message = std::move(*item);
    if (message.is_response()) {
        return http_error(req, http::status::bad_request, mcp::code::invalid_request,
                          "Invalid Request: a 2026-07-28 client answers the server's requests "
                          "in a retried request (inputResponses), not as a JSON-RPC response");
    }
    // Streamable HTTP (2026-07-28): "The client **MUST** include the request
    // metadata headers on each POST request." "Servers that process the
    // request body **MUST** reject requests where the values specified in the
    // headers do not match the corresponding values in the request body."
    // "When rejecting a request due to header validation failure, servers
    // **MUST** return HTTP status `400 Bad Request` and **MUST** include a
    // JSON-RPC error response" (-32020, HeaderMismatch).
    // (Notifications need not carry Mcp-Method; one that does must agree.)
    const std::string_view method_header = header(req, k_method_header);
    if (method_header.empty() && message.is_request()) {
        return mismatch(req, message.id, "(missing)",
                        "the body names method " + message.method +
                            " but the required Mcp-Method header is absent");
    }
    if (!method_header.empty() && method_header != message.method) {
        return mismatch(req, message.id, std::string(method_header),
                        "the body names method " + message.method +
                            " but the Mcp-Method header names " + std::string(method_header));
    }
    // Mcp-Name: "`params.name` or `params.uri`" for "`tools/call`,
    // `resources/read`, `prompts/get` requests"; "servers **MUST** decode an
    // encoded `Mcp-Name` ... value before comparing it to the corresponding
    // request body value".
    if (const std::string_view field = mcp::method::named_field(message.method); !field.empty()) {
        const std::string& value = field == "name" ? message.name : message.uri;
        const std::string_view raw_name = header(req, k_name_header);
        const auto decoded = decode_header_value(raw_name);
        if (!decoded) {
            return mismatch(req, message.id, std::string(raw_name),
                            "the Mcp-Name header's Base64 value does not decode");
        }
        const std::string& name_header = *decoded;
        if (name_header.empty()) {
            return mismatch(req, message.id, "(missing)",
                            "the body carries params." + std::string(field) + " " + value +
                                " but the required Mcp-Name header is absent");
        }
        if (name_header != value) {
            return mismatch(req, message.id, name_header,
                            "the body carries params." + std::string(field) + " " + value +
                                " but the Mcp-Name header names " + name_header);
        }
    }
    if (message.is_request()) {
        // The Mcp-Param-{Name} headers go with the request: the gateway knows
        // the tool's x-mcp-header marks and checks them against the
        // arguments (Server Behavior for Custom Headers), and passes on those
        // it does not recognize ("Intermediate servers that do not recognize
        // an `Mcp-Param-{Name}` header **MUST** forward it").
        std::vector<std::pair<std::string, std::string>> params;
        for (const auto& field : req) {
            const std::string_view name(field.name_string().data(), field.name_string().size());
            if (name.size() > k_param_header_prefix.size() &&
                beast::iequals(name.substr(0, k_param_header_prefix.size()),
                               k_param_header_prefix)) {
                if (params.size() == k_max_param_headers) {
                    return mismatch(req, message.id, "(too many)",
                                    "more than " + std::to_string(k_max_param_headers) +
                                        " Mcp-Param-* headers");
                }
                params.emplace_back(std::string(name.substr(k_param_header_prefix.size())),
                                    std::string(field.value().data(), field.value().size()));
            }
        }
        message.param_headers = std::move(params);
    }
    if (message.is_notification()) {
        // Notifications go to the caller's kept sessions, if it has any:
        // a cancellation ends a subscriptions/listen of theirs, or reaches
        // the handler; there is nothing to answer.
        const auto* params = message.params();
        const auto* request_id = params != nullptr ? params->if_contains("requestId") : nullptr;
        // (Their ids first: a handler may end its session, and the index with it.)
        std::vector<std::string> ids;
        if (const auto mine = server.stateless.find(stateless_caller(peer));
            mine != server.stateless.end()) {
            for (const auto& [declared, id] : mine->second) {
                ids.push_back(id);
            }
        }
        for (const auto& id : ids) {
            const auto s = server.sessions.find(id);
            if (s == server.sessions.end() || !s->second->stateless_ready_ || s->second->closed_) {
                continue;
            }
            if (message.method == mcp::method::cancelled && request_id != nullptr &&
                s->second->stateless_unlisten(*request_id)) {
                break;
            }
            mcp::Message copy = message;
            strip_meta(copy);
            s->second->handler_->on_message(std::move(copy), k_standalone_stream);
        }
        Outcome out;
        out.response = make_response(req, http::status::accepted, {}, {});
        return out;
    }
    // "fields marked as required **MUST** be included on every request" (the
    // version and the client's capabilities); "A request missing any required
    // field is malformed; the server **MUST** reject it with JSON-RPC error
    // code `-32602` (Invalid params). On HTTP, the response status **MUST** be
    // `400 Bad Request`."
    const json::object* meta = message.meta();
    const auto* version =
        meta != nullptr ? meta->if_contains(mcp::k_meta_protocol_version) : nullptr;
    const auto* caps =
        meta != nullptr ? meta->if_contains(mcp::k_meta_client_capabilities) : nullptr;
    if (version == nullptr || !version->is_string() || caps == nullptr || !caps->is_object()) {
        json::array missing;
        if (version == nullptr || !version->is_string()) {
            missing.emplace_back(mcp::k_meta_protocol_version);
        }
        if (caps == nullptr || !caps->is_object()) {
            missing.emplace_back(mcp::k_meta_client_capabilities);
        }
        return refuse(req, message.id, mcp::code::invalid_params,
                      "Invalid params: a request of protocol version 2026-07-28 must carry _meta." +
                          std::string(mcp::k_meta_protocol_version) + " and _meta." +
                          std::string(mcp::k_meta_client_capabilities),
                      json::object{{"envelope", json::object{{"missing", std::move(missing)}}}});
    }
    // "The header value **MUST** match the
    // `io.modelcontextprotocol/protocolVersion` field carried in the request
    // body's `_meta`. If the values do not match, the server **MUST** reject
    // the request with `400 Bad Request` and a `HeaderMismatch` JSON-RPC error"
    if (version->get_string() != mcp::k_stateless_version) {
        return mismatch(req, message.id, std::string(mcp::k_stateless_version),
                        "the body envelope names protocol version " +
                            std::string(version->get_string()) +
                            " but the MCP-Protocol-Version header names 2026-07-28");
    }
    if (message.method == mcp::method::initialize) {
        return refuse(req, message.id, mcp::code::invalid_request,
                      "Invalid Request: protocol version 2026-07-28 has no initialize; use "
                      "server/discover");
    }
    auto found = kept_session(server, req, peer, *meta);
    if (auto* error = std::get_if<Outcome>(&found)) {
        return std::move(*error);
    }
    auto session = std::get<std::shared_ptr<Session>>(std::move(found));
    if (session->attached_ >= server.options.limits.max_streams_per_session) {
        return http_error(req, http::status::too_many_requests, mcp::code::over_limit,
                          "Too Many Requests: " + std::to_string(session->attached_) +
                              " requests of this caller at once, the limit "
                              "(limits.max_streams_per_session)");
    }
    strip_meta(message);
    const StreamId id = session->next_stream_++;
    Stream stream;
    stream.id = id;
    stream.pending = 1;
    stream.stateless_method = message.method;
    stream.stateless_id = message.id;
    stream.stateless_digest = request_digest(message);
    const std::string digest = stream.stateless_digest;
    session->streams_.emplace(id, std::move(stream));
    Outcome out;
    out.session = session;
    out.stream = id;
    // A retry of a request answered input_required. "servers **MUST** treat
    // `requestState` as an attacker-controlled input. If `requestState`
    // influences authorization, resource access, or business logic, servers
    // **MUST** protect its integrity (e.g. HMAC or AEAD) and **MUST** reject
    // state that fails verification." (Here: AES-256-GCM, bound to the
    // caller and the request, expiring, and good for one retry, which covers
    // what the specification's SHOULD on replay lists: the principal, a short
    // expiry, the originating request.)
    const auto* retried = message.params();
    if (const auto* state = retried != nullptr ? retried->if_contains("requestState") : nullptr) {
        const auto refused = [&](const std::string& why) {
            session->streams_.erase(id);
            return refuse(req, message.id, mcp::code::invalid_params,
                          "Invalid params: requestState " + why);
        };
        if (!state->is_string()) {
            return refused("must be a string");
        }
        const std::string aad = session->stateless_caller_ + "\n" + digest;
        auto plain = server.sealer.open(state->get_string(), as_bytes(aad));
        if (!plain) {
            return refused(
                "does not verify: altered, from another caller, for another request, or too old");
        }
        boost::system::error_code ec;
        const auto parsed_state = json::parse(
            std::string_view(reinterpret_cast<const char*>(plain->data()), plain->size()), ec);
        const auto* o = parsed_state.if_object();
        const auto* token = o != nullptr ? o->if_contains("t") : nullptr;
        const auto* sid = o != nullptr ? o->if_contains("s") : nullptr;
        const auto* expires = o != nullptr ? o->if_contains("e") : nullptr;
        if (ec || token == nullptr || !token->is_string() || sid == nullptr || !sid->is_string() ||
            expires == nullptr || !expires->is_int64()) {
            return refused("is malformed");
        }
        const auto now_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                                std::chrono::system_clock::now().time_since_epoch())
                                .count();
        if (now_ms > expires->get_int64()) {
            return refused("has expired");
        }
        if (sid->get_string() != session->id_) {
            return refused("belongs to another session of this caller (other capabilities?)");
        }
        if (auto why = session->stateless_resume(std::string(token->get_string()), *retried, id,
                                                 message.id)) {
            return refused(*why);
        }
        return out;
    }
    if (session->stateless_ready_) {
        out.deliver = [session, id, m = std::move(message)]() mutable {
            session->stateless_deliver(std::move(m), id);
        };
    } else {
        session->waiting_.emplace_back(std::move(message), id);
    }
    return out;
}

void Session::stateless_initialized(json::object response) {
    if (const auto init = streams_.find(init_stream_); init != streams_.end()) {
        erase_stream(init);
    }
    if (const auto* result = response.if_contains("result");
        result != nullptr && result->is_object()) {
        init_result_ = result->as_object();
        if (const auto* v = init_result_.if_contains("protocolVersion");
            v != nullptr && v->is_string()) {
            version_ = std::string(v->get_string());
        }
        stateless_ready_ = true;
    } else {
        init_failed_ = true;
    }
    // The rest from the event loop: the handler may be what called send().
    asio::post(*io_, [server = server_, id = id_, response = std::move(response)]() mutable {
        auto shard = server.lock();
        if (!shard) {
            return;
        }
        const auto it = shard->sessions.find(id);
        if (it == shard->sessions.end()) {
            return;
        }
        const auto self = it->second;  // alive while this runs
        auto waiting = std::move(self->waiting_);
        self->waiting_.clear();
        if (!self->stateless_ready_) {
            // The caller's requests get the initialize's error (an upstream
            // that cannot start, a limit), and the next request tries again.
            const auto* error = response.if_contains("error");
            for (auto& [message, stream] : waiting) {
                json::object answer{{"jsonrpc", "2.0"}, {"id", message.id}};
                answer["error"] = error != nullptr
                                      ? *error
                                      : json::object{{"code", mcp::code::internal_error},
                                                     {"message", "the session did not start"}};
                self->send(stream, std::move(answer));
            }
            self->close("its initialize failed");
            return;
        }
        self->handler_->on_message(
            *mcp::classify(json::value(mcp::make_notification(mcp::method::initialized, {}))),
            k_standalone_stream);
        for (auto& [message, stream] : waiting) {
            if (self->closed_) {
                return;
            }
            self->stateless_deliver(std::move(message), stream);
        }
    });
}

void Session::stateless_deliver(mcp::Message message, StreamId stream) {
    if (closed_) {
        return;
    }
    if (message.method == mcp::method::subscriptions_listen) {
        stateless_listen(message, stream);
        return;
    }
    if (message.method != mcp::method::server_discover) {
        handler_->on_message(std::move(message), stream);
        return;
    }
    // server/discover, answered from what the kept session's initialize said.
    json::object result{{"supportedVersions", mcp::supported_versions()}};
    const auto* caps = init_result_.if_contains("capabilities");
    result["capabilities"] = caps != nullptr ? *caps : json::object{};
    if (const auto* instructions = init_result_.if_contains("instructions")) {
        result["instructions"] = *instructions;
    }
    if (const auto* info = init_result_.if_contains("serverInfo")) {
        result["_meta"] = json::object{{mcp::k_meta_server_info, *info}};
    }
    send(stream, mcp::make_result(message.id, std::move(result)));
}

namespace {

constexpr std::string_view k_subscription_id = "io.modelcontextprotocol/subscriptionId";
// Listen streams one kept session holds at once; one more ends the oldest.
constexpr std::size_t k_max_listeners = 16;

bool wants(const json::object& filter, std::string_view key) {
    const auto* v = filter.if_contains(key);
    return v != nullptr && v->is_bool() && v->get_bool();
}

bool offers(const json::object& capabilities, std::string_view kind, std::string_view flag) {
    const auto* c = capabilities.if_contains(kind);
    if (c == nullptr || !c->is_object()) {
        return false;
    }
    const auto* f = c->as_object().if_contains(flag);
    return f != nullptr && f->is_bool() && f->get_bool();
}

}  // namespace

void Session::stateless_listen(const mcp::Message& message, StreamId stream) {
    // "The server **MUST NOT** send notification types the client has not
    // explicitly requested." It acknowledges what it will send: the types
    // asked for that the gateway's capabilities offer.
    const auto* params = message.params();
    const auto* filter_value = params != nullptr ? params->if_contains("notifications") : nullptr;
    if (filter_value == nullptr || !filter_value->is_object()) {
        send(stream, mcp::make_error(message.id, mcp::code::invalid_params,
                                     "Invalid params: subscriptions/listen needs "
                                     "params.notifications"));
        return;
    }
    const auto& filter = filter_value->as_object();
    json::object caps;
    if (const auto* c = init_result_.if_contains("capabilities"); c != nullptr && c->is_object()) {
        caps = c->as_object();
    }
    Listener l;
    l.stream = stream;
    l.id = message.id;
    l.tools = wants(filter, "toolsListChanged") && offers(caps, "tools", "listChanged");
    l.prompts = wants(filter, "promptsListChanged") && offers(caps, "prompts", "listChanged");
    l.resources = wants(filter, "resourcesListChanged") && offers(caps, "resources", "listChanged");
    json::object accepted;
    if (l.tools) {
        accepted["toolsListChanged"] = true;
    }
    if (l.prompts) {
        accepted["promptsListChanged"] = true;
    }
    if (l.resources) {
        accepted["resourcesListChanged"] = true;
    }
    if (const auto* uris = filter.if_contains("resourceSubscriptions");
        uris != nullptr && uris->is_array() && offers(caps, "resources", "subscribe")) {
        json::array kept;
        for (const auto& u : uris->as_array()) {
            if (!u.is_string() || l.uris.size() >= 256) {
                continue;
            }
            const std::string uri(u.get_string());
            const bool held = std::any_of(listeners_.begin(), listeners_.end(),
                                          [&](const Listener& x) { return x.uris.contains(uri); });
            if (!held) {
                // The upstream's subscription, once per resource; its answer
                // goes to a stream that does not exist (dropped).
                const std::string id = "pqmcp-listen-" + std::to_string(++internal_ids_);
                handler_->on_message(
                    *mcp::classify(json::value(mcp::make_request(json::value(json::string(id)),
                                                                 mcp::method::resources_subscribe,
                                                                 json::object{{"uri", uri}}))),
                    next_stream_++);
            }
            l.uris.insert(uri);
            kept.push_back(u);
        }
        accepted["resourceSubscriptions"] = std::move(kept);
    }
    if (listeners_.size() >= k_max_listeners) {
        (void)stateless_unlisten(json::value(listeners_.front().id));
    }
    listeners_.push_back(std::move(l));
    const auto it = streams_.find(stream);
    if (it == streams_.end()) {
        return;
    }
    // "This notification MUST be the first message the server sends carrying
    // the subscription's ID in `io.modelcontextprotocol/subscriptionId`."
    // Then the stream stays open (its request is answered only when it ends).
    push(it->second,
         mcp::serialize(mcp::make_notification(
             mcp::method::subscriptions_acknowledged,
             json::object{{"notifications", std::move(accepted)},
                          {"_meta", json::object{{k_subscription_id, message.id}}}})),
         false);
}

void Session::stateless_fan_out(json::object message) {
    const auto* method_value = message.if_contains("method");
    if (method_value == nullptr || !method_value->is_string() || message.contains("id")) {
        // A request of the server's outside any request (roots/list, ping):
        // a 2026-07-28 client has no channel for it.
        spdlog::debug("session {}: a server request with no stream to go to; dropped", short_id());
        return;
    }
    const std::string_view method = method_value->get_string();
    std::string uri;
    if (const auto* p = message.if_contains("params"); p != nullptr && p->is_object()) {
        if (const auto* u = p->as_object().if_contains("uri"); u != nullptr && u->is_string()) {
            uri = std::string(u->get_string());
        }
    }
    for (auto l = listeners_.begin(); l != listeners_.end();) {
        const auto stream = streams_.find(l->stream);
        if (stream == streams_.end()) {
            l = listeners_.erase(l);
            continue;
        }
        const bool match = (method == mcp::method::tools_list_changed && l->tools) ||
                           (method == mcp::method::prompts_list_changed && l->prompts) ||
                           (method == mcp::method::resources_list_changed && l->resources) ||
                           (method == mcp::method::resources_updated && l->uris.contains(uri));
        if (match) {
            // "the server **MUST** include `io.modelcontextprotocol/subscriptionId`
            // in `_meta` so the client can correlate the notification"
            json::object copy = message;
            mcp::writable_meta(copy)[k_subscription_id] = l->id;
            push(stream->second, mcp::serialize(copy), false);
        }
        ++l;
    }
}

bool Session::stateless_unlisten(const json::value& id) {
    const auto l = std::find_if(listeners_.begin(), listeners_.end(),
                                [&](const Listener& x) { return x.id == id; });
    if (l == listeners_.end()) {
        return false;
    }
    const StreamId stream = l->stream;
    listeners_.erase(l);
    // Its request will get no answer: the stream ends.
    forgo_response(stream);
    return true;
}

bool Session::stateless_route(StreamId& stream_id, json::object& message) {
    const bool is_response = !message.contains("method");
    const bool is_request = !is_response && message.contains("id");
    // A stream answered input_required whose retry came: what is left of its
    // request goes to the retry's stream, the final answer with its id.
    for (int hops = 0; hops < 64; ++hops) {
        const auto r = redirects_.find(stream_id);
        if (r == redirects_.end()) {
            break;
        }
        stream_id = r->second.to;
        if (is_response) {
            message["id"] = r->second.id;
            redirects_.erase(r);
        }
    }
    if (const auto h = held_.find(stream_id); h != held_.end()) {
        if (h->second.size() < k_max_held) {
            h->second.push_back(std::move(message));
        } else {
            spdlog::warn("session {}: more than {} messages wait for a client's retry; dropped",
                         short_id(), k_max_held);
        }
        return false;
    }
    if (is_request) {
        const auto it = streams_.find(stream_id);
        if (it != streams_.end() && !it->second.stateless_method.empty()) {
            stateless_input_required(it->second, std::move(message));
            return false;
        }
    }
    return true;
}

namespace {

// Hands `message` to the handler of session `id` of `server` from the event
// loop (not from inside a call of that handler).
void post_to_handler(const std::weak_ptr<HttpServer::Impl>& server, asio::io_context& io,
                     const std::string& id, mcp::Message message) {
    asio::post(io, [server, id, m = std::move(message)]() mutable {
        auto shard = server.lock();
        if (!shard) {
            return;
        }
        const auto s = shard->sessions.find(id);
        if (s != shard->sessions.end() && !s->second->closed_) {
            s->second->handler_->on_message(std::move(m), k_standalone_stream);
        }
    });
}

}  // namespace

void Session::stateless_input_required(Stream& stream, json::object request) {
    stateless_expire();
    const json::value server_id = request.at("id");
    auto shard = server_.lock();
    auto token_bytes = crypto::random_bytes(16);
    std::optional<std::string> sealed;
    const std::string token = token_bytes ? to_hex(*token_bytes) : std::string{};
    if (shard && token_bytes && pending_.size() < k_max_pending_inputs) {
        const auto expires_ms =
            std::chrono::duration_cast<std::chrono::milliseconds>(
                (std::chrono::system_clock::now() + k_input_window).time_since_epoch())
                .count();
        const std::string plain =
            json::serialize(json::object{{"t", token}, {"s", id_}, {"e", expires_ms}});
        const std::string aad = stateless_caller_ + "\n" + stream.stateless_digest;
        if (auto s = shard->sealer.seal(as_bytes(plain), as_bytes(aad))) {
            sealed = std::move(*s);
        }
    }
    if (!sealed) {
        post_to_handler(server_, *io_, id_,
                        *mcp::classify(json::value(mcp::make_error(
                            server_id, mcp::code::internal_error,
                            "the client cannot be asked now (too many questions waiting)"))));
        return;
    }
    const std::string key = "pqmcp-" + std::to_string(++internal_ids_);
    json::object input{{"method", request.at("method")}};
    if (const auto* p = request.if_contains("params")) {
        input["params"] = *p;
    }
    pending_[token] = Pending{stream.id, {{key, server_id}}, Clock::now() + k_input_window};
    held_[stream.id];
    json::object result{{"resultType", "input_required"},
                        {"inputRequests", json::object{{key, std::move(input)}}},
                        {"requestState", std::move(*sealed)}};
    push(stream, mcp::serialize(mcp::make_result(stream.stateless_id, std::move(result))), true);
}

std::optional<std::string> Session::stateless_resume(const std::string& token_id,
                                                     const json::object& params, StreamId stream,
                                                     const json::value& id) {
    stateless_expire();
    const auto it = pending_.find(token_id);
    if (it == pending_.end()) {
        return "was used already or has expired (it is good for one retry)";
    }
    Pending p = std::move(it->second);
    pending_.erase(it);  // single use
    redirects_[p.stream] = Redirect{stream, id};
    const json::object* answers = nullptr;
    if (const auto* r = params.if_contains("inputResponses"); r != nullptr && r->is_object()) {
        answers = &r->as_object();
    }
    for (const auto& [key, server_id] : p.inputs) {
        const json::value* answer = answers != nullptr ? answers->if_contains(key) : nullptr;
        auto message = mcp::classify(json::value(
            answer != nullptr && answer->is_object()
                ? mcp::make_result(server_id, *answer)
                : mcp::make_error(server_id, mcp::code::invalid_params,
                                  "the client's retry has no answer for this request")));
        post_to_handler(server_, *io_, id_, std::move(*message));
    }
    // What came for the first request meanwhile, now for the retry.
    auto held = std::move(held_[p.stream]);
    held_.erase(p.stream);
    if (const auto first = streams_.find(p.stream);
        first != streams_.end() && first->second.writer == nullptr && first->second.finished()) {
        erase_stream(first);
    }
    for (auto& m : held) {
        send(p.stream, std::move(m));
    }
    return std::nullopt;
}

void Session::stateless_expire() {
    const auto now = Clock::now();
    for (auto it = pending_.begin(); it != pending_.end();) {
        if (it->second.expires > now) {
            ++it;
            continue;
        }
        // Nobody came back: the questions are answered with an error, so
        // that what asked them does not wait for ever.
        for (const auto& [key, server_id] : it->second.inputs) {
            post_to_handler(
                server_, *io_, id_,
                *mcp::classify(json::value(mcp::make_error(server_id, mcp::code::internal_error,
                                                           "the client did not answer in time"))));
        }
        held_.erase(it->second.stream);
        it = pending_.erase(it);
    }
}

void Session::shape_stateless_result(json::object& message, std::string_view method) {
    auto* result = message.if_contains("result");
    if (result == nullptr || !result->is_object()) {
        return;
    }
    auto& r = result->as_object();
    // "The `result` **MUST** include a `resultType` field to indicate the type
    // of the result."
    if (!r.contains("resultType")) {
        r["resultType"] = "complete";
    }
    // Cache hints: what the gateway lists depends on who asks (policy,
    // integrity, the caller's own upstream processes), so a list is never
    // shared across callers, and it can change with a policy reload at any
    // moment: "private", fresh for no time. An upstream's own hints are
    // overridden for the same reason.
    if (method == mcp::method::tools_list || method == mcp::method::prompts_list ||
        method == mcp::method::resources_list || method == mcp::method::resources_templates_list ||
        method == mcp::method::resources_read || method == mcp::method::server_discover) {
        r["ttlMs"] = 0;
        r["cacheScope"] = "private";
    }
}

unsigned Session::stateless_status(const json::object& message) {
    const auto* error = message.if_contains("error");
    const auto* o = error != nullptr ? error->if_object() : nullptr;
    const auto* code = o != nullptr ? o->if_contains("code") : nullptr;
    if (code == nullptr || !code->is_int64()) {
        return 200;
    }
    switch (code->get_int64()) {
        // "When rejecting a request due to header validation failure, servers
        // **MUST** return HTTP status `400 Bad Request`"; an unsupported version:
        // "it **MUST** respond with `400 Bad Request`".
        case mcp::code::header_mismatch:
        case mcp::code::unsupported_version:
            return 400;
        // "If the server does not implement the requested RPC method, it **MUST**
        // respond with `404 Not Found` and a JSON-RPC error with code `-32601`"
        case mcp::code::method_not_found:
            return 404;
        default:
            return 200;
    }
}

}  // namespace pqmcp::transport
