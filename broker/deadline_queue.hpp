// deadline_queue.hpp — the deadlines of open requests, earliest first.
// Owns: (deadline, request id) pairs in a binary heap: 16 bytes per request where a std::set
// took a 64-byte tree node (docs/PERFORMANCE.md, "An open request's memory").
// Must never: decide whether a deadline still counts. Entries are not erased one by one; the
// caller says which are stale (`live`), and they are dropped when they reach the front or, all
// at once, when they outnumber the requests that exist (`push`'s `open` argument).
// Order is (deadline, id), as the std::set's was: requests due at the same time expire oldest
// first.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <utility>
#include <vector>

namespace muster::broker {

template <class TimePoint>
class DeadlineQueue {
 public:
  using Entry = std::pair<TimePoint, std::uint64_t>;

  // `open`: how many requests exist now, an upper bound of the live entries. `live(id)` says
  // whether id's deadline still counts; it is only asked when stale entries are swept.
  template <class Live>
  void push(TimePoint deadline, std::uint64_t id, std::size_t open, Live&& live) {
    if (heap_.size() >= 2 * open + kSlack) {
      std::erase_if(heap_, [&](const Entry& e) { return !live(e.second); });
      std::make_heap(heap_.begin(), heap_.end(), std::greater<>{});
      if (heap_.capacity() > 4 * heap_.size() + kSlack) heap_.shrink_to_fit();  // after a burst
    }
    heap_.emplace_back(deadline, id);
    std::push_heap(heap_.begin(), heap_.end(), std::greater<>{});
  }
  // Drops stale entries from the front, so that front() is a live deadline (or empty()).
  template <class Live>
  void drop_stale_front(Live&& live) {
    while (!heap_.empty() && !live(heap_.front().second)) pop();
  }
  bool empty() const { return heap_.empty(); }
  std::size_t size() const { return heap_.size(); }
  const Entry& front() const { return heap_.front(); }
  void pop() {
    std::pop_heap(heap_.begin(), heap_.end(), std::greater<>{});
    heap_.pop_back();
  }

 private:
  static constexpr std::size_t kSlack = 64;
  std::vector<Entry> heap_;  // a min-heap on (deadline, id)
};

}  // namespace muster::broker
