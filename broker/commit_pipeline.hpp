// commit_pipeline.hpp — the rules of pipelined group commit (docs/DURABILITY.md §3): which of
// musterd's outgoing messages wait for which journal commit, while the journal commits one
// batch of loop turns and the socket loop already computes the next turns.
// Owns: the journal records not yet handed to the journal (the next batch), the one batch in
// flight, the actions held until the commit they depend on is confirmed, their release in turn
// order, and the bound on how far the loop may run ahead of the journal.
// Must never: touch a socket, a thread or the journal itself (journal_thread.hpp does that; the
// socket loop moves records and actions in and out), read a clock (every time is passed in), or
// release an action before every commit of its turn and of the turns before it is confirmed.
//
// The rules:
// - A loop turn ends with its journal records (maybe none) and its actions. Its records join
//   the next batch; the turn's actions wait until the batch holding its records is committed,
//   and, whatever it holds, until every earlier turn's actions went out: actions leave in turn
//   order, so a turn with no record waits behind the turn before it (a broadcast Ping after
//   the WorkRequests before it, a JobGet's answer after the commit of the outcome it shows).
// - One batch is written at a time. While it is written, the turns that end add their records
//   to the next batch: the journal commits everything that arrived during a commit in one
//   transaction (group commit across turns), and the loop never waits for the disk unless the
//   oldest batch not yet committed is older than `max_lag` (must_wait): then it waits, as it
//   did before pipelining, so that held Pings cannot make live workers look silent for long.
// - Written is not committed (a journal with a deferred sync, journal.hpp: SQLite at
//   --journal-sync full). A batch is committed once the sync that began after it was written
//   returned (committed(seq): every batch up to seq, the sync covers a prefix). The next batch
//   may be written meanwhile (written(seq) lets it go: the fsync of batch N overlaps the write
//   of N+1), but nothing held for a batch goes before it is committed: "committed" below means
//   synced. A journal whose commit() is durable reports both at once.
// - One commit per call (docs/DURABILITY.md §3, "Early dispatch"): a WorkRequest whose call's
//   `Submitted` is in the batch not yet handed out — the same batch as its `Dispatched` — goes
//   at once, ahead of the held turns, so a fast worker's answer (its `Finished`) can join that
//   batch too: the call's `Accepted` and terminal reply then wait for one commit instead of
//   two. Safe because one transaction holds both records: a crash before it commits leaves
//   nothing of the call (its caller never got `Accepted`, so it was told nothing but
//   UNAVAILABLE; no later instance can run it again), a crash after it leaves the call running
//   on that worker (adopted as ever). Only then: a call whose `Submitted` is in a batch already
//   handed out (in flight or committed) would be journaled queued without its dispatch, and a
//   restart would re-queue a call its worker runs, so its WorkRequest waits for the commit of
//   its `Dispatched`. An early WorkRequest also waits while an Abort for the same worker is
//   held before it (the Abort frees the slot the new request takes), and nothing else moves:
//   every other action keeps its turn order.
// - Gather the answers (one commit per call, the usual case): when the batch in flight is
//   confirmed and the next one holds calls dispatched early whose answer (their `Finished`, or
//   any record that ends their run) has not come yet, the next batch is not handed out at once
//   but after those answers joined it, or after `gather` at the most (then it goes with what it
//   has). So a call's `Submitted`, `Dispatched` and `Finished` share one transaction — one row
//   written instead of a row and its update — whenever its worker answers within `gather`.
//   Only the calls waited for when the batch could first have gone count: calls arriving
//   meanwhile do not prolong the wait. It only delays a commit (nothing goes out earlier), so
//   every rule above holds; a lone caller's call commits once instead of twice in a row.
//   `gather` 0 (the default here) hands the batch out at once, as before.
// - A failed commit releases nothing more: what was held is dropped with the pipeline (the
//   daemon stops; a restart recovers from the last committed batch).
#pragma once

#include <cstdint>
#include <deque>
#include <optional>
#include <unordered_set>  // (release_early)
#include <vector>

#include "events.hpp"
#include "job_index.hpp"
#include "journal.hpp"

namespace muster::broker {

class CommitPipeline {
 public:
  using Seq = std::uint64_t;  // batches are numbered from 1 in the order they are handed out

  // The records of one or more loop turns, committed as one transaction: each turn's vector
  // as the core filled it (journal::TurnOps), `records` ops in all.
  struct Batch {
    Seq seq = 0;
    journal::TurnOps turns;
    std::size_t records = 0;
    // The core's count of journal payload bytes at the end of the last turn in the batch
    // (BrokerCore::journal_bytes()): resynced_bytes() needs it once the batch is committed.
    std::uint64_t core_bytes = 0;
  };

  // What went through the pipeline (musterd logs it at exit; the benchmarks read it): counts
  // that a loaded machine does not change for a given run of calls.
  struct Stats {
    std::uint64_t batches = 0;              // handed to the journal
    std::uint64_t records = 0;              // journal ops in them
    std::uint64_t early_work_requests = 0;  // sent before their call's commit (one commit per call)
    std::uint64_t gathered = 0;             // batches held back for the answers of their calls
    std::uint64_t finished_with_submitted = 0;  // Finished records in the batch of their Submitted
    std::uint64_t commits = 0;  // confirmations (each of one batch or more: a sync covers all written before it)
  };

  // `early_dispatch`: the "one commit per call" rule above (musterd: always; off only to
  // measure against it).
  // `gather`: how long a batch may wait for the answers of its early-dispatched calls (the
  // "gather the answers" rule above; 0: not at all).
  explicit CommitPipeline(Millis max_lag, bool early_dispatch = true, Millis gather = Millis(0))
      : max_lag_(max_lag), early_dispatch_(early_dispatch), gather_(gather) {}

  // A loop turn ended with `ops` (in the order the core emitted them) and `actions`. The
  // actions that may go now are appended to released() in order; the rest are held.
  // `core_bytes`: BrokerCore::journal_bytes() at the end of the turn.
  // `ops` is taken whole (the vector, not its ops one by one) and left an empty vector, one
  // of spares() when there is one (the core fills it in the next turns).
  void end_turn(std::vector<journal::JournalOp>&& ops, std::vector<Action>&& actions,
                std::uint64_t core_bytes);
  // Empty vectors end_turn gives back for the next turns' ops: the journal thread's emptied
  // ones go here (JournalThread::take_spares).
  journal::TurnOps& spares() { return spares_; }

  // The batch to commit now: all records of the turns ended since the last batch, when no
  // batch is being written and there are any; nullopt otherwise. The batch is in flight
  // (being written, then not yet committed) from `now`.
  // `gather` false: at once, even if the "gather the answers" rule would wait (the loop must
  // wait for the journal anyway, or it drains).
  std::optional<Batch> next_batch(TimePoint now, bool gather = true);
  // While a batch waits for answers (gather): when it goes at the latest; the loop must wake
  // then. TimePoint::max() otherwise.
  TimePoint gather_until() const { return gathering_ ? gather_since_ + gather_ : TimePoint::max(); }
  // The journal wrote batch `seq` (not committed yet): the next batch may go.
  void written(Seq seq);
  // The journal committed every batch up to `seq` (written too, then): the actions that waited
  // for them join released(), in order. A seq already confirmed changes nothing.
  void committed(Seq seq);

  // Actions that may be sent, in order; the caller sends them all and clears the vector.
  std::vector<Action>& released() { return released_; }

  // Whether the loop must wait for the oldest batch not committed before it reads anything
  // more: that batch is older than max_lag.
  bool must_wait(TimePoint now) const { return !unconfirmed_.empty() && now - unconfirmed_.front().since >= max_lag_; }
  // When must_wait() becomes true (TimePoint::max() with no batch in flight): the loop wakes
  // then at the latest.
  TimePoint wait_from() const { return unconfirmed_.empty() ? TimePoint::max() : unconfirmed_.front().since + max_lag_; }
  // A batch is being written (next_batch() waits for written()).
  bool in_flight() const { return in_flight_.has_value(); }
  // The oldest batch handed out and not committed (the one a loop that must wait waits for).
  std::optional<Seq> oldest_unconfirmed() const {
    return unconfirmed_.empty() ? std::nullopt : std::optional(unconfirmed_.front().seq);
  }
  // Nothing pending, nothing in flight, nothing held: everything ended so far was sent.
  bool idle() const { return unconfirmed_.empty() && pending_.empty() && held_.empty(); }
  std::size_t held_turns() const { return held_.size(); }
  const Stats& stats() const { return stats_; }

  // The core's journal byte count once batch `b` is committed and the journal says it holds
  // `journal_bytes`: the journal's figure plus what the core counted in the turns after the
  // batch (`core_now` - b.core_bytes). The journal's own count is the truth for everything it
  // committed (an expiry the core does not count, for instance); the core's for the rest.
  static std::uint64_t resynced_bytes(std::uint64_t core_now, std::uint64_t journal_bytes,
                                      std::uint64_t batch_core_bytes);

 private:
  struct HeldTurn {
    Seq needs = 0;  // the batch that must be committed before these actions go
    std::vector<Action> actions;
  };
  void release_ready();
  // Moves the WorkRequests of `actions` that may go before the commit (the early-dispatch
  // rule) to released(); `early` (sorted) holds the request ids whose Dispatched joined the pending
  // batch together with their call's Submitted.
  void release_early(std::vector<Action>& actions, const std::vector<std::uint64_t>& early);

  Millis max_lag_;
  bool early_dispatch_ = true;
  Millis gather_{0};
  bool gathering_ = false;
  TimePoint gather_since_{};
  Stats stats_;
  // Job ids whose Submitted is in pending_ (the batch not yet handed out), by job id (a
  // JobIndex, job_index.hpp: appended as job ids grow, the last one found without a search;
  // not a hash set: ≈ 250 instructions less a call). With each, whether its call was
  // dispatched early and its run has no later record yet (its answer is awaited), and whether
  // the batch waits for it since it could first have gone (gather): flags, not two hash sets
  // of job ids (a node allocated and freed per call in each).
  struct PendingCall {
    bool awaiting = false, waited_for = false;
  };
  JobIndex<PendingCall> pending_submitted_;
  std::size_t awaiting_ = 0, waited_for_ = 0;  // how many have each flag
  // SendAbort actions in held_ (release_early reads the held turns only when there is one).
  std::size_t held_aborts_ = 0;
  Seq next_seq_ = 1;    // the seq the pending records will be committed under
  Seq confirmed_ = 0;   // every batch up to this one is committed
  std::optional<Seq> in_flight_;  // being written
  struct Unconfirmed {
    Seq seq = 0;
    TimePoint since{};  // handed out then
  };
  std::deque<Unconfirmed> unconfirmed_;  // handed out, not committed, in order (the one written among them)
  journal::TurnOps pending_;       // the turns of the next batch,
  std::size_t pending_records_ = 0;  // and their ops in all
  journal::TurnOps spares_;
  std::vector<std::uint64_t> early_;  // end_turn's early WorkRequests (kept: no allocation a turn)
  std::uint64_t pending_core_bytes_ = 0;
  std::deque<HeldTurn> held_;
  std::vector<Action> released_;
};

}  // namespace muster::broker
