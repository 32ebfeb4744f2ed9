// journal_thread.hpp — the thread that commits musterd's journal batches while the socket loop
// goes on (pipelined group commit, docs/DURABILITY.md §3; the rules of what waits for which
// commit are commit_pipeline.hpp's).
// Owns: the journal once handed over (no other thread touches it until this one is destroyed),
// its thread, the hand-over of one batch and its outcome, the lease renewals between batches
// (Journal::keep), an eventfd the loop polls to learn that a batch is done, and the emptied
// vectors of committed batches until the loop takes them back (take_spares).
// Must never: decide what is sent or when (it only commits and reports), carry on after a
// failure (the first JournalError is kept and every later call reports it), or commit two
// batches at once or out of order.
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
  // The outcome of a committed batch.
  struct Done {
    std::uint64_t seq = 0;
    std::uint64_t payload_bytes = 0;  // Journal::payload_bytes() after the commit
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

  // Readable when a batch is done or the journal failed (the loop polls it); done() clears it.
  int fd() const { return fd_; }

  // Commits the ops of `turns` as one turn (begin_turn, append/expire in order, commit) on the
  // thread. One batch at a time: the previous one must be done and taken by done()/wait() (or
  // this throws std::logic_error).
  void commit(std::uint64_t seq, TurnOps turns);
  // Moves into `into` the vectors of committed batches, emptied on this thread (their records
  // destroyed here, after the batch was reported done and outside the lock), for the loop to
  // fill again: its turns then need no new vector (nor grow one, moving its ops). Kept until
  // taken while their capacities add up to at most kSpareOps ops (the rest are freed: a
  // burst's many or large vectors do not stay).
  void take_spares(TurnOps& into);
  static constexpr std::size_t kSpareOps = 16384;
  // The batch that finished, if one did; throws the JournalError of a failed commit or renewal.
  std::optional<Done> done();
  // Waits for the batch in flight and returns it; throws its JournalError.
  Done wait();

 private:
  void run();
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
  std::optional<std::string> error_;  // sticky: the first failure
  bool stop_ = false;
  std::thread thread_;  // last: started once everything above is ready
};

}  // namespace muster::broker::journal
