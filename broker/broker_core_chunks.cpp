// broker_core_chunks.cpp — the core's side of chunked values (PROTOCOL.md §7.9): a caller's
// input chunk forwarded to the worker and a worker's output chunk to the caller, each within the
// grant the receiver gave; the receivers' Credits clamped and forwarded; grants published again
// on the worker's Pong. The rules are CallChunks' (stream_chunks.hpp); this file applies its
// verdicts to requests, workers and callers.
// Must never: hold a chunk (each is forwarded in the turn it came), check a value's size or
// sha256 (the receiving SDK does), or send anything for a call after its terminal reply.
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "broker_core.hpp"

namespace muster::broker {

CallChunks& BrokerCore::chunks_of(Request& r) const {
  if (!r.chunks) r.chunks = std::make_unique<CallChunks>(r.chunk_window, config_.streams.max_bytes);
  return *r.chunks;
}

void BrokerCore::on_client_chunk(TimePoint now, const Peer& peer, ChunkEvent ev, const std::string* workspace) {
  auto k = by_client_.find(client_key(peer, ev.client_request_id));
  if (k == by_client_.end()) return;  // over (its reply went) or never was: dropped, unanswered
  auto it = requests_.find(k->second);
  if (it == requests_.end()) return;
  Request& r = it->second;
  if (workspace && r.caller->workspace != *workspace) return;  // as an id not open
  const std::uint64_t size = ev.data.bytes.size();
  // Queued: no worker has granted anything yet, so the chunk is beyond the credit (0 bytes).
  ChunkVerdict verdict = chunks_of(r).on_chunk(ChunkSide::Caller, ev.stream, ev.offset, size);
  if (verdict == ChunkVerdict::Forward && r.state == RequestState::Dispatched) {
    actions_.push_back(SendChunk{r.worker_id, r.id, ev.stream, ev.offset, std::move(ev.data)});
    return;
  }
  std::string why = r.chunks->describe(verdict, ChunkSide::Caller, ev.stream, ev.offset, size);
  spdlog::warn("caller broke the chunk protocol: {} request_id={} node={}", why, r.id, r.node->second);
  if (r.state == RequestState::Dispatched) {
    actions_.push_back(SendAbort{r.worker_id, r.id, ErrorCode::BadMessage, "the caller broke the chunk protocol"});
    finish(now, r, FailureBody{ErrorCode::BadMessage, why});
    r.state = RequestState::Orphaned;  // keeps the worker's slot until it answers or drops it (§7.4)
  } else {  // not with a worker yet (queued, or a durable call recovering): off its queue
    if (r.state == RequestState::Queued) remove_from_queue(r);
    finish(now, r, FailureBody{ErrorCode::BadMessage, why});
    requests_.erase(it);
  }
}

void BrokerCore::on_worker_chunk(TimePoint now, const Peer& peer, const Caller& who, const std::string& worker_id,
                                 std::uint64_t request_id, std::uint32_t stream, std::uint64_t offset,
                                 Payload data) {
  WorkerEntry* w = worker_for(peer, who, worker_id);
  if (!w) return;
  w->last_heard = now;
  Request* found = dispatched_to(*w, request_id);
  if (!found) {
    if (!w->no_answer_acks) reply_worker(peer, AckReply{true});  // over or not its own: late
    return;
  }
  Request& r = *found;
  const std::uint64_t size = data.bytes.size();
  ChunkVerdict verdict = chunks_of(r).on_chunk(ChunkSide::Worker, stream, offset, size);
  if (verdict == ChunkVerdict::Forward) {
    reply_client(r, ChunkBody{stream, offset, std::move(data)});
    if (!w->no_answer_acks) reply_worker(peer, AckReply{false});
    return;
  }
  std::string why = r.chunks->describe(verdict, ChunkSide::Worker, stream, offset, size);
  fail_broken_stream(now, peer, *w, r, verdict == ChunkVerdict::Gap, "chunk", why);
}

void BrokerCore::on_worker_credit(TimePoint now, const Peer& peer, const Caller& who, const std::string& worker_id,
                                  std::uint64_t request_id, std::uint32_t stream, std::uint64_t bytes) {
  WorkerEntry* w = worker_for(peer, who, worker_id);
  if (!w) return;
  w->last_heard = now;
  if (!w->no_answer_acks) reply_worker(peer, AckReply{false});
  Request* r = dispatched_to(*w, request_id);
  if (!r) return;  // over or not its own: ignored
  if (auto grant = chunks_of(*r).on_credit(ChunkSide::Worker, stream, bytes))
    reply_client(*r, CreditBody{stream, *grant});
}

void BrokerCore::on_chunk_credit(Request& r, const CreditEvent& ev) {
  auto grant = chunks_of(r).on_credit(ChunkSide::Caller, ev.stream, ev.bytes);
  // A queued call's worker starts with the initial window; nothing was forwarded, so the clamp
  // leaves no more than that window to grant (the grant is kept and published on dispatch's
  // first Pong, by republish_chunk_credits, if it is above it).
  if (grant && r.state == RequestState::Dispatched)
    actions_.push_back(SendCredit{r.worker_id, r.id, ev.stream, 0, *grant});
}

void BrokerCore::republish_chunk_credits(const WorkerEntry& w) {
  for (auto id : w.holding) {
    auto it = requests_.find(id);
    if (it == requests_.end() || it->second.state != RequestState::Dispatched || !it->second.chunks) continue;
    for (auto [stream, bytes] : it->second.chunks->republish())
      actions_.push_back(SendCredit{w.id, id, stream, 0, bytes});
  }
}

}  // namespace muster::broker
