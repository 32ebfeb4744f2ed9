// journal_fold_test.cpp — BatchPlanner (journal_fold.hpp): which records of a batch are one row.
// The contract tests check that a folded row is stored as append() of each record would; these
// check the plan itself: a fold missed is not visible in what a store holds, only in its cost.
#include <doctest/doctest.h>

#include "journal_fold.hpp"
#include "journal_records.hpp"

namespace muster::test {
namespace {

using namespace broker::journal;

Finished finished(JobId job) { return Finished{job, Outcome{}, kT0, kT0 + 1h}; }

// The plan as text: "r<op>:<submitted job>[d][f]" for a row, "<op>" for an op written alone.
std::string plan_text(const std::vector<BatchStep>& steps) {
  std::string out;
  for (const BatchStep& s : steps) {
    if (!out.empty()) out += ' ';
    if (!s.is_row) {
      out += std::to_string(s.op);
      continue;
    }
    out += 'r' + std::to_string(s.op) + ':' + std::to_string(s.row.submitted->call.job_id);
    if (s.row.dispatched) out += 'd' + std::to_string(s.row.dispatched->request_id);
    if (s.row.finished) out += 'f';
  }
  return out;
}
std::string plan_of(BatchPlanner& planner, const std::vector<JournalOp>& ops) { return plan_text(planner.plan(ops)); }

}  // namespace

TEST_CASE("journal fold: calls submitted out of job order fold as in order; records of calls "
          "of earlier batches, and a second Submitted, are written alone") {
  BatchPlanner planner;
  const std::vector<JournalOp> ops{
      Record{Submitted{call(9)}},              // 0
      Record{Submitted{call(7)}},              // 1: below the first (inserted in order)
      Record{Acked{3}},                        // 2: an earlier batch's call
      Record{Submitted{call(8)}},              // 3: between the two
      Record{Dispatched{8, "w", "id", 80, 1}}, // 4
      Record{Dispatched{7, "w", "id", 70, 1}}, // 5
      Record{Dispatched{9, "w", "id", 90, 1}}, // 6
      Record{finished(7)},                     // 7: 7's row, finished
      Record{Dispatched{12, "w", "id", 1, 1}}, // 8: above every Submitted of the batch
      Record{finished(8)},                     // 9: 8's row, finished
      Record{Submitted{call(11)}},             // 10
      Record{Submitted{call(11)}},             // 11: a second Submitted while folding
      Record{Dispatched{11, "w", "id", 110, 1}},
      ExpireKept{kT0},                         // 13
      Record{Acked{7}},                        // 14: after its row: written alone
  };
  CHECK(plan_of(planner, ops) == "2 r6:9d90 r7:7d70f 8 r9:8d80f 10 11 12 13 14");
  // The planner's memory is reused: a second batch knows nothing of the first.
  const std::vector<JournalOp> next{Record{Dispatched{9, "w", "id", 91, 2}},
                                    Record{Submitted{call(13)}}, Record{finished(13)}};
  CHECK(plan_of(planner, next) == "0 r2:13f");
}

TEST_CASE("journal fold: a batch of several turns is planned as their ops one after the other; "
          "a call folds across turns, and op(i) is the i-th op counted across them") {
  BatchPlanner planner;
  const std::vector<std::vector<JournalOp>> turns{
      {Record{Submitted{call(5)}}, Record{Submitted{call(6)}}},  // 0, 1
      {},                                                        // (a turn of no records)
      {Record{Dispatched{5, "w", "id", 50, 1}}, Record{Acked{2}}},  // 2, 3
      {Record{Dispatched{6, "w", "id", 60, 1}}, Record{finished(5)}, ExpireKept{kT0}},  // 4, 5, 6
  };
  const auto& steps = planner.plan(std::span(turns));
  CHECK(plan_text(steps) == "3 r4:6d60 r5:5d50f 6");
  CHECK(std::get<Acked>(std::get<Record>(planner.op(3))).job_id == 2);
  CHECK(std::get<Dispatched>(std::get<Record>(planner.op(4))).request_id == 60);
  CHECK(std::holds_alternative<ExpireKept>(planner.op(6)));
  // The row points into the turns' own records (nothing was copied out of them).
  CHECK(steps[2].row.submitted == &std::get<Submitted>(std::get<Record>(turns[0][0])));
  CHECK(steps[2].row.finished == &std::get<Finished>(std::get<Record>(turns[3][1])));
}

}  // namespace muster::test
