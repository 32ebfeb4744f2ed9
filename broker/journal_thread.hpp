// journal_thread.hpp — the thread that commits musterd's journal batches while the socket loop
// goes on (pipelined group commit, docs/DURABILITY.md §3; the rules of what waits for which
// commit are commit_pipeline.hpp's), and, for a journal whose commit is made durable by a
// deferred sync (journal.hpp, "Deferred sync": SQLite at --journal-sync full), the thread that
// syncs it while the next batch is written.
// Owns: the journal once handed over (no other thread touches it until this one is destroyed),
// its threads, the hand-over of one batch and its outcome, the lease renewals between batches
// (Journal::keep), an eventfd the loop polls to learn that a batch is written or synced, and
// the emptied vectors of written batches until the loop takes them back (take_spares).
// Must never: decide what is sent or when (it only commits and reports), report a batch synced
// before a sync that began after its commit() returned has returned, carry on after a failure
// (the first JournalError, of a commit or of a sync, is kept and every later call reports it),
// or write two batches at once or out of order.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "journal.hpp"

namespace muster::broker::journal {

class JournalThread {
 public:
  // A batch written (its commit() returned): the thread takes the next one.
  struct Done {
    std::uint64_t seq = 0;
    std::uint64_t payload_bytes = 0;  // Journal::payload_bytes() after the commit
  };
  // What happened since the loop last asked.
  struct Progress {
    std::optional<Done> written;  // the batch written, if one was since
    // Every batch up to this one is durable (synced; for a journal without a deferred sync,
    // written): what waited for them may go.
    std::uint64_t synced = 0;
  };

  // Takes `journal` (opened, leading, loaded) and starts the thread. Between batches it calls
  // keep() at least every `keep_every`, and before each batch.
  JournalThread(std::unique_ptr<Journal> journal, std::chrono::milliseconds keep_every);
  // Finishes the batch in flight (if any), stops the thread, then closes the journal (a
  // PostgreSQL journal releases its lease there).
  ~JournalThread();
  JournalThread(const JournalThread&) = delete;
  JournalThread& operator=(const JournalThread&) = delete;

  const std::string& describe() const { return description_; }
  std::uint64_t epoch() const { return epoch_; }

  // Readable when a batch is written or synced, or the journal failed (the loop polls it);
  // done() clears it.
  int fd() const { return fd_; }

  // Commits the ops of `turns` as one turn (begin_turn, append/expire in order, commit) on the
  // thread. One batch written at a time: the previous one must be written and taken by
  // done()/wait() (or this throws std::logic_error); it may still be syncing.
  void commit(std::uint64_t seq, TurnOps turns);
  // Moves into `into` the vectors of committed batches, emptied on this thread (their records
  // destroyed here, after the batch was reported done and outside the lock), for the loop to
  // fill again: its turns then need no new vector (nor grow one, moving its ops). Kept until
  // taken while their capacities add up to at most kSpareOps ops (the rest are freed: a
  // burst's many or large vectors do not stay).
  void take_spares(TurnOps& into);
  static constexpr std::size_t kSpareOps = 16384;
  // What was written and synced since the last call; throws the JournalError of a failed
  // commit, sync or renewal.
  Progress done();
  // Waits until batch `seq` (handed over by commit()) is synced; throws a JournalError.
  Progress wait(std::uint64_t seq);

 private:
  void run();
  void run_sync();  // the sync thread (a journal with a deferred sync only)
  void notify_loop();
  void clear_fd();

  std::unique_ptr<Journal> journal_;
  std::string description_;
  std::uint64_t epoch_ = 0;
  std::chrono::milliseconds keep_every_;
  int fd_ = -1;
  std::mutex mutex_;
  std::condition_variable wake_;  // the thread: a batch or stop; the loop (wait): done
  std::optional<std::uint64_t> seq_;  // the batch to commit or in commit
  TurnOps turns_;
  TurnOps spares_;
  std::size_t spare_ops_ = 0;  // their capacities, added up
  std::optional<Done> done_;
  DeferredSync* sync_ = nullptr;  // the journal's deferred sync, if it has one
  std::uint64_t written_ = 0;     // every batch up to this one is written
  std::uint64_t synced_ = 0;      // and up to this one, synced
  bool writer_stopped_ = false;   // the writing thread returned: the sync thread syncs what is left, then returns
  std::condition_variable sync_wake_;  // the sync thread: a batch written, or the writer stopped
  std::optional<std::string> error_;  // sticky: the first failure
  bool stop_ = false;
  std::thread thread_;  // last: started once everything above is ready
  std::thread sync_thread_;
};

}  // namespace muster::broker::journal
