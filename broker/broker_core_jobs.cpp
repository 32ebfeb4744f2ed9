// broker_core_jobs.cpp — the core's rules for callers of durable calls (docs/DURABILITY.md §6):
// resume after a reconnect, acknowledge, get, list and cancel a job, and the outcomes kept for
// them. Part of BrokerCore (broker_core.hpp has the contract); in its own file because these
// rules only read and rebind requests, they never dispatch or time them.
// Must never: answer a job of another workspace as anything but "no such job", or journal an
// Acked for an outcome the core no longer keeps (the journal would refuse it and musterd stop).
#include <algorithm>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "broker_core.hpp"
#include "journal_recovery.hpp"

namespace muster::broker {

void BrokerCore::answer_client(const Peer& peer, std::uint64_t request_id, ClientReplyBody body) {
  actions_.push_back(ReplyToClient{peer, request_id, std::move(body), true});
}

void BrokerCore::no_such_job(const Peer& peer, std::uint64_t request_id, std::uint64_t job_id) {
  answer_client(peer, request_id,
                FailureBody{ErrorCode::InvalidRequest,
                            fmt::format("no such job {} (unknown, expired or acknowledged)", job_id)});
}

bool BrokerCore::node_is_durable(const std::string& workspace, const std::string& node) const {
  const NodeEntry* entry = registry_.node(workspace, node);  // (no NodeKey copied: asked per Submit)
  return entry && entry->spec.durable;
}

JobInfoBody BrokerCore::job_info(const Request& r, const OpenJob& open) const {
  JobInfoBody info;
  info.job_id = r.job_id;
  info.state = r.state == RequestState::Dispatched   ? JobState::Running
               : r.state == RequestState::Recovering ? JobState::Recovering
                                                     : JobState::Queued;
  info.node = r.node->second;
  info.workspace = r.caller->workspace;
  info.submitted_ms = wall_ms(open.submitted);
  info.worker_id = r.worker_id;
  info.attempts = r.attempts;
  return info;
}

void BrokerCore::keep_outcome(const Request& r, const journal::Outcome& outcome, journal::WallTime at) {
  KeptJob& kept = jobs_.keep(r.job_id, at);  // in place; `submitted` is the open job's
  kept.node = r.node->second;
  kept.workspace = r.caller->workspace;
  kept.finished = at;
  kept.expires = at + config_.result_ttl;
  kept.worker_id = r.worker_id;
  kept.attempts = r.attempts;
  kept.outcome = outcome;
}

void BrokerCore::keep_restored(const journal::Call& call, const journal::Verdict& verdict) {
  KeptJob kept;
  kept.job_id = call.job_id;
  kept.node = call.node;
  kept.workspace = call.caller.workspace;
  kept.submitted = call.submitted;
  kept.worker_id = call.worker_id;
  kept.attempts = call.attempts;
  if (verdict.decision == journal::Decision::Redeliver && call.outcome) {
    kept.outcome = *call.outcome;
    kept.finished = call.finished;
    kept.expires = call.expires;
    return jobs_.keep(std::move(kept));
  }
  // Failed by the restart itself (TIMEOUT, WORKER_LOST): its Finished record says how.
  for (auto& record : verdict.records)
    if (auto* finished = std::get_if<journal::Finished>(&record)) {
      kept.outcome = finished->outcome;
      kept.finished = finished->at;
      kept.expires = finished->expires;
      return jobs_.keep(std::move(kept));
    }
}

void BrokerCore::rebind(Request& r, const Peer& peer, std::uint64_t request_id, bool resumed_job) {
  // A queued request moves to the new connection's lane; a restored one keeps its place among
  // the restored calls (their job order, whatever order their callers resume them in).
  const bool moves = r.state == RequestState::Queued && !r.restored_lane;
  NodeEntry* entry = moves ? registry_.node(*r.node) : nullptr;
  if (entry) entry->queue.erase(lane_of(r), r.id);
  by_client_.erase(client_key(*r.client, r.client_request_id));
  count_open(r, -1);
  r.client = clients_.get(peer);
  r.client_request_id = request_id;
  if (resumed_job) {
    r.want_progress = false;   // a resumed caller sees no progress (JobRef does not ask for it)
    r.payload_frames = false;  // nor did it say it takes outputs as a frame
  }
  by_client_.emplace(client_key(peer, request_id), r.id);
  count_open(r, +1);
  // Behind what the new connection has queued: resumed in job order, its jobs keep theirs.
  if (entry) entry->queue.push_back(lane_of(r), r.id);
}

bool BrokerCore::refused_as_too_many(const Peer& peer, std::uint64_t request_id, std::size_t refs,
                                     std::string_view message, std::string_view what) {
  if (!config_.max_client_outstanding || refs <= config_.max_client_outstanding) return false;
  on_bad_client_message(peer, request_id,
                        fmt::format("{} of {} {}: at most {} in one message (--max-client-outstanding)",
                                    message, refs, what, config_.max_client_outstanding),
                        ErrorCode::InvalidRequest);
  return true;
}

bool BrokerCore::request_id_taken(const std::string& key, const std::string& lane, std::uint64_t request_id,
                                  std::uint64_t except) const {
  auto held = by_client_.find(key);
  if (held != by_client_.end() && (except == 0 || held->second != except)) return true;
  return watchers_.is_open(lane, request_id);
}

void BrokerCore::on_job_resume(TimePoint now, const Peer& peer, const Caller& who,
                               const JobResumeEvent& ev) {
  if (refused_as_too_many(peer, ev.request_id, ev.jobs.size(), "JobResume", "jobs")) return;
  std::vector<JobRef> refs = ev.jobs;
  std::stable_sort(refs.begin(), refs.end(), [](auto& a, auto& b) { return a.job_id < b.job_id; });
  const auto at = wall(now);
  const std::string lane = client_lane(peer);
  std::size_t bound = 0, redelivered = 0, unknown = 0;
  for (auto& ref : refs) {
    const OpenJob* open = jobs_.open(ref.job_id, who.workspace);
    if (request_id_taken(client_key(lane, ref.request_id), lane, ref.request_id, open ? open->request_id : 0)) {
      answer_client(peer, ref.request_id,
                    FailureBody{ErrorCode::InvalidRequest,
                                fmt::format("request id {} is already open on this connection; "
                                            "resume job {} under a new one",
                                            ref.request_id, ref.job_id)});
      continue;
    }
    if (open) {
      Request& r = requests_.at(open->request_id);
      rebind(r, peer, ref.request_id);
      reply_client(r, AcceptedBody{r.state == RequestState::Queued, r.job_id});
      ++bound;
    } else if (const KeptJob* kept = jobs_.kept(ref.job_id, who.workspace, at)) {
      actions_.push_back(ReplyToClient{peer, ref.request_id, kept->reply()});
      ++redelivered;
    } else {
      no_such_job(peer, ref.request_id, ref.job_id);
      ++unknown;
    }
  }
  spdlog::info("jobs resumed: {} open bound to the caller's connection, {} outcome(s) delivered "
               "again, {} unknown workspace={}",
               bound, redelivered, unknown, who.workspace);
}

void BrokerCore::on_job_ack(TimePoint, const Caller& who, const JobAckEvent& ev) {
  for (auto job : ev.job_ids) {
    auto bytes = jobs_.forget(job, who.workspace);
    if (!bytes) continue;  // not kept (already acked, expired, open, unknown): nothing to do
    journal_bytes_ -= std::min(journal_bytes_, *bytes);
    journal(journal::Acked{job});
  }
}

void BrokerCore::on_job_get(TimePoint now, const Peer& peer, const Caller& who, const JobGetEvent& ev) {
  if (const OpenJob* open = jobs_.open(ev.job_id, who.workspace))
    return answer_client(peer, ev.request_id, job_info(requests_.at(open->request_id), *open));
  if (const KeptJob* kept = jobs_.kept(ev.job_id, who.workspace, wall(now)))
    return answer_client(peer, ev.request_id, kept->reply());
  no_such_job(peer, ev.request_id, ev.job_id);
}

void BrokerCore::on_job_list(TimePoint now, const Peer& peer, const Caller& who, const JobListEvent& ev) {
  const auto at = wall(now);
  const std::size_t limit = ev.limit == 0 || ev.limit > kJobListMax ? kJobListMax : ev.limit;
  auto ids = jobs_.ids_of(who.workspace, at, ev.after_job_id, limit + 1);  // one more: "more"
  JobInfoListBody list;
  list.more = ids.size() > limit;
  if (list.more) ids.pop_back();
  for (auto job : ids) {
    if (const OpenJob* open = jobs_.open(job, who.workspace))
      list.jobs.push_back(job_info(requests_.at(open->request_id), *open));
    else if (const KeptJob* kept = jobs_.kept(job, who.workspace, at))
      list.jobs.push_back(kept->info());
  }
  answer_client(peer, ev.request_id, std::move(list));
}

void BrokerCore::on_job_cancel(TimePoint now, const Peer& peer, const Caller& who,
                               const JobCancelEvent& ev) {
  if (const OpenJob* open = jobs_.open(ev.job_id, who.workspace)) {
    spdlog::info("job cancelled job_id={} by={} workspace={}", ev.job_id, who.name, who.workspace);
    cancel_request(now, requests_.find(open->request_id),
                   fmt::format("cancelled by {} (JobCancel)", who.name));
  }
  if (const KeptJob* kept = jobs_.kept(ev.job_id, who.workspace, wall(now)))
    return answer_client(peer, ev.request_id, kept->info());
  no_such_job(peer, ev.request_id, ev.job_id);
}

}  // namespace muster::broker
