// `pqmcp policy lint FILE...` and `pqmcp policy check`: for people writing policies.
#include <fstream>
#include <iostream>
#include <sstream>

#include <boost/json.hpp>

#include "commands.hpp"
#include "pqmcp/identity/known_peers.hpp"
#include "pqmcp/mcp/jsonrpc.hpp"
#include "pqmcp/policy/limiter.hpp"
#include "pqmcp/policy/policy.hpp"

namespace pqmcp::cli {
namespace {

namespace json = boost::json;

int run_lint(const std::vector<std::string>& files) {
    int rc = k_exit_ok;
    for (const auto& file : files) {
        auto p = policy::load_policy(file);
        if (!p) {
            std::cerr << p.error().detail << "\n";
            rc = k_exit_error;
            continue;
        }
        std::cout << file << ": ok (" << (*p)->rules.size() << " rules, default "
                  << policy::to_string((*p)->default_effect) << ", fingerprint "
                  << (*p)->fingerprint << ")\n";
    }
    return rc;
}

struct CheckArgs {
    std::string policy_file;
    std::string identity = "anonymous";
    std::string known_peers;
    std::string request;
    std::string purpose;
    std::vector<std::string> used_tags;
    std::string separator = "__";
};

Result<std::string> read_text(const std::string& spec) {
    if (spec.empty() || spec.front() != '@') {
        return spec;
    }
    std::ifstream in(spec.substr(1), std::ios::binary);
    if (!in) {
        return fail(policy::Errc::invalid_policy, spec.substr(1) + ": cannot be read");
    }
    std::ostringstream out;
    out << in.rdbuf();
    return out.str();
}

int run_check(const CheckArgs& a) {
    const auto usage = [](const std::string& what) {
        std::cerr << "pqmcp policy check: " << what << "\n";
        return k_exit_usage;
    };
    auto p = policy::load_policy(a.policy_file);
    if (!p) {
        std::cerr << p.error().detail << "\n";
        return k_exit_error;
    }
    auto text = read_text(a.request);
    if (!text) {
        return usage(text.error().detail);
    }
    boost::system::error_code ec;
    json::value v = json::parse(*text, ec);
    if (ec || !v.is_object()) {
        return usage(
            "--request: expected a JSON-RPC request object, e.g. "
            "{\"method\":\"tools/call\",\"params\":{\"name\":\"demo__echo\",\"arguments\":{}}}");
    }
    json::object& o = v.as_object();
    o.emplace("jsonrpc", "2.0");
    o.emplace("id", 1);
    auto item = mcp::classify(std::move(v));
    if (!item || !item->is_request()) {
        return usage("--request: " + (item ? std::string("not a request") : item.error().reason));
    }
    const mcp::Message& m = *item;

    policy::Caller caller;
    if (a.identity != "anonymous") {
        caller.verified = true;
        if (auto id = identity::PeerId::parse(a.identity)) {
            caller.peer_id = id->str();
        } else {
            caller.name = a.identity;
            caller.peer_id = "(offline)";
        }
        if (!a.known_peers.empty()) {
            auto known = identity::KnownPeers::load(a.known_peers);
            if (!known) {
                std::cerr << known.error().message() << "\n";
                return k_exit_error;
            }
            if (const auto* peer =
                    caller.name.empty() ? nullptr : known->find_by_name(caller.name)) {
                caller.peer_id = peer->id.str();
            } else if (auto id = identity::PeerId::parse(caller.peer_id)) {
                if (const auto* by_id = known->find(*id)) {
                    caller.name = by_id->name;
                }
            }
        }
    }
    const bool tool_call = m.method == "tools/call";
    const std::string upstream = m.name.find(a.separator) != std::string::npos
                                     ? m.name.substr(0, m.name.find(a.separator))
                                     : std::string{};
    const json::object* params = m.params();
    const json::value* arguments = params != nullptr ? params->if_contains("arguments") : nullptr;
    // --purpose stands for what the call declares (as _meta "pqmcp/purpose" does).
    std::string purpose = a.purpose;
    if (purpose.empty() && params != nullptr) {
        if (const auto* meta = params->if_contains("_meta"); meta != nullptr && meta->is_object()) {
            if (const auto* pv = meta->as_object().if_contains(policy::k_purpose_meta);
                pv != nullptr && pv->is_string()) {
                purpose = std::string(pv->get_string());
            }
        }
    }
    const std::string session = policy::session_purpose(**p, caller);
    const std::set<std::string> used(a.used_tags.begin(), a.used_tags.end());
    policy::Request r;
    r.caller = caller;
    r.session = "offline";
    r.method = m.method;
    r.upstream = upstream;
    r.tool =
        (tool_call || m.method == "prompts/get") ? std::string_view(m.name) : std::string_view{};
    r.uri = m.uri;
    r.arguments = arguments;
    r.call_purpose = purpose;
    r.session_purpose = session;
    r.used_tags = &used;
    // Offline: no rates counted, no behaviour history, no inputSchema at hand.
    const policy::Decision d = policy::evaluate(**p, r, nullptr, std::chrono::steady_clock::now());
    json::array shadowed;
    for (const auto& [rule, effect] : d.shadowed) {
        shadowed.push_back(json::object{{"rule", rule}, {"decision", policy::to_string(effect)}});
    }
    const json::object out{{"decision", policy::to_string(d.effect)},
                           {"rule", d.rule.empty() ? json::value(nullptr) : json::value(d.rule)},
                           {"reason", d.reason},
                           {"mode", policy::to_string(d.mode)},
                           {"shadowed", std::move(shadowed)},
                           {"policy", (*p)->fingerprint}};
    std::cout << json::serialize(out) << "\n";
    return k_exit_ok;
}

}  // namespace

void add_policy_commands(CLI::App& app, int& exit_code) {
    CLI::App* cmd = app.add_subcommand("policy", "Write and test policies (docs/policy.md)");
    cmd->require_subcommand(1);

    auto files = std::make_shared<std::vector<std::string>>();
    CLI::App* lint = cmd->add_subcommand("lint", "Check policy files; errors name the line");
    lint->add_option("files", *files, "policy files")->required();
    lint->callback([files, &exit_code] { exit_code = run_lint(*files); });

    auto args = std::make_shared<CheckArgs>();
    CLI::App* check =
        cmd->add_subcommand("check", "Evaluate one request offline and print the decision as JSON");
    check->add_option("--policy", args->policy_file, "the policy file")->required();
    check->add_option("--identity", args->identity,
                      "the caller: a peer id, a known_peers name, or anonymous (default)");
    check->add_option("--known-peers", args->known_peers, "known_peers file to resolve names")
        ->check(CLI::ExistingFile);
    check
        ->add_option("--request", args->request,
                     "the JSON-RPC request (or @FILE), e.g. "
                     "'{\"method\":\"tools/call\",\"params\":{\"name\":\"demo__echo\"}}'")
        ->required();
    check->add_option("--purpose", args->purpose, "the call's declared purpose");
    check->add_option("--used-tag", args->used_tags,
                      "a tag of a tool the session has already used (repeatable)");
    check->add_option("--separator", args->separator, "namespace separator (default __)");
    check->callback([args, &exit_code] { exit_code = run_check(*args); });
}

}  // namespace pqmcp::cli
