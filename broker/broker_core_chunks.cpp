// broker_core_chunks.cpp — the core's side of chunked values (PROTOCOL.md §7.9): a caller's
// input chunk forwarded to the worker and a worker's output chunk to the caller, each within the
// grant the receiver gave; the receivers' Credits clamped and forwarded; grants published again
// on the worker's Pong; resumption (§7.9 R5-R8): resume Credits forwarded with their offset, a
// worker's gap answered by a resume Credit of the daemon's own, a worker's Result held while a
// stream it names is short. The rules are CallChunks' (stream_chunks.hpp); this file applies
// its verdicts to requests, workers and callers.
// Must never: hold a chunk (each is forwarded in the turn it came), check a value's size or
// sha256 (the receiving SDK does), or send anything for a call after its terminal reply.
#include <algorithm>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "broker_core.hpp"
#include "input_check.hpp"

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
  if (verdict == ChunkVerdict::Drop) {  // sent before the caller went back, or past a loss reported (R6)
    spdlog::debug("{} request_id={}", r.chunks->describe(verdict, ChunkSide::Caller, ev.stream, ev.offset, size), r.id);
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
  switch (verdict) {
    case ChunkVerdict::Forward:
      reply_client(r, ChunkBody{stream, offset, std::move(data)});
      if (!w->no_answer_acks) reply_worker(peer, AckReply{false});
      if (r.held_outputs) forward_held_result(now, *w, r);
      return;
    case ChunkVerdict::AskResume:  // chunks were lost between the worker and musterd (R7)
      spdlog::info("{}: asking the worker to resume request_id={} node={} worker_id={}",
                   r.chunks->describe(verdict, ChunkSide::Worker, stream, offset, size), r.id, r.node->second, w->id);
      ask_output_resume(r, stream);
      [[fallthrough]];
    case ChunkVerdict::Drop:  // sent before the worker went back, or past a loss already reported (R6)
      if (verdict == ChunkVerdict::Drop)
        spdlog::debug("{} request_id={}", r.chunks->describe(verdict, ChunkSide::Worker, stream, offset, size), r.id);
      if (!w->no_answer_acks) reply_worker(peer, AckReply{false});
      return;
    default: break;
  }
  std::string why = r.chunks->describe(verdict, ChunkSide::Worker, stream, offset, size);
  fail_broken_stream(now, peer, *w, r, false, "chunk", why);
}

void BrokerCore::on_worker_credit(TimePoint now, const Peer& peer, const Caller& who, const std::string& worker_id,
                                  std::uint64_t request_id, std::uint32_t stream, std::uint64_t bytes, bool resume,
                                  std::uint64_t resume_offset) {
  WorkerEntry* w = worker_for(peer, who, worker_id);
  if (!w) return;
  w->last_heard = now;
  if (!w->no_answer_acks) reply_worker(peer, AckReply{false});
  Request* r = dispatched_to(*w, request_id);
  if (!r) return;  // over or not its own: ignored
  if (!resume) {
    if (auto grant = chunks_of(*r).on_credit(ChunkSide::Worker, stream, bytes))
      reply_client(*r, CreditBody{stream, *grant});
    return;
  }
  // R5: the worker lost input chunks; the caller goes back to what the worker has.
  if (auto grant = chunks_of(*r).on_resume_credit(ChunkSide::Worker, stream, bytes, resume_offset))
    reply_client(*r, CreditBody{stream, *grant, true, resume_offset});
  else
    spdlog::info("worker's resume credit of stream {} at offset {} ignored ({} bytes of it forwarded, or not a "
                 "stream the worker grants) request_id={} worker_id={}",
                 stream, resume_offset, r->chunks->next_offset(stream), r->id, w->id);
}

void BrokerCore::on_chunk_credit(Request& r, const CreditEvent& ev) {
  if (ev.resume) {  // R5: the caller lost output chunks; the worker goes back to what the caller has
    auto grant = chunks_of(r).on_resume_credit(ChunkSide::Caller, ev.stream, ev.bytes, ev.resume_offset);
    if (!grant)
      spdlog::info("caller's resume credit of stream {} at offset {} ignored ({} bytes of it forwarded, or not a "
                   "stream the caller grants) request_id={}",
                   ev.stream, ev.resume_offset, r.chunks->next_offset(ev.stream), r.id);
    else if (r.state == RequestState::Dispatched)
      actions_.push_back(SendCredit{r.worker_id, r.id, ev.stream, 0, *grant, true, ev.resume_offset});
    return;
  }
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

void BrokerCore::ask_output_resume(Request& r, std::uint32_t stream) {
  if (auto credit = chunks_of(r).resume_output(stream))
    actions_.push_back(SendCredit{r.worker_id, r.id, stream, 0, credit->bytes, true, credit->offset});
}

void BrokerCore::resume_outputs_after_reattach(WorkerEntry& w) {
  w.resume_outputs_on_confirm = false;
  for (auto id : w.holding) {
    auto it = requests_.find(id);
    if (it == requests_.end() || it->second.state != RequestState::Dispatched || it->second.chunk_window == 0)
      continue;
    for (auto stream : chunks_of(it->second).outputs_to_resume()) ask_output_resume(it->second, stream);
  }
}

bool BrokerCore::hold_result(Request& r, const Payload& outputs) {
  if (r.chunk_window == 0) return false;  // no chunked outputs: nothing to wait for
  std::vector<std::pair<std::uint32_t, std::uint64_t>> short_streams;
  for (auto ref : chunked_refs(outputs.bytes, outputs.verified_values)) {
    if (chunks_of(r).forwarded_whole(ref.stream, ref.size)) continue;
    if (!r.chunks->carries_output(ref.stream)) return false;  // it can never come: the caller refuses the Result
    short_streams.emplace_back(ref.stream, ref.size);
  }
  if (short_streams.empty()) return false;
  for (auto [stream, size] : short_streams) {
    spdlog::info("result held: output stream {} has {} of its {} bytes; asking the worker to resume request_id={} "
                 "node={} worker_id={}", stream, r.chunks->next_offset(stream), size, r.id, r.node->second,
                 r.worker_id);
    ask_output_resume(r, stream);
  }
  r.held_outputs = outputs;
  r.held_streams = std::move(short_streams);
  return true;
}

void BrokerCore::forward_held_result(TimePoint now, WorkerEntry& w, Request& r) {
  if (!std::all_of(r.held_streams.begin(), r.held_streams.end(),
                   [&](auto& s) { return r.chunks->forwarded_whole(s.first, s.second); }))
    return;
  const std::uint64_t id = r.id;
  Payload outputs = std::move(*r.held_outputs);
  finish_answered(now, r, ResultBody{std::move(outputs)});
  requests_.erase(id);
  release(w, id, now);
}

}  // namespace muster::broker
