// The configuration a gateway runs with: the YAML file, `--set` and the
// flags of `pqmcp serve`. Commands that act on a gateway's configuration
// (`pqmcp auth login`) read it the same way.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "pqmcp/core/error.hpp"
#include "pqmcp/gateway/config.hpp"

namespace pqmcp::cli {

struct ServeArgs {
    std::string config_file;
    std::string listen;
    std::string identity;
    std::string profile;
    std::vector<std::string> upstreams;
    bool demo = false;
    bool require_client_identity = false;
    bool no_raw_public_keys = false;
    bool allow_any_client = false;
    std::string auth_require;
    std::string oauth_issuer;
    std::string oauth_jwks_uri;
    std::string oauth_resource;
    std::vector<std::string> oauth_scopes;
    std::string oauth_clock_skew;
    std::string oauth_introspection;  // CLIENT_ID:SECRET_FILE
    std::string oauth_introspection_endpoint;
    std::string oauth_introspection_cache;
    std::vector<std::string> sets;  // --set KEY=VALUE, any key of the file
    std::string known_peers;
    std::string ca;
    std::string browser_certificate;
    std::vector<std::string> origins;
    bool no_namespace = false;
    std::string separator;
    std::size_t max_sessions = 0;
    std::size_t max_children = 0;
    std::size_t max_message_bytes = 0;
    std::string request_timeout;
    std::string session_timeout;
    std::string log_level;
    std::size_t threads = 0;
    std::string replica;
    std::string redis;
    std::string redis_timeout;
    std::string redis_fail;
    std::string redis_behaviour;
    std::string postgres;
    std::string ticket_keys;
    std::string policy;
    std::string state;
    std::string on_change;
    std::string on_finding;
    std::string threshold;
    std::string scanner_rules;
    bool no_integrity = false;
    bool no_sign_lists = false;
    std::string audit;
    bool no_audit = false;
    std::string audit_arguments;
    std::string audit_on_failure;
    std::string audit_acknowledge;
    std::vector<std::string> redact;
    std::string metrics;
    std::string log_format;
    std::string dashboard;
    std::string dashboard_token;
    std::string dashboard_token_file;
    // Per upstream, "NAME=VALUE".
    std::vector<std::string> pass_env;
    std::vector<std::string> upstream_env;
    std::vector<std::string> upstream_oauth;        // NAME=CLIENT_ID:SECRET_FILE
    std::vector<std::string> upstream_oauth_login;  // NAME=CLIENT_ID[:SECRET_FILE]
    std::vector<std::string> sandbox;
    std::vector<std::string> sandbox_read;
    std::vector<std::string> sandbox_write;
    std::vector<std::string> sandbox_network;
    std::vector<std::string> sandbox_user;
    std::vector<std::string> sandbox_arguments;
    bool no_sandbox = false;
};

// --config, --set, --identity, --upstream and the upstreams' OAuth clients:
// what says which upstreams there are and how the gateway reaches them.
void add_config_source_options(CLI::App& cmd, ServeArgs& args);

// The configuration: the file (if any), then every flag that was given.
[[nodiscard]] Result<gateway::GatewayConfig> build_config(const ServeArgs& a);

}  // namespace pqmcp::cli
