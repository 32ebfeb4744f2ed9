// worker_input_feed_test.cpp — the C++ worker's chunked input between its threads
// (worker/cpp/worker_chunks.hpp, InputFeed), without sockets: the socket thread's chunks are
// kept in the messages that brought them, not copied, and the reader gets the bytes intact and
// in order after the socket thread released those messages, across a resent chunk that is
// trimmed to its new bytes, a duplicate dropped and a gap that asks for a resume (§7.9 R1, R2).
#include <doctest/doctest.h>

#include <cstring>
#include <memory>
#include <vector>

#include <zmq.hpp>

#include "../../worker/cpp/worker_chunks.hpp"  // the worker SDK's internal header (muster_worker)
#include "muster/sha256.hpp"

using namespace muster;

namespace {

// Byte i of the value: every 256 KiB differs.
std::uint8_t byte_at(std::uint64_t i) { return static_cast<std::uint8_t>((i * 29) ^ (i >> 18)); }

// A Chunk-like message: `header` bytes, then the value's bytes [offset, offset + n).
constexpr std::size_t kHeader = 48;
zmq::message_t chunk_message(std::uint64_t offset, std::size_t n) {
  zmq::message_t m(kHeader + n);
  auto* p = static_cast<std::uint8_t*>(m.data());
  std::memset(p, 0xee, kHeader);
  for (std::size_t k = 0; k < n; ++k) p[kHeader + k] = byte_at(offset + k);
  return m;
}
std::span<const std::uint8_t> data_of(const zmq::message_t& m) {
  return {static_cast<const std::uint8_t*>(m.data()) + kHeader, m.size() - kHeader};
}

// Allocations of a chunk message's size, filled: memory freed before is handed out again here
// and overwritten (malloc serves blocks under its mmap threshold from the heap it freed).
struct Scribble {
  std::vector<std::unique_ptr<std::uint8_t[]>> blocks;
  void fill(std::size_t size, int count = 8) {
    for (int i = 0; i < count; ++i) {
      blocks.emplace_back(new std::uint8_t[size]);
      std::memset(blocks.back().get(), 0x5a, size);
    }
  }
};

}  // namespace

TEST_CASE("worker input feed: chunks kept in their messages, read intact and in order after the messages are "
          "released, across a trimmed resend, a duplicate and a gap") {
  // Chunks of 100 KiB (shared, not copied: over kShareReceivedMinBytes, and under malloc's mmap
  // threshold, so a freed one is reused by the scribbles).
  const std::size_t chunk = 100 << 10;
  const std::uint64_t size = 20 * chunk + 7;
  std::vector<std::uint8_t> value(size);
  for (std::uint64_t i = 0; i < size; ++i) value[i] = byte_at(i);
  ChunkedValue ref;
  ref.stream = 1;
  ref.size = size;
  ref.sha256 = sha256(std::span<const std::uint8_t>(value));
  detail::InputFeed feed("data", ref, ChunkDelivery::Stream, std::make_shared<std::atomic<bool>>(false));
  REQUIRE(feed.initial_grant() >= size);  // one window: everything may come before a read

  Scribble scribble;
  // Where each piece queued lay in its message, and whether it is kept there (else copied: the
  // short last one).
  std::vector<std::pair<const std::uint8_t*, bool>> where;
  auto push = [&](std::uint64_t offset, std::size_t n, std::size_t skip = 0) {
    auto m = chunk_message(offset, n);
    where.emplace_back(data_of(m).data() + skip, n - skip >= kShareReceivedMinBytes);
    auto resume = feed.push(offset, data_of(m), &m);
    m = zmq::message_t();  // the socket thread is done with it
    scribble.fill(kHeader + n);
    return resume;
  };
  std::uint64_t offset = 0;
  for (int i = 0; i < 10; ++i, offset += chunk) CHECK_FALSE(push(offset, chunk).has_value());
  // A resend from 20 KiB back (its sender went back): only its last 80 KiB are new (R1).
  CHECK_FALSE(push(offset - (20 << 10), chunk, 20 << 10).has_value());
  offset += chunk - (20 << 10);
  // One it has whole is dropped; one past a gap too, and asks again from what it has (R2).
  CHECK_FALSE(feed.push(0, data_of(chunk_message(0, chunk)), nullptr).has_value());
  auto gap = chunk_message(offset + 1, chunk);
  CHECK(feed.push(offset + 1, data_of(gap), &gap) == offset);
  for (; offset < size; offset += chunk) CHECK_FALSE(push(offset, std::min<std::uint64_t>(chunk, size - offset)).has_value());

  // The reader: every piece where it lay in its message (no copy; but the short last one), its
  // bytes the value's, in order, though the messages were released and their memory could have
  // been reused.
  std::uint64_t at = 0;
  std::size_t pieces = 0;
  for (auto piece = feed.next(); !piece.empty(); piece = feed.next(), ++pieces) {
    REQUIRE(pieces < where.size());
    CHECK((piece.data() == where[pieces].first) == where[pieces].second);
    scribble.fill(kHeader + chunk);
    REQUIRE(at + piece.size() <= size);
    CHECK(std::memcmp(piece.data(), value.data() + at, piece.size()) == 0);
    at += piece.size();
  }
  CHECK(at == size);  // and the size and sha256 were checked: next() threw nothing
  CHECK(pieces == where.size());
}

TEST_CASE("worker input feed: a small chunk is copied, and the whole value taken is the value") {
  std::vector<std::uint8_t> value(3000);
  for (std::size_t i = 0; i < value.size(); ++i) value[i] = byte_at(i);
  ChunkedValue ref;
  ref.stream = 3;
  ref.size = value.size();
  ref.sha256 = sha256(std::span<const std::uint8_t>(value));
  detail::InputFeed feed("small", ref, ChunkDelivery::Buffer, std::make_shared<std::atomic<bool>>(false));
  for (std::uint64_t offset = 0; offset < value.size(); offset += 1000) {
    auto m = chunk_message(offset, 1000);
    CHECK_FALSE(feed.push(offset, data_of(m), &m).has_value());
    std::memset(m.data(), 0, m.size());  // a copy was queued: the message may change or go
  }
  auto whole = feed.take_all();
  CHECK(std::vector<std::uint8_t>(whole.begin(), whole.end()) == value);
}
