// broker_core_resume.cpp — the core's rules for a caller's reconnect (docs/PROTOCOL.md §8.3):
// a resumable call's token, its terminal reply kept after it was sent, and CallResume binding
// the caller's calls to its new connection, their streams going on from what it received.
// Part of BrokerCore (broker_core.hpp has the contract); the tokens and kept replies are
// ResumableCalls' (resumable_calls.hpp). Durable JobResume (broker_core_jobs.cpp) is the model.
// Must never: bind or answer a call of another caller as anything but "no such call", send a
// kept reply but in answer to a CallResume, or cost a call that is not resumable anything.
#include <algorithm>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "broker_core.hpp"

namespace muster::broker {

namespace {

// The offset the caller says it has of output `stream` (a stream it does not list: 0, C4).
std::uint64_t offset_received(const CallRefEvent& ref, std::uint32_t stream) {
  for (auto& [s, offset] : ref.outputs)
    if (s == stream) return offset;
  return 0;
}

// What the caller lacks of what musterd forwarded ("" when nothing): items, output bytes.
std::string what_was_lost(std::uint64_t items_forwarded,
                          const std::vector<std::pair<std::uint32_t, std::uint64_t>>& outputs_forwarded,
                          const CallRefEvent& ref) {
  std::vector<std::string> lost;
  if (items_forwarded > ref.items_received)
    lost.push_back(fmt::format("{} item(s)", items_forwarded - ref.items_received));
  for (auto& [stream, next] : outputs_forwarded)
    if (auto have = offset_received(ref, stream); have < next)
      lost.push_back(fmt::format("{} byte(s) of output stream {}", next - have, stream));
  return fmt::format("{}", fmt::join(lost, " and "));
}

FailureBody no_such_call() {
  return FailureBody{ErrorCode::Unavailable,
                     "no such call (it ended more than --resume-keep-ms ago, or another daemon instance "
                     "accepted it)"};
}

}  // namespace

void BrokerCore::keep_for_resume(TimePoint now, const Request& r,
                                 const std::variant<ResultBody, FailureBody>& terminal) {
  KeptCallReply kept;
  kept.caller = r.caller;
  kept.reply = terminal;
  if (r.stream) kept.items_forwarded = r.stream->forwarded_items();
  if (r.chunks) kept.outputs_forwarded = r.chunks->forwarded(ChunkSide::Worker);
  resumable_.keep(r.call_token, std::move(kept), now);
}

BrokerCore::Request* BrokerCore::open_resumable(std::uint64_t token, const Caller& who) {
  auto id = resumable_.request_of(token);
  if (!id) return nullptr;
  auto it = requests_.find(*id);
  if (it == requests_.end() || it->second.answered || it->second.call_token != token) return nullptr;
  return same_caller(*it->second.caller, who) ? &it->second : nullptr;
}

void BrokerCore::on_call_resume(TimePoint now, const Peer& peer, const Caller& who, const CallResumeEvent& ev) {
  if (refused_as_too_many(peer, ev.request_id, ev.calls.size(), "CallResume", "calls")) return;
  std::size_t bound = 0, redelivered = 0, lost = 0, unknown = 0;
  const std::string lane = client_lane(peer);
  for (auto& ref : ev.calls) {
    Request* open = open_resumable(ref.call_token, who);
    if (request_id_taken(client_key(lane, ref.request_id), lane, ref.request_id, open ? open->id : 0)) {
      answer_client(peer, ref.request_id,
                    FailureBody{ErrorCode::InvalidRequest,
                                fmt::format("request id {} is already open on this connection; resume the "
                                            "call under a new one", ref.request_id)});
      continue;
    }
    if (open) {
      rebind(*open, peer, ref.request_id, false);
      reply_client(*open, AcceptedBody{open->state == RequestState::Queued, 0, open->call_token});
      resume_streams(now, *open, ref);
      ++bound;
    } else if (auto kept = resumable_.take(ref.call_token, who, now)) {
      std::string missing = what_was_lost(kept->items_forwarded, kept->outputs_forwarded, ref);
      if (!missing.empty()) {
        answer_client(peer, ref.request_id,
                      FailureBody{ErrorCode::Unavailable, missing + " were lost in the reconnect"});
        ++lost;
        continue;
      }
      if (auto* result = std::get_if<ResultBody>(&kept->reply)) result->payload_frames = false;  // inline
      std::visit([&](auto& reply) { actions_.push_back(ReplyToClient{peer, ref.request_id, std::move(reply)}); },
                 kept->reply);
      ++redelivered;
    } else {
      answer_client(peer, ref.request_id, no_such_call());
      ++unknown;
    }
  }
  spdlog::info("calls resumed: {} open bound to the caller's connection, {} kept repl(ies) delivered, {} lost "
               "in the reconnect, {} unknown caller={} workspace={}",
               bound, redelivered, lost, unknown, who.name, who.workspace);
}

void BrokerCore::resume_streams(TimePoint now, Request& r, const CallRefEvent& ref) {
  // C3: items forwarded to the broken connection and never received cannot be sent again.
  if (r.stream && r.stream->forwarded_items() > ref.items_received) {
    auto why = fmt::format("{} item(s) were lost in the reconnect",
                           r.stream->forwarded_items() - ref.items_received);
    spdlog::info("resumed call ends: {} request_id={} node={}", why, r.id, r.node->second);
    return cancel_request(now, requests_.find(r.id), why, ErrorCode::Unavailable);
  }
  if (!r.chunks) return;
  // C4, outputs: each stream goes back to what the caller has, as on its resume Credit (R5).
  for (auto& [stream, next] : r.chunks->forwarded(ChunkSide::Worker))
    if (auto have = offset_received(ref, stream); have < next)
      on_chunk_credit(r, CreditEvent{ref.request_id, stream, 0, have + r.chunk_window, true, have});
  for (auto& [stream, have] : ref.outputs)
    if (have > r.chunks->next_offset(stream))
      spdlog::info("resumed call: the caller has {} bytes of output stream {}, musterd forwarded {}: ignored "
                   "request_id={}", have, stream, r.chunks->next_offset(stream), r.id);
  // C4, inputs: the caller goes back to what musterd forwarded (chunks on their way were lost).
  for (auto& [stream, next] : r.chunks->forwarded(ChunkSide::Caller))
    if (auto credit = r.chunks->resume_input(stream))
      reply_client(r, CreditBody{stream, credit->bytes, true, credit->offset});
}

}  // namespace muster::broker
