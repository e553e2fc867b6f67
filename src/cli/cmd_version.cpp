#include <dlfcn.h>

#include <cstdlib>
#include <filesystem>
#include <iostream>

#include <openssl/crypto.h>
#include <boost/json.hpp>

#include "commands.hpp"
#include "pqmcp/crypto/util.hpp"
#include "pqmcp/tls/probe.hpp"

namespace pqmcp::cli {
namespace {

// The file a loaded function comes from.
std::string library_of(void* function) {
    Dl_info info{};
    if (dladdr(function, &info) != 0 && info.dli_fname != nullptr) {
        std::error_code ec;
        const auto path = std::filesystem::canonical(info.dli_fname, ec);
        return ec ? std::string(info.dli_fname) : path.string();
    }
    return "unknown";
}

// The libcrypto this process actually loaded.
std::string loaded_libcrypto() {
    return library_of(reinterpret_cast<void*>(&OpenSSL_version));
}

// Where this process's malloc comes from (jemalloc, or the C library).
std::string loaded_malloc() {
    return library_of(reinterpret_cast<void*>(&std::malloc));
}

boost::json::array to_array(const std::vector<std::string>& items) {
    boost::json::array out;
    for (const auto& s : items) {
        out.emplace_back(s);
    }
    return out;
}

void print_list(std::string_view title, const std::vector<std::string>& items) {
    std::cout << title << ":";
    std::size_t column = title.size() + 1;
    for (const auto& s : items) {
        if (column + s.size() + 1 > 100) {
            std::cout << "\n   ";
            column = 3;
        }
        std::cout << " " << s;
        column += s.size() + 1;
    }
    std::cout << "\n";
}

int run_version(bool json) {
    const auto info = crypto::openssl_info();
    const auto groups = tls::available_groups();
    const std::string library = loaded_libcrypto();
    if (json) {
        boost::json::object out;
        out["pqmcp"] = PQMCP_VERSION;
        out["openssl"] = boost::json::object{{"version", info.version},
                                             {"library", library},
                                             {"openssldir", info.openssl_dir},
                                             {"modulesdir", info.modules_dir}};
        out["kems"] = to_array(info.kems);
        out["signatures"] = to_array(info.signatures);
        out["tls_groups"] = to_array(groups);
        out["allocator"] =
            boost::json::object{{"name", PQMCP_ALLOCATOR_NAME}, {"library", loaded_malloc()}};
        std::cout << boost::json::serialize(out) << "\n";
        return k_exit_ok;
    }
    std::cout << "pqmcp " << PQMCP_VERSION << "\n"
              << info.version << "\n"
              << "library: " << library << "\n"
              << "OPENSSLDIR: " << info.openssl_dir << "\n"
              << "allocator: " << PQMCP_ALLOCATOR_NAME << " (" << loaded_malloc() << ")\n";
    print_list("KEMs", info.kems);
    print_list("signatures", info.signatures);
    print_list("TLS groups", groups);
    return k_exit_ok;
}

}  // namespace

void add_version_command(CLI::App& app, int& exit_code) {
    auto json = std::make_shared<bool>(false);
    auto* cmd = app.add_subcommand(
        "version", "pqmcp and OpenSSL versions, and the KEMs, signatures and TLS groups on offer");
    cmd->add_flag("--json", *json, "One JSON object: pqmcp, openssl, kems, signatures, tls_groups");
    cmd->callback([json, &exit_code] { exit_code = run_version(*json); });
}

}  // namespace pqmcp::cli
