#include "pqmcp/core/heap.hpp"

#include <cstddef>

#ifdef __GLIBC__
#include <malloc.h>
#endif

// jemalloc's control interface: defined when jemalloc is in the process,
// null otherwise.
extern "C" int mallctl(const char* name, void* oldp, std::size_t* oldlenp, void* newp,
                       std::size_t newlen) __attribute__((weak));

namespace pqmcp {

std::string_view release_free_heap() {
    if (mallctl != nullptr) {
        // "arena.<MALLCTL_ARENAS_ALL>.purge": every arena's unused dirty
        // pages, at once (MALLCTL_ARENAS_ALL is 4096 in jemalloc 5).
        (void)mallctl("arena.4096.purge", nullptr, nullptr, nullptr, 0);
        return "jemalloc";
    }
#ifdef __GLIBC__
    (void)malloc_trim(0);
    return "glibc";
#else
    return "none";
#endif
}

}  // namespace pqmcp
