// `pqmcp openapi inspect SPEC` (the tools an OpenAPI description becomes, and
// what was left out and why) and `pqmcp openapi policy SPEC` (a starting
// policy for them). docs/openapi.md.
#include <iostream>

#include <boost/json.hpp>

#include "commands.hpp"
#include "pqmcp/openapi/openapi.hpp"

namespace pqmcp::cli {
namespace {

namespace json = boost::json;

struct OpenApiArgs {
    std::string spec;
    std::string upstream = "api";
    std::string separator = "__";
    std::vector<std::string> tags;
    std::vector<std::string> paths;
    std::vector<std::string> methods;
    std::vector<std::string> operations;
    std::vector<std::string> exclude_tags;
    std::vector<std::string> exclude_paths;
    std::vector<std::string> exclude_methods;
    std::vector<std::string> exclude_operations;
    std::size_t max_tools = 128;
    std::size_t name_max_length = 64;
    std::size_t max_spec_bytes = 16U << 20U;
    bool no_output_schema = false;
    bool json = false;
};

openapi::Options options_of(const OpenApiArgs& a) {
    openapi::Options o;
    o.include = {a.tags, a.paths, a.methods, a.operations};
    o.exclude = {a.exclude_tags, a.exclude_paths, a.exclude_methods, a.exclude_operations};
    o.max_tools = a.max_tools;
    o.name_max_length = a.name_max_length;
    o.prefix_length = a.upstream.size() + a.separator.size();
    o.output_schema = !a.no_output_schema;
    o.limits.max_bytes = a.max_spec_bytes;
    return o;
}

int run_inspect(const OpenApiArgs& a) {
    auto catalog = openapi::load(a.spec, options_of(a));
    if (!catalog) {
        std::cerr << "pqmcp openapi inspect: " << catalog.error().message() << "\n";
        return k_exit_error;
    }
    const auto& c = *catalog;
    if (a.json) {
        json::array tools;
        for (const auto& op : c.operations) {
            json::object t = op.tool_json();
            t["name"] = a.upstream + a.separator + op.tool;
            t["x-pqmcp"] = json::object{{"method", op.method},
                                        {"path", op.path},
                                        {"operationId", op.operation_id},
                                        {"pointer", op.pointer}};
            tools.push_back(std::move(t));
        }
        json::array warnings;
        for (const auto& w : c.warnings) {
            warnings.push_back(json::object{{"pointer", w.pointer}, {"message", w.message}});
        }
        std::cout << json::serialize(
                         json::object{{"spec", a.spec},
                                      {"openapi", c.spec_version},
                                      {"title", c.title},
                                      {"version", c.api_version},
                                      {"servers", json::value_from(c.servers)},
                                      {"counts", json::object{{"operations", c.operations_read},
                                                              {"tools", c.operations.size()},
                                                              {"filtered_out", c.filtered_out},
                                                              {"over_max_tools", c.over_limit},
                                                              {"skipped", c.skipped},
                                                              {"documents", c.documents}}},
                                      {"tools", std::move(tools)},
                                      {"warnings", std::move(warnings)}})
                  << "\n";
        return k_exit_ok;
    }
    std::cout << a.spec << ": " << (c.title.empty() ? "(untitled)" : c.title) << " "
              << c.api_version << ", OpenAPI " << c.spec_version << "\n";
    for (const auto& s : c.servers) {
        std::cout << "  server " << s << " (followed only with follow_servers: true)\n";
    }
    std::cout << c.operations_read << " operations: " << c.operations.size() << " tools, "
              << c.filtered_out << " left out by filters, " << c.over_limit << " beyond max_tools, "
              << c.skipped << " unusable\n\n";
    for (const auto& op : c.operations) {
        const auto* props = op.input_schema.if_contains("properties");
        std::string args;
        if (props != nullptr && props->is_object()) {
            for (const auto& [k, v] : props->as_object()) {
                args += (args.empty() ? "" : ", ") + std::string(k);
            }
        }
        std::cout << a.upstream << a.separator << op.tool << "  " << op.method << " " << op.path
                  << "  (" << args << ")" << (op.output_schema ? "  -> structured" : "") << "\n";
    }
    if (!c.warnings.empty()) {
        std::cout << "\nwarnings:\n";
        for (const auto& w : c.warnings) {
            std::cout << "  " << w.pointer << ": " << w.message << "\n";
        }
    }
    return c.operations.empty() ? k_exit_error : k_exit_ok;
}

int run_policy(const OpenApiArgs& a) {
    auto catalog = openapi::load(a.spec, options_of(a));
    if (!catalog) {
        std::cerr << "pqmcp openapi policy: " << catalog.error().message() << "\n";
        return k_exit_error;
    }
    std::cout << openapi::starting_policy(*catalog, a.upstream, a.separator);
    return k_exit_ok;
}

void add_common(CLI::App* cmd, OpenApiArgs& a) {
    cmd->add_option("SPEC", a.spec,
                    "the OpenAPI description (3.0, 3.1 or Swagger 2.0; JSON or YAML)")
        ->required();
    cmd->add_option("--upstream", a.upstream, "the upstream's name in the gateway (default api)");
    cmd->add_option("--separator", a.separator, "the gateway's namespace separator (default __)");
    cmd->add_option("--tag", a.tags, "only operations with this tag (glob; repeat for more)");
    cmd->add_option("--path", a.paths, "only operations on this path (glob)");
    cmd->add_option("--method", a.methods, "only operations with this method");
    cmd->add_option("--operation", a.operations, "only operations with this operationId (glob)");
    cmd->add_option("--exclude-tag", a.exclude_tags, "leave out operations with this tag");
    cmd->add_option("--exclude-path", a.exclude_paths, "leave out operations on this path");
    cmd->add_option("--exclude-method", a.exclude_methods, "leave out this method");
    cmd->add_option("--exclude-operation", a.exclude_operations, "leave out this operationId");
    cmd->add_option("--max-tools", a.max_tools, "at most this many tools (default 128)");
    cmd->add_option("--name-max-length", a.name_max_length,
                    "longest tool name, the upstream prefix included (default 64)");
    cmd->add_option("--max-spec-bytes", a.max_spec_bytes, "largest file read (default 16 MiB)");
    cmd->add_flag("--no-output-schema", a.no_output_schema, "no outputSchema for the tools");
}

}  // namespace

void add_openapi_commands(CLI::App& app, int& exit_code) {
    CLI::App* cmd =
        app.add_subcommand("openapi", "REST APIs as MCP tools from their OpenAPI descriptions");
    cmd->require_subcommand(1);
    auto inspect_args = std::make_shared<OpenApiArgs>();
    CLI::App* inspect = cmd->add_subcommand(
        "inspect", "The tools a description becomes, and what was left out and why");
    add_common(inspect, *inspect_args);
    inspect->add_flag("--json", inspect_args->json, "as JSON");
    inspect->callback([inspect_args, &exit_code] { exit_code = run_inspect(*inspect_args); });
    auto policy_args = std::make_shared<OpenApiArgs>();
    CLI::App* policy = cmd->add_subcommand(
        "policy", "A starting policy for its tools (reads allowed, writes asked, deletes denied)");
    add_common(policy, *policy_args);
    policy->callback([policy_args, &exit_code] { exit_code = run_policy(*policy_args); });
}

}  // namespace pqmcp::cli
