// worker_chunks.hpp — the C++ worker's chunked values (PROTOCOL.md §7.9), between its socket
// thread and a handler thread: the input streams the socket thread fills with the caller's
// chunks and a handler thread reads (granting credit as it reads), and the credit of the output
// streams a handler thread sends on.
// Owns: the hand-over of one request's chunks and credits between the two threads.
// Must never: block the socket thread (it only queues and wakes), let a reader take bytes past
// the size or a value whose sha256 differs, or let a sender pass the caller's grant.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>

#include <zmq.hpp>

#include "muster/chunking.hpp"
#include "muster/value.hpp"
#include "muster/worker.hpp"

namespace muster {

// The most chunked streams of one side of a call (PROTOCOL.md §7.9, kMaxChunkStreams).
inline constexpr std::uint32_t kMaxWorkerChunkStreams = 16;

// Credit{request_id, stream, items 0, bytes} and Chunk{request_id, stream, offset, data} from the
// worker (data aligned on 8 bytes, as §7.9 asks of writers).
zmq::message_t worker_credit_message(const std::string& worker_id, std::uint64_t request_id, std::uint32_t stream,
                                     std::uint64_t bytes);
zmq::message_t worker_chunk_message(const std::string& worker_id, std::uint64_t request_id, std::uint32_t stream,
                                    std::uint64_t offset, std::span<const std::uint8_t> data);

namespace detail {

// One chunked input of a request. The socket thread push()es the chunks musterd forwards; one
// handler thread reads them (next()), each checked by a ChunkReceiver (offset, size, sha256),
// and grants the caller more as it reads, through `grant`, set before the first read. The
// socket thread holds at most the window: musterd forwards nothing beyond the worker's grant.
struct InputFeed {
  InputFeed(std::string port, ChunkedValue ref, ChunkDelivery delivery, std::shared_ptr<std::atomic<bool>> aborted);

  // The first grant, sent when the WorkRequest comes (0: an empty value, none to send).
  std::uint64_t initial_grant() const { return granted_; }
  std::uint32_t stream() const { return stream_; }
  std::uint64_t size() const { return size_; }

  // Socket thread: a chunk musterd forwarded (copied; nothing is checked but the grant here).
  void push(std::uint64_t offset, std::span<const std::uint8_t> data);
  // Socket thread: the request was aborted, or the stream can never complete: wakes the reader.
  void wake();

  // Reader: the next chunk, checked, or an empty span at the end once the size and sha256 are
  // checked. Throws WorkError(InvalidRequest) "input <port>: chunked stream N: ..." for a bad
  // value, WorkError when the request is aborted while it waits.
  std::span<const std::uint8_t> next();
  // Reader: the whole value, checked (the feed must be ChunkDelivery::Buffer).
  Bytes take_all();

  std::function<void(std::uint64_t granted)> grant;  // sends a Credit with this total
  const std::string port;

 private:
  struct Piece {
    std::uint64_t offset;
    Bytes data;
  };
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Piece> queue_;  // what the socket thread received and the reader has not taken
  std::optional<std::string> push_error_;
  std::uint64_t pushed_ = 0;  // bytes queued in total (socket thread, under mu_)
  std::atomic<std::uint64_t> granted_;  // the grant sent so far (written by the reader)
  ChunkReceiver receiver_;  // the reader's, never touched by the socket thread
  Bytes current_;           // the chunk next() returned last
  std::shared_ptr<std::atomic<bool>> aborted_;
  std::uint32_t stream_;
  std::uint64_t size_;
};

}  // namespace detail

// The grants of one request's output streams (2, 4, …): each starts at the WorkRequest's
// chunk_window_bytes; the socket thread raises them from the caller's Credits, the handler
// thread waits on them before each chunk.
struct OutputCredits {
  explicit OutputCredits(std::uint64_t initial) : initial_(initial) {}
  // Socket thread: a Credit for `stream` (the highest total counts).
  void grant(std::uint32_t stream, std::uint64_t bytes);
  void wake();
  // Handler thread: waits until `stream` may carry bytes past `sent`; returns the grant, or
  // nullopt once `aborted` is set.
  std::optional<std::uint64_t> wait_beyond(std::uint32_t stream, std::uint64_t sent, const std::atomic<bool>& aborted);
  std::uint64_t initial() const { return initial_; }
  // Set once a chunk was sent: from then on the call cannot be re-run (§7.9 rule 5).
  std::atomic<bool> started{false};

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::map<std::uint32_t, std::uint64_t> granted_;
  std::uint64_t initial_;
};

// Sends the bytes `next_piece` gives (at most its argument each time, valid until its next call;
// empty at the end) as chunked stream `stream` within `credits`, each chunk through `send`;
// returns the reference to put in the Result (size and sha256 computed while sending). Throws
// WorkError if aborted.
using PieceReader = std::function<std::span<const std::uint8_t>(std::size_t max)>;
ChunkedValue send_chunked(const PieceReader& next_piece, std::uint32_t stream,
                          OutputCredits& credits, const std::atomic<bool>& aborted, std::size_t chunk_bytes,
                          const std::function<void(std::uint64_t offset, std::span<const std::uint8_t>)>& send);

}  // namespace muster
