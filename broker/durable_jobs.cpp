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
  *open_.try_emplace(job).first = std::move(open);
}

const OpenJob* DurableJobs::open(journal::JobId job, const std::string& workspace) const {
  const OpenJob* open = open_.find(job);
  return open && open->workspace == workspace ? open : nullptr;
}

void DurableJobs::keep(KeptJob&& kept) {
  KeptJob& slot = keep(kept.job_id, kept.submitted);
  kept.submitted = slot.submitted;
  slot = std::move(kept);
}

KeptJob& DurableJobs::keep(journal::JobId job, journal::WallTime submitted) {
  if (OpenJob* open = open_.find(job)) {
    submitted = open->submitted;
    open_.erase(open);
  }
  const auto [at, added] = kept_.try_emplace(job);
  if (added) {
    if (free_slots_.empty()) {
      at->slot = static_cast<std::uint32_t>(kept_slots_.size());
      kept_slots_.emplace_back();
    } else {
      at->slot = free_slots_.back();
      free_slots_.pop_back();
    }
  }
  KeptJob& kept = kept_slots_[at->slot];
  kept.job_id = job;
  kept.submitted = submitted;
  return kept;
}

const KeptJob* DurableJobs::find_kept(journal::JobId job) const {
  const KeptAt* at = kept_.find(job);
  return at ? &kept_slots_[at->slot] : nullptr;
}

void DurableJobs::release(std::uint32_t slot) {
  kept_slots_[slot].outcome = {};  // its outputs' buffer is released now (the strings are reused)
  free_slots_.push_back(slot);
}

const KeptJob* DurableJobs::kept(journal::JobId job, const std::string& workspace,
                                 journal::WallTime now) const {
  const KeptJob* kept = find_kept(job);
  return kept && kept->workspace == workspace && kept->expires > now ? kept : nullptr;
}

std::optional<std::uint64_t> DurableJobs::forget(journal::JobId job, const std::string& workspace) {
  KeptAt* at = kept_.find(job);
  if (!at) return std::nullopt;
  const KeptJob& kept = kept_slots_[at->slot];
  if (kept.workspace != workspace) return std::nullopt;
  const std::uint64_t bytes = kept.outcome.outputs.bytes.size() + kept.outcome.message.size();
  release(at->slot);
  kept_.erase(at);
  return bytes;
}

std::size_t DurableJobs::expire(journal::WallTime now) {
  return kept_.erase_if([&](journal::JobId, const KeptAt& at) {
    if (kept_slots_[at.slot].expires > now) return false;
    release(at.slot);
    return true;
  });
}

std::vector<journal::JobId> DurableJobs::ids_of(const std::string& workspace, journal::WallTime now,
                                                journal::JobId after, std::size_t max) const {
  // Both indexes are in job order, and a job is in one of them at most: take the matching ids
  // of each from `after` on, up to `max` of each, then the first `max` of both in job order.
  std::vector<journal::JobId> ids;
  if (max == 0) return ids;
  open_.each_after(after, [&](journal::JobId job, const OpenJob& open) {
    if (open.workspace == workspace) ids.push_back(job);
    return ids.size() < max;
  });
  const std::size_t opens = ids.size();
  kept_.each_after(after, [&](journal::JobId job, const KeptAt& at) {
    const KeptJob& kept = kept_slots_[at.slot];
    if (kept.workspace == workspace && kept.expires > now) ids.push_back(job);
    return ids.size() - opens < max;
  });
  std::inplace_merge(ids.begin(), ids.begin() + static_cast<std::ptrdiff_t>(opens), ids.end());
  if (ids.size() > max) ids.resize(max);
  return ids;
}

}  // namespace muster::broker
