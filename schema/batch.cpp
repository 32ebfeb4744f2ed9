// batch.cpp — see batch.hpp.
#include "muster/batch.hpp"

#include <algorithm>
#include <cstring>

#include <fmt/format.h>

#include "muster/messages.hpp"

namespace muster {

void BatchWriter::write_item(std::span<const std::uint8_t> message) {
  // The item's bytes start on an 8-byte boundary (PROTOCOL.md §3 rule 3 holds inside them).
  fbb_.ForceVectorAlignment(message.size(), 1, 8);
  auto bytes = fbb_.CreateVector(message.data(), message.size());
  if (item_vtable_ == 0) {
    // The buffer's first item: built as a table (EndTable writes its vtable), whose place is
    // then read back from the table's vtable offset (soffset: vtable - table, PROTOCOL.md §3).
    auto item = wire::CreateBatchItem(fbb_, bytes);
    const std::uint8_t* table = fbb_.GetCurrentBufferPointer() + (fbb_.GetSize() - item.o);
    item_vtable_ = item.o + static_cast<flatbuffers::uoffset_t>(flatbuffers::ReadScalar<flatbuffers::soffset_t>(table));
    items_.push_back(item);
    return;
  }
  // Every later item: the same 8 bytes EndTable would leave once it found the vtable it just
  // wrote equal to the first item's and dropped it (dedup): [vtable offset][message offset].
  // Written directly (EndTable's vtable, its compare and its scratch cost ~200 instructions an
  // item, in each of the three processes that batch).
  fbb_.PushElement(fbb_.ReferTo(bytes.o));
  const auto table = fbb_.GetSize() + static_cast<flatbuffers::uoffset_t>(sizeof(flatbuffers::soffset_t));
  fbb_.PushElement(static_cast<flatbuffers::soffset_t>(item_vtable_) - static_cast<flatbuffers::soffset_t>(table));
  items_.push_back(flatbuffers::Offset<wire::BatchItem>(table));
}

void BatchWriter::add(std::span<const std::uint8_t> message) {
  if (count_ == 0) {
    first_.assign(message.begin(), message.end());
  } else {
    if (count_ == 1) write_item(first_);
    write_item(message);
  }
  ++count_;
  bytes_ += message.size();
}

flatbuffers::FlatBufferBuilder& BatchWriter::finish(BatchRoot root, std::string_view worker_id) {
  auto batch = wire::CreateBatch(fbb_, fbb_.CreateVector(items_)).Union();
  switch (root) {
    case BatchRoot::Worker: {
      auto id = fbb_.CreateString(worker_id.data(), worker_id.size());
      wire::WorkerMessageBuilder b(fbb_);
      b.add_worker_id(id);
      b.add_body_type(wire::WorkerBody::Batch);
      b.add_body(batch);
      fbb_.Finish(b.Finish(), wire::WorkerMessageIdentifier());
      break;
    }
    case BatchRoot::Daemon:
      fbb_.Finish(wire::CreateDaemonMessage(fbb_, wire::DaemonBody::Batch, batch), wire::DaemonMessageIdentifier());
      break;
    case BatchRoot::Client:
      fbb_.Finish(wire::CreateClientMessage(fbb_, 0, wire::ClientBody::Batch, batch), wire::ClientMessageIdentifier());
      break;
    case BatchRoot::Reply:
      fbb_.Finish(wire::CreateClientReply(fbb_, 0, wire::ReplyBody::Batch, batch), wire::ClientReplyIdentifier());
      break;
  }
  return fbb_;
}

BatchWriter::Released BatchWriter::release(BatchRoot root, std::string_view worker_id) {
  finish(root, worker_id);
  const std::size_t size = fbb_.GetSize();
  // The next buffer's size: up at once to 1.5x this batch, down slowly (by 1/8 a batch), so a
  // run of batches of varying size rarely grows one in steps (each step copies what is written).
  // (A multiple of 8, as the builder rounds its buffer's size: it stays exactly this.)
  next_bytes_ = (std::max({kInitialBytes, size + size / 2, next_bytes_ - next_bytes_ / 8}) + 7) & ~std::size_t{7};
  if (size * 4 < buffer_bytes_) {
    // Small next to its buffer (a builder only grows past buffer_bytes_ for a batch bigger than
    // it): copied into a buffer of its own size, so that a batch left waiting (in libzmq, in an
    // outbox) holds at most 4x its bytes; the writer keeps its buffer for the next batch.
    auto* copy = new std::uint8_t[size];
    std::memcpy(copy, fbb_.GetBufferPointer(), size);
    clear();
    return {copy, {copy, size}, size};
  }
  std::size_t reserved = 0, offset = 0;
  std::uint8_t* raw = fbb_.ReleaseRaw(reserved, offset);
  fbb_ = flatbuffers::FlatBufferBuilder(next_bytes_);
  buffer_bytes_ = next_bytes_;
  clear();
  return {raw, {raw + offset, size}, reserved};
}

void BatchWriter::clear() {
  fbb_.Clear();
  item_vtable_ = 0;
  items_.clear();
  first_.clear();
  count_ = bytes_ = 0;
}

BatchItems batch_items(const wire::Batch& batch, std::span<const std::uint8_t> whole) {
  BatchItems out;
  auto* items = batch.items();
  if (!items || items->size() == 0) {
    out.error = "Batch without items";
    return out;
  }
  out.items.reserve(items->size());
  for (flatbuffers::uoffset_t i = 0; i < items->size(); ++i) {
    auto* m = items->Get(i)->message();
    if (!m) {
      out.error = fmt::format("Batch item {} has no message", i);
    } else if ((m->data() - whole.data()) % kPayloadAlignment != 0) {
      out.error = fmt::format("Batch item {} does not start on an 8-byte boundary of the batch", i);
    }
    if (!out.error.empty()) {
      out.items.clear();
      return out;
    }
    out.items.emplace_back(m->data(), m->size());
  }
  return out;
}

}  // namespace muster
