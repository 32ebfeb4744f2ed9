// buffer_pool.hpp — (private to the C++ worker SDK) message buffers, reused.
// Owns: the buffers of the messages over kCopyMessageMax that the worker builds with its answer
// builders (Results, Items, Failures and Progress that large): a FlatBuffers allocator whose
// freed buffers wait, grouped by size class, for the next large message, and go back to malloc
// once unused for `idle`.
// Why: the worker keeps every answer it sends until the daemon confirms it (PROTOCOL.md §7.7,
// about one ping interval), so a worker answering 1 MiB at 500 calls/s holds hundreds of MiB of
// answers and frees them in bulk at each confirmation; glibc then trims its heap, and every new
// answer faulted in fresh zero-filled pages (256 per MiB: docs/PERFORMANCE.md, "1 MiB calls,
// session 11"). Reused buffers are already mapped.
// Must never: hand out a buffer twice or keep one that is in use; hold memory longer than `idle`
// after its last use, once release_idle runs; block for longer than a list operation (libzmq's
// I/O thread frees sent messages through it).
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <map>
#include <mutex>
#include <vector>

#include <flatbuffers/flatbuffers.h>

namespace muster::detail {

class BufferPool final : public flatbuffers::Allocator {
 public:
  using Clock = std::chrono::steady_clock;

  explicit BufferPool(Clock::duration idle = std::chrono::seconds(5)) : idle_(idle) {}
  ~BufferPool() override;  // frees what it holds (buffers still in use are not its own)
  BufferPool(const BufferPool&) = delete;
  BufferPool& operator=(const BufferPool&) = delete;

  // The size a request of `n` bytes is served with: `n` rounded up to a sixteenth of the power
  // of two below it (at most 6.25 % more), so that answers of about the same size share buffers.
  static std::size_t size_class(std::size_t n);

  std::uint8_t* allocate(std::size_t size) override;
  void deallocate(std::uint8_t* p, std::size_t size) override;

  // Frees the buffers unused since before `now - idle`; also done by deallocate, at most once
  // per `idle`, so a worker still answering needs no call. Returns the bytes freed.
  std::size_t release_idle(Clock::time_point now);

  std::size_t pooled_bytes() const;  // waiting for reuse, not in use

  // The worker SDK's pool: never destroyed, as libzmq may free a sent message after main returns.
  static BufferPool& answers();

 private:
  struct Free {
    std::uint8_t* p;
    Clock::time_point since;
  };
  std::size_t release_locked(Clock::time_point now);

  const Clock::duration idle_;
  mutable std::mutex mu_;
  std::map<std::size_t, std::vector<Free>> free_;  // by size class, oldest first
  std::size_t pooled_ = 0;
  Clock::time_point last_release_{};
};

}  // namespace muster::detail
