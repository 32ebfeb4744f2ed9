// journal_sqlite.hpp — the durable-call journal in one SQLite file (Debian libsqlite3): the
// embedded default, `--journal sqlite:PATH` (docs/DURABILITY.md).
// Owns: the file (held with an exclusive lock for as long as the journal is open), its schema
// and migrations, WAL mode and the fsync policy, the byte count of the payloads it holds.
// Must never: start empty over a file it cannot read (a corrupt, truncated, foreign or newer
// file is an error naming the file), share the file with a second daemon, or decide anything
// about a call (journal.hpp's contract).
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "journal.hpp"
#include "journal_fold.hpp"
#include "journal_held.hpp"
#include "journal_names.hpp"

struct sqlite3;
struct sqlite3_stmt;

namespace muster::broker::journal {

struct SqliteOptions {
  std::filesystem::path path;
  std::uint64_t byte_limit = 0;  // payload bytes admits() allows; 0 = no limit
  // How a commit reaches the disk (journal_open.hpp, JournalSync; docs/DURABILITY.md §4):
  // Full — synchronous=FULL: commit() fsyncs the WAL, so a committed turn survives a power
  //   loss or a kernel crash, not only a killed daemon (the default here).
  // Deferred — the same promise, kept by deferred_sync() (musterd's `--journal-sync full`):
  //   synchronous=NORMAL, commit() writes the WAL frames without syncing them, and a WalSync
  //   (journal_wal_sync.hpp) fdatasyncs the WAL on another thread while the next turns are
  //   written; a turn counts as committed once that sync returned (journal.hpp's contract).
  // Normal — synchronous=NORMAL, fsync only at checkpoints: a committed turn survives SIGKILL
  //   but may be lost with the machine, which breaks the promise made by the Accepted reply
  //   (`--journal-sync normal`).
  enum class Sync { Full, Deferred, Normal };
  Sync sync = Sync::Full;
};

class SqliteJournal final : public Journal {
 public:
  // The schema version this build writes (and the newest it can read).
  static constexpr int kSchemaVersion = 3;
  // PRAGMA application_id of a muster journal ("must"): a file without it is not ours.
  static constexpr std::int32_t kApplicationId = 0x6d757374;

  // Opens (or creates, when the file does not exist or is an empty database) the journal,
  // checks it (quick_check, application id, schema version), migrates an older schema and
  // takes the next epoch. Throws JournalError naming the file on any failure.
  explicit SqliteJournal(SqliteOptions options);
  ~SqliteJournal() override;
  SqliteJournal(const SqliteJournal&) = delete;
  SqliteJournal& operator=(const SqliteJournal&) = delete;

  std::string describe() const override;
  std::uint64_t epoch() const override { return epoch_; }
  Loaded load() override;

  void begin_turn() override;
  void append(const Record& record) override;
  std::vector<JobId> expire(WallTime now) override;
  // A call's Submitted and the Dispatched and Finished records of it that follow in `ops`
  // (with no other record of it between) are written once, as the row they leave, at the
  // place of the last of them: one INSERT instead of an INSERT and an UPDATE for each
  // (docs/DURABILITY.md §4, §10). The same rows, bytes and errors as append() of each.
  void append_turns(std::span<const std::vector<JournalOp>> turns) override;
  void commit() override;
  void rollback() override;
  bool in_turn() const override { return in_turn_; }
  // Sync::Deferred: the WAL's sync (journal.hpp, "Deferred sync"); null otherwise.
  DeferredSync* deferred_sync() override { return wal_sync_.get(); }

  std::uint64_t payload_bytes() const override { return committed_bytes_ + turn_bytes_; }
  std::uint64_t byte_limit() const override { return options_.byte_limit; }

 private:
  class Statement;
  [[noreturn]] void fail(const std::string& what) const;
  // fail() with a message chosen by an SQLite error code (corrupt, locked...).
  [[noreturn]] void fail_sqlite(int code, const std::string& why) const;
  void exec(const char* sql);
  Statement& prepared(int which);
  void check_and_migrate();
  void apply(const Submitted& r);
  void apply(const Dispatched& r);
  void apply(const Requeued& r);
  void apply(const Finished& r);
  void apply(const Acked& r);
  // The side-table id of a call's node and caller, of a worker (journal_names.hpp): found in
  // memory, or written (in the open turn) the first time a row needs it.
  std::int64_t origin_of(const Call& c);
  std::int64_t worker_of(const Dispatched& d);
  // Both: `parts`' id in `ids`, or inserted with the statement `insert` (binding the parts as
  // ?1..?N) and remembered.
  template <std::size_t N>
  std::int64_t stored_id(NameIds<N>& ids, int insert, const typename NameIds<N>::Parts& parts);
  // The row a call's Submitted leaves with its last Dispatched (running) and its Finished
  // (finished), when those are not null (append_all).
  void write_row(const Submitted& s, const Dispatched* d, const Finished* f);
  // Acked: forget_acked checks that the row is held and forgets it (held_, the byte count);
  // delete_acked deletes the rows of jobs first..last: `count` of them, every one of which
  // it forgot (the table holds no other row in that range).
  void forget_acked(JobId job);
  void delete_acked(JobId first, JobId last, std::size_t count);
  // Deletes the rows of acked_ (and empties it): as few ranges as the rows held between them
  // allow (append_all).
  void write_acked();
  void require_turn(const char* what) const;
  // Fills held_ (and committed_bytes_), origins_ and workers_ from the committed tables: at
  // open, and at the next begin_turn() after a rollback.
  void read_committed();

  SqliteOptions options_;
  sqlite3* db_ = nullptr;
  std::vector<std::unique_ptr<Statement>> statements_;
  std::uint64_t epoch_ = 0;
  std::uint64_t committed_bytes_ = 0;
  std::int64_t turn_bytes_ = 0;  // change of the open turn (negative when it frees more)
  JobId turn_next_job_ = 0;      // next_job_id the open turn's Submits need (written at commit)
  // Every row the table holds (committed, and appended in the open turn): its payload bytes
  // (what Finished and Acked free, without reading the row) and, once finished, when it
  // expires. expire() finds the rows to delete here, once a minute, instead of an SQL index
  // on the expiry that every call would update twice (docs/DURABILITY.md §4, §10). Read from
  // the file at open; read again after a rollback (held_stale_).
  static constexpr std::int64_t kNeverExpires = HeldRows::kNeverExpires;
  HeldRows held_;
  bool held_stale_ = false;  // (and origins_, workers_)
  NameIds<5> origins_;  // node, identity, caller name, workspace, role → origins.id
  NameIds<2> workers_;  // worker id, worker identity → workers.id
  bool in_turn_ = false;
  BatchPlanner planner_;  // append_all's folds (kept to reuse its memory)
  std::unique_ptr<DeferredSync> wal_sync_;  // Sync::Deferred only
  std::vector<JobId> acked_;  // consecutive Acked records forgotten, their rows not deleted yet
};

}  // namespace muster::broker::journal
