// journal_recovery.hpp — what a restarted daemon does with each durable call it loaded from the
// journal (docs/DURABILITY.md "Recovery"): a pure function of the loaded calls, the wall clock,
// and the workers that re-attached since the restart with the requests they hold.
// Owns: the recovery rules (requeue in order, adopt, wait for the worker, fail WORKER_LOST or
// TIMEOUT, redeliver a kept result, expire it) and the journal records each decision implies.
// Must never: read a clock, touch the journal or a socket, or keep state between calls; the
// core calls it at start and again whenever a worker re-attaches or its window ends.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "journal.hpp"

namespace muster::broker::journal {

// A worker that attached to this daemon instance, and the request ids its confirming Pong
// listed in flight (PROTOCOL.md §7.3: received and not yet answered... and, with durable
// calls, answered but not yet acknowledged).
struct Reattached {
  std::string worker_id;
  std::string identity;  // CURVE identity (ZAP User-Id); "local" over ipc
  std::vector<std::uint64_t> in_flight;
};

struct RecoveryView {
  WallTime now{};
  // Until this time a running call whose worker has not re-attached waits for it (daemon
  // start + ping_interval × liveness: the time a live worker needs to notice the restart).
  WallTime reattach_until{};
  std::vector<Reattached> workers;
  std::uint32_t max_attempts = 3;            // --max-attempts
  std::chrono::milliseconds result_ttl{3600000};  // --result-ttl: how long an outcome is kept
};

enum class Decision {
  Requeue,         // back to its node's queue (queued calls, and lost idempotent ones)
  Adopt,           // still running on the worker that re-attached reporting it: wait for it
  Wait,            // running, its worker not back yet: decide again later
  FailWorkerLost,  // its worker is gone and it may not run again (not idempotent, or attempts)
  FailTimeout,     // its deadline passed while the daemon was down
  Redeliver,       // finished: its outcome is kept for the client to resume and ack
  Expire,          // finished longer than its kept time ago: forget it
};

const char* to_string(Decision d);

struct Verdict {
  JobId job_id = 0;
  Decision decision = Decision::Wait;
  // FailTimeout of a call a re-attached worker still holds: the core also sends it Abort.
  bool abort_worker = false;
  // What to journal for it, in this order, before anything of it is sent (group commit):
  // Requeued for a lost running call, Finished for a failure. Nothing for Adopt, Wait,
  // Redeliver, a queued Requeue, or Expire (Journal::expire() forgets those).
  std::vector<Record> records;
};

// The decision for one call. Rules, in order:
// - finished: Expire when `expires` <= now, else Redeliver;
// - queued or running, deadline <= now: FailTimeout;
// - queued: Requeue;
// - running, and a re-attached worker with its worker id and identity lists its request id:
//   Adopt; the same worker back without it (it restarted, or never got it): lost at once;
// - running, its worker not back: Wait until reattach_until, then lost;
// - lost: Requeue when idempotent with fewer than max_attempts attempts, else FailWorkerLost.
Verdict decide(const Call& call, const RecoveryView& view);

// decide() for every call, in the order given (load() order: job id, so requeues keep their
// submission order within each node's queue).
std::vector<Verdict> plan(const std::vector<Call>& calls, const RecoveryView& view);

}  // namespace muster::broker::journal
