#include "session.hpp"

#include <algorithm>
#include <set>

#include <spdlog/spdlog.h>

#include "pqmcp/mcp/protocol.hpp"

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

}  // namespace

GatewaySession::GatewaySession(SharedState& shared, transport::ServerSession& downstream)
    : shared_(shared), downstream_(downstream), log_id_(downstream.id().substr(0, 8)) {}

GatewaySession::~GatewaySession() {
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
    *alive_ = false;
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

void GatewaySession::reply(StreamId stream, const json::value& id, json::value result) {
    downstream_.send(stream, mcp::make_result(id, std::move(result)));
}

void GatewaySession::reply_error(StreamId stream, const json::value& id, int code,
                                 const std::string& message) {
    downstream_.send(stream, mcp::make_error(id, code, message));
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
    const std::string& method = m.method;
    if (method == mcp::method::initialize) {
        initialize(std::move(m), stream);
        return;
    }
    if (method == mcp::method::ping) {
        reply(stream, m.id, json::object{});
        return;
    }
    if (in_flight_.size() >= shared_.services.config.limits.max_pending_requests) {
        reply_error(stream, m.id, mcp::code::over_limit,
                    "too many requests in flight on this session (limits.max_pending_requests)");
        return;
    }
    if (method == mcp::method::tools_list) {
        list(m, stream, "tools", "tools", Names::prefixed);
        return;
    }
    if (method == mcp::method::prompts_list) {
        list(m, stream, "prompts", "prompts", Names::prefixed);
        return;
    }
    if (method == mcp::method::resources_list) {
        list(m, stream, "resources", "resources", Names::resources);
        return;
    }
    if (method == mcp::method::resources_templates_list) {
        list(m, stream, "resourceTemplates", "resources", Names::templates);
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
        m.params()->at("name") = route->second;
        forward(route->first, std::move(m), stream);
        return;
    }
    if (method == mcp::method::resources_read || method == mcp::method::resources_subscribe ||
        method == mcp::method::resources_unsubscribe) {
        if (m.uri.empty()) {
            reply_error(stream, m.id, mcp::code::invalid_params, "params.uri is required");
            return;
        }
        const auto link = route_uri(m.uri);
        if (!link) {
            // Resources: "Resource not found" is -32002 in the specification's examples.
            reply_error(stream, m.id, mcp::code::invalid_params,
                        "Unknown resource: " + m.uri + " (list resources first)");
            return;
        }
        forward(*link, std::move(m), stream);
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
            forward(route->first, std::move(m), stream);
            return;
        }
        if (uri != nullptr && uri->is_string()) {
            const auto link = route_uri(uri->get_string());
            if (!link) {
                reply_error(stream, m.id, mcp::code::invalid_params,
                            "Unknown resource: " + std::string(uri->get_string()));
                return;
            }
            forward(*link, std::move(m), stream);
            return;
        }
        reply_error(stream, m.id, mcp::code::invalid_params, "params.ref needs a name or a uri");
        return;
    }
    if (method == mcp::method::logging_set_level) {
        fan_out_set_level(m, stream);
        return;
    }
    // Anything else: transparent with one upstream, unknown with several.
    if (links_.size() == 1) {
        forward(0, std::move(m), stream);
        return;
    }
    reply_error(stream, m.id, mcp::code::method_not_found, "Method not found: " + method);
}

void GatewaySession::forward(std::size_t link, mcp::Message m, StreamId stream) {
    if (!usable(link)) {
        reply_error(
            stream, m.id, mcp::code::upstream_unavailable,
            "upstream " + links_[link].config->name + " is unavailable: " + links_[link].failure);
        return;
    }
    const std::string key = mcp::id_text(m.id);
    if (in_flight_.contains(key)) {
        reply_error(stream, m.id, mcp::code::invalid_request,
                    "a request with id " + key + " is already in flight on this session");
        return;
    }
    spdlog::debug("session {}: {} {} -> {}", log_id_, m.method, m.name.empty() ? m.uri : m.name,
                  links_[link].config->name);
    json::value id = m.id;
    auto on_reply = [this, alive = alive_, key, id,
                     stream](tl::expected<mcp::Message, UpstreamClient::Failure> outcome) {
        if (!*alive) {
            return;
        }
        in_flight_.erase(key);
        if (!outcome) {
            reply_error(stream, id, outcome.error().code, outcome.error().message);
            return;
        }
        outcome->body["id"] = id;
        downstream_.send(stream, std::move(outcome->body));
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
        const auto it = in_flight_.find(mcp::id_text(*request_id));
        if (it == in_flight_.end()) {
            return;  // finished already, or never ours
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
            link.client = std::make_shared<UpstreamClient>(shared_.services, u, client_params_);
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
            instructions.emplace_back(link.config->name, std::string(text->get_string()));
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
    const auto finish = [this, agg, k, names, id, stream] {
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
            for (auto& item : agg->items[i]) {
                if (!item.is_object()) {
                    continue;
                }
                json::object& o = item.as_object();
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
                } else if (names == Names::resources) {
                    const auto* u = o.if_contains("uri");
                    if (u == nullptr || !u->is_string()) {
                        continue;
                    }
                    const std::string uri(u->get_string());
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
        reply(stream, id, json::object{{k, std::move(merged)}});
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
