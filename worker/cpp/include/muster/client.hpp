// client.hpp — the C++ client library: submit calls to musterd, cancel them, list nodes and
// workers, read status, fetch durable jobs. Used by the `muster` CLI, the bridge and the
// benchmarks.
// Owns: the client side of PROTOCOL.md §8: request ids, correlation of replies, the
// client-side guard that turns a silent daemon into UNAVAILABLE instead of a hang, and the
// caller's side of durable calls (docs/DURABILITY.md §6): their job ids, JobResume after a
// reconnect, exactly one terminal reply per call to the application, JobAck once handed over.
// Also the caller's side of chunked values (PROTOCOL.md §7.9, docs/STREAMS.md §3): large bytes
// inputs and inputs given as a ByteSource are sent as chunks within the worker's credit, and
// chunked outputs are received, checked (size, sha256) and returned as Bytes or written to an
// OutputSink, granting credit as they are taken. Chunks are sent and read by poll()/call()
// (and submit() for what the credit already allows): no thread of its own.
// Must never: be used from two threads at once (one Client per thread, or external locking);
// send a chunk past the worker's credit; hand out a chunked output that did not check out.
#pragma once

#include <chrono>
#include <cstdint>
#include <iterator>
#include <functional>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <variant>
#include <vector>

#include "muster/byte_source.hpp"
#include "muster/output_sink.hpp"
#include "muster/value.hpp"
#include "muster/secure_connect.hpp"
#include "muster/value_json.hpp"
#include "muster/wire/common_generated.h"

namespace muster {

// A terminal failure of a call, with the protocol's error code.
class CallError : public std::runtime_error {
 public:
  CallError(wire::ErrorCode code, const std::string& message)
      : std::runtime_error(message), code_(code) {}
  wire::ErrorCode code() const { return code_; }

 private:
  wire::ErrorCode code_;
};

struct ClientOptions {
  // One endpoint, or a comma-separated list naming both daemons of a failover pair
  // (DURABILITY.md §12): the client sends to whichever is up and resumes its durable calls on
  // the new active daemon after a failover.
  std::string client_address;  // default: ipc://<runtime dir>/client.sock
  bool insecure = false;       // allow tcp:// without CURVE
  // For tcp:// endpoints: data dir, identity name (default "client"), role ("client", or
  // "admin" for admin commands over TCP), enrollment address and token file.
  SecureOptions secure{.role = "client"};
  // How long to wait past a call's own timeout (or for a query) before giving up on a
  // daemon that does not answer: the call then fails with UNAVAILABLE.
  std::chrono::milliseconds grace{5000};
  // A durable call whose connection to musterd is lost waits this long for musterd to come
  // back (the same or a new instance); on reconnect it is resumed (JobResume) and its one
  // terminal reply arrives as if nothing happened. Past it: UNAVAILABLE, naming the job id
  // (the call itself lives on in musterd's journal: `muster job get ID`).
  // It is also how long a resumable call (CallOptions::resumable) waits for the connection to
  // come back to the same musterd (PROTOCOL.md §8.3), at most until its deadline.
  std::chrono::milliseconds durable_reconnect_wait{60000};
  // Hold the Submits of submit() and send them together, as one Batch message (PROTOCOL.md
  // §2.2), at the next poll(), call(), cancel(), query or flush(), or once 64 KiB are held; only
  // once the daemon has shown it reads batches on this connection (it sent one). Cheaper per call
  // when many are in flight. With it, call flush() before waiting on fd(): a held Submit is not
  // sent until then. Replies come in batches whether or not this is set.
  bool coalesce_submits = false;
  // A top-level bytes input (or an input source) larger than this travels chunked (PROTOCOL.md
  // §7.9): as Chunk messages of 1 MiB within the worker's credit, musterd holding at most one
  // window of it. Smaller ones travel inline, in the Submit. Keep it under musterd's
  // --max-message-bytes (16 MiB).
  std::uint64_t chunk_threshold = 8u << 20;
  // Resumption of a chunked stream (PROTOCOL.md §7.9 R2, R3): a worker's output stream that
  // lost chunks (a gap), or brought none of the bytes granted for this long, is asked again
  // from the bytes this client has (a resume Credit), repeated each further resume_after.
  std::chrono::milliseconds resume_after{2000};
};

// The end user a gateway acts for (ClientMessage.on_behalf_of, docs/PROTOCOL.md §8.1). musterd
// honours it only from an identity enrolled with role gateway for `workspace` (or from the local
// owner over ipc://); anyone else's message is refused with PERMISSION_DENIED.
struct OnBehalfOf {
  std::string user, workspace;
  std::string role;  // the user's role at the gateway (read, call, admin); "" reads as "user"
  friend bool operator==(const OnBehalfOf&, const OnBehalfOf&) = default;
};
using Assertion = std::optional<OnBehalfOf>;

struct CallOptions {
  Assertion on_behalf_of;        // the call is the user's: scheduled and seen in their workspace
  std::uint64_t timeout_ms = 0;  // 0: the node's default, else the daemon's
  Map parameters;
  std::string trace_id;
  std::function<void(std::uint64_t step, std::uint64_t total, const std::string& message)> on_progress;
  // Journal the call (docs/DURABILITY.md): musterd keeps it across its own crash or restart,
  // and this client resumes it when it reconnects (ClientOptions::durable_reconnect_wait).
  // A call to a node declared durable is durable whatever this says. A durable call carries
  // its values inline: a bytes input (or input source) over ClientOptions::chunk_threshold is
  // refused INVALID_REQUEST before anything is sent, and it offers no window for chunked outputs.
  bool durable = false;
  // Called once musterd has journaled a durable call, with its job id (before any reply).
  std::function<void(std::uint64_t job_id)> on_job;
  // A durable call's outcome is acknowledged (JobAck: musterd forgets it) once handed to the
  // application; with keep_outcome it is not, and musterd keeps it for job_get until its
  // --result-ttl-ms.
  bool keep_outcome = false;
  // Read the call's items (partial results, PROTOCOL.md §7.8): poll() delivers them as
  // ItemEvents, in order, before the terminal event; each one handed out lets the worker run
  // one further ahead. The window is how far the worker may run ahead of this client, in items
  // and in bytes of item values (musterd may cut it: --stream-window-items/-bytes). 0 items:
  // no items (a handler that emits gets StreamNotRequested). Client::stream() sets 64 items,
  // 4 MiB. Not with durable (INVALID_REQUEST).
  std::uint32_t stream_window_items = 0;
  std::uint64_t stream_window_bytes = 0;  // 0: musterd's default (4 MiB)
  // Inputs read from a source (a file: FileSource) instead of held in `inputs`, added to them
  // as bytes inputs under these names (a name also in `inputs` is INVALID_REQUEST). One larger
  // than ClientOptions::chunk_threshold travels chunked, read a chunk at a time as the worker
  // grants credit (hashed first in one pass unless its sha256 is known); a smaller one is read
  // whole and sent inline. A source must stay readable, unchanged, until the call ends: a read
  // that fails ends the call INVALID_REQUEST "input <name>: ..." (cancelled on the daemon).
  std::vector<std::pair<std::string, std::shared_ptr<ByteSource>>> input_sources;
  // Where the worker's chunked outputs go (e.g. DirectorySink: one file per output port):
  // written as they arrive, in bounded memory, and committed once the Result named them and
  // their size and sha256 checked out; the outputs then hold the Chunked reference
  // ({stream, size, sha256}) for them. Null: held in memory and returned as Bytes. A call that
  // fails, is cancelled or loses its connection leaves nothing in the sink.
  std::shared_ptr<OutputSink> output_sink;
  // Keep the call across a break of the connection to musterd (PROTOCOL.md §8.3): musterd gives
  // it a token (in an Accepted) and, when the connection comes back to the same musterd within
  // ClientOptions::durable_reconnect_wait (and before the call's deadline), this client binds
  // the call to it with CallResume and it goes on where it was — its chunked streams from the
  // bytes each side has, its items if none was lost (else UNAVAILABLE "... item(s) were lost in
  // the reconnect"), its terminal reply kept by musterd if it was lost in the break. Not
  // resumable: a break ends it UNAVAILABLE. Unset: resumable when the call streams — chunked
  // inputs (ClientOptions::chunk_threshold, input_sources), items (stream_window_items) or an
  // output_sink — and not durable (a durable call resumes by its job id). A musterd started with
  // --resume-keep-ms 0, or older, gives no token: the call is then not resumable.
  std::optional<bool> resumable;
};

// Events delivered by poll() for requests made with submit().
struct ProgressEvent {
  std::uint64_t step = 0, total = 0;
  std::string message;
};
struct ResultEvent {
  Map outputs;
};
struct FailureEvent {
  wire::ErrorCode code = wire::ErrorCode::Internal;
  std::string message;
};
// One item of a call that asked for them (CallOptions::stream_window_items).
struct ItemEvent {
  std::uint64_t seq = 0;    // 0, 1, 2, ... in order
  Map values;
  std::uint64_t bytes = 0;  // its encoded size, as counted against the window
};
struct ClientEvent {
  std::uint64_t request_id = 0;
  std::variant<ProgressEvent, ResultEvent, FailureEvent, ItemEvent> body;
  std::uint64_t job_id = 0;  // a durable call's job id (0: not durable, or not known yet)
  bool terminal() const {
    return std::holds_alternative<ResultEvent>(body) || std::holds_alternative<FailureEvent>(body);
  }
};

class Client;

// The items of one call, then its outputs (Client::stream). Iterate it for the items (each a
// Map, in order; the loop ends when the terminal reply came), then outputs() for the Result's
// outputs (CallError for a Failure, also one that came after some items). Breaking out of the
// loop and destroying the stream before the end cancels the call (its worker is told to
// abort). Not copyable; must not outlive its Client.
//   auto s = client.stream("count", {{"n", 5}});
//   for (const muster::Map& item : s) use(item);
//   muster::Map outputs = s.outputs();
class CallStream {
 public:
  CallStream(CallStream&& other) noexcept;
  CallStream& operator=(CallStream&&) = delete;
  ~CallStream();

  // The next item (blocks for it), or nullopt once the terminal reply came.
  std::optional<Map> next();
  // The Result's outputs, after the items (the items not read yet are read and dropped);
  // throws CallError for a Failure.
  Map& outputs();
  // Cancels the call (CANCELLED: outputs() throws it unless the terminal reply came first).
  void cancel();
  std::uint64_t request_id() const { return id_; }
  std::uint64_t items_received() const { return items_; }

  class iterator {
   public:
    using value_type = Map;
    using difference_type = std::ptrdiff_t;
    iterator() = default;
    explicit iterator(CallStream* s) : stream_(s) { ++*this; }
    Map& operator*() { return *item_; }
    Map* operator->() { return &*item_; }
    iterator& operator++() {
      item_ = stream_->next();
      return *this;
    }
    void operator++(int) { ++*this; }
    bool operator==(std::default_sentinel_t) const { return !item_; }

   private:
    CallStream* stream_ = nullptr;
    std::optional<Map> item_;
  };
  iterator begin() { return iterator(this); }
  std::default_sentinel_t end() { return {}; }

 private:
  friend class Client;
  CallStream(Client& client, std::uint64_t id, CallOptions options);
  Client* client_;
  std::uint64_t id_;
  CallOptions options_;  // its on_progress is called while items are read
  std::uint64_t items_ = 0;
  bool done_ = false;
  std::optional<Map> outputs_;
  std::optional<CallError> error_;
};

class Client {
 public:
  explicit Client(ClientOptions options = {});
  ~Client();
  Client(Client&&) noexcept;
  Client& operator=(Client&&) noexcept;

  // Blocking call: the outputs, or CallError. Items, if the options ask for them, are dropped.
  Map call(const std::string& node, const Map& inputs, const CallOptions& options = {});
  // A call that reads items (partial results, PROTOCOL.md §7.8): its items, then its outputs
  // (CallStream). The window defaults to 64 items and 4 MiB (options.stream_window_*).
  CallStream stream(const std::string& node, const Map& inputs, CallOptions options = {});

  // Asynchronous use: submit returns the request id; poll delivers its events. A request
  // whose daemon stays silent past its timeout + grace gets a FailureEvent{UNAVAILABLE}.
  std::uint64_t submit(const std::string& node, const Map& inputs, const CallOptions& options = {});
  // A request submitted on behalf of a user is cancelled on behalf of the same user.
  void cancel(std::uint64_t request_id);
  // A terminal event of a durable call is handed out once (a second reply for the same job,
  // sent again after a reconnect, is dropped) and acknowledged to musterd (JobAck) when the
  // application comes back for more (the next poll or submit) or destroys the Client: by
  // then it has what it was handed. call() likewise.
  std::vector<ClientEvent> poll(std::chrono::milliseconds wait);
  // Sends the Submits held by ClientOptions::coalesce_submits now (poll() does it too).
  void flush();
  std::size_t open_requests() const;
  // The job id of an open durable request once musterd accepted it; 0 before, or not durable.
  std::uint64_t job_id(std::uint64_t request_id) const;
  // The socket's file descriptor (for integrating poll() into another event loop).
  int fd() const;

  // Queries, as JSON (the shapes `muster nodes|workers|status --json` print). With `as`, the
  // answer is scoped to the asserted user's workspace.
  Json nodes(const Assertion& as = {});
  Json workers(const Assertion& as = {});
  Json status(const Assertion& as = {});
  // Per-node statistics and recent failures of this client's workspace, or of the asserted
  // user's (`muster nodes --stats --json`): {"nodes": [{workspace, node, workers, in_flight,
  // queue_depth, completed, failed, failures: {CODE: n}, rate_1m, queue_wait, service}],
  // "recent_failures": [{workspace, node, code, message, age_ms}]}; queue_wait and service are
  // {count, sum_us, p50_us, p90_us, p99_us, upper_bounds_us: [...], counts: [...]}
  // (docs/PROTOCOL.md §8).
  Json node_stats(const Assertion& as = {});

  // Durable jobs of this client's workspace (or the asserted user's), docs/DURABILITY.md §6;
  // a job of another workspace, or one acknowledged or expired, is CallError{INVALID_REQUEST}
  // "no such job". A job as JSON: {job_id, state: queued|running|recovering|finished, node,
  // workspace, submitted_ms, worker_id, attempts} and, finished, {code, finished_ms}.
  // job_get: an open job as above; a finished one as {job_id, state: "finished", outputs}
  // (a Result) or {job_id, state: "finished", code, message} (a Failure). Fetching does not
  // forget it: job_ack does, once the caller has what it needs.
  Json job_get(std::uint64_t job_id, const Assertion& as = {});
  Json job_list(const Assertion& as = {});  // oldest first: the first page of job_list_page({})
  // One page of them: {jobs: [...], more: bool}, at most `limit` jobs (0: musterd's maximum,
  // 1000) with a job id above `after_job_id`; `more`: ask again after the last one.
  struct JobListPage {
    std::uint32_t limit = 0;
    std::uint64_t after_job_id = 0;
  };
  Json job_list_page(const JobListPage& page, const Assertion& as = {});
  // Cancels an open job (its caller gets CANCELLED); the job as JSON after it.
  Json job_cancel(std::uint64_t job_id, const Assertion& as = {});
  // Tells musterd these jobs' outcomes are held: it forgets them. No reply.
  void job_ack(const std::vector<std::uint64_t>& job_ids, const Assertion& as = {});

  // Admin commands (local owner over ipc://, or an identity enrolled as admin).
  struct MintedToken {
    std::string token, id, expires_at;
  };
  MintedToken token_create(const std::string& role, std::uint64_t ttl_ms, std::uint32_t uses,
                           const std::string& workspace, const std::string& name);
  Json token_list();
  Json token_revoke(const std::string& id);
  Json key_list();
  Json key_revoke(const std::string& id);

 private:
  friend class CallStream;
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace muster
