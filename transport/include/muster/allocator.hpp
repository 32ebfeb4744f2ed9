// allocator.hpp — process-wide malloc settings for muster's processes.
// Owns: the calls that tune glibc's malloc for moving messages: reuse freed memory for large
// messages instead of mapping fresh pages for each and unmapping them after (by default a
// 1 MiB payload costs 256 zero-filled page faults at every buffer it passes through), and one
// arena for a process whose I/O thread frees what its main thread allocates next
// (docs/PERFORMANCE.md, fixes 5 and 6).
// Must never: be called behind an application's back: musterd calls both in main(), the
// worker SDK the first only while WorkerOptions::reuse_memory is true (the default).
#pragma once

#include <cstddef>

namespace muster {

// Allocations up to `mmap_threshold` bytes come from the heap, and up to `keep_free` bytes of
// freed memory at the top of a heap stay mapped for the next message. Costs: RSS after a burst
// of large messages stays up to `keep_free` above what is in use. No-op off glibc. Idempotent.
void reuse_memory_for_large_messages(std::size_t mmap_threshold = std::size_t{8} << 20,
                                     std::size_t keep_free = std::size_t{128} << 20);

// One malloc arena for the whole process, so that the read buffers libzmq's I/O thread frees
// after a burst of messages are reused by the main thread (in a second arena they stayed
// mapped: 2 MiB in the scale scenario). Call before the first socket exists: libzmq starts its
// I/O thread, and that thread its arena, with it. No-op off glibc. Idempotent.
void use_one_malloc_arena();

}  // namespace muster
