// Discovery for `pqmcp scan`: the well-known locations, every client format
// (tests/data/integrity/configs), malformed files with their exact errors,
// variables, bridges, redaction, data classes and the HNDL rating.
#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <sstream>

#include <gtest/gtest.h>
#include <boost/json.hpp>

#include "../common/temp_dir.hpp"
#include "pqmcp/scan/discovery.hpp"
#include "test_paths.hpp"

namespace {

namespace fs = std::filesystem;
namespace json = boost::json;
using namespace pqmcp::scan;
using Strings = std::vector<std::string>;

bool has_substr(const std::string& text, const std::string& part) {
    return text.find(part) != std::string::npos;
}

const fs::path k_configs = fs::path(pqmcp::test_paths::test_data_dir()) / "integrity" / "configs";

std::string read(const fs::path& p) {
    std::ifstream in(p, std::ios::binary);
    std::ostringstream out;
    out << in.rdbuf();
    return out.str();
}

ConfigLocation at(const std::string& file, std::string client = "config",
                  ConfigFormat format = ConfigFormat::automatic, std::string scope = "user") {
    return ConfigLocation{k_configs / file, std::move(client), format, std::move(scope), {}, false};
}

ParsedConfig parse_ok(const ConfigLocation& where) {
    auto parsed = parse_client_config(read(where.path), where);
    EXPECT_TRUE(parsed.has_value()) << (parsed ? "" : parsed.error().detail);
    return parsed ? *parsed : ParsedConfig{};
}

const DiscoveredServer& named(const ParsedConfig& c, const std::string& name) {
    const auto it = std::find_if(c.servers.begin(), c.servers.end(),
                                 [&name](const DiscoveredServer& s) { return s.name == name; });
    if (it == c.servers.end()) {
        throw std::runtime_error("no server " + name);
    }
    return *it;
}

std::vector<std::string> names(const ParsedConfig& c) {
    std::vector<std::string> out;
    for (const auto& s : c.servers) {
        out.push_back(s.name);
    }
    return out;
}

// A file under a temporary directory, with its parent directories.
void write(const pqmcp::test::TempDir& dir, const fs::path& relative, const std::string& text) {
    fs::create_directories((dir.path() / relative).parent_path());
    std::ofstream(dir.path() / relative, std::ios::binary) << text;
}

// ---- locations -------------------------------------------------------------------

TEST(Locations, EveryClientInItsPlace) {
    const auto locations = well_known_locations("/h", "/p");
    const auto has = [&locations](const std::string& path, const std::string& client,
                                  ConfigFormat format) {
        return std::any_of(locations.begin(), locations.end(), [&](const ConfigLocation& l) {
            return l.path == fs::path(path) && l.client == client && l.format == format;
        });
    };
    EXPECT_TRUE(has("/h/.config/Claude/claude_desktop_config.json", "claude-desktop",
                    ConfigFormat::mcp_servers));
    EXPECT_TRUE(has("/h/Library/Application Support/Claude/claude_desktop_config.json",
                    "claude-desktop", ConfigFormat::mcp_servers));
    EXPECT_TRUE(has("/h/.claude.json", "claude-code", ConfigFormat::claude_code));
    EXPECT_TRUE(has("/p/.mcp.json", "claude-code", ConfigFormat::mcp_servers));
    EXPECT_TRUE(has("/h/.cursor/mcp.json", "cursor", ConfigFormat::mcp_servers));
    EXPECT_TRUE(has("/p/.cursor/mcp.json", "cursor", ConfigFormat::mcp_servers));
    EXPECT_TRUE(has("/p/.vscode/mcp.json", "vscode", ConfigFormat::vscode));
    EXPECT_TRUE(has("/h/.config/Code/User/mcp.json", "vscode", ConfigFormat::vscode));
    EXPECT_TRUE(
        has("/h/Library/Application Support/Code/User/mcp.json", "vscode", ConfigFormat::vscode));
    EXPECT_TRUE(has("/h/.config/Code/User/settings.json", "vscode", ConfigFormat::vscode_settings));
    EXPECT_TRUE(has("/h/.codeium/windsurf/mcp_config.json", "windsurf", ConfigFormat::mcp_servers));
    EXPECT_TRUE(has("/h/.gemini/settings.json", "gemini-cli", ConfigFormat::mcp_servers));
    EXPECT_TRUE(has("/p/.gemini/settings.json", "gemini-cli", ConfigFormat::mcp_servers));
    EXPECT_TRUE(has("/h/.config/zed/settings.json", "zed", ConfigFormat::zed));
    EXPECT_TRUE(has("/p/.zed/settings.json", "zed", ConfigFormat::zed));
    EXPECT_TRUE(has("/h/.continue/config.yaml", "continue", ConfigFormat::continue_yaml));
    EXPECT_TRUE(has("/h/.copilot/mcp-config.json", "copilot-cli", ConfigFormat::mcp_servers));
    for (const auto& l : locations) {
        if (l.path.string().starts_with("/p/")) {
            EXPECT_EQ(l.scope, "project") << l.path;
            EXPECT_EQ(l.workspace, fs::path("/p"));
        } else {
            EXPECT_EQ(l.scope, "user") << l.path;
        }
    }
}

TEST(Locations, ProjectInHomeIsListedOnce) {
    const auto locations = well_known_locations("/h", "/h");
    std::vector<std::string> paths;
    paths.reserve(locations.size());
    for (const auto& l : locations) {
        paths.push_back(l.path.string());
    }
    std::sort(paths.begin(), paths.end());
    EXPECT_EQ(std::adjacent_find(paths.begin(), paths.end()), paths.end());
    const auto cursor = std::count(paths.begin(), paths.end(), "/h/.cursor/mcp.json");
    EXPECT_EQ(cursor, 1);
}

TEST(Locations, NoHomeNoProjectNothing) {
    EXPECT_TRUE(well_known_locations({}, {}).empty());
}

// ---- formats ---------------------------------------------------------------------

TEST(Formats, ClaudeDesktop) {
    const auto c =
        parse_ok(at("claude_desktop_config.json", "claude-desktop", ConfigFormat::mcp_servers));
    EXPECT_TRUE(c.problems.empty());
    EXPECT_EQ(names(c), (Strings{"filesystem", "github"}));
    const auto& fs_server = named(c, "filesystem");
    EXPECT_EQ(fs_server.transport, Transport::stdio);
    EXPECT_EQ(fs_server.command, "npx");
    EXPECT_EQ(fs_server.args,
              (Strings{"-y", "@modelcontextprotocol/server-filesystem", "/home/alice/Documents"}));
    EXPECT_EQ(fs_server.client, "claude-desktop");
    EXPECT_EQ(fs_server.scope, "user");
    const auto& github = named(c, "github");
    EXPECT_EQ(github.env_names(), (Strings{"GITHUB_PERSONAL_ACCESS_TOKEN"}));
    EXPECT_EQ(github.env.front().second, "sample-secret-github");  // kept for starting it
}

TEST(Formats, ClaudeCodeUserAndPerProjectServers) {
    const auto c = parse_ok(at("claude.json", "claude-code", ConfigFormat::claude_code));
    EXPECT_EQ(names(c), (Strings{"notion", "postgres"}));
    const auto& notion = named(c, "notion");
    EXPECT_EQ(notion.transport, Transport::http);
    EXPECT_EQ(notion.url, "https://mcp.notion.example/mcp");
    EXPECT_EQ(notion.header_names(), (Strings{"Authorization"}));
    EXPECT_EQ(notion.scope, "user");
    const auto& pg = named(c, "postgres");
    EXPECT_EQ(pg.scope, "local /home/alice/src/shop");
    EXPECT_EQ(pg.workspace, fs::path("/home/alice/src/shop"));
    EXPECT_EQ(pg.transport, Transport::stdio);
    EXPECT_EQ(c.problems,
              (Strings{"projects./home/alice/src/broken.mcpServers: expected an object"}));
}

TEST(Formats, ClaudeCodeIsDetected) {
    const auto c = parse_ok(at("claude.json"));
    EXPECT_EQ(c.servers.size(), 2U);
}

TEST(Formats, ProjectMcpJsonKeepsVariablesAsWritten) {
    const auto c =
        parse_ok(at("dot-mcp.json", "claude-code", ConfigFormat::mcp_servers, "project"));
    const auto& api = named(c, "api");
    EXPECT_EQ(api.transport, Transport::sse);
    EXPECT_EQ(api.url, "${API_BASE_URL:-https://api.example.com}/sse");
    EXPECT_EQ(api.scope, "project");
    EXPECT_EQ(named(c, "local-tools").command, "${HOME}/bin/tools-server");
}

TEST(Formats, CursorInfersTransportFromUrl) {
    const auto c = parse_ok(at("cursor-mcp.json", "cursor", ConfigFormat::mcp_servers));
    EXPECT_EQ(named(c, "browser").transport, Transport::stdio);
    EXPECT_EQ(named(c, "linear").transport, Transport::http);
    EXPECT_EQ(named(c, "legacy").transport, Transport::sse);
    EXPECT_EQ(named(c, "remote-bridge").transport, Transport::stdio);
}

TEST(Formats, VsCodeWithCommentsInputsAndEnvFile) {
    const auto c = parse_ok(at("vscode-mcp.json", "vscode", ConfigFormat::vscode, "project"));
    EXPECT_TRUE(c.problems.empty());
    EXPECT_EQ(names(c), (Strings{"perplexity", "github", "fs"}));
    const auto& p = named(c, "perplexity");
    EXPECT_EQ(p.inputs, (Strings{"perplexity-key"}));
    EXPECT_EQ(p.notes, (Strings{"more environment from ${workspaceFolder}/.env (not read)"}));
    EXPECT_EQ(named(c, "github").transport, Transport::http);
    EXPECT_EQ(named(c, "fs").transport, Transport::stdio);
}

TEST(Formats, VsCodeSettings) {
    const auto c = parse_ok(at("vscode-settings.json", "vscode", ConfigFormat::vscode_settings));
    EXPECT_EQ(names(c), (Strings{"time"}));
    // Detected too.
    EXPECT_EQ(names(parse_ok(at("vscode-settings.json"))), (Strings{"time"}));
}

TEST(Formats, WindsurfServerUrlAndDisabled) {
    const auto c = parse_ok(at("windsurf-mcp_config.json", "windsurf", ConfigFormat::mcp_servers));
    EXPECT_EQ(named(c, "remote").transport, Transport::http);
    EXPECT_EQ(named(c, "remote").url, "https://mcp.windsurf.example/mcp");
    EXPECT_EQ(named(c, "remote-sse").transport, Transport::sse);
    EXPECT_TRUE(named(c, "git").disabled);
    EXPECT_FALSE(named(c, "remote").disabled);
}

TEST(Formats, GeminiHttpUrlIsStreamableAndUrlIsSse) {
    const auto c = parse_ok(at("gemini-settings.json", "gemini-cli", ConfigFormat::mcp_servers));
    EXPECT_EQ(named(c, "streaming").transport, Transport::http);
    EXPECT_EQ(named(c, "streaming").url, "https://stream.example.com/mcp");
    EXPECT_EQ(named(c, "events").transport, Transport::sse);
    EXPECT_EQ(named(c, "python-tools").cwd, "./mcp-tools/python");
    EXPECT_EQ(named(c, "python-tools").env_names(), (Strings{"API_KEY"}));
}

TEST(Formats, ZedBothCommandFormsExtensionsAndRemote) {
    const auto c = parse_ok(at("zed-settings.json", "zed", ConfigFormat::zed));
    EXPECT_TRUE(c.problems.empty());
    const auto& local = named(c, "local-mcp-server");
    EXPECT_EQ(local.command, "some-command");
    EXPECT_EQ(local.args, (Strings{"arg-1", "arg-2"}));
    const auto& older = named(c, "older");
    EXPECT_EQ(older.command, "/usr/local/bin/older-server");
    EXPECT_EQ(older.args, (Strings{"--stdio"}));
    EXPECT_EQ(older.env_names(), (Strings{"TOKEN"}));
    const auto& ext = named(c, "from-extension");
    EXPECT_TRUE(ext.command.empty());
    EXPECT_TRUE(ext.disabled);
    ASSERT_EQ(ext.notes.size(), 1U);
    EXPECT_TRUE(has_substr(ext.notes.front(), "Zed extension"));
    EXPECT_EQ(named(c, "remote-mcp-server").transport, Transport::http);
}

TEST(Formats, ContinueYaml) {
    const auto c = parse_ok(at("continue-config.yaml", "continue", ConfigFormat::continue_yaml));
    EXPECT_EQ(names(c), (Strings{"SQLite MCP", "Remote"}));
    EXPECT_EQ(named(c, "SQLite MCP").args, (Strings{"-y", "mcp-sqlite", "/home/alice/data.db"}));
    EXPECT_EQ(named(c, "Remote").transport, Transport::http);
    EXPECT_EQ(c.problems, (Strings{"mcpServers[2]: name: expected a string"}));
    // .yaml is recognised without a format.
    EXPECT_EQ(parse_ok(at("continue-config.yaml")).servers.size(), 2U);
}

// ---- malformed files: the specific error ------------------------------------------------

TEST(Malformed, SyntaxErrorNamesFileLineAndColumn) {
    const auto where = at("malformed-syntax.json");
    const auto parsed = parse_client_config(read(where.path), where);
    ASSERT_FALSE(parsed);
    EXPECT_EQ(parsed.error().code, DiscoveryErrc::malformed);
    EXPECT_EQ(parsed.error().detail, where.path.string() + ":4:5: syntax error");
}

TEST(Malformed, WrongShapeOfTheServersKey) {
    const auto where = at("malformed-shape.json", "cursor", ConfigFormat::mcp_servers);
    const auto parsed = parse_client_config(read(where.path), where);
    ASSERT_FALSE(parsed);
    EXPECT_EQ(parsed.error().code, DiscoveryErrc::malformed);
    EXPECT_EQ(parsed.error().detail, where.path.string() + ": mcpServers: expected an object");
}

TEST(Malformed, BadEntriesAreSkippedOneByOne) {
    const auto c = parse_ok(at("malformed-entries.json", "cursor", ConfigFormat::mcp_servers));
    EXPECT_EQ(names(c), (Strings{"good"}));
    const std::string bad_type =
        "mcpServers.bad-type: type: unknown transport 'websocket' (stdio, http, sse)";
    EXPECT_EQ(c.problems, (Strings{"mcpServers.bad-args: args: expected an array of strings",
                                   "mcpServers.nothing: neither command nor url", bad_type,
                                   "mcpServers.not-object: expected an object",
                                   "mcpServers.http-no-url: type http, but no url",
                                   "mcpServers.bad-env: env.A: expected a string"}));
}

TEST(Malformed, YamlErrorNamesLineAndColumn) {
    const auto where = at("malformed-yaml.yaml", "continue", ConfigFormat::continue_yaml);
    const auto parsed = parse_client_config(read(where.path), where);
    ASSERT_FALSE(parsed);
    EXPECT_EQ(parsed.error().code, DiscoveryErrc::malformed);
    EXPECT_TRUE(has_substr(parsed.error().detail, where.path.string() + ":4:"))
        << parsed.error().detail;
}

TEST(Malformed, UnknownFileWithoutAFormat) {
    const auto where = at("unknown.json");
    const auto parsed = parse_client_config(read(where.path), where);
    ASSERT_FALSE(parsed);
    EXPECT_EQ(parsed.error().detail,
              where.path.string() +
                  ": no MCP servers in it (none of mcpServers, servers, mcp.servers, "
                  "context_servers, projects)");
    // A settings file of a known client without servers is simply empty.
    const auto known = at("unknown.json", "gemini-cli", ConfigFormat::mcp_servers);
    EXPECT_TRUE(parse_ok(known).servers.empty());
}

TEST(Malformed, NotAnObject) {
    const ConfigLocation where{"x.json", "config", ConfigFormat::automatic, "user", {}, false};
    const auto parsed = parse_client_config("[1, 2]", where);
    ASSERT_FALSE(parsed);
    EXPECT_EQ(parsed.error().detail, "x.json: expected an object at the top level");
}

// ---- discover(): files on disk ---------------------------------------------------------

TEST(Discover, ReadsWhatExistsAndReportsBadFilesWithoutStopping) {
    const pqmcp::test::TempDir home;
    const pqmcp::test::TempDir project;
    write(home, ".cursor/mcp.json", read(k_configs / "cursor-mcp.json"));
    write(home, ".config/Claude/claude_desktop_config.json",
          read(k_configs / "malformed-syntax.json"));
    write(project, ".vscode/mcp.json", read(k_configs / "vscode-mcp.json"));
    write(project, ".continue/mcpServers/sqlite.yaml", read(k_configs / "continue-config.yaml"));
    write(project, ".continue/mcpServers/copied.json",
          read(k_configs / "claude_desktop_config.json"));
    write(project, ".continue/mcpServers/notes.txt", "not a config");

    const auto found = discover(well_known_locations(home.path(), project.path()));
    std::vector<std::string> sources;
    for (const auto& s : found.sources) {
        sources.push_back(fs::relative(s.path, s.path.string().starts_with(home.path().string())
                                                   ? home.path()
                                                   : project.path())
                              .string());
    }
    EXPECT_EQ(sources,
              (Strings{".cursor/mcp.json", ".vscode/mcp.json", ".continue/mcpServers/copied.json",
                       ".continue/mcpServers/sqlite.yaml"}));
    ASSERT_EQ(found.problems.size(), 2U);
    EXPECT_EQ(found.problems[0].message(),
              (home.path() / ".config/Claude/claude_desktop_config.json").string() +
                  ": 4:5: syntax error");
    EXPECT_EQ(found.problems[1].reason, "mcpServers[2]: name: expected a string");
    EXPECT_EQ(found.servers.size(), 4U + 3U + 2U + 2U);
    const auto vscode = std::find_if(found.servers.begin(), found.servers.end(),
                                     [](const DiscoveredServer& s) { return s.name == "fs"; });
    ASSERT_NE(vscode, found.servers.end());
    EXPECT_EQ(vscode->client, "vscode");
    EXPECT_EQ(vscode->scope, "project");
    EXPECT_EQ(vscode->workspace, project.path());
}

TEST(Discover, NothingThereIsNotAProblem) {
    const pqmcp::test::TempDir home;
    const auto found = discover(well_known_locations(home.path(), home.path()));
    EXPECT_TRUE(found.sources.empty());
    EXPECT_TRUE(found.problems.empty());
}

TEST(Discover, OversizedFileIsAProblem) {
    const pqmcp::test::TempDir home;
    write(home, ".cursor/mcp.json", std::string(2048, ' ') + "{}");
    const auto found = discover(well_known_locations(home.path(), {}), 1024);
    ASSERT_EQ(found.problems.size(), 1U);
    EXPECT_EQ(found.problems[0].reason, "larger than 1024 bytes; not read");
}

// ---- variables, bridges, hosts ---------------------------------------------------------

TEST(Variables, WhatClientsExpand) {
    const Variables v{"/home/a", "/work/proj",
                      [](const std::string& name) -> std::optional<std::string> {
                          if (name == "TOKEN") {
                              return "t0k";
                          }
                          if (name == "EMPTY") {
                              return "";
                          }
                          return std::nullopt;
                      }};
    EXPECT_EQ(expand_variables("${userHome}/x", v), "/home/a/x");
    EXPECT_EQ(expand_variables("${workspaceFolder}/a ${workspaceFolderBasename}", v),
              "/work/proj/a proj");
    EXPECT_EQ(expand_variables("a${/}b${pathSeparator}c", v), "a/b/c");
    EXPECT_EQ(expand_variables("Bearer ${env:TOKEN}", v), "Bearer t0k");
    EXPECT_EQ(expand_variables("[${env:UNSET}]", v), "[]");
    EXPECT_EQ(expand_variables("${TOKEN}", v), "t0k");
    EXPECT_EQ(expand_variables("${UNSET}", v), "${UNSET}");
    EXPECT_EQ(expand_variables("${UNSET:-https://d.example}/mcp", v), "https://d.example/mcp");
    EXPECT_EQ(expand_variables("${EMPTY:-fallback}", v), "fallback");
    EXPECT_EQ(expand_variables("${input:key}", v), "${input:key}");
    EXPECT_EQ(expand_variables("${not closed", v), "${not closed");
    EXPECT_EQ(expand_variables("$TOKEN ${} ${1x}", v), "$TOKEN ${} ${1x}");
}

TEST(Variables, ServerUsesItsOwnWorkspace) {
    DiscoveredServer s;
    s.command = "${workspaceFolder}/bin/server";
    s.args = {"${userHome}"};
    s.env = {{"K", "${env:TOKEN}"}};
    s.url = "";
    s.workspace = "/own";
    const auto e = expand_variables(
        s, Variables{"/h", "/default", [](const std::string&) { return std::string("v"); }});
    EXPECT_EQ(e.command, "/own/bin/server");
    EXPECT_EQ(e.args, (Strings{"/h"}));
    EXPECT_EQ(e.env.front().second, "v");
}

TEST(Bridges, RemoteUrlOfKnownRelays) {
    DiscoveredServer s;
    s.command = "npx";
    s.args = {"-y", "mcp-remote", "https://mcp.example.org/mcp"};
    EXPECT_EQ(bridge_url(s), "https://mcp.example.org/mcp");
    s.command = "/usr/local/bin/pqmcp";
    s.args = {"connect", "https://gw:8443/mcp", "--pin", "pq1x"};
    EXPECT_EQ(bridge_url(s), "https://gw:8443/mcp");
    s.command = "npx";
    s.args = {"-y", "supergateway", "--sse", "http://10.0.0.2:8000/sse"};
    EXPECT_EQ(bridge_url(s), "http://10.0.0.2:8000/sse");
    // A server that merely takes a URL is not a bridge.
    s.args = {"-y", "forgejo-mcp", "--url", "https://codeberg.example"};
    EXPECT_EQ(bridge_url(s), std::nullopt);
    s.transport = Transport::http;
    EXPECT_EQ(bridge_url(s), std::nullopt);
}

TEST(Hosts, LoopbackAndUrlHost) {
    EXPECT_TRUE(is_loopback_host("localhost"));
    EXPECT_TRUE(is_loopback_host("127.0.0.1"));
    EXPECT_TRUE(is_loopback_host("127.1.2.3"));
    EXPECT_TRUE(is_loopback_host("::1"));
    EXPECT_TRUE(is_loopback_host("[::1]"));
    EXPECT_FALSE(is_loopback_host("127.0.0.1.example.com"));
    EXPECT_FALSE(is_loopback_host("10.0.0.1"));
    EXPECT_FALSE(is_loopback_host("127.0.0"));
    EXPECT_FALSE(is_loopback_host("localhost.example"));
    EXPECT_EQ(url_host("https://user:pw@Example.com:8443/mcp?x=1"), "Example.com");
    EXPECT_EQ(url_host("http://[::1]:3000/sse"), "::1");
    EXPECT_EQ(url_host("http://127.0.0.1/mcp"), "127.0.0.1");
    EXPECT_EQ(url_host("wss://example.com"), std::nullopt);
    EXPECT_EQ(url_host("not a url"), std::nullopt);
}

// ---- secrets never reach a report -------------------------------------------------------

TEST(Redaction, Arguments) {
    EXPECT_EQ(redact_args({"--api-key", "abc123", "--verbose"}),
              (Strings{"--api-key", "***", "--verbose"}));
    EXPECT_EQ(redact_args({"--token=abc", "--port=8080"}), (Strings{"--token=***", "--port=8080"}));
    EXPECT_EQ(redact_args({"--auth", "--other"}), (Strings{"--auth", "--other"}));
    EXPECT_EQ(redact_args({"--header", "Authorization: Bearer xyz"}),
              (Strings{"--header", "Authorization: ***"}));
    EXPECT_EQ(redact_args({"-e", "GITHUB_TOKEN=ghp_x", "-e", "GITHUB_TOKEN"}),
              (Strings{"-e", "GITHUB_TOKEN=***", "-e", "GITHUB_TOKEN"}));
    EXPECT_EQ(redact_args({"sk-abcdefghijklmnopqrstuvwxyz", "ghp_0123456789abcdefghij", "short"}),
              (Strings{"***", "***", "short"}));
    EXPECT_EQ(redact_args({"https://u:p@h.example/mcp?api_key=s3&x=1"}),
              (Strings{"https://***@h.example/mcp?api_key=***&x=1"}));
    // A variable reference is not a secret: it stays, so readers see where the value comes from.
    EXPECT_EQ(redact_args({"--api-key", "${API_KEY}", "Authorization: Bearer ${TOKEN}"}),
              (Strings{"--api-key", "${API_KEY}", "Authorization: ***"}));
    EXPECT_EQ(redact_args({"-y", "@modelcontextprotocol/server-filesystem", "/tmp"}),
              (Strings{"-y", "@modelcontextprotocol/server-filesystem", "/tmp"}));
}

TEST(Redaction, Urls) {
    EXPECT_EQ(redact_url("https://mcp.example.com/mcp"), "https://mcp.example.com/mcp");
    EXPECT_EQ(redact_url("https://alice:pw@mcp.example.com/x"), "https://***@mcp.example.com/x");
    EXPECT_EQ(redact_url("https://h/mcp?token=abc&page=2&sig=zz#frag"),
              "https://h/mcp?token=***&page=2&sig=***#frag");
    EXPECT_EQ(redact_url("https://h/mcp?token=${TOKEN}"), "https://h/mcp?token=${TOKEN}");
    EXPECT_EQ(redact_url(""), "");
}

// ---- what the tools touch ---------------------------------------------------------------

json::array defs(std::string_view text) {
    return json::parse(text).as_array();
}

TEST(DataClasses, FromNamesDescriptionsAnnotationsAndUris) {
    const auto touched = classify_data(defs(R"([
        {"name": "read_file", "description": "Read the complete contents of a file."},
        {"name": "printEnv", "description": "Prints all environment variables."},
        {"name": "search_patients", "description": "Find a patient record by name."},
        {"name": "create_invoice", "description": "Bill a customer."},
        {"name": "lookup", "description": "Look something up.", "annotations": {"openWorldHint": true}},
        {"name": "echo", "description": "Echoes the input."}
    ])"));
    ASSERT_EQ(touched.size(), 6U);
    EXPECT_EQ(touched[0].data, DataClass::files);
    EXPECT_EQ(touched[0].item, "read_file");
    EXPECT_EQ(touched[1].data, DataClass::secrets);
    EXPECT_EQ(touched[1].item, "printEnv");
    EXPECT_EQ(touched[2].data, DataClass::personal);
    EXPECT_EQ(touched[2].item, "create_invoice");
    EXPECT_EQ(touched[3].data, DataClass::health);
    EXPECT_EQ(touched[3].item, "search_patients");
    EXPECT_EQ(touched[4].data, DataClass::finance);
    EXPECT_EQ(touched[5].data, DataClass::network);
    EXPECT_EQ(touched[5].item, "lookup");
}

TEST(DataClasses, ResourcesByUriAndNothingForHarmlessTools) {
    const auto files = classify_data(defs(R"([{"uri": "file:///etc/hosts", "name": "hosts"}])"));
    ASSERT_EQ(files.size(), 1U);
    EXPECT_EQ(files[0].data, DataClass::files);
    EXPECT_TRUE(classify_data(defs(R"([
        {"name": "add", "description": "Adds two numbers"},
        {"name": "sampleLLM", "description": "Samples from an LLM", "inputSchema": {"properties": {"maxTokens": {}}}},
        {"name": "healthcheck", "description": "Is the service up?"},
        "not an object"
    ])"))
                    .empty());
}

// ---- harvest now, decrypt later -----------------------------------------------------------

std::vector<DataTouch> sensitive() {
    return {{DataClass::files, "read_file"}, {DataClass::network, "fetch"}};
}
std::vector<DataTouch> harmless() {
    return {{DataClass::network, "fetch"}};
}

struct RatingCase {
    bool networked;
    Posture posture;
    std::optional<std::vector<DataTouch>> data;
    Rating expected;
};

TEST(Hndl, RatingTable) {
    const std::vector<RatingCase> cases = {
        {false, Posture::local, sensitive(), Rating::low},
        {false, Posture::plaintext, sensitive(), Rating::low},  // loopback http
        {false, Posture::classical, sensitive(), Rating::low},  // loopback https
        {true, Posture::plaintext, harmless(), Rating::high},
        {true, Posture::plaintext, std::nullopt, Rating::high},
        {true, Posture::classical, sensitive(), Rating::high},
        {true, Posture::classical, harmless(), Rating::medium},
        {true, Posture::classical, std::nullopt, Rating::medium},
        {true, Posture::unknown, sensitive(), Rating::high},
        {true, Posture::unknown, std::nullopt, Rating::medium},
        {true, Posture::hybrid_optional, sensitive(), Rating::medium},
        {true, Posture::hybrid_optional, harmless(), Rating::low},
        {true, Posture::hybrid_optional, std::nullopt, Rating::low},
        {true, Posture::quantum_safe, sensitive(), Rating::low},
    };
    for (const auto& c : cases) {
        const auto r = rate_hndl({c.networked, c.posture, c.data});
        EXPECT_EQ(r.rating, c.expected) << "networked " << c.networked << " posture "
                                        << to_string(c.posture) << ": " << r.reason;
        EXPECT_FALSE(r.reason.empty());
        EXPECT_EQ(r.reason.find('\n'), std::string::npos);
    }
}

TEST(Hndl, ReasonsSayWhy) {
    EXPECT_EQ(rate_hndl({false, Posture::local, std::nullopt}).reason,
              "stdio: the traffic stays on this machine");
    EXPECT_EQ(rate_hndl({true, Posture::classical, sensitive()}).reason,
              "classical key exchange: recorded traffic can be decrypted later, and its tools "
              "touch files (read_file)");
    EXPECT_EQ(rate_hndl({true, Posture::classical, std::nullopt}).reason,
              "classical key exchange: recorded traffic can be decrypted later; its tools were "
              "not inspected");
    EXPECT_TRUE(
        has_substr(rate_hndl({true, Posture::plaintext, std::nullopt}).reason, "plain HTTP"));
}

TEST(Hndl, PostureWordsAreTheProbeVerdicts) {
    EXPECT_EQ(to_string(posture_of(pqmcp::tls::Verdict::quantum_safe)), "quantum-safe");
    EXPECT_EQ(to_string(posture_of(pqmcp::tls::Verdict::hybrid_optional)), "hybrid-optional");
    EXPECT_EQ(to_string(posture_of(pqmcp::tls::Verdict::classical)), "classical");
    EXPECT_EQ(to_string(Posture::local), "local");
    EXPECT_EQ(to_string(Posture::plaintext), "plaintext");
}

TEST(Errors, Category) {
    const std::error_code ec = DiscoveryErrc::malformed;
    EXPECT_STREQ(ec.category().name(), "discovery");
    EXPECT_EQ(ec.message(), "malformed configuration file");
}

}  // namespace
