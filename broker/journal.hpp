// journal.hpp — the durable-call journal as an interface: what a durable call's record holds,
// the transitions the core writes, and the contract every storage engine keeps (SQLite today,
// broker/journal_sqlite.hpp; PostgreSQL for the failover pair, issue 16). docs/DURABILITY.md.
// Owns: the record types and the contract (group commit, load order, size accounting, expiry).
// Must never: decide what happens to a call (that is the core's, and after a restart
// journal_recovery.hpp's), read a clock (every time is passed in), or touch a socket.
//
// Contract, every implementation:
// - Group commit. The socket loop calls begin_turn(), append()s the records of one loop turn
//   (in the order the core emitted them), then commit(). commit() returns only once every
//   record of the turn is durable (one transaction, one fsync); a crash at any point before
//   leaves the store exactly as the previous commit left it. Nothing of a turn may be sent to
//   a peer before its commit() returned. rollback() abandons the open turn.
// - Deferred sync (the one exception, when deferred_sync() is not null: SQLite at
//   `--journal-sync full` as musterd opens it). commit() then returns once the turn is written
//   (it survives a killed daemon, and load() sees it) but not yet durable against an OS crash
//   or a power loss; a DeferredSync::sync() that began after commit() returned makes it durable
//   (and every turn committed before it: durability is a prefix). Nothing of a turn may be
//   sent to a peer before that sync() returned. sync() may run on another thread than the one
//   writing turns, while the next turns are written (docs/DURABILITY.md §3, §4).
// - Errors. Every failure (I/O, a full disk, a corrupt or foreign store, a lost lease) throws
//   JournalError with a message naming the store. A failed commit() leaves the turn
//   uncommitted; the daemon must then stop (its memory is ahead of its journal), never carry on.
// - Records apply to one call each, identified by its job id; a record for a job id the store
//   does not hold (or in the wrong state: Dispatched of a finished call) is a bug in the
//   caller and throws JournalError, which rolls the turn back.
// - load() returns every call the store holds, in job-id order (= submission order), with
//   its latest state; next_job_id() is above every job id ever stored (never reused, even
//   after the call was acked or expired).
// - Size accounting. payload_bytes() counts the BLOB bytes of every call held (inputs,
//   parameters, outputs, failure message), committed plus appended in the open turn. The
//   journal never refuses a record for size (a worker's result must always be storable): the
//   core asks admits() before it accepts a durable Submit and answers QUEUE_FULL when not.
// - epoch() is a number that grows every time a daemon opens the store for writing (for
//   PostgreSQL, the fencing epoch of the lease). A daemon's request ids start at
//   epoch << 40, so they never collide with ids a worker still holds from an earlier instance.
// - Leadership (docs/DURABILITY.md §12). A store shared by a failover pair is written by one
//   daemon at a time, the holder of its lease: try_lead() takes it when it is free or expired
//   (a standby calls it until it leads, and only then load()s and binds its sockets), keep()
//   renews it between turns, and every turn checks it (fencing): once another daemon took
//   over, begin_turn() or keep() throws JournalError("... lost the lease ...") and the daemon
//   must stop. A store of one daemon (SQLite: an exclusive lock on the file) always leads.
// - One thread uses a journal (the journal thread, journal_thread.hpp); implementations are not
//   thread-safe, except a DeferredSync's sync(), which another thread may call meanwhile.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <variant>
#include <vector>

#include "events.hpp"
#include "leadership.hpp"

namespace muster::broker::journal {

// Wall-clock time, milliseconds since the Unix epoch: the only clock that means the same to
// two daemon instances (steady_clock restarts with the process).
using WallTime = std::chrono::sys_time<std::chrono::milliseconds>;
using JobId = std::uint64_t;

struct JournalError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

enum class CallState : std::uint8_t {
  Queued = 0,    // accepted, waiting in its node's queue
  Running = 1,   // dispatched to `worker_id` as `request_id`, attempt `attempts`
  Finished = 2,  // has its terminal outcome, kept until the client acks or it expires
};

// The terminal outcome of a call: a Result (code None, `outputs`) or a Failure.
struct Outcome {
  ErrorCode code = ErrorCode::None;
  Payload outputs;        // code None only
  std::string message;    // failures only
  bool ok() const { return code == ErrorCode::None; }
};

// One durable call as the journal holds it (what load() returns).
struct Call {
  JobId job_id = 0;
  CallState state = CallState::Queued;
  // What the caller asked, as the Submit carried it and the daemon stamped it.
  std::string node;               // node name
  Caller caller;                  // authenticated identity, name, workspace, role
  std::string trace_id;
  Payload inputs, parameters;
  bool idempotent = false;        // the node's flag when the call was accepted
  WallTime submitted{}, deadline{};
  // Running: where it runs. attempts counts dispatches so far (the next is attempts + 1).
  std::string worker_id, worker_identity;
  std::uint64_t request_id = 0;   // the id the worker knows it by (WorkRequest.request_id)
  std::uint32_t attempts = 0;
  std::uint32_t deaths = 0;       // workers that died holding it
  // Finished: the outcome, kept until the client acks it or `expires`.
  std::optional<Outcome> outcome;
  WallTime finished{}, expires{};
  // BLOB bytes this call holds in the store (counted in payload_bytes()).
  std::uint64_t payload_bytes() const {
    std::uint64_t n = inputs.bytes.size() + parameters.bytes.size();
    if (outcome) n += outcome->outputs.bytes.size() + outcome->message.size();
    return n;
  }
};

// ---- records: one per transition of a call ----------------------------------------------

// A durable Submit was accepted (written before its Accepted reply is sent). state Queued.
struct Submitted {
  Call call;  // job_id, node, caller, trace_id, inputs, parameters, idempotent, times
};
// Sent to a worker (queued → running, or a re-send after a silent loss: attempt grows).
struct Dispatched {
  JobId job_id = 0;
  std::string worker_id, worker_identity;
  std::uint64_t request_id = 0;
  std::uint32_t attempt = 1;
};
// Back in its node's queue: its worker died and the node is idempotent (running → queued).
struct Requeued {
  JobId job_id = 0;
  std::uint32_t deaths = 0;
};
// Has its terminal outcome (written before the terminal reply is sent): any state → finished.
struct Finished {
  JobId job_id = 0;
  Outcome outcome;
  WallTime at{}, expires{};
};
// The client acknowledged the terminal reply: the call is forgotten.
struct Acked {
  JobId job_id = 0;
};

using Record = std::variant<Submitted, Dispatched, Requeued, Finished, Acked>;

// What the core asks of the journal in one loop turn, in order (broker_core.hpp
// journal_ops()): a record to append, or Journal::expire(now) of the finished calls kept past
// their time. The socket loop commits them all before it sends anything of that turn.
struct ExpireKept {
  WallTime now{};
};
using JournalOp = std::variant<Record, ExpireKept>;
// A batch's ops as the loop turns that emitted them (BrokerCore::journal_ops() of each turn),
// in order: each turn's vector is handed over whole and emptied on the journal thread, never
// moved op by op into one vector (≈ 700 instructions a call: docs/DURABILITY.md §10 "Session 14").
using TurnOps = std::vector<std::vector<JournalOp>>;

// The sync of a journal whose commit() does not make a turn durable on its own (Journal::
// deferred_sync()). Thread-safe against the journal's own use: one thread calls sync() while
// another writes turns. Lives as long as its journal.
class DeferredSync {
 public:
  virtual ~DeferredSync() = default;
  // Makes durable every turn whose commit() returned before this call began. Throws
  // JournalError (naming the store) when it cannot: those turns must count as failed commits.
  virtual void sync() = 0;
};

struct Loaded {
  std::vector<Call> calls;  // job-id order
  JobId next_job_id = 1;
};

class Journal {
 public:
  virtual ~Journal() = default;

  // Where the store is, for messages ("sqlite:/var/lib/muster/journal.db").
  virtual std::string describe() const = 0;
  virtual std::uint64_t epoch() const = 0;
  virtual Loaded load() = 0;

  // ---- one loop turn ----
  virtual void begin_turn() = 0;
  virtual void append(const Record& record) = 0;
  // Forgets finished calls whose `expires` is at or before `now`; returns their job ids.
  // Inside a turn, like append().
  virtual std::vector<JobId> expire(WallTime now) = 0;
  // The ops of a batch in order — the ops of each loop turn in `turns`, one turn after the
  // other: append() of each record, expire() of each ExpireKept, with the same effect and the
  // same errors (the first refused record throws JournalError; the turn must then be rolled
  // back). A journal may send them together (PostgreSQL: pipelined, one round trip for many
  // records) instead of one by one. (A batch is the turns' vectors as the core filled them,
  // never moved op by op into one: docs/DURABILITY.md §10 "Session 14".)
  virtual void append_turns(std::span<const std::vector<JournalOp>> turns) {
    for (auto& ops : turns)
      for (auto& op : ops) {
        if (auto* rec = std::get_if<Record>(&op)) append(*rec);
        else expire(std::get<ExpireKept>(op).now);
      }
  }
  // The same for the ops of one turn.
  void append_all(const std::vector<JournalOp>& ops) { append_turns(std::span(&ops, 1)); }
  virtual void commit() = 0;
  virtual void rollback() = 0;
  virtual bool in_turn() const = 0;
  // Null (the default): commit() returns once the turn is durable. Otherwise a committed turn
  // is durable only once a sync() of this object that began after its commit() returned has
  // returned (the contract above, "Deferred sync").
  virtual DeferredSync* deferred_sync() { return nullptr; }

  // ---- leadership (a store shared by a failover pair) ----
  // Tries once to become the daemon that writes this store; leading once it is. load() and
  // turns need it. Throws JournalError when the store cannot be asked.
  // `now` is when it asks (a lease taken then lasts its term from then on, by the daemon's clock).
  virtual leadership::Standing try_lead(std::chrono::steady_clock::time_point /*now*/) { return {}; }
  // Called by the socket loop between turns, at least every quarter of the lease's term (the
  // daemon's --lease-ms / 4): renews a lease when it is due. Throws JournalError (naming the store, saying "lost the lease") when another daemon
  // took over or the lease could not be renewed within its term.
  virtual void keep(std::chrono::steady_clock::time_point /*now*/) {}

  // ---- size ----
  virtual std::uint64_t payload_bytes() const = 0;
  virtual std::uint64_t byte_limit() const = 0;  // 0 = none
  bool admits(std::uint64_t more) const {
    return byte_limit() == 0 || payload_bytes() + more <= byte_limit();
  }
};

}  // namespace muster::broker::journal
