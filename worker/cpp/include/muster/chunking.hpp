// chunking.hpp — the two ends of one chunked stream in an SDK (docs/PROTOCOL.md §7.9), without
// sockets: the sender cuts a bytes value into chunks within the receiver's credit; the receiver
// takes them in offset order, grants its window as it goes, and checks the size and the SHA-256
// (sha256.hpp, OpenSSL) at the end.
// Owns: the offsets, the credit arithmetic and the checks of one stream.
// Must never: send past the credit, accept a chunk out of order or beyond the declared size, or
// hand out bytes whose size or sha256 does not match the reference.
// Status: the building block of the SDKs' chunkers; the C++ client sends its chunked inputs with
// ChunkSender, the C++ worker receives them with ChunkReceiver (both delivery modes;
// docs/STREAMS.md §3).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "muster/byte_source.hpp"
#include "muster/sha256.hpp"
#include "muster/value.hpp"

namespace muster {

inline constexpr std::size_t kChunkBytes = 1 << 20;           // the SDKs' chunk size
inline constexpr std::uint64_t kChunkWindowBytes = 4u << 20;  // the window the SDKs grant

// One chunk to send: `data` is a view into the sender's value (a source's: into the sender's
// buffer, valid until its next call to next()).
struct ChunkOut {
  std::uint64_t offset = 0;
  std::span<const std::uint8_t> data;
};

class ChunkSender {
 public:
  // The value `data` on `stream`; `granted` is the initial credit (0 for an input stream: the
  // worker grants first; the caller's chunk window for an output stream).
  ChunkSender(Bytes data, std::uint32_t stream, std::uint64_t granted = 0, std::size_t chunk_bytes = kChunkBytes);
  // The bytes of `source`, read a chunk at a time as the credit allows (one chunk in memory).
  // Its sha256 is the source's known one, else read in one pass here (sha256_of); a read that
  // fails throws std::runtime_error, here or from next().
  ChunkSender(std::shared_ptr<ByteSource> source, std::uint32_t stream, std::uint64_t granted = 0,
              std::size_t chunk_bytes = kChunkBytes);

  // The reference to put in the message in place of the bytes.
  const ChunkedValue& reference() const { return ref_; }
  // A Credit from the receiver: the highest total counts.
  void on_credit(std::uint64_t bytes);
  // The next chunk the credit allows (at most chunk_bytes, and never past the grant), or
  // nullopt: all sent, or waiting for credit. From a source: throws std::runtime_error when it
  // cannot be read.
  std::optional<ChunkOut> next();
  bool done() const { return sent_ == ref_.size; }
  std::uint64_t sent() const { return sent_; }

 private:
  Bytes data_;
  std::shared_ptr<ByteSource> source_;  // or, when set, the bytes come from here
  std::vector<std::uint8_t> buffer_;    // the source's current chunk
  ChunkedValue ref_;
  std::uint64_t granted_;
  std::uint64_t sent_ = 0;
  std::size_t chunk_bytes_;
};

// What a ChunkReceiver does with the bytes it accepts: Buffer keeps them, to be taken whole
// (take()); Stream keeps none (its reader uses each chunk as on_chunk accepts it), so a value of
// any size passes in the memory of one chunk. Both hash every byte and check() the same way.
enum class ChunkDelivery { Buffer, Stream };

class ChunkReceiver {
 public:
  // Receives the value `ref` refers to, granting `window` bytes ahead of what it has.
  explicit ChunkReceiver(ChunkedValue ref, std::uint64_t window = kChunkWindowBytes,
                         ChunkDelivery delivery = ChunkDelivery::Buffer);

  // The credit total to grant (what it holds plus one window, at most the size).
  std::uint64_t grant() const;
  // One chunk; an error names the stream and what is wrong (out of order, beyond the size).
  // Nothing is kept from a refused chunk.
  std::optional<std::string> on_chunk(std::uint64_t offset, std::span<const std::uint8_t> data);
  bool complete() const { return received_ == ref_.size; }
  std::uint64_t received() const { return received_; }
  const ChunkedValue& reference() const { return ref_; }
  // The whole value once complete, checked: an error if the size or the sha256 differs.
  std::optional<std::string> check() const;
  // The bytes (call after check() said nothing; empty with ChunkDelivery::Stream).
  Bytes take() { return Bytes(std::move(buffer_)); }

 private:
  ChunkedValue ref_;
  std::uint64_t window_;
  ChunkDelivery delivery_;
  std::uint64_t received_ = 0;
  std::vector<std::uint8_t> buffer_;  // ChunkDelivery::Buffer only
  Sha256 hash_;  // over the bytes received, in order
};

}  // namespace muster
