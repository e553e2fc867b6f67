// Where pqmcp keeps things by default, and where it runs from.
#pragma once

#include <cstdlib>
#include <filesystem>
#include <string>
#include <string_view>

namespace pqmcp::cli {

// $XDG_CONFIG_HOME/pqmcp/<name>, else ~/.config/pqmcp/<name>.
inline std::filesystem::path default_identity_dir(std::string_view name) {
    std::filesystem::path base;
    if (const char* xdg = std::getenv("XDG_CONFIG_HOME"); xdg != nullptr && *xdg != '\0') {
        base = xdg;
    } else if (const char* home = std::getenv("HOME"); home != nullptr && *home != '\0') {
        base = std::filesystem::path(home) / ".config";
    } else {
        base = ".";
    }
    return base / "pqmcp" / name;
}

// The absolute path of the running executable (for commands we print).
inline std::string self_executable() {
    std::error_code ec;
    auto p = std::filesystem::read_symlink("/proc/self/exe", ec);
    return ec ? std::string("pqmcp") : p.string();
}

}  // namespace pqmcp::cli
