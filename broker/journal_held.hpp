// journal_held.hpp — the rows a journal holds, by job id, with what it must know of each without
// reading it: its payload bytes and, once finished, when it expires (SqliteJournal::held_,
// docs/DURABILITY.md §4).
// A JobIndex (job_index.hpp: vectors in job order, a new row appended at the end as job ids grow,
// a forgotten one marked gone and dropped with the others later), not a hash map: no allocation
// per call, as a hash map's node was (docs/DURABILITY.md §10 "Session 12").
// Owns: that map. Must never: touch a store, or decide what is held (its journal says).
#pragma once

#include <cstdint>
#include <limits>

#include "job_index.hpp"

namespace muster::broker::journal {

class HeldRows {
 public:
  static constexpr std::int64_t kNeverExpires = std::numeric_limits<std::int64_t>::max();
  struct Row {
    std::int64_t bytes = 0;
    std::int64_t expires_ms = kNeverExpires;  // finished rows only
  };

  // The row of `job`, nullptr when not held. Valid until the next put() or forget().
  Row* find(std::uint64_t job) { return rows_.find(job); }
  // Holds `job`'s row (a new row, or one held already: replaced).
  void put(std::uint64_t job, std::int64_t bytes, std::int64_t expires_ms = kNeverExpires) {
    *rows_.try_emplace(job).first = Row{bytes, expires_ms};
  }
  // Forgets a row find() returned.
  void forget(Row* row) { rows_.erase(row); }
  // Whether a row is held whose job id is strictly between `lo` and `hi`.
  bool any_between(std::uint64_t lo, std::uint64_t hi) const { return rows_.any_between(lo, hi); }
  // Calls f(job, row) for every row held, in job order.
  template <class F>
  void for_each(F&& f) const {
    rows_.for_each(f);
  }
  void clear() { rows_.clear(); }

 private:
  JobIndex<Row> rows_;
};

}  // namespace muster::broker::journal
