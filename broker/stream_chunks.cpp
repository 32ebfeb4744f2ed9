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

CallChunks::Stream* CallChunks::find_or_add(std::uint32_t stream) {
  if (auto* s = find(stream)) return const_cast<Stream*>(s);
  auto same_parity = std::count_if(streams_.begin(), streams_.end(),
                                   [&](const Stream& s) { return is_output(s.id) == is_output(stream); });
  if (static_cast<std::size_t>(same_parity) >= kMaxChunkStreams) return nullptr;
  // An output stream starts with the caller's initial window; an input stream with nothing
  // until the worker grants credit.
  streams_.push_back(Stream{stream, is_output(stream) ? output_window_ : 0, 0});
  return &streams_.back();
}

std::optional<std::uint64_t> CallChunks::on_credit(ChunkSide from, std::uint32_t stream, std::uint64_t bytes) {
  // The receiver grants: the worker on the caller's streams, the caller on the worker's.
  if (stream == 0 || sender_of(stream) == from) return std::nullopt;
  if (is_output(stream) && output_window_ == 0) return std::nullopt;  // the caller takes no chunked outputs
  Stream* s = find_or_add(stream);
  if (!s) return std::nullopt;
  // A receiver cannot have consumed more than it was sent: beyond that plus one window, a grant
  // would let the sender fill musterd's queues towards a receiver that does not read.
  std::uint64_t total = std::min(bytes, saturating_add(s->next, max_window_));
  if (total <= s->granted) return std::nullopt;
  s->granted = total;
  forwarded_any_ = true;
  return total;
}

ChunkVerdict CallChunks::on_chunk(ChunkSide from, std::uint32_t stream, std::uint64_t offset, std::uint64_t size) {
  if (stream == 0 || sender_of(stream) != from) return ChunkVerdict::WrongSide;
  Stream* s = find_or_add(stream);
  if (!s) return ChunkVerdict::TooManyStreams;
  if (offset > s->next) return ChunkVerdict::Gap;
  if (offset < s->next) return ChunkVerdict::Overlap;
  if (size == 0) return ChunkVerdict::Empty;
  if (size > s->granted - std::min(s->granted, offset)) return ChunkVerdict::OverCredit;  // offset + size > granted
  s->next = offset + size;
  forwarded_any_ = true;
  return ChunkVerdict::Forward;
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
