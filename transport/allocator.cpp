// allocator.cpp — see allocator.hpp.
#include "muster/allocator.hpp"

#if defined(__GLIBC__)
#include <malloc.h>
#endif

namespace muster {

void reuse_memory_for_large_messages(std::size_t mmap_threshold, std::size_t keep_free) {
#if defined(__GLIBC__)
  // Setting either disables glibc's dynamic threshold, which starts at 128 KiB and gives freed
  // memory back as soon as 2 x the threshold sits unused at the top of a heap.
  ::mallopt(M_MMAP_THRESHOLD, static_cast<int>(mmap_threshold));
  ::mallopt(M_TRIM_THRESHOLD, static_cast<int>(keep_free));
#else
  (void)mmap_threshold;
  (void)keep_free;
#endif
}

void use_one_malloc_arena() {
#if defined(__GLIBC__)
  ::mallopt(M_ARENA_MAX, 1);
#endif
}

}  // namespace muster
