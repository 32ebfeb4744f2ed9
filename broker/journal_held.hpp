// journal_held.hpp — the rows a journal holds, by job id, with what it must know of each without
// reading it: its payload bytes and, once finished, when it expires (SqliteJournal::held_,
// docs/DURABILITY.md §4).
// A vector sorted by job id, not a hash map: job ids grow with every Submit, so a new row is
// appended at the end, and a forgotten row is only marked gone (the gone ones are dropped together
// once they are half of the vector): no allocation per call, as a hash map's node was
// (docs/DURABILITY.md §10 "Session 12").
// Owns: that map. Must never: touch a store, or decide what is held (its journal says).
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <vector>

namespace muster::broker::journal {

class HeldRows {
 public:
  static constexpr std::int64_t kNeverExpires = std::numeric_limits<std::int64_t>::max();
  struct Row {
    std::uint64_t job = 0;
    std::int64_t bytes = 0;
    std::int64_t expires_ms = kNeverExpires;  // finished rows only
    bool gone = false;                        // forgotten, not dropped from the vector yet
  };

  // The row of `job`, nullptr when not held. Valid until the next put() or forget().
  Row* find(std::uint64_t job) {
    const auto it = locate(job);
    return it != rows_.end() && it->job == job && !it->gone ? &*it : nullptr;
  }
  // Holds `job`'s row (a new row, or one held already: replaced).
  void put(std::uint64_t job, std::int64_t bytes, std::int64_t expires_ms = kNeverExpires) {
    const Row row{job, bytes, expires_ms, false};
    if (rows_.empty() || job > rows_.back().job) {
      rows_.push_back(row);
      return;
    }
    const auto it = locate(job);
    if (it != rows_.end() && it->job == job) {
      if (it->gone) --gone_;
      *it = row;
      return;
    }
    rows_.insert(it, row);
  }
  // Forgets a row find() returned.
  void forget(Row* row) {
    row->gone = true;
    if (++gone_ >= 64 && gone_ * 2 >= rows_.size()) {
      std::erase_if(rows_, [](const Row& r) { return r.gone; });
      gone_ = 0;
    }
  }
  // Whether a row is held whose job id is strictly between `lo` and `hi`.
  bool any_between(std::uint64_t lo, std::uint64_t hi) const {
    auto it = std::upper_bound(rows_.begin(), rows_.end(), lo,
                               [](std::uint64_t j, const Row& r) { return j < r.job; });
    for (; it != rows_.end() && it->job < hi; ++it)
      if (!it->gone) return true;
    return false;
  }
  // Calls f(row) for every row held, in job order.
  template <class F>
  void for_each(F&& f) const {
    for (const Row& r : rows_)
      if (!r.gone) f(r);
  }
  void clear() {
    rows_.clear();
    gone_ = 0;
  }

 private:
  std::vector<Row>::iterator locate(std::uint64_t job) {
    if (!rows_.empty() && rows_.back().job == job) return rows_.end() - 1;
    return std::lower_bound(rows_.begin(), rows_.end(), job,
                            [](const Row& r, std::uint64_t j) { return r.job < j; });
  }
  std::vector<Row> rows_;  // by job id, gone ones included until they are dropped together
  std::size_t gone_ = 0;
};

}  // namespace muster::broker::journal
