// worker.hpp — the C++ worker SDK: declare nodes, connect to musterd, serve requests.
// Owns: the worker side of PROTOCOL.md §7 (attach, confirmation pongs, heartbeats, re-attach,
// abort, detach), a pool of `capacity` handler threads, and handlers run on the socket thread
// for nodes declared HandlerThread::Socket.
// Must never: run more than `capacity` handlers at once, answer a request twice, or let a
// handler's exception escape (it becomes a Failure).
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
#include <memory>
#include <stdexcept>
#include <string>

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

struct NodeDeclaration {
  NodeSpec spec;
  Handler handler;
  HandlerThread thread = HandlerThread::Pool;
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
  // run() sets glibc's malloc to reuse freed memory for large messages instead of mapping
  // fresh pages per message (muster/allocator.hpp): a 1 MiB payload no longer costs hundreds
  // of page faults per copy. Process-wide; set false if the application tunes malloc itself.
  bool reuse_memory = true;
};

class Worker {
 public:
  explicit Worker(WorkerOptions options = {});
  ~Worker();
  Worker(const Worker&) = delete;
  Worker& operator=(const Worker&) = delete;

  // Declares a node. Throws std::invalid_argument for an invalid or duplicate name.
  Worker& node(NodeSpec spec, Handler handler, HandlerThread thread = HandlerThread::Pool);

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
