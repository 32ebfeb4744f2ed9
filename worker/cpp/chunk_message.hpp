// chunk_message.hpp — (private to the C++ SDK) building a Chunk message (PROTOCOL.md §7.9) as a
// SentPiece: the message and where its data lie in it, so that a sender keeps the piece for a
// resend (SentBytesKeep) by sharing the message rather than copying its bytes. ChunkWriter lets
// a sender read a source straight into the message's data (one pass over each byte, no copy).
// The worker's and the client's chunks differ only in the message around the Chunk table:
// `finish(fbb, vector)` builds that (Chunk, then the root) and finishes the builder.
// Must never: describe bytes that are not inside the returned message; send anything.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

#include <flatbuffers/flatbuffers.h>
#include <zmq.hpp>

#include "muster/chunking.hpp"
#include "muster/frames.hpp"
#include "muster/messages.hpp"

namespace muster::detail {

using ChunkData = flatbuffers::Offset<flatbuffers::Vector<std::uint8_t>>;

// The finished builder as a message (its buffer handed over when large, not copied), and the
// `n` data bytes of the vector `data` in it.
inline SentPiece finished_chunk(flatbuffers::FlatBufferBuilder& fbb, ChunkData data, std::size_t n) {
  // The vector's place counted from the end of the buffer: the same in the finished message.
  const std::size_t from_end = data.o;
  const std::size_t size = fbb.GetSize();
  return SentPiece{take_message(fbb), size - from_end + sizeof(flatbuffers::uoffset_t), n};
}

// A Chunk message carrying a copy of `data`; `header` bytes more than the data are reserved.
template <class Finish>
SentPiece chunk_piece(std::span<const std::uint8_t> data, std::size_t header, Finish&& finish) {
  flatbuffers::FlatBufferBuilder fbb(data.size() + header);
  fbb.ForceVectorAlignment(data.size(), 1, kPayloadAlignment);  // data on 8 bytes, as writers align it
  auto vec = fbb.CreateVector(data.data(), data.size());
  finish(fbb, vec);
  return finished_chunk(fbb, vec, data.size());
}

// A Chunk message of at most `max` data bytes, whose data are written in place: fill data(),
// then finish(n, ...) with the count written. One buffer per chunk, no copy of the bytes but
// for a short last piece (n < max), which is built again at its size.
class ChunkWriter {
 public:
  ChunkWriter(std::size_t max, std::size_t header) : fbb_(max + header), max_(max), header_(header) {
    fbb_.ForceVectorAlignment(max, 1, kPayloadAlignment);
    std::uint8_t* at = nullptr;
    vec_ = ChunkData(fbb_.CreateUninitializedVector(max, 1, &at));
    data_ = at;
  }
  ChunkWriter(const ChunkWriter&) = delete;
  ChunkWriter& operator=(const ChunkWriter&) = delete;

  // Where to write the bytes: valid until finish().
  std::span<std::uint8_t> data() { return {data_, max_}; }

  // The message with the first `n` bytes of data() (n <= max), or an empty piece for n = 0.
  template <class Finish>
  SentPiece finish(std::size_t n, Finish&& finish) {
    if (n == 0) return {};
    if (n < max_) return chunk_piece(std::span<const std::uint8_t>(data_, n), header_, finish);
    finish(fbb_, vec_);  // the vector's bytes move with the buffer if it grows: found again from its end
    return finished_chunk(fbb_, vec_, n);
  }

 private:
  flatbuffers::FlatBufferBuilder fbb_;
  std::size_t max_, header_;
  ChunkData vec_;
  std::uint8_t* data_ = nullptr;
};

}  // namespace muster::detail
