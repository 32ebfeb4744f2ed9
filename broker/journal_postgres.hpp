// journal_postgres.hpp — the durable-call journal in PostgreSQL (Debian libpq), shared by a
// failover pair of musterd: `--journal postgresql://…` (docs/DURABILITY.md §12).
// Owns: one libpq connection, the schema and its migrations (tables shared by every shard:
// calls, muster_meta, leases, muster_schema), the lease of its shard (leadership.hpp rules,
// applied under the row's lock at the store's clock), fencing of every turn, the byte count.
// Must never: write a turn without holding the lease at its epoch (begin_turn checks it FOR
// SHARE, so a paused old leader's turn is refused once a standby took over), start over a
// database whose tables are not a muster journal's or are newer than it knows, put a password
// in a message, or decide anything about a call (journal.hpp's contract).
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <span>
#include <string>

#include "journal.hpp"
#include "journal_fold.hpp"
#include "leadership.hpp"

struct pg_conn;

namespace muster::broker::journal {

struct PostgresOptions {
  std::string conninfo;            // a libpq URI (postgresql://…) or key=value string
  std::string shard = "default";   // the workspace set a pair owns: its rows and its lease
  std::string holder;              // this daemon, as the lease row names it (host:pid:instance)
  std::chrono::milliseconds term{4000};  // how long a take or renewal holds the lease
  std::uint64_t byte_limit = 0;    // payload bytes admits() allows; 0 = no limit
  // true: synchronous_commit=on, a commit returns once the server flushed its WAL (and its
  // synchronous standbys, if it has any). false: synchronous_commit=off, a commit returns once
  // the server has it in memory: it survives a killed musterd, not a crash of the server's
  // machine (journal_open.hpp, JournalSync).
  bool synchronous_commit = true;
};

class PostgresJournal final : public Journal {
 public:
  // The schema version this build writes (and the newest it can read).
  static constexpr int kSchemaVersion = 2;

  // Connects, checks the schema (migrating an older one, creating it in a database that has
  // none) and makes the shard's rows. Leads nothing yet: try_lead(). Throws JournalError naming
  // the store (never its password) on any failure.
  explicit PostgresJournal(PostgresOptions options);
  // Releases the lease when it leads (the standby takes over without waiting for the term).
  ~PostgresJournal() override;
  PostgresJournal(const PostgresJournal&) = delete;
  PostgresJournal& operator=(const PostgresJournal&) = delete;

  std::string describe() const override { return description_; }
  std::uint64_t epoch() const override { return epoch_; }  // the lease's; 0 until it leads
  Loaded load() override;

  void begin_turn() override;
  void append(const Record& record) override;
  std::vector<JobId> expire(WallTime now) override;
  // One round trip for a slice of up to 256 ops (libpq pipeline mode), same checks as append().
  void append_turns(std::span<const std::vector<JournalOp>> turns) override;
  void commit() override;
  void rollback() override;
  bool in_turn() const override { return in_turn_; }

  leadership::Standing try_lead(std::chrono::steady_clock::time_point now) override;
  void keep(std::chrono::steady_clock::time_point now) override;
  // Frees the lease now if this journal leads (a clean stop); a no-op otherwise.
  void release();
  bool leading() const { return epoch_ != 0; }

  std::uint64_t payload_bytes() const override { return committed_bytes_ + turn_bytes_; }
  // Statements append_all() sent since open (a folded row is one): what the folds save.
  std::uint64_t statements_sent() const { return statements_; }
  std::uint64_t byte_limit() const override { return options_.byte_limit; }

 private:
  class Result;
  struct Params;
  [[noreturn]] void fail(const std::string& what) const;
  Result exec(const char* sql);
  Result run(int statement, const Params& params);
  void prepare_statements();
  void check_and_migrate();
  // Reads the lease row FOR UPDATE (inside a transaction) at the store's clock and applies
  // leadership::decide(); writes the row on Take and Renew.
  struct Claimed {
    leadership::Decision decision;
    leadership::WallTime now;
  };
  Claimed claim(std::uint64_t mine);
  Result query(const char* sql);
  void require_lead(const char* what) const;
  void require_turn(const char* what) const;
  [[noreturn]] void lost(const std::string& why);
  // Each journal op as one prepared statement: bind() fills its parameters and names the
  // statement; settle() checks its result (a record the store cannot follow throws
  // JournalError) and counts its bytes. append() runs one at a time, append_all() pipelined.
  int bind(const Submitted& r, Params& p) const;
  int bind(const Dispatched& r, Params& p) const;
  int bind(const Requeued& r, Params& p) const;
  int bind(const Finished& r, Params& p) const;
  int bind(const Acked& r, Params& p) const;
  int bind(const ExpireKept& r, Params& p) const;
  // A row folded from a Submitted and the records after it (append_all, journal_fold.hpp).
  int bind(const FoldedRow& row, Params& p) const;
  void settle(const FoldedRow& row, const Result& res);
  void settle(const Submitted& r, const Result& res);
  void settle(const Dispatched& r, const Result& res);
  void settle(const Requeued& r, const Result& res);
  void settle(const Finished& r, const Result& res);
  void settle(const Acked& r, const Result& res);
  std::vector<JobId> settle(const ExpireKept& r, const Result& res);
  // Sends the writes `steps` (of planner_'s plan) in libpq pipeline mode and settles their
  // results in order.
  void pipeline(std::span<const BatchStep> steps);
  BatchPlanner planner_;  // append_all's folds (kept to reuse its memory)
  std::uint64_t statements_ = 0;

  PostgresOptions options_;
  std::string description_;
  pg_conn* conn_ = nullptr;
  leadership::Tenure tenure_;
  std::uint64_t epoch_ = 0;
  std::uint64_t committed_bytes_ = 0;
  std::int64_t turn_bytes_ = 0;
  bool in_turn_ = false;
};

}  // namespace muster::broker::journal
