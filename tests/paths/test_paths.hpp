// Where the tests and benchmarks find the checkout's files and the build's
// fixture server. The paths are compiled into one generated unit of the build
// tree (tests/paths/CMakeLists.txt), not into every test's compile command, so
// a test's command is the same in every clone and a compiler cache shared by
// clones (docs/bootstrap.md) reuses its object.
#pragma once

namespace pqmcp::test_paths {

/// The checkout: the directory of the top-level CMakeLists.txt.
const char* source_dir();

/// tests/data in the checkout.
const char* test_data_dir();

/// The pqmcp_fixture executable; empty in a build without the tests.
const char* fixture_bin();

}  // namespace pqmcp::test_paths
