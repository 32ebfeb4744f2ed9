// journal_fold.hpp — which records of a journal batch are written as one row (the folds of
// docs/DURABILITY.md §4 and §12), for every journal that writes a batch (append_all).
// A call whose Submitted is in the batch has the records of it that follow in that batch — its
// Dispatched ones, then perhaps its Finished — folded into one row, written at the place of the
// last of them: the row they leave (queued, running or finished). Any other record of the call
// (a Requeued, an Acked) ends the fold; the records after it apply to the row one by one. A
// second Submitted of a call still folding leaves all of that call's records to be written one
// by one (and refused as append() refuses them).
// Owns: the plan of one batch. Must never: touch a store, reorder the records of a call, or
// change what a store ends up holding (the row is what append() of each record would leave).
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "job_index.hpp"
#include "journal.hpp"

namespace muster::broker::journal {

// The records one row folds: its Submitted, the last of its Dispatched (or none), its Finished
// (or none).
struct FoldedRow {
  const Submitted* submitted = nullptr;
  const Dispatched* dispatched = nullptr;
  const Finished* finished = nullptr;
};

// One write of a batch, in order: `row` set — write that row; else ops[op] alone (a record, or
// an ExpireKept). Ops folded into a later row have no step.
struct BatchStep {
  std::size_t op = 0;  // for a row: the op it is written at (the last one folded)
  bool is_row = false;
  FoldedRow row;
};

class BatchPlanner {
 public:
  // The writes of the ops of `turns` (each turn's ops, one turn after the other), in order;
  // valid until the next plan() and while `turns` lives. A step's `op` is the index of its op
  // counted across the turns: op(i).
  const std::vector<BatchStep>& plan(std::span<const std::vector<JournalOp>> turns);
  const JournalOp& op(std::size_t i) const { return *ops_[i]; }
  // The same for the ops of one turn.
  const std::vector<BatchStep>& plan(const std::vector<JournalOp>& ops) { return plan(std::span(&ops, 1)); }

 private:
  // For each call whose Submitted is in the batch: the op indexes of it, of its last folded
  // Dispatched, and of the last record folded into its row (`end`, where the row is written).
  struct Fold {
    std::size_t submitted = 0, dispatched = SIZE_MAX, end = 0;
    bool finished = false;  // its Finished is folded too
    bool closed = false;    // a record of it that is not folded came (or its Finished)
    bool broken = false;    // a second Submitted while folding: write its records one by one
  };
  // The batch's folds, in the order of their Submitted, and the index in folds_ of each by
  // job id to find them (job_index.hpp: job ids grow with every Submit, so a fold is appended
  // at the end, with no allocation per call as a hash map's node was: docs/DURABILITY.md §10
  // "Session 12"). All kept to reuse their memory.
  std::vector<Fold> folds_;
  struct FoldAt {
    std::size_t fold = 0;
  };
  JobIndex<FoldAt> by_job_;
  std::vector<const JournalOp*> ops_;  // the batch's ops in order, across its turns
  std::vector<std::size_t> op_fold_;  // per op: its call's index in folds_ (kNone: none)
  std::vector<BatchStep> steps_;
  static constexpr std::size_t kNone = SIZE_MAX;
};

}  // namespace muster::broker::journal
