// stream_chunks.cpp — the forwarding rules of a call's chunked streams (stream_chunks.hpp,
// PROTOCOL.md §7.9).
#include "stream_chunks.hpp"

#include <algorithm>

#include <fmt/format.h>

namespace muster::broker {

namespace {

// The side that sends chunks on `stream` (odd: the caller's inputs, even: the worker's outputs).
ChunkSide sender_of(std::uint32_t stream) { return stream % 2 == 1 ? ChunkSide::Caller : ChunkSide::Worker; }

std::string_view name(ChunkSide side) { return side == ChunkSide::Caller ? "caller" : "worker"; }

std::uint64_t saturating_add(std::uint64_t a, std::uint64_t b) { return a > UINT64_MAX - b ? UINT64_MAX : a + b; }

}  // namespace

std::uint64_t CallChunks::output_window_for(std::uint64_t requested, std::uint64_t max_window) {
  return std::min(requested, max_window);
}

CallChunks::CallChunks(std::uint64_t output_window, std::uint64_t max_window)
    : output_window_(std::min(output_window, max_window)), max_window_(max_window) {}

const CallChunks::Stream* CallChunks::find(std::uint32_t stream) const {
  auto it = std::find_if(streams_.begin(), streams_.end(), [&](const Stream& s) { return s.id == stream; });
  return it == streams_.end() ? nullptr : &*it;
}

bool CallChunks::room_for(std::uint32_t stream) const {
  auto same_parity = std::count_if(streams_.begin(), streams_.end(),
                                   [&](const Stream& s) { return is_output(s.id) == is_output(stream); });
  return static_cast<std::size_t>(same_parity) < kMaxChunkStreams;
}

CallChunks::Stream* CallChunks::find_or_add(std::uint32_t stream) {
  if (auto* s = find(stream)) return const_cast<Stream*>(s);
  if (!room_for(stream)) return nullptr;
  // An output stream starts with the caller's initial window; an input stream with nothing
  // until the worker grants credit.
  streams_.push_back(Stream{stream, is_output(stream) ? output_window_ : 0, 0});
  return &streams_.back();
}

CallChunks::Stream* CallChunks::granted_by(ChunkSide from, std::uint32_t stream) {
  // The receiver grants: the worker on the caller's streams, the caller on the worker's.
  if (stream == 0 || sender_of(stream) == from) return nullptr;
  if (is_output(stream) && output_window_ == 0) return nullptr;  // the caller takes no chunked outputs
  return find_or_add(stream);
}

std::optional<std::uint64_t> CallChunks::on_credit(ChunkSide from, std::uint32_t stream, std::uint64_t bytes) {
  Stream* s = granted_by(from, stream);
  if (!s) return std::nullopt;
  // A receiver cannot have consumed more than it was sent: beyond that plus one window, a grant
  // would let the sender fill musterd's queues towards a receiver that does not read.
  std::uint64_t total = std::min(bytes, saturating_add(s->next, max_window_));
  if (total <= s->granted) return std::nullopt;
  s->granted = total;
  forwarded_any_ = true;
  return total;
}

std::optional<std::uint64_t> CallChunks::on_resume_credit(ChunkSide from, std::uint32_t stream, std::uint64_t bytes,
                                                          std::uint64_t offset) {
  Stream* s = granted_by(from, stream);
  if (!s || offset > s->next) return std::nullopt;  // bytes never forwarded cannot be had
  s->next = offset;
  s->granted = std::max(s->granted, std::min(bytes, saturating_add(offset, max_window_)));
  s->resumed = true;
  // The sender goes back: what it sent before (beyond `offset`) arrives as a gap, and asking it
  // to go back again would only send the same bytes twice (R7).
  s->resume_asked = true;
  forwarded_any_ = true;
  return s->granted;  // always forwarded: the sender must go back even if the total did not rise
}

ChunkVerdict CallChunks::on_chunk(ChunkSide from, std::uint32_t stream, std::uint64_t offset, std::uint64_t size) {
  if (stream == 0 || sender_of(stream) != from) return ChunkVerdict::WrongSide;
  Stream* s = find_or_add(stream);
  if (!s) return ChunkVerdict::TooManyStreams;
  if (size == 0) return ChunkVerdict::Empty;
  if (offset > s->next) {
    // A gap. From the worker, bytes were lost between it and musterd: musterd asks it to go back
    // (once until a chunk comes at the next offset). From the caller (a connection that loses
    // nothing) a violation, unless the stream was resumed: chunks the caller sent before it
    // went back, past a loss its receiver reports itself.
    if (from == ChunkSide::Worker) {
      if (output_window_ == 0) return ChunkVerdict::OverCredit;  // the caller takes no chunked outputs
      return s->resume_asked ? ChunkVerdict::Drop : ChunkVerdict::AskResume;
    }
    return s->resumed ? ChunkVerdict::Drop : ChunkVerdict::Gap;
  }
  if (offset < s->next) {
    if (!s->resumed) return ChunkVerdict::Overlap;
    if (size <= s->next - offset) return ChunkVerdict::Drop;  // offset + size <= next: the receiver has it
  }
  if (size > s->granted - std::min(s->granted, offset)) return ChunkVerdict::OverCredit;  // offset + size > granted
  s->next = offset + size;
  s->resume_asked = false;
  forwarded_any_ = true;
  return ChunkVerdict::Forward;
}

std::optional<CallChunks::ResumeCredit> CallChunks::resume_output(std::uint32_t stream) {
  Stream* s = granted_by(ChunkSide::Caller, stream);  // the daemon speaks for the output's receiver
  if (!s) return std::nullopt;
  s->resumed = true;
  s->resume_asked = true;
  return ResumeCredit{s->granted, s->next};
}

std::optional<CallChunks::ResumeCredit> CallChunks::resume_input(std::uint32_t stream) {
  if (stream == 0 || is_output(stream)) return std::nullopt;
  Stream* s = find_or_add(stream);
  if (!s) return std::nullopt;
  s->resumed = true;
  return ResumeCredit{s->granted, s->next};
}

std::vector<std::pair<std::uint32_t, std::uint64_t>> CallChunks::forwarded(ChunkSide sender) const {
  std::vector<std::pair<std::uint32_t, std::uint64_t>> out;
  for (auto& s : streams_)
    if (s.next > 0 && sender_of(s.id) == sender) out.emplace_back(s.id, s.next);
  return out;
}

std::vector<std::uint32_t> CallChunks::outputs_to_resume() const {
  if (output_window_ == 0) return {};
  std::uint32_t highest = 0;
  for (auto& s : streams_)
    if (is_output(s.id)) highest = std::max(highest, s.id);
  std::vector<std::uint32_t> out;
  for (std::uint32_t stream = 2; stream <= highest + 2 && out.size() < kMaxChunkStreams; stream += 2)
    out.push_back(stream);
  return out;
}

bool CallChunks::carries_output(std::uint32_t stream) const {
  if (stream == 0 || !is_output(stream) || output_window_ == 0) return false;
  return find(stream) || room_for(stream);
}

bool CallChunks::forwarded_whole(std::uint32_t stream, std::uint64_t size) const {
  return next_offset(stream) >= size;
}

std::uint64_t CallChunks::next_offset(std::uint32_t stream) const {
  const Stream* s = find(stream);
  return s ? s->next : 0;
}

std::vector<std::pair<std::uint32_t, std::uint64_t>> CallChunks::republish() const {
  std::vector<std::pair<std::uint32_t, std::uint64_t>> out;
  for (auto& s : streams_)
    if (is_output(s.id) && s.granted > output_window_ && s.next < s.granted) out.emplace_back(s.id, s.granted);
  return out;
}

void CallChunks::restart() {
  streams_.clear();
  forwarded_any_ = false;
}

std::string CallChunks::describe(ChunkVerdict verdict, ChunkSide from, std::uint32_t stream, std::uint64_t offset,
                                 std::uint64_t size) const {
  const Stream* s = find(stream);
  const std::uint64_t next = s ? s->next : 0, granted = s ? s->granted : 0;
  switch (verdict) {
    case ChunkVerdict::Forward:
      return fmt::format("chunk of stream {} at offset {} ({} bytes) forwarded", stream, offset, size);
    case ChunkVerdict::Drop:
      return fmt::format("chunk of stream {} at offset {} ({} bytes) dropped: the stream was resumed at offset {}",
                         stream, offset, size, next);
    case ChunkVerdict::AskResume:
    case ChunkVerdict::Gap:
      return fmt::format("chunk of stream {} at offset {}, expected offset {}: {} bytes of the stream were lost "
                         "between the {} and musterd", stream, offset, next, offset - next, name(from));
    case ChunkVerdict::Overlap:
      return fmt::format("chunk of stream {} at offset {} overlaps the {} bytes already received", stream, offset,
                         next);
    case ChunkVerdict::Empty: return fmt::format("chunk of stream {} at offset {} has no data", stream, offset);
    case ChunkVerdict::OverCredit:
      return fmt::format("chunk of stream {} at offset {} ({} bytes) beyond the credit of {} bytes", stream, offset,
                         size, granted);
    case ChunkVerdict::WrongSide:
      return stream == 0 ? std::string("a chunk on stream 0 (the call's items)")
                         : fmt::format("a chunk on stream {}, which belongs to the {} ({} streams carry the "
                                       "caller's inputs, even ones the worker's outputs)",
                                       stream, name(sender_of(stream)), "odd");
    case ChunkVerdict::TooManyStreams:
      return fmt::format("a chunk on stream {}: the {} already has {} chunked streams in this call", stream,
                         name(from), kMaxChunkStreams);
  }
  return {};
}

}  // namespace muster::broker
