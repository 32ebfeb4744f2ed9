// journal_fold.cpp — see journal_fold.hpp.
#include "journal_fold.hpp"

#include <type_traits>

namespace muster::broker::journal {
namespace {

JobId job_of(const Record& r) {
  return std::visit(
      [](const auto& x) -> JobId {
        if constexpr (std::is_same_v<std::decay_t<decltype(x)>, Submitted>) return x.call.job_id;
        else return x.job_id;
      },
      r);
}

}  // namespace

const std::vector<BatchStep>& BatchPlanner::plan(std::span<const std::vector<JournalOp>> turns) {
  folds_.clear();
  by_job_.clear();
  steps_.clear();
  ops_.clear();
  for (auto& turn : turns)
    for (auto& op : turn) ops_.push_back(&op);
  const std::vector<const JournalOp*>& ops = ops_;
  // The fold of each op's call, if its Submitted is in the batch (found once here, read again
  // by the second pass).
  op_fold_.assign(ops.size(), kNone);
  for (std::size_t i = 0; i < ops.size(); ++i) {
    const auto* rec = std::get_if<Record>(ops[i]);
    if (!rec) continue;
    const JobId job = job_of(*rec);
    if (std::holds_alternative<Submitted>(*rec)) {
      const auto [at, added] = by_job_.try_emplace(job);
      if (added) {
        at->fold = folds_.size();
        folds_.push_back(Fold{i, SIZE_MAX, i});
      } else if (!folds_[at->fold].closed) {
        folds_[at->fold].broken = true;
      }
      op_fold_[i] = at->fold;
      continue;
    }
    // Most lookups are of the calls submitted last (a Dispatched, a Finished) or of calls of
    // earlier batches (an Acked: below the first), both without a search.
    const auto* found = by_job_.find(job);
    if (!found) continue;
    const std::size_t at = found->fold;
    op_fold_[i] = at;
    Fold& f = folds_[at];
    if (f.closed) continue;
    if (std::holds_alternative<Dispatched>(*rec)) {
      f.dispatched = f.end = i;
    } else if (std::holds_alternative<Finished>(*rec)) {
      f.finished = true;
      f.end = i;
      f.closed = true;
    } else {
      f.closed = true;
    }
  }
  // A folded call's records before the last folded one have no step; the last writes the row.
  for (std::size_t i = 0; i < ops.size(); ++i) {
    if (const Fold* f = op_fold_[i] == kNone ? nullptr : &folds_[op_fold_[i]];
        f && !f->broken && f->end != f->submitted && i >= f->submitted && i <= f->end) {
      if (i < f->end) continue;
      FoldedRow row;
      row.submitted = &std::get<Submitted>(std::get<Record>(*ops[f->submitted]));
      if (f->dispatched != SIZE_MAX) row.dispatched = &std::get<Dispatched>(std::get<Record>(*ops[f->dispatched]));
      if (f->finished) row.finished = &std::get<Finished>(std::get<Record>(*ops[i]));
      steps_.push_back(BatchStep{i, true, row});
      continue;
    }
    steps_.push_back(BatchStep{i, false, {}});
  }
  return steps_;
}

}  // namespace muster::broker::journal
