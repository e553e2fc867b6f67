#include "schema.hpp"

#include <spdlog/spdlog.h>

#include "pqmcp/mcp/protocol.hpp"

namespace pqmcp::gateway {

namespace json = boost::json;

const json::value* call_arguments(const mcp::Message& m) {
    const json::object* params = m.params();
    const json::value* arguments = params != nullptr ? params->if_contains("arguments") : nullptr;
    static const json::value k_no_arguments = json::object{};
    if (m.method == mcp::method::tools_call && arguments == nullptr) {
        return &k_no_arguments;
    }
    return arguments;
}

Step SchemaCheck::on_request(const std::shared_ptr<Exchange>& x, RequestChain& /*chain*/) {
    const mcp::Message& m = x->message;
    if (m.method != mcp::method::tools_call || !x->policy || !x->policy->schema_validation) {
        return Step::next();
    }
    std::string why = schemas_.check(m.name, *call_arguments(m));
    if (why.empty()) {
        return Step::next();
    }
    spdlog::info("session {}: {} refused: arguments do not match its inputSchema: {}", log_id_,
                 m.name, why);
    x->decision.disposition = Disposition::invalid;
    return Step::deny(mcp::code::invalid_params, "Invalid arguments for " + m.name + ": " + why);
}

void SchemaLearning::on_items(Listing& listing) {
    if (listing.spec->kind != ListKind::tools) {
        return;
    }
    listing.each([this](std::size_t, std::size_t, json::object& tool) {
        const auto* n = tool.if_contains("name");
        if (n != nullptr && n->is_string()) {
            schemas_.learn(std::string(n->get_string()), tool);
        }
    });
}

}  // namespace pqmcp::gateway
