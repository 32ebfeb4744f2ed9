// journal_sqlite.cpp — the SQLite journal (journal_sqlite.hpp). One table of calls, one row per
// open durable call holding its latest state; each record of journal.hpp is one statement on
// it. A row's node and caller, and its worker, are ids of two side tables (origins, workers),
// each distinct value written once (journal_names.hpp). Schema changes are numbered migrations
// recorded in muster_schema.
#include "journal_sqlite.hpp"
#include "journal_migrations.hpp"
#include "journal_wal_sync.hpp"

#include <sqlite3.h>

#include <algorithm>
#include <array>
#include <string_view>
#include <type_traits>
#include <fmt/format.h>

namespace muster::broker::journal {
namespace {

constexpr std::array kMigrations{
    Migration{1, "calls and meta", R"sql(
      CREATE TABLE muster_meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;
      INSERT INTO muster_meta VALUES ('epoch', 0), ('next_job_id', 1);
      CREATE TABLE calls (
        job_id INTEGER PRIMARY KEY,
        state INTEGER NOT NULL,               -- journal.hpp CallState
        node TEXT NOT NULL,
        identity TEXT NOT NULL, caller_name TEXT NOT NULL,
        workspace TEXT NOT NULL, role TEXT NOT NULL,
        trace_id TEXT NOT NULL,
        inputs BLOB NOT NULL, parameters BLOB NOT NULL,
        idempotent INTEGER NOT NULL,
        submitted_ms INTEGER NOT NULL, deadline_ms INTEGER NOT NULL,
        worker_id TEXT, worker_identity TEXT, request_id INTEGER,
        attempts INTEGER NOT NULL DEFAULT 0, deaths INTEGER NOT NULL DEFAULT 0,
        outcome_code INTEGER, outputs BLOB, message TEXT,
        finished_ms INTEGER, expires_ms INTEGER);
      CREATE INDEX calls_expiry ON calls (expires_ms) WHERE state = 2;
    )sql"},
    // The journal finds expired rows in memory (SqliteJournal::held_): the index cost every
    // call an entry inserted with its finished row and deleted with its Acked.
    Migration{2, "drop the expiry index", R"sql(
      DROP INDEX calls_expiry;
    )sql"},
    // A call's node and caller, and the worker running it, are ids of side tables written once
    // per distinct value (journal_names.hpp), not five and two strings in every row: 17
    // parameters bound per row instead of 22, and a shorter row. call_rows shows the rows
    // with their strings (load() reads it; so may a person with the sqlite3 shell).
    Migration{3, "callers, nodes and workers in side tables", R"sql(
      CREATE TABLE origins (
        id INTEGER PRIMARY KEY,
        node TEXT NOT NULL,
        identity TEXT NOT NULL, caller_name TEXT NOT NULL,
        workspace TEXT NOT NULL, role TEXT NOT NULL,
        UNIQUE (node, identity, caller_name, workspace, role));
      INSERT INTO origins (node, identity, caller_name, workspace, role)
        SELECT DISTINCT node, identity, caller_name, workspace, role FROM calls;
      CREATE TABLE workers (
        id INTEGER PRIMARY KEY,
        worker_id TEXT NOT NULL, worker_identity TEXT NOT NULL,
        UNIQUE (worker_id, worker_identity));
      INSERT INTO workers (worker_id, worker_identity)
        SELECT DISTINCT worker_id, coalesce(worker_identity, '') FROM calls
        WHERE worker_id IS NOT NULL;
      CREATE TABLE calls_v3 (
        job_id INTEGER PRIMARY KEY,
        state INTEGER NOT NULL,               -- journal.hpp CallState
        origin INTEGER NOT NULL REFERENCES origins (id),
        trace_id TEXT NOT NULL,
        inputs BLOB NOT NULL, parameters BLOB NOT NULL,
        idempotent INTEGER NOT NULL,
        submitted_ms INTEGER NOT NULL, deadline_ms INTEGER NOT NULL,
        worker INTEGER REFERENCES workers (id), request_id INTEGER,
        attempts INTEGER NOT NULL DEFAULT 0, deaths INTEGER NOT NULL DEFAULT 0,
        outcome_code INTEGER, outputs BLOB, message TEXT,
        finished_ms INTEGER, expires_ms INTEGER);
      INSERT INTO calls_v3
        SELECT c.job_id, c.state, o.id, c.trace_id, c.inputs, c.parameters, c.idempotent,
               c.submitted_ms, c.deadline_ms, w.id, c.request_id, c.attempts, c.deaths,
               c.outcome_code, c.outputs, c.message, c.finished_ms, c.expires_ms
        FROM calls c
        JOIN origins o ON o.node = c.node AND o.identity = c.identity
          AND o.caller_name = c.caller_name AND o.workspace = c.workspace AND o.role = c.role
        LEFT JOIN workers w ON c.worker_id IS NOT NULL AND w.worker_id = c.worker_id
          AND w.worker_identity = coalesce(c.worker_identity, '');
      DROP TABLE calls;
      ALTER TABLE calls_v3 RENAME TO calls;
      CREATE VIEW call_rows AS
        SELECT c.job_id, c.state, o.node, o.identity, o.caller_name, o.workspace, o.role,
               c.trace_id, c.inputs, c.parameters, c.idempotent, c.submitted_ms, c.deadline_ms,
               w.worker_id, w.worker_identity, c.request_id, c.attempts, c.deaths,
               c.outcome_code, c.outputs, c.message, c.finished_ms, c.expires_ms
        FROM calls c JOIN origins o ON o.id = c.origin LEFT JOIN workers w ON w.id = c.worker;
    )sql"},
};
static_assert(kMigrations.back().version == SqliteJournal::kSchemaVersion);

// The BLOB bytes of one row (journal.hpp Call::payload_bytes, in SQL).
#define MUSTER_ROW_BYTES                                                                  \
  "(length(inputs) + length(parameters) + coalesce(length(outputs), 0) + "               \
  "coalesce(length(CAST(message AS BLOB)), 0))"

enum StatementId {
  kInsert,
  kInsertRow,
  kInsertOrigin,
  kInsertWorker,
  kBumpNextJob,
  kDispatch,
  kRequeue,
  kFinish,
  kDelete,
  kDeleteRange,
  kExpire,
  kLoad,
  kStatementCount
};
constexpr std::array<const char*, kStatementCount> kSql{
    "INSERT INTO calls (job_id, state, origin, trace_id, inputs, parameters, idempotent, "
    "submitted_ms, deadline_ms) VALUES (?1, 0, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    // The row a Submitted and the Dispatched (and Finished) after it leave, written at once
    // (append_all); write_row binds NULL to the columns of states the row has not reached.
    "INSERT INTO calls (job_id, state, origin, trace_id, inputs, parameters, idempotent, "
    "submitted_ms, deadline_ms, worker, request_id, attempts, outcome_code, outputs, message, "
    "finished_ms, expires_ms) "
    "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17)",
    // A node and caller, a worker, the first time a row needs them (journal_names.hpp).
    "INSERT INTO origins (node, identity, caller_name, workspace, role) "
    "VALUES (?1, ?2, ?3, ?4, ?5)",
    "INSERT INTO workers (worker_id, worker_identity) VALUES (?1, ?2)",
    "UPDATE muster_meta SET value = max(value, ?1) WHERE key = 'next_job_id'",
    "UPDATE calls SET state = 1, worker = ?2, request_id = ?3, attempts = ?4 "
    "WHERE job_id = ?1 AND state IN (0, 1)",
    "UPDATE calls SET state = 0, worker = NULL, request_id = NULL, deaths = ?2 "
    "WHERE job_id = ?1 AND state = 1",
    // A finished call no longer needs its inputs: they leave the journal (and its byte count).
    "UPDATE calls SET state = 2, inputs = x'', parameters = x'', outcome_code = ?2, "
    "outputs = ?3, message = ?4, finished_ms = ?5, expires_ms = ?6 WHERE job_id = ?1 "
    "AND state IN (0, 1)",
    // Without RETURNING: SQLite gathers RETURNING rows in a temporary table first, which cost
    // more than the delete (perf, docs/DURABILITY.md §10); the bytes come from held_.
    "DELETE FROM calls WHERE job_id = ?1",
    // Acked calls of a range of job ids that holds no other row (write_acked checks).
    "DELETE FROM calls WHERE job_id BETWEEN ?1 AND ?2",
    // One row expire() found in held_ (the state checked again: held_ must match the table).
    "DELETE FROM calls WHERE job_id = ?1 AND state = 2 AND expires_ms <= ?2",
    "SELECT job_id, state, node, identity, caller_name, workspace, role, trace_id, inputs, "
    "parameters, idempotent, submitted_ms, deadline_ms, worker_id, worker_identity, request_id, "
    "attempts, deaths, outcome_code, outputs, message, finished_ms, expires_ms "
    "FROM call_rows ORDER BY job_id",
};

std::int64_t millis(WallTime t) { return t.time_since_epoch().count(); }
WallTime wall(std::int64_t ms) { return WallTime{std::chrono::milliseconds{ms}}; }

}  // namespace

// A prepared statement, reset after each use. Its bindings are not cleared (sqlite3_clear_bindings
// cost ≈ 450 instructions a statement, docs/DURABILITY.md §10): every use binds every parameter
// of its SQL again, NULLs included, so a value bound by an earlier use (a pointer to bytes gone
// since, SQLITE_STATIC) is never read — except a parameter whose last binding holds no such
// pointer (an integer, NULL, a 0-byte BLOB or text of static storage) and is asked to hold the
// same again: that binding stays as it is (SQLite keeps bindings across sqlite3_reset), which
// saves ≈ 90–170 instructions a parameter (a row's state, origin, flags, attempt, outcome code
// and empty payloads repeat from call to call; docs/DURABILITY.md §10 "Session 12").
class SqliteJournal::Statement {
 public:
  Statement(const SqliteJournal& owner, const char* sql) : owner_(owner) {
    if (sqlite3_prepare_v3(owner.db_, sql, -1, SQLITE_PREPARE_PERSISTENT, &stmt_, nullptr) !=
        SQLITE_OK)
      owner.fail_sqlite(sqlite3_extended_errcode(owner.db_), sqlite3_errmsg(owner.db_));
    last_.resize(static_cast<std::size_t>(sqlite3_bind_parameter_count(stmt_)) + 1);
  }
  ~Statement() { sqlite3_finalize(stmt_); }

  Statement& bind(int i, std::int64_t v) {
    if (same(i, Bound::Integer, v)) return *this;
    return check(i, sqlite3_bind_int64(stmt_, i, v), Bound::Integer, v);
  }
  Statement& bind_null(int i) {
    if (same(i, Bound::Null)) return *this;
    return check(i, sqlite3_bind_null(stmt_, i), Bound::Null);
  }
  Statement& bind(int i, std::string_view v) {
    static constexpr char kNoText[] = "";
    if (v.empty()) {  // never the pointer of a string the record owns: it may be gone next time
      if (same(i, Bound::EmptyText)) return *this;
      return check(i, sqlite3_bind_text(stmt_, i, kNoText, 0, SQLITE_STATIC), Bound::EmptyText);
    }
    return check(i, sqlite3_bind_text(stmt_, i, v.data(), static_cast<int>(v.size()), SQLITE_STATIC),
                 Bound::Other);
  }
  Statement& bind(int i, const Payload& p) {
    // An empty payload is an empty BLOB, never NULL (sqlite3_bind_blob of a null pointer is
    // NULL): a pointer that is not null, 0 bytes. Not sqlite3_bind_zeroblob, whose value SQLite
    // expands (an allocation) when it stores it (≈ 400 instructions a payload).
    static constexpr std::uint8_t kNoBytes = 0;
    if (p.bytes.empty()) {
      if (same(i, Bound::EmptyBlob)) return *this;
      return check(i, sqlite3_bind_blob64(stmt_, i, &kNoBytes, 0, SQLITE_STATIC), Bound::EmptyBlob);
    }
    return check(i, sqlite3_bind_blob64(stmt_, i, p.bytes.data(), p.bytes.size(), SQLITE_STATIC),
                 Bound::Other);
  }
  // Runs the statement to its next row; false when done.
  bool step() {
    const int rc = sqlite3_step(stmt_);
    if (rc == SQLITE_ROW) return true;
    if (rc == SQLITE_DONE) return false;
    const int code = sqlite3_extended_errcode(owner_.db_);
    const std::string why = sqlite3_errmsg(owner_.db_);
    reset();  // usable again by the next turn
    owner_.fail_sqlite(code, why);
  }
  void reset() { sqlite3_reset(stmt_); }
  std::int64_t integer(int col) const { return sqlite3_column_int64(stmt_, col); }
  bool is_null(int col) const { return sqlite3_column_type(stmt_, col) == SQLITE_NULL; }
  // Valid until the next step() or reset().
  std::string_view text_view(int col) const {
    const auto* p = sqlite3_column_text(stmt_, col);
    return p ? std::string_view(reinterpret_cast<const char*>(p),
                                static_cast<std::size_t>(sqlite3_column_bytes(stmt_, col)))
             : std::string_view();
  }
  std::string text(int col) const { return std::string(text_view(col)); }
  Payload blob(int col) const {
    const auto* p = static_cast<const std::uint8_t*>(sqlite3_column_blob(stmt_, col));
    const auto n = static_cast<std::size_t>(sqlite3_column_bytes(stmt_, col));
    return Payload::copy_of({p, p ? n : 0});
  }

 private:
  // What a parameter was last bound to: Other when a later use must bind it again.
  enum class Bound : std::uint8_t { Other, Integer, Null, EmptyText, EmptyBlob };
  struct Last {
    Bound kind = Bound::Other;
    std::int64_t value = 0;
  };
  bool same(int i, Bound kind, std::int64_t value = 0) const {
    if (i < 1 || static_cast<std::size_t>(i) >= last_.size()) return false;  // SQLite refuses it
    const Last& l = last_[static_cast<std::size_t>(i)];
    return l.kind == kind && l.value == value;
  }
  Statement& check(int i, int rc, Bound kind, std::int64_t value = 0) {
    if (i >= 1 && static_cast<std::size_t>(i) < last_.size())
      last_[static_cast<std::size_t>(i)] = rc == SQLITE_OK ? Last{kind, value} : Last{};
    if (rc != SQLITE_OK) owner_.fail(fmt::format("cannot bind: {}", sqlite3_errstr(rc)));
    return *this;
  }
  const SqliteJournal& owner_;
  sqlite3_stmt* stmt_ = nullptr;
  std::vector<Last> last_;  // by parameter number (1..count)
};

SqliteJournal::SqliteJournal(SqliteOptions options) : options_(std::move(options)) {
  // SQLite's allocation statistics take a global mutex around every malloc and free (≈ 9 % of a
  // durable musterd's CPU, perf, docs/DURABILITY.md §10); nothing here reads them. Only
  // possible before SQLite initialises, i.e. before the first journal of the process opens
  // (later calls are refused, harmlessly).
  static const int no_memstatus [[maybe_unused]] = sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
  // The file must exist or be creatable; its directory is never created here (the data dir is
  // the daemon's to make, with its mode).
  const int rc = sqlite3_open_v2(options_.path.c_str(), &db_,
                                 SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE |
                                     SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_EXRESCODE,
                                 nullptr);
  if (rc != SQLITE_OK) {
    const std::string why = db_ ? sqlite3_errmsg(db_) : sqlite3_errstr(rc);
    sqlite3_close_v2(db_);
    db_ = nullptr;
    fail(fmt::format("cannot open: {}", why));
  }
  try {
    // Exclusive: the lock taken by the first write below is held until close, so a second
    // daemon on the same file fails at once instead of interleaving its turns with ours. In
    // WAL mode this also means no shared-memory file next to the journal.
    exec("PRAGMA locking_mode = EXCLUSIVE");
    check_and_migrate();
    exec(options_.sync == SqliteOptions::Sync::Full ? "PRAGMA synchronous = FULL" : "PRAGMA synchronous = NORMAL");
    // The WAL is checkpointed into the file every 1000 pages (SQLite's default) and then cut
    // back to this size, so a burst does not leave a large WAL behind.
    exec("PRAGMA journal_size_limit = 67108864");
    // Debian builds SQLite with SQLITE_SECURE_DELETE: every deleted row (an Acked call, the old
    // version of an updated one) is overwritten with zeros in its page. It erases nothing the
    // file does not keep elsewhere anyway (the WAL holds the pages as written until they are
    // reused), and cost ≈ 700 instructions a call (docs/DURABILITY.md §4, §10).
    exec("PRAGMA secure_delete = OFF");
    for (const char* sql : kSql) statements_.push_back(std::make_unique<Statement>(*this, sql));
    read_committed();  // the size of what the journal holds, kept up to date by append()
    // Deferred: the WAL exists now (SQLite opened it at the first read in WAL mode, above) and
    // stays the same file while the database is open: SQLite rewrites it from the start after
    // a checkpoint and truncates it to journal_size_limit, but deletes it only at close (or on
    // leaving WAL mode, which this journal never does). So a descriptor of our own syncs the
    // inode SQLite writes (the test "the WAL sync's descriptor is SQLite's WAL" checks it).
    if (options_.sync == SqliteOptions::Sync::Deferred)
      wal_sync_ = std::make_unique<WalSync>(sqlite3_filename_wal(sqlite3_db_filename(db_, "main")), describe());
  } catch (...) {
    statements_.clear();
    sqlite3_close_v2(db_);
    db_ = nullptr;
    throw;
  }
}

SqliteJournal::~SqliteJournal() {
  if (!db_) return;
  if (in_turn_) sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
  statements_.clear();
  sqlite3_close_v2(db_);
}

std::string SqliteJournal::describe() const { return "sqlite:" + options_.path.string(); }

void SqliteJournal::fail(const std::string& what) const {
  throw JournalError(fmt::format("journal {}: {}", describe(), what));
}

void SqliteJournal::fail_sqlite(int code, const std::string& why) const {
  switch (code & 0xff) {
    case SQLITE_NOTADB:
    case SQLITE_CORRUPT:
      fail(fmt::format("not a readable SQLite database: corrupt, truncated, or not a journal "
                       "at all ({}); refusing to start empty over it",
                       why));
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
      fail(fmt::format("in use by another process (another musterd?): {}", why));
    default:
      fail(why);
  }
}

void SqliteJournal::exec(const char* sql) {
  char* err = nullptr;
  if (sqlite3_exec(db_, sql, nullptr, nullptr, &err) != SQLITE_OK) {
    const int code = sqlite3_extended_errcode(db_);
    std::string why = err ? err : sqlite3_errmsg(db_);
    sqlite3_free(err);
    fail_sqlite(code, why);
  }
}

SqliteJournal::Statement& SqliteJournal::prepared(int which) { return *statements_[which]; }

void SqliteJournal::check_and_migrate() {
  // The first statement that reads the file: a file that is not SQLite fails here.
  {
    Statement wal(*this, "PRAGMA journal_mode = WAL");
    wal.step();
    if (wal.text(0) != "wal") fail(fmt::format("cannot use WAL mode (got '{}')", wal.text(0)));
  }
  exec("BEGIN IMMEDIATE");
  try {
    {
      Statement check(*this, "PRAGMA quick_check(1)");
      check.step();
      if (check.text(0) != "ok")
        fail(fmt::format("corrupt ({}); refusing to start empty over it", check.text(0)));
    }
    Statement app(*this, "PRAGMA application_id");
    app.step();
    const auto application_id = static_cast<std::int32_t>(app.integer(0));
    Statement objects(*this, "SELECT count(*), coalesce(group_concat(name, ', '), '') FROM "
                             "sqlite_schema WHERE name NOT LIKE 'sqlite_%'");
    objects.step();
    const bool empty = objects.integer(0) == 0;
    int version = 0;
    if (application_id != kApplicationId && (!empty || application_id != 0))
      fail(fmt::format("an SQLite database that is not a muster journal (application_id "
                       "{:#x}, holds: {}); refusing to use it",
                       static_cast<std::uint32_t>(application_id), objects.text(1)));
    // Done with: a migration that drops a table or an index fails while a statement reads.
    app.reset();
    objects.reset();
    if (application_id != kApplicationId) {
      exec(fmt::format("PRAGMA application_id = {}", kApplicationId).c_str());
      exec("CREATE TABLE muster_schema (version INTEGER PRIMARY KEY, applied_ms INTEGER NOT "
           "NULL, description TEXT NOT NULL)");
    } else {
      Statement v(*this, "SELECT coalesce(max(version), 0) FROM muster_schema");
      v.step();
      version = static_cast<int>(v.integer(0));
    }
    migrate(version, kMigrations, "upgrade musterd, or move the file away", [&](const Migration& m) {
      exec(m.sql);
      Statement record(*this, "INSERT INTO muster_schema VALUES (?1, "
                              "CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER), ?2)");
      record.bind(1, std::int64_t{m.version}).bind(2, std::string(m.description)).step();
    }, [this](const std::string& why) { fail(why); });
    // Nodes, callers and workers no call holds any more (written once each, never deleted
    // while a daemon runs): gone at each open.
    exec("DELETE FROM origins WHERE id NOT IN (SELECT origin FROM calls)");
    exec("DELETE FROM workers WHERE id NOT IN (SELECT worker FROM calls WHERE worker IS NOT NULL)");
    exec("UPDATE muster_meta SET value = value + 1 WHERE key = 'epoch'");
    Statement e(*this, "SELECT value FROM muster_meta WHERE key = 'epoch'");
    e.step();
    epoch_ = static_cast<std::uint64_t>(e.integer(0));
    exec("COMMIT");
  } catch (...) {
    sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
    throw;
  }
}

Loaded SqliteJournal::load() {
  Loaded out;
  Statement& s = prepared(kLoad);
  while (s.step()) {
    Call c;
    c.job_id = static_cast<JobId>(s.integer(0));
    c.state = static_cast<CallState>(s.integer(1));
    c.node = s.text(2);
    c.caller = Caller{s.text(3), s.text(4), s.text(5), s.text(6)};
    c.trace_id = s.text(7);
    c.inputs = s.blob(8);
    c.parameters = s.blob(9);
    c.idempotent = s.integer(10) != 0;
    c.submitted = wall(s.integer(11));
    c.deadline = wall(s.integer(12));
    c.worker_id = s.text(13);
    c.worker_identity = s.text(14);
    c.request_id = static_cast<std::uint64_t>(s.integer(15));
    c.attempts = static_cast<std::uint32_t>(s.integer(16));
    c.deaths = static_cast<std::uint32_t>(s.integer(17));
    if (c.state == CallState::Finished) {
      c.outcome = Outcome{static_cast<ErrorCode>(s.integer(18)), s.blob(19), s.text(20)};
      c.finished = wall(s.integer(21));
      c.expires = wall(s.integer(22));
    }
    out.calls.push_back(std::move(c));
  }
  s.reset();
  Statement next(*this, "SELECT value FROM muster_meta WHERE key = 'next_job_id'");
  next.step();
  out.next_job_id = static_cast<JobId>(next.integer(0));
  return out;
}

void SqliteJournal::read_committed() {
  held_.clear();
  committed_bytes_ = 0;
  Statement rows(*this, "SELECT job_id, state, expires_ms, " MUSTER_ROW_BYTES " FROM calls");
  while (rows.step()) {
    const bool finished = rows.integer(1) == static_cast<std::int64_t>(CallState::Finished);
    const std::int64_t bytes = rows.integer(3);
    held_.put(static_cast<JobId>(rows.integer(0)), bytes, finished ? rows.integer(2) : kNeverExpires);
    committed_bytes_ += static_cast<std::uint64_t>(bytes);
  }
  origins_.clear();
  Statement origins(*this, "SELECT id, node, identity, caller_name, workspace, role FROM origins");
  while (origins.step())
    origins_.add({origins.text_view(1), origins.text_view(2), origins.text_view(3),
                  origins.text_view(4), origins.text_view(5)},
                 origins.integer(0));
  workers_.clear();
  Statement workers(*this, "SELECT id, worker_id, worker_identity FROM workers");
  while (workers.step()) workers_.add({workers.text_view(1), workers.text_view(2)}, workers.integer(0));
  held_stale_ = false;
}

void SqliteJournal::require_turn(const char* what) const {
  if (!in_turn_) fail(fmt::format("{} outside a turn (begin_turn first)", what));
}

void SqliteJournal::begin_turn() {
  if (in_turn_) fail("begin_turn inside a turn");
  exec("BEGIN IMMEDIATE");
  in_turn_ = true;
  if (held_stale_) {
    try {
      read_committed();
    } catch (...) {
      rollback();
      throw;
    }
  }
  turn_bytes_ = 0;
  turn_next_job_ = 0;
}

void SqliteJournal::commit() {
  require_turn("commit");
  if (turn_next_job_) {
    prepared(kBumpNextJob).bind(1, static_cast<std::int64_t>(turn_next_job_)).step();
    prepared(kBumpNextJob).reset();
    turn_next_job_ = 0;
  }
  const int rc = sqlite3_exec(db_, "COMMIT", nullptr, nullptr, nullptr);
  if (rc != SQLITE_OK) {
    const std::string why = sqlite3_errmsg(db_);
    rollback();
    fail(fmt::format("commit failed, the turn is not durable: {}", why));
  }
  in_turn_ = false;
  committed_bytes_ += turn_bytes_;
  turn_bytes_ = 0;
}

void SqliteJournal::rollback() {
  if (!in_turn_) return;
  in_turn_ = false;
  turn_bytes_ = 0;
  turn_next_job_ = 0;
  // held_ may name rows the rollback removed, or miss rows it brought back; the ids may name
  // origins and workers the rollback removed.
  held_stale_ = true;
  if (sqlite3_get_autocommit(db_) == 0) sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
}

void SqliteJournal::append(const Record& record) {
  require_turn("append");
  std::visit([this](const auto& r) { apply(r); }, record);
}

void SqliteJournal::apply(const Submitted& r) {
  const Call& c = r.call;
  if (c.job_id == 0) fail("Submitted with job id 0");
  const std::int64_t origin = origin_of(c);
  Statement& s = prepared(kInsert);
  s.bind(1, static_cast<std::int64_t>(c.job_id))
      .bind(2, origin)
      .bind(3, c.trace_id)
      .bind(4, c.inputs)
      .bind(5, c.parameters)
      .bind(6, std::int64_t{c.idempotent})
      .bind(7, millis(c.submitted))
      .bind(8, millis(c.deadline));
  s.step();
  s.reset();
  // next_job_id is raised once per turn, at its commit (one statement for all its Submits).
  turn_next_job_ = std::max(turn_next_job_, c.job_id + 1);
  const auto bytes = static_cast<std::int64_t>(c.inputs.bytes.size() + c.parameters.bytes.size());
  held_.put(c.job_id, bytes);
  turn_bytes_ += bytes;
}

// Throws unless the last statement changed exactly one row (the call exists, in a state the
// record may follow).
#define MUSTER_EXPECT_ONE_ROW(record, job)                                                  \
  do {                                                                                      \
    if (sqlite3_changes(db_) != 1)                                                          \
      fail(fmt::format("{} for job {}, which the journal does not hold in a state it can "  \
                       "follow",                                                            \
                       record, job));                                                       \
  } while (0)

template <std::size_t N>
std::int64_t SqliteJournal::stored_id(NameIds<N>& ids, int insert, const typename NameIds<N>::Parts& parts) {
  if (const auto id = ids.find(parts)) return id;
  Statement& s = prepared(insert);
  for (std::size_t i = 0; i < N; ++i) s.bind(static_cast<int>(i) + 1, parts[i]);
  s.step();
  s.reset();
  const std::int64_t id = sqlite3_last_insert_rowid(db_);
  ids.add(parts, id);
  return id;
}

std::int64_t SqliteJournal::origin_of(const Call& c) {
  return stored_id(origins_, kInsertOrigin,
                   {c.node, c.caller.identity, c.caller.name, c.caller.workspace, c.caller.role});
}

std::int64_t SqliteJournal::worker_of(const Dispatched& d) {
  return stored_id(workers_, kInsertWorker, {d.worker_id, d.worker_identity});
}

void SqliteJournal::apply(const Dispatched& r) {
  const std::int64_t worker = worker_of(r);
  Statement& s = prepared(kDispatch);
  s.bind(1, static_cast<std::int64_t>(r.job_id))
      .bind(2, worker)
      .bind(3, static_cast<std::int64_t>(r.request_id))
      .bind(4, std::int64_t{r.attempt});
  s.step();
  s.reset();
  MUSTER_EXPECT_ONE_ROW("Dispatched", r.job_id);
}

void SqliteJournal::apply(const Requeued& r) {
  Statement& s = prepared(kRequeue);
  s.bind(1, static_cast<std::int64_t>(r.job_id)).bind(2, std::int64_t{r.deaths});
  s.step();
  s.reset();
  MUSTER_EXPECT_ONE_ROW("Requeued", r.job_id);
}

void SqliteJournal::apply(const Finished& r) {
  // The bytes the row held before: its inputs and parameters.
  const auto held = static_cast<std::int64_t>(r.outcome.outputs.bytes.size() + r.outcome.message.size());
  HeldRows::Row* row = held_.find(r.job_id);
  if (!row || row->expires_ms != kNeverExpires)
    fail(fmt::format("Finished for job {}, which the journal does not hold open", r.job_id));
  const std::int64_t freed = row->bytes;
  Statement& s = prepared(kFinish);
  s.bind(1, static_cast<std::int64_t>(r.job_id))
      .bind(2, std::int64_t{static_cast<std::uint16_t>(r.outcome.code)})
      .bind(3, r.outcome.outputs)
      .bind(4, r.outcome.message)
      .bind(5, millis(r.at))
      .bind(6, millis(r.expires));
  s.step();
  s.reset();
  if (sqlite3_changes(db_) != 1)
    fail(fmt::format("Finished for job {}, which the journal does not hold open", r.job_id));
  row->bytes = held;
  row->expires_ms = millis(r.expires);
  turn_bytes_ += held - freed;
}

void SqliteJournal::apply(const Acked& r) {
  forget_acked(r.job_id);
  delete_acked(r.job_id, r.job_id, 1);
}

void SqliteJournal::forget_acked(JobId job) {
  HeldRows::Row* row = held_.find(job);
  if (!row) fail(fmt::format("Acked for job {}, which the journal does not hold", job));
  turn_bytes_ -= row->bytes;
  held_.forget(row);
}

void SqliteJournal::delete_acked(JobId first, JobId last, std::size_t count) {
  Statement& s = prepared(first == last ? kDelete : kDeleteRange);
  s.bind(1, static_cast<std::int64_t>(first));
  if (first != last) s.bind(2, static_cast<std::int64_t>(last));
  s.step();
  s.reset();
  if (sqlite3_changes(db_) != static_cast<int>(count))
    fail(first == last ? fmt::format("Acked for job {}, which the journal does not hold", first)
                       : fmt::format("Acked for jobs {} to {}, which the journal does not all hold",
                                     first, last));
}

void SqliteJournal::write_acked() {
  if (acked_.empty()) return;
  std::sort(acked_.begin(), acked_.end());
  for (std::size_t i = 0; i < acked_.size();) {
    // acked_[i..end) are one range: no row is held between two of them (the ids between are
    // of rows deleted before, or acked in this batch), so deleting the range deletes them
    // and nothing else.
    std::size_t end = i + 1;
    while (end < acked_.size() && (acked_[end] == acked_[end - 1] + 1 ||
                                   !held_.any_between(acked_[end - 1], acked_[end])))
      ++end;
    delete_acked(acked_[i], acked_[end - 1], end - i);
    i = end;
  }
  acked_.clear();
}

void SqliteJournal::append_turns(std::span<const std::vector<JournalOp>> turns) {
  require_turn("append_all");
  // A call's Submitted and the records of it that follow in the batch are one INSERT of the
  // row they leave (journal_fold.hpp).
  // Consecutive Acked records (no other step between them) are checked and forgotten (held_)
  // in order, and their rows deleted together: a range of job ids at a time that holds no
  // other row (write_acked), one statement for many.
  acked_.clear();
  for (const BatchStep& step : planner_.plan(turns)) {
    const auto* rec = step.is_row ? nullptr : std::get_if<Record>(&planner_.op(step.op));
    if (const auto* acked = rec ? std::get_if<Acked>(rec) : nullptr) {
      forget_acked(acked->job_id);
      acked_.push_back(acked->job_id);
      continue;
    }
    write_acked();
    if (step.is_row) write_row(*step.row.submitted, step.row.dispatched, step.row.finished);
    else if (rec) append(*rec);
    else expire(std::get<ExpireKept>(planner_.op(step.op)).now);
  }
  write_acked();
}

void SqliteJournal::write_row(const Submitted& sub, const Dispatched* d, const Finished* f) {
  const Call& c = sub.call;
  if (c.job_id == 0) fail("Submitted with job id 0");
  const CallState state = f ? CallState::Finished : d ? CallState::Running : CallState::Queued;
  const std::int64_t origin = origin_of(c);
  const std::int64_t worker = d ? worker_of(*d) : 0;
  Statement& s = prepared(kInsertRow);
  s.bind(1, static_cast<std::int64_t>(c.job_id))
      .bind(2, std::int64_t{static_cast<std::uint8_t>(state)})
      .bind(3, origin)
      .bind(4, c.trace_id)
      // A finished call no longer needs its inputs (as Finished's UPDATE empties them).
      .bind(5, f ? Payload{} : c.inputs)
      .bind(6, f ? Payload{} : c.parameters)
      .bind(7, std::int64_t{c.idempotent})
      .bind(8, millis(c.submitted))
      .bind(9, millis(c.deadline))
      .bind(12, std::int64_t{d ? d->attempt : 0u});
  if (d) s.bind(10, worker).bind(11, static_cast<std::int64_t>(d->request_id));
  else s.bind_null(10).bind_null(11);  // not running: no worker
  if (f)
    s.bind(13, std::int64_t{static_cast<std::uint16_t>(f->outcome.code)})
        .bind(14, f->outcome.outputs)
        .bind(15, f->outcome.message)
        .bind(16, millis(f->at))
        .bind(17, millis(f->expires));
  else
    for (int i = 13; i <= 17; ++i) s.bind_null(i);  // not finished: no outcome
  s.step();
  s.reset();
  turn_next_job_ = std::max(turn_next_job_, c.job_id + 1);
  // What append() of each would count: a finished call's inputs come and go within the batch.
  const auto held = static_cast<std::int64_t>(
      f ? f->outcome.outputs.bytes.size() + f->outcome.message.size()
        : c.inputs.bytes.size() + c.parameters.bytes.size());
  held_.put(c.job_id, held, f ? millis(f->expires) : kNeverExpires);
  turn_bytes_ += held;
}

std::vector<JobId> SqliteJournal::expire(WallTime now) {
  require_turn("expire");
  // A pass over every row held, once a minute (the core's own DurableJobs::expire passes over
  // the same outcomes in the same turn); a delete by primary key for each expired one.
  const std::int64_t at = millis(now);
  std::vector<JobId> gone;
  held_.for_each([&](JobId job, const HeldRows::Row& row) {
    if (row.expires_ms <= at) gone.push_back(job);
  });  // in job order
  Statement& s = prepared(kExpire);
  for (JobId job : gone) {
    s.bind(1, static_cast<std::int64_t>(job)).bind(2, at);
    s.step();
    s.reset();
    if (sqlite3_changes(db_) != 1)
      fail(fmt::format("expiry of job {}: the journal's table no longer holds the finished row "
                       "it remembered", job));
    HeldRows::Row* row = held_.find(job);
    turn_bytes_ -= row->bytes;
    held_.forget(row);
  }
  return gone;
}

}  // namespace muster::broker::journal
