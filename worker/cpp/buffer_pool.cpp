// buffer_pool.cpp — the worker's large answer buffers, reused (buffer_pool.hpp).
#include "buffer_pool.hpp"

#include <bit>
#include <cstdlib>
#include <new>

namespace muster::detail {

BufferPool::~BufferPool() {
  for (auto& [size, list] : free_)
    for (auto& f : list) std::free(f.p);
}

std::size_t BufferPool::size_class(std::size_t n) {
  if (n < 64) return 64;
  std::size_t step = std::bit_floor(n) / 16;
  return (n + step - 1) / step * step;
}

std::uint8_t* BufferPool::allocate(std::size_t size) {
  const std::size_t c = size_class(size);
  {
    std::lock_guard lock(mu_);
    if (auto it = free_.find(c); it != free_.end() && !it->second.empty()) {
      auto* p = it->second.back().p;  // the most recently used: the likeliest still in cache
      it->second.pop_back();
      pooled_ -= c;
      return p;
    }
  }
  auto* p = static_cast<std::uint8_t*>(std::malloc(c));
  if (!p) throw std::bad_alloc();
  return p;
}

void BufferPool::deallocate(std::uint8_t* p, std::size_t size) {
  if (!p) return;
  const std::size_t c = size_class(size);
  const auto now = Clock::now();
  std::lock_guard lock(mu_);
  free_[c].push_back({p, now});
  pooled_ += c;
  if (now - last_release_ >= idle_) release_locked(now);
}

std::size_t BufferPool::release_idle(Clock::time_point now) {
  std::lock_guard lock(mu_);
  return release_locked(now);
}

std::size_t BufferPool::release_locked(Clock::time_point now) {
  last_release_ = now;
  std::size_t freed = 0;
  for (auto it = free_.begin(); it != free_.end();) {
    auto& list = it->second;
    std::size_t stale = 0;
    while (stale < list.size() && now - list[stale].since >= idle_) std::free(list[stale++].p);
    list.erase(list.begin(), list.begin() + static_cast<std::ptrdiff_t>(stale));
    freed += stale * it->first;
    it = list.empty() ? free_.erase(it) : std::next(it);
  }
  pooled_ -= freed;
  return freed;
}

std::size_t BufferPool::pooled_bytes() const {
  std::lock_guard lock(mu_);
  return pooled_;
}

BufferPool& BufferPool::answers() {
  static auto* pool = new BufferPool();
  return *pool;
}

}  // namespace muster::detail
