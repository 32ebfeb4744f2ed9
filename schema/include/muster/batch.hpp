// batch.hpp — the Batch envelope (PROTOCOL.md §2.2): several whole messages for one peer carried
// in one ZeroMQ message, written by musterd, the C++ worker SDK and the C++ client library, read
// by all three (and by the fuzz targets, through broker/inbound).
// Owns: writing items on 8-byte boundaries and finishing the envelope of each root type;
// listing the items of a received Batch with the envelope's own rules checked.
// Must never: look inside an item (each is read as if it had come alone, by the reader of its
// root type, which refuses a Batch inside a Batch), or enclose a message that has a payload
// frame (the caller sends such a message alone).
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <flatbuffers/flatbuffers.h>

#include "muster/wire/common_generated.h"

namespace muster {

// The four roots with a body union, each of which has a Batch member.
enum class BatchRoot { Worker, Daemon, Client, Reply };

// Collects finished messages for one peer and finishes them as one Batch message. Reused: after
// clear() it keeps its buffers, so a turn's batch costs no allocation once warm.
class BatchWriter {
 public:
  // Appends a copy of one finished message of the root the batch will be finished as.
  void add(std::span<const std::uint8_t> message);
  std::size_t count() const { return count_; }
  // The bytes added so far (items, not counting the envelope's few bytes per item).
  std::size_t bytes() const { return bytes_; }
  // With count() == 1: the one message, to be sent alone (it needs no envelope).
  std::span<const std::uint8_t> only() const { return first_; }
  // With count() >= 2: finishes the Batch (root `root`; `worker_id` for BatchRoot::Worker, which
  // requires one) and returns the builder holding it, for the caller to send.
  flatbuffers::FlatBufferBuilder& finish(BatchRoot root, std::string_view worker_id = {});
  // With count() >= 2, instead of finish() and a copy of the builder's bytes: finishes the Batch
  // and hands its whole buffer over. `raw` is the caller's, to free with delete[] (flatbuffers'
  // default allocator), once done with `bytes`, the Batch inside it (musterd: in libzmq's free
  // function, after the send). The writer is cleared and starts its next batch in a new buffer of
  // 1.5x the largest recent batch, so a stream of batches neither copies one nor grows the buffer
  // in steps (each step copies what is written). A Batch under a quarter of its buffer is copied
  // into a buffer of its own size instead (the writer keeps its buffer): `reserved`, the size of
  // the buffer at `raw`, is never more than 4x the Batch.
  struct Released {
    std::uint8_t* raw = nullptr;
    std::span<const std::uint8_t> bytes;
    std::size_t reserved = 0;
  };
  Released release(BatchRoot root, std::string_view worker_id = {});
  void clear();

 private:
  void write_item(std::span<const std::uint8_t> message);
  static constexpr std::size_t kInitialBytes = 4096;
  flatbuffers::FlatBufferBuilder fbb_{kInitialBytes};
  std::vector<flatbuffers::Offset<wire::BatchItem>> items_;
  std::vector<std::uint8_t> first_;  // the first message, written only once a second comes
  flatbuffers::uoffset_t item_vtable_ = 0;  // where fbb_'s first BatchItem put its vtable (0: none yet)
  std::size_t count_ = 0, bytes_ = 0;
  std::size_t next_bytes_ = kInitialBytes;    // release(): the next buffer's size
  std::size_t buffer_bytes_ = kInitialBytes;  // the size fbb_'s buffer was made with
};

// The items of a verified Batch that arrived as the message `whole`, in order. Empty with
// `error` set when the envelope breaks a rule of §2.2: no items, an item without a message, or
// an item that does not start on an 8-byte boundary of `whole` (its payloads would be misaligned).
struct BatchItems {
  std::vector<std::span<const std::uint8_t>> items;
  std::string error;
};
BatchItems batch_items(const wire::Batch& batch, std::span<const std::uint8_t> whole);

}  // namespace muster
