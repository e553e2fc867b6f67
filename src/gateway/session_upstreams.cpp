// The session towards its upstreams: initializing them with the client's
// parameters, merging their lists through the list chain, fetching one for
// the session's own review, fanning logging/setLevel out, and relaying their
// requests and notifications to the client.
#include <spdlog/spdlog.h>

#include "pqmcp/mcp/protocol.hpp"
#include "session.hpp"

namespace pqmcp::gateway {

namespace json = boost::json;
using transport::k_standalone_stream;
using transport::StreamId;

namespace {

// Pages of one list fetched from one upstream before the rest is ignored.
constexpr std::size_t k_max_pages = 100;

}  // namespace

void GatewaySession::fetch(std::size_t link, ListKind kind, std::function<void()> then) {
    const ListSpec& s = spec(kind);
    if (!offers(link, s.capability)) {
        then();
        return;
    }
    links_[link].client->list_all(
        s.method, s.key, this, k_max_pages,
        [this, alive = alive_, link, kind, then = std::move(then)](
            tl::expected<UpstreamClient::Listed, UpstreamClient::Failure> listed) {
            if (!*alive) {
                return;
            }
            if (listed) {
                // Learned from (reviewed, names noted, schemas learned), not served.
                Listing l(spec(kind), links_.size());
                l.served = false;
                l.links = {link};
                l.items[link] = std::move(listed->items);
                (void)chains_->lists->run(l);
            }
            then();
        });
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
    if (notification.method == mcp::method::tools_list_changed) {
        chains_->integrity.forget(ListKind::tools, *link, links_[*link].prefix);
    } else if (notification.method == mcp::method::prompts_list_changed) {
        chains_->integrity.forget(ListKind::prompts, *link, links_[*link].prefix);
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
            auto& client = shard_.shared_clients[u.name];
            if (!client) {
                client = std::make_shared<UpstreamClient>(shard_.services, u, client_params_);
            }
            link.client = client;
        } else {
            link.client = std::make_shared<UpstreamClient>(shard_.services, u, client_params_,
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

void GatewaySession::list(const mcp::Message& m, StreamId stream, ListKind kind) {
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
    const ListSpec& s = spec(kind);
    struct Aggregate {
        explicit Aggregate(const ListSpec& spec, std::size_t n) : listing(spec, n) {}
        Listing listing;
        std::size_t remaining = 0;
    };
    auto agg = std::make_shared<Aggregate>(s, links_.size());
    for (std::size_t i = 0; i < links_.size(); ++i) {
        agg->listing.links.push_back(i);
    }
    std::vector<std::size_t> targets;
    for (std::size_t i = 0; i < links_.size(); ++i) {
        if (offers(i, s.capability)) {
            targets.push_back(i);
        }
    }
    const json::value id = m.id;
    const auto finish = [this, agg, id, stream] {
        reply(stream, id, chains_->lists->run(agg->listing));
    };
    if (targets.empty()) {
        finish();
        return;
    }
    agg->remaining = targets.size();
    for (const std::size_t i : targets) {
        links_[i].client->list_all(
            s.method, s.key, this, k_max_pages,
            [this, alive = alive_, agg, i,
             finish](tl::expected<UpstreamClient::Listed, UpstreamClient::Failure> listed) {
                if (!*alive) {
                    return;
                }
                if (!listed) {
                    spdlog::warn("session {}: upstream {}: {} failed: {}", log_id_,
                                 links_[i].config->name, agg->listing.spec->key,
                                 listed.error().message);
                } else {
                    if (!listed->note.empty()) {
                        spdlog::warn("session {}: upstream {}: {}: {}", log_id_,
                                     links_[i].config->name, agg->listing.spec->method,
                                     listed->note);
                    }
                    agg->listing.items[i] = std::move(listed->items);
                }
                if (--agg->remaining == 0) {
                    finish();
                }
            });
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
