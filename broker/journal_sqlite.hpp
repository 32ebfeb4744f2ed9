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
#include <memory>
#include <string>
#include <unordered_map>

#include "journal.hpp"

struct sqlite3;
struct sqlite3_stmt;

namespace muster::broker::journal {

struct SqliteOptions {
  std::filesystem::path path;
  std::uint64_t byte_limit = 0;  // payload bytes admits() allows; 0 = no limit
  // true: synchronous=FULL, every commit fsyncs the WAL, so a committed turn survives a power
  // loss or a kernel crash, not only a killed daemon. false: synchronous=NORMAL, fsync only at
  // checkpoints: a committed turn survives SIGKILL but may be lost with the machine, which
  // breaks the promise made by the Accepted reply. FULL is the default; NORMAL is
  // `--journal-sync normal` (journal_open.hpp, JournalSync; docs/DURABILITY.md §4).
  bool fsync_every_commit = true;
};

class SqliteJournal final : public Journal {
 public:
  // The schema version this build writes (and the newest it can read).
  static constexpr int kSchemaVersion = 1;
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
  // A call whose Submitted, Dispatched(s) and Finished are all in `ops` (with no other record
  // of it between them) is written once, as its finished row, at the place of its Finished:
  // one INSERT instead of an INSERT and two UPDATEs (the common case of early dispatch,
  // docs/DURABILITY.md §3, §10). The same rows, bytes and errors as append() of each.
  void append_all(const std::vector<JournalOp>& ops) override;
  void commit() override;
  void rollback() override;
  bool in_turn() const override { return in_turn_; }

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
  // The finished row of a call whose Submitted (and last Dispatched, if any) are in the batch.
  void insert_finished(const Submitted& s, const Dispatched* d, const Finished& f);
  void require_turn(const char* what) const;

  SqliteOptions options_;
  sqlite3* db_ = nullptr;
  std::vector<std::unique_ptr<Statement>> statements_;
  std::uint64_t epoch_ = 0;
  std::uint64_t committed_bytes_ = 0;
  std::int64_t turn_bytes_ = 0;  // change of the open turn (negative when it frees more)
  JobId turn_next_job_ = 0;      // next_job_id the open turn's Submits need (written at commit)
  // The payload bytes of each row this journal wrote (a cache: Finished and Acked need the
  // bytes they free without reading the row; emptied by a rollback, a miss reads the row).
  std::unordered_map<JobId, std::int64_t> held_bytes_;
  bool in_turn_ = false;
  // append_all's plan of one batch, kept to reuse its memory: the calls whose Submitted is in
  // the batch, and for those folded, the op indexes of their Submitted, last Dispatched and
  // Finished (folded: `finished` set; a record of the call that breaks the pattern: `broken`).
  struct Fold {
    std::size_t submitted = 0, dispatched = SIZE_MAX, finished = SIZE_MAX;
    bool broken = false;
  };
  std::unordered_map<JobId, Fold> fold_;
};

}  // namespace muster::broker::journal
