#include "sandbox_policy.hpp"

#include <link.h>
#include <pwd.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cstdlib>

namespace pqmcp::gateway {
namespace {

namespace fs = std::filesystem;

bool present(const fs::path& p) {
    std::error_code ec;
    return fs::exists(p, ec);
}

fs::path real(const fs::path& p) {
    std::error_code ec;
    auto r = fs::canonical(p, ec);
    return ec ? p.lexically_normal() : r;
}

bool in_system_dirs(const fs::path& p) {
    for (const char* dir : {"/usr", "/lib", "/lib64", "/lib32", "/bin", "/sbin"}) {
        if (sandbox::is_within(p, dir)) {
            return true;
        }
    }
    return false;
}

// The directories of the shared objects this process loaded from outside the
// system's directories (the bootstrap's OpenSSL): the gateway's own
// executable, started as an upstream, needs them.
std::vector<fs::path> own_library_dirs() {
    std::vector<fs::path> dirs;
    (void)dl_iterate_phdr(
        [](dl_phdr_info* info, std::size_t, void* data) {
            auto& out = *static_cast<std::vector<fs::path>*>(data);
            if (info->dlpi_name != nullptr && info->dlpi_name[0] == '/') {
                const fs::path dir = real(info->dlpi_name).parent_path();
                if (!in_system_dirs(dir) && std::find(out.begin(), out.end(), dir) == out.end()) {
                    out.push_back(dir);
                }
            }
            return 0;
        },
        &dirs);
    return dirs;
}

std::string home_of(const UpstreamConfig& u) {
    if (!u.sandbox.user.empty()) {
        std::array<char, 16'384> buffer{};
        passwd entry{};
        passwd* found = nullptr;
        if (::getpwnam_r(u.sandbox.user.c_str(), &entry, buffer.data(), buffer.size(), &found) ==
                0 &&
            found != nullptr && found->pw_dir != nullptr) {
            return found->pw_dir;
        }
        return {};
    }
    const char* home = std::getenv("HOME");  // NOLINT(concurrency-mt-unsafe): read-only
    return home != nullptr ? home : "";
}

bool is_one_of(const std::string& name, std::initializer_list<std::string_view> names) {
    return std::find(names.begin(), names.end(), name) != names.end();
}

// The nearest ancestor directory called node_modules, else the nearest one
// holding a package.json; "" if neither.
fs::path package_tree(const fs::path& script) {
    for (fs::path dir = script.parent_path(); !dir.empty() && dir != dir.root_path();
         dir = dir.parent_path()) {
        if (dir.filename() == "node_modules") {
            return dir;
        }
    }
    for (fs::path dir = script.parent_path(); !dir.empty() && dir != dir.root_path();
         dir = dir.parent_path()) {
        if (present(dir / "package.json")) {
            return dir;
        }
    }
    return {};
}

void add(std::vector<fs::path>& list, const fs::path& p) {
    if (!p.empty() && std::find(list.begin(), list.end(), p) == list.end()) {
        list.push_back(p);
    }
}

}  // namespace

std::vector<fs::path> protected_paths(const GatewayConfig& c) {
    std::vector<fs::path> out;
    const auto with_siblings = [&out](const fs::path& file) {
        if (file.empty()) {
            return;
        }
        const fs::path abs = fs::absolute(file).lexically_normal();
        add(out, abs);
        for (const char* suffix : {"-wal", "-shm", "-journal", ".lock"}) {
            add(out, fs::path(abs.string() + suffix));
        }
    };
    if (!c.identity.empty()) {
        add(out, fs::absolute(c.identity).lexically_normal());
    }
    with_siblings(c.integrity.state.empty() ? c.identity / "state.db" : c.integrity.state);
    with_siblings(c.audit_path());
    for (const fs::path* p : {&c.config_file, &c.policy_file, &c.known_peers, &c.ca,
                              &c.integrity.scanner_rules, &c.observe.dashboard_token_file}) {
        if (!p->empty()) {
            add(out, fs::absolute(*p).lexically_normal());
        }
    }
    if (!c.browser_certificate.empty() && c.browser_certificate != "auto") {
        add(out, fs::absolute(c.browser_certificate).lexically_normal());
    }
    for (const auto& extra : c.protect) {
        add(out, fs::absolute(extra).lexically_normal());
    }
    for (const auto& u : c.upstreams) {
        if (!u.manifest.empty()) {
            add(out, fs::absolute(u.manifest).lexically_normal());
        }
        if (!u.ca.empty()) {
            add(out, fs::absolute(u.ca).lexically_normal());
        }
    }
    return out;
}

sandbox::Policy child_policy(const GatewayConfig& c, const UpstreamConfig& u, const fs::path& exe,
                             const fs::path& tmpdir) {
    sandbox::Policy p;
    p.network = u.sandbox.network;
    p.user = u.sandbox.user;
    p.guard_pid = ::getpid();
    p.protect = protected_paths(c);

    // The system.
    for (const char* dir : {"/usr", "/lib", "/lib64", "/lib32", "/bin", "/sbin"}) {
        if (present(dir)) {
            add(p.read, dir);
        }
    }
    for (const char* file : {"/etc/ld.so.cache",
                             "/etc/ld.so.conf",
                             "/etc/ld.so.conf.d",
                             "/etc/localtime",
                             "/etc/timezone",
                             "/etc/nsswitch.conf",
                             "/etc/passwd",
                             "/etc/group",
                             "/etc/hosts",
                             "/etc/host.conf",
                             "/etc/resolv.conf",
                             "/etc/gai.conf",
                             "/etc/ssl",
                             "/etc/ca-certificates",
                             "/etc/alternatives",
                             "/etc/mime.types",
                             "/etc/os-release",
                             "/etc/debian_version",
                             "/proc",
                             "/sys/devices/system/cpu",
                             "/sys/fs/cgroup",
                             "/dev/urandom",
                             "/dev/random"}) {
        if (present(file)) {
            add(p.read, file);
        }
    }
    for (const char* dev : {"/dev/null", "/dev/zero", "/dev/full"}) {
        add(p.write, dev);
    }
    for (const auto& dir : own_library_dirs()) {
        add(p.read, dir);
    }
    const fs::path program = real(exe);
    if (!in_system_dirs(program)) {
        add(p.read, program);
    }
    if (!tmpdir.empty()) {
        add(p.write, tmpdir);
    }

    // The launcher.
    const std::string launcher = fs::path(u.command).filename().string();
    const std::string runs = program.filename().string();
    const std::string home = home_of(u);
    const bool node = is_one_of(launcher, {"node", "nodejs", "npx", "npm", "pnpm", "yarn"}) ||
                      is_one_of(runs, {"node", "nodejs"});
    const bool python =
        launcher.rfind("python", 0) == 0 || is_one_of(launcher, {"uv", "uvx", "pipx"});
    std::vector<std::string> script_args;  // arguments a preset has already covered
    if (node) {
        // bin/node -> the installation (its lib/node_modules: npm, npx).
        if (!in_system_dirs(program)) {
            add(p.read, program.parent_path().parent_path());
        }
        if (launcher == "npx" || launcher == "npm") {
            if (!home.empty()) {
                std::error_code ec;
                fs::create_directories(fs::path(home) / ".npm", ec);
                add(p.write, fs::path(home) / ".npm");
            }
            const fs::path cwd = u.cwd.empty() ? fs::current_path() : u.cwd;
            if (present(cwd / "node_modules")) {
                add(p.read, real(cwd / "node_modules"));
            }
        }
        for (const auto& a : u.args) {
            if (a.empty() || a.front() == '-') {
                continue;
            }
            const fs::path script = fs::absolute(a).lexically_normal();
            if (present(script) && !fs::is_directory(script)) {
                const fs::path tree = package_tree(real(script));
                add(p.read, tree.empty() ? real(script).parent_path() : tree);
                script_args.push_back(a);
            }
            break;  // only the script, the first operand
        }
    }
    if (python && !home.empty()) {
        for (const char* dir : {".local/lib", ".local/share/uv", ".local/bin"}) {
            if (present(fs::path(home) / dir)) {
                add(p.read, fs::path(home) / dir);
            }
        }
        if (is_one_of(launcher, {"uv", "uvx"})) {
            std::error_code ec;
            fs::create_directories(fs::path(home) / ".cache" / "uv", ec);
            add(p.write, fs::path(home) / ".cache" / "uv");
        }
        for (const auto& a : u.args) {
            if (a.empty() || a.front() == '-') {
                continue;
            }
            const fs::path script = fs::absolute(a).lexically_normal();
            if (script.extension() == ".py" && present(script)) {
                add(p.read, real(script).parent_path());
                script_args.push_back(a);
            }
            break;
        }
    }

    // What the arguments name.
    if (u.sandbox.arguments != ArgumentAccess::none) {
        for (const auto& arg : u.args) {
            std::string value = arg;
            if (value.rfind("--", 0) == 0 && value.find('=') != std::string::npos) {
                value = value.substr(value.find('=') + 1);
            }
            if (value.empty() || value.front() == '-' ||
                std::find(script_args.begin(), script_args.end(), arg) != script_args.end()) {
                continue;
            }
            const fs::path base = u.cwd.empty() ? fs::current_path() : u.cwd;
            const fs::path path =
                (fs::path(value).is_absolute() ? fs::path(value) : base / value).lexically_normal();
            if (!fs::path(value).is_absolute() && value.find('/') == std::string::npos) {
                continue;  // a bare word ("stdio"), not a path
            }
            if (!present(path)) {
                continue;
            }
            if (fs::is_directory(path) && u.sandbox.arguments == ArgumentAccess::write) {
                add(p.write, real(path));
            } else {
                add(p.read, real(path));
            }
        }
    }
    for (const auto& r : u.sandbox.read) {
        add(p.read, r);
    }
    for (const auto& w : u.sandbox.write) {
        add(p.write, w);
    }
    return p;
}

}  // namespace pqmcp::gateway
