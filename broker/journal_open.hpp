// journal_open.hpp — makes the journal that `--journal` names (docs/DURABILITY.md §4, §12):
// `sqlite:PATH` (one daemon, a local file) or `postgresql://…` / `postgres://…` (a libpq URI:
// a store a failover pair shares, written by the holder of its lease).
// Owns: reading the spec and the settings each kind takes.
// Must never: wait for a lease, load calls or bind anything (the daemon does, in that order).
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

#include "journal.hpp"

namespace muster::broker::journal {

// How far a commit goes before it counts (`--journal-sync`, docs/DURABILITY.md §4):
// Full — to the disk (SQLite: the WAL is fsynced — by a deferred sync, journal.hpp, that runs
// while the next batch is written; PostgreSQL synchronous_commit=on: the server flushed its
// WAL before commit() returns): a committed turn survives a killed musterd, an OS crash and a
// power loss. Normal — to the operating system (SQLite
// synchronous=NORMAL: fsync only at checkpoints; PostgreSQL synchronous_commit=off: the server
// flushes its WAL within 3 × wal_writer_delay): a committed turn survives a killed musterd
// (SIGKILL, a crash of the daemon), not an OS crash or power loss of the machine holding the
// journal (for PostgreSQL: of the server), which may lose the last turns after callers were
// told Accepted.
enum class JournalSync { Full, Normal };

struct JournalSettings {
  std::string spec;              // sqlite:PATH | postgresql://… | postgres://…
  std::uint64_t byte_limit = 0;  // payload bytes admits() allows; 0 = no limit
  JournalSync sync = JournalSync::Full;
  // A store shared by a failover pair (PostgreSQL) only:
  std::string shard = "default";               // the rows and the lease this pair owns
  std::string holder;                          // this daemon in the lease row
  std::chrono::milliseconds lease_term{4000};  // how long a take or renewal holds the lease
};

// Whether `spec` names a store shared by a failover pair (a daemon on it may be a standby).
bool is_shared_store(const std::string& spec);

// Opens the journal `settings.spec` names. A shared store is returned without its lease
// (Journal::try_lead). Throws std::invalid_argument for a spec of no known kind, JournalError
// (naming the store) when it cannot be opened.
std::unique_ptr<Journal> open_journal(const JournalSettings& settings);

}  // namespace muster::broker::journal
