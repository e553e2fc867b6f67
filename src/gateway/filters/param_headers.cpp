#include "param_headers.hpp"

#include <spdlog/spdlog.h>

#include "pqmcp/mcp/protocol.hpp"
#include "schema.hpp"

namespace pqmcp::gateway {

namespace json = boost::json;

void ParamHeaderBook::learn(const std::string& tool, Marks marks) {
    if (marks_.size() >= k_max_tools && !marks_.contains(tool)) {
        return;
    }
    marks_.insert_or_assign(tool, std::move(marks));
}

const ParamHeaderBook::Marks* ParamHeaderBook::find(const std::string& tool) const {
    const auto it = marks_.find(tool);
    return it == marks_.end() ? nullptr : &it->second;
}

Step ParamHeaderCheck::on_request(const std::shared_ptr<Exchange>& x, RequestChain& /*chain*/) {
    const mcp::Message& m = x->message;
    // Only a request that came as 2026-07-28 over HTTP has the headers to check.
    if (m.method != mcp::method::tools_call || !m.param_headers) {
        return Step::next();
    }
    const auto* marks = book_.find(m.name);
    if (marks == nullptr) {
        return Step::next();  // never listed: the integrity filter answers for it
    }
    if (!*marks) {
        x->decision.disposition = Disposition::invalid;
        return Step::deny(
            mcp::code::invalid_params,
            "Unknown tool: " + m.name + " (its definition is invalid: " + marks->error() + ")");
    }
    // Streamable HTTP (2026-07-28), Server Behavior for Custom Headers: "Any
    // server that processes the message body **MUST** validate that encoded
    // header values, after decoding if Base64-encoded, match the
    // corresponding values in the request body. Servers **MUST** reject
    // requests with a `400 Bad Request` HTTP status and JSON-RPC error code
    // `-32020` (`HeaderMismatch`) if any validation fails." A value in the
    // body without its header: "Server MUST reject the request".
    const std::string why =
        transport::check_param_headers(**marks, *call_arguments(m), *m.param_headers);
    if (why.empty()) {
        return Step::next();
    }
    spdlog::info("session {}: {} refused: {}", log_id_, m.name, why);
    x->decision.disposition = Disposition::invalid;
    return Step::deny(mcp::code::header_mismatch, "HeaderMismatch: " + why);
}

void ParamHeaderLearning::on_items(Listing& listing) {
    if (listing.spec->kind != ListKind::tools) {
        return;
    }
    listing.each([this, &listing](std::size_t link, std::size_t index, json::object& tool) {
        const auto* n = tool.if_contains("name");
        if (n == nullptr || !n->is_string()) {
            return;
        }
        const std::string name(n->get_string());
        const auto* schema = tool.if_contains("inputSchema");
        auto marks =
            schema != nullptr ? transport::param_headers_of(*schema) : ParamHeaderBook::Marks{};
        if (!marks) {
            // "Clients using the Streamable HTTP transport **MUST** reject
            // tool definitions where any `x-mcp-header` value violates these
            // constraints" (by leaving the tool out of tools/list; "Clients
            // **SHOULD** log a warning ... including the tool name and the
            // reason"). The gateway's own clients would, so it does first.
            spdlog::warn("session {}: tool {} withheld: {}", log_id_, name, marks.error());
            listing.mark(link, index, Listing::Mark::withheld);
        }
        book_.learn(name, std::move(marks));
    });
}

}  // namespace pqmcp::gateway
