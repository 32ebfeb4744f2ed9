// buffer_pool_test.cpp — the worker SDK's pool of large answer buffers (worker/cpp/buffer_pool.hpp):
// a freed buffer is handed out again for an answer of about the same size instead of fresh
// memory, never twice at once, also when libzmq frees the message that carried it, and goes
// back to malloc once unused for the pool's idle time.
#include <doctest/doctest.h>

#include <chrono>
#include <optional>
#include <vector>

#include <flatbuffers/flatbuffers.h>
#include <zmq.hpp>

#include "../../worker/cpp/buffer_pool.hpp"  // the worker SDK's internal header (muster_worker)
#include "muster/frames.hpp"

using muster::detail::BufferPool;
using namespace std::chrono_literals;

TEST_CASE("BufferPool::size_class rounds up by at most a sixteenth, to a class of its own") {
  for (std::size_t n : {100u, 4096u, 16385u, 1u << 20, (1u << 20) + 1200, 3u << 20, (5u << 20) - 1}) {
    auto c = BufferPool::size_class(n);
    CHECK(c >= n);
    CHECK(c <= n + n / 16);
    CHECK(BufferPool::size_class(c) == c);
  }
  // a 1 MiB answer (payload plus its message) and a slightly larger one share a class
  CHECK(BufferPool::size_class((1u << 20) + 300) == BufferPool::size_class((1u << 20) + 9000));
  CHECK(BufferPool::size_class((1u << 20) + 300) == (1u << 20) + (64u << 10));
  CHECK(BufferPool::size_class(1u << 20) != BufferPool::size_class((1u << 20) + 1));
}

TEST_CASE("BufferPool hands a freed buffer out again, never one in use, and frees it once idle") {
  BufferPool pool(10s);
  const std::size_t n = (1u << 20) + 500;
  auto* a = pool.allocate(n);
  auto* b = pool.allocate(n);
  CHECK(a != b);  // both in use
  std::memset(a, 1, n);
  std::memset(b, 2, n);
  CHECK(pool.pooled_bytes() == 0);
  pool.deallocate(a, n);
  CHECK(pool.pooled_bytes() == BufferPool::size_class(n));
  CHECK(pool.allocate(n + 100) == a);           // the same class: the freed buffer
  auto* other = pool.allocate(3u << 20);        // another class: not that one
  CHECK(other != a);
  CHECK(other != b);
  CHECK(pool.pooled_bytes() == 0);
  pool.deallocate(a, n);
  pool.deallocate(b, n);
  pool.deallocate(other, 3u << 20);
  CHECK(pool.pooled_bytes() == 2 * BufferPool::size_class(n) + BufferPool::size_class(3u << 20));

  auto now = BufferPool::Clock::now();
  CHECK(pool.release_idle(now) == 0);  // used just now
  CHECK(pool.release_idle(now + 11s) == 2 * BufferPool::size_class(n) + BufferPool::size_class(3u << 20));
  CHECK(pool.pooled_bytes() == 0);
  auto* fresh = pool.allocate(n);  // from malloc again (the pool holds nothing)
  CHECK(pool.pooled_bytes() == 0);
  pool.deallocate(fresh, n);
}

TEST_CASE("A large message built on the pool returns its buffer when libzmq frees the message") {
  BufferPool pool(10s);
  const std::size_t payload = 1u << 20;
  auto build = [&] {
    flatbuffers::FlatBufferBuilder fbb(payload + 256, &pool);
    std::uint8_t* at = nullptr;
    flatbuffers::Offset<flatbuffers::Vector<std::uint8_t>> vec(fbb.CreateUninitializedVector(payload, 1, &at));
    std::memset(at, 0x5a, payload);
    fbb.Finish(vec);
    return muster::take_message(fbb);  // over kCopyMessageMax: the builder's buffer, handed over
  };
  std::optional<zmq::message_t> first = build();
  const auto* first_data = static_cast<const std::uint8_t*>(first->data());
  CHECK(pool.pooled_bytes() == 0);  // in the message
  zmq::message_t shared;
  shared.copy(*first);  // a kept answer shares the message (PROTOCOL.md §7.7)
  first.reset();
  CHECK(pool.pooled_bytes() == 0);  // still kept
  shared = zmq::message_t();
  CHECK(pool.pooled_bytes() == BufferPool::size_class(payload + 256));
  auto second = build();
  CHECK(pool.pooled_bytes() == 0);
  CHECK(static_cast<const std::uint8_t*>(second.data()) == first_data);  // the same buffer, reused
  CHECK(second.size() > payload);
  CHECK(static_cast<const std::uint8_t*>(second.data())[second.size() - 1] == 0x5a);
}
