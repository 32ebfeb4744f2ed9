// interner.hpp — one shared, immutable copy of each distinct value that many open requests
// refer to: the client connection, the node, the caller's identity.
// Owns: those shared copies, and forgetting the ones nothing holds any more.
// Must never: hand out a copy that differs from the value asked for, or change one once
// handed out (holders compare and read them without a lock or a copy).
// Why: 10,000 queued requests of one client carried 10,000 copies of the same Peer, NodeKey
// and caller context, ~300 bytes each (docs/PERFORMANCE.md, "An open request's memory").
#pragma once

#include <algorithm>
#include <cstddef>
#include <functional>
#include <memory>
#include <unordered_set>

namespace muster::broker {

// Combines the std::hash of each part (boost's hash_combine).
template <class... Parts>
std::size_t hash_parts(const Parts&... parts) {
  std::size_t h = 0;
  ((h ^= std::hash<Parts>{}(parts) + 0x9e3779b97f4a7c15ull + (h << 6) + (h >> 2)), ...);
  return h;
}

// `Hash` and `Eq` act on T. Values nothing else holds are dropped when the set has doubled
// since the last sweep, so it stays within twice the values in use (plus a few).
template <class T, class Hash, class Eq = std::equal_to<T>>
class Interner {
 public:
  // The value asked for last is compared first: a burst of calls comes from one connection and
  // one caller, and comparing is much cheaper than hashing every part of the value.
  std::shared_ptr<const T> get(const T& value) {
    if (last_ && Eq{}(*last_, value)) return last_;
    if (auto it = set_.find(value); it != set_.end()) return last_ = *it;
    if (set_.size() >= sweep_at_) sweep();
    auto shared = std::make_shared<const T>(value);
    set_.insert(shared);
    return last_ = shared;
  }
  std::size_t size() const { return set_.size(); }

 private:
  using Ptr = std::shared_ptr<const T>;
  struct PtrHash {
    using is_transparent = void;
    std::size_t operator()(const T& v) const { return Hash{}(v); }
    std::size_t operator()(const Ptr& p) const { return Hash{}(*p); }
  };
  struct PtrEq {
    using is_transparent = void;
    bool operator()(const Ptr& a, const Ptr& b) const { return Eq{}(*a, *b); }
    bool operator()(const T& a, const Ptr& b) const { return Eq{}(a, *b); }
    bool operator()(const Ptr& a, const T& b) const { return Eq{}(*a, b); }
  };
  void sweep() {
    last_.reset();  // (it would keep its value from being dropped)
    std::erase_if(set_, [](const Ptr& p) { return p.use_count() == 1; });
    sweep_at_ = std::max<std::size_t>(kMinSweep, 2 * set_.size());
  }
  static constexpr std::size_t kMinSweep = 64;
  std::unordered_set<Ptr, PtrHash, PtrEq> set_;
  Ptr last_;  // the value get() returned last
  std::size_t sweep_at_ = kMinSweep;
};

}  // namespace muster::broker
