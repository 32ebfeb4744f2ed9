// durable_jobs.hpp — the core's index of durable calls by job id (docs/DURABILITY.md §6): which
// open request carries each open job, and the terminal outcome of each finished one, kept for
// its caller until it acknowledges it (JobAck) or the outcome's time runs out (result_ttl).
// Owns: those two maps, the workspace check every job lookup passes, and the outcomes' expiry
// by wall clock. The journal holds the same finished calls (Finished records); this is the
// copy the core answers from without reading the journal.
// The maps are JobIndexes (job_index.hpp), not std::maps: no node allocated and freed per call
// (docs/DURABILITY.md §10 "Session 13"). Job ids grow, so an open job is appended at the end;
// calls finish only roughly in job order, so a kept outcome is often inserted a little before
// the end: the index holds its slot in a vector of outcomes (a forgotten one's slot is reused),
// so that such an insert moves small entries, not outcomes.
// Must never: decide a call's fate (BrokerCore does), emit journal records, read a clock (the
// wall time is passed in), or touch a socket.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "events.hpp"
#include "job_index.hpp"
#include "journal.hpp"

namespace muster::broker {

// A finished durable call: what JobGet/JobList/JobResume answer with until it is acknowledged.
struct KeptJob {
  journal::JobId job_id = 0;
  std::string node, workspace;
  journal::WallTime submitted{}, finished{}, expires{};
  std::string worker_id;  // the worker that ran it last ("" when none did)
  std::uint32_t attempts = 0;
  journal::Outcome outcome;
  // The terminal reply to a caller, under its `request_id`, with the job id.
  ClientReplyBody reply() const;
  JobInfoBody info() const;
};

// An open durable call: the core's request that carries it and when it was submitted.
struct OpenJob {
  std::uint64_t request_id = 0;  // BrokerCore's request id
  std::string workspace;
  journal::WallTime submitted{};
};

class DurableJobs {
 public:
  // ---- open jobs ----
  void opened(journal::JobId job, OpenJob&& open);
  void closed(journal::JobId job) {
    if (OpenJob* open = open_.find(job)) open_.erase(open);
  }
  // The open job `job` of `workspace`; nullptr when there is none (another workspace's too).
  const OpenJob* open(journal::JobId job, const std::string& workspace) const;

  // ---- finished jobs ----
  // Keeps `kept` (replacing an outcome kept for the same job) and closes the job if it was
  // open: its `submitted` is then the open job's (one lookup for both).
  void keep(KeptJob&& kept);
  // The same, built in place: the entry kept for `job`, with its job id set and `submitted`
  // (the open job's when it was open); the caller sets every other field (a reused slot holds
  // an earlier outcome's strings, their storage kept). No KeptJob built and moved in: ≈ 200
  // instructions a durable call (docs/DURABILITY.md §10 "Session 14").
  KeptJob& keep(journal::JobId job, journal::WallTime submitted);
  // The kept outcome of `job` in `workspace` whose time has not run out by `now`.
  const KeptJob* kept(journal::JobId job, const std::string& workspace, journal::WallTime now) const;
  // Forgets an acknowledged outcome; returns its bytes (outputs + message) if it was kept.
  std::optional<std::uint64_t> forget(journal::JobId job, const std::string& workspace);
  // Forgets every outcome whose `expires` is at or before `now` (as Journal::expire(now)
  // does in the same turn); returns how many.
  std::size_t expire(journal::WallTime now);

  // The open job ids of `workspace` and its kept outcomes not expired by `now`, by job id
  // (= oldest first): the first `max` of those above `after`.
  std::vector<journal::JobId> ids_of(const std::string& workspace, journal::WallTime now,
                                     journal::JobId after = 0,
                                     std::size_t max = static_cast<std::size_t>(-1)) const;

  std::size_t open_count() const { return open_.size(); }
  std::size_t kept_count() const { return kept_.size(); }

 private:
  struct KeptAt {
    std::uint32_t slot = 0;  // in kept_slots_
  };
  // The kept outcome of `job`, nullptr when none is kept.
  const KeptJob* find_kept(journal::JobId job) const;
  void release(std::uint32_t slot);  // a forgotten outcome's slot

  JobIndex<OpenJob> open_;
  JobIndex<KeptAt> kept_;
  std::vector<KeptJob> kept_slots_;
  std::vector<std::uint32_t> free_slots_;
};

// Wall time as JobInfo carries it: ms since the Unix epoch (0 for an unset time).
std::uint64_t wall_ms(journal::WallTime t);

}  // namespace muster::broker
