// durable_jobs.cpp — see durable_jobs.hpp.
#include "durable_jobs.hpp"

#include <algorithm>

namespace muster::broker {

std::uint64_t wall_ms(journal::WallTime t) {
  auto ms = t.time_since_epoch().count();
  return ms > 0 ? static_cast<std::uint64_t>(ms) : 0;
}

ClientReplyBody KeptJob::reply() const {
  if (outcome.ok()) return ResultBody{outcome.outputs, false, job_id};
  return FailureBody{outcome.code, outcome.message, job_id};
}

JobInfoBody KeptJob::info() const {
  return JobInfoBody{job_id,    JobState::Finished, node,         workspace,         wall_ms(submitted),
                     worker_id, attempts,           outcome.code, wall_ms(finished)};
}

void DurableJobs::opened(journal::JobId job, OpenJob&& open) {
  // Job ids grow with every Submit: the usual one goes at the end, without a search.
  if (open_.empty() || open_.rbegin()->first < job)
    open_.emplace_hint(open_.end(), job, std::move(open));
  else
    open_.insert_or_assign(job, std::move(open));
}

const OpenJob* DurableJobs::open(journal::JobId job, const std::string& workspace) const {
  auto it = open_.find(job);
  return it != open_.end() && it->second.workspace == workspace ? &it->second : nullptr;
}

void DurableJobs::keep(KeptJob&& kept) {
  if (auto open = open_.find(kept.job_id); open != open_.end()) {
    kept.submitted = open->second.submitted;
    open_.erase(open);
  }
  const auto id = kept.job_id;
  // Calls finish roughly in job order: the usual one goes at the end, without a search.
  if (kept_.empty() || kept_.rbegin()->first < id)
    kept_.emplace_hint(kept_.end(), id, std::move(kept));
  else
    kept_.insert_or_assign(id, std::move(kept));
}

const KeptJob* DurableJobs::kept(journal::JobId job, const std::string& workspace,
                                 journal::WallTime now) const {
  auto it = kept_.find(job);
  if (it == kept_.end() || it->second.workspace != workspace || it->second.expires <= now) return nullptr;
  return &it->second;
}

std::optional<std::uint64_t> DurableJobs::forget(journal::JobId job, const std::string& workspace) {
  auto it = kept_.find(job);
  if (it == kept_.end() || it->second.workspace != workspace) return std::nullopt;
  std::uint64_t bytes = it->second.outcome.outputs.bytes.size() + it->second.outcome.message.size();
  kept_.erase(it);
  return bytes;
}

std::size_t DurableJobs::expire(journal::WallTime now) {
  return std::erase_if(kept_, [&](const auto& entry) { return entry.second.expires <= now; });
}

std::vector<journal::JobId> DurableJobs::ids_of(const std::string& workspace, journal::WallTime now,
                                                journal::JobId after, std::size_t max) const {
  // Both maps are in job order: merge them from `after` on, up to `max`.
  std::vector<journal::JobId> ids;
  auto o = open_.upper_bound(after);
  auto k = kept_.upper_bound(after);
  auto skip = [&] {
    while (o != open_.end() && o->second.workspace != workspace) ++o;
    while (k != kept_.end() && (k->second.workspace != workspace || k->second.expires <= now)) ++k;
  };
  for (skip(); ids.size() < max && (o != open_.end() || k != kept_.end()); skip()) {
    if (k == kept_.end() || (o != open_.end() && o->first < k->first)) ids.push_back((o++)->first);
    else ids.push_back((k++)->first);
  }
  return ids;
}

}  // namespace muster::broker
