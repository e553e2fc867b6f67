// What an MCP server offers, fetched once without running the gateway: start
// the server (or connect to it), initialize it, read its tools, prompts,
// resources and resource templates, stop it. For `pqmcp scan --connect`.
#pragma once

#include <chrono>
#include <cstddef>
#include <filesystem>
#include <string>
#include <system_error>
#include <vector>

#include <boost/json/array.hpp>
#include <boost/json/object.hpp>

#include "pqmcp/core/error.hpp"
#include "pqmcp/gateway/config.hpp"

namespace pqmcp::gateway {

enum class InventoryErrc {
    start_failed = 1,  // the server did not start, or refused or failed initialize
    list_failed,       // a list request was answered with an error (the detail names it)
    timeout,           // a step took longer than the timeout (the detail names the step)
};

[[nodiscard]] const std::error_category& inventory_category() noexcept;
[[nodiscard]] std::error_code make_error_code(InventoryErrc e) noexcept;

struct Inventory {
    std::string protocol_version;      // as negotiated in initialize
    boost::json::object server_info;   // the server's "serverInfo"
    boost::json::object capabilities;  // the server's "capabilities"
    std::string instructions;
    boost::json::array tools;  // definitions as the server sent them, every page
    boost::json::array prompts;
    boost::json::array resources;
    boost::json::array resource_templates;
    // Lists cut short (more pages than max_pages, a cursor repeated) and list
    // methods a server offers in its capabilities but does not implement.
    std::vector<std::string> notes;
};

struct InventoryOptions {
    // Each step: starting and initializing the server, and each page of each list.
    std::chrono::milliseconds timeout{30'000};
    std::size_t max_pages = 100;   // per list; more is a note, not an error
    std::size_t max_parallel = 4;  // fetch_inventories: servers running at once
    std::string client_name = "pqmcp-scan";
    std::string client_version = "0";
    // stdio servers run in the sandbox a gateway gives them (docs/security.md);
    // `protect` lists paths none of them may reach (the user's pqmcp identities).
    bool sandbox = true;
    std::vector<std::filesystem::path> protect;
};

// Blocking (runs an io_context of its own). The lists fetched are those the
// server's capabilities offer (tools, prompts, resources: resources/list and
// resources/templates/list), following nextCursor. The server is stopped
// before this returns (stdio: stdin closed, SIGTERM, SIGKILL, and reaped).
// stdio and plain http:// upstreams; an https upstream fails (start_failed):
// trusting one needs the gateway's pins or CA.
[[nodiscard]] Result<Inventory> fetch_inventory(const UpstreamConfig& upstream,
                                                std::chrono::milliseconds timeout);
[[nodiscard]] Result<Inventory> fetch_inventory(const UpstreamConfig& upstream,
                                                const InventoryOptions& options);
// Several servers, at most options.max_parallel at once; one result each, in order.
[[nodiscard]] std::vector<Result<Inventory>> fetch_inventories(
    const std::vector<UpstreamConfig>& upstreams, const InventoryOptions& options);

}  // namespace pqmcp::gateway

template <>
struct std::is_error_code_enum<pqmcp::gateway::InventoryErrc> : std::true_type {};
