// allocation_counter.hpp — how many times this thread has called the global operator new
// (allocation_counter.cpp replaces it for the unit-test binary): for tests of code that must
// not allocate on a hot path (e.g. broker/input_check.hpp).
#pragma once

#include <cstddef>

namespace muster::test {

std::size_t allocations_on_this_thread();

}  // namespace muster::test
