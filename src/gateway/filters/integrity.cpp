#include "integrity.hpp"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "pqmcp/mcp/protocol.hpp"
#include "pqmcp/transport/http_util.hpp"

namespace pqmcp::gateway {

namespace json = boost::json;

namespace {

std::size_t slot(ListKind kind) {
    return kind == ListKind::tools ? 0 : 1;
}

}  // namespace

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

void IntegrityState::note_listed(const std::string& key) {
    // Bounded like the lists themselves: a server listing more than this
    // many items has them reviewed again on the next call.
    if (listed_.size() >= k_max_listed) {
        listed_.clear();
    }
    listed_.insert(key);
}

const Verdict* IntegrityState::blocked(const std::string& key) const {
    const auto it = blocked_.find(key);
    return it == blocked_.end() ? nullptr : &it->second;
}

bool IntegrityState::note_verdict(const std::string& key, const Verdict& v) {
    if (!v.clean() && v.action == IntegrityAction::block) {
        blocked_.insert_or_assign(key, v);
    } else {
        blocked_.erase(key);
    }
    return v.clean() || v.listed();
}

bool IntegrityState::fetched(ListKind kind, std::size_t link) const {
    return fetched_.at(slot(kind)).contains(link);
}

void IntegrityState::mark_fetched(ListKind kind, std::size_t link) {
    fetched_.at(slot(kind)).insert(link);
}

void IntegrityState::forget(ListKind kind, std::size_t link, const std::string& prefix) {
    fetched_.at(slot(kind)).erase(link);
    const std::string start = std::string(spec(kind).item) + ":" + prefix;
    std::erase_if(listed_, [&start](const std::string& k) { return k.rfind(start, 0) == 0; });
}

std::vector<std::function<void()>>& IntegrityState::waiting(ListKind kind, std::size_t link) {
    return waiting_.at(slot(kind))[link];
}

Step IntegrityCheck::refuse_if_blocked(Exchange& x, const std::string& key,
                                       std::string_view what) const {
    const Verdict* v = state_.blocked(key);
    if (v == nullptr) {
        return Step::next();
    }
    spdlog::info("session {}: {} refused: {}", log_id_, what, v->reason);
    x.decision.disposition = Disposition::blocked;
    return Step::deny(mcp::code::tool_blocked, "Blocked by tool integrity: " + v->reason, v->data);
}

Step IntegrityCheck::on_request(const std::shared_ptr<Exchange>& x, RequestChain& chain) {
    const mcp::Message& m = x->message;
    if (m.method == mcp::method::resources_read || m.method == mcp::method::resources_subscribe ||
        m.method == mcp::method::resources_unsubscribe) {
        return refuse_if_blocked(*x, "resource:" + m.uri, m.uri);
    }
    const bool tool_call = m.method == mcp::method::tools_call;
    if ((!tool_call && m.method != mcp::method::prompts_get) || !x->link) {
        return Step::next();
    }
    // A tool's (or prompt's) definition is reviewed before its first call:
    // the upstream's list is fetched first when the session never listed it
    // (once per link, again after the upstream said it changed). A name the
    // upstream does not list is unknown: it has no definition anyone reviewed.
    const ListKind kind = tool_call ? ListKind::tools : ListKind::prompts;
    const std::size_t link = *x->link;
    const std::string key = std::string(spec(kind).item) + ":" + m.name;
    if (!state_.listed(key) && !state_.fetched(kind, link)) {
        // One listing at a time per upstream: calls that arrive meanwhile wait for it.
        auto& waiting = state_.waiting(kind, link);
        waiting.emplace_back([this, x, &chain] { chain.resume(x, on_request(x, chain)); });
        if (waiting.size() == 1) {
            lister_.fetch(link, kind, [this, kind, link] {
                state_.mark_fetched(kind, link);
                auto ready = std::move(state_.waiting(kind, link));
                state_.waiting(kind, link).clear();
                for (auto& go : ready) {
                    go();
                }
            });
        }
        return Step::pause();
    }
    if (!state_.listed(key) && upstreams_.usable(link)) {
        spdlog::info("session {}: {} {} refused: upstream {} does not list it", log_id_,
                     tool_call ? "tool" : "prompt", m.name, upstreams_.name(link));
        x->decision.disposition = Disposition::invalid;
        return Step::deny(mcp::code::invalid_params,
                          std::string(tool_call ? "Unknown tool: " : "Unknown prompt: ") + m.name +
                              " (upstream " + upstreams_.name(link) + " does not list it)");
    }
    return refuse_if_blocked(*x, key, m.name);
}

void IntegrityReview::on_items(Listing& listing) {
    const ListSpec& s = *listing.spec;
    const bool named = s.kind == ListKind::tools || s.kind == ListKind::prompts;
    // Pins, manifests and the scanner over every upstream's items, with the
    // others' names beside them.
    std::vector<std::vector<Verdict>> verdicts;
    if (guard_ != nullptr) {
        std::vector<Guard::Input> inputs;
        inputs.reserve(listing.links.size());
        for (const std::size_t link : listing.links) {
            inputs.push_back({&upstreams_.name(link), &listing.items.at(link)});
        }
        verdicts = guard_->review(s.item, inputs);
    }
    for (std::size_t n = 0; n < listing.links.size(); ++n) {
        const std::size_t link = listing.links[n];
        const std::string& prefix = upstreams_.prefix(link);
        auto& items = listing.items.at(link);
        for (std::size_t j = 0; j < items.size(); ++j) {
            if (!items[j].is_object()) {
                continue;
            }
            const json::object& o = items[j].as_object();
            if (named) {
                state_.note_listed(std::string(s.item) + ":" + prefix + item_name(o));
            }
            if (!verdicts.empty() &&
                !state_.note_verdict(verdict_key(s.item, prefix, o), verdicts[n][j])) {
                listing.mark(link, j, Listing::Mark::withheld);  // blocked or stripped
            }
        }
        if (named) {
            state_.mark_fetched(s.kind, link);
        }
    }
}

}  // namespace pqmcp::gateway
