// journal_sqlite_test.cpp — the SQLite journal (broker/journal_sqlite.hpp) on real files in
// temp dirs: records round trip, a crash mid-turn loses that turn only, bad files are refused
// with an error naming them, size accounting, expiry; and (skipped, run by hand) the cost of
// one commit.
#include <doctest/doctest.h>
#include <signal.h>
#include <sqlite3.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <optional>
#include <string>
#include <vector>

#include "journal_recovery.hpp"
#include "journal_sqlite.hpp"
#include "temp_dir.hpp"

using namespace muster::broker;
using namespace muster::broker::journal;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

namespace {

const WallTime kT0{std::chrono::milliseconds{1'800'000'000'000}};

Payload bytes_of(const std::string& s) {
  return Payload::copy_of({reinterpret_cast<const std::uint8_t*>(s.data()), s.size()});
}
std::string string_of(const Payload& p) { return {p.bytes.begin(), p.bytes.end()}; }

Call call(JobId id, std::string inputs = "in", std::string parameters = "") {
  Call c;
  c.job_id = id;
  c.node = "resize";
  c.caller = Caller{"id-client", "alice", "ws1", "client"};
  c.trace_id = "trace-" + std::to_string(id);
  c.inputs = bytes_of(inputs);
  c.parameters = bytes_of(parameters);
  c.idempotent = id % 2 == 0;
  c.submitted = kT0 + std::chrono::milliseconds{id};
  c.deadline = kT0 + 30s;
  return c;
}

SqliteOptions options_for(const fs::path& path, std::uint64_t limit = 0) {
  SqliteOptions o;
  o.path = path;
  o.byte_limit = limit;
  return o;
}

void one_turn(Journal& j, std::initializer_list<Record> records) {
  j.begin_turn();
  for (const Record& r : records) j.append(r);
  j.commit();
}

// The JournalError message of opening `path`, or nullopt when it opened.
std::optional<std::string> open_error(const fs::path& path) {
  try {
    SqliteJournal j(options_for(path));
    return std::nullopt;
  } catch (const JournalError& e) {
    return std::string(e.what());
  }
}

void sql(const fs::path& path, const char* statement) {
  sqlite3* db = nullptr;
  REQUIRE(sqlite3_open(path.c_str(), &db) == SQLITE_OK);
  char* err = nullptr;
  const int rc = sqlite3_exec(db, statement, nullptr, nullptr, &err);
  INFO((err ? err : ""));
  sqlite3_free(err);
  sqlite3_close(db);
  REQUIRE(rc == SQLITE_OK);
}

}  // namespace

TEST_CASE("journal sqlite: every record round-trips through the file") {
  muster::test::TempDir dir;
  const fs::path path = dir.path / "journal.db";
  {
    SqliteJournal j(options_for(path));
    CHECK(j.describe() == "sqlite:" + path.string());
    CHECK(j.load().calls.empty());
    CHECK(j.load().next_job_id == 1);
    one_turn(j, {Submitted{call(1, "a")}, Submitted{call(2, std::string(3, '\0'), "p")},
                 Submitted{call(3, "")}, Submitted{call(4, "d")}, Submitted{call(5, "e")}});
    one_turn(j, {Dispatched{2, "w1", "id-w1", (1ull << 40) + 7, 1},
                 Dispatched{3, "w2", "id-w2", (1ull << 40) + 8, 1},
                 Dispatched{3, "w2", "id-w2", (1ull << 40) + 8, 2},  // a re-send
                 Dispatched{4, "w1", "id-w1", (1ull << 40) + 9, 1}, Requeued{4, 1},
                 Dispatched{5, "w3", "id-w3", 11, 1}});
    one_turn(j, {Finished{5, Outcome{ErrorCode::None, bytes_of("out"), ""}, kT0 + 2s, kT0 + 1h},
                 Submitted{call(6)},
                 Finished{6, Outcome{ErrorCode::WorkerError, {}, "boom ünïcode"}, kT0 + 3s,
                          kT0 + 2h}});
    one_turn(j, {Acked{6}});
  }
  SqliteJournal j(options_for(path));
  const Loaded loaded = j.load();
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
  CHECK(string_of(c2.inputs) == std::string(3, '\0'));  // binary-safe BLOB
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
  // What it holds is counted the same way from the file as by append().
  CHECK(j.payload_bytes() == 1 + 3 + 1 + 0 + 1 + 3);
}

TEST_CASE("journal sqlite: a record for a call it does not hold is refused and rolls the turn "
          "back") {
  muster::test::TempDir dir;
  SqliteJournal j(options_for(dir.path / "journal.db"));
  one_turn(j, {Submitted{call(1)}});
  j.begin_turn();
  j.append(Submitted{call(2)});
  CHECK_THROWS_WITH_AS(j.append(Dispatched{9, "w1", "id", 1, 1}),
                       doctest::Contains("Dispatched for job 9"), JournalError);
  j.rollback();
  CHECK(j.load().calls.size() == 1);
  one_turn(j, {Finished{1, Outcome{ErrorCode::Cancelled, {}, "x"}, kT0, kT0 + 1h}});
  j.begin_turn();
  CHECK_THROWS_AS(j.append(Dispatched{1, "w1", "id", 1, 1}), JournalError);  // finished
  CHECK_THROWS_AS(j.append(Submitted{call(1)}), JournalError);               // id taken
  CHECK_THROWS_AS(j.append(Acked{5}), JournalError);
  j.rollback();
  CHECK_THROWS_WITH_AS(j.append(Acked{1}), doctest::Contains("outside a turn"), JournalError);
  // The statements that failed are usable again.
  one_turn(j, {Submitted{call(2)}, Acked{1}});
  CHECK(j.load().calls.size() == 1);
  CHECK(j.load().calls[0].job_id == 2);
}

TEST_CASE("journal sqlite: a turn never committed leaves nothing, the turns before intact") {
  muster::test::TempDir dir;
  const fs::path path = dir.path / "journal.db";
  SUBCASE("the journal is closed mid-turn") {
    {
      SqliteJournal j(options_for(path));
      one_turn(j, {Submitted{call(1)}});
      j.begin_turn();
      j.append(Submitted{call(2)});
      j.append(Dispatched{1, "w1", "id-w1", 5, 1});
    }
    SqliteJournal j(options_for(path));
    const Loaded loaded = j.load();
    REQUIRE(loaded.calls.size() == 1);
    CHECK(loaded.calls[0].state == CallState::Queued);
    CHECK(loaded.next_job_id == 2);
  }
  SUBCASE("the daemon is SIGKILLed mid-turn, after SQLite wrote part of the turn to the WAL") {
    const pid_t child = ::fork();
    REQUIRE(child >= 0);
    if (child == 0) {
      // Nothing of doctest here: the child writes, then dies the way musterd would.
      try {
        SqliteJournal j(options_for(path));
        one_turn(j, {Submitted{call(1, std::string(1000, 'x'))}});
        j.begin_turn();
        // 16 MiB: more than SQLite's page cache, so the uncommitted pages spill into the WAL.
        for (JobId id = 2; id < 18; ++id) j.append(Submitted{call(id, std::string(1 << 20, 'y'))});
        j.append(Dispatched{1, "w1", "id-w1", 5, 1});
        ::raise(SIGKILL);
      } catch (...) {
      }
      ::_exit(3);
    }
    int status = 0;
    REQUIRE(::waitpid(child, &status, 0) == child);
    REQUIRE(WIFSIGNALED(status));
    CHECK(WTERMSIG(status) == SIGKILL);
    // The uncommitted turn really reached the disk (so the test shows that recovery ignores it).
    const fs::path wal = path.string() + "-wal";
    REQUIRE(fs::exists(wal));
    CHECK(fs::file_size(wal) > (8u << 20));
    SqliteJournal j(options_for(path));
    const Loaded loaded = j.load();
    REQUIRE(loaded.calls.size() == 1);
    CHECK(loaded.calls[0].job_id == 1);
    CHECK(loaded.calls[0].state == CallState::Queued);
    CHECK(string_of(loaded.calls[0].inputs) == std::string(1000, 'x'));
    CHECK(loaded.next_job_id == 2);
    CHECK(j.payload_bytes() == 1000);
    // And it carries on from there.
    one_turn(j, {Submitted{call(2)}});
    CHECK(j.load().calls.size() == 2);
  }
}

TEST_CASE("journal sqlite: a file that is not a readable journal is an error naming it, never "
          "an empty start") {
  muster::test::TempDir dir;
  const fs::path path = dir.path / "journal.db";
  std::string expected;
  SUBCASE("garbage bytes") {
    std::ofstream(path) << std::string(8192, 'G');
    expected = "not a readable SQLite database";
  }
  SUBCASE("a truncated journal") {
    {
      SqliteJournal j(options_for(path));
      j.begin_turn();
      for (JobId id = 1; id <= 400; ++id) j.append(Submitted{call(id, std::string(3000, 'z'))});
      j.commit();
    }
    REQUIRE_FALSE(fs::exists(path.string() + "-wal"));  // checkpointed into the file on close
    const auto size = fs::file_size(path);
    REQUIRE(size > 1'000'000);
    fs::resize_file(path, size / 2);
    expected = "refusing to start empty over it";
  }
  SUBCASE("an SQLite database of something else") {
    sql(path, "CREATE TABLE recipes (name TEXT); INSERT INTO recipes VALUES ('soup')");
    expected = "not a muster journal (application_id 0x0, holds: recipes)";
  }
  SUBCASE("a journal written by a newer muster") {
    { SqliteJournal j(options_for(path)); }
    sql(path, "INSERT INTO muster_schema VALUES (99, 0, 'from the future')");
    expected = "newer muster (schema version 99, this musterd knows up to 1)";
  }
  SUBCASE("a directory that does not exist") {
    const auto error = open_error(dir.path / "missing" / "journal.db");
    REQUIRE(error);
    CHECK(error->find("cannot open") != std::string::npos);
    CHECK(error->find((dir.path / "missing" / "journal.db").string()) != std::string::npos);
    return;
  }
  const auto before = fs::file_size(path);
  const auto error = open_error(path);
  REQUIRE(error);
  INFO(*error);
  CHECK(error->find("journal sqlite:" + path.string()) != std::string::npos);
  CHECK(error->find(expected) != std::string::npos);
  CHECK(fs::file_size(path) == before);  // left as found, for whoever investigates
}

TEST_CASE("journal sqlite: one daemon per file") {
  muster::test::TempDir dir;
  const fs::path path = dir.path / "journal.db";
  SqliteJournal first(options_for(path));
  const auto error = open_error(path);
  REQUIRE(error);
  INFO(*error);
  CHECK(error->find("in use by another process") != std::string::npos);
  CHECK(error->find(path.string()) != std::string::npos);
  one_turn(first, {Submitted{call(1)}});  // the first is unaffected
}

TEST_CASE("journal sqlite: schema version and epoch") {
  muster::test::TempDir dir;
  const fs::path path = dir.path / "journal.db";
  std::uint64_t first = 0;
  {
    SqliteJournal j(options_for(path));
    first = j.epoch();
    CHECK(first >= 1);
  }
  SqliteJournal j(options_for(path));
  CHECK(j.epoch() == first + 1);  // every open for writing takes a new one
}

TEST_CASE("journal sqlite: payload bytes are counted against the limit, and freed") {
  muster::test::TempDir dir;
  const fs::path path = dir.path / "journal.db";
  SqliteJournal j(options_for(path, 100));
  CHECK(j.byte_limit() == 100);
  CHECK(j.admits(100));
  CHECK_FALSE(j.admits(101));
  j.begin_turn();
  j.append(Submitted{call(1, std::string(40, 'a'), std::string(20, 'b'))});
  CHECK(j.payload_bytes() == 60);  // counted within the turn: the next Submit of it sees it
  CHECK(j.admits(40));
  CHECK_FALSE(j.admits(41));
  j.rollback();
  CHECK(j.payload_bytes() == 0);  // an abandoned turn holds nothing
  one_turn(j, {Submitted{call(1, std::string(40, 'a'), std::string(20, 'b'))},
               Submitted{call(2, std::string(30, 'c'))}});
  CHECK(j.payload_bytes() == 90);
  // Finishing frees the inputs and holds the outputs (never refused, even beyond the limit).
  one_turn(j, {Finished{1, Outcome{ErrorCode::None, bytes_of(std::string(70, 'o')), ""}, kT0,
                        kT0 + 1h}});
  CHECK(j.payload_bytes() == 100);
  one_turn(j, {Finished{2, Outcome{ErrorCode::WorkerError, {}, "12345"}, kT0, kT0 + 1h}});
  CHECK(j.payload_bytes() == 75);
  CHECK_FALSE(j.admits(26));
  one_turn(j, {Acked{1}});
  CHECK(j.payload_bytes() == 5);
  CHECK(j.admits(95));
}

TEST_CASE("journal sqlite: the byte count survives a restart") {
  muster::test::TempDir dir;
  const fs::path path = dir.path / "journal.db";
  {
    SqliteJournal j(options_for(path, 1000));
    one_turn(j, {Submitted{call(1, std::string(300, 'a'))}, Submitted{call(2, "bb", "ccc")}});
  }
  SqliteJournal j(options_for(path, 1000));
  CHECK(j.payload_bytes() == 305);
  CHECK(j.admits(695));
  CHECK_FALSE(j.admits(696));
}

TEST_CASE("journal sqlite: finished calls expire at their time, and only those") {
  muster::test::TempDir dir;
  const fs::path path = dir.path / "journal.db";
  SqliteJournal j(options_for(path));
  one_turn(j, {Submitted{call(1)}, Submitted{call(2)}, Submitted{call(3)}, Submitted{call(4)}});
  one_turn(j, {Finished{1, Outcome{ErrorCode::None, bytes_of("r1"), ""}, kT0, kT0 + 10min},
               Finished{2, Outcome{ErrorCode::None, bytes_of("r2"), ""}, kT0, kT0 + 20min},
               Dispatched{3, "w1", "id", 9, 1}});
  j.begin_turn();
  CHECK(j.expire(kT0 + 10min - 1ms).empty());
  CHECK(j.expire(kT0 + 10min) == std::vector<JobId>{1});
  CHECK(j.payload_bytes() == 2 + 2 + 2);  // r2, and the inputs of 3 and 4
  j.commit();
  j.begin_turn();
  CHECK(j.expire(kT0 + 100h) == std::vector<JobId>{2});  // running and queued never expire
  j.commit();
  const Loaded loaded = j.load();
  REQUIRE(loaded.calls.size() == 2);
  CHECK(loaded.calls[0].job_id == 3);
  CHECK(loaded.calls[1].job_id == 4);
}

TEST_CASE("journal sqlite + recovery: a daemon SIGKILLed with calls in every state restarts "
          "into the right verdict for each") {
  muster::test::TempDir dir;
  const fs::path path = dir.path / "journal.db";
  const pid_t child = ::fork();
  REQUIRE(child >= 0);
  if (child == 0) {
    try {
      SqliteJournal j(options_for(path));
      j.begin_turn();
      for (JobId id = 1; id <= 7; ++id) {
        Call c = call(id);
        c.idempotent = id == 4;
        j.append(Submitted{c});
      }
      j.commit();
      j.begin_turn();
      j.append(Dispatched{3, "w1", "id-w1", 103, 1});  // adopted: w1 comes back with it
      j.append(Dispatched{4, "w2", "id-w2", 104, 1});  // w2 comes back without it: idempotent
      j.append(Dispatched{5, "w2", "id-w2", 105, 1});  // ... not idempotent
      j.append(Dispatched{6, "w3", "id-w3", 106, 1});  // w3 not back yet
      j.append(Finished{7, Outcome{ErrorCode::None, bytes_of("done"), ""}, kT0, kT0 + 1h});
      j.commit();
      j.begin_turn();
      j.append(Dispatched{2, "w1", "id-w1", 102, 1});  // never committed: 2 stays queued
      ::raise(SIGKILL);
    } catch (...) {
    }
    ::_exit(3);
  }
  int status = 0;
  REQUIRE(::waitpid(child, &status, 0) == child);
  REQUIRE(WIFSIGNALED(status));
  SqliteJournal j(options_for(path));
  const Loaded loaded = j.load();
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
  j.begin_turn();
  for (const Verdict& v : verdicts)
    for (const Record& r : v.records) j.append(r);
  j.commit();
  const Loaded after = j.load();
  CHECK(after.calls[3].state == CallState::Queued);  // job 4, requeued
  CHECK(after.calls[3].deaths == 1);
  REQUIRE(after.calls[4].outcome);  // job 5
  CHECK(after.calls[4].outcome->code == ErrorCode::WorkerLost);
}

// Run by hand: build/tests/muster_unit_tests -tc='*commit cost*' --no-skip
// (docs/DURABILITY.md "Cost"). Prints the time of one turn's commit (one transaction, one
// fsync) of 1, 32 and 256 Submitted records of 64 B, and of the Finished records that follow.
TEST_CASE("journal sqlite: commit cost per turn (benchmark)" * doctest::skip()) {
  const char* where = std::getenv("MUSTER_JOURNAL_BENCH_DIR");
  for (bool full : {true, false}) {
    for (std::size_t per_turn : {1, 32, 256}) {
      muster::test::TempDir dir;
      fs::path base = where ? fs::path(where) : dir.path;
      const fs::path path = base / ("bench-" + std::to_string(::getpid()) + ".db");
      SqliteOptions o = options_for(path);
      o.fsync_every_commit = full;
      std::optional<SqliteJournal> j(std::in_place, o);
      const int turns = per_turn == 256 ? 40 : 200;
      JobId next = 1;
      std::vector<double> submit_us, finish_us;
      for (int t = 0; t < turns; ++t) {
        const JobId first = next;
        auto start = std::chrono::steady_clock::now();
        j->begin_turn();
        for (std::size_t i = 0; i < per_turn; ++i) j->append(Submitted{call(next++, std::string(64, 'x'))});
        j->commit();
        submit_us.push_back(std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - start).count());
        start = std::chrono::steady_clock::now();
        j->begin_turn();
        for (JobId id = first; id < next; ++id)
          j->append(Finished{id, Outcome{ErrorCode::None, bytes_of(std::string(64, 'r')), ""}, kT0, kT0 + 1h});
        j->commit();
        finish_us.push_back(std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - start).count());
      }
      auto p50 = [](std::vector<double> v) {
        std::sort(v.begin(), v.end());
        return v[v.size() / 2];
      };
      std::printf("synchronous=%-6s records/turn=%3zu  submit turn p50 %8.0f us (%6.1f us/record)  "
                  "finish turn p50 %8.0f us (%6.1f us/record)\n",
                  full ? "FULL" : "NORMAL", per_turn, p50(submit_us), p50(submit_us) / per_turn,
                  p50(finish_us), p50(finish_us) / per_turn);
      j.reset();
      fs::remove(path);
    }
  }
}
