// allocation_counter.cpp — replaces the global operator new/delete of the unit-test binary with
// malloc/free plus a per-thread count (allocation_counter.hpp). Must never: change what an
// allocation returns or when it fails.
#include "allocation_counter.hpp"

#include <cstdlib>
#include <new>

namespace {
thread_local std::size_t g_allocations = 0;
}

namespace muster::test {
std::size_t allocations_on_this_thread() { return g_allocations; }
}  // namespace muster::test

void* operator new(std::size_t n) {
  ++g_allocations;
  if (void* p = std::malloc(n ? n : 1)) return p;
  throw std::bad_alloc();
}
void* operator new(std::size_t n, const std::nothrow_t&) noexcept {
  ++g_allocations;
  return std::malloc(n ? n : 1);
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
void operator delete(void* p, const std::nothrow_t&) noexcept { std::free(p); }
