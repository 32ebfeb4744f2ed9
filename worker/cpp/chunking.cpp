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
  ref_.sha256 = sha256_of(*source_);
}

void ChunkSender::on_credit(std::uint64_t bytes) { granted_ = std::max(granted_, bytes); }

std::optional<ChunkOut> ChunkSender::next() {
  if (done() || sent_ >= granted_) return std::nullopt;
  // Never past the grant (the send rule for chunks is strict: offset + size <= granted).
  std::uint64_t n = std::min<std::uint64_t>({chunk_bytes_, ref_.size - sent_, granted_ - sent_});
  std::span<const std::uint8_t> data;
  if (source_) {
    buffer_.resize(static_cast<std::size_t>(n));
    source_->read_at(sent_, buffer_);  // throws: nothing counted as sent
    data = buffer_;
  } else {
    data = data_.span().subspan(sent_, n);
  }
  ChunkOut out{sent_, data};
  sent_ += n;
  return out;
}

ChunkReceiver::ChunkReceiver(ChunkedValue ref, std::uint64_t window, ChunkDelivery delivery)
    : ref_(ref), window_(window), delivery_(delivery) {
  if (delivery_ == ChunkDelivery::Buffer)
    buffer_.reserve(static_cast<std::size_t>(std::min<std::uint64_t>(ref_.size, 1ull << 30)));
}

std::uint64_t ChunkReceiver::grant() const {
  return std::min(ref_.size, received_ > UINT64_MAX - window_ ? UINT64_MAX : received_ + window_);
}

std::optional<std::string> ChunkReceiver::on_chunk(std::uint64_t offset, std::span<const std::uint8_t> data) {
  if (offset != received_)
    return fmt::format("chunked stream {}: a chunk at offset {}, expected offset {}", ref_.stream, offset, received_);
  if (data.size() > ref_.size - received_)
    return fmt::format("chunked stream {}: {} bytes at offset {} pass its size of {} bytes", ref_.stream,
                       data.size(), offset, ref_.size);
  if (delivery_ == ChunkDelivery::Buffer) buffer_.insert(buffer_.end(), data.begin(), data.end());
  hash_.update(data);
  received_ += data.size();
  return std::nullopt;
}

std::optional<std::string> ChunkReceiver::check() const {
  if (received_ != ref_.size)
    return fmt::format("chunked stream {}: {} of {} bytes received", ref_.stream, received_, ref_.size);
  if (hash_.finish() != ref_.sha256) return fmt::format("chunked stream {}: sha256 mismatch", ref_.stream);
  return std::nullopt;
}

}  // namespace muster
