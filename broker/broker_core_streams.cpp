// broker_core_streams.cpp — the core's side of item streams (PROTOCOL.md §7.8): a worker's Item
// checked against the credit and forwarded, a caller's Credit clamped and published, grants
// published again on the worker's Pong. The rules themselves are ItemStream's
// (stream_credit.hpp); this file applies its verdicts to requests, workers and callers.
// Must never: hold an item (each is forwarded in the turn it came), or send anything for a call
// after its terminal reply.
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "broker_core.hpp"

namespace muster::broker {

void BrokerCore::on_item(TimePoint now, const Peer& peer, const Caller& who, const std::string& worker_id,
                         std::uint64_t request_id, std::uint64_t seq, Payload values) {
  WorkerEntry* w = worker_for(peer, who, worker_id);
  if (!w) return;
  w->last_heard = now;
  Request* found = dispatched_to(*w, request_id);
  if (!found) {
    // Over (answered, timed out, cancelled) or not this worker's: dropped, as a late answer.
    if (!w->no_answer_acks) reply_worker(peer, AckReply{true});
    return;
  }
  Request& r = *found;
  const std::uint64_t size = values.bytes.size();
  ItemVerdict verdict = ItemVerdict::OverCredit;
  std::string why;
  if (!r.stream) {
    why = fmt::format("the worker sent item {} of a call whose caller reads no items "
                      "(WorkRequest.stream_window_items 0)", seq);
  } else {
    verdict = r.stream->on_item(seq, size);
    if (verdict != ItemVerdict::Forward) why = r.stream->describe(verdict, seq, size);
  }
  if (verdict == ItemVerdict::Forward) {
    reply_client(r, ItemBody{seq, std::move(values)});
    if (!w->no_answer_acks) reply_worker(peer, AckReply{false});
    // The caller may have granted beyond what the worker could be given so far (one window past
    // what was forwarded): more of it, now that this item was forwarded.
    if (auto grant = r.stream->regrant()) actions_.push_back(SendCredit{w->id, r.id, 0, grant->items, grant->bytes});
    return;
  }
  fail_broken_stream(now, peer, *w, r, verdict == ItemVerdict::Gap, "stream", why);
}

void BrokerCore::on_credit(TimePoint, const Peer& peer, const CreditEvent& ev, const std::string* workspace) {
  auto k = by_client_.find(client_key(peer, ev.client_request_id));
  if (k == by_client_.end()) return;  // not open (over, or never was): ignored
  auto it = requests_.find(k->second);
  if (it == requests_.end()) return;
  Request& r = it->second;
  if (ev.stream != 0) {  // a chunked output stream's credit (broker_core_chunks.cpp, §7.9)
    if (!workspace || r.caller->workspace == *workspace) on_chunk_credit(r, ev);
    return;
  }
  if (!r.stream || ev.resume || (workspace && r.caller->workspace != *workspace)) return;  // items: no resumption
  auto grant = r.stream->on_credit(ev.items, ev.bytes);
  // A queued call's worker gets the window with its WorkRequest; nothing was forwarded yet, so
  // the clamp leaves no more to grant than that window.
  if (grant && r.state == RequestState::Dispatched)
    actions_.push_back(SendCredit{r.worker_id, r.id, 0, grant->items, grant->bytes});
}

void BrokerCore::republish_credits(const WorkerEntry& w) {
  for (auto id : w.holding) {
    auto it = requests_.find(id);
    if (it == requests_.end() || it->second.state != RequestState::Dispatched || !it->second.stream) continue;
    if (auto grant = it->second.stream->republish())
      actions_.push_back(SendCredit{w.id, id, 0, grant->items, grant->bytes});
  }
}

void BrokerCore::fail_broken_stream(TimePoint now, const Peer& peer, WorkerEntry& w, Request& r, bool gap,
                                    std::string_view what, const std::string& why) {
  const std::uint64_t request_id = r.id;
  if (gap) {  // something between the worker and musterd was lost: the worker is not to blame
    spdlog::warn("{} of request {} broken: {} node={} worker_id={}", what, request_id, why, r.node->second, w.id);
    actions_.push_back(SendAbort{w.id, request_id, ErrorCode::WorkerLost, why});
    finish(now, r, FailureBody{ErrorCode::WorkerLost, fmt::format("worker '{}': {}", w.id, why)});
    if (!w.no_answer_acks) reply_worker(peer, AckReply{true});
  } else {
    spdlog::warn("worker broke the {} protocol: {} request_id={} node={} worker_id={}", what, why, request_id,
                 r.node->second, w.id);
    reply_worker(peer, RejectedReply{ErrorCode::BadMessage, why, false});
    actions_.push_back(SendAbort{w.id, request_id, ErrorCode::BadMessage, why});
    finish(now, r, FailureBody{ErrorCode::WorkerError,
                               fmt::format("worker '{}' broke the {} protocol: {}", w.id, what, why)});
  }
  r.state = RequestState::Orphaned;  // keeps the worker's slot until it answers or drops it (§7.4)
}

}  // namespace muster::broker
