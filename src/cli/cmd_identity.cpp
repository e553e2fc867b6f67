#include <iostream>
#include <string>
#include <vector>

#include "commands.hpp"
#include "pqmcp/crypto/algorithms.hpp"
#include "pqmcp/identity/identity.hpp"
#include "pqmcp/identity/known_peers.hpp"

namespace pqmcp::cli {
namespace {

struct KeygenArgs {
    std::string out;
    std::string alg = "ml-dsa-65";
    std::vector<std::string> names;
    bool force = false;
};

int run_keygen(const KeygenArgs& args) {
    const auto alg = crypto::parse_sig_alg(args.alg);
    if (!alg || !crypto::is_ml_dsa(*alg)) {
        std::cerr << "pqmcp keygen: --alg must be ml-dsa-65, ml-dsa-87 or ml-dsa-44, not '"
                  << args.alg << "'\n";
        return k_exit_usage;
    }
    identity::KeygenOptions options;
    options.algorithm = *alg;
    options.names = args.names;
    auto id = identity::generate(options);
    if (!id) {
        std::cerr << "pqmcp keygen: " << id.error().message() << "\n";
        return k_exit_error;
    }
    if (auto s = identity::save(*id, args.out, args.force); !s) {
        std::cerr << "pqmcp keygen: " << s.error().message() << "\n";
        return k_exit_error;
    }
    std::cout << id->id.str() << "\n";
    return k_exit_ok;
}

int run_id(const std::string& path) {
    auto id = identity::peer_id_of_path(path);
    if (!id) {
        std::cerr << "pqmcp id: " << id.error().message() << "\n";
        return k_exit_error;
    }
    std::cout << id->str() << "\n";
    return k_exit_ok;
}

int run_peers_add(const std::string& file, const std::string& peer, const std::string& name) {
    namespace fs = std::filesystem;
    identity::KnownPeers peers;
    if (fs::exists(file)) {
        auto loaded = identity::KnownPeers::load(file);
        if (!loaded) {
            std::cerr << "pqmcp peers add: " << loaded.error().message() << "\n";
            return k_exit_error;
        }
        peers = std::move(*loaded);
    }
    // PEER may be a peer id, an identity directory or a certificate file.
    auto id = identity::PeerId::parse(peer);
    if (!id && fs::exists(peer)) {
        id = identity::peer_id_of_path(peer);
    }
    if (!id) {
        std::cerr << "pqmcp peers add: " << id.error().message() << "\n";
        return k_exit_error;
    }
    if (auto s = peers.add(identity::KnownPeer{*id, name, {}}); !s) {
        std::cerr << "pqmcp peers add: " << s.error().message() << "\n";
        return k_exit_error;
    }
    if (auto s = peers.save(file); !s) {
        std::cerr << "pqmcp peers add: " << s.error().message() << "\n";
        return k_exit_error;
    }
    std::cout << id->str() << " " << name << "\n";
    return k_exit_ok;
}

int run_peers_list(const std::string& file) {
    auto peers = identity::KnownPeers::load(file);
    if (!peers) {
        std::cerr << "pqmcp peers list: " << peers.error().message() << "\n";
        return k_exit_error;
    }
    for (const auto& p : peers->peers()) {
        std::cout << p.id.str() << "  " << p.name << "  " << p.added << "\n";
    }
    return k_exit_ok;
}

}  // namespace

void add_identity_commands(CLI::App& app, int& exit_code) {
    auto keygen_args = std::make_shared<KeygenArgs>();
    auto* keygen = app.add_subcommand(
        "keygen", "Create an ML-DSA identity: identity.key, identity.crt; prints the peer id");
    keygen->add_option("--out", keygen_args->out, "Directory for identity.key and identity.crt")
        ->required();
    keygen->add_option("--alg", keygen_args->alg, "ml-dsa-65 (default), ml-dsa-87 or ml-dsa-44");
    keygen->add_option("--name", keygen_args->names,
                       "subjectAltName: a DNS name or IP address (repeatable)");
    keygen->add_flag("--force", keygen_args->force, "Replace an existing identity");
    keygen->callback([keygen_args, &exit_code] { exit_code = run_keygen(*keygen_args); });

    auto id_path = std::make_shared<std::string>();
    auto* id =
        app.add_subcommand("id", "Print the peer id of an identity directory or certificate");
    id->add_option("path", *id_path, "Identity directory or PEM certificate")->required();
    id->callback([id_path, &exit_code] { exit_code = run_id(*id_path); });

    auto* peers = app.add_subcommand("peers", "Manage a known_peers file (pinned peers)");
    peers->require_subcommand(1);
    auto peers_file = std::make_shared<std::string>();
    auto peer_arg = std::make_shared<std::string>();
    auto name_arg = std::make_shared<std::string>();
    auto* add = peers->add_subcommand("add", "Pin a peer: add it to a known_peers file");
    add->add_option("--file", *peers_file, "known_peers file (created if missing)")->required();
    add->add_option("peer", *peer_arg, "Peer id, identity directory or certificate")->required();
    add->add_option("name", *name_arg, "Name for the peer")->required();
    add->callback(
        [=, &exit_code] { exit_code = run_peers_add(*peers_file, *peer_arg, *name_arg); });
    auto* list = peers->add_subcommand("list", "List the peers of a known_peers file");
    list->add_option("--file", *peers_file, "known_peers file")->required();
    list->callback([=, &exit_code] { exit_code = run_peers_list(*peers_file); });
}

}  // namespace pqmcp::cli
