// allocator.hpp — the process-wide malloc setting for processes that move large messages.
// Owns: the one call that makes glibc's malloc keep freed memory for reuse instead of mapping
// fresh pages for every large message and unmapping them after (by default a 1 MiB payload
// costs 256 page faults, zero-filled, at every buffer it passes through: profiled in
// docs/PERFORMANCE.md, fix 5).
// Must never: be called behind an application's back: the daemon and the bridge call it in
// main(), the worker SDK only while WorkerOptions::reuse_memory is true (the default).
#pragma once

#include <cstddef>

namespace muster {

// Allocations up to `mmap_threshold` bytes come from the heap, and up to `keep_free` bytes of
// freed memory at the top of a heap stay mapped for the next message. Costs: RSS after a burst
// of large messages stays up to `keep_free` above what is in use. No-op off glibc. Idempotent.
void reuse_memory_for_large_messages(std::size_t mmap_threshold = std::size_t{8} << 20,
                                     std::size_t keep_free = std::size_t{128} << 20);

}  // namespace muster
