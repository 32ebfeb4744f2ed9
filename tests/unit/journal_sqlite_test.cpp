// journal_sqlite_test.cpp — what only the SQLite journal (broker/journal_sqlite.hpp) does, on
// real files in temp dirs: a crash after SQLite spilled part of a turn into the WAL loses that
// turn only, bad files are refused with an error naming them, one daemon per file; and
// (skipped, run by hand) the cost of one commit. The contract every journal keeps is tested on
// both implementations in journal_contract_test.cpp.
#include <doctest/doctest.h>
#include <signal.h>
#include <sqlite3.h>
#include <sys/stat.h>
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
#include <tuple>
#include <vector>

#include <fmt/format.h>

#include "journal_records.hpp"
#include "journal_open.hpp"
#include "journal_sqlite.hpp"
#include "journal_wal_sync.hpp"
#include "temp_dir.hpp"

using namespace muster::broker;
using namespace muster::broker::journal;
using namespace std::chrono_literals;
using namespace muster::test;
namespace fs = std::filesystem;

namespace {

SqliteOptions options_for(const fs::path& path, std::uint64_t limit = 0) {
  SqliteOptions o;
  o.path = path;
  o.byte_limit = limit;
  return o;
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

TEST_CASE("journal sqlite: a SIGKILL mid-turn after SQLite spilled part of the turn into the WAL "
          "leaves nothing of it") {
  muster::test::TempDir dir;
  const fs::path path = dir.path / "journal.db";
  {
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
    expected = fmt::format("newer muster (schema version 99, this musterd knows up to {})",
                           SqliteJournal::kSchemaVersion);
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

// The first schema (version 1), as a musterd of that version created it, with a queued call
// (job 1) and a finished one (job 2, expiring at kT0 + 10 min).
constexpr const char* kSchemaVersion1 = R"sql(
  PRAGMA application_id = 1836413812;
  CREATE TABLE muster_schema (version INTEGER PRIMARY KEY, applied_ms INTEGER NOT NULL,
                              description TEXT NOT NULL);
  INSERT INTO muster_schema VALUES (1, 0, 'calls and meta');
  CREATE TABLE muster_meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;
  INSERT INTO muster_meta VALUES ('epoch', 4), ('next_job_id', 3);
  CREATE TABLE calls (
    job_id INTEGER PRIMARY KEY, state INTEGER NOT NULL, node TEXT NOT NULL,
    identity TEXT NOT NULL, caller_name TEXT NOT NULL, workspace TEXT NOT NULL, role TEXT NOT NULL,
    trace_id TEXT NOT NULL, inputs BLOB NOT NULL, parameters BLOB NOT NULL,
    idempotent INTEGER NOT NULL, submitted_ms INTEGER NOT NULL, deadline_ms INTEGER NOT NULL,
    worker_id TEXT, worker_identity TEXT, request_id INTEGER,
    attempts INTEGER NOT NULL DEFAULT 0, deaths INTEGER NOT NULL DEFAULT 0,
    outcome_code INTEGER, outputs BLOB, message TEXT, finished_ms INTEGER, expires_ms INTEGER);
  CREATE INDEX calls_expiry ON calls (expires_ms) WHERE state = 2;
  INSERT INTO calls (job_id, state, node, identity, caller_name, workspace, role, trace_id, inputs,
                     parameters, idempotent, submitted_ms, deadline_ms)
    VALUES (1, 0, 'resize', 'id-client', 'alice', 'ws1', 'client', 'trace-1', x'616263', x'',
            0, 1000, 31000);
  INSERT INTO calls (job_id, state, node, identity, caller_name, workspace, role, trace_id, inputs,
                     parameters, idempotent, submitted_ms, deadline_ms, worker_id,
                     worker_identity, request_id, attempts, outcome_code, outputs, message,
                     finished_ms, expires_ms)
    VALUES (2, 2, 'resize', 'id-client', 'alice', 'ws1', 'client', 'trace-2', x'', x'', 1, 1000,
            31000, 'w1', 'id-w1', 7, 1, 0, x'72657332', NULL, 2000, 600000);
)sql";

TEST_CASE("journal sqlite: a journal of schema version 1 opens, migrated to the current version") {
  muster::test::TempDir dir;
  const fs::path path = dir.path / "journal.db";
  sql(path, "PRAGMA journal_mode = WAL");
  sql(path, kSchemaVersion1);
  {
    SqliteJournal j(options_for(path));
    CHECK(j.epoch() == 5);
    CHECK(j.payload_bytes() == 3 + 4);
    const Loaded loaded = j.load();
    CHECK(loaded.next_job_id == 3);
    REQUIRE(loaded.calls.size() == 2);
    CHECK(loaded.calls[0].state == CallState::Queued);
    CHECK(string_of(loaded.calls[0].inputs) == "abc");
    // The node, caller and worker strings moved to their side tables (migration 3).
    for (const Call& c : loaded.calls) {
      CHECK(c.node == "resize");
      CHECK(c.caller == Caller{"id-client", "alice", "ws1", "client"});
    }
    CHECK(loaded.calls[0].trace_id == "trace-1");
    CHECK(loaded.calls[0].worker_id.empty());
    CHECK(loaded.calls[1].worker_id == "w1");
    CHECK(loaded.calls[1].worker_identity == "id-w1");
    CHECK(loaded.calls[1].request_id == 7);
    CHECK(loaded.calls[1].attempts == 1);
    CHECK(loaded.calls[1].state == CallState::Finished);
    REQUIRE(loaded.calls[1].outcome);
    CHECK(string_of(loaded.calls[1].outcome->outputs) == "res2");
    CHECK(loaded.calls[1].expires == WallTime{600000ms});
    // It carries on: the finished call expires at its time, the queued one finishes.
    j.begin_turn();
    CHECK(j.expire(WallTime{600000ms} - 1ms).empty());
    CHECK(j.expire(WallTime{600000ms}) == std::vector<JobId>{2});
    j.append(Finished{1, Outcome{ErrorCode::None, bytes_of("r1"), ""}, kT0, kT0 + 1h});
    j.commit();
    CHECK(j.payload_bytes() == 2);
  }
  // What the migrations left: every version recorded, the expiry index gone.
  sqlite3* db = nullptr;
  REQUIRE(sqlite3_open(path.c_str(), &db) == SQLITE_OK);
  auto integer = [&](const char* q) {
    sqlite3_stmt* s = nullptr;
    REQUIRE(sqlite3_prepare_v2(db, q, -1, &s, nullptr) == SQLITE_OK);
    REQUIRE(sqlite3_step(s) == SQLITE_ROW);
    const auto v = sqlite3_column_int64(s, 0);
    sqlite3_finalize(s);
    return v;
  };
  CHECK(integer("SELECT max(version) FROM muster_schema") == SqliteJournal::kSchemaVersion);
  CHECK(integer("SELECT count(*) FROM muster_schema") == SqliteJournal::kSchemaVersion);
  CHECK(integer("SELECT count(*) FROM sqlite_schema WHERE name = 'calls_expiry'") == 0);
  CHECK(integer("SELECT count(*) FROM pragma_table_info('calls') WHERE name IN ('node', 'identity', "
                "'caller_name', 'workspace', 'role', 'worker_id', 'worker_identity')") == 0);
  CHECK(integer("SELECT count(*) FROM origins") == 1);  // both calls' (one node, one caller)
  sqlite3_close(db);
}

namespace {
// count(*) of a query on a closed journal file.
std::int64_t count_in(const fs::path& path, const char* query) {
  sqlite3* db = nullptr;
  REQUIRE(sqlite3_open(path.c_str(), &db) == SQLITE_OK);
  sqlite3_stmt* s = nullptr;
  REQUIRE(sqlite3_prepare_v2(db, query, -1, &s, nullptr) == SQLITE_OK);
  REQUIRE(sqlite3_step(s) == SQLITE_ROW);
  const auto n = sqlite3_column_int64(s, 0);
  sqlite3_finalize(s);
  sqlite3_close(db);
  return n;
}
Call call_of(JobId id, std::string node, std::string caller_name) {
  Call c = call(id);
  c.node = std::move(node);
  c.caller.name = std::move(caller_name);
  return c;
}
}  // namespace

TEST_CASE("journal sqlite: a node and caller, a worker, are stored once each; never under the id "
          "of a rolled-back turn; the ones no call holds go at the next open") {
  muster::test::TempDir dir;
  const fs::path path = dir.path / "journal.db";
  {
    SqliteJournal j(options_for(path));
    // Rows of one node and caller share one origin; a worker's rows one worker row.
    j.begin_turn();
    j.append_all({Record{Submitted{call_of(1, "resize", "alice")}},
                  Record{Dispatched{1, "w1", "id-w1", 11, 1}},
                  Record{Submitted{call_of(2, "resize", "alice")}},
                  Record{Dispatched{2, "w1", "id-w1", 12, 1}}});
    j.append(Submitted{call_of(3, "resize", "alice")});
    j.append(Dispatched{3, "w1", "id-w1", 13, 1});
    j.commit();
    // A turn that stored a new origin (bob) and worker (w2), rolled back: their ids are gone
    // with it, and the next values stored take them.
    j.begin_turn();
    j.append(Submitted{call_of(4, "resize", "bob")});
    j.append(Dispatched{4, "w2", "id-w2", 14, 1});
    j.rollback();
    one_turn(j, {Submitted{call_of(4, "crop", "carol")}, Dispatched{4, "w3", "id-w3", 14, 1}});
    one_turn(j, {Submitted{call_of(5, "resize", "bob")}, Dispatched{5, "w2", "id-w2", 15, 1}});
    const Loaded loaded = j.load();
    REQUIRE(loaded.calls.size() == 5);
    const std::vector<std::tuple<std::string, std::string, std::string>> expected{
        {"resize", "alice", "w1"}, {"resize", "alice", "w1"}, {"resize", "alice", "w1"},
        {"crop", "carol", "w3"}, {"resize", "bob", "w2"}};
    for (std::size_t i = 0; i < expected.size(); ++i) {
      INFO("job " << loaded.calls[i].job_id);
      CHECK(loaded.calls[i].node == std::get<0>(expected[i]));
      CHECK(loaded.calls[i].caller.name == std::get<1>(expected[i]));
      CHECK(loaded.calls[i].caller.identity == "id-client");
      CHECK(loaded.calls[i].worker_id == std::get<2>(expected[i]));
      CHECK(loaded.calls[i].worker_identity == "id-" + std::get<2>(expected[i]));
    }
    // Requeued, then Dispatched again: the worker is forgotten with the row's state, then set.
    one_turn(j, {Requeued{1, 1}});
    CHECK(j.load().calls[0].worker_id.empty());
    one_turn(j, {Dispatched{1, "w3", "id-w3", 16, 2}});
    CHECK(j.load().calls[0].worker_id == "w3");
    // Every call of alice and of w1 finished and acked; carol's and bob's still held.
    j.begin_turn();
    for (JobId id : {1, 2, 3})
      j.append(Finished{id, Outcome{ErrorCode::None, bytes_of("ok"), ""}, kT0, kT0 + 1h});
    j.commit();
    one_turn(j, {Acked{1}, Acked{2}, Acked{3}});
  }
  CHECK(count_in(path, "SELECT count(*) FROM origins") == 3);  // alice's, carol's, bob's
  CHECK(count_in(path, "SELECT count(*) FROM workers") == 3);
  { SqliteJournal reopened(options_for(path)); }
  CHECK(count_in(path, "SELECT count(*) FROM origins") == 2);  // alice's is gone
  CHECK(count_in(path, "SELECT count(*) FROM workers") == 2);  // w1's is gone (w3 holds job 4)
  SqliteJournal j(options_for(path));
  const Loaded loaded = j.load();
  REQUIRE(loaded.calls.size() == 2);
  CHECK(loaded.calls[0].caller.name == "carol");
  CHECK(loaded.calls[1].caller.name == "bob");
  // A value pruned at open is stored again when a call needs it.
  one_turn(j, {Submitted{call_of(6, "resize", "alice")}});
  CHECK(j.load().calls.back().caller.name == "alice");
}

TEST_CASE("journal sqlite: a value repeated from row to row, then another (an integer, NULL, an "
          "empty or a non-empty payload or message), is stored as each record says") {
  // The statements keep a parameter's binding when the next row binds the same integer, NULL
  // or empty value again (journal_sqlite.cpp, Statement): every change of value or kind must
  // still reach the row, whichever statement writes it (a folded row, an INSERT, an UPDATE).
  muster::test::TempDir dir;
  const fs::path path = dir.path / "journal.db";
  std::optional<SqliteJournal> j(std::in_place, options_for(path));
  // What load() does not read back: a row has an outcome code and an expiry when finished, and
  // only then; a worker when running, never when queued (read with the file closed).
  auto columns_follow_states = [&] {
    j.reset();
    CHECK(count_in(path, "SELECT count(*) FROM calls WHERE (state = 2) != (outcome_code IS NOT NULL) "
                         "OR (state = 2) != (expires_ms IS NOT NULL) OR (state = 0 AND worker IS NOT NULL) "
                         "OR (state = 1 AND worker IS NULL)") == 0);
    j.emplace(options_for(path));
  };
  auto outcome = [](JobId id) {
    switch (id % 3) {
      case 0: return Outcome{ErrorCode::None, bytes_of("out-" + std::to_string(id)), ""};
      case 1: return Outcome{ErrorCode::None, {}, ""};
      default: return Outcome{ErrorCode::WorkerError, {}, "boom-" + std::to_string(id)};
    }
  };
  auto attempt = [](JobId id) { return static_cast<std::uint32_t>(id % 4 < 2 ? 1 : 2); };
  std::vector<JournalOp> ops;
  for (JobId id = 1; id <= 24; ++id) {
    Call c = call(id, id % 5 == 0 ? "" : "in-" + std::to_string(id), id % 2 ? "" : "par");
    ops.push_back(Record{Submitted{std::move(c)}});
    if (id % 6 == 5) continue;  // queued: no worker, no outcome
    ops.push_back(Record{Dispatched{id, id % 4 < 2 ? "w1" : "w2", "id", 100 + id, attempt(id)}});
    if (id % 6 == 4) continue;  // running
    ops.push_back(Record{Finished{id, outcome(id), kT0 + std::chrono::seconds{id}, kT0 + 1h}});
  }
  j->begin_turn();
  j->append_all(ops);  // folded rows
  j->commit();
  columns_follow_states();
  // The same shapes again, as single records on rows of the batch before (UPDATEs).
  j->begin_turn();
  for (JobId id = 5; id <= 24; id += 6) j->append(Dispatched{id, "w3", "id", 200 + id, 3});
  for (JobId id = 4; id <= 24; id += 6) j->append(Finished{id, outcome(id + 1), kT0, kT0 + 2h});
  j->commit();
  columns_follow_states();
  const Loaded loaded = j->load();
  REQUIRE(loaded.calls.size() == 24);
  for (const Call& c : loaded.calls) {
    const JobId id = c.job_id;
    INFO("job " << id);
    const bool finished_now = id % 6 != 5;
    CHECK(c.state == (finished_now ? CallState::Finished : CallState::Running));
    CHECK(c.idempotent == (id % 2 == 0));
    CHECK(c.trace_id == "trace-" + std::to_string(id));
    CHECK(string_of(c.parameters) == (finished_now || id % 2 ? "" : "par"));
    CHECK(string_of(c.inputs) == (finished_now ? "" : id % 5 == 0 ? "" : "in-" + std::to_string(id)));
    if (id % 6 == 5) {
      CHECK(c.worker_id == "w3");
      CHECK(c.request_id == 200 + id);
      CHECK(c.attempts == 3);
      CHECK_FALSE(c.outcome.has_value());
      continue;
    }
    CHECK(c.worker_id == (id % 4 < 2 ? "w1" : "w2"));
    CHECK(c.request_id == 100 + id);
    CHECK(c.attempts == attempt(id));
    REQUIRE(c.outcome.has_value());
    const Outcome want = outcome(id % 6 == 4 ? id + 1 : id);
    CHECK(c.outcome->code == want.code);
    CHECK(string_of(c.outcome->outputs) == string_of(want.outputs));
    CHECK(c.outcome->message == want.message);
    CHECK(c.expires == (id % 6 == 4 ? kT0 + 2h : kT0 + 1h));
  }
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
      o.sync = full ? SqliteOptions::Sync::Full : SqliteOptions::Sync::Normal;
      std::optional<SqliteJournal> j(std::in_place, o);
      const TurnCost cost = commit_cost(*j, per_turn, per_turn == 256 ? 40 : 200);
      std::printf("synchronous=%-6s records/turn=%3zu  submit turn p50 %8.0f us (%6.1f us/record)  "
                  "finish turn p50 %8.0f us (%6.1f us/record)\n",
                  full ? "FULL" : "NORMAL", per_turn, cost.submit_us, cost.submit_us / per_turn,
                  cost.finish_us, cost.finish_us / per_turn);
      j.reset();
      fs::remove(path);
    }
  }
}

namespace {

// Every descriptor of this process open on `path` (SQLite's own among them), by /proc/self/fd.
std::vector<struct stat> descriptors_of(const fs::path& path) {
  std::vector<struct stat> out;
  for (auto& entry : fs::directory_iterator("/proc/self/fd")) {
    std::error_code ec;
    auto target = fs::read_symlink(entry.path(), ec);
    if (ec || target != path) continue;
    struct stat st {};
    if (::stat(entry.path().c_str(), &st) == 0) out.push_back(st);
  }
  return out;
}

}  // namespace

TEST_CASE("journal sqlite: the WAL sync's descriptor is SQLite's WAL, across checkpoints and WAL restarts") {
  muster::test::TempDir dir;
  const fs::path path = fs::canonical(dir.path) / "journal.db";
  const fs::path wal = path.string() + "-wal";
  SqliteOptions o = options_for(path);
  o.sync = SqliteOptions::Sync::Deferred;
  SqliteJournal j(o);
  auto* sync = dynamic_cast<WalSync*>(j.deferred_sync());
  REQUIRE(sync);
  struct stat ours {};
  REQUIRE(::fstat(sync->fd(), &ours) == 0);
  // 40 turns of 4 calls of 64 KiB, each acked two turns later: ≈ 10 MiB through the WAL, more
  // than two auto-checkpoints (1000 pages of 4 KiB), after which SQLite writes the WAL from
  // its start again.
  JobId next = 1;
  for (int turn = 0; turn < 40; ++turn) {
    j.begin_turn();
    for (int i = 0; i < 4; ++i, ++next) {
      j.append(Submitted{call(next, std::string(64 * 1024, static_cast<char>('a' + turn % 26)))});
      if (next > 8) j.append(Acked{next - 8});
    }
    j.commit();
    sync->sync();
    // SQLite's descriptor (and ours) on the WAL's name: one inode, ours among them, the name
    // still linked, and the size SQLite wrote is the size our descriptor sees.
    auto fds = descriptors_of(wal);
    REQUIRE(fds.size() >= 2);
    for (auto& st : fds) {
      CHECK(st.st_dev == ours.st_dev);
      CHECK(st.st_ino == ours.st_ino);
    }
    struct stat now {};
    REQUIRE(::fstat(sync->fd(), &now) == 0);
    CHECK(now.st_nlink == 1);
    CHECK(static_cast<std::uintmax_t>(now.st_size) == fs::file_size(wal));
  }
  auto loaded = j.load();
  CHECK(loaded.calls.size() == 8);
}

TEST_CASE("journal sqlite: only --journal-sync full defers its sync; a deferred journal's turns load after a reopen") {
  muster::test::TempDir dir;
  const fs::path path = dir.path / "journal.db";
  {
    SqliteOptions o = options_for(path);
    CHECK(SqliteJournal(o).deferred_sync() == nullptr);  // Full: commit() is durable
    o.sync = SqliteOptions::Sync::Normal;
    CHECK(SqliteJournal(o).deferred_sync() == nullptr);  // Normal: no sync promised
  }
  JournalSettings settings;
  settings.spec = "sqlite:" + path.string();
  settings.sync = JournalSync::Normal;
  CHECK(open_journal(settings)->deferred_sync() == nullptr);
  settings.sync = JournalSync::Full;
  {
    auto j = open_journal(settings);
    REQUIRE(j->deferred_sync());
    one_turn(*j, {Submitted{call(1)}, Submitted{call(2)}});
    j->deferred_sync()->sync();
  }
  SqliteJournal reopened(options_for(path));
  CHECK(reopened.load().calls.size() == 2);
}
