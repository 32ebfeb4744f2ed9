// journal_recovery.cpp — the recovery rules of journal_recovery.hpp.
#include "journal_recovery.hpp"

#include <algorithm>

#include <fmt/format.h>

namespace muster::broker::journal {
namespace {

const Reattached* worker_of(const Call& call, const RecoveryView& view) {
  for (const Reattached& w : view.workers)
    if (w.worker_id == call.worker_id && w.identity == call.worker_identity) return &w;
  return nullptr;
}

bool holds(const Reattached& w, std::uint64_t request_id) {
  return std::find(w.in_flight.begin(), w.in_flight.end(), request_id) != w.in_flight.end();
}

Verdict failed(const Call& call, const RecoveryView& view, Decision decision, ErrorCode code,
               std::string message) {
  Verdict v{call.job_id, decision, false, {}};
  v.records.push_back(Finished{call.job_id, Outcome{code, {}, std::move(message)}, view.now,
                               view.now + view.result_ttl});
  return v;
}

// The running call's worker did not come back with it.
Verdict lost(const Call& call, const RecoveryView& view, const char* how) {
  if (call.idempotent && call.attempts < view.max_attempts) {
    Verdict v{call.job_id, Decision::Requeue, false, {}};
    v.records.push_back(Requeued{call.job_id, call.deaths + 1});
    return v;
  }
  return failed(call, view, Decision::FailWorkerLost, ErrorCode::WorkerLost,
                fmt::format("worker {} {} while musterd restarted; the node is {}", call.worker_id,
                            how,
                            call.idempotent ? fmt::format("out of attempts ({} of {})",
                                                          call.attempts, view.max_attempts)
                                            : std::string("not idempotent, so it is not re-run")));
}

}  // namespace

const char* to_string(Decision d) {
  switch (d) {
    case Decision::Requeue: return "requeue";
    case Decision::Adopt: return "adopt";
    case Decision::Wait: return "wait";
    case Decision::FailWorkerLost: return "fail-worker-lost";
    case Decision::FailTimeout: return "fail-timeout";
    case Decision::Redeliver: return "redeliver";
    case Decision::Expire: return "expire";
  }
  return "?";
}

Verdict decide(const Call& call, const RecoveryView& view) {
  if (call.state == CallState::Finished)
    return {call.job_id, call.expires <= view.now ? Decision::Expire : Decision::Redeliver, false,
            {}};
  const Reattached* worker = call.state == CallState::Running ? worker_of(call, view) : nullptr;
  const bool held = worker && holds(*worker, call.request_id);
  if (call.deadline <= view.now) {
    Verdict v = failed(call, view, Decision::FailTimeout, ErrorCode::Timeout,
                       "the deadline passed while musterd restarted");
    v.abort_worker = held;
    return v;
  }
  if (call.state == CallState::Queued) return {call.job_id, Decision::Requeue, false, {}};
  if (held) return {call.job_id, Decision::Adopt, false, {}};
  if (worker) return lost(call, view, "came back without it");
  if (view.now < view.reattach_until) return {call.job_id, Decision::Wait, false, {}};
  return lost(call, view, "did not come back");
}

std::vector<Verdict> plan(const std::vector<Call>& calls, const RecoveryView& view) {
  std::vector<Verdict> out;
  out.reserve(calls.size());
  for (const Call& c : calls) out.push_back(decide(c, view));
  return out;
}

}  // namespace muster::broker::journal
