#include "namespacing.hpp"

#include <spdlog/spdlog.h>

#include "pqmcp/transport/http_util.hpp"

namespace pqmcp::gateway {

namespace json = boost::json;

void Namespacing::on_items(Listing& listing) {
    switch (listing.spec->kind) {
        case ListKind::tools:
        case ListKind::prompts:
            prefix(listing);
            return;
        case ListKind::resources:
            resources(listing);
            return;
        case ListKind::templates:
            templates(listing);
            return;
    }
}

void Namespacing::prefix(Listing& listing) {
    const std::string_view key = listing.spec->key;
    std::map<std::string, std::string> seen;  // gateway name -> upstream
    std::map<std::string, std::string> raw;   // upstream's own name -> upstream
    listing.each([&](std::size_t link, std::size_t j, json::object& o) {
        const auto* n = o.if_contains("name");
        if (n == nullptr || !n->is_string()) {
            listing.mark(link, j, Listing::Mark::dropped);
            return;
        }
        const std::string& upstream = upstreams_.name(link);
        const std::string own(n->get_string());
        const std::string name = upstreams_.prefix(link) + own;
        if (const auto r = raw.find(own); r != raw.end() && r->second != upstream) {
            spdlog::info(
                "session {}: {} \"{}\" exists on upstreams {} and {} (kept apart by "
                "their prefixes)",
                log_id_, key, own, r->second, upstream);
        }
        raw.emplace(own, upstream);
        if (const auto s = seen.find(name); s != seen.end()) {
            spdlog::warn(
                "session {}: name collision: {} \"{}\" of upstream {} hides the one of "
                "upstream {}; only the first is listed",
                log_id_, key, name, s->second, upstream);
            listing.mark(link, j, Listing::Mark::dropped);
            return;
        }
        seen.emplace(name, upstream);
        o["name"] = name;
    });
}

void Namespacing::resources(Listing& listing) {
    if (listing.served) {
        routes_.owner.clear();
    }
    // Withheld resources keep their owner: a read of one is refused as
    // blocked rather than unknown.
    listing.each(
        [&](std::size_t link, std::size_t j, json::object& o) {
            const auto* u = o.if_contains("uri");
            if (u == nullptr || !u->is_string()) {
                listing.mark(link, j, Listing::Mark::dropped);
                return;
            }
            auto normal = transport::normalize_resource_uri(u->get_string());
            const std::string uri = normal ? *normal : std::string(u->get_string());
            if (const auto owner = routes_.owner.find(uri); owner != routes_.owner.end()) {
                spdlog::warn(
                    "session {}: resource {} is offered by upstreams {} and {}; reads "
                    "go to the first",
                    log_id_, uri, upstreams_.name(owner->second), upstreams_.name(link));
                listing.mark(link, j, Listing::Mark::dropped);
                return;
            }
            routes_.owner.emplace(uri, link);
        },
        true);
}

void Namespacing::templates(Listing& listing) {
    if (listing.served) {
        routes_.by_template.clear();
    }
    listing.each([&](std::size_t link, std::size_t j, json::object& o) {
        const auto* t = o.if_contains("uriTemplate");
        if (t == nullptr || !t->is_string()) {
            listing.mark(link, j, Listing::Mark::dropped);
            return;
        }
        const std::string_view tmpl = t->get_string();
        routes_.by_template.emplace_back(std::string(tmpl.substr(0, tmpl.find('{'))), link);
    });
}

}  // namespace pqmcp::gateway
