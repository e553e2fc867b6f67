// release_free_heap(): which allocator it asks, and two threads asking at
// once in a process whose malloc is jemalloc (glibc's malloc_trim raced
// its own first initialization there and faulted, about one run in ten).
#include <gtest/gtest.h>

#include <sys/wait.h>

#include <cstdlib>
#include <string>

#include "pqmcp/core/heap.hpp"

namespace pqmcp {
namespace {

TEST(Heap, WithGlibcsMallocTrimsGlibcsHeap) {
#ifdef __GLIBC__
    EXPECT_EQ(release_free_heap(), "glibc");
#else
    GTEST_SKIP() << "not glibc";
#endif
}

TEST(Heap, TwoThreadsAtOnceWithJemallocPreloadedNeverEnterGlibcsTrim) {
#ifndef PQMCP_JEMALLOC_LIB
    GTEST_SKIP() << "built without jemalloc (PQMCP_ALLOCATOR=system or a sanitizer build)";
#else
    // Each run is a fresh process: the race was in the first calls only.
    const std::string command =
        std::string("LD_PRELOAD=") + PQMCP_JEMALLOC_LIB + " " + PQMCP_HEAP_RACE_BIN + " jemalloc";
    int failed = 0;
    int last_status = 0;
    for (int run = 0; run < 60; ++run) {
        const int status = std::system(command.c_str());
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
            ++failed;
            last_status = status;
        }
    }
    // The shell reports a child killed by signal N as exit status 128 + N.
    EXPECT_EQ(failed, 0) << "of 60 runs, " << failed << " failed; the last: exit status "
                         << WEXITSTATUS(last_status)
                         << (WEXITSTATUS(last_status) > 128 ? " (killed by a signal)" : "");
#endif
}

}  // namespace
}  // namespace pqmcp
