// worker_chunks.cpp — the worker's chunked inputs and outputs between its threads
// (worker_chunks.hpp, PROTOCOL.md §7.9).
#include "worker_chunks.hpp"

#include <algorithm>
#include <chrono>

#include <fmt/format.h>

#include "chunk_message.hpp"
#include "muster/frames.hpp"
#include "muster/messages.hpp"

namespace muster {

zmq::message_t worker_credit_message(const std::string& worker_id, std::uint64_t request_id, std::uint32_t stream,
                                     std::uint64_t bytes, std::optional<std::uint64_t> resume) {
  flatbuffers::FlatBufferBuilder fbb(128 + worker_id.size());
  auto body = wire::CreateCredit(fbb, request_id, stream, 0, bytes, resume.value_or(0), resume.has_value());
  finish_worker_message(fbb, worker_id, wire::WorkerBody::Credit, body.Union());
  return take_message(fbb);
}

namespace {

// Finishes a Chunk of `worker_id` around its data vector.
auto worker_chunk_finish(const std::string& worker_id, std::uint64_t request_id, std::uint32_t stream,
                         std::uint64_t offset) {
  return [&worker_id, request_id, stream, offset](flatbuffers::FlatBufferBuilder& fbb, detail::ChunkData data) {
    auto body = wire::CreateChunk(fbb, request_id, stream, offset, data);
    finish_worker_message(fbb, worker_id, wire::WorkerBody::Chunk, body.Union());
  };
}

}  // namespace

zmq::message_t worker_chunk_message(const std::string& worker_id, std::uint64_t request_id, std::uint32_t stream,
                                    std::uint64_t offset, std::span<const std::uint8_t> data) {
  return detail::chunk_piece(data, 256 + worker_id.size(), worker_chunk_finish(worker_id, request_id, stream, offset))
      .message;
}

SentPiece worker_chunk_read(const std::string& worker_id, std::uint64_t request_id, std::uint32_t stream,
                            std::uint64_t offset, std::size_t max,
                            const std::function<std::size_t(std::span<std::uint8_t>)>& fill) {
  detail::ChunkWriter writer(max, 256 + worker_id.size());
  auto n = fill(writer.data());
  return writer.finish(n, worker_chunk_finish(worker_id, request_id, stream, offset));
}

namespace detail {

InputFeed::InputFeed(std::string port_name, ChunkedValue ref, ChunkDelivery delivery,
                     std::shared_ptr<std::atomic<bool>> aborted, std::chrono::milliseconds resume_after)
    : port(std::move(port_name)),
      resume_(resume_after),
      receiver_(ref, kChunkWindowBytes, delivery),
      aborted_(std::move(aborted)),
      stream_(ref.stream),
      size_(ref.size) {
  granted_ = receiver_.grant();
}

std::optional<std::uint64_t> InputFeed::push(std::uint64_t offset, std::span<const std::uint8_t> data,
                                             zmq::message_t* message, ResumeRule::Clock::time_point now) {
  {
    std::lock_guard lock(mu_);
    if (push_error_) return std::nullopt;
    auto verdict = resume_.on_chunk(pushed_, offset, data.size(), now);
    if (verdict.resume) return pushed_;      // a gap: asked for again from what it has (R2)
    if (!verdict.take) return std::nullopt;  // had it whole (R1)
    data = data.subspan(verdict.skip);
    // musterd forwards nothing past the grant (§7.9 rule 2); a chunk beyond it would grow this
    // queue without bound, so it ends the stream instead.
    if (data.size() > granted_.load() - std::min(granted_.load(), pushed_)) {
      push_error_ = fmt::format("chunked stream {}: a chunk of {} bytes at offset {}, past the {} bytes granted",
                                receiver_.reference().stream, data.size(), pushed_, granted_.load());
    } else {
      queue_.push_back({pushed_, receive_piece(message, data)});  // the new bytes only (R1)
      pushed_ += data.size();
      resume_.taken(now);
    }
  }
  cv_.notify_all();
  return std::nullopt;
}

std::optional<std::uint64_t> InputFeed::stalled(ResumeRule::Clock::time_point now) {
  std::lock_guard lock(mu_);
  if (push_error_ || aborted_->load()) return std::nullopt;
  if (!resume_.stalled(pushed_, std::min(granted_.load(), size_), now)) return std::nullopt;
  return pushed_;
}

std::optional<std::uint64_t> InputFeed::incomplete() {
  std::lock_guard lock(mu_);
  if (push_error_ || aborted_->load() || pushed_ == size_) return std::nullopt;
  return pushed_;
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
  current_ = ReceivedPiece();  // the last chunk handed out: the reader is done with it
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
  if (auto error = receiver_.on_chunk(piece.offset, piece.bytes.bytes()))  // hashed in the message
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
  current_ = std::move(piece.bytes);
  return current_.bytes();
}

Bytes InputFeed::take_all() {
  while (!next().empty()) {
  }
  current_ = ReceivedPiece();
  return receiver_.take();
}

}  // namespace detail

OutputCredits::Stream& OutputCredits::stream_locked(std::uint32_t n) {
  auto [it, added] = streams_.try_emplace(n);
  if (added) it->second.granted = initial_;
  return it->second;
}

void OutputCredits::grant(std::uint32_t n, std::uint64_t bytes, std::optional<std::uint64_t> resume) {
  {
    std::lock_guard lock(mu_);
    auto& s = stream_locked(n);
    s.granted = std::max(s.granted, bytes);
    if (resume) s.resume = *resume;
  }
  cv_.notify_all();
}

void OutputCredits::wake() {
  { std::lock_guard lock(mu_); }
  cv_.notify_all();
}

bool OutputCredits::any_sent() const {
  std::lock_guard lock(mu_);
  return std::any_of(streams_.begin(), streams_.end(), [](auto& e) { return e.second.finished; });
}

std::optional<std::string> OutputCredits::take_resume(std::uint32_t n, Stream& s) {
  auto r = *std::exchange(s.resume, std::nullopt);
  if (r > s.sent) return std::nullopt;  // beyond what was sent: ignored (R9)
  if (s.keep && r < s.keep->begin())
    return fmt::format("output {}: chunked stream {}: cannot resume at offset {}: its source cannot be read again "
                       "and only its bytes from offset {} are kept (the last {} read)",
                       s.port, n, r, s.keep->begin(), kResumeKeepBytes);
  s.next = r;
  return std::nullopt;
}

std::span<const std::uint8_t> OutputCredits::kept_bytes(const Stream& s, std::uint64_t offset, std::size_t max) {
  if (s.keep) return s.keep->view(offset, max);
  const Bytes& bytes = s.whole ? *s.whole : s.whole_kept;
  return bytes.span().subspan(static_cast<std::size_t>(offset), std::min<std::uint64_t>(max, bytes.size() - offset));
}

std::optional<std::string> OutputCredits::send_again(std::uint32_t n, const SendChunk& send) {
  std::lock_guard lock(mu_);
  auto it = streams_.find(n);
  if (it == streams_.end() || !it->second.finished) return std::nullopt;  // the handler thread's still
  auto& s = it->second;
  if (s.resume)
    if (auto error = take_resume(n, s)) return error;
  while (s.next < std::min(s.granted, s.read)) {
    auto data = kept_bytes(s, s.next, static_cast<std::size_t>(std::min<std::uint64_t>(
                                          s.chunk_bytes, std::min(s.granted, s.read) - s.next)));
    send(n, s.next, data, kept_message(s, s.next, data.size()));
    s.next += data.size();
  }
  return std::nullopt;
}

std::optional<zmq::message_t> OutputCredits::kept_message(Stream& s, std::uint64_t offset, std::size_t n) {
  if (!s.keep) return std::nullopt;
  return s.keep->message_of(offset, n);
}

ChunkedValue OutputCredits::send_chunked(const std::string& port, std::uint32_t n, const Bytes* whole,
                                         const ReadPiece& next_piece,
                                         const std::atomic<bool>& aborted, std::size_t chunk_bytes,
                                         const SendChunk& send) {
  {
    std::lock_guard lock(mu_);
    auto& s = stream_locked(n);
    s.port = port;
    s.whole = whole;
    if (!whole) s.keep.emplace();
    s.chunk_bytes = chunk_bytes;
  }
  Sha256 hash;  // each byte once, when first read
  bool at_end = false;
  std::unique_lock lock(mu_);
  auto& s = streams_.at(n);
  for (;;) {
    // One piece read ahead of the grant: the end is known before waiting for credit, since a
    // caller whose grant covers every byte sent may grant no more.
    if (s.next == s.read && !at_end) {
      auto offset = s.read;
      lock.unlock();
      std::size_t size = 0;
      SentPiece piece;
      if (whole) {
        size = static_cast<std::size_t>(std::min<std::uint64_t>(chunk_bytes, whole->size() - offset));
        hash.update(whole->span().subspan(static_cast<std::size_t>(offset), size));
      } else {
        piece = next_piece(n, offset, chunk_bytes);  // may block: not under the lock
        size = piece.size;
        hash.update(piece.bytes());
      }
      lock.lock();
      if (s.keep) s.keep->append(std::move(piece));  // the message, shared: no copy
      s.read += size;
      at_end = size == 0;
    }
    if (s.next == s.read && at_end && !s.resume) break;
    // Abort and Credit notify; the bound keeps a lost wake-up from hanging the handler.
    while (!aborted.load() && !s.resume && s.granted <= s.next) cv_.wait_for(lock, std::chrono::milliseconds(100));
    if (aborted.load())
      throw WorkError(fmt::format("the request was aborted while chunked stream {} was sent ({} bytes sent)", n, s.sent));
    if (s.resume) {
      if (auto error = take_resume(n, s)) throw WorkError(*error);
      continue;
    }
    if (s.next == s.read) continue;  // read the next piece first
    // The strict send rule: offset + size <= granted.
    auto data = kept_bytes(s, s.next,
                           static_cast<std::size_t>(std::min<std::uint64_t>({chunk_bytes, s.granted - s.next, s.read - s.next})));
    started = true;
    auto at = s.next;
    auto ready = kept_message(s, at, data.size());  // (under the lock: copying touches the kept one)
    lock.unlock();  // the bytes stay: only this thread changes them while the stream is sent
    send(n, at, data, std::move(ready));
    lock.lock();
    if (s.next == at) s.next += data.size();  // (a resume Credit meanwhile moved it)
    s.sent = std::max(s.sent, at + data.size());
  }
  // Sent whole: from now on a resume Credit is the socket thread's (send_again), from the bytes
  // kept here (a Bytes output: shared, not copied).
  if (whole) {
    s.whole_kept = *whole;
    s.whole = nullptr;
  }
  s.finished = true;
  ChunkedValue ref;
  ref.stream = n;
  ref.size = s.read;
  ref.sha256 = hash.finish();
  return ref;
}

}  // namespace muster
