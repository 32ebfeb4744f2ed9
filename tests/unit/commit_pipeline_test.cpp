// commit_pipeline_test.cpp — pipelined group commit (broker/commit_pipeline.hpp): which actions
// wait for which journal commit, in which order they go, and when the loop must wait, under a
// fake clock; and the journal thread (broker/journal_thread.hpp) committing a batch while its
// caller goes on, and stopping at the first failure.
#include <doctest/doctest.h>

#include <condition_variable>
#include <mutex>

#include <fmt/format.h>

#include "commit_pipeline.hpp"
#include "journal_sqlite.hpp"
#include "journal_thread.hpp"
#include "temp_dir.hpp"

using namespace muster;
using namespace muster::broker;
using namespace std::chrono_literals;

namespace {

const TimePoint kT0{std::chrono::seconds{1000}};

journal::JournalOp submitted(journal::JobId id) {
  journal::Call c;
  c.job_id = id;
  c.node = "resize";
  return journal::Record{journal::Submitted{std::move(c)}};
}

// Actions told apart by their ping seq: the order they are released in is what is checked.
std::vector<Action> pings(std::initializer_list<std::uint64_t> seqs) {
  std::vector<Action> out;
  for (auto s : seqs) out.push_back(SendPing{"w", s});
  return out;
}

std::vector<std::uint64_t> take(CommitPipeline& p) {
  std::vector<std::uint64_t> seqs;
  for (auto& a : p.released()) seqs.push_back(std::get<SendPing>(a).seq);
  p.released().clear();
  return seqs;
}

std::vector<journal::JobId> jobs_of(const CommitPipeline::Batch& b) {
  std::vector<journal::JobId> ids;
  for (auto& turn : b.turns)
    for (auto& op : turn) ids.push_back(std::get<journal::Submitted>(std::get<journal::Record>(op)).call.job_id);
  return ids;
}

}  // namespace

TEST_CASE("commit pipeline: a turn without records, nothing held, goes at once") {
  CommitPipeline p(500ms);
  p.end_turn({}, pings({1, 2}), 0);
  CHECK(take(p) == std::vector<std::uint64_t>{1, 2});
  CHECK_FALSE(p.next_batch(kT0));
  CHECK(p.idle());
}

TEST_CASE("commit pipeline: a turn's actions wait for the commit of its records") {
  CommitPipeline p(500ms);
  p.end_turn({submitted(1), submitted(2)}, pings({1}), 10);
  CHECK(take(p).empty());  // not even before the batch is handed out
  auto b = p.next_batch(kT0);
  REQUIRE(b);
  CHECK(b->seq == 1);
  CHECK(jobs_of(*b) == std::vector<journal::JobId>{1, 2});
  CHECK(b->core_bytes == 10);
  CHECK(take(p).empty());
  CHECK_FALSE(p.next_batch(kT0));  // one batch in flight at a time
  p.committed(1);
  CHECK(take(p) == std::vector<std::uint64_t>{1});
  CHECK(p.idle());
}

TEST_CASE("commit pipeline: turns that end during a commit form the next batch and go in order") {
  CommitPipeline p(500ms);
  p.end_turn({submitted(1)}, pings({1}), 0);
  auto first = p.next_batch(kT0);
  REQUIRE(first);
  // While batch 1 commits, the loop works on: three more turns, two with records.
  p.end_turn({submitted(2)}, pings({2}), 0);
  p.end_turn({}, pings({3}), 0);  // no record: still behind turn 2 (a Ping after its WorkRequest)
  p.end_turn({submitted(3)}, pings({4}), 0);
  CHECK(take(p).empty());
  CHECK_FALSE(p.next_batch(kT0 + 1ms));  // batch 1 is still in flight
  p.committed(first->seq);
  CHECK(take(p) == std::vector<std::uint64_t>{1});  // only what waited for batch 1
  auto second = p.next_batch(kT0 + 4ms);
  REQUIRE(second);
  CHECK(second->seq == 2);
  CHECK(jobs_of(*second) == std::vector<journal::JobId>{2, 3});  // one transaction for both turns
  CHECK(take(p).empty());
  p.committed(second->seq);
  CHECK(take(p) == std::vector<std::uint64_t>{2, 3, 4});
  CHECK(p.idle());
}

TEST_CASE("commit pipeline: a batch holds each turn's vector as the core filled it; the core "
          "gets a spare back to fill") {
  CommitPipeline p(500ms);
  std::vector<journal::JournalOp> core_ops{submitted(1), submitted(2)};
  const journal::JournalOp* first_turn = core_ops.data();
  p.end_turn(std::move(core_ops), pings({1}), 0);
  CHECK(core_ops.empty());  // no spare yet: an empty vector
  // A spare (the journal thread's emptied vector) is what the core fills next.
  std::vector<journal::JournalOp> spare;
  spare.reserve(16);
  const journal::JournalOp* spare_data = spare.data();
  p.spares().push_back(std::move(spare));
  core_ops.push_back(submitted(3));
  const journal::JournalOp* second_turn = core_ops.data();
  p.end_turn(std::move(core_ops), pings({2}), 0);
  CHECK(core_ops.empty());
  CHECK(core_ops.data() == spare_data);  // the spare, with its capacity
  CHECK(p.spares().empty());
  p.end_turn({}, pings({3}), 0);  // no record: no turn in the batch
  auto b = p.next_batch(kT0);
  REQUIRE(b);
  REQUIRE(b->turns.size() == 2);
  CHECK(b->records == 3);
  // The turns' own vectors: no op was moved out of them.
  CHECK(b->turns[0].data() == first_turn);
  CHECK(b->turns[1].data() == second_turn);
  CHECK(jobs_of(*b) == std::vector<journal::JobId>{1, 2, 3});
  CHECK(p.stats().records == 3);
}

TEST_CASE("commit pipeline: a turn without records waits behind the batch in flight") {
  CommitPipeline p(500ms);
  p.end_turn({submitted(1)}, pings({1}), 0);
  auto b = p.next_batch(kT0);
  p.end_turn({}, pings({2}), 0);  // e.g. a JobGet answered from a Finished being committed
  CHECK(take(p).empty());
  p.committed(b->seq);
  CHECK(take(p) == std::vector<std::uint64_t>{1, 2});
  p.end_turn({}, pings({3}), 0);  // nothing held any more: at once
  CHECK(take(p) == std::vector<std::uint64_t>{3});
}

TEST_CASE("commit pipeline: a failed commit releases nothing that waited for it") {
  CommitPipeline p(500ms);
  p.end_turn({submitted(1)}, pings({1}), 0);
  auto b = p.next_batch(kT0);
  p.end_turn({}, pings({2}), 0);
  // The journal thread reports a failure: the daemon never calls committed() and stops.
  CHECK(take(p).empty());
  CHECK(p.held_turns() == 1);
  CHECK_FALSE(p.idle());
}

TEST_CASE("commit pipeline: the loop must wait once the batch in flight is older than max_lag") {
  CommitPipeline p(500ms);
  CHECK_FALSE(p.must_wait(kT0));
  CHECK(p.wait_from() == TimePoint::max());
  p.end_turn({submitted(1)}, {}, 0);
  CHECK_FALSE(p.must_wait(kT0 + 10s));  // pending, not in flight: the loop hands it over
  auto b = p.next_batch(kT0);
  CHECK(p.wait_from() == kT0 + 500ms);
  CHECK_FALSE(p.must_wait(kT0 + 499ms));
  CHECK(p.must_wait(kT0 + 500ms));
  p.committed(b->seq);
  CHECK_FALSE(p.must_wait(kT0 + 600ms));
}

TEST_CASE("deferred sync: nothing held for a written batch goes before its sync; the next batch is written meanwhile") {
  CommitPipeline p(500ms);
  p.end_turn({submitted(1)}, pings({1}), 0);
  auto first = p.next_batch(kT0);
  REQUIRE(first);
  p.written(first->seq);  // its COMMIT returned; the fsync runs now
  CHECK(take(p).empty());
  CHECK_FALSE(p.in_flight());
  CHECK_FALSE(p.idle());
  p.end_turn({submitted(2)}, pings({2}), 0);
  auto second = p.next_batch(kT0 + 1ms);  // written during batch 1's sync
  REQUIRE(second);
  CHECK(second->seq == 2);
  p.written(second->seq);
  CHECK(take(p).empty());  // written is not committed, for either batch
  p.committed(first->seq);
  CHECK(take(p) == std::vector<std::uint64_t>{1});
  p.committed(second->seq);
  CHECK(take(p) == std::vector<std::uint64_t>{2});
  CHECK(p.idle());
  CHECK(p.stats().commits == 2);
}

TEST_CASE("deferred sync: one sync confirms every batch written before it, in batch order") {
  CommitPipeline p(500ms);
  p.end_turn({submitted(1)}, pings({1}), 0);
  auto first = p.next_batch(kT0);
  p.written(first->seq);
  p.end_turn({submitted(2)}, pings({2}), 0);
  p.end_turn({}, pings({3}), 0);
  auto second = p.next_batch(kT0 + 1ms);
  p.written(second->seq);
  CHECK(take(p).empty());
  p.committed(second->seq);  // the sync began after batch 2 was written: it covers 1 and 2
  CHECK(take(p) == std::vector<std::uint64_t>{1, 2, 3});
  p.committed(first->seq);  // (an older confirmation changes nothing)
  CHECK(take(p).empty());
  CHECK(p.stats().commits == 1);
  CHECK(p.idle());
}

TEST_CASE("deferred sync: a turn without records after a batch written, not synced, waits for that sync") {
  CommitPipeline p(500ms);
  p.end_turn({submitted(1)}, {}, 0);  // records, no action (an expiry, a worker's answer acked later)
  auto b = p.next_batch(kT0);
  p.written(b->seq);
  // A JobGet answered from batch 1's state: not before batch 1 is synced.
  p.end_turn({}, pings({2}), 0);
  CHECK(take(p).empty());
  p.committed(b->seq);
  CHECK(take(p) == std::vector<std::uint64_t>{2});
}

TEST_CASE("deferred sync: a sync that never returns (or fails) releases nothing written since the last one") {
  CommitPipeline p(500ms);
  p.end_turn({submitted(1)}, pings({1}), 0);
  auto first = p.next_batch(kT0);
  p.written(first->seq);
  p.committed(first->seq);
  CHECK(take(p) == std::vector<std::uint64_t>{1});
  p.end_turn({submitted(2)}, pings({2}), 0);
  auto second = p.next_batch(kT0 + 1ms);
  p.written(second->seq);
  p.end_turn({submitted(3)}, pings({3}), 0);
  auto third = p.next_batch(kT0 + 2ms);
  p.written(third->seq);
  p.end_turn({}, pings({4}), 0);
  // No confirmation comes (the sync hangs, or failed and the daemon stops).
  CHECK(take(p).empty());
  CHECK(p.held_turns() == 2);  // batch 2's turn; batch 3's with the turn after it
  CHECK_FALSE(p.idle());
  CHECK(p.oldest_unconfirmed() == second->seq);
}

TEST_CASE("deferred sync: the loop must wait once the oldest batch not synced is older than max_lag") {
  CommitPipeline p(500ms);
  p.end_turn({submitted(1)}, {}, 0);
  auto first = p.next_batch(kT0);
  p.written(first->seq);  // nothing is being written now, but batch 1 is not synced
  p.end_turn({submitted(2)}, {}, 0);
  auto second = p.next_batch(kT0 + 100ms);
  p.written(second->seq);
  CHECK(p.wait_from() == kT0 + 500ms);
  CHECK_FALSE(p.must_wait(kT0 + 499ms));
  CHECK(p.must_wait(kT0 + 500ms));
  CHECK(p.oldest_unconfirmed() == first->seq);  // what the loop waits for
  p.committed(first->seq);
  CHECK(p.wait_from() == kT0 + 600ms);  // batch 2's turn now
  CHECK_FALSE(p.must_wait(kT0 + 599ms));
  p.committed(second->seq);
  CHECK(p.wait_from() == TimePoint::max());
  CHECK_FALSE(p.oldest_unconfirmed());
}

TEST_CASE("commit pipeline: the core's byte count after a commit") {
  // The journal holds 1000 after the batch the core counted as 900 (it does not count expiry
  // the same way); the core counted 50 more since: 1050.
  CHECK(CommitPipeline::resynced_bytes(950, 1000, 900) == 1050);
  CHECK(CommitPipeline::resynced_bytes(900, 1000, 900) == 1000);
  CHECK(CommitPipeline::resynced_bytes(100, 0, 900) == 0);  // never below zero
}

namespace {

// A journal whose commit() waits until the test opens it, and fails when told to.
class GatedJournal final : public journal::Journal {
 public:
  std::mutex m;
  std::condition_variable cv;
  bool open = false, in_commit = false, fail_next = false;
  std::vector<journal::JobId> committed;
  std::vector<journal::JobId> turn;
  bool in_turn_ = false;

  std::string describe() const override { return "gated"; }
  std::uint64_t epoch() const override { return 7; }
  journal::Loaded load() override { return {}; }
  void begin_turn() override { in_turn_ = true; }
  void append(const journal::Record& r) override {
    turn.push_back(std::get<journal::Submitted>(r).call.job_id);
  }
  std::vector<journal::JobId> expire(journal::WallTime) override { return {}; }
  void commit() override {
    std::unique_lock lock(m);
    in_commit = true;
    cv.notify_all();
    cv.wait(lock, [&] { return open; });
    in_commit = false;
    in_turn_ = false;
    if (fail_next) throw journal::JournalError("journal gated: commit failed, the turn is not durable: disk full");
    committed.insert(committed.end(), turn.begin(), turn.end());
    turn.clear();
    cv.notify_all();
  }
  void rollback() override {
    in_turn_ = false;
    turn.clear();
  }
  bool in_turn() const override { return in_turn_; }
  std::uint64_t payload_bytes() const override { return 42; }
  std::uint64_t byte_limit() const override { return 0; }
  journal::DeferredSync* deferred_sync() override { return sync; }
  journal::DeferredSync* sync = nullptr;
};

// A deferred sync that waits until the test opens it (each sync() lets one through), and fails
// when told to.
class GatedSync final : public journal::DeferredSync {
 public:
  std::mutex m;
  std::condition_variable cv;
  int entered = 0, allowed = 0, returned = 0;
  bool fail = false;
  void sync() override {
    std::unique_lock lock(m);
    ++entered;
    cv.notify_all();
    cv.wait(lock, [&] { return allowed >= entered; });
    if (fail) throw journal::JournalError("journal gated: fdatasync of the WAL failed: EIO");
    ++returned;
    cv.notify_all();
  }
  void wait_entered(int n) {
    std::unique_lock lock(m);
    cv.wait(lock, [&] { return entered >= n; });
  }
  void allow(int n) {
    {
      std::lock_guard lock(m);
      allowed = n;
    }
    cv.notify_all();
  }
};

// Hands batch 1 (job 1) to `t`, whose journal fails it with `what`: wait() reports it, and
// every later call too (the failure is sticky).
void fails_from_batch_1_on(journal::JournalThread& t, const char* what) {
  t.commit(1, {{submitted(1)}});
  CHECK_THROWS_WITH_AS(t.wait(1), doctest::Contains(what), journal::JournalError);
  CHECK_THROWS_AS(t.done(), journal::JournalError);
  CHECK_THROWS_AS(t.commit(2, {{submitted(2)}}), journal::JournalError);
}

}  // namespace

TEST_CASE("journal thread: a batch commits while its caller goes on; done() tells when") {
  auto owned = std::make_unique<GatedJournal>();
  GatedJournal& j = *owned;
  journal::JournalThread t(std::move(owned), 1000ms);
  CHECK(t.describe() == "gated");
  CHECK(t.epoch() == 7);
  t.commit(1, {{submitted(1), submitted(2)}});  // returns with the commit still to happen
  {
    std::unique_lock lock(j.m);
    j.cv.wait(lock, [&] { return j.in_commit; });  // the thread is inside commit()
  }
  CHECK_FALSE(t.done().written);  // not done while the journal's commit waits
  CHECK_THROWS_AS(t.commit(2, {{submitted(3)}}), std::logic_error);  // one batch at a time
  {
    std::lock_guard lock(j.m);
    j.open = true;
  }
  j.cv.notify_all();
  auto p = t.wait(1);
  REQUIRE(p.written);
  CHECK(p.written->seq == 1);
  CHECK(p.written->payload_bytes == 42);
  CHECK(p.synced == 1);  // a journal without a deferred sync: written is durable
  {
    std::lock_guard lock(j.m);
    CHECK(j.committed == std::vector<journal::JobId>{1, 2});
  }
  CHECK_FALSE(t.done().written);
}

TEST_CASE("journal thread: a failed commit is reported, and every later call reports it") {
  auto owned = std::make_unique<GatedJournal>();
  GatedJournal& j = *owned;
  j.open = true;
  j.fail_next = true;
  journal::JournalThread t(std::move(owned), 1000ms);
  fails_from_batch_1_on(t, "disk full");
  std::lock_guard lock(j.m);
  CHECK(j.committed.empty());
  CHECK_FALSE(j.in_turn());  // rolled back
}

TEST_CASE("journal thread: batches reach a SQLite journal in order; a refused record rolls its batch back") {
  test::TempDir dir;
  journal::SqliteOptions o;
  o.path = dir.path / "journal.db";
  {
    journal::JournalThread t(std::make_unique<journal::SqliteJournal>(o), 1000ms);
    t.commit(1, {{submitted(1), submitted(2)}});
    CHECK(t.wait(1).written->seq == 1);
    t.commit(2, {{submitted(3), journal::Record{journal::Acked{99}}}});  // 99: not held
    CHECK_THROWS_WITH_AS(t.wait(2), doctest::Contains("Acked for job 99"), journal::JournalError);
  }
  journal::SqliteJournal reopened(o);
  auto loaded = reopened.load();
  REQUIRE(loaded.calls.size() == 2);  // batch 2, job 3 included, left nothing
  CHECK(loaded.calls[0].job_id == 1);
  CHECK(loaded.calls[1].job_id == 2);
}

TEST_CASE("journal thread: a committed batch's vectors come back emptied, for the loop's next turns") {
  test::TempDir dir;
  journal::SqliteOptions o;
  o.path = dir.path / "journal.db";
  journal::JournalThread t(std::make_unique<journal::SqliteJournal>(o), 1000ms);
  journal::TurnOps batch{{submitted(1), submitted(2)}, {submitted(3)}};
  const journal::JournalOp* first = batch[0].data();
  t.commit(1, std::move(batch));
  CHECK(t.wait(1).written->seq == 1);
  // Batch 1's vectors are emptied after it is reported done, before the thread takes batch 2.
  t.commit(2, {{submitted(4)}});
  CHECK(t.wait(2).written->seq == 2);
  journal::TurnOps spares;
  t.take_spares(spares);
  REQUIRE(spares.size() >= 2);
  bool found = false;
  for (auto& v : spares) {
    CHECK(v.empty());
    found = found || v.data() == first;
  }
  CHECK(found);  // batch 1's first turn, its storage kept
}

// ---- one commit per call: early dispatch (commit_pipeline.hpp; docs/DURABILITY.md §3) -------

namespace {

journal::JournalOp dispatched(journal::JobId job, const std::string& worker, std::uint64_t rid) {
  return journal::Record{journal::Dispatched{job, worker, "", rid, 1}};
}

journal::JournalOp finished(journal::JobId job) {
  return journal::Record{journal::Finished{job, {}, {}, {}}};
}

Action work(const std::string& worker, std::uint64_t rid) {
  SendWorkRequest w;
  w.worker_id = worker;
  w.request_id = rid;
  return w;
}

Action accepted(std::uint64_t rid) { return ReplyToClient{Peer{}, rid, AcceptedBody{false, rid}}; }
Action result(std::uint64_t rid) { return ReplyToClient{Peer{}, rid, ResultBody{}}; }

std::vector<Action> acts(std::initializer_list<Action> a) { return std::vector<Action>(a); }

// What was released, as short labels ("wr w1 7", "accepted 7", "abort w1 3", "ping 2"), and
// forgotten.
std::vector<std::string> sent(CommitPipeline& p) {
  std::vector<std::string> out;
  for (auto& a : p.released()) {
    if (auto* w = std::get_if<SendWorkRequest>(&a)) out.push_back(fmt::format("wr {} {}", w->worker_id, w->request_id));
    else if (auto* ab = std::get_if<SendAbort>(&a)) out.push_back(fmt::format("abort {} {}", ab->worker_id, ab->request_id));
    else if (auto* ping = std::get_if<SendPing>(&a)) out.push_back(fmt::format("ping {}", ping->seq));
    else if (auto* r = std::get_if<ReplyToClient>(&a))
      out.push_back(fmt::format("{} {}", std::holds_alternative<AcceptedBody>(r->body) ? "accepted" : "result", r->request_id));
  }
  p.released().clear();
  return out;
}

using Sent = std::vector<std::string>;

}  // namespace

TEST_CASE("early dispatch: a WorkRequest whose Submitted is in the pending batch goes at once; its answer joins that batch") {
  CommitPipeline p(500ms);
  // Batch 1 (another call) is committing while call 7 arrives.
  p.end_turn({submitted(1)}, acts({accepted(1)}), 0);
  auto first = p.next_batch(kT0);
  REQUIRE(first);
  p.end_turn({submitted(7), dispatched(7, "w1", 70)}, acts({accepted(70), work("w1", 70)}), 0);
  CHECK(sent(p) == Sent{"wr w1 70"});  // the worker starts now; Accepted waits for the commit
  // The worker answers before batch 1 is done: its Finished joins the same pending batch.
  p.end_turn({finished(7)}, acts({result(70)}), 0);
  CHECK(sent(p).empty());
  p.committed(first->seq);
  CHECK(sent(p) == Sent{"accepted 1"});
  auto second = p.next_batch(kT0 + 4ms);
  REQUIRE(second);
  CHECK(second->records == 3);  // Submitted, Dispatched, Finished: one transaction, one commit
  p.committed(second->seq);
  CHECK(sent(p) == Sent{"accepted 70", "result 70"});
  CHECK(p.stats().early_work_requests == 1);
  CHECK(p.stats().batches == 2);
  CHECK(p.stats().records == 4);
  CHECK(p.idle());
}

TEST_CASE("early dispatch: a call queued in one turn and dispatched in a later one, same pending batch, goes at once") {
  CommitPipeline p(500ms);
  p.end_turn({submitted(1)}, {}, 0);
  auto first = p.next_batch(kT0);
  p.end_turn({submitted(7)}, acts({accepted(70)}), 0);  // queued: no worker free
  p.end_turn({dispatched(7, "w1", 70)}, acts({work("w1", 70)}), 0);  // a slot freed
  CHECK(sent(p) == Sent{"wr w1 70"});
  p.committed(first->seq);
  CHECK(sent(p).empty());
}

TEST_CASE("early dispatch: a call whose Submitted was handed to the journal waits for its Dispatched's commit") {
  CommitPipeline p(500ms);
  p.end_turn({submitted(7)}, acts({accepted(70)}), 0);
  auto first = p.next_batch(kT0);  // Submitted 7 is in flight
  REQUIRE(first);
  // Dispatched now would be in batch 2: a crash between the two commits leaves the call queued
  // in the journal while its worker runs it, so the WorkRequest waits for batch 2.
  p.end_turn({dispatched(7, "w1", 70)}, acts({work("w1", 70)}), 0);
  CHECK(sent(p).empty());
  p.committed(first->seq);
  CHECK(sent(p) == Sent{"accepted 70"});
  auto second = p.next_batch(kT0 + 4ms);
  REQUIRE(second);
  p.committed(second->seq);
  CHECK(sent(p) == Sent{"wr w1 70"});
  CHECK(p.stats().early_work_requests == 0);
}

TEST_CASE("early dispatch: a re-dispatch of a call committed earlier (Requeued, then Dispatched) waits") {
  CommitPipeline p(500ms);
  p.end_turn({submitted(7), dispatched(7, "w1", 70)}, acts({accepted(70), work("w1", 70)}), 0);
  CHECK(sent(p) == Sent{"wr w1 70"});  // nothing in flight: still early, the batch is pending
  auto first = p.next_batch(kT0);
  p.committed(first->seq);
  CHECK(sent(p) == Sent{"accepted 70"});
  // w1 died; the idempotent call goes to w2 in a later batch.
  p.end_turn({journal::Record{journal::Requeued{7, 1}}, dispatched(7, "w2", 70)}, acts({work("w2", 70)}), 0);
  CHECK(sent(p).empty());
  auto second = p.next_batch(kT0 + 1ms);
  p.committed(second->seq);
  CHECK(sent(p) == Sent{"wr w2 70"});
}

TEST_CASE("early dispatch: an Abort for the same worker held before it keeps the WorkRequest in order") {
  CommitPipeline p(500ms);
  p.end_turn({submitted(1)}, {}, 0);
  auto first = p.next_batch(kT0);
  // A cancelled call's Abort to w1 waits for batch 2 (its Finished); the slot it frees goes to
  // call 7 in the same turn: w1 must not get call 7 before it hears that call 3 is aborted.
  std::vector<Action> turn = acts({accepted(70), work("w2", 71)});
  turn.insert(turn.begin(), SendAbort{"w1", 30, ErrorCode::Cancelled, "cancelled"});
  turn.push_back(work("w1", 70));
  p.end_turn({finished(3), submitted(7), dispatched(7, "w1", 70), submitted(8), dispatched(8, "w2", 71)},
             std::move(turn), 0);
  CHECK(sent(p) == Sent{"wr w2 71"});  // w2 has no Abort waiting: at once
  p.committed(first->seq);
  auto second = p.next_batch(kT0 + 4ms);
  p.committed(second->seq);
  CHECK(sent(p) == Sent{"abort w1 30", "accepted 70", "wr w1 70"});
}

TEST_CASE("early dispatch: an Abort for the same worker held by an earlier turn keeps the WorkRequest "
          "behind it") {
  CommitPipeline p(500ms);
  p.end_turn({submitted(1)}, {}, 0);
  auto first = p.next_batch(kT0);
  // Turn A: call 3 is cancelled; its Abort to w1 waits for batch 2 (its Finished).
  p.end_turn({finished(3)}, {SendAbort{"w1", 30, ErrorCode::Cancelled, "cancelled"}}, 0);
  // Turn B: the slot it frees goes to call 7 on w1, call 8 goes to w2.
  p.end_turn({submitted(7), dispatched(7, "w1", 70), submitted(8), dispatched(8, "w2", 71)},
             acts({accepted(70), work("w1", 70), work("w2", 71)}), 0);
  CHECK(sent(p) == Sent{"wr w2 71"});  // w2 has no Abort waiting: at once
  p.committed(first->seq);
  auto second = p.next_batch(kT0 + 4ms);
  p.committed(second->seq);
  CHECK(sent(p) == Sent{"abort w1 30", "accepted 70", "wr w1 70"});
  // The Abort went: w1's next early WorkRequest goes at once again.
  p.end_turn({submitted(9), dispatched(9, "w1", 90)}, acts({accepted(90), work("w1", 90)}), 0);
  CHECK(sent(p) == Sent{"wr w1 90"});
}

TEST_CASE("early dispatch: off, every WorkRequest waits for its commit (the measurement baseline)") {
  CommitPipeline p(500ms, /*early_dispatch=*/false);
  p.end_turn({submitted(7), dispatched(7, "w1", 70)}, acts({accepted(70), work("w1", 70)}), 0);
  CHECK(sent(p).empty());
  auto first = p.next_batch(kT0);
  p.committed(first->seq);
  CHECK(sent(p) == Sent{"accepted 70", "wr w1 70"});
}

// ---- gather the answers (commit_pipeline.hpp; docs/DURABILITY.md §3) ----------------------

TEST_CASE("gather: a lone call's answer joins the batch of its Submitted, so the call commits once") {
  CommitPipeline p(500ms, true, /*gather=*/2ms);
  p.end_turn({submitted(7), dispatched(7, "w1", 70)}, acts({accepted(70), work("w1", 70)}), 0);
  CHECK(sent(p) == Sent{"wr w1 70"});
  // Nothing is in flight, but the batch waits for the worker's answer (at most 2 ms).
  CHECK_FALSE(p.next_batch(kT0));
  CHECK(p.gather_until() == kT0 + 2ms);
  CHECK_FALSE(p.next_batch(kT0 + 1ms));
  p.end_turn({finished(7)}, acts({result(70)}), 0);
  auto b = p.next_batch(kT0 + 1ms);  // the answer came: at once, before the 2 ms
  REQUIRE(b);
  CHECK(b->records == 3);  // Submitted, Dispatched, Finished: one transaction
  CHECK(p.gather_until() == TimePoint::max());
  CHECK(sent(p).empty());  // Accepted and the result wait for that one commit
  p.committed(b->seq);
  CHECK(sent(p) == Sent{"accepted 70", "result 70"});
  CHECK(p.stats().batches == 1);
  CHECK(p.stats().gathered == 1);
  CHECK(p.stats().finished_with_submitted == 1);
  CHECK(p.idle());
}

TEST_CASE("gather: without it (0 ms, as before) the same call commits twice in a row") {
  CommitPipeline p(500ms, true, /*gather=*/0ms);
  p.end_turn({submitted(7), dispatched(7, "w1", 70)}, acts({accepted(70), work("w1", 70)}), 0);
  CHECK(sent(p) == Sent{"wr w1 70"});
  auto first = p.next_batch(kT0);
  REQUIRE(first);
  CHECK(first->records == 2);
  p.end_turn({finished(7)}, acts({result(70)}), 0);
  p.committed(first->seq);
  CHECK(sent(p) == Sent{"accepted 70"});
  auto second = p.next_batch(kT0 + 1ms);
  REQUIRE(second);
  p.committed(second->seq);
  CHECK(sent(p) == Sent{"result 70"});
  CHECK(p.stats().gathered == 0);
  CHECK(p.stats().finished_with_submitted == 0);
}

TEST_CASE("gather: a batch waits at most the gather time, and only for the calls awaited when it could go") {
  CommitPipeline p(500ms, true, /*gather=*/2ms);
  p.end_turn({submitted(1)}, {}, 0);  // (no early dispatch: goes at once)
  auto first = p.next_batch(kT0);
  REQUIRE(first);
  p.end_turn({submitted(7), dispatched(7, "w1", 70)}, acts({accepted(70), work("w1", 70)}), 0);
  p.committed(first->seq);
  CHECK(sent(p) == Sent{"wr w1 70"});
  CHECK_FALSE(p.next_batch(kT0 + 4ms));  // waits for call 7's answer
  // Call 8 arrives meanwhile and is dispatched early too: it does not prolong the wait.
  p.end_turn({submitted(8), dispatched(8, "w2", 80)}, acts({accepted(80), work("w2", 80)}), 0);
  CHECK(sent(p) == Sent{"wr w2 80"});
  CHECK_FALSE(p.next_batch(kT0 + 5ms));
  p.end_turn({finished(7)}, acts({result(70)}), 0);
  auto second = p.next_batch(kT0 + 5ms);
  REQUIRE(second);
  CHECK(second->records == 5);  // 7's three records, 8's two (its answer comes later)
  p.committed(second->seq);
  CHECK(sent(p) == Sent{"accepted 70", "accepted 80", "result 70"});
  // Call 8's answer never comes in time: its Requeued (say) is a later batch's, after 2 ms.
  p.end_turn({submitted(9), dispatched(9, "w1", 90)}, acts({accepted(90), work("w1", 90)}), 0);
  CHECK(sent(p) == Sent{"wr w1 90"});
  CHECK_FALSE(p.next_batch(kT0 + 10ms));
  CHECK(p.gather_until() == kT0 + 12ms);
  CHECK_FALSE(p.next_batch(kT0 + 11ms));
  auto third = p.next_batch(kT0 + 12ms);  // the wait is over: the batch goes with what it has
  REQUIRE(third);
  CHECK(third->records == 2);
  p.committed(third->seq);
  CHECK(sent(p) == Sent{"accepted 90"});
}

TEST_CASE("gather: a loop that must wait for the journal (or drains) hands the batch out at once") {
  CommitPipeline p(500ms, true, /*gather=*/2ms);
  p.end_turn({submitted(7), dispatched(7, "w1", 70)}, acts({accepted(70), work("w1", 70)}), 0);
  CHECK(sent(p) == Sent{"wr w1 70"});
  CHECK_FALSE(p.next_batch(kT0));
  auto b = p.next_batch(kT0, /*gather=*/false);
  REQUIRE(b);
  CHECK(b->records == 2);
  CHECK(p.gather_until() == TimePoint::max());
  p.committed(b->seq);
  CHECK(sent(p) == Sent{"accepted 70"});
}

TEST_CASE("journal thread: with a deferred sync, a written batch counts once synced; the next is written meanwhile") {
  auto owned = std::make_unique<GatedJournal>();
  GatedJournal& j = *owned;
  GatedSync sync;
  j.sync = &sync;
  j.open = true;  // writes go through; the sync is what the test holds
  journal::JournalThread t(std::move(owned), 1000ms);
  t.commit(1, {{submitted(1)}});
  sync.wait_entered(1);  // batch 1 written, its sync under way (and held)
  auto p = t.done();
  REQUIRE(p.written);
  CHECK(p.written->seq == 1);
  CHECK(p.synced == 0);  // not durable yet: nothing that waits for it may go
  t.commit(2, {{submitted(2)}});  // accepted while batch 1 syncs
  {
    std::unique_lock lock(j.m);
    j.cv.wait_for(lock, 10s, [&] { return j.committed.size() == 2; });  // (bounded: a failure shows below)
    CHECK(j.committed == std::vector<journal::JobId>{1, 2});  // batch 2 written during batch 1's sync
  }
  p = t.done();
  CHECK(p.synced == 0);  // a sync that does not return confirms nothing
  sync.allow(1);
  p = t.wait(1);
  CHECK(p.synced == 1);  // the sync that began before batch 2 was written covers batch 1 only
  sync.wait_entered(2);  // the next sync, for batch 2
  CHECK(t.done().synced == 1);
  sync.allow(2);
  CHECK(t.wait(2).synced == 2);
}

TEST_CASE("journal thread: a failed sync is a failed commit; nothing more is written or confirmed") {
  auto owned = std::make_unique<GatedJournal>();
  GatedJournal& j = *owned;
  GatedSync sync;
  sync.fail = true;
  sync.allow(1);
  j.sync = &sync;
  j.open = true;
  journal::JournalThread t(std::move(owned), 1000ms);
  fails_from_batch_1_on(t, "fdatasync of the WAL failed");
  std::lock_guard lock(j.m);
  CHECK(j.committed == std::vector<journal::JobId>{1});  // written, never confirmed; batch 2 refused
}

TEST_CASE("journal thread: a SQLite journal at --journal-sync full syncs on a thread of its own; its batches load after a reopen") {
  test::TempDir dir;
  journal::SqliteOptions o;
  o.path = dir.path / "journal.db";
  o.sync = journal::SqliteOptions::Sync::Deferred;
  {
    journal::JournalThread t(std::make_unique<journal::SqliteJournal>(o), 1000ms);
    t.commit(1, {{submitted(1), submitted(2)}});
    auto p = t.wait(1);
    CHECK(p.synced >= 1);
    REQUIRE(p.written);
    t.commit(2, {{submitted(3)}});
    CHECK(t.wait(2).synced == 2);
  }
  journal::SqliteJournal reopened(o);
  CHECK(reopened.load().calls.size() == 3);
}
