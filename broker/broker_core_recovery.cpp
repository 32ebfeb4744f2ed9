// broker_core_recovery.cpp — the core's side of a restart (docs/DURABILITY.md §5): restore()
// puts the durable calls an earlier instance journaled back in place, and the calls that were
// running wait (Recovering) for their worker to re-attach and be adopted, or are lost.
// Owns: the Recovering state, adoption, the re-attach window, and the journal records of those
// verdicts (journal_recovery.hpp decides; this applies).
// Must never: re-run a call its worker still holds, run a non-idempotent call twice, or give a
// restored call a request id another call of this instance uses.
#include <algorithm>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "broker_core.hpp"

namespace muster::broker {

namespace {
// The connection of every restored call until its caller resumes: replies to it are not sent.
const Peer kDetached{};
}  // namespace

journal::RecoveryView BrokerCore::recovery_view(TimePoint now) const {
  journal::RecoveryView view;
  view.now = wall(now);
  view.reattach_until = wall(reattach_until_);
  view.max_attempts = config_.max_attempts;
  view.result_ttl = config_.result_ttl;
  return view;
}

std::size_t BrokerCore::recovering() const {
  return static_cast<std::size_t>(std::count_if(recovering_.begin(), recovering_.end(),
                                                [](auto& e) { return !e.second.finished; }));
}

BrokerCore::Request& BrokerCore::restored_request(TimePoint now, const journal::Call& c,
                                                  std::uint64_t id) {
  Request& r = requests_[id];
  r.id = id;
  r.client = clients_.get(kDetached);
  r.client_request_id = c.job_id;  // unique on the detached connection
  std::tie(r.node, r.stats) = stats_.node(NodeKey{c.caller.workspace, c.node}, [this](const NodeKey& key) {
    return registry_.node(key) != nullptr;
  });
  ++r.stats->workspace->counts.submitted;
  r.caller = callers_.get(c.caller);
  r.payload_owner = std::make_shared<std::pair<std::shared_ptr<const void>, std::shared_ptr<const void>>>(
      c.inputs.owner, c.parameters.owner);
  r.inputs = c.inputs.bytes;
  r.parameters = c.parameters.bytes;
  r.held = HeldBytes(&open_bytes_, r.inputs.size() + r.parameters.size());
  r.submitted = r.waiting_since = r.dispatched = now;
  r.deadline = now + std::chrono::duration_cast<Millis>(c.deadline - wall(now));
  r.idempotent = c.idempotent;
  r.trace_id = c.trace_id;
  r.attempts = c.attempts;
  r.deaths = c.deaths;
  r.job_id = c.job_id;
  r.restored_lane = true;  // queued behind the other restored calls in job order (lane_of)
  jobs_.opened(c.job_id, OpenJob{id, c.caller.workspace, c.submitted});
  by_client_.emplace(client_key(kDetached, c.job_id), id);
  count_open(r, +1);
  deadlines_.push(r.deadline, id, requests_.size(),
                  [this](std::uint64_t open) { return deadline_counts(open); });
  return r;
}

std::size_t BrokerCore::restore(TimePoint now, const std::vector<journal::Call>& calls, Millis reattach_extra) {
  reattach_until_ = now + config_.ping_interval * config_.liveness + reattach_extra;
  const journal::RecoveryView view = recovery_view(now);
  std::size_t requeued = 0;
  std::map<journal::JobId, const journal::Call*> by_job;
  for (auto& c : calls) {
    by_job.emplace(c.job_id, &c);
    next_request_id_ = std::max(next_request_id_, c.request_id + 1);
  }
  for (auto& verdict : journal::plan(calls, view)) {
    const journal::Call& c = *by_job.at(verdict.job_id);
    for (auto& rec : verdict.records) journal(rec);
    keep_restored(c, verdict);  // a finished call's outcome waits for its caller (JobResume, JobGet)
    auto keep_for_abort = [&] {  // its worker may come back holding it: it gets an Abort then
      journal::Call bare = c;
      bare.inputs = bare.parameters = {};
      recovering_.emplace(c.request_id, RecoveringCall{std::move(bare), true});
    };
    switch (verdict.decision) {
      case journal::Decision::Requeue: {  // a queued call (a running one is never lost yet here)
        Request& r = restored_request(now, c, next_request_id_++);
        r.state = RequestState::Queued;
        registry_.node_for_queue(*r.node).queue.push_back(lane_of(r), r.id);
        ++requeued;
        break;
      }
      case journal::Decision::Wait: {
        // Its worker knows it by c.request_id, an id of an earlier instance, which no call of
        // this instance may have: ids given out from now on start above every loaded one.
        Request& r = restored_request(now, c, c.request_id);
        r.state = RequestState::Recovering;
        r.worker_id = c.worker_id;
        journal::Call bare = c;
        bare.inputs = bare.parameters = {};
        recovering_.emplace(c.request_id, RecoveringCall{std::move(bare), false});
        spdlog::info("durable call waits for its worker to re-attach job_id={} node={} worker_id={} "
                     "request_id={}", c.job_id, c.node, c.worker_id, c.request_id);
        break;
      }
      case journal::Decision::FailTimeout:
        if (c.state == journal::CallState::Running) keep_for_abort();
        break;
      default:  // Redeliver, Expire: the journal keeps (or forgets) them for their caller
        break;
    }
  }
  if (!recovering_.empty())
    spdlog::info("{} durable call(s) were running: waiting up to {} ms for their workers to re-attach",
                 recovering(), std::chrono::duration_cast<Millis>(reattach_until_ - now).count());
  return requeued;
}

void BrokerCore::settle_recovering(TimePoint now, WorkerEntry& w,
                                   const std::vector<std::uint64_t>& in_flight,
                                   const std::vector<std::uint64_t>& answered) {
  std::vector<std::pair<journal::JobId, std::uint64_t>> mine;  // (job id, request id)
  for (auto& [id, rc] : recovering_)
    if (rc.call.worker_id == w.id && rc.call.worker_identity == w.owner.identity)
      mine.emplace_back(rc.call.job_id, id);
  if (mine.empty()) return;
  journal::RecoveryView view = recovery_view(now);
  journal::Reattached back{w.id, w.owner.identity, in_flight};
  back.in_flight.insert(back.in_flight.end(), answered.begin(), answered.end());
  view.workers.push_back(std::move(back));
  // Newest first: re-queued calls go to the head of their queue, so the oldest ends up first.
  std::sort(mine.rbegin(), mine.rend());
  std::vector<NodeKey> requeued;
  for (auto& [job, id] : mine)
    if (auto node = apply_recovery(now, id, journal::decide(recovering_.at(id).call, view), &w))
      requeued.push_back(std::move(*node));
  for (auto& key : requeued) dispatch_node(key, now);
}

void BrokerCore::end_reattach_window(TimePoint now) {
  std::vector<std::pair<journal::JobId, std::uint64_t>> left;
  for (auto& [id, rc] : recovering_) left.emplace_back(rc.call.job_id, id);
  std::sort(left.rbegin(), left.rend());
  const journal::RecoveryView view = recovery_view(now);
  std::vector<NodeKey> requeued;
  for (auto& [job, id] : left)
    if (auto node = apply_recovery(now, id, journal::decide(recovering_.at(id).call, view), nullptr))
      requeued.push_back(std::move(*node));
  for (auto& key : requeued) dispatch_node(key, now);
  recovering_.clear();
}

std::optional<NodeKey> BrokerCore::apply_recovery(TimePoint now, std::uint64_t id,
                                                  const journal::Verdict& v, WorkerEntry* w) {
  auto rc = recovering_.find(id);
  auto it = requests_.find(id);
  const bool open = !rc->second.finished && it != requests_.end() &&
                    it->second.state == RequestState::Recovering;
  if (!open) {  // finished while it waited: only its worker, back with it, is left to stop
    if (w && v.decision != journal::Decision::Wait && v.abort_worker)
      actions_.push_back(SendAbort{w->id, id, ErrorCode::Timeout, "the deadline passed while musterd restarted"});
    else if (w && v.decision == journal::Decision::Adopt)
      actions_.push_back(SendAbort{w->id, id, ErrorCode::Cancelled, "the call ended while musterd restarted"});
    if (v.decision != journal::Decision::Wait || !w) recovering_.erase(rc);
    return std::nullopt;
  }
  if (v.decision == journal::Decision::Wait) return std::nullopt;
  Request& r = it->second;
  const journal::Call call = std::move(rc->second.call);
  recovering_.erase(rc);
  switch (v.decision) {
    case journal::Decision::Adopt: {
      r.state = RequestState::Dispatched;
      r.dispatched = now;
      r.dispatch_seq = next_ping_seq_;  // judged by its worker's Pongs to pings from now on
      w->holding.insert(id);
      spdlog::info("durable call adopted: its worker re-attached still holding it job_id={} node={} "
                   "worker_id={} request_id={}", call.job_id, call.node, w->id, id);
      return std::nullopt;
    }
    case journal::Decision::Requeue: {
      for (auto& rec : v.records) {
        if (auto* q = std::get_if<journal::Requeued>(&rec)) r.deaths = q->deaths;
        journal(rec);
      }
      r.state = RequestState::Queued;
      r.worker_id.clear();
      r.waiting_since = now;
      registry_.node_for_queue(*r.node).queue.push_front(queue_lane(*r.client, *r.caller), id);
      ++redispatched_;
      ++r.stats->workspace->counts.redispatched;
      spdlog::info("durable call re-queued: worker {} {} request_id={} job_id={} node={}", call.worker_id,
                   w ? "re-attached without it" : "did not re-attach in time", id, call.job_id, call.node);
      return *r.node;
    }
    default: {  // FailWorkerLost, FailTimeout: the Finished record goes through finish()
      FailureBody failure{ErrorCode::WorkerLost, "lost while musterd restarted"};
      for (auto& rec : v.records) {
        if (auto* f = std::get_if<journal::Finished>(&rec))
          failure = FailureBody{f->outcome.code, f->outcome.message};
        else
          journal(rec);
      }
      if (v.abort_worker && w)
        actions_.push_back(SendAbort{w->id, id, failure.code, failure.message});
      spdlog::info("durable call ended after the restart: {} request_id={} job_id={} node={}",
                   failure.message, id, call.job_id, call.node);
      finish(now, r, std::move(failure));
      requests_.erase(it);
      return std::nullopt;
    }
  }
}

void BrokerCore::expire_recovering(TimePoint now,
                                   std::unordered_map<std::uint64_t, Request>::iterator it) {
  Request& r = it->second;
  finish(now, r, FailureBody{ErrorCode::Timeout,
                             fmt::format("timed out after {} ms waiting for worker '{}' to come "
                                         "back after a musterd restart",
                                         std::chrono::duration_cast<Millis>(now - r.submitted).count(),
                                         r.worker_id)});
  if (auto rc = recovering_.find(r.id); rc != recovering_.end()) rc->second.finished = true;
  requests_.erase(it);
}

}  // namespace muster::broker
