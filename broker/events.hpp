// events.hpp — the vocabulary of the broker core: what comes in (events, already decoded and
// verified by the socket loop) and what goes out (actions for the socket loop to send).
// Owns: plain data types only, so the core can be driven by unit tests without sockets.
// Must never: include ZeroMQ or anything that does I/O.
#pragma once

#include <algorithm>
#include <charconv>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include "muster/frames.hpp"
#include "muster/node_spec.hpp"
#include "muster/wire/common_generated.h"
#include "snapshots.hpp"

namespace muster::broker {

using Clock = std::chrono::steady_clock;
using TimePoint = Clock::time_point;
using Millis = std::chrono::milliseconds;
using ErrorCode = wire::ErrorCode;

// A slice of a received message, kept alive by `owner`: payloads travel through the daemon
// without being copied until they are written into the outgoing buffer.
struct Payload {
  std::shared_ptr<const void> owner;
  std::span<const std::uint8_t> bytes;
  // The bytes are a Values buffer the socket loop verified with the message it came in
  // (inbound.cpp: a nested `Values` field): a reader of its values need not verify it again.
  // False for anything else (raw chunk bytes, a payload a unit test made up).
  bool verified_values = false;
  static Payload copy_of(std::span<const std::uint8_t> b) { return copy_of_both(b, {}).first; }
  // Copies of `a` and `b` in one allocation of their size, each rounded up to 8 bytes so both
  // start 8-byte aligned (a queued request holds only these, not the message they came in).
  static std::pair<Payload, Payload> copy_of_both(std::span<const std::uint8_t> a,
                                                  std::span<const std::uint8_t> b) {
    const std::size_t words_a = (a.size() + 7) / 8, words = words_a + (b.size() + 7) / 8;
    std::shared_ptr<std::uint64_t[]> buf = std::make_shared_for_overwrite<std::uint64_t[]>(words);
    auto* at = reinterpret_cast<std::uint8_t*>(buf.get());
    std::copy(a.begin(), a.end(), at);
    std::copy(b.begin(), b.end(), at + 8 * words_a);
    return {Payload{buf, {at, a.size()}}, Payload{buf, {at + 8 * words_a, b.size()}}};
  }
};

// The authenticated identity behind a connection, resolved by the socket loop.
struct Caller {
  std::string identity = "local";
  std::string name = "local";
  std::string workspace = "default";
  std::string role = "admin";
  bool operator==(const Caller&) const = default;
};

// ---- events ---------------------------------------------------------------------------

struct AttachEvent {
  std::string worker_id;
  std::string hostname;
  std::string sdk;
  std::uint32_t pid = 0;
  std::string session;
  std::uint32_t capacity = 1;
  std::vector<NodeSpec> nodes;
  bool payload_frames = false;  // takes WorkRequest inputs as a frame of their own
  bool no_answer_acks = false;  // wants no Ack for its Progress/Result/Failure (PROTOCOL.md §7.7)
  bool batches = false;         // reads Batch on its topic (PROTOCOL.md §2.2; the socket loop's)
  bool idle_pongs = false;      // may answer only every k-th ping while idle (PROTOCOL.md §7.3)
  bool direct = false;          // wants everything on its response connection (PROTOCOL.md §7.10)
};

struct SubmitEvent {
  std::uint64_t client_request_id = 0;
  std::string node;
  Payload inputs;
  Payload parameters;
  std::uint64_t timeout_ms = 0;
  bool want_progress = false;
  bool want_accepted = false;
  std::string trace_id;
  bool payload_frames = false;  // takes the Result's outputs as a frame of their own
  bool durable = false;         // journaled (docs/DURABILITY.md): Accepted carries its job id
  bool batch_replies = false;   // the connection reads Batch (PROTOCOL.md §2.2; the socket loop's)
  std::uint32_t stream_window_items = 0;  // reads the call's Items (PROTOCOL.md §7.8); 0: none
  std::uint64_t stream_window_bytes = 0;
  std::uint64_t chunk_window_bytes = 0;   // takes chunked outputs (PROTOCOL.md §7.9); 0: none
  bool resumable = false;  // may be bound to the caller's next connection (PROTOCOL.md §8.3)
};

// Credit of a call's stream from its caller (PROTOCOL.md §7.8): cumulative totals; a resume
// Credit of a chunk stream also sends its sender back to `resume_offset` (§7.9 Resumption).
struct CreditEvent {
  std::uint64_t client_request_id = 0;
  std::uint32_t stream = 0;
  std::uint64_t items = 0, bytes = 0;
  bool resume = false;
  std::uint64_t resume_offset = 0;  // only with `resume`
};

// A Chunk of one of a call's streams from its caller (PROTOCOL.md §7.9): its input bytes.
struct ChunkEvent {
  std::uint64_t client_request_id = 0;
  std::uint32_t stream = 0;
  std::uint64_t offset = 0;
  Payload data;
};

// ---- durable jobs (docs/DURABILITY.md §6): every one scoped to the caller's workspace ----

// One durable call to bind to the sending connection under `request_id` (a new id of its).
struct JobRef {
  std::uint64_t job_id = 0;
  std::uint64_t request_id = 0;
};
// The message's own request_id is never answered; each JobRef is, under its own request_id.
struct JobResumeEvent {
  std::uint64_t request_id = 0;
  std::vector<JobRef> jobs;
};
// The caller holds these jobs' terminal replies: the daemon forgets them. Never answered.
struct JobAckEvent {
  std::uint64_t request_id = 0;
  std::vector<std::uint64_t> job_ids;
};
struct JobGetEvent {
  std::uint64_t request_id = 0;
  std::uint64_t job_id = 0;
};
struct JobListEvent {
  std::uint64_t request_id = 0;
  std::uint32_t limit = 0;          // at most this many jobs (0, or above kJobListMax: kJobListMax)
  std::uint64_t after_job_id = 0;   // only jobs above this one (the next page)
};
// The most jobs one JobInfoList carries (docs/DURABILITY.md §6): a caller pages with after_job_id.
inline constexpr std::uint32_t kJobListMax = 1000;
struct JobCancelEvent {
  std::uint64_t request_id = 0;
  std::uint64_t job_id = 0;
};

// ---- resumable calls (PROTOCOL.md §8.3): a caller binds them to its new connection ----

// One resumable call to bind to the sending connection under `request_id`, with what the caller
// received of it: its items (every seq below items_received) and the bytes of each chunked
// output stream it has (`outputs`: (stream, offset)).
struct CallRefEvent {
  std::uint64_t call_token = 0;
  std::uint64_t request_id = 0;
  std::uint64_t items_received = 0;
  std::vector<std::pair<std::uint32_t, std::uint64_t>> outputs;
};
// The message's own request_id is not answered (but a refusal); each CallRef is, under its own.
struct CallResumeEvent {
  std::uint64_t request_id = 0;
  std::vector<CallRefEvent> calls;
};

// ---- actions --------------------------------------------------------------------------

// Who a WorkRequest is run for. The caller is the core's interned copy (shared by every request
// of that caller, never copied per call); `trace_id` is the client's, or empty for the default
// "<instance>-<request id>" (append_default_trace_id), which the socket loop writes straight
// into the message instead of the core formatting a string per call.
struct CallerContext {
  std::shared_ptr<const Caller> who;
  std::string trace_id;
};
inline void append_default_trace_id(std::string& out, std::string_view instance, std::uint64_t request_id) {
  out.append(instance);
  out.push_back('-');
  char digits[24];
  auto end = std::to_chars(digits, digits + sizeof digits, request_id).ptr;
  out.append(digits, end);
}

// Request socket (PUB), the worker's topic.
struct SendWorkRequest {
  std::string worker_id;
  std::uint64_t request_id = 0;
  std::string node;
  Payload inputs;
  Payload parameters;
  std::uint64_t timeout_ms = 0;
  std::uint32_t attempt = 1;
  CallerContext caller;
  bool payload_frames = false;  // the worker takes `inputs` as a frame of their own
  std::uint32_t stream_window_items = 0;  // the caller reads items: the initial grant (§7.8)
  std::uint64_t stream_window_bytes = 0;
  std::uint64_t chunk_window_bytes = 0;   // each output stream's initial grant (§7.9); 0: none
};
// Request socket, the worker's topic: a chunk of the caller's input stream (PROTOCOL.md §7.9).
struct SendChunk {
  std::string worker_id;
  std::uint64_t request_id = 0;
  std::uint32_t stream = 0;
  std::uint64_t offset = 0;
  Payload data;
};
// Request socket, the worker's topic: a call's grant grew (PROTOCOL.md §7.8), or (`resume`) the
// worker is to send a chunk stream again from `resume_offset` (§7.9 Resumption).
struct SendCredit {
  std::string worker_id;
  std::uint64_t request_id = 0;
  std::uint32_t stream = 0;
  std::uint64_t items = 0, bytes = 0;
  bool resume = false;
  std::uint64_t resume_offset = 0;  // only with `resume`
};
struct SendAbort {
  std::string worker_id;
  std::uint64_t request_id = 0;
  ErrorCode code = ErrorCode::Cancelled;
  std::string reason;
};
// Request socket: broadcast when worker_id is empty, else the worker's topic.
struct SendPing {
  std::string worker_id;
  std::uint64_t seq = 0;
};

// Response socket replies.
struct AttachedReply {
  std::string worker_id;
  bool no_answer_acks = false;  // the opt-in is honoured (always, when the worker asked)
  std::uint32_t idle_pong_every = 0;  // granted k (Attached.idle_pong_every; 0: not granted)
  bool direct = false;                // granted: its messages go on its connection (§7.10)
};
struct AckReply {
  bool late = false;
  std::uint64_t pong_seq = 0;          // the reply to a Pong: its seq
  std::vector<std::uint64_t> missing;  // of that Pong's `answered`: answers never received
};
struct RejectedReply {
  ErrorCode code = ErrorCode::BadMessage;
  std::string message;
  bool reattach = false;
};
struct ReplyToWorker {
  Peer peer;
  std::variant<AttachedReply, AckReply, RejectedReply> body;
};

// Client socket.
struct AcceptedBody {
  bool queued = false;
  std::uint64_t job_id = 0;  // a durable call's job id; 0: not durable
  std::uint64_t call_token = 0;  // a resumable call's token (PROTOCOL.md §8.3); 0: not resumable
};
struct ProgressBody {
  std::uint64_t step = 0, total = 0;
  std::string message;
};
// One item of a call's stream, forwarded as the worker sent it (PROTOCOL.md §7.8).
struct ItemBody {
  std::uint64_t seq = 0;
  Payload values;
};
struct ResultBody {
  Payload outputs;
  bool payload_frames = false;  // the client takes `outputs` as a frame of their own
  std::uint64_t job_id = 0;     // a durable call's job id; 0: not durable
};
struct FailureBody {
  ErrorCode code = ErrorCode::Internal;
  std::string message;
  std::uint64_t job_id = 0;     // a durable call's job id; 0: not durable
};
// Where a durable call is (wire::JobState, reply.fbs).
enum class JobState : std::uint8_t { Queued = 0, Running = 1, Recovering = 2, Finished = 3 };
struct JobInfoBody {
  std::uint64_t job_id = 0;
  JobState state = JobState::Queued;
  std::string node, workspace;
  std::uint64_t submitted_ms = 0;  // wall clock, ms since the Unix epoch
  std::string worker_id;           // Running: the worker that has it
  std::uint32_t attempts = 0;
  ErrorCode code = ErrorCode::None;  // Finished: None for a Result, else the Failure's code
  std::uint64_t finished_ms = 0;     // Finished: wall clock
};
struct JobInfoListBody {
  std::vector<JobInfoBody> jobs;  // oldest first
  bool more = false;              // jobs after the last one were left out (the limit)
};
// A chunk of the worker's output stream, or the worker's credit for the caller's input stream
// (PROTOCOL.md §7.9), forwarded to the caller.
struct ChunkBody {
  std::uint32_t stream = 0;
  std::uint64_t offset = 0;
  Payload data;
};
struct CreditBody {
  std::uint32_t stream = 0;
  std::uint64_t bytes = 0;
  bool resume = false;              // the caller sends the input stream again from resume_offset
  std::uint64_t resume_offset = 0;  // (§7.9 Resumption); only with `resume`
};
// One pushed event of a Watch (wire::Event, PROTOCOL.md §8.2). What it shows is shared by
// every watcher it goes to; `seq` is the watcher's own.
enum class WatchEventKind : std::uint8_t {
  Snapshot = 0, NodeAdded, NodeChanged, NodeRemoved, WorkerJoined, WorkerChanged, WorkerLeft,
  CallState, Overflow
};
struct WatchContent {
  std::vector<NodeSnapshot> nodes;      // Snapshot: all; Node*: the one
  std::vector<WorkerSnapshot> workers;  // Snapshot: all; Worker*: the one
  std::vector<CallSnapshot> calls;      // Snapshot: the caller's open calls; CallState: the one
};
struct WatchEventBody {
  std::uint64_t seq = 0;
  WatchEventKind kind = WatchEventKind::Snapshot;
  std::shared_ptr<const WatchContent> content;  // null: nothing (Overflow)
};
// The client connection a reply goes to, shared instead of copied: a reply to a request points
// at the core's interned Peer of its connection (one per connection, Interner), so a reply costs
// no copy of the Peer's strings (over ipc one of them is longer than std::string's inline buffer:
// a malloc and a free per reply, ~700 instructions a call; docs/PERFORMANCE.md, session 11). Made
// from a plain Peer (a refusal, a watch event), it holds a copy of its own. Never changes the Peer.
class SharedPeer {
 public:
  SharedPeer() = default;  // null: assigned before the reply is sent
  SharedPeer(std::shared_ptr<const Peer> p) : p_(std::move(p)) {}          // NOLINT: implicit
  SharedPeer(const Peer& p) : p_(std::make_shared<const Peer>(p)) {}        // NOLINT: implicit
  const Peer& operator*() const { return *p_; }
  const Peer* operator->() const { return p_.get(); }

 private:
  std::shared_ptr<const Peer> p_;
};

using ClientReplyBody = std::variant<AcceptedBody, ProgressBody, ResultBody, FailureBody, JobInfoBody,
                                     JobInfoListBody, WatchEventBody, ItemBody, ChunkBody, CreditBody>;
struct ReplyToClient {
  SharedPeer peer;
  std::uint64_t request_id = 0;
  ClientReplyBody body;
  // Answers a message that opened no request (a Submit refused at once, a bad message): the
  // socket loop may drop it when the client has not read what it already holds (the
  // outbox's hard cap, docs/PROTOCOL.md §10). Every other reply is delivered while the
  // client is connected.
  bool refusal = false;
};

using Action =
    std::variant<SendWorkRequest, SendAbort, SendPing, ReplyToWorker, ReplyToClient, SendCredit, SendChunk>;

}  // namespace muster::broker
