#include "route.hpp"

#include <spdlog/spdlog.h>

#include "pqmcp/mcp/protocol.hpp"
#include "pqmcp/transport/http_util.hpp"

namespace pqmcp::gateway {

namespace json = boost::json;

std::string RouteFilter::example_prefix() const {
    return upstreams_.count() == 0 ? std::string("name") : upstreams_.prefix(0);
}

Step RouteFilter::on_request(const std::shared_ptr<Exchange>& x, RequestChain& /*chain*/) {
    mcp::Message& m = x->message;
    const std::string& method = m.method;
    if (method == mcp::method::tools_list || method == mcp::method::prompts_list ||
        method == mcp::method::resources_list || method == mcp::method::resources_templates_list ||
        method == mcp::method::logging_set_level) {
        return Step::next();  // every upstream's, merged or fanned out
    }
    if (method == mcp::method::tools_call || method == mcp::method::prompts_get) {
        const bool tool = method == mcp::method::tools_call;
        if (m.name.empty()) {
            return Step::deny(mcp::code::invalid_params, "params.name is required");
        }
        auto route = router_.route_name(m.name);
        if (!route) {
            return Step::deny(mcp::code::invalid_params,
                              std::string(tool ? "Unknown tool: " : "Unknown prompt: ") + m.name +
                                  " (names carry their upstream's prefix, e.g. " +
                                  example_prefix() + "...)");
        }
        x->link = route->first;
        x->own_name = std::move(route->second);
        return Step::next();
    }
    if (method == mcp::method::resources_read || method == mcp::method::resources_subscribe ||
        method == mcp::method::resources_unsubscribe) {
        return route_resource(*x);
    }
    if (method == mcp::method::completion_complete) {
        return route_completion(*x);
    }
    // Anything else: transparent with one upstream, unknown with several.
    if (upstreams_.count() == 1) {
        x->link = 0;
        return Step::next();
    }
    return Step::deny(mcp::code::method_not_found, "Method not found: " + method);
}

Step RouteFilter::route_resource(Exchange& x) const {
    mcp::Message& m = x.message;
    if (m.uri.empty()) {
        return Step::deny(mcp::code::invalid_params, "params.uri is required");
    }
    // Policies, routing and the upstream see one spelling of a URI
    // (file:///public/../etc/passwd is file:///etc/passwd).
    auto normal = transport::normalize_resource_uri(m.uri);
    if (!normal) {
        x.decision.disposition = Disposition::invalid;
        return Step::deny(mcp::code::invalid_params,
                          "Invalid resource URI: " + normal.error().detail);
    }
    if (*normal != m.uri) {
        spdlog::debug("session {}: resource URI {} normalized to {}", log_id_, m.uri, *normal);
        m.uri = *normal;
        m.params()->at("uri") = m.uri;
    }
    const auto link = router_.route_uri(m.uri);
    if (!link) {
        return Step::deny(mcp::code::invalid_params,
                          "Unknown resource: " + m.uri + " (list resources first)");
    }
    x.link = *link;
    return Step::next();
}

Step RouteFilter::route_completion(Exchange& x) const {
    json::object* params = x.message.params();
    json::value* ref = params != nullptr ? params->if_contains("ref") : nullptr;
    if (ref == nullptr || !ref->is_object()) {
        return Step::deny(mcp::code::invalid_params, "params.ref is required");
    }
    json::object& r = ref->as_object();
    const auto* name = r.if_contains("name");
    const auto* uri = r.if_contains("uri");
    if (name != nullptr && name->is_string()) {
        auto route = router_.route_name(name->get_string());
        if (!route) {
            return Step::deny(mcp::code::invalid_params,
                              "Unknown prompt: " + std::string(name->get_string()));
        }
        r["name"] = route->second;
        x.link = route->first;
        return Step::next();
    }
    if (uri != nullptr && uri->is_string()) {
        const auto link = router_.route_uri(uri->get_string());
        if (!link) {
            return Step::deny(mcp::code::invalid_params,
                              "Unknown resource: " + std::string(uri->get_string()));
        }
        x.link = *link;
        return Step::next();
    }
    return Step::deny(mcp::code::invalid_params, "params.ref needs a name or a uri");
}

}  // namespace pqmcp::gateway
