// journal_wal_sync.hpp — the deferred sync of a SQLite journal at `--journal-sync full`
// (docs/DURABILITY.md §3, §4): fdatasync of the journal's WAL file on a thread of its own, while
// the journal thread writes the next batch (SQLite at synchronous=NORMAL writes a COMMIT's WAL
// frames without syncing them).
// Owns: its own read-only descriptor of `<db>-wal` (the inode SQLite writes: SQLite truncates
// and rewrites that file, it never replaces it while the database is open), and the one fsync
// of the directory that makes the WAL's name durable.
// Must never: touch the SQLite connection (another thread uses it meanwhile), or return from
// sync() without the WAL's data on the disk (a failed fdatasync throws JournalError: those
// batches are failed commits).
#pragma once

#include <filesystem>

#include "journal.hpp"

namespace muster::broker::journal {

class WalSync final : public DeferredSync {
 public:
  // Opens `wal` (which must exist: SQLite creates it when it opens the database in WAL mode)
  // and fsyncs its directory once. `store` names the journal in messages ("sqlite:PATH").
  // Throws JournalError when either fails.
  WalSync(std::filesystem::path wal, std::string store);
  ~WalSync() override;
  WalSync(const WalSync&) = delete;
  WalSync& operator=(const WalSync&) = delete;

  // fdatasync of the WAL: every frame written to it before the call is on the disk when it
  // returns (Linux syncs the inode's data, whichever descriptor wrote it).
  void sync() override;
  int fd() const { return fd_; }  // (the tests compare it with SQLite's own descriptor)

 private:
  [[noreturn]] void fail(const std::string& what) const;
  std::filesystem::path wal_;
  std::string store_;
  int fd_ = -1;
};

}  // namespace muster::broker::journal
