// Internal: bounded reads and atomic writes of the identity component's files.
#pragma once

#include <sys/types.h>

#include <filesystem>
#include <string>

#include "pqmcp/core/bytes.hpp"
#include "pqmcp/core/error.hpp"
#include "pqmcp/crypto/secret.hpp"

namespace pqmcp::identity {

// Reads at most `limit` bytes; a longer file (or an endless FIFO) is an error,
// never an unbounded read. Errc::io_error.
[[nodiscard]] Result<std::string> read_file(const std::filesystem::path& file, std::size_t limit);
// The same into secret memory: no copy of the content is left on the heap.
[[nodiscard]] Result<crypto::SecretBytes> read_secret_file(const std::filesystem::path& file,
                                                           std::size_t limit);
// Writes to a fresh temporary file beside `file` (O_EXCL, `mode`), fsyncs it
// and renames it over `file`.
[[nodiscard]] Status write_file_atomic(const std::filesystem::path& file, ByteView data,
                                       mode_t mode);

}  // namespace pqmcp::identity
