// worker_chunks.cpp — the worker's chunked inputs and outputs between its threads
// (worker_chunks.hpp, PROTOCOL.md §7.9).
#include "worker_chunks.hpp"

#include <algorithm>
#include <chrono>

#include <fmt/format.h>

#include "muster/frames.hpp"
#include "muster/messages.hpp"

namespace muster {

zmq::message_t worker_credit_message(const std::string& worker_id, std::uint64_t request_id, std::uint32_t stream,
                                     std::uint64_t bytes) {
  flatbuffers::FlatBufferBuilder fbb(128 + worker_id.size());
  auto body = wire::CreateCredit(fbb, request_id, stream, 0, bytes);
  finish_worker_message(fbb, worker_id, wire::WorkerBody::Credit, body.Union());
  return take_message(fbb);
}

zmq::message_t worker_chunk_message(const std::string& worker_id, std::uint64_t request_id, std::uint32_t stream,
                                    std::uint64_t offset, std::span<const std::uint8_t> data) {
  flatbuffers::FlatBufferBuilder fbb(data.size() + 256 + worker_id.size());
  fbb.ForceVectorAlignment(data.size(), 1, kPayloadAlignment);
  auto vec = fbb.CreateVector(data.data(), data.size());
  auto body = wire::CreateChunk(fbb, request_id, stream, offset, vec);
  finish_worker_message(fbb, worker_id, wire::WorkerBody::Chunk, body.Union());
  return take_message(fbb);
}

namespace detail {

InputFeed::InputFeed(std::string port_name, ChunkedValue ref, ChunkDelivery delivery,
                     std::shared_ptr<std::atomic<bool>> aborted)
    : port(std::move(port_name)),
      receiver_(ref, kChunkWindowBytes, delivery),
      aborted_(std::move(aborted)),
      stream_(ref.stream),
      size_(ref.size) {
  granted_ = receiver_.grant();
}

void InputFeed::push(std::uint64_t offset, std::span<const std::uint8_t> data) {
  {
    std::lock_guard lock(mu_);
    if (push_error_) return;
    // musterd forwards nothing past the grant (§7.9 rule 2); a chunk beyond it would grow this
    // queue without bound, so it ends the stream instead.
    if (offset != pushed_ || data.size() > granted_.load() - std::min(granted_.load(), offset)) {
      push_error_ = fmt::format("chunked stream {}: a chunk of {} bytes at offset {}, past the {} bytes granted "
                                "or not the next offset ({})",
                                receiver_.reference().stream, data.size(), offset, granted_.load(), pushed_);
    } else {
      queue_.push_back({offset, Bytes(data.begin(), data.end())});
      pushed_ += data.size();
    }
  }
  cv_.notify_all();
}

void InputFeed::wake() {
  { std::lock_guard lock(mu_); }
  cv_.notify_all();
}

std::span<const std::uint8_t> InputFeed::next() {
  if (receiver_.complete()) {
    if (auto error = receiver_.check()) throw WorkError(fmt::format("input {}: {}", port, *error), ErrorCode::InvalidRequest);
    return {};
  }
  Piece piece;
  {
    std::unique_lock lock(mu_);
    while (queue_.empty() && !push_error_ && !aborted_->load()) cv_.wait_for(lock, std::chrono::milliseconds(100));
    if (aborted_->load())
      throw WorkError(fmt::format("the request was aborted while input {} was read ({} of {} bytes)", port,
                                  receiver_.received(), receiver_.reference().size));
    if (queue_.empty()) throw WorkError(fmt::format("input {}: {}", port, *push_error_), ErrorCode::InvalidRequest);
    piece = std::move(queue_.front());
    queue_.pop_front();
  }
  if (auto error = receiver_.on_chunk(piece.offset, piece.data.span()))
    throw WorkError(fmt::format("input {}: {}", port, *error), ErrorCode::InvalidRequest);
  // More credit as the reader takes bytes: at most one window ahead of what it took, sent
  // when it rises by a chunk or reaches the size (a Credit per chunk, not per read).
  auto want = receiver_.grant();
  if (want > granted_.load() && (want - granted_.load() >= kChunkBytes || want == receiver_.reference().size)) {
    granted_ = want;
    if (grant) grant(want);
  }
  if (receiver_.complete())
    if (auto error = receiver_.check()) throw WorkError(fmt::format("input {}: {}", port, *error), ErrorCode::InvalidRequest);
  current_ = std::move(piece.data);
  return current_.span();
}

Bytes InputFeed::take_all() {
  while (!next().empty()) {
  }
  current_ = Bytes();
  return receiver_.take();
}

}  // namespace detail

void OutputCredits::grant(std::uint32_t stream, std::uint64_t bytes) {
  {
    std::lock_guard lock(mu_);
    auto& g = granted_.try_emplace(stream, initial_).first->second;
    g = std::max(g, bytes);
  }
  cv_.notify_all();
}

void OutputCredits::wake() {
  { std::lock_guard lock(mu_); }
  cv_.notify_all();
}

std::optional<std::uint64_t> OutputCredits::wait_beyond(std::uint32_t stream, std::uint64_t sent,
                                                        const std::atomic<bool>& aborted) {
  std::unique_lock lock(mu_);
  auto& g = granted_.try_emplace(stream, initial_).first->second;
  // Abort and Credit notify; the bound keeps a lost wake-up from hanging the handler.
  while (!aborted.load() && g <= sent) cv_.wait_for(lock, std::chrono::milliseconds(100));
  if (aborted.load()) return std::nullopt;
  return g;
}

ChunkedValue send_chunked(const PieceReader& next_piece, std::uint32_t stream, OutputCredits& credits,
                          const std::atomic<bool>& aborted, std::size_t chunk_bytes,
                          const std::function<void(std::uint64_t, std::span<const std::uint8_t>)>& send) {
  Sha256 hash;
  std::uint64_t sent = 0;
  // One piece read ahead: the end is known before waiting for credit, since a caller whose
  // grant already covers every byte sent grants no more (its window stops at the size).
  auto pending = next_piece(chunk_bytes);
  while (!pending.empty()) {
    auto granted = credits.wait_beyond(stream, sent, aborted);
    if (!granted)
      throw WorkError(fmt::format("the request was aborted while chunked stream {} was sent ({} bytes sent)", stream, sent));
    // The strict send rule: offset + size <= granted.
    auto n = static_cast<std::size_t>(std::min<std::uint64_t>(pending.size(), *granted - sent));
    auto chunk = pending.first(n);
    hash.update(chunk);
    credits.started = true;
    send(sent, chunk);
    sent += n;
    pending = pending.subspan(n);
    if (pending.empty()) pending = next_piece(chunk_bytes);
  }
  ChunkedValue ref;
  ref.stream = stream;
  ref.size = sent;
  ref.sha256 = hash.finish();
  return ref;
}

}  // namespace muster
