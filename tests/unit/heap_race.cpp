// Two threads release the heap at the same instant, as the first thing the
// process does with its allocator's controls. Exit status: 0 when both ran
// the allocator test_heap.cpp expects (argv[1]), 3 when one ran another.
#include <atomic>
#include <cstdio>
#include <string_view>
#include <thread>

#include "pqmcp/core/heap.hpp"

int main(int argc, char** argv) {
    if (argc != 2) {
        (void)std::fputs("usage: heap_race EXPECTED\n", stderr);
        return 2;
    }
    const std::string_view expected = argv[1];
    std::atomic<int> ready{0};
    std::atomic<bool> go{false};
    std::atomic<int> wrong{0};
    auto run = [&] {
        ready.fetch_add(1);
        while (!go.load()) {
        }
        if (pqmcp::release_free_heap() != expected) {
            wrong.fetch_add(1);
        }
    };
    std::thread a(run);
    std::thread b(run);
    while (ready.load() < 2) {
    }
    go.store(true);
    a.join();
    b.join();
    return wrong.load() == 0 ? 0 : 3;
}
