#include "session.hpp"

#include <algorithm>
#include <set>

#include <spdlog/spdlog.h>

#include "pqmcp/mcp/protocol.hpp"
#include "pqmcp/transport/http_util.hpp"

namespace pqmcp::gateway {

namespace json = boost::json;
using transport::k_standalone_stream;
using transport::StreamId;

namespace {

// Pages of one list fetched from one upstream before the rest is ignored.
constexpr int k_max_pages = 100;

json::value member_or(const json::object* o, std::string_view key, json::value fallback) {
    if (o == nullptr) {
        return fallback;
    }
    const auto* v = o->if_contains(key);
    return v != nullptr ? *v : fallback;
}

std::string error_text(const json::object& body) {
    const auto* e = body.if_contains("error");
    if (e == nullptr || !e->is_object()) {
        return "error";
    }
    const auto* m = e->as_object().if_contains("message");
    return m != nullptr && m->is_string() ? std::string(m->get_string()) : "error";
}

// The key a verdict is kept under: "tool:PREFIXname", and for a resource
// "resource:URI" with the URI as reads are routed (normalized).
std::string verdict_key(std::string_view kind, const std::string& prefix, const json::object& o) {
    if (kind == "resource") {
        const auto* u = o.if_contains("uri");
        if (u == nullptr || !u->is_string()) {
            return "resource:";
        }
        auto normal = transport::normalize_resource_uri(u->get_string());
        return "resource:" + (normal ? *normal : std::string(u->get_string()));
    }
    return fmt::format("{}:{}{}", kind, prefix, item_name(o));
}

}  // namespace

GatewaySession::GatewaySession(SharedState& shared, transport::ServerSession& downstream)
    : shared_(shared),
      downstream_(downstream),
      session_id_(downstream.id()),
      log_id_(session_id_.substr(0, 8)) {
    shared_.sessions.insert(this);
    const auto& handshake = downstream.peer().handshake;
    if (handshake.peer_id) {
        caller_.peer_id = handshake.peer_id->str();
        caller_.name = handshake.peer_name.value_or("");
        caller_.verified = handshake.peer_verified;
    }
}

GatewaySession::~GatewaySession() {
    shared_.sessions.erase(this);
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
        t.decision = "invalid";
        t.call = ++shared_.calls;
        auto record = trace_record(key, t);
        record["outcome"] = "error";
        record["error_code"] = mcp::code::invalid_request;
        record["duplicate_id"] = true;
        shared_.recorder->request(std::move(record),
                                  RequestOutcome{t.method, t.upstream, t.decision, log_id_, true});
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
    t.call = ++shared_.calls;
    if (const auto* params = m.params(); params != nullptr) {
        shared_.recorder->describe_arguments(t.arguments, params->if_contains("arguments"));
    }
    traces_.insert_or_assign(mcp::id_text(m.id), std::move(t));
}

void GatewaySession::mark(const json::value& id, std::string_view decision, std::string_view rule,
                          std::string_view mode) {
    const auto it = traces_.find(mcp::id_text(id));
    if (it == traces_.end()) {
        return;
    }
    it->second.decision = decision;
    if (!rule.empty()) {
        it->second.rule = rule;
    }
    if (!mode.empty()) {
        it->second.mode = mode;
    }
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
        {"decision", t.decision},
        {"rule", t.rule.empty() ? json::value(nullptr) : json::value(t.rule)},
        {"mode", t.mode}};
    if (!caller_.name.empty()) {
        record["identity_name"] = caller_.name;
    }
    for (const auto& [k, v] : t.arguments) {
        record[k] = v;
    }
    if (!t.behaviour.empty()) {
        // What the behaviour baseline made of the call (kinds only: a finding's
        // detail can describe the arguments).
        record["behaviour"] = t.behaviour;
        record["behaviour_score"] = t.behaviour_score;
    }
    return record;
}

void GatewaySession::finish_trace(const std::string& key, const json::object& message) {
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
    }
    const bool refused = t.decision != "allow" && t.decision != "ask-approved";
    shared_.recorder->request(std::move(record),
                              RequestOutcome{t.method, t.upstream, t.decision, log_id_, refused});
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
    if (const auto it = resource_owner_.find(std::string(uri)); it != resource_owner_.end()) {
        return it->second;
    }
    std::optional<std::size_t> best;
    std::size_t best_len = 0;
    for (const auto& [prefix, link] : template_owner_) {
        if (!prefix.empty() && uri.substr(0, prefix.size()) == prefix && prefix.size() > best_len) {
            best = link;
            best_len = prefix.size();
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
    // Listing: the policy may refuse it by a rule; the filtered results follow.
    const auto list_of = [this, stream](std::string_view list_key, std::string_view capability,
                                        Names names) {
        return [this, stream, k = std::string(list_key), cap = std::string(capability),
                names](const mcp::Message& msg) { list(msg, stream, k, cap, names); };
    };
    if (method == mcp::method::tools_list) {
        admit(std::move(m), stream, std::nullopt, list_of("tools", "tools", Names::prefixed));
        return;
    }
    if (method == mcp::method::prompts_list) {
        admit(std::move(m), stream, std::nullopt, list_of("prompts", "prompts", Names::prefixed));
        return;
    }
    if (method == mcp::method::resources_list) {
        admit(std::move(m), stream, std::nullopt,
              list_of("resources", "resources", Names::resources));
        return;
    }
    if (method == mcp::method::resources_templates_list) {
        admit(std::move(m), stream, std::nullopt,
              list_of("resourceTemplates", "resources", Names::templates));
        return;
    }
    if (method == mcp::method::tools_call || method == mcp::method::prompts_get) {
        const bool tool = method == mcp::method::tools_call;
        if (m.name.empty()) {
            reply_error(stream, m.id, mcp::code::invalid_params, "params.name is required");
            return;
        }
        const auto route = route_name(m.name);
        if (!route) {
            reply_error(stream, m.id, mcp::code::invalid_params,
                        std::string(tool ? "Unknown tool: " : "Unknown prompt: ") + m.name +
                            " (names carry their upstream's prefix, e.g. " +
                            (links_.empty() ? std::string("name") : links_.front().prefix) +
                            "...)");
            return;
        }
        const std::size_t link = route->first;
        const std::string own_name = route->second;
        const std::string name = m.name;
        // No action without its record: the audit trail must be writable.
        if (tool && shared_.recorder != nullptr && !shared_.recorder->audit_allows_calls()) {
            mark(m.id, "refused-audit");
            reply_error(stream, m.id, mcp::code::audit_unavailable,
                        "Refused: the gateway's audit trail cannot be written, and it does not "
                        "act without a record (audit.on_failure: refuse); try again later");
            return;
        }
        admit(std::move(m), stream, link,
              [this, link, own_name, name, tool, stream](mcp::Message msg) {
                  msg.params()->at("name") = own_name;
                  std::function<void(const mcp::Message&)> on_success;
                  if (tool && shared_.policy) {
                      // Data flow: the session has now used a tool with these tags.
                      on_success = [this, name, alive = alive_](const mcp::Message& reply) {
                          const auto* result = reply.body.if_contains("result");
                          const bool failed = result == nullptr || !result->is_object() ||
                                              result->as_object().contains("isError");
                          if (*alive && !failed && shared_.policy) {
                              auto tags = policy::tags_of(*shared_.policy, name);
                              used_tags_.merge(tags);
                          }
                      };
                  }
                  forward(link, std::move(msg), stream, std::move(on_success));
              });
        return;
    }
    if (method == mcp::method::resources_read || method == mcp::method::resources_subscribe ||
        method == mcp::method::resources_unsubscribe) {
        if (m.uri.empty()) {
            reply_error(stream, m.id, mcp::code::invalid_params, "params.uri is required");
            return;
        }
        // Policies, routing and the upstream see one spelling of a URI
        // (file:///public/../etc/passwd is file:///etc/passwd).
        auto normal = transport::normalize_resource_uri(m.uri);
        if (!normal) {
            mark(m.id, "invalid");
            reply_error(stream, m.id, mcp::code::invalid_params,
                        "Invalid resource URI: " + normal.error().detail);
            return;
        }
        if (*normal != m.uri) {
            spdlog::debug("session {}: resource URI {} normalized to {}", log_id_, m.uri, *normal);
            m.uri = *normal;
            m.params()->at("uri") = m.uri;
            if (const auto t = traces_.find(mcp::id_text(m.id)); t != traces_.end()) {
                t->second.target = m.uri;
            }
        }
        if (refuse_if_blocked(stream, m.id, "resource:" + m.uri, m.uri)) {
            return;
        }
        const auto link = route_uri(m.uri);
        if (!link) {
            reply_error(stream, m.id, mcp::code::invalid_params,
                        "Unknown resource: " + m.uri + " (list resources first)");
            return;
        }
        admit(std::move(m), stream, *link, [this, link = *link, stream](mcp::Message msg) {
            forward(link, std::move(msg), stream);
        });
        return;
    }
    if (method == mcp::method::completion_complete) {
        json::object* params = m.params();
        json::value* ref = params != nullptr ? params->if_contains("ref") : nullptr;
        if (ref == nullptr || !ref->is_object()) {
            reply_error(stream, m.id, mcp::code::invalid_params, "params.ref is required");
            return;
        }
        json::object& r = ref->as_object();
        const auto* name = r.if_contains("name");
        const auto* uri = r.if_contains("uri");
        if (name != nullptr && name->is_string()) {
            const auto route = route_name(name->get_string());
            if (!route) {
                reply_error(stream, m.id, mcp::code::invalid_params,
                            "Unknown prompt: " + std::string(name->get_string()));
                return;
            }
            r["name"] = route->second;
            admit(std::move(m), stream, route->first,
                  [this, link = route->first, stream](mcp::Message msg) {
                      forward(link, std::move(msg), stream);
                  });
            return;
        }
        if (uri != nullptr && uri->is_string()) {
            const auto link = route_uri(uri->get_string());
            if (!link) {
                reply_error(stream, m.id, mcp::code::invalid_params,
                            "Unknown resource: " + std::string(uri->get_string()));
                return;
            }
            admit(std::move(m), stream, *link, [this, link = *link, stream](mcp::Message msg) {
                forward(link, std::move(msg), stream);
            });
            return;
        }
        reply_error(stream, m.id, mcp::code::invalid_params, "params.ref needs a name or a uri");
        return;
    }
    if (method == mcp::method::logging_set_level) {
        admit(std::move(m), stream, std::nullopt,
              [this, stream](const mcp::Message& msg) { fan_out_set_level(msg, stream); });
        return;
    }
    // Anything else: transparent with one upstream, unknown with several.
    if (links_.size() == 1) {
        admit(std::move(m), stream, 0,
              [this, stream](mcp::Message msg) { forward(0, std::move(msg), stream); });
        return;
    }
    reply_error(stream, m.id, mcp::code::method_not_found, "Method not found: " + method);
}

namespace {

std::string upstream_of(const std::vector<std::string>& names, std::optional<std::size_t> link) {
    return link && *link < names.size() ? names[*link] : std::string{};
}

}  // namespace

void GatewaySession::admit(mcp::Message m, StreamId stream, std::optional<std::size_t> link,
                           Proceed proceed) {
    const auto policy = shared_.policy;
    const bool tool_call = m.method == mcp::method::tools_call;
    if (link && *link < links_.size()) {
        if (const auto t = traces_.find(mcp::id_text(m.id)); t != traces_.end()) {
            t->second.upstream = links_[*link].config->name;
        }
    }
    // A tool's (or prompt's) definition is reviewed (integrity) and its
    // inputSchema learned (policy) before its first call: the upstream's list
    // is fetched first when the session never listed it (once per link,
    // again after the upstream said it changed). A name the upstream does not
    // list is unknown: it has no definition anyone reviewed.
    const bool prompt_get = m.method == mcp::method::prompts_get;
    if ((tool_call || prompt_get) && link) {
        auto& fetched = tool_call ? tools_fetched_ : prompts_fetched_;
        const std::string listed_key = std::string(tool_call ? "tool:" : "prompt:") + m.name;
        if (!listed_.contains(listed_key) && !fetched.contains(*link)) {
            auto pending = std::make_shared<mcp::Message>(std::move(m));
            auto again = [this, pending, stream, link, proceed = std::move(proceed)]() mutable {
                admit(std::move(*pending), stream, link, std::move(proceed));
            };
            // One listing at a time per upstream: calls that arrive meanwhile wait for it.
            auto& waiting = (tool_call ? tools_waiting_ : prompts_waiting_)[*link];
            waiting.push_back(std::move(again));
            if (waiting.size() == 1) {
                fetch_listing(*link, tool_call, [this, link = *link, tool_call, alive = alive_] {
                    if (!*alive) {
                        return;
                    }
                    auto& queue = tool_call ? tools_waiting_ : prompts_waiting_;
                    auto ready = std::move(queue[link]);
                    queue.erase(link);
                    for (auto& go : ready) {
                        go();
                    }
                });
            }
            return;
        }
        if (!listed_.contains(listed_key) && usable(*link)) {
            spdlog::info("session {}: {} {} refused: upstream {} does not list it", log_id_,
                         tool_call ? "tool" : "prompt", m.name, links_[*link].config->name);
            mark(m.id, "invalid");
            reply_error(stream, m.id, mcp::code::invalid_params,
                        std::string(tool_call ? "Unknown tool: " : "Unknown prompt: ") + m.name +
                            " (upstream " + links_[*link].config->name + " does not list it)");
            return;
        }
    }
    if (shared_.guard != nullptr && link && (tool_call || m.method == mcp::method::prompts_get) &&
        refuse_if_blocked(stream, m.id, std::string(tool_call ? "tool:" : "prompt:") + m.name,
                          m.name)) {
        return;
    }
    if (!policy) {
        proceed(std::move(m));
        return;
    }
    decide(std::move(m), stream, link, std::move(proceed));
}

void GatewaySession::decide(mcp::Message m, StreamId stream, std::optional<std::size_t> link,
                            Proceed proceed) {
    const auto policy = shared_.policy;
    if (!policy) {
        proceed(std::move(m));
        return;
    }
    const bool tool_call = m.method == mcp::method::tools_call;
    const json::object* params = m.params();
    const json::value* arguments = params != nullptr ? params->if_contains("arguments") : nullptr;
    static const json::value k_no_arguments = json::object{};
    if (tool_call && arguments == nullptr) {
        arguments = &k_no_arguments;
    }
    if (tool_call && policy->schema_validation) {
        if (std::string why = schemas_.check(m.name, *arguments); !why.empty()) {
            spdlog::info("session {}: {} refused: arguments do not match its inputSchema: {}",
                         log_id_, m.name, why);
            mark(m.id, "invalid");
            reply_error(stream, m.id, mcp::code::invalid_params,
                        "Invalid arguments for " + m.name + ": " + why);
            return;
        }
    }
    std::vector<std::string> upstream_names;
    upstream_names.reserve(links_.size());
    for (const auto& l : links_) {
        upstream_names.push_back(l.config->name);
    }
    const std::string upstream = upstream_of(upstream_names, link);
    // The purpose the call declares, and the one the policy gives its caller:
    // each rule says which counts (purpose_from).
    std::string call_purpose;
    if (params != nullptr) {
        if (const auto* meta = params->if_contains("_meta"); meta != nullptr && meta->is_object()) {
            if (const auto* p = meta->as_object().if_contains(policy::k_purpose_meta);
                p != nullptr && p->is_string()) {
                call_purpose = std::string(p->get_string());
            }
        }
    }
    const std::string session_purpose = policy::session_purpose(*policy, caller_);
    const auto now = shared_.clock();
    policy::Behaviour::Assessment assessment;
    if (tool_call) {
        assessment = shared_.behaviour.observe(
            caller_.peer_id.empty() ? std::string("anonymous") : caller_.peer_id, m.name, arguments,
            now);
        if (!assessment.findings.empty()) {
            if (const auto it = traces_.find(mcp::id_text(m.id)); it != traces_.end()) {
                for (const auto& f : assessment.findings) {
                    it->second.behaviour.emplace_back(
                        json::object{{"kind", f.kind}, {"score", f.score}});
                }
                it->second.behaviour_score = assessment.score;
            }
        }
        for (const auto& f : assessment.findings) {
            // A sustained burst is one line every few seconds, not one per call.
            auto& last = finding_logged_[f.kind];
            if (last == std::chrono::steady_clock::time_point{} ||
                now - last >= std::chrono::seconds{5}) {
                last = now;
                spdlog::info("session {}: behaviour: {} ({}) on {} by {}", log_id_, f.kind,
                             f.detail, m.name,
                             caller_.peer_id.empty() ? "anonymous" : caller_.peer_id);
            }
        }
    }
    policy::Request request;
    request.caller = caller_;
    request.session = session_id_;
    request.method = m.method;
    request.upstream = upstream;
    request.tool = (tool_call || m.method == mcp::method::prompts_get) ? std::string_view(m.name)
                                                                       : std::string_view{};
    request.uri = m.uri;
    request.arguments = arguments;
    request.call_purpose = call_purpose;
    request.session_purpose = session_purpose;
    request.used_tags = &used_tags_;
    request.findings = &assessment.findings;
    request.anomaly_score = assessment.score;
    policy::Decision decision = policy::evaluate(*policy, request, &shared_.limiter, now);
    if (shared_.recorder != nullptr) {
        for (const auto& [rule, effect] : decision.shadowed) {
            shared_.recorder->rule_hit(rule, policy::to_string(effect), "shadow");
        }
        if (!decision.rule.empty()) {
            shared_.recorder->rule_hit(decision.rule, policy::to_string(decision.effect),
                                       policy::to_string(decision.mode));
        }
    }
    for (const auto& [rule, effect] : decision.shadowed) {
        spdlog::info("session {}: shadow rule {} would {} {} {}", log_id_, rule,
                     policy::to_string(effect), m.method, m.name.empty() ? m.uri : m.name);
    }
    if (decision.mode == policy::Mode::shadow) {
        if (decision.effect != policy::Effect::allow) {
            spdlog::info("session {}: shadow: would {} {} {}: {}", log_id_,
                         policy::to_string(decision.effect), m.method, m.name, decision.reason);
        }
        mark(m.id, "allow", decision.rule, "shadow");
        proceed(std::move(m));
        return;
    }
    mark(m.id, policy::to_string(decision.effect), decision.rule);
    switch (decision.effect) {
        case policy::Effect::allow:
            spdlog::debug("session {}: {} {} allowed ({})", log_id_, m.method, m.name,
                          decision.rule.empty() ? "default" : decision.rule);
            proceed(std::move(m));
            return;
        case policy::Effect::deny:
            deny(m, stream, decision, *policy);
            return;
        case policy::Effect::ask:
            ask_person(std::move(m), stream, decision, std::move(proceed));
            return;
    }
}

void GatewaySession::deny(const mcp::Message& m, StreamId stream, const policy::Decision& decision,
                          const policy::Policy& policy, std::string_view label) {
    mark(m.id, label);
    spdlog::info("session {}: {} {} denied by {}: {}", log_id_, m.method,
                 m.name.empty() ? m.uri : m.name,
                 decision.rule.empty() ? "the default" : "rule " + decision.rule, decision.reason);
    json::object data{
        {"rule", decision.rule.empty() ? json::value(nullptr) : json::value(decision.rule)},
        {"reason", decision.reason},
        {"decision", policy::to_string(decision.effect)},
        {"mode", policy::to_string(decision.mode)},
        {"policy", policy.fingerprint}};
    respond(stream, mcp::make_error(m.id, policy::k_denied_code,
                                    "Denied by policy: " + decision.reason, std::move(data)));
}

void GatewaySession::ask_person(mcp::Message m, StreamId stream, const policy::Decision& decision,
                                Proceed proceed) {
    const auto policy = shared_.policy;
    // Only a client that declared elicitation can put the question to a person.
    const auto* caps = client_params_.if_contains("capabilities");
    const bool can_ask =
        caps != nullptr && caps->is_object() && caps->as_object().contains("elicitation");
    if (!can_ask) {
        policy::Decision refused = decision;
        refused.effect = policy::Effect::deny;
        refused.reason =
            decision.reason + "; the client cannot ask a person (no elicitation capability)";
        deny(m, stream, refused, *policy, "ask-denied");
        return;
    }
    std::string what = m.method;
    if (!m.name.empty()) {
        what += " " + m.name;
    }
    if (const auto* params = m.params(); params != nullptr) {
        if (const auto* args = params->if_contains("arguments"); args != nullptr) {
            std::string text = mcp::serialize(*args);
            if (text.size() > 500) {
                text = text.substr(0, 500) + "...";
            }
            what += " with " + text;
        }
    }
    json::object params{
        {"message", "pqmcp gateway: " + decision.reason + ". Allow " + what + "?"},
        {"requestedSchema",
         json::object{
             {"type", "object"},
             {"properties", json::object{{"approve", json::object{{"type", "boolean"},
                                                                  {"title", "Allow this call"},
                                                                  {"default", false}}}}},
             {"required", json::array{"approve"}}}}};
    const std::int64_t id = next_relay_id_++;
    OwnRequest own;
    own.timer = std::make_unique<boost::asio::steady_timer>(shared_.services.io);
    auto pending = std::make_shared<mcp::Message>(std::move(m));
    own.done = [this, pending, stream, decision, policy, proceed = std::move(proceed)](
                   tl::expected<mcp::Message, std::string> answer) mutable {
        policy::Decision outcome = decision;
        bool approved = false;
        std::string how;
        if (!answer) {
            how = answer.error();
        } else if (const auto* result = answer->body.if_contains("result");
                   result != nullptr && result->is_object()) {
            const auto& r = result->as_object();
            const auto* action = r.if_contains("action");
            const std::string act = action != nullptr && action->is_string()
                                        ? std::string(action->get_string())
                                        : std::string("none");
            const auto* content = r.if_contains("content");
            const json::value* approve = content != nullptr && content->is_object()
                                             ? content->as_object().if_contains("approve")
                                             : nullptr;
            // Only an explicit "approve": true under "accept" approves: an
            // accept with the field missing (a client that fills forms in
            // for the user) is not a person's yes.
            approved =
                act == "accept" && approve != nullptr && approve->is_bool() && approve->get_bool();
            how = act == "accept" && !approved ? "accepted without approving" : act;
        } else {
            how = "the client answered with an error";
        }
        if (approved) {
            spdlog::info("session {}: {} {} approved by a person (rule {})", log_id_,
                         pending->method, pending->name, decision.rule);
            mark(pending->id, "ask-approved");
            proceed(std::move(*pending));
            return;
        }
        outcome.effect = policy::Effect::deny;
        outcome.reason = decision.reason + "; not approved (" + how + ")";
        deny(*pending, stream, outcome, *policy, "ask-denied");
    };
    const auto timeout = shared_.services.config.timeouts.upstream_request;
    own.timer->expires_after(timeout);
    own.timer->async_wait([this, alive = alive_, id](const boost::system::error_code& ec) {
        if (ec || !*alive) {
            return;
        }
        auto it = own_requests_.find(id);
        if (it != own_requests_.end()) {
            auto done = std::move(it->second.done);
            own_requests_.erase(it);
            done(tl::unexpected(std::string("no answer in time")));
        }
    });
    own_requests_.emplace(id, std::move(own));
    if (!downstream_.send(
            stream, mcp::make_request(id, mcp::method::elicitation_create, std::move(params)))) {
        auto it = own_requests_.find(id);
        auto done = std::move(it->second.done);
        own_requests_.erase(it);
        done(tl::unexpected(std::string("the client cannot be reached")));
    }
}

void GatewaySession::fetch_listing(std::size_t link, bool tools, std::function<void()> then) {
    if (!usable(link) || !links_[link].client->has_capability(tools ? "tools" : "prompts")) {
        (tools ? tools_fetched_ : prompts_fetched_).insert(link);
        then();
        return;
    }
    const std::string method(tools ? mcp::method::tools_list : mcp::method::prompts_list);
    const std::string key = tools ? "tools" : "prompts";
    const std::string kind = tools ? "tool" : "prompt";
    using Pager = std::function<void(const std::string&, int)>;
    auto pager = std::make_shared<Pager>();
    *pager = [this, link, method, key, kind, tools, alive = alive_, then = std::move(then),
              weak = std::weak_ptr<Pager>(pager)](const std::string& cursor, int page) {
        json::object p;
        if (!cursor.empty()) {
            p["cursor"] = cursor;
        }
        links_[link].client->request(
            mcp::make_request(0, method, std::move(p)), this,
            [this, link, key, kind, tools, alive, then, page,
             self = weak.lock()](tl::expected<mcp::Message, UpstreamClient::Failure> outcome) {
                if (!*alive) {
                    return;
                }
                const json::object* result = outcome && outcome->kind == mcp::Kind::response
                                                 ? outcome->body.at("result").if_object()
                                                 : nullptr;
                if (result != nullptr) {
                    if (const auto* items = result->if_contains(key);
                        items != nullptr && items->is_array()) {
                        const auto& list = items->as_array();
                        std::vector<Verdict> verdicts;
                        if (shared_.guard != nullptr) {
                            verdicts =
                                shared_.guard->review(kind, {{&links_[link].config->name, &list}})
                                    .front();
                        }
                        for (std::size_t j = 0; j < list.size(); ++j) {
                            const auto* item = list[j].if_object();
                            if (item == nullptr || !item->contains("name") ||
                                !item->at("name").is_string()) {
                                continue;
                            }
                            const std::string name =
                                links_[link].prefix + std::string(item->at("name").get_string());
                            const std::string listed = fmt::format("{}:{}", kind, name);
                            note_listed(listed);
                            if (!verdicts.empty()) {
                                (void)note_verdict(listed, verdicts[j]);
                            }
                            if (tools) {
                                schemas_.learn(name, *item);
                            }
                        }
                    }
                    const auto* next = result->if_contains("nextCursor");
                    if (next != nullptr && next->is_string() && !next->get_string().empty() &&
                        page + 1 < k_max_pages && self) {
                        (*self)(std::string(next->get_string()), page + 1);
                        return;
                    }
                }
                (tools ? tools_fetched_ : prompts_fetched_).insert(link);
                then();
            });
    };
    (*pager)({}, 0);
}

void GatewaySession::note_listed(const std::string& key) {
    // Bounded like the lists themselves: a server listing more than this
    // many items has them reviewed again on the next call.
    if (listed_.size() >= k_max_listed) {
        listed_.clear();
    }
    listed_.insert(key);
}

bool GatewaySession::refuse_if_blocked(StreamId stream, const json::value& id,
                                       const std::string& key, std::string_view what) {
    const auto b = blocked_.find(key);
    if (b == blocked_.end()) {
        return false;
    }
    spdlog::info("session {}: {} refused: {}", log_id_, what, b->second.reason);
    mark(id, "blocked");
    respond(stream,
            mcp::make_error(id, mcp::code::tool_blocked,
                            "Blocked by tool integrity: " + b->second.reason, b->second.data));
    return true;
}

bool GatewaySession::note_verdict(const std::string& key, const Verdict& v) {
    if (!v.clean() && v.action == IntegrityAction::block) {
        blocked_.insert_or_assign(key, v);
    } else {
        blocked_.erase(key);
    }
    return v.clean() || v.listed();
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
        std::move(m.body), this, std::move(on_reply), std::move(on_progress));
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

void GatewaySession::upstream_request(UpstreamClient& from, mcp::Message request) {
    const auto link = link_of(from);
    if (!link) {
        return;
    }
    // Relate it to the client's latest request to that upstream when there is
    // one (its response stream); otherwise the standalone GET stream.
    StreamId stream = k_standalone_stream;
    std::uint64_t latest = 0;
    for (const auto& [key, f] : in_flight_) {
        if (f.link == *link && f.order > latest) {
            latest = f.order;
            stream = f.stream;
        }
    }
    // Bounded: an upstream asking faster than the client answers is refused.
    if (relayed_.size() >= shared_.services.config.limits.max_pending_requests) {
        from.answer(request.id, mcp::make_error(request.id, mcp::code::over_limit,
                                                "too many requests waiting for the client"));
        return;
    }
    const std::int64_t id = next_relay_id_++;
    const json::value upstream_id = request.id;
    relayed_[id] = Relayed{*link, upstream_id};
    request.body["id"] = id;
    spdlog::debug("session {}: {} from {} relayed to the client", log_id_, request.method,
                  from.name());
    if (!downstream_.send(stream, std::move(request.body))) {
        relayed_.erase(id);
        from.answer(upstream_id, mcp::make_error(upstream_id, mcp::code::internal_error,
                                                 "the client cannot be reached"));
    }
}

void GatewaySession::upstream_notification(UpstreamClient& from, mcp::Message notification) {
    const auto link = link_of(from);
    if (!link) {
        return;
    }
    // A changed list is reviewed again before its next call.
    for (const auto& [method, kind, fetched] :
         {std::tuple{mcp::method::tools_list_changed, "tool:", &tools_fetched_},
          std::tuple{mcp::method::prompts_list_changed, "prompt:", &prompts_fetched_}}) {
        if (notification.method == method) {
            fetched->erase(*link);
            const std::string prefix = kind + links_[*link].prefix;
            std::erase_if(listed_,
                          [&prefix](const std::string& k) { return k.rfind(prefix, 0) == 0; });
        }
    }
    if (notification.method == mcp::method::cancelled) {
        // The upstream withdraws a request it made of the client.
        json::object* params = notification.params();
        json::value* request_id = params != nullptr ? params->if_contains("requestId") : nullptr;
        if (request_id == nullptr) {
            return;
        }
        for (auto it = relayed_.begin(); it != relayed_.end(); ++it) {
            if (it->second.link == *link && it->second.upstream_id == *request_id) {
                *request_id = it->first;
                relayed_.erase(it);
                downstream_.send(k_standalone_stream, std::move(notification.body));
                return;
            }
        }
        return;
    }
    downstream_.send(k_standalone_stream, std::move(notification.body));
}

void GatewaySession::initialize(mcp::Message m, StreamId stream) {
    if (!links_.empty()) {
        reply_error(stream, m.id, mcp::code::invalid_request, "the session is already initialized");
        return;
    }
    const json::object* params = m.params();
    const json::value requested = member_or(params, "protocolVersion", "");
    version_ = std::string(mcp::negotiate_version(
        requested.is_string() ? std::string_view(requested.get_string()) : std::string_view{}));
    json::value capabilities = member_or(params, "capabilities", json::object{});
    if (!capabilities.is_object()) {
        capabilities = json::object{};
    }
    client_params_ = json::object{
        {"protocolVersion", version_},
        {"capabilities", capabilities},
        {"clientInfo",
         member_or(params, "clientInfo", json::object{{"name", "unknown"}, {"version", "0"}})}};
    const GatewayConfig& config = shared_.services.config;
    links_.reserve(config.upstreams.size());
    for (const auto& u : config.upstreams) {
        Link link;
        link.config = &u;
        link.prefix = config.namespacing ? u.name + config.separator : std::string{};
        if (u.shared) {
            auto& client = shared_.shared_clients[u.name];
            if (!client) {
                client = std::make_shared<UpstreamClient>(shared_.services, u, client_params_);
            }
            link.client = client;
        } else {
            link.client = std::make_shared<UpstreamClient>(shared_.services, u, client_params_,
                                                           caller_.peer_id);
        }
        link.client->subscribe(this);
        links_.push_back(std::move(link));
    }
    starting_ = links_.size();
    const json::value id = m.id;
    for (std::size_t i = 0; i < links_.size(); ++i) {
        links_[i].client->start([this, alive = alive_, i, id,
                                 stream](const tl::expected<void, UpstreamClient::Failure>& r) {
            if (!*alive) {
                return;
            }
            if (!r) {
                links_[i].failure = r.error().message;
            }
            if (--starting_ == 0) {
                finish_initialize(id, stream);
            }
        });
    }
}

void GatewaySession::finish_initialize(const json::value& id, StreamId stream) {
    std::string failures;
    std::size_t ready = 0;
    bool tools = false;
    bool tools_changed = false;
    bool prompts = false;
    bool prompts_changed = false;
    bool resources = false;
    bool resources_changed = false;
    bool subscribe = false;
    bool logging = false;
    bool completions = false;
    std::vector<std::pair<std::string, std::string>> instructions;
    for (const auto& link : links_) {
        if (!link.failure.empty()) {
            failures += (failures.empty() ? "" : "; ") + link.failure;
            continue;
        }
        ++ready;
        const auto& result = link.client->initialize_result();
        const json::object* caps =
            result.contains("capabilities") && result.at("capabilities").is_object()
                ? &result.at("capabilities").as_object()
                : nullptr;
        const auto flag = [caps](std::string_view cap, std::string_view key) {
            if (caps == nullptr || !caps->contains(cap) || !caps->at(cap).is_object()) {
                return false;
            }
            const auto* v = caps->at(cap).as_object().if_contains(key);
            return v != nullptr && v->is_bool() && v->get_bool();
        };
        if (caps != nullptr) {
            tools = tools || caps->contains("tools");
            prompts = prompts || caps->contains("prompts");
            resources = resources || caps->contains("resources");
            logging = logging || caps->contains("logging");
            completions = completions || caps->contains("completions");
        }
        tools_changed = tools_changed || flag("tools", "listChanged");
        prompts_changed = prompts_changed || flag("prompts", "listChanged");
        resources_changed = resources_changed || flag("resources", "listChanged");
        subscribe = subscribe || flag("resources", "subscribe");
        if (const auto* text = result.if_contains("instructions");
            text != nullptr && text->is_string()) {
            // Instructions reach the model as surely as tool descriptions do:
            // pinned and scanned the same way, withheld when blocked or stripped.
            const Verdict v = shared_.guard != nullptr ? shared_.guard->review_instructions(
                                                             link.config->name, text->get_string())
                                                       : Verdict{};
            if (v.clean() || v.listed()) {
                instructions.emplace_back(link.config->name, std::string(text->get_string()));
            } else {
                spdlog::warn("session {}: the instructions of upstream {} are withheld: {}",
                             log_id_, link.config->name, v.reason);
            }
        }
    }
    if (!failures.empty()) {
        spdlog::warn("session {}: {}", log_id_, failures);
    }
    if (ready == 0) {
        reply_error(stream, id, mcp::code::upstream_unavailable,
                    "no upstream could be started: " + failures);
        return;
    }
    json::object caps;
    if (tools) {
        caps["tools"] = json::object{{"listChanged", tools_changed}};
    }
    if (prompts) {
        caps["prompts"] = json::object{{"listChanged", prompts_changed}};
    }
    if (resources) {
        caps["resources"] =
            json::object{{"subscribe", subscribe}, {"listChanged", resources_changed}};
    }
    if (logging) {
        caps["logging"] = json::object{};
    }
    if (completions) {
        caps["completions"] = json::object{};
    }
    json::object result;
    result["protocolVersion"] = version_;
    result["capabilities"] = std::move(caps);
    result["serverInfo"] = json::object{
        {"name", "pqmcp"}, {"title", "pqmcp gateway"}, {"version", shared_.server_version}};
    std::string text;
    const GatewayConfig& config = shared_.services.config;
    if (links_.size() == 1 && !config.namespacing) {
        text = instructions.empty() ? std::string{} : instructions.front().second;
    } else {
        if (config.namespacing) {
            text = "Tool and prompt names carry their server's prefix (" + links_.front().prefix +
                   "...).";
        }
        for (const auto& [name, t] : instructions) {
            text += text.empty() ? "[" : "\n[";
            text += name;
            text += "] ";
            text += t;
        }
    }
    if (!text.empty()) {
        result["instructions"] = text;
    }
    if (shared_.guard != nullptr) {
        // The instructions reach the model like a tool list does: signed the
        // same way, so `connect --strict-tools` can check them too.
        shared_.guard->sign(result, mcp::method::initialize);
    }
    spdlog::info("session {} initialized: protocol {}, client {}, {} of {} upstreams", log_id_,
                 version_, mcp::serialize(client_params_.at("clientInfo")), ready, links_.size());
    reply(stream, id, std::move(result));
}

void GatewaySession::list(const mcp::Message& m, StreamId stream, std::string_view key,
                          std::string_view capability, Names names) {
    const json::object* params = m.params();
    if (params != nullptr) {
        if (const auto* cursor = params->if_contains("cursor");
            cursor != nullptr && !(cursor->is_string() && cursor->get_string().empty())) {
            // Every item comes in the first page, so no cursor was ever handed out.
            reply_error(stream, m.id, mcp::code::invalid_params,
                        "invalid cursor: the gateway returns every item in one page");
            return;
        }
    }
    struct Aggregate {
        std::size_t remaining = 0;
        std::vector<json::array> items;
    };
    auto agg = std::make_shared<Aggregate>();
    agg->items.resize(links_.size());
    std::vector<std::size_t> targets;
    for (std::size_t i = 0; i < links_.size(); ++i) {
        if (usable(i) && links_[i].client->has_capability(capability)) {
            targets.push_back(i);
        }
    }
    const std::string method = m.method;
    const std::string k(key);
    const json::value id = m.id;
    const auto finish = [this, agg, k, names, id, stream, method] {
        // Tool integrity first: pins, manifests and the scanner over every
        // upstream's items, with the others' names beside them.
        const std::string_view kind = k == "tools"               ? "tool"
                                      : k == "prompts"           ? "prompt"
                                      : k == "resourceTemplates" ? "resourceTemplate"
                                      : k == "resources"         ? "resource"
                                                                 : "";
        std::vector<std::vector<Verdict>> verdicts;
        if (shared_.guard != nullptr && !kind.empty()) {
            std::vector<Guard::Input> inputs;
            for (std::size_t i = 0; i < agg->items.size(); ++i) {
                inputs.push_back({&links_[i].config->name, &agg->items[i]});
            }
            verdicts = shared_.guard->review(kind, inputs);
        }
        json::array merged;
        std::map<std::string, std::string> seen;  // merged name -> upstream
        std::map<std::string, std::string> raw;   // upstream's own name -> upstream
        if (names == Names::resources) {
            resource_owner_.clear();
        } else if (names == Names::templates) {
            template_owner_.clear();
        }
        for (std::size_t i = 0; i < agg->items.size(); ++i) {
            const std::string& upstream = links_[i].config->name;
            if (k == "tools") {
                tools_fetched_.insert(i);
            } else if (k == "prompts") {
                prompts_fetched_.insert(i);
            }
            for (std::size_t j = 0; j < agg->items[i].size(); ++j) {
                auto& item = agg->items[i][j];
                if (!item.is_object()) {
                    continue;
                }
                json::object& o = item.as_object();
                if (names == Names::prefixed && !kind.empty()) {
                    note_listed(std::string(kind) + ":" + links_[i].prefix + item_name(o));
                }
                if (!verdicts.empty() &&
                    !note_verdict(verdict_key(kind, links_[i].prefix, o), verdicts[i][j])) {
                    continue;  // blocked or stripped: the client never sees it
                }
                if (names == Names::prefixed) {
                    const auto* n = o.if_contains("name");
                    if (n == nullptr || !n->is_string()) {
                        continue;
                    }
                    const std::string own(n->get_string());
                    const std::string name = links_[i].prefix + own;
                    if (const auto r = raw.find(own); r != raw.end() && r->second != upstream) {
                        spdlog::info(
                            "session {}: {} \"{}\" exists on upstreams {} and {} (kept apart "
                            "by their prefixes)",
                            log_id_, k, own, r->second, upstream);
                    }
                    raw.emplace(own, upstream);
                    if (const auto s = seen.find(name); s != seen.end()) {
                        spdlog::warn(
                            "session {}: name collision: {} \"{}\" of upstream {} hides "
                            "the one of upstream {}; only the first is listed",
                            log_id_, k, name, s->second, upstream);
                        continue;
                    }
                    seen.emplace(name, upstream);
                    o["name"] = name;
                    if (k == "tools") {
                        schemas_.learn(name, o);
                        // A caller never sees a tool it may never call.
                        if (shared_.policy &&
                            !policy::may_call(*shared_.policy, caller_, upstream, name)) {
                            continue;
                        }
                    }
                } else if (names == Names::resources) {
                    const auto* u = o.if_contains("uri");
                    if (u == nullptr || !u->is_string()) {
                        continue;
                    }
                    auto normal = transport::normalize_resource_uri(u->get_string());
                    const std::string uri = normal ? *normal : std::string(u->get_string());
                    if (const auto owner = resource_owner_.find(uri);
                        owner != resource_owner_.end()) {
                        spdlog::warn(
                            "session {}: resource {} is offered by upstreams {} and {}; "
                            "reads go to the first",
                            log_id_, uri, links_[owner->second].config->name, upstream);
                        continue;
                    }
                    resource_owner_.emplace(uri, i);
                } else {
                    const auto* t = o.if_contains("uriTemplate");
                    if (t == nullptr || !t->is_string()) {
                        continue;
                    }
                    const std::string_view tmpl = t->get_string();
                    template_owner_.emplace_back(std::string(tmpl.substr(0, tmpl.find('{'))), i);
                }
                merged.push_back(std::move(item));
            }
        }
        json::object result{{k, std::move(merged)}};
        if (shared_.guard != nullptr) {
            shared_.guard->sign(result, method);
        }
        reply(stream, id, std::move(result));
    };
    if (targets.empty()) {
        finish();
        return;
    }
    agg->remaining = targets.size();
    // Fetches every page of one upstream's list, then counts it done. Each
    // request in flight holds the pager; the pager holds itself weakly.
    using Pager = std::function<void(std::size_t, std::string, int)>;
    auto fetch = std::make_shared<Pager>();
    *fetch = [this, alive = alive_, agg, method, k, finish, weak = std::weak_ptr<Pager>(fetch)](
                 std::size_t i, const std::string& cursor, int page) {
        json::object p;
        if (!cursor.empty()) {
            p["cursor"] = cursor;
        }
        links_[i].client->request(
            mcp::make_request(0, method, std::move(p)), this,
            [this, alive, agg, i, k, page, finish,
             pager = weak.lock()](tl::expected<mcp::Message, UpstreamClient::Failure> outcome) {
                if (!*alive) {
                    return;
                }
                const auto done_one = [&] {
                    if (--agg->remaining == 0) {
                        finish();
                    }
                };
                if (!outcome || outcome->kind == mcp::Kind::error) {
                    spdlog::warn("session {}: upstream {}: {} failed: {}", log_id_,
                                 links_[i].config->name, k,
                                 outcome ? error_text(outcome->body) : outcome.error().message);
                    done_one();
                    return;
                }
                const json::object* result = outcome->body.at("result").if_object();
                if (result != nullptr) {
                    if (const auto* items = result->if_contains(k);
                        items != nullptr && items->is_array()) {
                        for (const auto& item : items->as_array()) {
                            agg->items[i].push_back(item);
                        }
                    }
                    const auto* next = result->if_contains("nextCursor");
                    if (next != nullptr && next->is_string() && !next->get_string().empty() &&
                        page + 1 < k_max_pages && pager) {
                        (*pager)(i, std::string(next->get_string()), page + 1);
                        return;
                    }
                }
                done_one();
            });
    };
    for (const std::size_t i : targets) {
        (*fetch)(i, {}, 0);
    }
}

void GatewaySession::fan_out_set_level(const mcp::Message& m, StreamId stream) {
    auto remaining = std::make_shared<std::size_t>(0);
    std::vector<std::size_t> targets;
    for (std::size_t i = 0; i < links_.size(); ++i) {
        if (usable(i) && links_[i].client->has_capability("logging")) {
            targets.push_back(i);
        }
    }
    if (targets.empty()) {
        reply(stream, m.id, json::object{});
        return;
    }
    *remaining = targets.size();
    const json::value id = m.id;
    for (const std::size_t i : targets) {
        json::object body = m.body;
        links_[i].client->request(std::move(body), this,
                                  [this, alive = alive_, remaining, id, stream](
                                      const tl::expected<mcp::Message, UpstreamClient::Failure>&) {
                                      if (*alive && --*remaining == 0) {
                                          reply(stream, id, json::object{});
                                      }
                                  });
    }
}

}  // namespace pqmcp::gateway
