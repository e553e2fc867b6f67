#include "session.hpp"

#include <algorithm>
#include <set>

#include <spdlog/spdlog.h>
#include <boost/asio/post.hpp>

#include "pqmcp/mcp/protocol.hpp"
#include "pqmcp/transport/http_util.hpp"

namespace pqmcp::gateway {

namespace asio = boost::asio;
namespace json = boost::json;
using transport::k_standalone_stream;
using transport::StreamId;

GatewaySession::GatewaySession(SharedState& shared, Shard& shard,
                               transport::ServerSession& downstream)
    : shared_(shared),
      shard_(shard),
      downstream_(downstream),
      session_id_(downstream.id()),
      log_id_(session_id_.substr(0, 8)) {
    shard_.sessions.insert(this);
    const auto& handshake = downstream.peer().handshake;
    if (handshake.peer_id) {
        caller_.peer_id = handshake.peer_id->str();
        caller_.name = handshake.peer_name.value_or("");
        caller_.verified = handshake.peer_verified;
    }
    if (const auto& token = downstream.peer().token) {
        caller_.token_subject = token->subject;
        caller_.token_client = token->client_id;
        caller_.token_scopes = token->scopes;
        caller_.token_claims = token->claims;
    }
    chains_ = make_chains(SessionParts{shared_, caller_, session_id_, log_id_, *this, *this, *this,
                                       *this, *this, *this, routes_, shard_.counts.get(),
                                       shard_.shared_baselines ? shard_.counts.get() : nullptr});
}

GatewaySession::~GatewaySession() {
    shard_.sessions.erase(this);
    *alive_ = false;
    for (auto& link : links_) {
        if (link.client) {
            link.client->unsubscribe(this);
            if (!link.config->shared) {
                link.client->stop();
            }
        }
    }
}

void GatewaySession::on_closed(std::string_view reason) {
    spdlog::info("session {} ended: {}", log_id_, reason);
    // Requests still in flight are recorded as never answered.
    while (!traces_.empty()) {
        const std::string key = traces_.begin()->first;
        finish_trace(key, json::object{{"error", json::object{{"code", 0}}}});
    }
    if (shared_.recorder != nullptr) {
        shared_.recorder->session_closed(session_id_);
    }
    *alive_ = false;
    for (auto& [id, own] : own_requests_) {
        own.timer->cancel();
    }
    own_requests_.clear();
    for (auto& link : links_) {
        if (link.client) {
            link.client->unsubscribe(this);
            if (!link.config->shared) {
                link.client->stop();
            }
            link.client.reset();
        }
    }
}

void GatewaySession::respond(StreamId stream, json::object message) {
    if (const auto* id = message.if_contains("id"); id != nullptr) {
        const std::string key = mcp::id_text(*id);
        if (open_ids_.erase(key) == 0) {
            // Cancelled by the client meanwhile, or never accepted: "the
            // receiver of the cancellation notification SHOULD NOT send a
            // response for the cancelled request" (MCP, cancellation).
            return;
        }
        if (!traces_.empty() && shared_.recorder != nullptr && shared_.recorder->holds_answers() &&
            traces_.contains(key)) {
            // The answer leaves once its record is committed: the writer's
            // thread posts it back here.
            auto held = std::make_shared<json::object>(std::move(message));
            auto& io = downstream_.context();
            finish_trace(key, *held, [this, alive = alive_, &io, stream, held] {
                asio::post(io, [this, alive, stream, held] {
                    if (*alive) {
                        downstream_.send(stream, std::move(*held));
                    }
                });
            });
            return;
        }
        if (!traces_.empty()) {
            finish_trace(key, message);
        }
    }
    downstream_.send(stream, std::move(message));
}

void GatewaySession::refuse_duplicate(const mcp::Message& m, StreamId stream) {
    const std::string key = mcp::id_text(m.id);
    spdlog::info("session {}: a second request with id {} while the first is in flight; refused",
                 log_id_, key);
    // Straight to the client: the first request's trace and response stay as they are.
    downstream_.send(stream, mcp::make_error(m.id, mcp::code::invalid_request,
                                             "Invalid Request: a request with id " + key +
                                                 " is already in flight on this session"));
    if (shared_.recorder != nullptr) {
        Trace t;
        t.start = std::chrono::steady_clock::now();
        t.method = m.method;
        t.target = m.name.empty() ? m.uri : m.name;
        t.decision.disposition = Disposition::invalid;
        t.call = shared_.next_call();
        auto record = trace_record(key, t);
        record["outcome"] = "error";
        record["error_code"] = mcp::code::invalid_request;
        record["duplicate_id"] = true;
        shared_.recorder->request(
            std::move(record),
            RequestOutcome{t.method, t.upstream, to_string(t.decision.disposition), log_id_, true});
    }
}

void GatewaySession::note_started(std::chrono::steady_clock::time_point older_than) {
    if (shared_.recorder == nullptr) {
        return;
    }
    for (auto& [key, t] : traces_) {
        if (!t.started_written && t.start <= older_than) {
            t.started_written = true;
            auto record = trace_record(key, t);
            record["phase"] = "started";
            shared_.recorder->request_started(std::move(record));
        }
    }
}

void GatewaySession::reply(StreamId stream, const json::value& id, json::value result) {
    respond(stream, mcp::make_result(id, std::move(result)));
}

void GatewaySession::reply_error(StreamId stream, const json::value& id, int code,
                                 const std::string& message) {
    respond(stream, mcp::make_error(id, code, message));
}

void GatewaySession::begin_trace(const mcp::Message& m) {
    if (shared_.recorder == nullptr) {
        return;
    }
    Trace t;
    t.start = std::chrono::steady_clock::now();
    t.method = m.method;
    t.target = m.name.empty() ? m.uri : m.name;
    t.call = shared_.next_call();
    if (const auto* params = m.params(); params != nullptr) {
        shared_.recorder->describe_arguments(t.arguments, params->if_contains("arguments"));
    }
    traces_.insert_or_assign(mcp::id_text(m.id), std::move(t));
}

void GatewaySession::note(const Exchange& x) {
    const auto it = traces_.find(mcp::id_text(x.message.id));
    if (it == traces_.end()) {
        return;
    }
    Trace& t = it->second;
    t.decision = x.decision;
    if (x.link && *x.link < links_.size()) {
        t.upstream = links_[*x.link].config->name;
    }
    if (!x.message.uri.empty() && x.message.name.empty()) {
        t.target = x.message.uri;  // as routed (normalized)
    }
    if (t.behaviour.empty()) {
        for (const auto& f : x.assessment.findings) {
            // Kinds only: a finding's detail can describe the arguments.
            t.behaviour.emplace_back(json::object{{"kind", f.kind}, {"score", f.score}});
        }
        t.behaviour_score = x.assessment.score;
    }
}

void GatewaySession::refuse(const Exchange& x, Step step) {
    respond(x.stream, step.data.empty() ? mcp::make_error(x.message.id, step.code, step.message)
                                        : mcp::make_error(x.message.id, step.code, step.message,
                                                          std::move(step.data)));
}

json::object GatewaySession::trace_record(const std::string& key, const Trace& t) const {
    json::object record{
        {"kind", "request"},
        {"session", session_id_.substr(0, 16)},
        {"request_id", key},
        {"call", t.call},
        {"identity", caller_.peer_id.empty() ? json::value(nullptr) : json::value(caller_.peer_id)},
        {"upstream", t.upstream},
        {"method", t.method},
        {"target", t.target},
        {"decision", to_string(t.decision.disposition)},
        {"rule", t.decision.rule.empty() ? json::value(nullptr) : json::value(t.decision.rule)},
        {"mode", policy::to_string(t.decision.mode)}};
    if (!caller_.name.empty()) {
        record["identity_name"] = caller_.name;
    }
    if (!caller_.token_subject.empty()) {
        // Both identities when the caller has both: the TLS peer id above
        // and the access token's subject and client here.
        record["token_subject"] = caller_.token_subject;
        record["token_client"] = caller_.token_client;
    }
    for (const auto& [k, v] : t.arguments) {
        record[k] = v;
    }
    if (!t.behaviour.empty()) {
        // What the behaviour baseline made of the call.
        record["behaviour"] = t.behaviour;
        record["behaviour_score"] = t.behaviour_score;
    }
    return record;
}

void GatewaySession::finish_trace(const std::string& key, const json::object& message,
                                  std::function<void()> then) {
    const auto it = traces_.find(key);
    if (it == traces_.end()) {
        return;
    }
    Trace t = std::move(it->second);
    traces_.erase(it);
    const auto elapsed = std::chrono::steady_clock::now() - t.start;
    json::object record = trace_record(key, t);
    record["latency_us"] = std::chrono::duration_cast<std::chrono::microseconds>(elapsed).count();
    if (t.started_written) {
        record["phase"] = "finished";
    }
    if (const auto* error = message.if_contains("error"); error != nullptr && error->is_object()) {
        const auto* code = error->as_object().if_contains("code");
        const auto how = code != nullptr && code->is_int64() ? code->as_int64() : -1;
        // Codes 0 and 1 are ours: never answered (the session ended), cancelled.
        record["outcome"] = how == 0 ? "unanswered" : how == 1 ? "cancelled" : "error";
        if (how != 0 && how != 1 && code != nullptr) {
            record["error_code"] = *code;
        }
    } else {
        record["outcome"] = "ok";
        // An OpenAPI upstream's HTTP exchange: its status and TLS (group, protocol).
        const auto* result = message.if_contains("result");
        const auto* meta = result != nullptr && result->is_object()
                               ? result->as_object().if_contains("_meta")
                               : nullptr;
        if (meta != nullptr && meta->is_object()) {
            if (const auto* http = meta->as_object().if_contains("pqmcp/upstream_http")) {
                record["upstream_http"] = *http;
            }
        }
    }
    const Disposition d = t.decision.disposition;
    shared_.recorder->request(
        std::move(record), RequestOutcome{t.method, t.upstream, to_string(d), log_id_, refused(d)},
        std::move(then));
}

void GatewaySession::on_message(mcp::Message message, StreamId stream) {
    switch (message.kind) {
        case mcp::Kind::request:
            handle_request(std::move(message), stream);
            return;
        case mcp::Kind::notification:
            handle_notification(std::move(message));
            return;
        case mcp::Kind::response:
        case mcp::Kind::error:
            handle_response(std::move(message));
            return;
    }
}

bool GatewaySession::usable(std::size_t link) const {
    return link < links_.size() && links_[link].client && links_[link].failure.empty();
}

const std::string& GatewaySession::name(std::size_t link) const {
    return links_.at(link).config->name;
}

const std::string& GatewaySession::prefix(std::size_t link) const {
    return links_.at(link).prefix;
}

bool GatewaySession::offers(std::size_t link, std::string_view capability) const {
    return usable(link) && links_[link].client->has_capability(capability);
}

std::optional<std::pair<std::size_t, std::string>> GatewaySession::route_name(
    std::string_view name) const {
    if (!shared_.services.config.namespacing) {
        if (links_.empty()) {
            return std::nullopt;
        }
        return std::pair{std::size_t{0}, std::string(name)};
    }
    std::optional<std::pair<std::size_t, std::string>> best;
    std::size_t best_len = 0;
    for (std::size_t i = 0; i < links_.size(); ++i) {
        const std::string& p = links_[i].prefix;
        if (name.size() > p.size() && name.substr(0, p.size()) == p && p.size() > best_len) {
            best = std::pair{i, std::string(name.substr(p.size()))};
            best_len = p.size();
        }
    }
    return best;
}

std::optional<std::size_t> GatewaySession::route_uri(std::string_view uri) const {
    if (const auto it = routes_.owner.find(std::string(uri)); it != routes_.owner.end()) {
        return it->second;
    }
    std::optional<std::size_t> best;
    std::size_t best_len = 0;
    for (const auto& [start, link] : routes_.by_template) {
        if (!start.empty() && uri.substr(0, start.size()) == start && start.size() > best_len) {
            best = link;
            best_len = start.size();
        }
    }
    if (best) {
        return best;
    }
    // A single upstream with resources owns every URI.
    std::optional<std::size_t> only;
    for (std::size_t i = 0; i < links_.size(); ++i) {
        if (usable(i) && links_[i].client->has_capability("resources")) {
            if (only) {
                return std::nullopt;
            }
            only = i;
        }
    }
    return only;
}

std::optional<std::size_t> GatewaySession::link_of(const UpstreamClient& client) const {
    for (std::size_t i = 0; i < links_.size(); ++i) {
        if (links_[i].client.get() == &client) {
            return i;
        }
    }
    return std::nullopt;
}

void GatewaySession::handle_request(mcp::Message m, StreamId stream) {
    const std::string method = m.method;
    if (method == mcp::method::ping) {
        downstream_.send(stream, mcp::make_result(m.id, json::object{}));
        return;
    }
    // "The request ID MUST NOT have been previously used by the requestor
    // within the same session" (MCP, base protocol): a second request with
    // the id of one in flight is refused, and the first goes on untouched.
    const std::string key = mcp::id_text(m.id);
    if (open_ids_.contains(key)) {
        refuse_duplicate(m, stream);
        return;
    }
    open_ids_.emplace(key, stream);
    begin_trace(m);
    // Its cancellation came first (on another connection, it overtook the
    // request): cancelled on arrival, recorded, and nothing goes upstream.
    if (const auto early = std::find(early_cancels_.begin(), early_cancels_.end(), key);
        early != early_cancels_.end()) {
        early_cancels_.erase(early);
        downstream_.forgo_response(stream);
        open_ids_.erase(key);
        finish_trace(key, json::object{{"error", json::object{{"code", 1}}}});
        return;
    }
    if (method == mcp::method::initialize) {
        initialize(std::move(m), stream);
        return;
    }
    if (open_ids_.size() > shared_.services.config.limits.max_pending_requests) {
        reply_error(stream, m.id, mcp::code::over_limit,
                    "too many requests in flight on this session (limits.max_pending_requests)");
        return;
    }
    auto x = std::make_shared<Exchange>();
    x->message = std::move(m);
    x->stream = stream;
    x->policy = shared_.policy();
    chains_->requests->start(x);
}

void GatewaySession::dispatch(const std::shared_ptr<Exchange>& x) {
    mcp::Message& m = x->message;
    const std::string& method = m.method;
    for (const ListKind kind :
         {ListKind::tools, ListKind::prompts, ListKind::resources, ListKind::templates}) {
        if (method == spec(kind).method) {
            list(m, x->stream, kind);
            return;
        }
    }
    if (method == mcp::method::logging_set_level) {
        fan_out_set_level(m, x->stream);
        return;
    }
    if (!x->link) {
        reply_error(x->stream, m.id, mcp::code::internal_error, "the request has no upstream");
        return;
    }
    if (method == mcp::method::tools_call || method == mcp::method::prompts_get) {
        m.params()->at("name") = x->own_name;
    }
    forward(*x->link, std::move(m), x->stream, std::move(x->on_success));
}

bool GatewaySession::can_ask() const {
    const auto* caps = client_params_.if_contains("capabilities");
    return caps != nullptr && caps->is_object() && caps->as_object().contains("elicitation");
}

void GatewaySession::ask(StreamId stream, json::object params,
                         std::function<void(tl::expected<mcp::Message, std::string>)> done) {
    const std::int64_t id = next_relay_id_++;
    OwnRequest own;
    own.timer = std::make_unique<boost::asio::steady_timer>(shard_.services.io);
    own.done = std::move(done);
    own.timer->expires_after(shared_.services.config.timeouts.upstream_request);
    own.timer->async_wait([this, alive = alive_, id](const boost::system::error_code& ec) {
        if (ec || !*alive) {
            return;
        }
        auto it = own_requests_.find(id);
        if (it != own_requests_.end()) {
            auto finish = std::move(it->second.done);
            own_requests_.erase(it);
            finish(tl::unexpected(std::string("no answer in time")));
        }
    });
    own_requests_.emplace(id, std::move(own));
    if (!downstream_.send(
            stream, mcp::make_request(id, mcp::method::elicitation_create, std::move(params)))) {
        auto it = own_requests_.find(id);
        auto finish = std::move(it->second.done);
        it->second.timer->cancel();
        own_requests_.erase(it);
        finish(tl::unexpected(std::string("the client cannot be reached")));
    }
}

void GatewaySession::forward(std::size_t link, mcp::Message m, StreamId stream,
                             std::function<void(const mcp::Message&)> on_success) {
    if (!usable(link)) {
        reply_error(
            stream, m.id, mcp::code::upstream_unavailable,
            "upstream " + links_[link].config->name + " is unavailable: " + links_[link].failure);
        return;
    }
    const std::string key = mcp::id_text(m.id);
    if (!open_ids_.contains(key) || in_flight_.contains(key)) {
        return;  // cancelled while it was being decided
    }
    spdlog::debug("session {}: {} {} -> {}", log_id_, m.method, m.name.empty() ? m.uri : m.name,
                  links_[link].config->name);
    json::value id = m.id;
    auto on_reply = [this, alive = alive_, key, id, stream, link, method = m.method,
                     sent = std::chrono::steady_clock::now(), on_success = std::move(on_success)](
                        tl::expected<mcp::Message, UpstreamClient::Failure> outcome) {
        if (!*alive) {
            return;
        }
        in_flight_.erase(key);
        if (shared_.recorder != nullptr) {
            shared_.recorder->upstream_latency(links_[link].config->name, method,
                                               std::chrono::steady_clock::now() - sent);
        }
        if (!outcome) {
            reply_error(stream, id, outcome.error().code, outcome.error().message);
            return;
        }
        if (on_success && outcome->kind == mcp::Kind::response) {
            on_success(*outcome);
        }
        outcome->body["id"] = id;
        respond(stream, std::move(outcome->body));
    };
    auto on_progress = [this, alive = alive_, stream](mcp::Message progress) {
        if (*alive) {
            downstream_.send(stream, std::move(progress.body));
        }
    };
    in_flight_[key] = InFlight{link, 0, stream, ++order_};
    const std::uint64_t handle = links_[link].client->request(
        std::move(m.body), this, std::move(on_reply), std::move(on_progress),
        m.param_headers ? std::move(*m.param_headers) : ParamHeaderValues{});
    if (const auto it = in_flight_.find(key); it != in_flight_.end()) {
        it->second.handle = handle;
    }
}

void GatewaySession::handle_notification(mcp::Message m) {
    const std::string& method = m.method;
    if (method == mcp::method::initialized) {
        return;  // every upstream got its own right after its initialize
    }
    if (method == mcp::method::cancelled) {
        const json::object* params = m.params();
        const json::value* request_id =
            params != nullptr ? params->if_contains("requestId") : nullptr;
        if (request_id == nullptr) {
            return;
        }
        const std::string key = mcp::id_text(*request_id);
        if (!open_ids_.contains(key)) {
            // Finished already, or not here yet: a few are remembered, so
            // that a request its cancellation overtook is not run.
            if (early_cancels_.size() >= k_max_early_cancels) {
                early_cancels_.pop_front();
            }
            early_cancels_.push_back(key);
            return;
        }
        // Recorded now, with its outcome; nothing more will be said about it,
        // and its stream does not wait for it.
        downstream_.forgo_response(open_ids_.at(key));
        open_ids_.erase(key);
        finish_trace(key, json::object{{"error", json::object{{"code", 1}}}});
        const auto it = in_flight_.find(key);
        if (it == in_flight_.end()) {
            return;  // still being decided (a listing, a person): it will not go on
        }
        const InFlight f = it->second;
        in_flight_.erase(it);
        if (usable(f.link)) {
            const auto reason = member_or(params, "reason", "");
            links_[f.link].client->cancel(f.handle, reason.is_string()
                                                        ? std::string_view(reason.get_string())
                                                        : std::string_view{});
        }
        return;
    }
    if (method == mcp::method::progress) {
        spdlog::debug("session {}: progress from the client is not relayed", log_id_);
        return;
    }
    // roots/list_changed and anything else: every upstream hears it.
    for (std::size_t i = 0; i < links_.size(); ++i) {
        if (usable(i)) {
            links_[i].client->notify(m.body);
        }
    }
}

void GatewaySession::handle_response(mcp::Message m) {
    if (!m.id.is_int64()) {
        spdlog::debug("session {}: a response to a request we never made", log_id_);
        return;
    }
    if (const auto own = own_requests_.find(m.id.get_int64()); own != own_requests_.end()) {
        auto done = std::move(own->second.done);
        own->second.timer->cancel();
        own_requests_.erase(own);
        done(std::move(m));
        return;
    }
    const auto it = relayed_.find(m.id.get_int64());
    if (it == relayed_.end()) {
        spdlog::debug("session {}: a response to an unknown request {}", log_id_,
                      mcp::id_text(m.id));
        return;
    }
    const Relayed r = std::move(it->second);
    relayed_.erase(it);
    if (usable(r.link)) {
        m.body.erase("id");
        links_[r.link].client->answer(r.upstream_id, std::move(m.body));
    }
}

}  // namespace pqmcp::gateway
