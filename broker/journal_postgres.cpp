// journal_postgres.cpp — the PostgreSQL journal (journal_postgres.hpp). The same rows as the
// SQLite journal (one per open durable call, its latest state; each record one statement, a
// batch of them sent pipelined: append_all),
// keyed by shard; one transaction per turn, opened by the fencing read of the lease row.
// Strings that come from peers (node, names, trace id, worker ids, failure messages) are
// stored as bytea: PostgreSQL's text refuses NUL and invalid UTF-8, and the journal must never
// refuse a record a worker or client could make. Parameters and results travel in binary.
#include "journal_postgres.hpp"
#include "identity_postgres_schema.hpp"
#include "journal_migrations.hpp"

#include <endian.h>
#include <libpq-fe.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <deque>
#include <optional>
#include <variant>
#include <string_view>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

namespace muster::broker::journal {
namespace {

constexpr std::array kMigrations{
    Migration{1, "calls, meta and leases, by shard", R"sql(
      CREATE TABLE muster_meta (shard text NOT NULL, key text NOT NULL, value bigint NOT NULL,
                                PRIMARY KEY (shard, key));
      CREATE TABLE leases (shard text PRIMARY KEY, holder text NOT NULL, epoch bigint NOT NULL,
                           expires_ms bigint NOT NULL);
      CREATE TABLE calls (
        shard text NOT NULL,
        job_id bigint NOT NULL,
        state bigint NOT NULL,                -- journal.hpp CallState
        node bytea NOT NULL,
        identity bytea NOT NULL, caller_name bytea NOT NULL,
        workspace bytea NOT NULL, role bytea NOT NULL,
        trace_id bytea NOT NULL,
        inputs bytea NOT NULL, parameters bytea NOT NULL,
        idempotent boolean NOT NULL,
        submitted_ms bigint NOT NULL, deadline_ms bigint NOT NULL,
        worker_id bytea, worker_identity bytea, request_id bigint,
        attempts bigint NOT NULL DEFAULT 0, deaths bigint NOT NULL DEFAULT 0,
        outcome_code bigint, outputs bytea, message bytea,
        finished_ms bigint, expires_ms bigint,
        PRIMARY KEY (shard, job_id));
      CREATE INDEX calls_expiry ON calls (shard, expires_ms) WHERE state = 2;
    )sql"},
    Migration{2, kIdentitySchemaDescription, kIdentitySchemaSql},
};
static_assert(kMigrations.back().version == PostgresJournal::kSchemaVersion);

// Key of pg_advisory_xact_lock while the schema is checked and migrated ("must"): two daemons
// starting at once on an empty database take turns.
constexpr std::int64_t kSchemaLock = 0x6d757374;

// The bytea bytes of one row (journal.hpp Call::payload_bytes, in SQL).
#define MUSTER_PG_ROW_BYTES                                                               \
  "(octet_length(inputs) + octet_length(parameters) + coalesce(octet_length(outputs), 0) " \
  "+ coalesce(octet_length(message), 0))::bigint"

enum StatementId {
  kLeaseRead,
  kLeaseWrite,
  kLeaseRelease,
  kFence,
  kTotalBytes,
  kInsert,
  kDispatch,
  kRequeue,
  kFinish,
  kDelete,
  kExpire,
  kLoad,
  kNextJob,
  kInsertRow,
  kStatementCount
};
constexpr std::array<const char*, kStatementCount> kSql{
    "SELECT holder, epoch, expires_ms, "
    "(extract(epoch FROM clock_timestamp()) * 1000)::bigint FROM leases WHERE shard = $1 FOR UPDATE",
    "UPDATE leases SET holder = $2, epoch = $3, expires_ms = $4 WHERE shard = $1",
    "UPDATE leases SET holder = '', expires_ms = 0 WHERE shard = $1 AND epoch = $2",
    "SELECT epoch, holder FROM leases WHERE shard = $1 FOR SHARE",
    "SELECT coalesce(sum(" MUSTER_PG_ROW_BYTES "), 0)::bigint FROM calls WHERE shard = $1",
    // One statement: the row, and next_job_id above it; changes one row only when inserted.
    "WITH ins AS (INSERT INTO calls (shard, job_id, state, node, identity, caller_name, "
    "workspace, role, trace_id, inputs, parameters, idempotent, submitted_ms, deadline_ms) "
    "VALUES ($1, $2, 0, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) "
    "ON CONFLICT DO NOTHING RETURNING job_id) "
    "UPDATE muster_meta SET value = greatest(value, (SELECT job_id + 1 FROM ins)) "
    "WHERE shard = $1 AND key = 'next_job_id' AND EXISTS (SELECT 1 FROM ins)",
    "UPDATE calls SET state = 1, worker_id = $3, worker_identity = $4, request_id = $5, "
    "attempts = $6 WHERE shard = $1 AND job_id = $2 AND state IN (0, 1)",
    "UPDATE calls SET state = 0, worker_id = NULL, worker_identity = NULL, request_id = NULL, "
    "deaths = $3 WHERE shard = $1 AND job_id = $2 AND state = 1",
    // A finished call no longer needs its inputs: they leave the journal (and its byte count).
    // The row's bytes before the update come from a sub-select (evaluated once, before the
    // update, on the statement's snapshot): a primary-key lookup whatever the cached plan,
    // where a join with a CTE got a generic plan, made on an empty table, that scanned the
    // whole shard for every record (3 ms a record at 10,000 rows).
    "UPDATE calls SET state = 2, inputs = ''::bytea, parameters = ''::bytea, outcome_code = $3, "
    "outputs = $4, message = $5, finished_ms = $6, expires_ms = $7 "
    "WHERE shard = $1 AND job_id = $2 AND state IN (0, 1) "
    "RETURNING (SELECT " MUSTER_PG_ROW_BYTES " FROM calls old WHERE old.shard = $1 AND old.job_id = $2)",
    "DELETE FROM calls WHERE shard = $1 AND job_id = $2 RETURNING " MUSTER_PG_ROW_BYTES,
    "DELETE FROM calls WHERE shard = $1 AND state = 2 AND expires_ms <= $2 "
    "RETURNING job_id, " MUSTER_PG_ROW_BYTES,
    "SELECT job_id, state, node, identity, caller_name, workspace, role, trace_id, inputs, "
    "parameters, idempotent, submitted_ms, deadline_ms, worker_id, worker_identity, request_id, "
    "attempts, deaths, outcome_code, outputs, message, finished_ms, expires_ms "
    "FROM calls WHERE shard = $1 ORDER BY job_id",
    "SELECT value FROM muster_meta WHERE shard = $1 AND key = 'next_job_id'",
    // The row a Submitted and the Dispatched (and Finished) after it leave, written at once
    // (append_all, journal_fold.hpp), and next_job_id above it, as kInsert does.
    "WITH ins AS (INSERT INTO calls (shard, job_id, state, node, identity, caller_name, "
    "workspace, role, trace_id, inputs, parameters, idempotent, submitted_ms, deadline_ms, "
    "worker_id, worker_identity, request_id, attempts, outcome_code, outputs, message, "
    "finished_ms, expires_ms) "
    "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, "
    "$19, $20, $21, $22, $23) ON CONFLICT DO NOTHING RETURNING job_id) "
    "UPDATE muster_meta SET value = greatest(value, (SELECT job_id + 1 FROM ins)) "
    "WHERE shard = $1 AND key = 'next_job_id' AND EXISTS (SELECT 1 FROM ins)",
};

std::int64_t millis(WallTime t) { return t.time_since_epoch().count(); }
WallTime wall(std::int64_t ms) { return WallTime{std::chrono::milliseconds{ms}}; }

std::string trimmed(const char* message) {
  std::string s = message ? message : "";
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s;
}

// Where the store is, for messages: user, host, port and database, never the password.
std::string describe_conninfo(const std::string& conninfo, const std::string& shard) {
  char* error = nullptr;
  PQconninfoOption* options = PQconninfoParse(conninfo.c_str(), &error);
  if (!options) {
    PQfreemem(error);
    return "postgresql (a connection string libpq cannot parse)";
  }
  std::string user, host, port, dbname;
  for (auto* o = options; o->keyword; ++o) {
    if (!o->val) continue;
    const std::string_view key = o->keyword;
    if (key == "user") user = o->val;
    else if (key == "host" || (key == "hostaddr" && host.empty())) host = o->val;
    else if (key == "port") port = o->val;
    else if (key == "dbname") dbname = o->val;
  }
  PQconninfoFree(options);
  return fmt::format("postgresql://{}{}{}/{} (shard {})", user.empty() ? "" : user + "@", host,
                     port.empty() ? "" : ":" + port, dbname, shard);
}

}  // namespace

// One PGresult, freed with it; binary columns read as the types the statements select.
class PostgresJournal::Result {
 public:
  explicit Result(PGresult* r) : r_(r) {}
  ~Result() { PQclear(r_); }
  Result(Result&& o) noexcept : r_(std::exchange(o.r_, nullptr)) {}
  Result(const Result&) = delete;
  Result& operator=(const Result&) = delete;

  bool ok() const {
    const auto st = PQresultStatus(r_);
    return st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK;
  }
  std::string error() const { return r_ ? trimmed(PQresultErrorMessage(r_)) : "out of memory"; }
  std::string command() const { return PQcmdStatus(r_); }
  int rows() const { return PQntuples(r_); }
  // Rows an INSERT/UPDATE/DELETE changed.
  std::int64_t changed() const {
    const char* n = PQcmdTuples(r_);
    return n && *n ? std::stoll(n) : 0;
  }
  bool is_null(int row, int col) const { return PQgetisnull(r_, row, col) != 0; }
  std::int64_t integer(int row, int col) const {
    if (is_null(row, col)) return 0;
    std::uint64_t be = 0;
    if (PQgetlength(r_, row, col) != 8) return 0;  // every integer column is selected as bigint
    std::memcpy(&be, PQgetvalue(r_, row, col), 8);
    return static_cast<std::int64_t>(be64toh(be));
  }
  bool boolean(int row, int col) const { return !is_null(row, col) && PQgetvalue(r_, row, col)[0] != 0; }
  std::string bytes(int row, int col) const {
    if (is_null(row, col)) return {};
    return std::string(PQgetvalue(r_, row, col), static_cast<std::size_t>(PQgetlength(r_, row, col)));
  }
  Payload payload(int row, int col) const {
    const auto* p = reinterpret_cast<const std::uint8_t*>(PQgetvalue(r_, row, col));
    return Payload::copy_of({p, is_null(row, col) ? 0 : static_cast<std::size_t>(PQgetlength(r_, row, col))});
  }

 private:
  PGresult* r_;
};

// The parameters of one statement, all in binary: bigint (8 bytes, network order), boolean,
// bytea and text (their bytes as they are), or NULL.
struct PostgresJournal::Params {
  std::deque<std::array<char, 8>> numbers;  // a deque: what values point into never moves
  std::vector<const char*> values;
  std::vector<int> lengths, formats;

  Params& integer(std::int64_t v) {
    const std::uint64_t be = htobe64(static_cast<std::uint64_t>(v));
    std::memcpy(numbers.emplace_back().data(), &be, 8);
    return add(numbers.back().data(), 8);
  }
  Params& boolean(bool v) { return add(v ? "\1" : "\0", 1); }
  Params& bytes(std::string_view s) { return add(s.empty() ? "" : s.data(), s.size()); }
  Params& bytes(const Payload& p) {
    return add(p.bytes.empty() ? "" : reinterpret_cast<const char*>(p.bytes.data()), p.bytes.size());
  }
  Params& null() {
    values.push_back(nullptr);
    lengths.push_back(0);
    formats.push_back(1);
    return *this;
  }

 private:
  Params& add(const char* p, std::size_t n) {
    values.push_back(p);
    lengths.push_back(static_cast<int>(n));
    formats.push_back(1);
    return *this;
  }
};

PostgresJournal::PostgresJournal(PostgresOptions options)
    : options_(std::move(options)),
      description_(describe_conninfo(options_.conninfo, options_.shard)),
      tenure_(options_.term) {
  if (options_.shard.empty()) fail("the shard name is empty");
  if (options_.term < std::chrono::milliseconds(100))
    fail(fmt::format("a lease term of {} ms is too short (at least 100 ms)", options_.term.count()));
  if (options_.holder.empty()) fail("the lease holder name is empty");
  {
    char* error = nullptr;
    PQconninfoOption* parsed = PQconninfoParse(options_.conninfo.c_str(), &error);
    if (!parsed) {
      std::string why = error ? trimmed(error) : "out of memory";
      PQfreemem(error);
      fail(fmt::format("cannot parse the connection string: {}", why));
    }
    PQconninfoFree(parsed);
  }
  // Defaults first: whatever the connection string says overrides them. Over TCP, a server
  // that stops answering (a partition) fails the call within about one term instead of
  // leaving the loop blocked until TCP gives up: unacknowledged data for a term
  // (tcp_user_timeout), or an idle connection unanswered for a term (keepalives).
  const std::string term_ms = std::to_string(options_.term.count());
  const std::string probes = std::to_string(std::max<long long>(1, options_.term.count() / 1000));
  const char* keys[] = {"connect_timeout", "fallback_application_name", "tcp_user_timeout",
                        "keepalives_idle", "keepalives_interval", "keepalives_count", "dbname", nullptr};
  const char* values[] = {"10", "musterd", term_ms.c_str(), "1", "1", probes.c_str(),
                          options_.conninfo.c_str(), nullptr};
  conn_ = PQconnectdbParams(keys, values, /*expand_dbname=*/1);
  if (!conn_ || PQstatus(conn_) != CONNECTION_OK) {
    std::string why = conn_ ? trimmed(PQerrorMessage(conn_)) : "out of memory";
    PQfinish(conn_);
    conn_ = nullptr;
    fail(fmt::format("cannot connect: {}", why));
  }
  PQsetNoticeProcessor(
      conn_, [](void*, const char* message) { spdlog::warn("postgresql: {}", trimmed(message)); },
      nullptr);
  // Where it really went (a host left out of the URI is the default socket directory).
  description_ = fmt::format("postgresql://{}@{}:{}/{} (shard {})", PQuser(conn_), PQhost(conn_),
                             PQport(conn_), PQdb(conn_), options_.shard);
  try {
    // Every commit waits for its WAL flush (and for synchronous standbys, if the server has
    // them): a turn is durable when commit() returns — unless --journal-sync normal asked for
    // less (synchronous_commit=off: the server's memory). A session stuck inside a transaction (a
    // daemon SIGSTOPped mid-turn holding the lease row FOR SHARE) is ended by the server after
    // one term, so it can never keep a standby from taking over.
    exec(options_.synchronous_commit ? "SET synchronous_commit = on" : "SET synchronous_commit = off");
    exec("SET client_min_messages = warning");
    exec(fmt::format("SET idle_in_transaction_session_timeout = {}", options_.term.count()).c_str());
    check_and_migrate();
    prepare_statements();
  } catch (...) {
    PQfinish(conn_);
    conn_ = nullptr;
    throw;
  }
}

PostgresJournal::~PostgresJournal() {
  if (!conn_) return;
  try {
    release();
  } catch (const std::exception& e) {
    spdlog::warn("{}", e.what());
  }
  PQfinish(conn_);
}

void PostgresJournal::fail(const std::string& what) const {
  throw JournalError(fmt::format("journal {}: {}", describe(), what));
}

// Runs SQL without parameters (several statements allowed); throws on failure.
PostgresJournal::Result PostgresJournal::exec(const char* sql) {
  Result r(PQexec(conn_, sql));
  if (!r.ok()) {
    std::string why = r.error();
    if (why.empty()) why = trimmed(PQerrorMessage(conn_));
    fail(why);
  }
  return r;
}

// One statement without parameters, binary results.
PostgresJournal::Result PostgresJournal::query(const char* sql) {
  Result r(PQexecParams(conn_, sql, 0, nullptr, nullptr, nullptr, nullptr, 1));
  if (!r.ok()) fail(r.error());
  return r;
}

PostgresJournal::Result PostgresJournal::run(int statement, const Params& p) {
  const std::string name = fmt::format("muster_{}", statement);
  Result r(PQexecPrepared(conn_, name.c_str(), static_cast<int>(p.values.size()), p.values.data(),
                          p.lengths.data(), p.formats.data(), 1));
  if (!r.ok()) {
    std::string why = r.error();
    if (PQstatus(conn_) == CONNECTION_BAD) why = "lost the connection: " + why;
    fail(why);
  }
  return r;
}

void PostgresJournal::prepare_statements() {
  for (int i = 0; i < kStatementCount; ++i) {
    const std::string name = fmt::format("muster_{}", i);
    Result r(PQprepare(conn_, name.c_str(), kSql[i], 0, nullptr));
    if (!r.ok()) fail(fmt::format("cannot prepare a statement: {}", r.error()));
  }
}

void PostgresJournal::check_and_migrate() {
  exec("BEGIN");
  try {
    exec(fmt::format("SELECT pg_advisory_xact_lock({})", kSchemaLock).c_str());
    Result ours = query(
        "SELECT to_regclass('muster_schema') IS NOT NULL, coalesce(string_agg(c.relname, ', ' "
        "ORDER BY c.relname), '') FROM pg_class c WHERE c.relnamespace = "
        "current_schema()::regnamespace AND c.relname IN ('calls', 'muster_meta', 'leases')");
    int version = 0;
    if (!ours.boolean(0, 0)) {
      if (const std::string clash = ours.bytes(0, 1); !clash.empty())
        fail(fmt::format("the database holds tables named like a muster journal's ({}) but is "
                         "not one (no muster_schema); refusing to use it",
                         clash));
      exec("CREATE TABLE muster_schema (version integer PRIMARY KEY, applied_at timestamptz NOT "
           "NULL DEFAULT now(), description text NOT NULL)");
    } else {
      version = static_cast<int>(query("SELECT coalesce(max(version), 0)::bigint FROM muster_schema").integer(0, 0));
    }
    migrate(version, kMigrations, "upgrade musterd", [&](const Migration& m) {
      exec(m.sql);
      Params p;
      p.integer(m.version).bytes(std::string_view(m.description));
      Result r(PQexecParams(conn_,
                            "INSERT INTO muster_schema (version, description) VALUES ($1::bigint, $2::text)",
                            2, nullptr, p.values.data(), p.lengths.data(), p.formats.data(), 1));
      if (!r.ok()) fail(r.error());
    }, [this](const std::string& why) { fail(why); });
    // This shard's rows (a new shard starts at job 1 and epoch 0, with a free lease).
    Params shard;
    shard.bytes(options_.shard);
    for (const char* sql :
         {"INSERT INTO muster_meta VALUES ($1::text, 'next_job_id', 1) ON CONFLICT DO NOTHING",
          "INSERT INTO leases VALUES ($1::text, '', 0, 0) ON CONFLICT DO NOTHING"}) {
      Result r(PQexecParams(conn_, sql, 1, nullptr, shard.values.data(), shard.lengths.data(),
                            shard.formats.data(), 1));
      if (!r.ok()) fail(r.error());
    }
    exec("COMMIT");
  } catch (...) {
    PQclear(PQexec(conn_, "ROLLBACK"));
    throw;
  }
}

// ---- leadership ------------------------------------------------------------------------------

PostgresJournal::Claimed PostgresJournal::claim(std::uint64_t mine) {
  Params p;
  p.bytes(options_.shard);
  Result row = run(kLeaseRead, p);
  if (row.rows() != 1) fail(fmt::format("the lease row of shard {} is missing", options_.shard));
  const leadership::Lease lease{row.bytes(0, 0), static_cast<std::uint64_t>(row.integer(0, 1)),
                                wall(row.integer(0, 2))};
  const WallTime now = wall(row.integer(0, 3));
  leadership::Decision d = leadership::decide(lease, options_.holder, mine, now, options_.term);
  if (d.claim == leadership::Claim::Take || d.claim == leadership::Claim::Renew) {
    Params w;
    w.bytes(options_.shard)
        .bytes(d.next.holder)
        .integer(static_cast<std::int64_t>(d.next.epoch))
        .integer(millis(d.next.expires));
    run(kLeaseWrite, w);
  }
  return {std::move(d), now};
}

leadership::Standing PostgresJournal::try_lead(std::chrono::steady_clock::time_point now) {
  if (leading()) return {true, {options_.holder, epoch_, {}}, {}};
  exec("BEGIN");
  try {
    Claimed c = claim(0);
    if (c.decision.claim != leadership::Claim::Take) {
      exec("ROLLBACK");
      const auto poll = std::min<leadership::Millis>(leadership::Millis(500), options_.term / 4);
      return {false, c.decision.next, leadership::retry_in(c.decision.next, c.now, poll)};
    }
    Result done = exec("COMMIT");
    if (done.command() != "COMMIT") fail("could not take the lease: the transaction was rolled back");
    epoch_ = c.decision.next.epoch;
    tenure_.renewed(now);
  } catch (...) {
    PQclear(PQexec(conn_, "ROLLBACK"));
    throw;
  }
  // What this shard holds, counted once here and kept up to date by append().
  Params p;
  p.bytes(options_.shard);
  committed_bytes_ = static_cast<std::uint64_t>(run(kTotalBytes, p).integer(0, 0));
  return {true, {options_.holder, epoch_, {}}, {}};
}

void PostgresJournal::lost(const std::string& why) {
  const auto led = std::exchange(epoch_, 0);
  fail(fmt::format("lost the lease of shard {} (this daemon led at epoch {}): {}", options_.shard,
                   led, why));
}

void PostgresJournal::keep(std::chrono::steady_clock::time_point now) {
  if (!leading() || in_turn_) return;
  if (tenure_.expired(now))
    lost(fmt::format("no renewal succeeded for {} ms, the lease's term is {} ms",
                     tenure_.since_renewal(now).count(), options_.term.count()));
  if (!tenure_.renew_due(now)) return;
  Claimed c;
  try {
    exec("BEGIN");
    c = claim(epoch_);
    if (c.decision.claim == leadership::Claim::Renew) {
      Result done = exec("COMMIT");
      if (done.command() != "COMMIT") fail("the renewal was rolled back");
      tenure_.renewed(now);
      return;
    }
    exec("ROLLBACK");
  } catch (const JournalError& e) {
    PQclear(PQexec(conn_, "ROLLBACK"));
    lost(fmt::format("cannot renew it: {}", e.what()));
  }
  lost(fmt::format("{} holds it at epoch {}", c.decision.next.holder.empty() ? "nobody" : c.decision.next.holder,
                   c.decision.next.epoch));
}

void PostgresJournal::release() {
  if (!conn_ || !leading()) return;
  rollback();
  Params p;
  p.bytes(options_.shard).integer(static_cast<std::int64_t>(epoch_));
  epoch_ = 0;
  run(kLeaseRelease, p);
}

// ---- turns -----------------------------------------------------------------------------------

void PostgresJournal::require_lead(const char* what) const {
  if (!leading()) fail(fmt::format("{} without the lease (try_lead first)", what));
}

void PostgresJournal::require_turn(const char* what) const {
  if (!in_turn_) fail(fmt::format("{} outside a turn (begin_turn first)", what));
}

void PostgresJournal::begin_turn() {
  require_lead("begin_turn");
  if (in_turn_) fail("begin_turn inside a turn");
  exec("BEGIN");
  in_turn_ = true;
  turn_bytes_ = 0;
  try {
    // Fencing: the row stays locked FOR SHARE until this turn commits, so no standby can take
    // the lease between this check and the commit.
    Params p;
    p.bytes(options_.shard);
    Result row = run(kFence, p);
    const auto row_epoch = row.rows() == 1 ? static_cast<std::uint64_t>(row.integer(0, 0)) : 0;
    if (!leadership::may_write(row_epoch, epoch_)) {
      const std::string holder = row.rows() == 1 ? row.bytes(0, 1) : std::string();
      rollback();
      lost(fmt::format("{} holds it at epoch {}; this turn is refused", holder.empty() ? "nobody" : holder,
                       row_epoch));
    }
  } catch (...) {
    rollback();
    throw;
  }
}

void PostgresJournal::commit() {
  require_turn("commit");
  Result r(PQexec(conn_, "COMMIT"));
  const bool committed = r.ok() && r.command() == "COMMIT";
  if (!committed) {
    std::string why = r.ok() ? std::string("the transaction had failed and was rolled back") : r.error();
    rollback();
    fail(fmt::format("commit failed, the turn is not durable: {}", why));
  }
  in_turn_ = false;
  committed_bytes_ += turn_bytes_;
  turn_bytes_ = 0;
}

void PostgresJournal::rollback() {
  if (!in_turn_) return;
  in_turn_ = false;
  turn_bytes_ = 0;
  PQclear(PQexec(conn_, "ROLLBACK"));
}

Loaded PostgresJournal::load() {
  require_lead("load");
  Params p;
  p.bytes(options_.shard);
  Result s = run(kLoad, p);
  Loaded out;
  out.calls.reserve(static_cast<std::size_t>(s.rows()));
  for (int i = 0; i < s.rows(); ++i) {
    Call c;
    c.job_id = static_cast<JobId>(s.integer(i, 0));
    c.state = static_cast<CallState>(s.integer(i, 1));
    c.node = s.bytes(i, 2);
    c.caller = Caller{s.bytes(i, 3), s.bytes(i, 4), s.bytes(i, 5), s.bytes(i, 6)};
    c.trace_id = s.bytes(i, 7);
    c.inputs = s.payload(i, 8);
    c.parameters = s.payload(i, 9);
    c.idempotent = s.boolean(i, 10);
    c.submitted = wall(s.integer(i, 11));
    c.deadline = wall(s.integer(i, 12));
    c.worker_id = s.bytes(i, 13);
    c.worker_identity = s.bytes(i, 14);
    c.request_id = static_cast<std::uint64_t>(s.integer(i, 15));
    c.attempts = static_cast<std::uint32_t>(s.integer(i, 16));
    c.deaths = static_cast<std::uint32_t>(s.integer(i, 17));
    if (c.state == CallState::Finished) {
      c.outcome = Outcome{static_cast<ErrorCode>(s.integer(i, 18)), s.payload(i, 19), s.bytes(i, 20)};
      c.finished = wall(s.integer(i, 21));
      c.expires = wall(s.integer(i, 22));
    }
    out.calls.push_back(std::move(c));
  }
  Result next = run(kNextJob, p);
  out.next_job_id = static_cast<JobId>(next.integer(0, 0));
  return out;
}

void PostgresJournal::append(const Record& record) {
  require_turn("append");
  std::visit(
      [this](const auto& r) {
        Params p;
        const int statement = bind(r, p);
        settle(r, run(statement, p));
      },
      record);
}

std::vector<JobId> PostgresJournal::expire(WallTime now) {
  require_turn("expire");
  const ExpireKept op{now};
  Params p;
  const int statement = bind(op, p);
  return settle(op, run(statement, p));
}

void PostgresJournal::append_turns(std::span<const std::vector<JournalOp>> turns) {
  require_turn("append");
  // A call's Submitted and the records of it that follow in the batch are one INSERT of the
  // row they leave (journal_fold.hpp). In slices: the server's answers wait in its socket
  // buffer while libpq still sends, and a slice's answers (≈ 100 bytes a statement) must fit
  // there, or both sides would block.
  constexpr std::size_t kSlice = 256;
  const std::vector<BatchStep>& steps = planner_.plan(turns);
  for (std::size_t at = 0; at < steps.size(); at += kSlice)
    pipeline(std::span<const BatchStep>(steps).subspan(at, std::min(kSlice, steps.size() - at)));
}

void PostgresJournal::pipeline(std::span<const BatchStep> steps) {
  if (PQenterPipelineMode(conn_) != 1) fail(fmt::format("cannot enter pipeline mode: {}", trimmed(PQerrorMessage(conn_))));
  std::optional<std::string> failure;
  std::size_t sent = 0;
  for (auto& step : steps) {
    Params p;
    const int statement = step.is_row ? bind(step.row, p)
                                      : std::visit(
                                            [&](const auto& v) {
                                              if constexpr (std::is_same_v<std::decay_t<decltype(v)>, Record>)
                                                return std::visit([&](const auto& r) { return bind(r, p); }, v);
                                              else
                                                return bind(v, p);
                                            },
                                            planner_.op(step.op));
    const std::string name = fmt::format("muster_{}", statement);
    if (!PQsendQueryPrepared(conn_, name.c_str(), static_cast<int>(p.values.size()), p.values.data(),
                             p.lengths.data(), p.formats.data(), 1)) {
      failure = fmt::format("lost the connection: {}", trimmed(PQerrorMessage(conn_)));
      break;
    }
    ++sent;
    ++statements_;
  }
  if (PQpipelineSync(conn_) != 1 && !failure)
    failure = fmt::format("lost the connection: {}", trimmed(PQerrorMessage(conn_)));
  // Every answer is read, in order, even after a failure (libpq's pipeline needs it); the
  // first failure is the one reported. A statement after a failed one is aborted by the server.
  for (std::size_t i = 0; i < sent; ++i) {
    PGresult* raw = PQgetResult(conn_);
    if (!raw) {
      if (!failure) failure = fmt::format("lost the connection: {}", trimmed(PQerrorMessage(conn_)));
      break;
    }
    Result res(raw);
    while (PGresult* extra = PQgetResult(conn_)) PQclear(extra);  // the end of this statement's answers
    if (failure) continue;
    if (!res.ok()) {
      failure = PQstatus(conn_) == CONNECTION_BAD ? "lost the connection: " + res.error() : res.error();
      continue;
    }
    try {
      if (steps[i].is_row)
        settle(steps[i].row, res);
      else
        std::visit(
            [&](const auto& v) {
              if constexpr (std::is_same_v<std::decay_t<decltype(v)>, Record>)
                std::visit([&](const auto& r) { settle(r, res); }, v);
              else
                settle(v, res);
            },
            planner_.op(steps[i].op));
    } catch (const JournalError& e) {
      failure = e.what();
    }
  }
  for (;;) {  // up to the sync point
    PGresult* raw = PQgetResult(conn_);
    if (!raw) {
      if (PQstatus(conn_) == CONNECTION_BAD) break;
      continue;
    }
    const bool sync = PQresultStatus(raw) == PGRES_PIPELINE_SYNC;
    PQclear(raw);
    if (sync) break;
  }
  PQexitPipelineMode(conn_);
  if (failure) {
    const std::string prefix = fmt::format("journal {}: ", describe());
    if (failure->starts_with(prefix)) throw JournalError(*failure);  // from settle(): already named
    fail(*failure);
  }
}

int PostgresJournal::bind(const Submitted& r, Params& p) const {
  const Call& c = r.call;
  if (c.job_id == 0) fail("Submitted with job id 0");
  p.bytes(options_.shard)
      .integer(static_cast<std::int64_t>(c.job_id))
      .bytes(c.node)
      .bytes(c.caller.identity)
      .bytes(c.caller.name)
      .bytes(c.caller.workspace)
      .bytes(c.caller.role)
      .bytes(c.trace_id)
      .bytes(c.inputs)
      .bytes(c.parameters)
      .boolean(c.idempotent)
      .integer(millis(c.submitted))
      .integer(millis(c.deadline));
  return kInsert;
}

void PostgresJournal::settle(const Submitted& r, const Result& res) {
  const Call& c = r.call;
  if (res.changed() != 1)
    fail(fmt::format("Submitted for job {}, which the journal already holds", c.job_id));
  turn_bytes_ += static_cast<std::int64_t>(c.inputs.bytes.size() + c.parameters.bytes.size());
}

int PostgresJournal::bind(const FoldedRow& row, Params& p) const {
  const Call& c = row.submitted->call;
  if (c.job_id == 0) fail("Submitted with job id 0");
  const Dispatched* d = row.dispatched;
  const Finished* f = row.finished;
  const CallState state = f ? CallState::Finished : d ? CallState::Running : CallState::Queued;
  p.bytes(options_.shard)
      .integer(static_cast<std::int64_t>(c.job_id))
      .integer(static_cast<std::uint8_t>(state))
      .bytes(c.node)
      .bytes(c.caller.identity)
      .bytes(c.caller.name)
      .bytes(c.caller.workspace)
      .bytes(c.caller.role)
      .bytes(c.trace_id)
      // A finished call no longer needs its inputs (as Finished's UPDATE empties them).
      .bytes(f ? Payload{} : c.inputs)
      .bytes(f ? Payload{} : c.parameters)
      .boolean(c.idempotent)
      .integer(millis(c.submitted))
      .integer(millis(c.deadline));
  if (d)  // else worker_id, worker_identity and request_id stay NULL
    p.bytes(d->worker_id).bytes(d->worker_identity).integer(static_cast<std::int64_t>(d->request_id));
  else
    p.null().null().null();
  p.integer(d ? d->attempt : 0);
  if (f)  // else the outcome's columns stay NULL
    p.integer(static_cast<std::uint16_t>(f->outcome.code))
        .bytes(f->outcome.outputs)
        .bytes(f->outcome.message)
        .integer(millis(f->at))
        .integer(millis(f->expires));
  else
    p.null().null().null().null().null();
  return kInsertRow;
}

void PostgresJournal::settle(const FoldedRow& row, const Result& res) {
  const Call& c = row.submitted->call;
  if (res.changed() != 1)
    fail(fmt::format("Submitted for job {}, which the journal already holds", c.job_id));
  // What settle() of each would count: a finished call's inputs come and go within the batch.
  const Finished* f = row.finished;
  turn_bytes_ += static_cast<std::int64_t>(f ? f->outcome.outputs.bytes.size() + f->outcome.message.size()
                                             : c.inputs.bytes.size() + c.parameters.bytes.size());
}

int PostgresJournal::bind(const Dispatched& r, Params& p) const {
  p.bytes(options_.shard)
      .integer(static_cast<std::int64_t>(r.job_id))
      .bytes(r.worker_id)
      .bytes(r.worker_identity)
      .integer(static_cast<std::int64_t>(r.request_id))
      .integer(r.attempt);
  return kDispatch;
}

void PostgresJournal::settle(const Dispatched& r, const Result& res) {
  if (res.changed() != 1)
    fail(fmt::format("Dispatched for job {}, which the journal does not hold in a state it can "
                     "follow",
                     r.job_id));
}

int PostgresJournal::bind(const Requeued& r, Params& p) const {
  p.bytes(options_.shard).integer(static_cast<std::int64_t>(r.job_id)).integer(r.deaths);
  return kRequeue;
}

void PostgresJournal::settle(const Requeued& r, const Result& res) {
  if (res.changed() != 1)
    fail(fmt::format("Requeued for job {}, which the journal does not hold in a state it can "
                     "follow",
                     r.job_id));
}

int PostgresJournal::bind(const Finished& r, Params& p) const {
  p.bytes(options_.shard)
      .integer(static_cast<std::int64_t>(r.job_id))
      .integer(static_cast<std::uint16_t>(r.outcome.code))
      .bytes(r.outcome.outputs)
      .bytes(r.outcome.message)
      .integer(millis(r.at))
      .integer(millis(r.expires));
  return kFinish;
}

void PostgresJournal::settle(const Finished& r, const Result& done) {
  if (done.rows() != 1)
    fail(fmt::format("Finished for job {}, which the journal does not hold open", r.job_id));
  turn_bytes_ += static_cast<std::int64_t>(r.outcome.outputs.bytes.size() + r.outcome.message.size()) -
                 done.integer(0, 0);
}

int PostgresJournal::bind(const Acked& r, Params& p) const {
  p.bytes(options_.shard).integer(static_cast<std::int64_t>(r.job_id));
  return kDelete;
}

void PostgresJournal::settle(const Acked& r, const Result& gone) {
  if (gone.rows() != 1) fail(fmt::format("Acked for job {}, which the journal does not hold", r.job_id));
  turn_bytes_ -= gone.integer(0, 0);
}

int PostgresJournal::bind(const ExpireKept& r, Params& p) const {
  p.bytes(options_.shard).integer(millis(r.now));
  return kExpire;
}

std::vector<JobId> PostgresJournal::settle(const ExpireKept&, const Result& gone) {
  std::vector<JobId> ids;
  for (int i = 0; i < gone.rows(); ++i) {
    ids.push_back(static_cast<JobId>(gone.integer(i, 0)));
    turn_bytes_ -= gone.integer(i, 1);
  }
  std::sort(ids.begin(), ids.end());
  return ids;
}

}  // namespace muster::broker::journal
