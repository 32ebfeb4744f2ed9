// worker.hpp — the C++ worker SDK: declare nodes, connect to musterd, serve requests.
// Owns: the worker side of PROTOCOL.md §7 (attach, confirmation pongs, heartbeats, re-attach,
// abort, detach, items §7.8, chunked values §7.9), a pool of `capacity` handler threads, and
// handlers run on the socket thread for nodes declared HandlerThread::Socket.
// Must never: run more than `capacity` handlers at once, answer a request twice, let a
// handler's exception escape (it becomes a Failure), send a chunk past the caller's credit, or
// hand a handler chunked bytes whose size or sha256 differ from the reference.
//
// Usage:
//   muster::Worker w({.capacity = 4});
//   w.node({.name = "hello", .inputs = {{.name = "name", .type = "string"}}, ...},
//          [](muster::Context& ctx) { return muster::Map{{"greeting", "Hello"}}; });
//   return w.run();   // until SIGINT/SIGTERM or stop()
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <span>
#include <stdexcept>
#include <string>
#include <vector>

#include "muster/node_spec.hpp"
#include "muster/secure_connect.hpp"
#include "muster/value.hpp"
#include "muster/wire/common_generated.h"

namespace muster {

using ErrorCode = wire::ErrorCode;

// Throw from a handler to fail the request: WorkerError (the default, the node's own code
// failed) or InvalidRequest (inputs or parameters it cannot accept). A worker sends no other
// code (PROTOCOL.md §6): any other is sent as WorkerError, with its message.
class WorkError : public std::runtime_error {
 public:
  explicit WorkError(const std::string& message, ErrorCode code = ErrorCode::WorkerError)
      : std::runtime_error(message), code_(code) {}
  ErrorCode code() const { return code_; }

 private:
  ErrorCode code_;
};

// Thrown by Context::emit when the caller asked for no items (WorkRequest.stream_window_items
// 0, PROTOCOL.md §7.8): the handler's author learns it at once. Uncaught, it fails the call as
// any exception does (WorkerError).
class StreamNotRequested : public std::logic_error {
 public:
  explicit StreamNotRequested(const std::string& node)
      : std::logic_error("node '" + node + "' emitted an item, but its caller asked for no items "
                         "(call it with a stream: Client::stream, `muster call --stream`)") {}
};

namespace detail {
struct InputFeed;  // worker.cpp's side of one chunked input (worker_chunks.hpp)
}

// A bytes input read incrementally (Context::input_stream): the bytes of a chunked input as
// they arrive, the worker granting the caller more credit (4 MiB ahead, kChunkWindowBytes) only
// as the handler reads, so a value of any size passes in bounded memory; or an inline value.
// Read it from the handler's thread only, once, in order.
class InputStream {
 public:
  InputStream() = default;
  // The value's size in bytes, known before any byte is read.
  std::uint64_t size() const { return size_; }
  // The next bytes, up to buffer.size(): their count, 0 only at the end. At the end of a chunked
  // value its size and sha256 are checked: a mismatch throws WorkError(InvalidRequest) "input
  // <port>: chunked stream N: sha256 mismatch". Throws WorkError if the request is aborted
  // (cancel, deadline, shutdown, musterd restarted) while it waits for bytes. Chunks lost on the
  // way are asked for again (WorkerOptions::resume_after, PROTOCOL.md §7.9): the reader only waits.
  std::size_t read(std::span<std::uint8_t> buffer);
  // The next piece as it arrived (no copy; valid until the next call): empty only at the end.
  // Checks and throws as read().
  std::span<const std::uint8_t> next();
  // The rest, whole (holds it in memory: for small values).
  Bytes read_all();
  // Bytes handed out so far.
  std::uint64_t position() const { return position_; }

 private:
  friend struct WorkerImpl;
  friend class Context;
  std::shared_ptr<detail::InputFeed> feed_;  // a chunked value; else `inline_`
  Bytes inline_;
  std::span<const std::uint8_t> piece_;  // what next() returned last, the part read() did not take
  std::uint64_t size_ = 0, position_ = 0;
};

// The bytes of an output that a handler produces without holding them
// (Context::output_stream): read once, in order, while the worker sends them as chunks within
// the caller's credit. The size need not be known ahead: the Chunked reference (size, sha256) is
// computed while sending and goes in the Result after the last chunk. The worker keeps the last
// kResumeKeepBytes (16 MiB, chunking.hpp) read, to send again what the caller did not get
// (PROTOCOL.md §7.9 R10); asked to go back further, the call fails WorkerError.
class OutputSource {
 public:
  virtual ~OutputSource() = default;
  // Fills up to buffer.size() bytes; returns their count, 0 only at the end. May throw: the call
  // fails as if the handler had thrown.
  virtual std::size_t read(std::span<std::uint8_t> buffer) = 0;
};

struct CallerInfo {
  std::string identity, name, workspace, role, trace_id;
};

// What a handler gets. Valid only during the handler call; progress() may be called from the
// handler's thread only.
class Context {
 public:
  const Map& inputs() const { return inputs_; }
  // Moves the inputs out (inputs() is empty after): a handler that returns or keeps them
  // whole saves copying them, which for a large payload is a copy of every byte.
  Map take_inputs() { return std::move(inputs_); }
  const Map& parameters() const { return parameters_; }
  const CallerInfo& caller() const { return caller_; }
  std::uint64_t request_id() const { return request_id_; }
  std::uint32_t attempt() const { return attempt_; }
  const std::string& node() const { return node_; }
  // When the daemon will give up on this request.
  std::chrono::steady_clock::time_point deadline() const { return deadline_; }

  // An input by name; throws WorkError(InvalidRequest) if missing.
  const Value& input(std::string_view name) const;
  // An input or `fallback` if absent or null.
  Value input_or(std::string_view name, Value fallback) const;

  void progress(std::uint64_t step, std::uint64_t total, const std::string& message = {});

  // Sends one item (a partial result) to the caller, before the handler returns its outputs
  // (PROTOCOL.md §7.8); items arrive in the order emitted, then the terminal reply. Blocks
  // while the caller's credit window is full; returns false, sending nothing, once the call is
  // aborted (cancel, deadline, shutdown): the handler should then return. Throws
  // StreamNotRequested if the caller reads no items (see streaming()), WorkError if the item is
  // larger than the daemon's message limit. From the handler's thread only. A
  // HandlerThread::Socket handler cannot wait: beyond the window it gets WorkError.
  bool emit(const Map& values);
  // A bytes input read as a stream (InputStream): for a port declared in
  // NodeOptions::streamed_inputs a chunked value arrives as the handler reads it (bounded
  // memory); any other bytes input (inline, or chunked and assembled before the handler ran)
  // is read from memory. Throws WorkError(InvalidRequest) if the input is missing or not
  // bytes. The same stream on every call for a port.
  InputStream& input_stream(std::string_view name);

  // Makes output `name` the bytes `source` gives, sent as a chunked value after the handler
  // returns (an entry of the same name in the returned Map is replaced). The caller must take
  // chunked outputs (WorkRequest.chunk_window_bytes > 0; a durable call does not): else the
  // call fails WorkerError saying so.
  void output_stream(std::string name, std::unique_ptr<OutputSource> source);

  // Whether the caller reads items (emit() would not throw StreamNotRequested).
  bool streaming() const { return static_cast<bool>(emit_); }
  // True once the daemon told the worker to stop this request (timeout, cancel, shutdown).
  bool aborted() const { return aborted_ && aborted_->load(std::memory_order_relaxed); }
  // Sleeps up to `d`, waking early on abort. Returns false if aborted.
  bool sleep_for(std::chrono::milliseconds d) const;

 private:
  friend class Worker;
  friend struct WorkerImpl;
  Map inputs_, parameters_;
  CallerInfo caller_;
  std::uint64_t request_id_ = 0;
  std::uint32_t attempt_ = 1;
  std::string node_;
  std::chrono::steady_clock::time_point deadline_{};
  std::shared_ptr<std::atomic<bool>> aborted_;
  std::function<void(std::uint64_t, std::uint64_t, const std::string&)> progress_;
  std::function<bool(const Map&)> emit_;  // empty: the caller reads no items
  std::map<std::string, InputStream, std::less<>> input_streams_;
  std::vector<std::pair<std::string, std::unique_ptr<OutputSource>>> output_sources_;
};

using Handler = std::function<Map(Context&)>;

// Which thread runs a node's handler.
enum class HandlerThread {
  // One of the `capacity` handler threads (the default). A handler may block, sleep, do I/O,
  // watch aborted(); heartbeats go on meanwhile.
  Pool,
  // The worker's socket thread, as soon as the request is read: no hand-off to a handler
  // thread and back (two thread wake-ups per call fewer). Only for handlers that return in
  // microseconds and never block: while one runs, the worker reads nothing else (pings,
  // aborts and other requests wait), and aborted() cannot become true during the call.
  Socket,
};

// How a node's requests are served, beyond its spec.
struct NodeOptions {
  HandlerThread thread = HandlerThread::Pool;
  // Bytes inputs the handler reads with Context::input_stream: a chunked value of one of these
  // ports is handed over as it arrives, unread (in inputs() it stays the ChunkedValue
  // reference). A chunked value of any other port is received whole and checked before the
  // handler runs, and the handler sees plain Bytes. Known before the handler starts, so the
  // worker knows whether to receive a value ahead or leave it to the handler.
  std::vector<std::string> streamed_inputs;
};

struct NodeDeclaration {
  NodeSpec spec;
  Handler handler;
  HandlerThread thread = HandlerThread::Pool;
  std::vector<std::string> streamed_inputs;  // NodeOptions::streamed_inputs
};

struct WorkerOptions {
  std::string worker_id;         // default: "<hostname>-<pid>" (sanitized)
  // One endpoint each, or comma-separated lists naming both daemons of a failover pair
  // (DURABILITY.md §12), in the same order: the worker attaches to whichever is active and
  // follows a failover by itself (no Ping for ping_interval x liveness: it attaches again, its
  // Attach reaching only a daemon whose connection is up).
  std::string request_address;   // default: ipc://<runtime dir>/request.sock
  std::string response_address;  // default: ipc://<runtime dir>/response.sock
  std::uint32_t capacity = 1;
  bool insecure = false;         // allow tcp:// without CURVE
  // For tcp:// endpoints: data dir, identity name (default "worker"), enrollment address and
  // token file. The role is always "worker"; `insecure` above wins over secure.insecure.
  SecureOptions secure;
  std::chrono::milliseconds drain_timeout{10000};  // on stop: how long in-flight work may finish
  bool handle_signals = true;    // SIGINT/SIGTERM start a graceful stop
  // A bytes output larger than this travels chunked (PROTOCOL.md §7.9) when the caller takes
  // chunked outputs (WorkRequest.chunk_window_bytes > 0); else it goes inline, and one that
  // does not fit the daemon's message limit fails the call WorkerError. Chunks are 1 MiB.
  std::uint64_t chunk_threshold = 8u << 20;
  // Resumption of a chunked input (PROTOCOL.md §7.9 R2, R3): a stream that lost chunks (a
  // gap), or brought none of the bytes granted for this long, is asked again from the bytes the
  // worker has (a resume Credit), repeated each further resume_after.
  std::chrono::milliseconds resume_after{2000};
  // run() sets glibc's malloc to reuse freed memory for large messages instead of mapping
  // fresh pages per message (muster/allocator.hpp): a 1 MiB payload no longer costs hundreds
  // of page faults per copy. Process-wide; set false if the application tunes malloc itself.
  // (Independently of it, the buffers of answers over 16 KiB are reused by the SDK itself: an
  // answer is kept until musterd confirms it, about a ping interval, and the freed buffers stay
  // with the worker for the next answers until unused for 5 s, so a worker's RSS after a burst
  // of large answers comes down about 5 s later.)
  bool reuse_memory = true;
  // Answers kept until musterd confirms them (PROTOCOL.md §7.7): once those not yet confirmed
  // add up to this many bytes, the worker asks at once, with a Pong repeating the last ping's
  // seq, instead of waiting for the next ping. So a worker answering large results at a high
  // rate holds about this much, not a ping interval's worth (1 MiB answers at 500/s: ~500 MiB).
  // 0: only at pings.
  std::uint64_t confirm_kept_bytes = 32u << 20;
  // One connection instead of two (PROTOCOL.md §7.10): the worker asks musterd to send it
  // everything on its response connection and connects no SUB socket when musterd agrees
  // (Attached.direct), about 25 KiB less resident per worker in musterd. After that connection
  // is re-established (a broken link, a musterd restart) it attaches again at once. An older
  // musterd does not know it: the worker then connects its SUB as before. false: always SUB.
  bool direct = true;
};

class Worker {
 public:
  explicit Worker(WorkerOptions options = {});
  ~Worker();
  Worker(const Worker&) = delete;
  Worker& operator=(const Worker&) = delete;

  // Declares a node. Throws std::invalid_argument for an invalid or duplicate name.
  Worker& node(NodeSpec spec, Handler handler, HandlerThread thread = HandlerThread::Pool);
  // The same with NodeOptions, e.g. {.streamed_inputs = {"data"}}. Throws std::invalid_argument
  // also if a streamed input is not a declared input of type bytes.
  Worker& node(NodeSpec spec, Handler handler, NodeOptions options);

  // Thread-safe, also while run() is serving: replaces the whole node list. The worker
  // attaches again with the new list (requests in flight finish on the old handlers); with
  // an empty list it detaches until nodes are declared again.
  void set_nodes(std::vector<NodeDeclaration> nodes);

  // Connects, attaches and serves until stop() or a signal; then detaches after finishing
  // in-flight work (bounded by drain_timeout), never attaching again: if the daemon shows it
  // no longer knows the worker (Rejected{reattach}, a new instance), what runs is aborted.
  // An answer larger than the daemon's --max-message-bytes is sent as a WorkerError Failure
  // naming both sizes. Returns 0 on a clean stop, non-zero if the daemon refused the worker
  // for good (e.g. invalid declaration).
  int run();

  // Thread-safe: begin a graceful stop.
  void stop();

  const std::string& worker_id() const;

 private:
  std::unique_ptr<struct WorkerImpl> impl_;
};

}  // namespace muster
