#include "chain.hpp"

#include <array>

#include "pqmcp/mcp/protocol.hpp"

namespace pqmcp::gateway {

namespace json = boost::json;

std::string_view to_string(Disposition d) noexcept {
    switch (d) {
        case Disposition::allow:
            return "allow";
        case Disposition::deny:
            return "deny";
        case Disposition::ask:
            return "ask";
        case Disposition::ask_approved:
            return "ask-approved";
        case Disposition::ask_denied:
            return "ask-denied";
        case Disposition::blocked:
            return "blocked";
        case Disposition::invalid:
            return "invalid";
        case Disposition::refused_audit:
            return "refused-audit";
    }
    return "allow";
}

bool refused(Disposition d) noexcept {
    return d != Disposition::allow && d != Disposition::ask_approved;
}

const ListSpec& spec(ListKind kind) noexcept {
    static const std::array<ListSpec, 4> specs{{
        {ListKind::tools, mcp::method::tools_list, "tools", "tool", "tools"},
        {ListKind::prompts, mcp::method::prompts_list, "prompts", "prompt", "prompts"},
        {ListKind::resources, mcp::method::resources_list, "resources", "resource", "resources"},
        {ListKind::templates, mcp::method::resources_templates_list, "resourceTemplates",
         "resourceTemplate", "resources"},
    }};
    return specs.at(static_cast<std::size_t>(kind));
}

Listing::Listing(const ListSpec& s, std::size_t upstreams)
    : spec(&s), items(upstreams), marks(upstreams) {}

void Listing::each(const std::function<void(std::size_t, std::size_t, json::object&)>& f,
                   bool withheld) {
    for (const std::size_t link : links) {
        auto& list = items.at(link);
        auto& m = marks.at(link);
        m.resize(list.size(), Mark::keep);
        for (std::size_t j = 0; j < list.size(); ++j) {
            if (!list[j].is_object()) {
                continue;
            }
            if (m[j] == Mark::keep || (withheld && m[j] == Mark::withheld)) {
                f(link, j, list[j].as_object());
            }
        }
    }
}

json::array Listing::take_kept() {
    json::array out;
    for (const std::size_t link : links) {
        auto& list = items.at(link);
        const auto& m = marks.at(link);
        for (std::size_t j = 0; j < list.size(); ++j) {
            if (list[j].is_object() && (j >= m.size() || m[j] == Mark::keep)) {
                out.push_back(std::move(list[j]));
            }
        }
    }
    return out;
}

RequestChain::RequestChain(std::vector<std::unique_ptr<RequestFilter>> filters, ChainSink& sink)
    : filters_(std::move(filters)), sink_(sink) {}

void RequestChain::start(const std::shared_ptr<Exchange>& x) {
    x->position = 0;
    run(x);
}

void RequestChain::resume(const std::shared_ptr<Exchange>& x, Step step) {
    if (step.kind == Step::Kind::next) {
        ++x->position;
        run(x);
        return;
    }
    stop(*x, std::move(step));
}

void RequestChain::run(const std::shared_ptr<Exchange>& x) {
    for (; x->position < filters_.size(); ++x->position) {
        Step step = filters_[x->position]->on_request(x, *this);
        if (step.kind != Step::Kind::next) {
            stop(*x, std::move(step));
            return;
        }
    }
    // The last filter hands every request on; a chain that lets one fall
    // off its end is a bug, answered rather than left waiting.
    stop(*x, Step::deny(mcp::code::internal_error, "the gateway did not handle the request"));
}

void RequestChain::stop(const Exchange& x, Step step) {
    if (step.kind == Step::Kind::done) {
        return;  // the filter handed it on (and noted it first)
    }
    sink_.note(x);
    if (step.kind == Step::Kind::deny) {
        sink_.refuse(x, std::move(step));
    }
}

std::vector<std::string_view> RequestChain::names() const {
    std::vector<std::string_view> out;
    out.reserve(filters_.size());
    for (const auto& f : filters_) {
        out.push_back(f->name());
    }
    return out;
}

ListChain::ListChain(std::vector<std::unique_ptr<ListFilter>> filters)
    : filters_(std::move(filters)) {}

json::object ListChain::run(Listing& listing) {
    for (std::size_t i = 0; i < listing.items.size(); ++i) {
        listing.marks.at(i).resize(listing.items[i].size(), Listing::Mark::keep);
    }
    for (const auto& f : filters_) {
        f->on_items(listing);
    }
    if (!listing.served) {
        return {};
    }
    json::object result{{listing.spec->key, listing.take_kept()}};
    for (const auto& f : filters_) {
        f->on_result(listing, result);
    }
    return result;
}

std::vector<std::string_view> ListChain::names() const {
    std::vector<std::string_view> out;
    out.reserve(filters_.size());
    for (const auto& f : filters_) {
        out.push_back(f->name());
    }
    return out;
}

}  // namespace pqmcp::gateway
