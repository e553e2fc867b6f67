// `--tools FILE.json`: a saved list scanned without its server.
#include <fstream>
#include <sstream>

#include <boost/json.hpp>

#include "steps.hpp"

namespace pqmcp::scan {

namespace json = boost::json;
namespace fs = std::filesystem;

namespace {

constexpr std::uint64_t k_max_tools_file = 64U << 20U;

}  // namespace

ServerReport offline_report(const std::string& file) {
    ServerReport r;
    std::error_code ec;
    r.tools_file = fs::absolute(file, ec);
    r.name = fs::path(file).stem().string();
    r.transport = std::string(k_transport_offline);
    r.inventory_status = "offline";
    const auto failed = [&r](std::string why) {
        r.inventory_status = "failed";
        r.inventory_error = r.tools_file.string() + ": " + std::move(why);
        return r;
    };
    const auto size = fs::file_size(file, ec);
    if (ec) {
        return failed("cannot be read: " + ec.message());
    }
    if (size > k_max_tools_file) {
        return failed("larger than 64 MiB");
    }
    std::ifstream in(file, std::ios::binary);
    std::ostringstream text;
    text << in.rdbuf();
    boost::system::error_code jec;
    json::value v = json::parse(text.str(), jec);
    if (jec) {
        return failed("not JSON: " + jec.message());
    }
    // A JSON-RPC response: its result.
    if (v.is_object()) {
        if (auto* result = v.get_object().if_contains("result");
            result != nullptr && result->is_object()) {
            json::value inner = *result;
            v = std::move(inner);
        }
    }
    gateway::Inventory inv;
    if (v.is_array()) {
        inv.tools = v.get_array();
    } else if (v.is_object()) {
        const json::object& o = v.get_object();
        bool any = false;
        const auto take = [&o, &any](std::string_view key, json::array& into) {
            if (const auto* a = o.if_contains(key); a != nullptr && a->is_array()) {
                into = a->get_array();
                any = true;
            }
        };
        take("tools", inv.tools);
        take("prompts", inv.prompts);
        take("resources", inv.resources);
        take("resourceTemplates", inv.resource_templates);
        if (!any) {
            return failed(
                "expected a tools/list result ({\"tools\": [...]}), a JSON-RPC response with "
                "one, or an array of tools");
        }
    } else {
        return failed("expected a JSON object or array");
    }
    r.inventory = std::move(inv);
    return r;
}

}  // namespace pqmcp::scan
