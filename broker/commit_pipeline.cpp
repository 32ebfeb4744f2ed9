// commit_pipeline.cpp — see commit_pipeline.hpp.
#include "commit_pipeline.hpp"

#include <algorithm>
#include <iterator>
#include <type_traits>

namespace muster::broker {
namespace {

std::size_t aborts_in(const std::vector<Action>& actions) {
  return static_cast<std::size_t>(std::count_if(actions.begin(), actions.end(), [](const Action& a) {
    return std::holds_alternative<SendAbort>(a);
  }));
}

}  // namespace

void CommitPipeline::end_turn(std::vector<journal::JournalOp>&& ops, std::vector<Action>&& actions,
                              std::uint64_t core_bytes) {
  // The dispatches of this turn whose call was submitted in the batch not yet handed out.
  std::vector<std::uint64_t>& early = early_;
  early.clear();
  if (early_dispatch_) {
    for (auto& op : ops) {
      auto* record = std::get_if<journal::Record>(&op);
      if (!record) continue;
      if (auto* s = std::get_if<journal::Submitted>(record)) {
        pending_submitted_.try_emplace(s->call.job_id);
      } else if (auto* d = std::get_if<journal::Dispatched>(record)) {
        if (PendingCall* call = pending_submitted_.find(d->job_id)) {
          early.push_back(d->request_id);
          if (gather_ > Millis(0) && !call->awaiting) {
            call->awaiting = true;
            ++awaiting_;
          }
        }
      } else {
        // Finished, Requeued, Acked: the run has its answer
        const bool finished = std::holds_alternative<journal::Finished>(*record);
        if (!finished && awaiting_ == 0) continue;
        const journal::JobId job = std::visit(
            [](const auto& r) -> journal::JobId {
              if constexpr (std::is_same_v<std::decay_t<decltype(r)>, journal::Submitted>) return r.call.job_id;
              else return r.job_id;
            },
            *record);
        PendingCall* call = pending_submitted_.find(job);
        if (call && finished) ++stats_.finished_with_submitted;
        if (!call || !call->awaiting) continue;
        call->awaiting = false;
        --awaiting_;
        if (call->waited_for) {
          call->waited_for = false;
          --waited_for_;
        }
      }
    }
  }
  if (!ops.empty()) {
    pending_records_ += ops.size();
    pending_.push_back(std::move(ops));
    ops.clear();  // (a moved-from vector is empty in practice; this makes it so)
    if (!spares_.empty()) {
      ops.swap(spares_.back());
      spares_.pop_back();
    }
    pending_core_bytes_ = core_bytes;
  }
  // The last batch this turn's actions depend on: the one its records join, else the latest
  // one handed out, written or not, committed or not (its own actions may still be held:
  // order keeps this turn behind them).
  const Seq needs = !pending_.empty() ? next_seq_ : next_seq_ - 1;
  if (actions.empty()) return;
  if (!early.empty()) {  // (their records are pending: this turn waits for a commit)
    std::sort(early.begin(), early.end());
    release_early(actions, early);
    if (actions.empty()) return;
  }
  if (held_.empty() && needs <= confirmed_) {
    if (released_.empty())  // the usual turn: hand the vector over (the core gets back the empty one)
      released_.swap(actions);
    else
      released_.insert(released_.end(), std::make_move_iterator(actions.begin()),
                       std::make_move_iterator(actions.end()));
  } else if (!held_.empty() && held_.back().needs == needs) {
    held_aborts_ += aborts_in(actions);
    auto& back = held_.back().actions;  // same commit: one held entry, in order
    back.insert(back.end(), std::make_move_iterator(actions.begin()), std::make_move_iterator(actions.end()));
  } else {
    held_aborts_ += aborts_in(actions);
    held_.push_back(HeldTurn{needs, std::move(actions)});
  }
  actions.clear();
}

void CommitPipeline::release_early(std::vector<Action>& actions, const std::vector<std::uint64_t>& early) {
  // Workers with an Abort held before the WorkRequest: their early WorkRequests wait in order.
  std::unordered_set<std::string> aborting;
  if (held_aborts_ > 0)  // (rare: most turns hold none, and the held turns are not read)
    for (auto& turn : held_)
      for (auto& a : turn.actions)
        if (auto* abort = std::get_if<SendAbort>(&a)) aborting.insert(abort->worker_id);
  // The actions that stay are compacted in place, in order.
  std::size_t kept = 0;
  for (std::size_t i = 0; i < actions.size(); ++i) {
    Action& a = actions[i];
    if (auto* abort = std::get_if<SendAbort>(&a)) aborting.insert(abort->worker_id);
    auto* wr = std::get_if<SendWorkRequest>(&a);
    if (wr && !aborting.contains(wr->worker_id) &&
        std::binary_search(early.begin(), early.end(), wr->request_id)) {
      ++stats_.early_work_requests;
      released_.push_back(std::move(a));
      continue;
    }
    if (kept != i) actions[kept] = std::move(a);
    ++kept;
  }
  actions.erase(actions.begin() + static_cast<std::ptrdiff_t>(kept), actions.end());
}

std::optional<CommitPipeline::Batch> CommitPipeline::next_batch(TimePoint now, bool gather) {
  if (in_flight_ || pending_.empty()) return std::nullopt;
  if (gather && awaiting_ > 0) {
    if (!gathering_) {  // the batch could go now: wait for the answers awaited at this moment
      gathering_ = true;
      gather_since_ = now;
      pending_submitted_.for_each([](journal::JobId, PendingCall& call) { call.waited_for = call.awaiting; });
      waited_for_ = awaiting_;
      ++stats_.gathered;
    }
    if (waited_for_ > 0 && now < gather_since_ + gather_) return std::nullopt;
  }
  gathering_ = false;
  awaiting_ = waited_for_ = 0;
  Batch b{next_seq_++, std::move(pending_), pending_records_, pending_core_bytes_};
  pending_.clear();
  pending_records_ = 0;
  // The next batch likely holds as many turns: one allocation now, not one per doubling.
  pending_.reserve(b.turns.size());
  pending_submitted_.clear();
  ++stats_.batches;
  stats_.records += b.records;
  in_flight_ = b.seq;
  unconfirmed_.push_back({b.seq, now});
  return b;
}

void CommitPipeline::written(Seq seq) {
  if (in_flight_ && *in_flight_ <= seq) in_flight_.reset();
}

void CommitPipeline::committed(Seq seq) {
  written(seq);
  if (seq <= confirmed_) return;
  confirmed_ = seq;
  ++stats_.commits;
  while (!unconfirmed_.empty() && unconfirmed_.front().seq <= confirmed_) unconfirmed_.pop_front();
  release_ready();
}

void CommitPipeline::release_ready() {
  while (!held_.empty() && held_.front().needs <= confirmed_) {
    auto& actions = held_.front().actions;
    if (held_aborts_ > 0) held_aborts_ -= aborts_in(actions);
    if (released_.empty())
      released_.swap(actions);  // the held turn's actions as they are, not moved one by one
    else
      released_.insert(released_.end(), std::make_move_iterator(actions.begin()),
                       std::make_move_iterator(actions.end()));
    held_.pop_front();
  }
}

std::uint64_t CommitPipeline::resynced_bytes(std::uint64_t core_now, std::uint64_t journal_bytes,
                                             std::uint64_t batch_core_bytes) {
  const auto since = static_cast<std::int64_t>(core_now) - static_cast<std::int64_t>(batch_core_bytes);
  const auto sum = static_cast<std::int64_t>(journal_bytes) + since;
  return sum > 0 ? static_cast<std::uint64_t>(sum) : 0;
}

}  // namespace muster::broker
