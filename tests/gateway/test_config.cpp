// The gateway configuration: YAML, flags, validation, with the errors users see.
#include <gtest/gtest.h>

#include <fstream>
#include <functional>
#include <map>
#include <sstream>

#include "pqmcp/gateway/config.hpp"
#include "test_paths.hpp"

namespace pqmcp::gateway {
namespace {

TEST(Config, ReadsEveryKnownKey) {
    auto c = parse_config(R"(
listen: 0.0.0.0:9443
identity: /var/lib/pqmcp/gw
profile: pq-strict
require_client_identity: true
known_peers: /etc/pqmcp/known_peers
allowed_origins: [https://dash.example]
log_level: debug
namespacing: { enabled: true, separator: "." }
limits: { max_sessions: 10, max_children: 3, max_message_bytes: 1024, max_body_bytes: 2048 }
timeouts: { session_idle: 5m, upstream_request: 1500ms, child_idle: 2h }
upstreams:
  - name: everything
    command: npx
    args: [-y, server-everything]
    env: { DEBUG: "1" }
    isolation: shared
  - name: remote
    url: https://10.0.0.2:8443/mcp
    pin: pq1aaaa
    headers: { Authorization: Bearer x }
  - name: demo
    builtin: demo
)",
                          "gw.yaml");
    ASSERT_TRUE(c) << c.error().message();
    EXPECT_EQ(c->listen_host(), "0.0.0.0");
    EXPECT_EQ(c->listen_port(), 9443);
    EXPECT_EQ(c->profile, "pq-strict");
    EXPECT_TRUE(c->require_client_identity);
    EXPECT_EQ(c->separator, ".");
    EXPECT_EQ(c->limits.http.max_sessions, 10U);
    EXPECT_EQ(c->limits.max_children, 3U);
    EXPECT_EQ(c->timeouts.http.session_idle, std::chrono::minutes{5});
    EXPECT_EQ(c->timeouts.upstream_request, std::chrono::milliseconds{1500});
    ASSERT_EQ(c->upstreams.size(), 3U);
    EXPECT_EQ(c->upstreams[0].kind, UpstreamKind::stdio);
    EXPECT_TRUE(c->upstreams[0].shared);
    EXPECT_EQ(c->upstreams[0].args, (std::vector<std::string>{"-y", "server-everything"}));
    EXPECT_EQ(c->upstreams[1].kind, UpstreamKind::http);
    EXPECT_EQ(c->upstreams[1].pins, (std::vector<std::string>{"pq1aaaa"}));
    EXPECT_EQ(c->upstreams[2].kind, UpstreamKind::demo);
    EXPECT_TRUE(validate(*c));
}

TEST(Config, BrowserCertificate) {
    auto c = parse_config(
        "identity: /tmp/gw\nbrowser_certificate: auto\nupstreams: [{name: "
        "demo, builtin: demo}]\n");
    ASSERT_TRUE(c) << c.error().message();
    EXPECT_EQ(c->browser_certificate, "auto");
    EXPECT_TRUE(validate(*c));
}

TEST(Config, ErrorsNameTheFileLineAndKey) {
    struct Case {
        const char* yaml;
        const char* expected;
    };
    const Case cases[] = {
        {"listen: 1\nbogus: 2\n", "gw.yaml:2: bogus: unknown key"},
        {"timeouts:\n  session_idle: soon\n",
         "gw.yaml:2: timeouts.session_idle: \"soon\" is not a duration"},
        {"limits:\n  max_sessions: -3\n",
         "gw.yaml:2: limits.max_sessions: expected a positive whole number"},
        {"upstreams:\n  - name: x\n    command: a\n    url: http://b/\n",
         "gw.yaml:2: upstreams[0]: give exactly one of"},
        {"upstreams:\n  - command: a\n", "gw.yaml:2: upstreams[0]: every upstream needs a name"},
        {"upstreams:\n  - name: x\n    command: a\n    isolation: sometimes\n",
         "gw.yaml:4: upstreams[0].isolation"},
        {"listen: [unclosed\n", "gw.yaml:"},
        {"audit:\n  acknowledge: maybe\n",
         "gw.yaml:2: audit.acknowledge: expected queued or committed"},
        {"cluster:\n  redis_timeout: soon\n", "gw.yaml:2: cluster.redis_timeout"},
        {"cluster:\n  sentinel: x\n", "gw.yaml:2: cluster.sentinel: unknown key"},
    };
    for (const auto& c : cases) {
        auto r = parse_config(c.yaml, "gw.yaml");
        ASSERT_FALSE(r) << c.yaml;
        EXPECT_EQ(r.error().code, Errc::invalid_config);
        EXPECT_NE(r.error().detail.find(c.expected), std::string::npos)
            << r.error().detail << " / wanted: " << c.expected;
    }
}

// --set KEY=VALUE reaches every key, through the same checks as the file.
TEST(Config, SetReachesAnyKey) {
    const std::vector<std::string> sets{"limits.buffer_bytes=1024",
                                        "timeouts.upstream_pool_wait=2s",
                                        "protect=[/srv/a, /srv/b]",
                                        "upstreams.0.sandbox.network=loopback",
                                        "upstreams.0.env.MODE=fast",
                                        "audit.on_failure=continue",
                                        "upstreams.1={name: demo, builtin: demo}"};
    auto c =
        parse_config("upstreams:\n  - name: fs\n    command: cat\nlimits:\n  max_sessions: 5\n",
                     "gw.yaml", sets);
    ASSERT_TRUE(c) << c.error().message();
    EXPECT_EQ(c->limits.http.buffer_bytes, 1024U);
    EXPECT_EQ(c->limits.http.max_sessions, 5U);  // the file's own keys stay
    EXPECT_EQ(c->timeouts.upstream_pool_wait, std::chrono::seconds{2});
    ASSERT_EQ(c->protect.size(), 2U);
    EXPECT_EQ(c->protect[1], "/srv/b");
    ASSERT_EQ(c->upstreams.size(), 2U);
    EXPECT_EQ(c->upstreams[0].sandbox.network, sandbox::Network::loopback);
    ASSERT_EQ(c->upstreams[0].env.size(), 1U);
    EXPECT_EQ(c->upstreams[0].env[0].first, "MODE");
    EXPECT_EQ(c->upstreams[0].env[0].second, "fast");
    EXPECT_EQ(c->upstreams[1].name, "demo");
    EXPECT_FALSE(c->audit.refuse_on_failure);

    // The tier's keys, and where a replica's own files go.
    const std::vector<std::string> tier{
        "cluster.replica=r1",          "cluster.redis=unix:///run/r.sock",
        "cluster.fail=local",          "cluster.behaviour=local",
        "cluster.redis_timeout=10ms",  "cluster.postgres=postgresql://db/pqmcp",
        "audit.acknowledge=committed", "identity=/srv/id"};
    auto k = parse_config("", "--set", tier);
    ASSERT_TRUE(k) << k.error().message();
    EXPECT_EQ(k->cluster.replica, "r1");
    EXPECT_EQ(k->cluster.fail, "local");
    EXPECT_EQ(k->cluster.behaviour, "local");
    EXPECT_EQ(k->cluster.redis_timeout, std::chrono::milliseconds{10});
    EXPECT_TRUE(k->audit.acknowledge_committed);
    EXPECT_EQ(k->audit_path(), std::filesystem::path("/srv/id/replicas/r1/audit.db"));
    EXPECT_EQ(k->state_spec(), "postgresql://db/pqmcp");
    GatewayConfig single;
    single.identity = "/srv/id";
    EXPECT_EQ(single.audit_path(), std::filesystem::path("/srv/id/audit.db"));
    EXPECT_EQ(single.state_spec(), "/srv/id/state.db");

    // Without a file.
    const std::vector<std::string> alone{"listen=127.0.0.1:9000"};
    auto d = parse_config("", "--set", alone);
    ASSERT_TRUE(d) << d.error().message();
    EXPECT_EQ(d->listen_port(), 9000);
}

TEST(Config, SetErrorsNameTheFlag) {
    struct Case {
        const char* set;
        const char* expected;
    };
    const Case cases[] = {
        {"limits.buffer_bytes=lots",
         "--set limits.buffer_bytes: expected a positive whole number, not \"lots\""},
        {"limits.bogus=1", "--set limits.bogus: unknown key"},
        {"upstreams.3.sandbox.network=none",
         "--set upstreams.3.sandbox.network: upstreams has no element 3"},
        {"upstreams.0.sandbox.network=everywhere", "--set upstreams[0].sandbox.network"},
        {"limits..max_sessions=3", "--set limits..max_sessions: an empty part in the key"},
        {"limits", "--set limits: expected KEY=VALUE"},
        {"protect=[unclosed", "--set protect: "},
        {"upstreams.0.name.x=1",
         "--set upstreams.0.name.x: upstreams.0.name is not a mapping or a list"},
    };
    for (const auto& c : cases) {
        const std::vector<std::string> sets{c.set};
        auto r = parse_config("upstreams:\n  - name: fs\n    command: cat\n", "gw.yaml", sets);
        ASSERT_FALSE(r) << c.set;
        EXPECT_EQ(r.error().code, Errc::invalid_config);
        EXPECT_NE(r.error().detail.find(c.expected), std::string::npos)
            << r.error().detail << " / wanted: " << c.expected;
    }
}

TEST(Config, UpstreamFlags) {
    auto s = parse_upstream_flag("fs=stdio:npx -y \"@scope/server fs\" /tmp");
    ASSERT_TRUE(s);
    EXPECT_EQ(s->name, "fs");
    EXPECT_EQ(s->command, "npx");
    EXPECT_EQ(s->args, (std::vector<std::string>{"-y", "@scope/server fs", "/tmp"}));
    auto u = parse_upstream_flag("api=https://h:1/mcp");
    ASSERT_TRUE(u);
    EXPECT_EQ(u->kind, UpstreamKind::http);
    auto o = parse_upstream_flag("pets=openapi:specs/pets.yaml https://api.example/v2");
    ASSERT_TRUE(o);
    EXPECT_EQ(o->kind, UpstreamKind::openapi);
    EXPECT_EQ(o->openapi.spec, std::filesystem::path("specs/pets.yaml"));
    EXPECT_EQ(o->openapi.base_url, "https://api.example/v2");
    for (const char* bad :
         {"noequals", "=stdio:x", "x=stdio:", "x=ftp://h/", "x=openapi:", "x=openapi:a b c"}) {
        auto r = parse_upstream_flag(bad);
        ASSERT_FALSE(r) << bad;
        EXPECT_EQ(r.error().code, Errc::invalid_config);
    }
}

TEST(Config, OpenApiUpstreams) {
    auto c = parse_config(R"(
upstreams:
  - name: pets
    openapi:
      spec: pets.yaml
      base_url: https://api.example/v2
      auth:
        - { type: api_key, in: query, name: key, value_env: PETS_KEY }
        - { type: basic, username: bot, value_file: pass.txt }
      include: { tags: [pets], methods: [get] }
      exclude: { paths: ["/admin/*"] }
      max_tools: 20
      timeout: 5s
  - name: short
    openapi: other.json
)",
                          "gw.yaml");
    ASSERT_TRUE(c) << c.error().message();
    const auto& p = c->upstreams[0].openapi;
    EXPECT_EQ(c->upstreams[0].kind, UpstreamKind::openapi);
    ASSERT_EQ(p.auth.size(), 2U);
    EXPECT_EQ(p.auth[0].in, "query");
    EXPECT_EQ(p.auth[1].username, "bot");
    EXPECT_EQ(p.include.tags, std::vector<std::string>{"pets"});
    EXPECT_EQ(p.exclude.paths, std::vector<std::string>{"/admin/*"});
    EXPECT_EQ(p.max_tools, 20U);
    EXPECT_EQ(p.timeout, std::chrono::seconds{5});
    EXPECT_EQ(c->upstreams[1].openapi.spec, std::filesystem::path("other.json"));
    // Unknown keys are named; a missing base URL, a secret given twice, a bad auth are refused.
    auto unknown = parse_config("upstreams:\n  - name: x\n    openapi: { spec: a, redirects: 3 }\n",
                                "gw.yaml");
    ASSERT_FALSE(unknown);
    EXPECT_NE(unknown.error().detail.find("upstreams[0].openapi.redirects: unknown key"),
              std::string::npos)
        << unknown.error().detail;
    GatewayConfig base;
    base.identity = "/tmp/id";
    UpstreamConfig u;
    u.name = "pets";
    u.kind = UpstreamKind::openapi;
    u.openapi.spec = "pets.yaml";
    base.upstreams = {u};
    const auto why = [&](const std::function<void(OpenApiUpstreamConfig&)>& change) {
        GatewayConfig cfg = base;
        change(cfg.upstreams[0].openapi);
        auto v = validate(cfg);
        return v ? std::string{} : v.error().detail;
    };
    EXPECT_NE(why([](auto&) {}).find("base_url: where the API is"), std::string::npos);
    EXPECT_EQ(why([](auto& o) { o.follow_servers = true; }), "");
    EXPECT_NE(why([](auto& o) {
                  o.base_url = "https://a";
                  o.auth.push_back({"api_key", "body", "k", "", "v", {}, ""});
              }).find("in: header, query or cookie"),
              std::string::npos);
    EXPECT_NE(why([](auto& o) {
                  o.base_url = "https://a";
                  o.auth.push_back({"bearer", "header", "", "", "v", "f", ""});
              }).find("give the secret once"),
              std::string::npos);
    EXPECT_NE(why([](auto& o) {
                  o.base_url = "https://a";
                  o.auth.push_back({"oauth", "header", "", "", "v", {}, ""});
              }).find("expected api_key, bearer or basic"),
              std::string::npos);
}

TEST(Config, Durations) {
    EXPECT_EQ(*parse_duration("250ms"), std::chrono::milliseconds{250});
    EXPECT_EQ(*parse_duration("30"), std::chrono::seconds{30});
    EXPECT_EQ(*parse_duration("2h"), std::chrono::hours{2});
    EXPECT_FALSE(parse_duration("0s"));
    EXPECT_FALSE(parse_duration("10d"));
    EXPECT_FALSE(parse_duration("-1s"));
}

TEST(Config, ValidationCatchesWhatCannotWork) {
    GatewayConfig base;
    base.identity = "/tmp/x";
    UpstreamConfig demo;
    demo.name = "demo";
    demo.kind = UpstreamKind::demo;
    base.upstreams = {demo};
    ASSERT_TRUE(validate(base));
    struct Case {
        std::function<void(GatewayConfig&)> change;
        const char* expected;
    };
    const Case cases[] = {
        {[](GatewayConfig& c) { c.upstreams.clear(); }, "no upstream"},
        {[](GatewayConfig& c) { c.cluster.fail = "open"; },
         "cluster.fail: expected closed or local, not \"open\""},
        {[](GatewayConfig& c) { c.cluster.behaviour = "global"; },
         "cluster.behaviour: expected shared or local, not \"global\""},
        {[](GatewayConfig& c) { c.cluster.redis = "http://x"; },
         "cluster.redis: expected redis://"},
        {[](GatewayConfig& c) { c.cluster.postgres = "pg.example"; },
         "cluster.postgres: expected a postgresql:// address"},
        {[](GatewayConfig& c) { c.cluster.replica = "../a"; }, "cluster.replica: 1 to 64 of"},
        {[](GatewayConfig& c) { c.cluster.redis_timeout = std::chrono::seconds{9}; },
         "cluster.redis_timeout: from 1ms to 5s"},
        {[](GatewayConfig& c) { c.listen = "localhost"; }, "listen: expected HOST:PORT"},
        {[](GatewayConfig& c) { c.profile = "pq-maximal"; }, "profile:"},
        {[](GatewayConfig& c) { c.require_client_identity = true; }, "needs known_peers or ca"},
        {[](GatewayConfig& c) { c.upstreams.push_back(c.upstreams[0]); }, "defined twice"},
        {[](GatewayConfig& c) { c.upstreams[0].name = "bad name"; }, "a name is 1-64"},
        {[](GatewayConfig& c) {
             c.namespacing = false;
             c.upstreams.push_back(c.upstreams[0]);
             c.upstreams[1].name = "two";
         },
         "namespacing can be turned off only with a single upstream"},
        {[](GatewayConfig& c) { c.allowed_origins = {"nope"}; }, "is not an origin"},
        {[](GatewayConfig& c) { c.log_level = "loud"; }, "log_level"},
        {[](GatewayConfig& c) {
             c.profile = "pq-strict";
             c.browser_certificate = "auto";
         },
         "browser_certificate: profile pq-strict allows no classical certificate"},
    };
    for (const auto& c : cases) {
        GatewayConfig config = base;
        c.change(config);
        auto r = validate(config);
        ASSERT_FALSE(r) << c.expected;
        EXPECT_NE(r.error().detail.find(c.expected), std::string::npos) << r.error().detail;
    }
}

TEST(Config, UpstreamOAuthGrants) {
    const auto with = [](const std::string& oauth) {
        return parse_config(
            "identity: /var/lib/pqmcp/gw\nupstreams:\n  - name: up\n    url: "
            "http://127.0.0.1:9/mcp\n    oauth: " +
                oauth + "\n",
            "gw.yaml");
    };
    auto enrolled = with("{ client_id: operator, grant: authorization_code }");
    ASSERT_TRUE(enrolled) << enrolled.error().message();
    EXPECT_TRUE(validate(*enrolled)) << validate(*enrolled).error().message();
    EXPECT_EQ(enrolled->upstream_token_file(enrolled->upstreams[0]),
              std::filesystem::path("/var/lib/pqmcp/gw/oauth/up.token"));
    auto elsewhere = with("{ client_id: operator, grant: authorization_code, token_file: /srv/t }");
    ASSERT_TRUE(elsewhere);
    EXPECT_EQ(elsewhere->upstream_token_file(elsewhere->upstreams[0]),
              std::filesystem::path("/srv/t"));
    for (const auto& [oauth, error] : std::vector<std::pair<std::string, std::string>>{
             {"{ client_id: operator }", "oauth.client_id needs oauth.client_secret_file"},
             {"{ client_id: operator, grant: implicit }",
              "oauth.grant: \"implicit\" is not client_credentials or authorization_code"},
             {"{ grant: authorization_code }", "oauth needs client_id"},
         }) {
        auto c = with(oauth);
        ASSERT_TRUE(c) << oauth;
        const Status v = validate(*c);
        ASSERT_FALSE(v) << oauth;
        EXPECT_NE(v.error().detail.find(error), std::string::npos) << v.error().detail;
    }
}

TEST(Config, UpstreamProtocol) {
    auto c = parse_config(
        "upstreams:\n  - { name: a, url: http://127.0.0.1:1/mcp }\n"
        "  - { name: b, url: http://127.0.0.1:2/mcp, protocol: auto }\n"
        "  - { name: c, url: http://127.0.0.1:3/mcp, protocol: 2026-07-28 }\n",
        "gw.yaml");
    ASSERT_TRUE(c) << c.error().message();
    EXPECT_EQ(c->upstreams[0].protocol, "2025-11-25");
    EXPECT_EQ(c->upstreams[1].protocol, "auto");
    EXPECT_EQ(c->upstreams[2].protocol, "2026-07-28");
    auto bad = parse_config(
        "upstreams:\n  - { name: a, url: http://127.0.0.1:1/mcp, protocol: 2099 }\n", "gw.yaml");
    ASSERT_FALSE(bad);
    EXPECT_NE(bad.error().message().find(
                  "upstreams[0].protocol: expected auto, 2025-11-25 or 2026-07-28, not \"2099\""),
              std::string::npos)
        << bad.error().message();
}

// The defaults docs/gateway.md states, read back from its table and compared
// with what an empty configuration gets: the documentation cannot drift.
TEST(Config, TheDocumentedDefaultsAreTheDefaults) {
    std::ifstream in(std::string(pqmcp::test_paths::source_dir()) + "/docs/gateway.md");
    ASSERT_TRUE(in) << "docs/gateway.md";
    std::map<std::string, std::string> documented;  // YAML key -> default column
    const auto unquote = [](const std::string& cell) {
        std::string out;
        for (const char ch : cell) {
            if (ch != '`') {
                out += ch;
            }
        }
        const auto first = out.find_first_not_of(' ');
        const auto last = out.find_last_not_of(' ');
        return first == std::string::npos ? std::string{} : out.substr(first, last - first + 1);
    };
    for (std::string line; std::getline(in, line);) {
        if (line.rfind("| `--", 0) != 0) {
            continue;
        }
        // | flag | key | default | meaning |: split on " | " (flags hold "\|").
        std::vector<std::string> cells;
        std::size_t at = 1;
        for (std::size_t next; (next = line.find(" | ", at)) != std::string::npos; at = next + 3) {
            cells.push_back(line.substr(at, next - at));
        }
        if (cells.size() >= 3) {
            documented[unquote(cells[1])] = unquote(cells[2]);
        }
    }
    auto c = parse_config("upstreams: [{name: demo, builtin: demo}]\n", "gw.yaml");
    ASSERT_TRUE(c) << c.error().message();
    const auto ms = [](std::chrono::milliseconds d) { return d; };
    const auto duration = [](const std::string& text) {
        auto d = parse_duration(text);
        return d ? *d : std::chrono::milliseconds{-1};
    };
    const std::map<std::string, std::function<bool(const std::string&)>> actual{
        {"listen", [&](const std::string& d) { return c->listen == d; }},
        {"profile", [&](const std::string& d) { return c->profile == d; }},
        {"namespacing.separator", [&](const std::string& d) { return c->separator == d; }},
        {"limits.max_sessions",
         [&](const std::string& d) { return std::to_string(c->limits.http.max_sessions) == d; }},
        {"limits.max_children",
         [&](const std::string& d) { return std::to_string(c->limits.max_children) == d; }},
        {"limits.max_message_bytes",
         [&](const std::string& d) {
             return d == "4 MiB" && c->limits.message.max_message_bytes == 4U << 20U;
         }},
        {"timeouts.upstream_request",
         [&](const std::string& d) { return ms(c->timeouts.upstream_request) == duration(d); }},
        {"timeouts.session_idle",
         [&](const std::string& d) { return ms(c->timeouts.http.session_idle) == duration(d); }},
        {"log_level", [&](const std::string& d) { return c->log_level == d; }},
        {"threads", [&](const std::string& d) { return d == "one per core" && c->threads == 0; }},
        {"cluster.redis_timeout",
         [&](const std::string& d) { return ms(c->cluster.redis_timeout) == duration(d); }},
        {"cluster.fail", [&](const std::string& d) { return c->cluster.fail == d; }},
        {"cluster.behaviour", [&](const std::string& d) { return c->cluster.behaviour == d; }},
        {"integrity.on_change",
         [&](const std::string& d) { return to_string(c->integrity.on_change) == d; }},
        {"integrity.on_finding",
         [&](const std::string& d) { return to_string(c->integrity.on_finding) == d; }},
        {"integrity.threshold", [&](const std::string& d) { return c->integrity.threshold == d; }},
        {"audit.acknowledge",
         [&](const std::string& d) {
             return d == (c->audit.acknowledge_committed ? "committed" : "queued");
         }},
        {"audit.arguments",
         [&](const std::string& d) {
             return d == "digest" && c->audit.arguments == AuditArguments::digest;
         }},
        {"audit.on_failure",
         [&](const std::string& d) {
             return d == (c->audit.refuse_on_failure ? "refuse" : "continue");
         }},
        {"log_format", [&](const std::string& d) { return c->observe.log_format == d; }},
        {"dashboard.access", [&](const std::string& d) { return c->observe.dashboard == d; }},
        {"upstreams[].sandbox.enabled",
         [&](const std::string& d) { return d == "on" && c->upstreams.at(0).sandbox.enabled; }},
        {"upstreams[].sandbox.network",
         [&](const std::string& d) {
             return sandbox::to_string(c->upstreams.at(0).sandbox.network) == d;
         }},
        {"upstreams[].sandbox.arguments",
         [&](const std::string& d) {
             return d == "write" && c->upstreams.at(0).sandbox.arguments == ArgumentAccess::write;
         }},
    };
    for (const auto& [key, matches] : actual) {
        const auto it = documented.find(key);
        ASSERT_NE(it, documented.end()) << key << " is not in docs/gateway.md's table";
        EXPECT_TRUE(matches(it->second)) << key << ": documented default " << it->second;
    }
}

}  // namespace
}  // namespace pqmcp::gateway
