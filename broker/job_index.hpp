// job_index.hpp — a value per job id, kept in job order in a vector (JobIndex<V>).
// Job ids grow with every Submit, so the usual new entry goes at the end (no search, no
// allocation once the vector has grown: a hash map or an std::map allocated a node per call,
// docs/DURABILITY.md §10 "Session 12" and "Session 13"), and the usual lookup is of the last one
// (a fast path) or of an id outside the range; others are found by binary search, and an id
// below the last is inserted in order (a move of the entries after it, or none when a gone
// entry next to its place is reused). An erased entry is only marked gone (its value reset, so
// what it held is released); the gone ones are dropped together once they are half of the
// entries. Used where ids mostly arrive in order: the batch plan's folds (journal_fold.hpp), the
// SQLite journal's held rows (journal_held.hpp), the core's open and kept jobs (durable_jobs.hpp),
// the commit pipeline's calls submitted in the batch not yet handed out (commit_pipeline.hpp).
// Owns: the entries. Must never: know what a value means, or put entries out of job order.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <utility>
#include <vector>

namespace muster::broker {

template <class V>  // a class: an entry is a V with its job id
class JobIndex {
 public:
  using Job = std::uint64_t;

  // The value of `job`; nullptr when it has none. Valid until the next change of the index.
  V* find(Job job) {
    // The usual lookups: the last entry, or an id outside the range (above, or below the first).
    if (entries_.empty() || job > entries_.back().job_ || job < entries_.front().job_) return nullptr;
    Entry& e = entries_.back().job_ == job ? entries_.back() : entries_[lower(job)];  // job <= the last
    return e.job_ == job && !e.gone_ ? &e : nullptr;
  }
  const V* find(Job job) const { return const_cast<JobIndex*>(this)->find(job); }

  // The value of `job`, a value-initialised one inserted in job order when it had none;
  // second: whether it was inserted. Valid until the next change of the index.
  std::pair<V*, bool> try_emplace(Job job) {
    if (entries_.empty() || job > entries_.back().job_) {
      entries_.emplace_back().job_ = job;
      return {&entries_.back(), true};
    }
    return emplace_below(job);
  }

  // Erases the entry whose value find() or try_emplace() returned.
  void erase(V* found) {
    Entry& e = *static_cast<Entry*>(found);
    static_cast<V&>(e) = V{};  // releases what it held
    e.gone_ = true;
    if (++gone_ >= 64 && gone_ * 2 >= entries_.size()) drop_gone();
  }
  // Erases every entry for which pred(job, value) holds; returns how many.
  template <class P>
  std::size_t erase_if(P&& pred) {
    std::size_t n = 0;
    for (Entry& e : entries_)
      if (!e.gone_ && pred(e.job_, std::as_const(static_cast<V&>(e)))) {
        static_cast<V&>(e) = V{};
        e.gone_ = true;
        ++n;
      }
    gone_ += n;
    if (gone_ * 2 >= entries_.size()) drop_gone();
    return n;
  }

  // Walks the entries from the first above `after`, in job order: f(job, value) for each until
  // it returns false.
  template <class F>
  void each_after(Job after, F&& f) const {
    for (std::size_t i = upper(after); i < entries_.size(); ++i)
      if (!entries_[i].gone_ && !f(entries_[i].job_, static_cast<const V&>(entries_[i]))) return;
  }
  // f(job, value) for every entry, in job order.
  template <class F>
  void for_each(F&& f) const {
    for (const Entry& e : entries_)
      if (!e.gone_) f(e.job_, static_cast<const V&>(e));
  }
  template <class F>
  void for_each(F&& f) {
    for (Entry& e : entries_)
      if (!e.gone_) f(e.job_, static_cast<V&>(e));
  }
  // Whether an entry's job id is strictly between `lo` and `hi`.
  bool any_between(Job lo, Job hi) const {
    for (std::size_t i = upper(lo); i < entries_.size() && entries_[i].job_ < hi; ++i)
      if (!entries_[i].gone_) return true;
    return false;
  }

  void clear() {  // keeps the vector's storage
    entries_.clear();
    gone_ = 0;
  }
  std::size_t size() const { return entries_.size() - gone_; }
  bool empty() const { return size() == 0; }

 private:
  struct Entry : V {
    Job job_ = 0;
    bool gone_ = false;  // erased, not dropped from the vector yet
  };
  // The first entry (gone or not) whose id is not below / is above `job`.
  std::size_t lower(Job job) const {
    return static_cast<std::size_t>(
        std::lower_bound(entries_.begin(), entries_.end(), job,
                         [](const Entry& e, Job j) { return e.job_ < j; }) -
        entries_.begin());
  }
  std::size_t upper(Job job) const {
    return static_cast<std::size_t>(
        std::upper_bound(entries_.begin(), entries_.end(), job,
                         [](Job j, const Entry& e) { return j < e.job_; }) -
        entries_.begin());
  }
  // try_emplace of an id not above the last.
  [[gnu::noinline]] std::pair<V*, bool> emplace_below(Job job) {
    std::size_t at = entries_.back().job_ == job ? entries_.size() - 1 : lower(job);  // < size()
    if (entries_[at].job_ == job && !entries_[at].gone_) return {&entries_[at], false};
    // entries_[at] is above job (or job's own, gone): a gone entry there or just before is
    // reused (order holds: the entries before it are below job, those after above).
    if (!entries_[at].gone_ && at > 0 && entries_[at - 1].gone_) --at;
    if (entries_[at].gone_) {
      entries_[at].job_ = job;
      entries_[at].gone_ = false;
      --gone_;
      return {&entries_[at], true};  // reset when it was erased
    }
    auto it = entries_.emplace(entries_.begin() + static_cast<std::ptrdiff_t>(at));
    it->job_ = job;
    return {&*it, true};
  }
  [[gnu::noinline]] void drop_gone() {
    std::erase_if(entries_, [](const Entry& e) { return e.gone_; });
    gone_ = 0;
  }

  std::vector<Entry> entries_;  // in id order; gone ones until they are dropped together
  std::size_t gone_ = 0;
};

}  // namespace muster::broker
