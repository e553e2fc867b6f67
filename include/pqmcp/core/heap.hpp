// Handing freed heap memory back to the system, with whichever allocator the
// process runs.
#pragma once

#include <string_view>

namespace pqmcp {

// Returns unused heap pages to the system: with jemalloc in the process
// (linked or preloaded), its purge of every arena; otherwise glibc's
// malloc_trim. Safe from any thread. Returns which one ran: "jemalloc",
// "glibc" or "none".
//
// glibc's malloc_trim is never called while jemalloc serves malloc: glibc's
// own allocator is then never initialized, and its first malloc_trim
// initializes it without a lock, marking it ready before its bins are set;
// a second thread's malloc_trim at that moment walks the unset bins and
// faults (seen as a SIGSEGV at address 8 in malloc_trim).
std::string_view release_free_heap();

}  // namespace pqmcp
