// journal_contract_test.cpp — the contract of journal.hpp, run against every implementation
// (tests/unit/journal_stores.hpp: SQLite in a temp dir, PostgreSQL in a database of a private
// server): records round-trip, a refused record rolls its turn back, a turn never committed
// leaves nothing, the epoch grows with every open, payload bytes are counted and freed and
// survive a reopen, finished calls expire at their time, and a daemon SIGKILLed with calls in
// every state reloads into the right recovery verdict for each.
#include <doctest/doctest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <vector>

#include "journal_records.hpp"
#include "journal_recovery.hpp"
#include "journal_stores.hpp"

using namespace muster::broker;
using namespace muster::broker::journal;
using namespace muster::test;
using namespace std::chrono_literals;

#define MUSTER_STORES SqliteStore, PostgresStore

TEST_CASE_TEMPLATE("journal contract: every record round-trips through the store", Store, MUSTER_STORES) {
  Store store;
  MUSTER_SKIP_UNLESS_AVAILABLE(store);
  {
    auto j = store.open();
    CHECK(j->describe().starts_with(Store::kName));
    CHECK(j->load().calls.empty());
    CHECK(j->load().next_job_id == 1);
    one_turn(*j, {Submitted{call(1, "a")}, Submitted{call(2, std::string(3, '\0'), "p")},
                  Submitted{call(3, "")}, Submitted{call(4, "d")}, Submitted{call(5, "e")}});
    one_turn(*j, {Dispatched{2, "w1", "id-w1", (1ull << 40) + 7, 1},
                  Dispatched{3, "w2", "id-w2", (1ull << 40) + 8, 1},
                  Dispatched{3, "w2", "id-w2", (1ull << 40) + 8, 2},  // a re-send
                  Dispatched{4, "w1", "id-w1", (1ull << 40) + 9, 1}, Requeued{4, 1},
                  Dispatched{5, "w3", "id-w3", 11, 1}});
    one_turn(*j, {Finished{5, Outcome{ErrorCode::None, bytes_of("out"), ""}, kT0 + 2s, kT0 + 1h},
                  Submitted{call(6)},
                  Finished{6, Outcome{ErrorCode::WorkerError, {}, "boom ünïcode"}, kT0 + 3s,
                           kT0 + 2h}});
    one_turn(*j, {Acked{6}});
  }
  auto j = store.open();
  const Loaded loaded = j->load();
  CHECK(loaded.next_job_id == 7);  // 6 was acked and is gone; its id is never reused
  REQUIRE(loaded.calls.size() == 5);
  const Call& c1 = loaded.calls[0];
  CHECK(c1.job_id == 1);
  CHECK(c1.state == CallState::Queued);
  CHECK(c1.node == "resize");
  CHECK(c1.caller == Caller{"id-client", "alice", "ws1", "client"});
  CHECK(c1.trace_id == "trace-1");
  CHECK(string_of(c1.inputs) == "a");
  CHECK(c1.parameters.bytes.empty());
  CHECK_FALSE(c1.idempotent);
  CHECK(c1.submitted == kT0 + 1ms);
  CHECK(c1.deadline == kT0 + 30s);
  CHECK_FALSE(c1.outcome);

  const Call& c2 = loaded.calls[1];
  CHECK(c2.state == CallState::Running);
  CHECK(string_of(c2.inputs) == std::string(3, '\0'));  // binary-safe
  CHECK(string_of(c2.parameters) == "p");
  CHECK(c2.idempotent);
  CHECK(c2.worker_id == "w1");
  CHECK(c2.worker_identity == "id-w1");
  CHECK(c2.request_id == (1ull << 40) + 7);
  CHECK(c2.attempts == 1);

  const Call& c3 = loaded.calls[2];
  CHECK(c3.state == CallState::Running);
  CHECK(c3.inputs.bytes.empty());
  CHECK(c3.attempts == 2);

  const Call& c4 = loaded.calls[3];
  CHECK(c4.state == CallState::Queued);
  CHECK(c4.worker_id.empty());
  CHECK(c4.request_id == 0);
  CHECK(c4.attempts == 1);
  CHECK(c4.deaths == 1);

  const Call& c5 = loaded.calls[4];
  CHECK(c5.state == CallState::Finished);
  REQUIRE(c5.outcome);
  CHECK(c5.outcome->ok());
  CHECK(string_of(c5.outcome->outputs) == "out");
  CHECK(c5.inputs.bytes.empty());  // a finished call's inputs left the journal
  CHECK(c5.finished == kT0 + 2s);
  CHECK(c5.expires == kT0 + 1h);
  // What it holds is counted the same way from the store as by append().
  CHECK(j->payload_bytes() == 1 + 3 + 1 + 0 + 1 + 3);
}

TEST_CASE_TEMPLATE("journal contract: append_all of a batch equals appending one by one, and a "
                   "refused record in it throws and rolls the turn back", Store, MUSTER_STORES) {
  Store store;
  MUSTER_SKIP_UNLESS_AVAILABLE(store);
  auto j = store.open();
  // 600 calls: more than one pipelined slice (PostgreSQL sends 256 at a time).
  std::vector<JournalOp> ops;
  for (JobId id = 1; id <= 600; ++id) ops.push_back(Record{Submitted{call(id, "in")}});
  for (JobId id = 1; id <= 600; id += 2) ops.push_back(Record{Dispatched{id, "w1", "id-w1", 1000 + id, 1}});
  ops.push_back(Record{Finished{1, Outcome{ErrorCode::None, bytes_of("out"), ""}, kT0, kT0 + 1s}});
  ops.push_back(ExpireKept{kT0 + 2s});  // drops job 1 again, in the same turn
  ops.push_back(Record{Acked{2}});
  j->begin_turn();
  j->append_all(ops);
  CHECK(j->payload_bytes() == 598 * 2);  // counted within the turn
  j->commit();
  auto loaded = j->load();
  REQUIRE(loaded.calls.size() == 598);
  CHECK(loaded.calls.front().job_id == 3);
  CHECK(loaded.calls.front().state == CallState::Running);
  CHECK(loaded.calls.front().request_id == 1003);
  CHECK(loaded.calls[1].state == CallState::Queued);
  CHECK(loaded.next_job_id == 601);
  // A refused record in the middle of a batch (the third slice): nothing of the turn stays.
  ops.clear();
  for (JobId id = 601; id <= 1000; ++id) ops.push_back(Record{Submitted{call(id, "in")}});
  ops.push_back(Record{Dispatched{9999, "w1", "id", 1, 1}});
  ops.push_back(Record{Acked{3}});
  j->begin_turn();
  CHECK_THROWS_WITH_AS(j->append_all(ops), doctest::Contains("Dispatched for job 9999"), JournalError);
  j->rollback();
  CHECK(j->payload_bytes() == 598 * 2);
  CHECK(j->load().calls.size() == 598);
  // The store is usable again.
  one_turn(*j, {Acked{3}});
  CHECK(j->load().calls.size() == 597);
}

// Every field load() returns, compared (a call written by append_all as by append).
static void check_same_call(const Call& a, const Call& b) {
  INFO("job ", a.job_id);
  CHECK(a.job_id == b.job_id);
  CHECK(a.state == b.state);
  CHECK(a.node == b.node);
  CHECK(a.caller == b.caller);
  CHECK(a.trace_id == b.trace_id);
  CHECK(string_of(a.inputs) == string_of(b.inputs));
  CHECK(string_of(a.parameters) == string_of(b.parameters));
  CHECK(a.idempotent == b.idempotent);
  CHECK(a.submitted == b.submitted);
  CHECK(a.deadline == b.deadline);
  CHECK(a.worker_id == b.worker_id);
  CHECK(a.worker_identity == b.worker_identity);
  CHECK(a.request_id == b.request_id);
  CHECK(a.attempts == b.attempts);
  CHECK(a.deaths == b.deaths);
  REQUIRE(a.outcome.has_value() == b.outcome.has_value());
  if (a.outcome) {
    CHECK(a.outcome->code == b.outcome->code);
    CHECK(string_of(a.outcome->outputs) == string_of(b.outcome->outputs));
    CHECK(a.outcome->message == b.outcome->message);
    CHECK(a.finished == b.finished);
    CHECK(a.expires == b.expires);
  }
}

TEST_CASE_TEMPLATE("journal contract: a call's Submitted with its Dispatched and Finished in one batch "
                   "(what append_all folds into one row) is stored as append() of each would",
                   Store, MUSTER_STORES) {
  Store by_one, by_batch;
  MUSTER_SKIP_UNLESS_AVAILABLE(by_one);
  auto one = by_one.open();
  auto batch = by_batch.open();
  auto ok = [](const std::string& out, WallTime at) {
    return Finished{0, Outcome{ErrorCode::None, bytes_of(out), ""}, at, at + 1h};
  };
  auto with_job = [](Finished f, JobId job) {
    f.job_id = job;
    return f;
  };
  // Earlier batch: call 20 is open before the batch (its Finished is not foldable).
  const std::vector<JournalOp> before{Record{Submitted{call(20, "twenty", "p")}}};
  const std::vector<JournalOp> ops{
      // 1: the common case, with a re-send (the row keeps the last attempt).
      Record{Submitted{call(1, "in-1", "par")}}, Record{Dispatched{1, "w1", "id-w1", 101, 1}},
      Record{Dispatched{1, "w1", "id-w1", 101, 2}},
      // 2: finished while queued (a cancel or a deadline): no worker, attempts 0.
      Record{Submitted{call(2, "in-2")}},
      // 3: requeued in between (its worker died): written record by record.
      Record{Submitted{call(3, "in-3")}}, Record{Dispatched{3, "w2", "id-w2", 103, 1}},
      Record{Requeued{3, 1}}, Record{Dispatched{3, "w1", "id-w1", 104, 2}},
      Record{with_job(Finished{2, Outcome{ErrorCode::Cancelled, {}, "cancelled ü"}, kT0 + 5s, kT0 + 2h}, 2)},
      ExpireKept{kT0 + 1h},  // between a Submitted and its Finished: expires nothing of them
      Record{with_job(ok("out-1", kT0 + 6s), 1)}, Record{with_job(ok("out-3", kT0 + 7s), 3)},
      // 4: finished and acked in the same batch: gone, its bytes freed.
      Record{Submitted{call(4, "in-4")}}, Record{Dispatched{4, "w1", "id-w1", 105, 1}},
      Record{with_job(ok("out-4", kT0 + 8s), 4)}, Record{Acked{4}},
      // 5: still running at the end of the batch.
      Record{Submitted{call(5, "in-5")}}, Record{Dispatched{5, "w2", "id-w2", 106, 1}},
      // 20: from the batch before.
      Record{Dispatched{20, "w1", "id-w1", 107, 1}}, Record{with_job(ok("out-20", kT0 + 9s), 20)},
      // 6: two calls finished in reverse order of submission.
      Record{Submitted{call(6, "in-6")}}, Record{Submitted{call(7, "in-7")}},
      Record{with_job(ok("out-7", kT0 + 10s), 7)}, Record{with_job(ok("out-6", kT0 + 11s), 6)},
  };
  for (Journal* j : {one.get(), batch.get()}) {
    j->begin_turn();
    j->append_all(before);
    j->commit();
  }
  one->begin_turn();
  for (const auto& op : ops) {
    if (auto* rec = std::get_if<Record>(&op)) one->append(*rec);
    else one->expire(std::get<ExpireKept>(op).now);
  }
  const auto bytes_in_turn = one->payload_bytes();
  one->commit();
  batch->begin_turn();
  batch->append_all(ops);
  CHECK(batch->payload_bytes() == bytes_in_turn);
  batch->commit();
  CHECK(batch->payload_bytes() == one->payload_bytes());
  const Loaded a = one->load(), b = batch->load();
  CHECK(a.next_job_id == 21);
  CHECK(b.next_job_id == a.next_job_id);
  REQUIRE(a.calls.size() == 7);  // 1, 2, 3, 5, 6, 7, 20
  REQUIRE(b.calls.size() == a.calls.size());
  for (std::size_t i = 0; i < a.calls.size(); ++i) check_same_call(a.calls[i], b.calls[i]);
  // Records after the batch apply to the rows it wrote, and the bytes they free match.
  for (Journal* j : {one.get(), batch.get()}) {
    one_turn(*j, {Acked{1}, Acked{2}, Acked{7}});
    CHECK_THROWS_WITH_AS(one_turn(*j, {Finished{6, Outcome{}, kT0, kT0}}),
                         doctest::Contains("Finished for job 6"), JournalError);
    j->rollback();
  }
  CHECK(batch->payload_bytes() == one->payload_bytes());
  one.reset();  // and so does a reopened journal
  batch.reset();
  one = by_one.open();
  batch = by_batch.open();
  CHECK(batch->payload_bytes() == one->payload_bytes());
  const Loaded ra = one->load(), rb = batch->load();
  REQUIRE(ra.calls.size() == 4);  // 3, 5, 6, 20
  REQUIRE(rb.calls.size() == ra.calls.size());
  for (std::size_t i = 0; i < ra.calls.size(); ++i) check_same_call(ra.calls[i], rb.calls[i]);
}

TEST_CASE_TEMPLATE("journal contract: many folded rows and Acked records in a row are "
                   "stored as append() of each would; a row refused among them rolls the turn back",
                   Store, MUSTER_STORES) {
  Store by_one, by_batch;
  MUSTER_SKIP_UNLESS_AVAILABLE(by_one);
  auto one = by_one.open();
  auto batch = by_batch.open();
  // 37 calls submitted and dispatched, then their answers: 1..33 finished (their rows
  // consecutive steps of the plan, in the order of the answers), 34..37 still running; an
  // Acked of an earlier call (100) cuts the run of rows in two.
  std::vector<JournalOp> ops;
  const std::vector<JournalOp> before{Record{Submitted{call(100, "hundred")}},
                                      Record{Finished{100, Outcome{ErrorCode::None, bytes_of("h"), ""}, kT0, kT0 + 1h}}};
  for (JobId id = 1; id <= 37; ++id) {
    ops.push_back(Record{Submitted{call(id, "in-" + std::to_string(id), id % 2 ? "p" : "")}});
    ops.push_back(Record{Dispatched{id, "w" + std::to_string(id % 3), "id-w", 1000 + id, 1}});
  }
  for (JobId id = 33; id >= 1; --id) {
    ops.push_back(Record{Finished{id, Outcome{id % 5 ? ErrorCode::None : ErrorCode::WorkerError,
                                              bytes_of(id % 5 ? "out-" + std::to_string(id) : ""),
                                              id % 5 ? "" : "boom"},
                                  kT0 + std::chrono::seconds{id}, kT0 + 1h}});
    if (id == 12) ops.push_back(Record{Acked{100}});
  }
  for (Journal* j : {one.get(), batch.get()}) {
    j->begin_turn();
    j->append_all(before);
    j->commit();
  }
  one->begin_turn();
  for (const auto& op : ops) one->append(std::get<Record>(op));
  const auto bytes_in_turn = one->payload_bytes();
  one->commit();
  batch->begin_turn();
  batch->append_all(ops);
  CHECK(batch->payload_bytes() == bytes_in_turn);
  batch->commit();
  const Loaded a = one->load(), b = batch->load();
  CHECK(b.next_job_id == a.next_job_id);
  REQUIRE(a.calls.size() == 37);
  REQUIRE(b.calls.size() == a.calls.size());
  for (std::size_t i = 0; i < a.calls.size(); ++i) check_same_call(a.calls[i], b.calls[i]);
  // Acked records in a row, in no particular order, with gaps, finished and running calls:
  // the rows and bytes one by one leaves.
  std::vector<JournalOp> acks;
  for (JobId id : {3, 1, 2, 4, 5, 9, 7, 8, 12, 20, 19, 18, 31, 30})
    acks.push_back(Record{Acked{id}});
  acks.push_back(Record{Dispatched{35, "w9", "id-w9", 3035, 2}});
  for (JobId id : {21, 22, 23}) acks.push_back(Record{Acked{id}});
  one->begin_turn();
  for (const auto& op : acks) one->append(std::get<Record>(op));
  one->commit();
  batch->begin_turn();
  batch->append_all(acks);
  batch->commit();
  CHECK(batch->payload_bytes() == one->payload_bytes());
  const Loaded aa = one->load(), ab = batch->load();
  REQUIRE(aa.calls.size() == 37 - 17);
  REQUIRE(ab.calls.size() == aa.calls.size());
  for (std::size_t i = 0; i < aa.calls.size(); ++i) check_same_call(aa.calls[i], ab.calls[i]);
  // An Acked of a call no longer held, among others in a row: refused as one by one refuses it.
  for (Journal* j : {one.get(), batch.get()}) {
    j->begin_turn();
    CHECK_THROWS_WITH_AS(j->append_all({Record{Acked{10}}, Record{Acked{11}}, Record{Acked{1}}, Record{Acked{13}}}),
                         doctest::Contains("Acked for job 1,"), JournalError);
    j->rollback();
  }
  // A Submitted of a job the journal holds, among 20 new folded rows: refused as one by one
  // refuses it, and nothing of the turn stays.
  std::vector<JournalOp> bad;
  for (JobId id = 201; id <= 220; ++id) {
    bad.push_back(Record{Submitted{call(id == 210 ? 6 : id, "x")}});
    bad.push_back(Record{Dispatched{id == 210 ? 6 : id, "w1", "id-w1", 2000 + id, 1}});
  }
  for (Journal* j : {one.get(), batch.get()}) {
    const auto bytes = j->payload_bytes();
    j->begin_turn();
    if (j == one.get())
      CHECK_THROWS_AS(for (const auto& op : bad) j->append(std::get<Record>(op)), JournalError);
    else
      CHECK_THROWS_AS(j->append_all(bad), JournalError);
    j->rollback();
    CHECK(j->payload_bytes() == bytes);
    CHECK(j->load().calls.size() == 37 - 17);
    one_turn(*j, {Acked{10}, Acked{11}, Finished{34, Outcome{ErrorCode::None, bytes_of("late"), ""}, kT0, kT0 + 1h}});
  }
  CHECK(batch->payload_bytes() == one->payload_bytes());
}

TEST_CASE_TEMPLATE("journal contract: a record for a call it does not hold is refused and rolls "
                   "the turn back", Store, MUSTER_STORES) {
  Store store;
  MUSTER_SKIP_UNLESS_AVAILABLE(store);
  auto j = store.open();
  one_turn(*j, {Submitted{call(1)}});
  j->begin_turn();
  j->append(Submitted{call(2)});
  CHECK_THROWS_WITH_AS(j->append(Dispatched{9, "w1", "id", 1, 1}),
                       doctest::Contains("Dispatched for job 9"), JournalError);
  j->rollback();
  CHECK(j->load().calls.size() == 1);
  one_turn(*j, {Finished{1, Outcome{ErrorCode::Cancelled, {}, "x"}, kT0, kT0 + 1h}});
  j->begin_turn();
  CHECK_THROWS_AS(j->append(Dispatched{1, "w1", "id", 1, 1}), JournalError);  // finished
  CHECK_THROWS_AS(j->append(Submitted{call(1)}), JournalError);               // id taken
  CHECK_THROWS_AS(j->append(Acked{5}), JournalError);
  j->rollback();
  CHECK_THROWS_WITH_AS(j->append(Acked{1}), doctest::Contains("outside a turn"), JournalError);
  // The statements that failed are usable again.
  one_turn(*j, {Submitted{call(2)}, Acked{1}});
  CHECK(j->load().calls.size() == 1);
  CHECK(j->load().calls[0].job_id == 2);
}

TEST_CASE_TEMPLATE("journal contract: a turn never committed leaves nothing, the turns before "
                   "intact", Store, MUSTER_STORES) {
  Store store;
  MUSTER_SKIP_UNLESS_AVAILABLE(store);
  {
    auto j = store.open();
    one_turn(*j, {Submitted{call(1)}});
    j->begin_turn();
    j->append(Submitted{call(2)});
    j->append(Dispatched{1, "w1", "id-w1", 5, 1});
  }  // closed mid-turn
  auto j = store.open();
  const Loaded loaded = j->load();
  REQUIRE(loaded.calls.size() == 1);
  CHECK(loaded.calls[0].state == CallState::Queued);
  CHECK(loaded.next_job_id == 2);
}

TEST_CASE_TEMPLATE("journal contract: every open for writing takes a greater epoch", Store, MUSTER_STORES) {
  Store store;
  MUSTER_SKIP_UNLESS_AVAILABLE(store);
  std::uint64_t first = 0;
  {
    auto j = store.open();
    first = j->epoch();
    CHECK(first >= 1);
  }
  auto j = store.open();
  CHECK(j->epoch() == first + 1);
}

TEST_CASE_TEMPLATE("journal contract: payload bytes are counted against the limit, and freed",
                   Store, MUSTER_STORES) {
  Store store;
  MUSTER_SKIP_UNLESS_AVAILABLE(store);
  auto j = store.open(100);
  CHECK(j->byte_limit() == 100);
  CHECK(j->admits(100));
  CHECK_FALSE(j->admits(101));
  j->begin_turn();
  j->append(Submitted{call(1, std::string(40, 'a'), std::string(20, 'b'))});
  CHECK(j->payload_bytes() == 60);  // counted within the turn: the next Submit of it sees it
  CHECK(j->admits(40));
  CHECK_FALSE(j->admits(41));
  j->rollback();
  CHECK(j->payload_bytes() == 0);  // an abandoned turn holds nothing
  one_turn(*j, {Submitted{call(1, std::string(40, 'a'), std::string(20, 'b'))},
                Submitted{call(2, std::string(30, 'c'))}});
  CHECK(j->payload_bytes() == 90);
  // Finishing frees the inputs and holds the outputs (never refused, even beyond the limit).
  one_turn(*j, {Finished{1, Outcome{ErrorCode::None, bytes_of(std::string(70, 'o')), ""}, kT0,
                         kT0 + 1h}});
  CHECK(j->payload_bytes() == 100);
  one_turn(*j, {Finished{2, Outcome{ErrorCode::WorkerError, {}, "12345"}, kT0, kT0 + 1h}});
  CHECK(j->payload_bytes() == 75);
  CHECK_FALSE(j->admits(26));
  one_turn(*j, {Acked{1}});
  CHECK(j->payload_bytes() == 5);
  CHECK(j->admits(95));
}

TEST_CASE_TEMPLATE("journal contract: the byte count survives a reopen", Store, MUSTER_STORES) {
  Store store;
  MUSTER_SKIP_UNLESS_AVAILABLE(store);
  {
    auto j = store.open(1000);
    one_turn(*j, {Submitted{call(1, std::string(300, 'a'))}, Submitted{call(2, "bb", "ccc")}});
  }
  auto j = store.open(1000);
  CHECK(j->payload_bytes() == 305);
  CHECK(j->admits(695));
  CHECK_FALSE(j->admits(696));
}

TEST_CASE_TEMPLATE("journal contract: finished calls expire at their time, and only those", Store,
                   MUSTER_STORES) {
  Store store;
  MUSTER_SKIP_UNLESS_AVAILABLE(store);
  auto j = store.open();
  one_turn(*j, {Submitted{call(1)}, Submitted{call(2)}, Submitted{call(3)}, Submitted{call(4)}});
  one_turn(*j, {Finished{1, Outcome{ErrorCode::None, bytes_of("r1"), ""}, kT0, kT0 + 10min},
                Finished{2, Outcome{ErrorCode::None, bytes_of("r2"), ""}, kT0, kT0 + 20min},
                Dispatched{3, "w1", "id", 9, 1}});
  j->begin_turn();
  CHECK(j->expire(kT0 + 10min - 1ms).empty());
  CHECK(j->expire(kT0 + 10min) == std::vector<JobId>{1});
  CHECK(j->payload_bytes() == 2 + 2 + 2);  // r2, and the inputs of 3 and 4
  j->commit();
  j->begin_turn();
  CHECK(j->expire(kT0 + 100h) == std::vector<JobId>{2});  // running and queued never expire
  j->commit();
  const Loaded loaded = j->load();
  REQUIRE(loaded.calls.size() == 2);
  CHECK(loaded.calls[0].job_id == 3);
  CHECK(loaded.calls[1].job_id == 4);
}

TEST_CASE_TEMPLATE("journal contract + recovery: a daemon SIGKILLed with calls in every state "
                   "reopens into the right verdict for each", Store, MUSTER_STORES) {
  Store store;
  MUSTER_SKIP_UNLESS_AVAILABLE(store);
  const pid_t child = ::fork();
  REQUIRE(child >= 0);
  if (child == 0) {
    // Nothing of doctest here: the child writes, then dies the way musterd would.
    try {
      auto j = store.open();
      j->begin_turn();
      for (JobId id = 1; id <= 7; ++id) {
        Call c = call(id);
        c.idempotent = id == 4;
        j->append(Submitted{c});
      }
      j->commit();
      j->begin_turn();
      j->append(Dispatched{3, "w1", "id-w1", 103, 1});  // adopted: w1 comes back with it
      j->append(Dispatched{4, "w2", "id-w2", 104, 1});  // w2 comes back without it: idempotent
      j->append(Dispatched{5, "w2", "id-w2", 105, 1});  // ... not idempotent
      j->append(Dispatched{6, "w3", "id-w3", 106, 1});  // w3 not back yet
      j->append(Finished{7, Outcome{ErrorCode::None, bytes_of("done"), ""}, kT0, kT0 + 1h});
      j->commit();
      j->begin_turn();
      j->append(Dispatched{2, "w1", "id-w1", 102, 1});  // never committed: 2 stays queued
      ::raise(SIGKILL);
    } catch (...) {
    }
    ::_exit(3);
  }
  int status = 0;
  REQUIRE(::waitpid(child, &status, 0) == child);
  REQUIRE(WIFSIGNALED(status));
  auto j = store.open();  // PostgreSQL: once the killed daemon's lease ran out
  const Loaded loaded = j->load();
  REQUIRE(loaded.calls.size() == 7);
  RecoveryView view;
  view.now = kT0 + 1s;
  view.reattach_until = kT0 + 3s;
  view.workers = {{"w1", "id-w1", {103}}, {"w2", "id-w2", {}}};
  const auto verdicts = plan(loaded.calls, view);
  std::vector<Decision> decisions;
  for (const Verdict& v : verdicts) decisions.push_back(v.decision);
  CHECK(decisions == std::vector<Decision>{Decision::Requeue, Decision::Requeue, Decision::Adopt,
                                           Decision::Requeue, Decision::FailWorkerLost,
                                           Decision::Wait, Decision::Redeliver});
  // The verdicts' records apply to what was loaded, as the restarted core would write them.
  j->begin_turn();
  for (const Verdict& v : verdicts)
    for (const Record& r : v.records) j->append(r);
  j->commit();
  const Loaded after = j->load();
  CHECK(after.calls[3].state == CallState::Queued);  // job 4, requeued
  CHECK(after.calls[3].deaths == 1);
  REQUIRE(after.calls[4].outcome);  // job 5
  CHECK(after.calls[4].outcome->code == ErrorCode::WorkerLost);
}

TEST_CASE_TEMPLATE("journal contract: finished calls of an earlier open, and of a rolled-back "
                   "turn, expire at their time", Store, MUSTER_STORES) {
  Store store;
  MUSTER_SKIP_UNLESS_AVAILABLE(store);
  {
    auto j = store.open();
    one_turn(*j, {Submitted{call(1, "in1")}, Submitted{call(2, "in2")}, Submitted{call(3, "in3")},
                  Submitted{call(4, "in4")}});
    one_turn(*j, {Finished{1, Outcome{ErrorCode::None, bytes_of("r1"), ""}, kT0, kT0 + 10min},
                  Finished{2, Outcome{ErrorCode::None, bytes_of("r2"), ""}, kT0, kT0 + 20min}});
  }
  auto j = store.open();  // a new instance: it expires what the earlier one finished
  CHECK(j->payload_bytes() == 2 + 2 + 3 + 3);
  j->begin_turn();
  CHECK(j->expire(kT0 + 10min) == std::vector<JobId>{1});
  j->commit();
  // A rolled-back turn's Acked, expiry and Finished leave the rows as they were: row 2 still
  // expires at its time, row 3 is still open (a Finished of it is accepted), row 4 never expires.
  j->begin_turn();
  j->append(Acked{2});
  j->append(Finished{4, Outcome{ErrorCode::None, bytes_of("r4"), ""}, kT0, kT0 + 1min});
  CHECK(j->expire(kT0 + 1h) == std::vector<JobId>{4});
  j->rollback();
  CHECK(j->payload_bytes() == 2 + 3 + 3);
  j->begin_turn();
  CHECK(j->expire(kT0 + 20min - 1ms).empty());
  j->append(Finished{3, Outcome{ErrorCode::None, bytes_of("r3-long"), ""}, kT0, kT0 + 30min});
  CHECK(j->expire(kT0 + 20min) == std::vector<JobId>{2});
  CHECK(j->payload_bytes() == 7 + 3);
  j->commit();
  j->begin_turn();
  CHECK(j->expire(kT0 + 100h) == std::vector<JobId>{3});
  j->commit();
  const Loaded loaded = j->load();
  REQUIRE(loaded.calls.size() == 1);
  CHECK(loaded.calls[0].job_id == 4);
  CHECK(loaded.calls[0].state == CallState::Queued);
  CHECK(j->payload_bytes() == 3);
}

TEST_CASE_TEMPLATE("journal contract: a batch's many Acked records leave what acking one by one "
                   "leaves, around an expiry and a refusal",
                   Store, MUSTER_STORES) {
  Store by_one, by_batch;
  MUSTER_SKIP_UNLESS_AVAILABLE(by_one);
  auto one = by_one.open();
  auto batch = by_batch.open();
  // 60 finished calls (some expiring at kT0 + 1s), 5 running ones.
  std::vector<JournalOp> setup;
  for (JobId id = 1; id <= 65; ++id) {
    setup.push_back(Record{Submitted{call(id, "in-" + std::to_string(id))}});
    if (id <= 60)
      setup.push_back(Record{Finished{id, Outcome{ErrorCode::None, bytes_of("out" + std::to_string(id)), ""}, kT0,
                                      kT0 + (id % 3 == 0 ? 1s : 1h)}});
  }
  std::vector<JournalOp> ops;
  for (JobId id = 1; id <= 40; ++id) ops.push_back(Record{Acked{id}});  // more than one delete's worth
  ops.push_back(ExpireKept{kT0 + 2s});  // the acked rows are gone first: it drops 41..60's own
  ops.push_back(Record{Dispatched{61, "w1", "id-w1", 161, 1}});
  for (JobId id : {41, 43, 44, 46, 47}) ops.push_back(Record{Acked{id}});
  ops.push_back(Record{Submitted{call(70, "in-70")}});
  ops.push_back(Record{Finished{62, Outcome{ErrorCode::Cancelled, {}, "gone"}, kT0, kT0 + 1h}});
  ops.push_back(Record{Acked{62}});  // finished and acked in the batch, after deferred ones
  for (Journal* j : {one.get(), batch.get()}) {
    j->begin_turn();
    j->append_all(setup);
    j->commit();
  }
  one->begin_turn();
  std::vector<JobId> expired_one;
  for (const auto& op : ops) {
    if (auto* rec = std::get_if<Record>(&op)) one->append(*rec);
    else expired_one = one->expire(std::get<ExpireKept>(op).now);
  }
  const auto bytes_in_turn = one->payload_bytes();
  one->commit();
  batch->begin_turn();
  batch->append_all(ops);
  CHECK(batch->payload_bytes() == bytes_in_turn);
  batch->commit();
  CHECK(expired_one.size() == 7);  // 42, 45, ..., 60 (multiples of 3 above 40)
  const Loaded a = one->load(), b = batch->load();
  REQUIRE(a.calls.size() == 13);  // 41..60 less 7 expired and 5 acked, 61..65 less 62, and 70
  REQUIRE(b.calls.size() == a.calls.size());
  for (std::size_t i = 0; i < a.calls.size(); ++i) check_same_call(a.calls[i], b.calls[i]);
  // Refused as one by one refuses: a call acked twice in a batch, a call it does not hold.
  for (Journal* j : {one.get(), batch.get()}) {
    j->begin_turn();
    CHECK_THROWS_WITH_AS(j->append_all({Record{Acked{63}}, Record{Acked{64}}, Record{Acked{63}}}),
                         doctest::Contains("Acked for job 63"), JournalError);
    j->rollback();
    j->begin_turn();
    CHECK_THROWS_WITH_AS(j->append_all({Record{Acked{63}}, Record{Acked{99}}}),
                         doctest::Contains("Acked for job 99"), JournalError);
    j->rollback();
    CHECK(j->load().calls.size() == a.calls.size());  // nothing of the refused turns stayed
  }
  CHECK(batch->payload_bytes() == one->payload_bytes());
}

// One turn of `ops` in each: append() of each record in `one`, append_all() in `batch`; both
// count the same bytes.
static void turn_both_ways(Journal& one, Journal& batch, const std::vector<JournalOp>& ops) {
  one.begin_turn();
  for (const auto& op : ops) one.append(std::get<Record>(op));
  const auto bytes_in_turn = one.payload_bytes();
  one.commit();
  batch.begin_turn();
  batch.append_all(ops);
  CHECK(batch.payload_bytes() == bytes_in_turn);
  batch.commit();
}

TEST_CASE_TEMPLATE("journal contract: Acked records apart only by calls acked before are deleted as "
                   "acking one by one would; the calls still held between them stay",
                   Store, MUSTER_STORES) {
  Store by_one, by_batch;
  MUSTER_SKIP_UNLESS_AVAILABLE(by_one);
  auto one = by_one.open();
  auto batch = by_batch.open();
  // Calls 1..30 finished; acked in a first batch: 2, 4, 6, 8 (their rows gone); in a second:
  // 1, 3, 5 (apart only by gone rows), 9, 10 (7 is held before 9), 20 (11..19 held), 27
  // (21..26 held), then 28 and 29 after a step that is not an Acked.
  std::vector<JournalOp> finished;
  for (JobId id = 1; id <= 30; ++id) {
    const std::string n = std::to_string(id);
    finished.insert(finished.end(), {Record{Submitted{call(id, "in-" + n)}},
                                     Record{Finished{id, Outcome{ErrorCode::None, bytes_of(n), ""}, kT0, kT0 + 1h}}});
  }
  const std::vector<JournalOp> first{Record{Acked{8}}, Record{Acked{2}}, Record{Acked{4}}, Record{Acked{6}}};
  const std::vector<JournalOp> second{Record{Acked{5}},  Record{Acked{1}},  Record{Acked{3}},
                                      Record{Acked{10}}, Record{Acked{9}},  Record{Acked{27}},
                                      Record{Acked{20}}, Record{Submitted{call(31, "in-31")}},
                                      Record{Acked{29}}, Record{Acked{28}}};
  turn_both_ways(*one, *batch, finished);
  turn_both_ways(*one, *batch, first);
  turn_both_ways(*one, *batch, second);
  const Loaded a = one->load(), b = batch->load();
  std::string held;
  for (const Call& c : b.calls) held += std::to_string(c.job_id) + ' ';
  CHECK(held == "7 11 12 13 14 15 16 17 18 19 21 22 23 24 25 26 30 31 ");
  REQUIRE(b.calls.size() == a.calls.size());
  for (std::size_t i = 0; i < a.calls.size(); ++i) check_same_call(a.calls[i], b.calls[i]);
  // An Acked of a call acked before, among others apart only by gone rows: refused.
  for (Journal* j : {one.get(), batch.get()}) {
    j->begin_turn();
    CHECK_THROWS_WITH_AS(j->append_all({Record{Acked{7}}, Record{Acked{8}}, Record{Acked{11}}}),
                         doctest::Contains("Acked for job 8"), JournalError);
    j->rollback();
    CHECK(j->load().calls.size() == b.calls.size());
  }
}
