// journal_postgres_test.cpp — what only the PostgreSQL journal (broker/journal_postgres.hpp)
// does, against a private server (tests/unit/postgres_for_test.hpp): the lease of a failover
// pair (one leads, the other waits; a release or an expiry hands it over with the next
// epoch; two daemons starting at once on an empty database: exactly one leads), fencing (a
// paused old leader's turn is refused, even one paused mid-turn), renewal and giving up, shards,
// bytes no text column could hold, and stores it must refuse. The contract both journals keep
// is in journal_contract_test.cpp.
#include <doctest/doctest.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <latch>
#include <thread>
#include <vector>

#include "journal_records.hpp"
#include "journal_stores.hpp"

using namespace muster::broker;
using namespace muster::broker::journal;
using namespace muster::test;
using namespace std::chrono_literals;

namespace {

using Steady = std::chrono::steady_clock;

PostgresOptions options_for(const PostgresStore& store, std::string holder,
                            std::chrono::milliseconds term = PostgresStore::kTerm) {
  PostgresOptions o = store.options(0, std::move(holder));
  o.term = term;
  return o;
}

// Asks until it leads (bounded by `within`); false when it never did.
bool lead_within(PostgresJournal& j, std::chrono::milliseconds within) {
  const auto until = Steady::now() + within;
  for (;;) {
    const auto s = j.try_lead(Steady::now());
    if (s.leading) return true;
    if (Steady::now() >= until) return false;
    std::this_thread::sleep_for(s.retry_in);
  }
}

std::string open_error(PostgresOptions o) {
  try {
    PostgresJournal j(std::move(o));
    return {};
  } catch (const JournalError& e) {
    return e.what();
  }
}

}  // namespace

TEST_CASE("journal postgresql: one daemon of a pair leads; the other waits, naming the holder, "
          "and takes over with the next epoch when the leader stops") {
  PostgresStore store;
  MUSTER_SKIP_UNLESS_AVAILABLE(store);
  auto a = std::make_unique<PostgresJournal>(options_for(store, "host-a:1:aaa"));
  PostgresJournal b(options_for(store, "host-b:2:bbb"));
  CHECK_FALSE(a->leading());
  CHECK_THROWS_WITH_AS(a->load(), doctest::Contains("without the lease"), JournalError);
  CHECK_THROWS_WITH_AS(a->begin_turn(), doctest::Contains("without the lease"), JournalError);
  REQUIRE(a->try_lead(Steady::now()).leading);
  CHECK(a->epoch() == 1);
  const auto s = b.try_lead(Steady::now());
  CHECK_FALSE(s.leading);
  CHECK(s.lease.holder == "host-a:1:aaa");
  CHECK(s.lease.epoch == 1);
  CHECK(s.retry_in <= 500ms);
  CHECK(b.epoch() == 0);
  one_turn(*a, {Submitted{call(1)}});
  a.reset();  // a clean stop releases the lease
  REQUIRE(b.try_lead(Steady::now()).leading);
  CHECK(b.epoch() == 2);
  REQUIRE(b.load().calls.size() == 1);  // what the leader committed
  CHECK(b.describe().starts_with("postgresql://muster@"));
  CHECK(b.describe().find("(shard default)") != std::string::npos);
}

TEST_CASE("journal postgresql: two daemons started at once on an empty database: exactly one leads") {
  for (int round = 0; round < 4; ++round) {
    PostgresStore store;  // a fresh database: both also create the schema at once
    MUSTER_SKIP_UNLESS_AVAILABLE(store);
    std::latch start(2);
    std::atomic<int> leaders{0}, errors{0};
    std::vector<std::unique_ptr<PostgresJournal>> journals(2);
    std::vector<std::thread> daemons;
    for (int i = 0; i < 2; ++i)
      daemons.emplace_back([&, i] {
        try {
          start.arrive_and_wait();
          journals[i] = std::make_unique<PostgresJournal>(options_for(store, "daemon-" + std::to_string(i)));
          if (journals[i]->try_lead(Steady::now()).leading) ++leaders;
        } catch (...) {
          ++errors;
        }
      });
    for (auto& t : daemons) t.join();
    CHECK(errors == 0);
    CHECK(leaders == 1);
  }
}

TEST_CASE("journal postgresql: a paused old leader's turn is refused once the standby took over") {
  PostgresStore store;
  MUSTER_SKIP_UNLESS_AVAILABLE(store);
  PostgresJournal a(options_for(store, "old"));
  PostgresJournal b(options_for(store, "standby"));
  REQUIRE(a.try_lead(Steady::now()).leading);
  one_turn(a, {Submitted{call(1)}});
  // a is paused past its term (the row's expiry, as the store's clock sees it, has passed).
  TestPostgres::sql(store.conninfo, "UPDATE leases SET expires_ms = 0");
  REQUIRE(b.try_lead(Steady::now()).leading);
  CHECK(b.epoch() == 2);
  // a wakes up: its next turn is refused before it writes anything, and it knows it lost.
  CHECK_THROWS_WITH_AS(a.begin_turn(), doctest::Contains("lost the lease of shard default (this daemon led at epoch 1): standby holds it at epoch 2"),
                       JournalError);
  CHECK_FALSE(a.leading());
  CHECK_FALSE(a.in_turn());
  CHECK_THROWS_AS(a.begin_turn(), JournalError);
  one_turn(b, {Dispatched{1, "w", "id-w", 2ull << 40, 1}});
  CHECK(b.load().calls.at(0).state == CallState::Running);
}

TEST_CASE("journal postgresql: a leader paused mid-turn cannot hold up the takeover, nor commit "
          "after it") {
  PostgresStore store;
  MUSTER_SKIP_UNLESS_AVAILABLE(store);
  constexpr auto kShort = 400ms;  // the server ends a session idle in a transaction this long
  PostgresJournal a(options_for(store, "old", kShort));
  PostgresJournal b(options_for(store, "standby", kShort));
  REQUIRE(a.try_lead(Steady::now()).leading);
  a.begin_turn();  // holds the lease row FOR SHARE...
  a.append(Submitted{call(1)});
  // ... and stops (SIGSTOP). The standby's take waits for that lock until the server ends the
  // stuck session, then finds the lease expired.
  REQUIRE(lead_within(b, 20s));
  CHECK_THROWS_AS(a.commit(), JournalError);
  CHECK(b.load().calls.empty());  // nothing of a's turn
  CHECK(b.load().next_job_id == 1);
}

TEST_CASE("journal postgresql: keep() renews the lease when due, and stops a leader that lost it") {
  PostgresStore store;
  MUSTER_SKIP_UNLESS_AVAILABLE(store);
  const auto t0 = Steady::now();
  PostgresJournal a(options_for(store, "leader"));
  REQUIRE(a.try_lead(t0).leading);
  auto expiry = [&] {
    PostgresJournal probe(options_for(store, "probe"));
    return probe.try_lead(Steady::now()).lease.expires;
  };
  const auto first = expiry();
  a.keep(t0 + PostgresStore::kTerm / 4 - 1ms);  // not due: nothing written
  CHECK(expiry() == first);
  std::this_thread::sleep_for(20ms);
  a.keep(t0 + PostgresStore::kTerm / 4);  // due: the row's expiry moves on, the epoch stays
  CHECK(expiry() > first);
  CHECK(a.epoch() == 1);
  SUBCASE("another daemon took it") {
    TestPostgres::sql(store.conninfo, "UPDATE leases SET holder = 'usurper', epoch = 7");
    CHECK_THROWS_WITH_AS(a.keep(t0 + PostgresStore::kTerm / 2),
                         doctest::Contains("lost the lease of shard default (this daemon led at "
                                           "epoch 1): usurper holds it at epoch 7"),
                         JournalError);
  }
  SUBCASE("no renewal succeeded for a whole term (the store was out of reach)") {
    CHECK_THROWS_WITH_AS(a.keep(t0 + PostgresStore::kTerm / 4 + PostgresStore::kTerm),
                         doctest::Contains("no renewal succeeded for"), JournalError);
  }
  CHECK_FALSE(a.leading());
  CHECK_THROWS_AS(a.begin_turn(), JournalError);
}

TEST_CASE("journal postgresql: shards of one database are independent") {
  PostgresStore store;
  MUSTER_SKIP_UNLESS_AVAILABLE(store);
  PostgresOptions o1 = options_for(store, "one"), o2 = options_for(store, "two");
  o1.shard = "east";
  o2.shard = "west";
  PostgresJournal east(o1), west(o2);
  REQUIRE(east.try_lead(Steady::now()).leading);
  REQUIRE(west.try_lead(Steady::now()).leading);  // its own lease
  one_turn(east, {Submitted{call(1)}, Submitted{call(2)}});
  one_turn(west, {Submitted{call(1, "w")}});  // the same job id, another shard
  CHECK(east.load().calls.size() == 2);
  REQUIRE(west.load().calls.size() == 1);
  CHECK(string_of(west.load().calls[0].inputs) == "w");
  CHECK(west.load().next_job_id == 2);
  CHECK(east.describe().find("(shard east)") != std::string::npos);
}

TEST_CASE("journal postgresql: strings from peers that no text column could hold round-trip") {
  PostgresStore store;
  MUSTER_SKIP_UNLESS_AVAILABLE(store);
  auto j = store.open();
  Call c = call(1);
  const std::string odd = std::string("a\0b", 3) + "\xff\xfe not UTF-8";
  c.node = odd;
  c.trace_id = odd;
  c.caller.name = odd;
  one_turn(*j, {Submitted{c}, Dispatched{1, odd, odd, 5, 1}});
  one_turn(*j, {Finished{1, Outcome{ErrorCode::WorkerError, {}, odd}, kT0, kT0 + 1h}});
  const Call back = j->load().calls.at(0);
  CHECK(back.node == odd);
  CHECK(back.trace_id == odd);
  CHECK(back.caller.name == odd);
  CHECK(back.worker_id == odd);
  REQUIRE(back.outcome);
  CHECK(back.outcome->message == odd);
  CHECK(j->payload_bytes() == odd.size());
}

TEST_CASE("journal postgresql: a store it cannot use is an error naming it, never its password") {
  PostgresStore store;
  MUSTER_SKIP_UNLESS_AVAILABLE(store);
  std::string expected;
  PostgresOptions o = options_for(store, "d");
  SUBCASE("a server that is not there") {
    o.conninfo = "postgresql://muster:s3cret@127.0.0.1:1/nowhere?connect_timeout=5";
    const auto error = open_error(o);
    CHECK(error.find("journal postgresql://muster@127.0.0.1:1/nowhere (shard default): cannot connect") !=
          std::string::npos);
    CHECK(error.find("s3cret") == std::string::npos);
    return;
  }
  SUBCASE("a connection string libpq cannot parse") {
    o.conninfo = "postgresql://muster@host/db?no_such_option=1";
    CHECK(open_error(o).find("cannot parse the connection string") != std::string::npos);
    return;
  }
  SUBCASE("a journal written by a newer muster") {
    { PostgresJournal j(o); }
    TestPostgres::sql(store.conninfo, "INSERT INTO muster_schema (version, description) VALUES (99, 'future')");
    expected = "written by a newer muster (schema version 99, this musterd knows up to " +
               std::to_string(PostgresJournal::kSchemaVersion) + ")";
  }
  SUBCASE("tables of something else under a journal's names") {
    TestPostgres::sql(store.conninfo, "CREATE TABLE calls (who text)");
    expected = "tables named like a muster journal's (calls) but is not one";
  }
  const auto error = open_error(o);
  INFO(error);
  CHECK(error.starts_with("journal postgresql://muster@"));
  CHECK(error.find(expected) != std::string::npos);
}

// Run by hand, on a server that fsyncs (the test server does not, unless asked):
// MUSTER_PG_FSYNC=1 build/tests/muster_unit_tests -tc='*commit cost*' --no-skip
// (docs/DURABILITY.md §12). The same turns as the SQLite benchmark; a turn here also holds the
// fencing read of the lease row; the records of a turn go pipelined (append_all), and, in the
// same run, one round trip each (append, as before). MUSTER_PG_SYNC=normal: synchronous_commit=off.
TEST_CASE("journal postgresql: commit cost per turn (benchmark)" * doctest::skip()) {
  const char* sync = std::getenv("MUSTER_PG_SYNC");
  const bool normal = sync && std::string(sync) == "normal";
  for (std::size_t per_turn : {1, 32, 256})
    for (bool one_by_one : {true, false}) {
      PostgresStore store;
      MUSTER_SKIP_UNLESS_AVAILABLE(store);
      auto j = store.open(0, /*synchronous_commit=*/!normal);
      commit_cost(*j, 8, 20, one_by_one);  // warm-up: a fresh database's first turns are slow
      const TurnCost cost = commit_cost(*j, per_turn, per_turn == 256 ? 40 : 200, one_by_one);
      std::printf("postgresql %s synchronous_commit=%s records/turn=%3zu  submit turn p50 %8.0f us (%6.1f us/record)  "
                  "finish turn p50 %8.0f us (%6.1f us/record)\n",
                  one_by_one ? "one-by-one" : "pipelined ", normal ? "off" : "on", per_turn, cost.submit_us,
                  cost.submit_us / per_turn, cost.finish_us, cost.finish_us / per_turn);
    }
}

TEST_CASE("journal postgresql: a batch writes a call's Submitted, Dispatched and Finished as one "
          "statement (the folds SQLite makes), and loads the row they leave") {
  PostgresStore store;
  MUSTER_SKIP_UNLESS_AVAILABLE(store);
  auto opened = store.open();
  auto& j = dynamic_cast<PostgresJournal&>(*opened);
  const auto at = WallTime{std::chrono::milliseconds{1'800'000'000'000}};
  std::vector<JournalOp> ops;
  for (JobId id = 1; id <= 3; ++id) {
    ops.push_back(Record{Submitted{call(id, "in")}});
    ops.push_back(Record{Dispatched{id, "w1", "id-w1", 100 + id, 1}});
    ops.push_back(Record{Finished{id, Outcome{ErrorCode::None, bytes_of("out"), ""}, at, at + 1h}});
  }
  ops.push_back(Record{Submitted{call(4, "in-4")}});  // 4: still running at the end
  ops.push_back(Record{Dispatched{4, "w2", "id-w2", 104, 1}});
  const auto before = j.statements_sent();
  j.begin_turn();
  j.append_all(ops);
  j.commit();
  CHECK(j.statements_sent() - before == 4);  // one row per call, not one statement per record (11)
  const Loaded loaded = j.load();
  REQUIRE(loaded.calls.size() == 4);
  CHECK(loaded.next_job_id == 5);
  for (int i = 0; i < 3; ++i) {
    const Call& c = loaded.calls[static_cast<std::size_t>(i)];
    CHECK(c.state == CallState::Finished);
    CHECK(c.inputs.bytes.empty());
    CHECK(c.attempts == 1);
    CHECK(c.request_id == 101 + static_cast<std::uint64_t>(i));
    REQUIRE(c.outcome);
    CHECK(string_of(c.outcome->outputs) == "out");
    CHECK(c.expires == at + 1h);
  }
  CHECK(loaded.calls[3].state == CallState::Running);
  CHECK(loaded.calls[3].worker_id == "w2");
  CHECK(string_of(loaded.calls[3].inputs) == "in-4");
  CHECK(j.payload_bytes() == 3 * 3 + 4 + loaded.calls[3].parameters.bytes.size());
}
