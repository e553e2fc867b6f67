// The poisoning scanner over every server's inventory, and the data each touches.
#include <algorithm>
#include <array>

#include <boost/json.hpp>

#include "steps.hpp"

namespace pqmcp::scan {

namespace json = boost::json;

namespace {

std::string string_member(const json::object& o, std::string_view key) {
    const auto* v = o.if_contains(key);
    return v != nullptr && v->is_string() ? std::string(v->get_string()) : std::string{};
}

struct KindList {
    std::string_view kind;          // as reported
    std::string_view scanner_kind;  // as the scanner knows it
    json::array gateway::Inventory::*items;
};

// Resources have no rules of their own: their strings go through the
// resource-template rules.
constexpr std::array<KindList, 4> k_kinds = {{
    {"tool", "tool", &gateway::Inventory::tools},
    {"prompt", "prompt", &gateway::Inventory::prompts},
    {"resourceTemplate", "resourceTemplate", &gateway::Inventory::resource_templates},
    {"resource", "resourceTemplate", &gateway::Inventory::resources},
}};

std::string item_name(const json::value& item) {
    if (!item.is_object()) {
        return {};
    }
    const auto& o = item.get_object();
    auto name = string_member(o, "name");
    return name.empty() ? string_member(o, "uri") : name;
}

}  // namespace

void scan_all(std::vector<ServerReport>& reports, const integrity::Scanner& scanner) {
    for (std::size_t i = 0; i < reports.size(); ++i) {
        ServerReport& r = reports[i];
        if (!r.inventory) {
            continue;
        }
        for (const auto& k : k_kinds) {
            integrity::ScanContext context;
            context.upstream = r.name;
            for (std::size_t j = 0; j < reports.size(); ++j) {
                if (j == i || !reports[j].inventory) {
                    continue;
                }
                for (const auto& other : (*reports[j].inventory).*(k.items)) {
                    context.others.push_back({reports[j].name, item_name(other)});
                }
            }
            for (const auto& item : (*r.inventory).*(k.items)) {
                if (!item.is_object()) {
                    continue;
                }
                for (auto& f : scanner.scan(item.get_object(), k.scanner_kind, context)) {
                    r.findings.push_back({std::string(k.kind), item_name(item), std::move(f)});
                }
            }
        }
        std::stable_sort(r.findings.begin(), r.findings.end(),
                         [](const ItemFinding& a, const ItemFinding& b) {
                             return a.finding.severity > b.finding.severity;
                         });
        json::array all;
        for (const auto& k : k_kinds) {
            for (const auto& item : (*r.inventory).*(k.items)) {
                all.push_back(item);
            }
        }
        r.data = classify_data(all);
    }
}

}  // namespace pqmcp::scan
