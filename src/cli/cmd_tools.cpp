// `pqmcp tools ...`: the operator's side of tool integrity.
//   tools list      pins in the gateway's state database, and changes awaiting approval
//   tools approve   accept changed definitions (after reading the diff in the log)
//   tools sign      sign a tool manifest as its publisher
//   tools verify    check a signed manifest (or a signed list saved from a gateway)
#include <fstream>
#include <iostream>
#include <memory>
#include <sstream>

#include <boost/json.hpp>

#include "commands.hpp"
#include "paths.hpp"
#include "pqmcp/cluster/cluster.hpp"
#include "pqmcp/gateway/config.hpp"
#include "pqmcp/identity/identity.hpp"
#include "pqmcp/integrity/errors.hpp"
#include "pqmcp/integrity/pins.hpp"
#include "pqmcp/integrity/signing.hpp"

namespace pqmcp::cli {
namespace {

namespace json = boost::json;

struct StateArgs {
    std::string state;
    std::string identity;
    std::string config;
    std::string upstream;
    std::string tool;
};

// The database `pqmcp serve` with the same --state / --identity / --config uses.
Result<std::filesystem::path> state_path(const StateArgs& a) {
    if (!a.state.empty()) {
        return std::filesystem::path(a.state);
    }
    std::filesystem::path identity =
        a.identity.empty() ? default_identity_dir("gateway") : std::filesystem::path(a.identity);
    if (!a.config.empty()) {
        auto c = gateway::load_config(a.config);
        if (!c) {
            return tl::unexpected(c.error());
        }
        if (a.identity.empty() && !c->identity.empty()) {
            identity = c->identity;
        }
        if (!c->integrity.state.empty() || !c->cluster.postgres.empty()) {
            c->identity = identity;
            return std::filesystem::path(c->state_spec());
        }
    }
    return identity / "state.db";
}

Result<integrity::PinStore> open_existing(const StateArgs& a) {
    auto path = state_path(a);
    if (!path) {
        return tl::unexpected(path.error());
    }
    if (cluster::is_postgres(path->string())) {
        return cluster::postgres_pins(path->string());
    }
    if (!std::filesystem::exists(*path)) {
        return fail(integrity::Errc::store_failed,
                    path->string() +
                        ": no such database (has the gateway run with this "
                        "--identity or --state?)");
    }
    return integrity::PinStore::open(*path);
}

int run_list(const StateArgs& a) {
    auto store = open_existing(a);
    if (!store) {
        std::cerr << "pqmcp tools list: " << store.error().message() << "\n";
        return k_exit_error;
    }
    auto records = store->list(a.upstream.empty() ? std::nullopt
                                                  : std::optional<std::string_view>(a.upstream));
    if (!records) {
        std::cerr << "pqmcp tools list: " << records.error().message() << "\n";
        return k_exit_error;
    }
    std::size_t pending = 0;
    for (const auto& r : *records) {
        std::cout << r.key.upstream << "  " << r.key.kind << "  " << r.key.name << "  "
                  << r.digest.substr(0, 16) << "  pinned " << r.first_seen;
        if (!r.approved.empty()) {
            std::cout << ", approved " << r.approved;
        }
        if (!r.pending_digest.empty()) {
            ++pending;
            std::cout << "  CHANGED " << r.pending_seen << " -> " << r.pending_digest.substr(0, 16)
                      << " (awaiting approval)";
        }
        std::cout << "\n";
    }
    std::cout << records->size() << " pinned, " << pending << " changed\n";
    return k_exit_ok;
}

int run_approve(const StateArgs& a) {
    auto store = open_existing(a);
    if (!store) {
        std::cerr << "pqmcp tools approve: " << store.error().message() << "\n";
        return k_exit_error;
    }
    auto n = store->approve(
        a.upstream, a.tool.empty() ? std::nullopt : std::optional<std::string_view>(a.tool));
    if (!n) {
        std::cerr << "pqmcp tools approve: " << n.error().message() << "\n";
        return k_exit_error;
    }
    if (*n == 0) {
        std::cerr << "pqmcp tools approve: nothing to approve for upstream " << a.upstream
                  << (a.tool.empty() ? std::string{} : " tool " + a.tool)
                  << " (no changed definition is waiting)\n";
        return k_exit_error;
    }
    std::cout << "approved " << *n << " changed definition" << (*n == 1 ? "" : "s")
              << " of upstream " << a.upstream
              << "; the running gateway uses them from its next list\n";
    return k_exit_ok;
}

Result<json::object> read_json_object(const std::string& file) {
    std::ifstream in(file);
    if (!in) {
        return fail(integrity::Errc::bad_manifest, file + ": cannot be read");
    }
    std::ostringstream text;
    text << in.rdbuf();
    boost::system::error_code ec;
    json::value v = json::parse(text.str(), ec);
    if (ec) {
        return fail(integrity::Errc::bad_manifest, file + ": not JSON: " + ec.message());
    }
    if (!v.is_object()) {
        return fail(integrity::Errc::bad_manifest, file + ": not a JSON object");
    }
    return std::move(v.as_object());
}

struct SignArgs {
    std::string identity;
    std::string manifest;
    std::string out;
};

int run_sign(const SignArgs& a) {
    auto id = identity::load(a.identity);
    if (!id) {
        std::cerr << "pqmcp tools sign: " << a.identity << ": " << id.error().message() << "\n";
        return k_exit_error;
    }
    auto doc = read_json_object(a.manifest);
    if (!doc) {
        std::cerr << "pqmcp tools sign: " << doc.error().detail << "\n";
        return k_exit_error;
    }
    if (!doc->contains("tools") && !doc->contains("prompts") &&
        !doc->contains("resourceTemplates")) {
        std::cerr << "pqmcp tools sign: " << a.manifest
                  << ": a manifest holds tools, prompts or resourceTemplates (as the server "
                     "lists them)\n";
        return k_exit_error;
    }
    auto signer = integrity::make_signer(*id);
    if (!signer) {
        std::cerr << "pqmcp tools sign: " << signer.error().message() << "\n";
        return k_exit_error;
    }
    if (auto s = integrity::sign_result(*doc, integrity::k_manifest_method, *signer,
                                        integrity::utc_now());
        !s) {
        std::cerr << "pqmcp tools sign: " << s.error().message() << "\n";
        return k_exit_error;
    }
    const std::string out = a.out.empty() ? a.manifest : a.out;
    std::ofstream f(out, std::ios::trunc);
    f << json::serialize(*doc) << "\n";
    if (!f) {
        std::cerr << "pqmcp tools sign: " << out << ": cannot be written\n";
        return k_exit_error;
    }
    std::cout << "signed " << out << " as " << id->id.str() << "\n";
    return k_exit_ok;
}

struct VerifyArgs {
    std::string pubkey;
    std::string file;
    std::string method = std::string(integrity::k_manifest_method);
};

int run_verify(const VerifyArgs& a) {
    // A peer id, or an identity directory / certificate to take it from.
    auto expected = identity::PeerId::parse(a.pubkey);
    if (!expected) {
        expected = identity::peer_id_of_path(a.pubkey);
    }
    if (!expected) {
        std::cerr << "pqmcp tools verify: --pubkey " << a.pubkey
                  << ": neither a peer id nor an identity directory or certificate\n";
        return k_exit_usage;
    }
    auto doc = read_json_object(a.file);
    if (!doc) {
        std::cerr << "pqmcp tools verify: " << doc.error().detail << "\n";
        return k_exit_error;
    }
    // A saved JSON-RPC response: its result.
    if (const auto* r = doc->if_contains("result"); r != nullptr && r->is_object()) {
        *doc = r->as_object();
    }
    auto v = integrity::verify_result(*doc, a.method, &*expected);
    if (!v) {
        std::cerr << "pqmcp tools verify: " << a.file << ": " << v.error().message() << "\n";
        return k_exit_error;
    }
    std::cout << a.file << ": good " << v->algorithm << " signature by " << v->kid.str()
              << " (signed " << v->timestamp << ")\n";
    return k_exit_ok;
}

void add_state_options(CLI::App* cmd, StateArgs& a) {
    cmd->add_option("--state", a.state,
                    "the gateway's state: a SQLite file or postgresql://... (default "
                    "IDENTITY/state.db)");
    cmd->add_option("--identity", a.identity,
                    "the gateway's identity directory (default ~/.config/pqmcp/gateway)");
    cmd->add_option("--config", a.config, "the gateway's configuration file")
        ->check(CLI::ExistingFile);
}

}  // namespace

void add_tools_commands(CLI::App& app, int& exit_code) {
    CLI::App* tools =
        app.add_subcommand("tools", "Tool integrity: pins, approvals, signed manifests");
    tools->require_subcommand(1);

    auto list_args = std::make_shared<StateArgs>();
    CLI::App* list =
        tools->add_subcommand("list", "Pinned definitions and changes awaiting approval");
    add_state_options(list, *list_args);
    list->add_option("--upstream", list_args->upstream, "only this upstream");
    list->callback([list_args, &exit_code] { exit_code = run_list(*list_args); });

    auto approve_args = std::make_shared<StateArgs>();
    CLI::App* approve = tools->add_subcommand(
        "approve", "Accept the changed definitions of an upstream (or of one of its tools)");
    add_state_options(approve, *approve_args);
    approve->add_option("--upstream", approve_args->upstream, "the upstream's name")->required();
    approve->add_option("--tool", approve_args->tool,
                        "only this tool (or prompt, or resource template), by the upstream's name");
    approve->callback([approve_args, &exit_code] { exit_code = run_approve(*approve_args); });

    auto sign_args = std::make_shared<SignArgs>();
    CLI::App* sign = tools->add_subcommand(
        "sign", "Sign a tool manifest ({\"tools\": [...]} as the server lists them)");
    sign->add_option("--identity", sign_args->identity, "the publisher's identity directory")
        ->required();
    sign->add_option("manifest", sign_args->manifest, "the manifest (JSON)")
        ->required()
        ->check(CLI::ExistingFile);
    sign->add_option("-o,--out", sign_args->out, "write here (default: in place)");
    sign->callback([sign_args, &exit_code] { exit_code = run_sign(*sign_args); });

    auto verify_args = std::make_shared<VerifyArgs>();
    CLI::App* verify = tools->add_subcommand(
        "verify", "Check a signed manifest, or a list saved from a gateway (--method tools/list)");
    verify
        ->add_option("--pubkey", verify_args->pubkey,
                     "the signer: a peer id, an identity directory or a certificate")
        ->required();
    verify->add_option("--method", verify_args->method,
                       "what was signed: manifest (default), tools/list, prompts/list, "
                       "resources/templates/list");
    verify->add_option("file", verify_args->file, "the signed JSON")
        ->required()
        ->check(CLI::ExistingFile);
    verify->callback([verify_args, &exit_code] { exit_code = run_verify(*verify_args); });
}

}  // namespace pqmcp::cli
