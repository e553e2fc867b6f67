// Internal: what the sandbox of a stdio upstream grants, from its
// configuration, its command line and the launcher it uses (docs/security.md):
//
//  - always: the system's programs and libraries (/usr, /lib*, /bin, /sbin),
//    the few files of /etc a program needs to start (dynamic linker cache,
//    name service, time zone, TLS roots), /proc and the CPU and cgroup files
//    of /sys (read), /dev/null, /dev/zero, /dev/full (read and write),
//    /dev/urandom and /dev/random (read), the directories of the libraries the
//    gateway itself loaded from elsewhere (its OpenSSL), the executable, and a
//    private TMPDIR of its own (read and write);
//  - node, npx and npm: the Node.js installation, the package tree of the
//    script it runs (its node_modules, or its nearest package.json), and for
//    npx and npm the npm cache ~/.npm (read and write);
//  - python, uv and uvx: ~/.local/lib and ~/.local/share/uv (read),
//    ~/.cache/uv (read and write), and the directory of the script;
//  - paths among its arguments that exist: directories read and write (or per
//    `sandbox.arguments`), files read;
//  - then `sandbox.read` and `sandbox.write`.
//
// Protected, whatever the grants: the gateway's identity, state and audit
// databases (with their -wal, -shm and .lock files), configuration, policy,
// known_peers, CA, rule and manifest files. A grant that reaches one is an
// error at start.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include "pqmcp/core/error.hpp"
#include "pqmcp/gateway/config.hpp"
#include "pqmcp/sandbox/sandbox.hpp"

namespace pqmcp::gateway {

// The paths of the gateway no upstream may reach.
[[nodiscard]] std::vector<std::filesystem::path> protected_paths(const GatewayConfig& config);

// The sandbox policy of one child of `upstream`, whose executable is `exe`
// (resolved), with its private temporary directory `tmpdir` ("" for none).
[[nodiscard]] sandbox::Policy child_policy(const GatewayConfig& config,
                                           const UpstreamConfig& upstream,
                                           const std::filesystem::path& exe,
                                           const std::filesystem::path& tmpdir);

}  // namespace pqmcp::gateway
