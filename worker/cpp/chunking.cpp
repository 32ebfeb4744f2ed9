// chunking.cpp — the sender and receiver of one chunked stream (chunking.hpp, PROTOCOL.md §7.9).
#include "muster/chunking.hpp"

#include <algorithm>
#include <stdexcept>

#include <fmt/format.h>

namespace muster {

ChunkSender::ChunkSender(Bytes data, std::uint32_t stream, std::uint64_t granted, std::size_t chunk_bytes)
    : data_(std::move(data)), granted_(granted), chunk_bytes_(std::max<std::size_t>(chunk_bytes, 1)) {
  if (stream == 0) throw std::invalid_argument("a chunked value needs a stream >= 1 (0 is the call's items)");
  ref_.stream = stream;
  ref_.size = data_.size();
  ref_.sha256 = sha256(data_.span());
}

ChunkSender::ChunkSender(std::shared_ptr<ByteSource> source, std::uint32_t stream, std::uint64_t granted,
                         std::size_t chunk_bytes)
    : source_(std::move(source)), granted_(granted), chunk_bytes_(std::max<std::size_t>(chunk_bytes, 1)) {
  if (stream == 0) throw std::invalid_argument("a chunked value needs a stream >= 1 (0 is the call's items)");
  if (!source_) throw std::invalid_argument("a chunked value needs a source");
  ref_.stream = stream;
  ref_.size = source_->size();
  if (!source_->rereadable()) {
    if (!source_->known_sha256())
      throw std::invalid_argument(source_->describe() + " cannot be read twice: its sha256 must be given");
    keep_.emplace();
  }
  ref_.sha256 = sha256_of(*source_);
}

void ChunkSender::on_credit(std::uint64_t bytes) { granted_ = std::max(granted_, bytes); }

std::optional<std::string> ChunkSender::on_resume(std::uint64_t resume_offset, std::uint64_t bytes) {
  if (resume_offset > sent_) return std::nullopt;  // beyond what was sent: ignored (R9)
  if (keep_ && resume_offset < keep_->begin())
    return fmt::format("cannot resume at offset {}: {} cannot be read again and only its bytes from offset {} "
                       "are kept (the last {} sent)",
                       resume_offset, source_->describe(), keep_->begin(), kResumeKeepBytes);
  on_credit(bytes);
  sent_ = resume_offset;
  return std::nullopt;
}

std::optional<ChunkOut> ChunkSender::next(const BuildChunk& build) {
  if (done() || sent_ >= granted_) return std::nullopt;
  // Never past the grant (the send rule for chunks is strict: offset + size <= granted).
  std::uint64_t n = std::min<std::uint64_t>({chunk_bytes_, ref_.size - sent_, granted_ - sent_});
  ChunkOut out{sent_, {}, std::nullopt};
  if (keep_ && sent_ < read_) {  // going back: from what was kept, never read twice
    out.data = keep_->view(sent_, static_cast<std::size_t>(std::min<std::uint64_t>(n, read_ - sent_)));
    n = out.data.size();
    out.message = keep_->message_of(sent_, out.data.size());
  } else if (source_ && build) {
    auto at = sent_;
    auto piece = build(at, static_cast<std::size_t>(n), [&](std::span<std::uint8_t> to) {
      source_->read_at(at, to);  // throws: nothing counted as sent
    });
    if (piece.size != n) throw std::logic_error("ChunkSender: the chunk built does not carry the bytes asked for");
    out.message.emplace();
    out.message->copy(piece.message);  // shares the content
    if (keep_) {
      keep_->append(std::move(piece));
      read_ = sent_ + n;
      out.data = keep_->view(sent_, static_cast<std::size_t>(n));
    } else {
      current_ = std::move(piece);
      out.data = current_.bytes();
    }
  } else if (source_) {
    buffer_.resize(static_cast<std::size_t>(n));
    source_->read_at(sent_, buffer_);  // throws: nothing counted as sent
    out.data = buffer_;
    if (keep_) {
      keep_->append(out.data);
      read_ = sent_ + n;
    }
  } else {
    out.data = data_.span().subspan(sent_, n);
  }
  sent_ += n;
  return out;
}

ResumeRule::Verdict ResumeRule::on_chunk(std::uint64_t received, std::uint64_t offset, std::size_t n,
                                         Clock::time_point now) {
  Verdict v;
  if (offset <= received) {  // R1: its bytes from R on; none new: sent before its sender went back
    if (offset + n > received) {
      v.take = true;
      v.skip = static_cast<std::size_t>(received - offset);
    }
    return v;
  }
  // R2: a gap. One resume Credit per loss: none if one went less than resume_after ago and no
  // chunk was taken since.
  if (resumed_since_chunk_ && last_resume_ && now - *last_resume_ < after_) return v;
  v.resume = true;
  last_resume_ = now;
  resumed_since_chunk_ = true;
  return v;
}

bool ResumeRule::stalled(std::uint64_t received, std::uint64_t expected, Clock::time_point now) {
  if (received >= expected) {
    last_chunk_ = now;  // nothing owed: the stall counts from when bytes are owed again
    return false;
  }
  if (!last_chunk_) last_chunk_ = now;
  auto since = std::max(*last_chunk_, last_resume_.value_or(*last_chunk_));
  if (now - since < after_) return false;
  last_resume_ = now;
  resumed_since_chunk_ = true;
  return true;
}

ReceivedPiece receive_piece(zmq::message_t* message, std::span<const std::uint8_t> data) {
  if (message && data.size() >= kShareReceivedMinBytes && data.size() >= message->size() / 2) {
    auto* base = static_cast<const std::uint8_t*>(message->data());
    if (data.data() >= base && data.data() + data.size() <= base + message->size()) {
      ReceivedPiece piece{zmq::message_t(), static_cast<std::size_t>(data.data() - base), data.size()};
      piece.message.copy(*message);  // shares the content: no copy of the bytes
      return piece;
    }
  }
  return ReceivedPiece{zmq::message_t(data.data(), data.size()), 0, data.size()};
}

void SentBytesKeep::append(SentPiece piece) { keep(std::move(piece), true); }

void SentBytesKeep::append(std::span<const std::uint8_t> data) {
  keep(SentPiece{zmq::message_t(data.data(), data.size()), 0, data.size()}, false);
}

void SentBytesKeep::keep(SentPiece piece, bool chunk_message) {
  if (piece.size == 0) return;
  auto n = piece.size;
  pieces_.push_back({end_, std::move(piece), chunk_message});
  end_ += n;
  while (!pieces_.empty() && end_ - begin_ - pieces_.front().sent.size >= keep_) {
    begin_ += pieces_.front().sent.size;
    pieces_.pop_front();
  }
}

std::span<const std::uint8_t> SentBytesKeep::view(std::uint64_t offset, std::size_t max) const {
  if (offset < begin_ || offset >= end_) throw std::out_of_range("SentBytesKeep::view: offset not kept");
  for (auto& piece : pieces_) {
    auto size = piece.sent.size;
    if (offset < piece.offset + size) {
      auto from = static_cast<std::size_t>(offset - piece.offset);
      return piece.sent.bytes().subspan(from, std::min(max, size - from));
    }
  }
  return {};
}

std::optional<zmq::message_t> SentBytesKeep::message_of(std::uint64_t offset, std::size_t n) {
  for (auto& piece : pieces_) {
    if (piece.offset != offset) continue;
    if (piece.sent.size != n || !piece.chunk_message) return std::nullopt;
    zmq::message_t again;
    again.copy(piece.sent.message);
    return again;
  }
  return std::nullopt;
}

ChunkReceiver::ChunkReceiver(ChunkedValue ref, std::uint64_t window, ChunkDelivery delivery,
                             std::chrono::milliseconds resume_after)
    : ref_(ref), window_(window), delivery_(delivery), resume_(resume_after) {
  if (delivery_ == ChunkDelivery::Buffer)
    buffer_.reserve(static_cast<std::size_t>(std::min<std::uint64_t>(ref_.size, 1ull << 30)));
}

std::uint64_t ChunkReceiver::grant() const {
  return std::min(ref_.size, received_ > UINT64_MAX - window_ ? UINT64_MAX : received_ + window_);
}

std::optional<std::string> ChunkReceiver::on_chunk(std::uint64_t offset, std::span<const std::uint8_t> data,
                                                   ResumeRule::Clock::time_point now) {
  auto verdict = resume_.on_chunk(received_, offset, data.size(), now);
  if (verdict.resume) resume_due_ = true;
  if (!verdict.take) return std::nullopt;
  data = data.subspan(verdict.skip);
  if (data.size() > ref_.size - received_)
    return fmt::format("chunked stream {}: {} bytes at offset {} pass its size of {} bytes", ref_.stream,
                       data.size(), received_, ref_.size);
  if (delivery_ == ChunkDelivery::Buffer) buffer_.insert(buffer_.end(), data.begin(), data.end());
  hash_.update(data);
  received_ += data.size();
  resume_.taken(now);
  return std::nullopt;
}

bool ChunkReceiver::stalled(std::uint64_t granted, ResumeRule::Clock::time_point now) {
  return resume_.stalled(received_, std::min(ref_.size, granted), now);
}

std::optional<std::string> ChunkReceiver::check() const {
  if (received_ != ref_.size)
    return fmt::format("chunked stream {}: {} of {} bytes received", ref_.stream, received_, ref_.size);
  if (hash_.finish() != ref_.sha256) return fmt::format("chunked stream {}: sha256 mismatch", ref_.stream);
  return std::nullopt;
}

}  // namespace muster
