// worker.cpp — the C++ worker SDK's loop: one thread owns the sockets (DEALER, a SUB unless
// musterd sends everything on the DEALER (direct, PROTOCOL.md §7.10), and a PULL that collects
// answers from the handler threads) and runs HandlerThread::Socket handlers;
// `capacity` threads run the others, and everything of a request that waits on chunks: the
// socket thread only queues a chunk or records a Credit (worker_chunks.hpp) and never waits.
// Must never: attach again once it is stopping (it would leave a ghost worker behind that
// swallows calls), send a Failure code other than WorkerError or InvalidRequest, or send a
// message larger than the daemon's --max-message-bytes (Attached.max_message_bytes).
#include "muster/worker.hpp"

#include <unistd.h>

#include <array>
#include <cctype>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <mutex>
#include <random>
#include <thread>
#include <unordered_map>
#include <unordered_set>

#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <zmq.hpp>

#include "muster/endpoints.hpp"
#include "muster/align.hpp"
#include "muster/allocator.hpp"
#include "muster/batch_message.hpp"
#include "muster/frames.hpp"
#include "muster/messages.hpp"
#include "muster/process.hpp"
#include "muster/socket_poll.hpp"
#include "muster/spare_nodes.hpp"
#include "buffer_pool.hpp"
#include "worker_chunks.hpp"

namespace muster {

namespace {

using SteadyClock = std::chrono::steady_clock;

std::string str(const flatbuffers::String* s) { return s ? s->str() : std::string(); }
void assign(std::string& out, const flatbuffers::String* s) {
  if (s) out.assign(s->c_str(), s->size());
}

// Batches to the daemon (PROTOCOL.md §2.2): a message larger than this goes alone; a batch is
// sent when it holds kBatchMaxBytes (or the daemon's limit), and at the end of every loop turn.
constexpr std::size_t kBatchItemMax = 16 * 1024;
constexpr std::size_t kBatchMaxBytes = 64 * 1024;

std::string hostname() {
  char buf[256] = {};
  ::gethostname(buf, sizeof buf - 1);
  return buf;
}

std::string default_worker_id() {
  std::string id;
  for (char c : hostname())
    id += (std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.') ? c : '-';
  if (id.empty()) id = "worker";
  id = fmt::format("{}-{}", id.substr(0, 48), ::getpid());
  return id;
}

std::string random_session() {
  std::random_device rd;
  std::uniform_int_distribution<std::uint64_t> dist;
  return fmt::format("{:016x}{:016x}", dist(rd), dist(rd));
}

// The finished message as a zmq message: a small one copied out of its (reused) builder, a
// large one owning the builder's buffer, so it travels from a handler thread to the socket
// thread and out without being copied (a 1 MiB result was copied three more times on that way).
zmq::message_t finish(flatbuffers::FlatBufferBuilder& fbb, const std::string& worker_id,
                      wire::WorkerBody type, flatbuffers::Offset<void> body) {
  finish_worker_message(fbb, worker_id, type, body);
  return take_message(fbb);
}

// The builder for an answer, per thread (the socket thread and each handler thread answer):
// reused for small ones, so an answer costs no builder allocation; a large one's buffer comes
// from the answers' pool and goes back to it once sent and confirmed (buffer_pool.hpp).
flatbuffers::FlatBufferBuilder& answer_builder(std::size_t need) {
  thread_local MessageBuilders builders;
  thread_local flatbuffers::FlatBufferBuilder large(0, &detail::BufferPool::answers());
  if (need <= kCopyMessageMax) return builders.get(need);
  large = flatbuffers::FlatBufferBuilder(need, &detail::BufferPool::answers());
  return large;
}

zmq::message_t result_message(const std::string& worker_id, std::uint64_t request_id, const Map& outputs) {
  auto& fbb = answer_builder(encoded_size_hint(outputs) + 128 + worker_id.size());
  auto vec = create_nested_values(fbb, outputs);
  auto body = wire::CreateResult(fbb, request_id, vec);
  return finish(fbb, worker_id, wire::WorkerBody::Result, body.Union());
}

// A worker's Failure carries only a code a worker may send (worker_may_send, PROTOCOL.md §6):
// any other becomes WorkerError.
zmq::message_t failure_message(const std::string& worker_id, std::uint64_t request_id,
                                          ErrorCode code, const std::string& message) {
  if (!worker_may_send(code)) code = ErrorCode::WorkerError;
  auto& fbb = answer_builder(message.size() + 128 + worker_id.size());
  auto body = wire::CreateFailureDirect(fbb, request_id, code, message.c_str());
  return finish(fbb, worker_id, wire::WorkerBody::Failure, body.Union());
}

zmq::message_t progress_message(const std::string& worker_id, std::uint64_t request_id,
                                           std::uint64_t step, std::uint64_t total,
                                           const std::string& message) {
  auto& fbb = answer_builder(message.size() + 128 + worker_id.size());
  auto body = wire::CreateProgressDirect(fbb, request_id, step, total, message.c_str());
  return finish(fbb, worker_id, wire::WorkerBody::Progress, body.Union());
}

// One item of a call's stream (PROTOCOL.md §7.8); `values_bytes` receives the size counted
// against the credit (the nested Values buffer).
zmq::message_t item_message(const std::string& worker_id, std::uint64_t request_id, std::uint64_t seq,
                            const Map& values, std::uint64_t& values_bytes) {
  auto& fbb = answer_builder(encoded_size_hint(values) + 128 + worker_id.size());
  auto vec = create_nested_values(fbb, values);
  auto body = wire::CreateItem(fbb, request_id, seq, vec);
  auto message = finish(fbb, worker_id, wire::WorkerBody::Item, body.Union());
  auto* item = flatbuffers::GetRoot<wire::WorkerMessage>(message.data())->body_as_Item();
  values_bytes = item && item->values() ? item->values()->size() : 0;
  return message;
}

// The worker's side of one call's item stream (PROTOCOL.md §7.8): the grant (the WorkRequest's
// window, raised by each Credit to the highest totals seen) and what the handler has sent. The
// handler's thread waits on it in Context::emit; the socket thread grants and wakes it.
struct StreamCredit {
  std::mutex mu;
  std::condition_variable cv;
  std::uint64_t granted_items = 0, granted_bytes = 0;
  std::uint64_t sent_items = 0, sent_bytes = 0;  // sent_items is the next item's seq

  // The send rule: the item's own size does not count, only what was sent before it.
  bool may_send() const { return sent_items < granted_items && sent_bytes < granted_bytes; }
  void grant(std::uint64_t items, std::uint64_t bytes) {
    {
      std::lock_guard lock(mu);
      granted_items = std::max(granted_items, items);
      granted_bytes = std::max(granted_bytes, bytes);
    }
    cv.notify_all();
  }
  void wake() {
    { std::lock_guard lock(mu); }
    cv.notify_all();
  }
};

// Context::emit for a request with a stream: waits for credit (unless `can_wait` is false: a
// socket-thread handler, which gets WorkError instead), then sends the item with `send`.
// Returns false, sending nothing, once the request is aborted.
bool emit_item(const std::string& worker_id, std::uint64_t request_id, StreamCredit& credit,
               const std::atomic<bool>& aborted, const std::atomic<std::uint64_t>& max_message_bytes,
               bool can_wait, const Map& values, const std::function<void(zmq::message_t)>& send) {
  std::uint64_t seq = 0;
  {
    std::unique_lock lock(credit.mu);
    while (!aborted.load() && !credit.may_send()) {
      if (!can_wait)
        throw WorkError(fmt::format("item {} is beyond the caller's window ({} items, {} bytes) and a "
                                    "socket-thread handler cannot wait for credit",
                                    credit.sent_items, credit.granted_items, credit.granted_bytes));
      credit.cv.wait_for(lock, std::chrono::milliseconds(100));  // Abort and Credit notify; a bound all the same
    }
    if (aborted.load()) return false;
    seq = credit.sent_items;
  }
  std::uint64_t size = 0;
  auto message = item_message(worker_id, request_id, seq, values, size);
  if (auto limit = max_message_bytes.load(); limit && message.size() > limit)
    throw WorkError(fmt::format("item {} of {} bytes exceeds the daemon's limit of {} bytes (--max-message-bytes)",
                                seq, message.size(), limit));
  {
    std::lock_guard lock(credit.mu);
    ++credit.sent_items;
    credit.sent_bytes += size;
  }
  send(std::move(message));
  return true;
}

// Checks required ports and fills defaults. Throws WorkError(InvalidRequest).
void apply_ports(const std::vector<Port>& ports, Map& values, std::string_view what) {
  for (auto& p : ports) {
    const Value* v = values.find(p.name);
    if ((!v || v->is_null()) && p.default_value) {
      values.set(p.name, *p.default_value);
    } else if (!v && p.required) {
      throw WorkError(fmt::format("missing required {} '{}'", what, p.name), ErrorCode::InvalidRequest);
    }
  }
}

// What a handler gave, before the outputs that travel chunked are sent.
struct HandlerOutputs {
  Map outputs;
  std::vector<std::pair<std::string, std::unique_ptr<OutputSource>>> sources;
};

struct Job {
  std::uint64_t request_id = 0;
  std::uint64_t key = 0;  // the worker's local key of this request
  std::size_t node_index = 0;
  // What its handler gets: inputs, parameters, caller, attempt and deadline written here as the
  // WorkRequest is read (not moved over from copies of their own), the rest by call_handler.
  Context ctx;
  std::shared_ptr<std::atomic<bool>> aborted;
  std::shared_ptr<StreamCredit> stream;  // the caller reads items (PROTOCOL.md §7.8); else null
  std::shared_ptr<const std::vector<NodeDeclaration>> table;
  // Chunked inputs by port (§7.9); the caller's first window for chunked outputs
  // (WorkRequest.chunk_window_bytes; 0: it takes none), and their grants, made when the job is
  // registered (a socket-thread handler answered at once sends no chunk and needs none).
  std::vector<std::shared_ptr<detail::InputFeed>> feeds;
  std::uint64_t chunk_window = 0;
  std::shared_ptr<OutputCredits> output_credits;
  // Set once the handler returned (a socket-thread handler whose outputs must be chunked hands
  // the job to the pool with them).
  std::optional<HandlerOutputs> ready;
};

bool is_streamed(const NodeDeclaration& node, std::string_view port) {
  return std::find(node.streamed_inputs.begin(), node.streamed_inputs.end(), port) != node.streamed_inputs.end();
}

// Whether some input of `job` travels as chunks (§7.9): the request must wait for them.
bool has_chunked_inputs(const Job& job) {
  return std::any_of(job.ctx.inputs().begin(), job.ctx.inputs().end(),
                     [](const Map::Entry& e) { return e.second.kind() == ValueKind::Chunked; });
}

}  // namespace

struct WorkerImpl {
  WorkerOptions opt;
  using NodeTable = std::vector<NodeDeclaration>;
  // Replaced whole (never mutated) so handler threads can keep using the table they started with.
  std::shared_ptr<const NodeTable> nodes = std::make_shared<NodeTable>();
  std::mutex nodes_mu;
  std::shared_ptr<const NodeTable> pending_nodes;  // set by set_nodes(), taken by the loop
  bool detached_for_no_nodes = false;
  zmq::context_t ctx{1};
  std::string results_endpoint = fmt::format("inproc://muster-worker-results-{}", static_cast<void*>(this));
  // The loop waits on these two for reading: reached only through PolledSocket::use() or
  // read(), so the wait asks one only when it was used since it was last found not readable
  // (the results socket, idle while no handler runs on the pool, is never asked then).
  PolledSocket results{ctx, zmq::socket_type::pull};
  std::unique_ptr<PolledSocket> sub;     // null when asking for direct, and while it is granted
  std::unique_ptr<PolledSocket> dealer;
  std::string topic;  // the worker topic `sub` is subscribed to (Attached.topic); empty before
  // Direct (PROTOCOL.md §7.10), granted by the last Attached: replies and the daemon's messages
  // for this worker all come on `dealer`, in the order sent.
  bool direct = false;
  // Direct, from Attached until the Ack of a Pong: every Ping is answered (the confirming ping,
  // §7.1, comes on the same connection as the broadcast ones, and idle pongs must not skip it).
  bool answer_every_ping = false;
  // The dealer's connection events (asking for direct): once its connection is re-established,
  // the daemon's route to this worker is the old one, so it attaches again at once (§7.10).
  std::unique_ptr<PolledSocket> monitor;
  std::uint64_t monitors = 0;        // for a fresh inproc endpoint per dealer
  // Bumped by every socket made for `sub`, `dealer` or `monitor` (polled_socket()): the loop's
  // wait refills its items then (a new socket may sit where a destroyed one was).
  std::uint64_t sockets_made = 0;
  bool connection_lost = false;      // the dealer's connection dropped since it was last made
  std::optional<CurveClientKeys> curve;  // set when the endpoints are tcp:// (CURVE)
  // opt.request_address / opt.response_address as lists: one daemon, or a failover pair.
  std::vector<std::string> request_endpoints, response_endpoints;
  std::string session = random_session();
  std::string instance;
  std::string last_instance;  // of the last Attached: survives the re-attach that clears `instance`
  std::uint64_t ping_interval_ms = 1000;
  std::uint32_t liveness = 3;
  bool attached = false;
  // An Attach is on its way (handed to the dealer) and its Attached has not come: a
  // Rejected{reattach} then sends no other, it answers a message sent before that Attach
  // (PROTOCOL.md §7.3: one Attach, not one per rejected message). An Attach the socket dropped
  // (no connection completed) is not on its way: the next Rejected{reattach} sends it again.
  bool attach_outstanding = false;
  bool draining = false;  // stopping: Detach sent, finishing what runs; never attaches again
  // Attaching again after a lost connection or "not attached": chunks may have been lost, so
  // the incomplete input streams are asked for again once attached to the same instance (R4).
  bool resume_on_attach = false;
  SteadyClock::time_point last_stall_check{};
  bool forgotten = false;  // draining, and the daemon no longer knows this worker
  // The daemon's, from Attached (0: not known yet); read by handler threads too (Context::emit).
  std::atomic<std::uint64_t> max_message_bytes{0};
  SteadyClock::time_point last_ping{}, attach_sent{};
  // Running requests are keyed by a local key; `current` indexes them by request id (what Pong
  // lists, what a re-send or an Abort refers to). Request ids never repeat across daemon
  // instances, so requests of an earlier instance stay in `current` across a daemon restart:
  // the new instance adopts the durable ones its Pong lists (PROTOCOL.md §7.6).
  struct Running {
    std::uint64_t request_id = 0;
    std::shared_ptr<std::atomic<bool>> aborted;
    std::shared_ptr<StreamCredit> stream;  // its item stream's credit, if the caller reads items
    std::vector<std::shared_ptr<detail::InputFeed>> feeds;  // its chunked inputs
    std::shared_ptr<OutputCredits> output_credits;          // its output streams' grants
    std::optional<SteadyClock::time_point> deadline;        // WorkRequest.timeout_ms from its arrival

    // Tells its handler to stop (Context::aborted, and an emit, a read or a chunk send waiting).
    void abort() const {
      aborted->store(true);
      if (stream) stream->wake();
      for (auto& f : feeds) f->wake();
      if (output_credits) output_credits->wake();
    }
    // Chunks or credits of its streams went to musterd: the call cannot survive a daemon
    // restart (the new instance does not know its streams, PROTOCOL.md §7.9 R4).
    bool chunking() const { return !feeds.empty() || (output_credits && output_credits->started); }
  };
  std::unordered_map<std::uint64_t, Running> in_flight;         // local key -> request
  std::unordered_map<std::uint64_t, std::uint64_t> current;     // request id -> local key
  std::uint64_t next_key = 1;
  // Answers without an Ack (PROTOCOL.md §7.7), once Attached says the daemon honours them:
  // every Result/Failure sent is kept (a shared reference to the message sent, not a copy of
  // its bytes) until the Ack to a Pong that listed it confirms it, across a daemon restart too
  // (§7.6: the new instance asks for the answers of the calls it adopted).
  bool no_answer_acks = false;
  struct Kept {
    zmq::message_t message;
    std::uint64_t listed_in = 0;  // seq of the first Pong (of this instance) that listed it (0: none yet)
  };
  std::unordered_map<std::uint64_t, Kept> kept;  // request id -> the answer sent
  // The nodes of `kept` that confirmations freed, for the next answers (not a malloc and a free
  // per answer: they are confirmed in bursts of a Pong's whole list).
  SpareNodes<std::unordered_map<std::uint64_t, Kept>> spare_kept{1024};
  std::uint64_t kept_bytes = 0;                   // the sizes of the kept answers' messages
  // The last Pong sent for a ping (seq 0: none on this connection since Attached) and whether it
  // listed answers: an early Pong repeats it (WorkerOptions::confirm_kept_bytes).
  std::uint64_t last_pong_seq = 0;
  std::string last_pong_instance;
  bool last_pong_listed = false;
  // The output streams of answered calls whose answer is kept (not confirmed): a resume Credit
  // for one of them is answered by sending its chunks again (PROTOCOL.md §7.9 R11).
  std::unordered_map<std::uint64_t, std::shared_ptr<OutputCredits>> resendable;
  // Replies the daemon owes for Attach, Pong and Detach sent: without answer Acks the response
  // socket is read only while one is due (and at least every 100 ms, for a rare Rejected), since
  // reading an empty socket costs a system call every turn.
  std::uint64_t replies_due = 0;
  // The seq of the last Pong that listed answers while its Ack has not been read (0: none):
  // while one is due, the response socket is read before each message of the request socket,
  // so that the Ack confirms what that Pong listed before the next Ping is answered (§7.6).
  std::uint64_t pong_ack_due = 0;
  // Attached.idle_pong_every (0, 1: answer every ping) and the broadcast pings left
  // unanswered in a row while idle (§7.3).
  std::uint32_t idle_pong_every = 0, pings_unanswered = 0;
  bool on_own_topic = false;  // the message on_published reads came on `topic`, not broadcast
  SteadyClock::time_point last_reply_read{};
  // Batches (PROTOCOL.md §2.2): once Attached says the daemon reads them, the messages of one
  // loop turn go as one Batch (or alone, if only one); `batching` is false again from the next
  // Attach until its Attached.
  bool batching = false;
  BatchWriter outgoing;

  std::mutex mu;
  std::condition_variable cv;
  std::deque<Job> jobs;
  // Handler threads blocked in cv.wait (under mu) and running a handler: the others are awake
  // and will look at `jobs` before they block, so a new job needs no wake-up while they last.
  std::size_t waiting = 0;
  std::atomic<std::size_t> running{0};
  bool pool_stop = false;
  std::vector<std::thread> threads;
  std::atomic<bool> stop_requested{false};
  int exit_code = 0;
  // The abort flag of a request answered on the socket thread as soon as it is read: never set
  // (nothing is read while its handler runs), shared without a reference count.
  std::atomic<bool> never_aborted{false};
  std::shared_ptr<std::atomic<bool>> not_aborted() { return {std::shared_ptr<void>(), &never_aborted}; }
  bool abandoned = false;

  explicit WorkerImpl(WorkerOptions o) : opt(std::move(o)) {
    if (opt.worker_id.empty()) opt.worker_id = default_worker_id();
    if (opt.request_address.empty()) opt.request_address = default_endpoint(SocketRole::Request);
    if (opt.response_address.empty()) opt.response_address = default_endpoint(SocketRole::Response);
    if (opt.capacity == 0) opt.capacity = 1;
  }
  // `monitor` (declared after `dealer`) would otherwise go first: see close_dealer().
  ~WorkerImpl() { close_dealer(); }

  // ---- handler threads ------------------------------------------------------------------

  // Runs a job's handler on the calling thread, ports checked and defaulted, its chunked inputs
  // received first (or handed over as streams), then sends the outputs that travel chunked.
  // Returns the terminal message to send, every exception turned into a Failure; or nullopt
  // when `can_wait` is false (the socket thread) and the job must wait for chunks or credit:
  // the caller then hands it to the pool, which calls this again.
  // `send` sends a message of the request (an item, a Credit, a Chunk) in order with its others.
  std::optional<zmq::message_t> run_handler(Job& job, std::function<void(std::uint64_t, std::uint64_t, const std::string&)> progress,
                                            std::function<void(zmq::message_t)> send, bool can_wait) {
    const std::string& worker_id = opt.worker_id;
    try {
      if (!job.ready) {
        if (!job.feeds.empty() && !can_wait) return std::nullopt;
        job.ready = call_handler(job, std::move(progress), send, can_wait);
      }
      if (needs_chunks(job)) {
        if (!can_wait) return std::nullopt;
        send_output_chunks(job, send);
      } else if (job.ready->outputs.size() > 0 && job.chunk_window == 0) {
        check_inline_fits(job);
      }
      return result_message(worker_id, job.request_id, job.ready->outputs);
    } catch (const WorkError& e) {
      spdlog::debug("request {} failed: {}", job.request_id, e.what());
      return failure_message(worker_id, job.request_id, e.code(), e.what());
    } catch (const std::exception& e) {
      spdlog::debug("request {} failed: {}", job.request_id, e.what());
      return failure_message(worker_id, job.request_id, ErrorCode::WorkerError, e.what());
    } catch (...) {
      return failure_message(worker_id, job.request_id, ErrorCode::WorkerError,
                             "the handler threw a non-standard exception");
    }
  }

  HandlerOutputs call_handler(Job& job, std::function<void(std::uint64_t, std::uint64_t, const std::string&)> progress,
                              const std::function<void(zmq::message_t)>& send, bool can_wait) {
    const std::string& worker_id = opt.worker_id;
    auto& node = (*job.table)[job.node_index];
    Context& ctx = job.ctx;
    ctx.request_id_ = job.request_id;
    ctx.node_ = node.spec.name;
    ctx.aborted_ = job.aborted;
    ctx.progress_ = std::move(progress);
    if (job.stream)
      ctx.emit_ = [&](const Map& values) {
        return emit_item(worker_id, job.request_id, *job.stream, *job.aborted, max_message_bytes, can_wait,
                         values, send);
      };
    struct ForgetGrants {  // the handler is done with its inputs: nothing reads them after it
      Job& job;
      ~ForgetGrants() {
        for (auto& f : job.feeds) f->grant = nullptr;
        // What only the handler used goes now, as when the Context was a local of this function
        // (its callbacks refer to this call's locals; the inputs need not wait for the chunks).
        auto& ctx = job.ctx;
        ctx.progress_ = nullptr;
        ctx.emit_ = nullptr;
        ctx.input_streams_.clear();
        ctx.inputs_ = Map();
        ctx.parameters_ = Map();
      }
    } forget_grants{job};
    // Chunked inputs: a streamed port's is the handler's to read, any other's is received whole
    // and checked here, so the handler sees plain bytes. Either way credit follows the reading.
    for (auto& feed : job.feeds) {
      feed->grant = [&, id = job.request_id, stream = feed->stream()](std::uint64_t granted) {
        send(worker_credit_message(worker_id, id, stream, granted));
      };
      if (is_streamed(node, feed->port)) {
        InputStream in;
        in.feed_ = feed;
        in.size_ = feed->size();
        ctx.input_streams_.emplace(feed->port, std::move(in));
      } else {
        ctx.inputs_.set(feed->port, Value(feed->take_all()));
      }
    }
    apply_ports(node.spec.inputs, ctx.inputs_, "input");
    apply_ports(node.spec.parameters, ctx.parameters_, "parameter");
    HandlerOutputs out;
    out.outputs = node.handler(ctx);
    out.sources = std::move(ctx.output_sources_);
    for (auto& [name, source] : out.sources) out.outputs.erase(name);
    return out;
  }

  // Whether some output travels chunked: one given as a source, or bytes over the threshold
  // when the caller takes chunked outputs.
  bool needs_chunks(const Job& job) const {
    if (!job.ready->sources.empty()) return true;
    if (job.chunk_window == 0) return false;
    for (auto& [name, v] : job.ready->outputs)
      if (v.kind() == ValueKind::Bytes && v.as_bytes().size() > opt.chunk_threshold) return true;
    return false;
  }

  // A caller that takes no chunked outputs gets them inline: one that cannot fit a message
  // fails the call here, saying why (the size check of send_checked would say less).
  void check_inline_fits(const Job& job) const {
    auto limit = max_message_bytes.load();
    if (limit == 0) return;
    for (auto& [name, v] : job.ready->outputs)
      if (v.kind() == ValueKind::Bytes && v.as_bytes().size() + 1024 > limit)
        throw WorkError(fmt::format("output {} of {} bytes does not fit the daemon's message limit of {} bytes "
                                    "(--max-message-bytes), and the caller takes no chunked outputs "
                                    "(WorkRequest.chunk_window_bytes 0: a durable call, or a caller without chunks)",
                                    name, v.as_bytes().size(), limit));
  }

  // Sends the outputs that travel chunked on streams 2, 4, … within the caller's credit, each
  // replaced by its Chunked reference in the outputs.
  void send_output_chunks(Job& job, const std::function<void(zmq::message_t)>& send) {
    auto& ready = *job.ready;
    if (job.chunk_window == 0)
      throw WorkError(fmt::format("output {} is a stream, but the caller takes no chunked outputs "
                                  "(WorkRequest.chunk_window_bytes 0: a durable call, or a caller without chunks)",
                                  ready.sources.front().first));
    auto limit = max_message_bytes.load();
    std::size_t chunk_bytes = limit > 4096 ? std::min<std::size_t>(kChunkBytes, limit - 1024) : kChunkBytes;
    std::uint32_t stream = 2;
    auto send_stream = [&](const std::string& name, const Bytes* whole, const OutputCredits::ReadPiece& reader) {
      if (stream > 2 * kMaxWorkerChunkStreams)
        throw WorkError(fmt::format("output {}: more than {} chunked outputs in one call", name, kMaxWorkerChunkStreams));
      auto ref = job.output_credits->send_chunked(
          name, stream, whole, reader, *job.aborted, chunk_bytes,
          [&](std::uint32_t s, std::uint64_t offset, std::span<const std::uint8_t> data,
              std::optional<zmq::message_t> ready) {
            send(ready ? std::move(*ready) : worker_chunk_message(opt.worker_id, job.request_id, s, offset, data));
          });
      ready.outputs.set(name, Value(ref));
      stream += 2;
    };
    for (auto& [name, value] : ready.outputs) {
      if (value.kind() != ValueKind::Bytes || value.as_bytes().size() <= opt.chunk_threshold) continue;
      Bytes bytes = value.as_bytes();
      send_stream(name, &bytes, nullptr);
    }
    for (auto& [name, source] : ready.sources) {
      // Each piece is read straight into the chunk message that carries it (kept for a resend
      // by sharing that message: no copy of the bytes).
      send_stream(name, nullptr, [&, src = source.get()](std::uint32_t s, std::uint64_t offset, std::size_t max) {
        return worker_chunk_read(opt.worker_id, job.request_id, s, offset, max, [src](std::span<std::uint8_t> buffer) {
          std::size_t n = 0;  // a chunk as full as the source gives, so short reads make no tiny chunks
          while (n < buffer.size()) {
            auto got = src->read(buffer.subspan(n));
            if (got == 0) break;
            n += got;
          }
          return n;
        });
      });
    }
  }

  void pool_thread() {
    zmq::socket_t out(ctx, zmq::socket_type::push);
    out.set(zmq::sockopt::linger, 0);
    out.connect(results_endpoint);
    auto send = [&](std::uint64_t key, bool terminal, zmq::message_t msg) {
      std::array<std::uint8_t, 9> head{};
      std::memcpy(head.data(), &key, 8);
      head[8] = terminal ? 1 : 0;
      out.send(zmq::buffer(head), zmq::send_flags::sndmore);
      out.send(std::move(msg), zmq::send_flags::none);
    };
    for (;;) {
      Job job;
      {
        std::unique_lock lock(mu);
        while (!pool_stop && jobs.empty()) {
          ++waiting;
          cv.wait(lock);
          --waiting;
        }
        if (jobs.empty()) return;
        job = std::move(jobs.front());
        jobs.pop_front();
        running.fetch_add(1);
      }
      auto key = job.key;
      zmq::message_t answer = *run_handler(
          job,
          [&, id = job.request_id, key](std::uint64_t step, std::uint64_t total, const std::string& message) {
            send(key, false, progress_message(opt.worker_id, id, step, total, message));
          },
          [&, key](zmq::message_t item) { send(key, false, std::move(item)); }, /*can_wait=*/true);
      running.fetch_sub(1);  // from here this thread looks at the queue again before it sleeps
      send(key, true, std::move(answer));
    }
  }

  // ---- sockets --------------------------------------------------------------------------

  // Sends `message` now, or, while batching, adds it to this turn's batch (a large one goes
  // alone, after what waits, so the order holds).
  // Returns false if the dealer dropped the message (no completed connection, or its queue full).
  bool send_to_daemon(zmq::message_t message) {
    const std::size_t cap = max_message_bytes ? std::min<std::size_t>(kBatchMaxBytes, max_message_bytes) : kBatchMaxBytes;
    if (batching && message.size() <= kBatchItemMax) {
      if (outgoing.bytes() + message.size() + 64 * (outgoing.count() + 1) + 256 > cap) send_batch();
      outgoing.add(bytes_of(message));
      return true;
    }
    send_batch();
    return dealer->use().send(std::move(message), zmq::send_flags::dontwait).has_value();
  }

  // Sends what waits in this turn's batch: alone if it is one message.
  void send_batch() {
    if (outgoing.count() == 0) return;
    dealer->use().send(take_batch(outgoing, BatchRoot::Worker, opt.worker_id), zmq::send_flags::dontwait);
  }

  // Sends the answer to request `request_id`, keeping it until the daemon confirms it when
  // the daemon sends no Ack for it (§7.7). Only answers of requests still open are kept.
  void send_answer(zmq::message_t message, std::uint64_t request_id, bool open) {
    if (no_answer_acks && open) {
      auto it = kept.find(request_id);
      if (it != kept.end()) kept_bytes -= it->second.message.size();  // kept again: replaced
      Kept& k = it != kept.end() ? it->second : spare_kept.insert(kept, request_id);
      k.message.copy(message);  // shares the content: nothing is copied but a small message
      k.listed_in = 0;
      kept_bytes += message.size();
    }
    send_to_daemon(std::move(message));
    if (no_answer_acks && open) confirm_early_if_large();
  }

  // Asks for confirmation of the kept answers before the next ping once they pass
  // `confirm_kept_bytes`: a Pong repeating the last ping's seq is a Pong to a ping that was sent
  // (PROTOCOL.md §7.7 "Early confirmation"). An Ack confirms what its Pong (or an earlier one)
  // listed, found by seq, so every Ack carrying this seq must answer exactly one Pong the worker
  // counts on: the Pong repeated listed answers (so it had an Ack, unlike a Pong listing none,
  // which gets one only sometimes, §7.7) and that Ack was read, and no other early Pong's Ack is
  // due. Else an Ack to an earlier Pong could confirm answers the daemon has not checked yet.
  void confirm_early_if_large() {
    if (opt.confirm_kept_bytes == 0 || kept_bytes < opt.confirm_kept_bytes) return;
    if (!attached || pong_ack_due != 0 || !last_pong_listed || last_pong_instance != instance) return;
    send_pong(last_pong_seq, last_pong_instance);
  }

  // Sends the kept answer of `request_id` again (the daemon never got it), still keeping it.
  bool resend_kept(std::uint64_t request_id) {
    auto it = kept.find(request_id);
    if (it == kept.end()) return false;
    zmq::message_t again;
    again.copy(it->second.message);
    send_to_daemon(std::move(again));
    return true;
  }

  // The daemon's Ack to the Pong with seq `pong_seq`: its `missing` answers go again, every
  // other answer listed in that Pong (or an earlier one) is confirmed and forgotten.
  void on_pong_ack(std::uint64_t pong_seq, const flatbuffers::Vector<std::uint64_t>* missing) {
    std::unordered_set<std::uint64_t> again;
    if (missing)
      for (auto id : *missing)
        if (resend_kept(id)) again.insert(id);
    if (!again.empty())
      spdlog::warn("sending {} kept answer(s) again, as the daemon asked (it never got them, or adopted their calls after a restart)", again.size());
    for (auto it = kept.begin(); it != kept.end();) {
      auto entry = it++;
      if (entry->second.listed_in == 0 || entry->second.listed_in > pong_seq || again.contains(entry->first)) continue;
      resendable.erase(entry->first);
      kept_bytes -= entry->second.message.size();
      spare_kept.erase(kept, entry);
    }
  }

  // Sends a message about request `request_id` (its answer if `answer`, else a Progress) unless
  // it is larger than the daemon's limit, which would refuse it and let the caller wait its whole
  // deadline: an answer then becomes a Failure that says so, a Progress is dropped.
  void send_checked(zmq::message_t message, std::uint64_t request_id, bool answer) {
    send_checked(std::move(message), request_id, answer, answer && current.contains(request_id));
  }
  // The same; `keep`: an answer of a request still open, kept until confirmed.
  void send_checked(zmq::message_t message, std::uint64_t request_id, bool answer, bool keep) {
    if (max_message_bytes == 0 || message.size() <= max_message_bytes) {
      if (answer) return send_answer(std::move(message), request_id, keep);
      send_to_daemon(std::move(message));
      return;
    }
    const char* kind = !answer ? "progress"
                       : flatbuffers::GetRoot<wire::WorkerMessage>(message.data())->body_type() == wire::WorkerBody::Result
                           ? "result"
                           : "failure";
    auto what = fmt::format("{} of {} bytes exceeds the daemon's limit of {} bytes (--max-message-bytes)", kind,
                            message.size(), max_message_bytes.load());
    spdlog::warn("request {}: {}", request_id, what);
    if (answer) send_answer(failure_message(opt.worker_id, request_id, ErrorCode::WorkerError, what), request_id, keep);
  }

  // Draining, the daemon no longer knows this worker (it forgot it at its Detach, declared it
  // dead, or restarted): attaching again would leave a ghost worker once this process exits, so
  // it aborts what still runs and stops (PROTOCOL.md §7.5).
  void forget(const std::string& why) {
    if (forgotten) return;
    forgotten = true;
    spdlog::info("stopping without attaching again: {}", why);
    for (auto& [key, r] : in_flight) r.abort();
  }

  void configure(zmq::socket_t& s) {
    if (curve) apply_curve(s, *curve);
    s.set(zmq::sockopt::linger, 1000);
    s.set(zmq::sockopt::rcvhwm, 100000);
    s.set(zmq::sockopt::sndhwm, 100000);
  }

  std::unique_ptr<PolledSocket> polled_socket(zmq::socket_type type) {
    ++sockets_made;
    return std::make_unique<PolledSocket>(ctx, type);
  }

  void connect() {
    dealer = polled_socket(zmq::socket_type::dealer);
    configure(dealer->use());
    direct = answer_every_ping = connection_lost = false;
    // Asking for direct, the SUB waits for an Attached that refuses it (an older daemon).
    if (opt.direct)
      watch_dealer();
    else
      connect_sub();
    // With a failover pair, the dealer queues only on completed connections, i.e. to the daemon
    // that is bound (the active one): without it, every other message would wait in the pipe
    // of the standby's endpoint and reach it, stale, once it takes over. The Attach waits up to
    // a second for a connection to complete; sent while neither is up, it is dropped and the
    // "no answer to attach" timer (or the next Ping's Rejected) sends it again.
    if (response_endpoints.size() > 1) dealer->use().set(zmq::sockopt::immediate, 1);
    for (auto& ep : response_endpoints) dealer->use().connect(ep);
    if (response_endpoints.size() > 1) {
      zmq::pollitem_t item{dealer->use().handle(), 0, ZMQ_POLLOUT, 0};
      zmq::poll(&item, 1, std::chrono::milliseconds(1000));
    }
    send_attach();
  }

  // The SUB socket on the request endpoints, subscribed to the broadcast topic; the worker
  // topic comes with Attached (the daemon names it after our identity and applies no other:
  // PROTOCOL.md §2).
  void connect_sub() {
    sub = polled_socket(zmq::socket_type::sub);
    configure(sub->use());
    topic.clear();
    sub->use().set(zmq::sockopt::subscribe, "b:");
    for (auto& ep : request_endpoints) sub->use().connect(ep);
  }

  // Watches the dealer's connections (made, dropped) through a socket monitor.
  void watch_dealer() {
    auto endpoint = fmt::format("inproc://muster-worker-monitor-{}-{}", static_cast<void*>(this), ++monitors);
    if (zmq_socket_monitor(dealer->use().handle(), endpoint.c_str(), ZMQ_EVENT_CONNECTED | ZMQ_EVENT_DISCONNECTED) != 0)
      throw zmq::error_t();
    monitor = polled_socket(zmq::socket_type::pair);
    monitor->use().connect(endpoint);
  }

  // The dealer's connection events. A connection made again after one dropped, while direct:
  // the daemon still sends to the old one (gone), so the worker attaches again now with its
  // session, which moves its route and keeps its requests, rather than after hearing no ping
  // for ping_interval × liveness (PROTOCOL.md §7.10). A connection made while no Attach is on
  // its way (a failover pair: the Attach found neither daemon bound and was dropped): attaches
  // now, where a worker with a SUB waits for a Ping's Rejected{reattach}.
  void on_dealer_events() {
    for (int i = 0; i < 64; ++i) {
      zmq::message_t event, address;
      auto recv = [&](zmq::socket_t& s) {
        if (!s.recv(event, zmq::recv_flags::dontwait)) return false;
        for (bool more = event.more(); more; more = address.more()) (void)s.recv(address, zmq::recv_flags::none);
        return true;
      };
      if (!monitor->read(recv)) return;
      if (event.size() < 2) continue;
      std::uint16_t id = 0;
      std::memcpy(&id, event.data(), sizeof id);
      if (id == ZMQ_EVENT_DISCONNECTED) {
        connection_lost = true;
        continue;
      }
      if (id != ZMQ_EVENT_CONNECTED) continue;
      const bool again = std::exchange(connection_lost, false);
      if (draining || detached_for_no_nodes || forgotten) continue;
      if (again && direct) {
        spdlog::info("the connection to the daemon was made again: attaching again (direct)");
        resume_on_attach = true;
        send_attach();
      } else if (!attached && !attach_outstanding) {  // the Attach found no connection (a failover pair)
        spdlog::info("a connection to the daemon was made: attaching");
        send_attach();
      }
    }
  }

  // Subscribes `sub` to the worker topic the daemon assigned, dropping a previous, different one.
  void subscribe_topic(const std::string& assigned) {
    if (assigned.empty() || assigned == topic) return;
    if (!topic.empty()) sub->use().set(zmq::sockopt::unsubscribe, topic);
    sub->use().set(zmq::sockopt::subscribe, assigned);
    topic = assigned;
  }

  // Musterd restarted (another instance): a call whose chunks or credits went to the old one
  // cannot go on, the new one does not know its streams (PROTOCOL.md §7.9 R4). Its handler is
  // told to stop. (A re-attach to the same instance resumes them instead: resume_inputs.)
  void abort_chunking(const std::string& why) {
    resendable.clear();
    for (auto& [key, r] : in_flight)
      if (r.chunking() && !r.aborted->load()) {
        spdlog::warn("request {}: aborted, its chunked values cannot resume: {}", r.request_id, why);
        r.abort();
      }
  }

  // R4: after attaching again to the same instance, every input stream of a running call not
  // received whole is asked for again from what it has (chunks may have been lost meanwhile).
  void resume_inputs() {
    for (auto& [key, r] : in_flight)
      for (auto& feed : r.feeds)
        if (auto at = feed->incomplete()) {
          spdlog::info("request {}: asking for chunked stream {} again from offset {} after attaching again",
                       r.request_id, feed->stream(), *at);
          send_to_daemon(worker_credit_message(opt.worker_id, r.request_id, feed->stream(), feed->granted(), *at));
        }
  }

  // R3: input streams that brought none of their granted bytes for resume_after are asked again.
  // A call with streams still waiting past its deadline (plus resume_after) is aborted: musterd
  // ended it (§7.9 rule 4), or is gone, so what it waits for never comes.
  void resume_stalled_inputs() {
    auto now = SteadyClock::now();
    for (auto& [key, r] : in_flight)
      if (r.deadline && now > *r.deadline + opt.resume_after && r.chunking() && !r.aborted->load()) {
        spdlog::warn("request {}: aborted, its chunked streams are still open past its deadline", r.request_id);
        r.abort();
      }
    if (!attached) return;
    for (auto& [key, r] : in_flight)
      for (auto& feed : r.feeds)
        if (auto at = feed->stalled(now)) {
          spdlog::info("request {}: chunked stream {} brought nothing for {} ms: asking again from offset {}",
                       r.request_id, feed->stream(), opt.resume_after.count(), *at);
          send_to_daemon(worker_credit_message(opt.worker_id, r.request_id, feed->stream(), feed->granted(), *at));
        }
  }

  void reconnect(const std::string& why) {
    spdlog::warn("reconnecting to the daemon: {}", why);
    resume_on_attach = true;  // the same instance: streams resume (R4); another: aborted then
    send_batch();
    sub.reset();
    // Asking for direct, with answers kept until confirmed (so nothing waiting on the old dealer
    // is needed): the old dealer goes at once. Lingering, it could deliver its Attach after the
    // new dealer's, and musterd would move this worker's route to a connection about to close
    // (§7.10), where everything sent to it is lost until the worker notices the silence.
    if (opt.direct && no_answer_acks) dealer->use().set(zmq::sockopt::linger, 0);
    close_dealer();
    replies_due = 0;  // what the old connection owed is gone with it
    pong_ack_due = 0;
    last_pong_listed = false;
    connect();
  }

  // The dealer goes with its monitor, the monitoring stopped first. libzmq sends a socket's
  // monitor events from its I/O thread with a blocking send: a dealer still lingering (its
  // Attach not delivered: the daemon was not up) whose monitor's reader is gone blocks that
  // thread for good at its next connection event, and with it every socket of the context.
  // (A worker started over 3 s before musterd reconnected once, "no answer to attach", and
  // never attached: the old dealer connected when musterd bound.)
  void close_dealer() {
    if (dealer && monitor) zmq_socket_monitor(dealer->use().handle(), nullptr, 0);
    monitor.reset();
    dealer.reset();
  }

  void send_attach() {
    flatbuffers::FlatBufferBuilder fbb(1024);
    std::vector<flatbuffers::Offset<wire::NodeSpec>> specs;
    for (auto& n : *nodes) specs.push_back(encode_node_spec(fbb, n.spec));
    auto sdk = fmt::format("muster-cpp/{}", MUSTER_SDK_VERSION);
    auto body = wire::CreateAttachDirect(fbb, opt.worker_id.c_str(), hostname().c_str(), sdk.c_str(),
                                         static_cast<std::uint32_t>(::getpid()), session.c_str(),
                                         opt.capacity, &specs, /*payload_frames=*/true,
                                         /*no_answer_acks=*/true, /*batches=*/true, /*idle_pongs=*/true,
                                         /*direct=*/opt.direct);
    // An Attach goes alone: the daemon it reaches may be an older one that reads no Batch.
    send_batch();
    batching = false;
    attach_outstanding = send_to_daemon(finish(fbb, opt.worker_id, wire::WorkerBody::Attach, body.Union()));
    ++replies_due;
    attached = false;
    idle_pong_every = 0;  // every ping is answered until Attached grants otherwise
    attach_sent = SteadyClock::now();
  }

  void send_pong(std::uint64_t seq, const std::string& ping_instance) {
    flatbuffers::FlatBufferBuilder fbb(256);
    std::vector<std::uint64_t> ids;
    ids.reserve(current.size());
    for (auto& [id, key] : current) ids.push_back(id);
    std::vector<std::uint64_t> answered;
    answered.reserve(kept.size());
    for (auto& [id, k] : kept) {
      answered.push_back(id);
      if (k.listed_in == 0) k.listed_in = seq;  // the first Pong of this instance to list it
    }
    auto body = wire::CreatePongDirect(fbb, seq, ping_instance.c_str(), &ids,
                                       answered.empty() ? nullptr : &answered);
    send_to_daemon(finish(fbb, opt.worker_id, wire::WorkerBody::Pong, body.Union()));
    // A daemon that honours no_answer_acks Acks a Pong only when it lists answers (§7.7).
    if (!no_answer_acks || !answered.empty()) ++replies_due;
    if (no_answer_acks && !answered.empty()) pong_ack_due = seq;
    pings_unanswered = 0;
    last_pong_seq = seq;
    last_pong_instance = ping_instance;
    last_pong_listed = !answered.empty();
  }

  // Whether a broadcast Ping may go unanswered (PROTOCOL.md §7.3, Attached.idle_pong_every):
  // only while nothing runs and no answer waits to be confirmed, and at most k − 1 in a row;
  // a ping on the worker's own topic (the confirming ping, §7.1) is always answered.
  bool skip_idle_pong() {
    if (idle_pong_every <= 1 || on_own_topic || !current.empty() || !kept.empty()) return false;
    if (pings_unanswered + 1 >= idle_pong_every) return false;
    ++pings_unanswered;
    return true;
  }

  void send_detach(const std::string& reason) {
    flatbuffers::FlatBufferBuilder fbb(128);
    auto body = wire::CreateDetachDirect(fbb, reason.c_str());
    send_to_daemon(finish(fbb, opt.worker_id, wire::WorkerBody::Detach, body.Union()));
    ++replies_due;
  }

  // ---- inbound --------------------------------------------------------------------------

  void on_reply(std::span<const std::uint8_t> m) {
    auto* msg = read_daemon_message(m);
    if (!msg) {
      spdlog::warn("ignoring a reply that is not a valid DaemonMessage ({} bytes)", m.size());
      return;
    }
    switch (msg->body_type()) {
      case wire::DaemonBody::Attached: {
        auto* a = msg->body_as_Attached();
        // Direct (§7.10): no SUB; else (not asked, or an older daemon) the SUB, on our topic.
        direct = a->direct();
        answer_every_ping = direct;
        if (direct) {
          sub.reset();
          topic.clear();
        } else {
          if (!sub) connect_sub();
          subscribe_topic(str(a->topic()));
        }
        if (!last_instance.empty() && str(a->instance()) != last_instance) {
          // A restarted daemon: what runs and the answers not confirmed are kept and listed in
          // the next Pong, so the new instance can adopt its durable calls (§7.6). Only the new
          // instance's Acks confirm answers from now on.
          for (auto& [id, k] : kept) k.listed_in = 0;
          if (!kept.empty() || !current.empty())
            spdlog::info("daemon restarted: reporting {} running request(s) and {} unconfirmed answer(s) to it",
                         current.size(), kept.size());
          abort_chunking("the daemon restarted");
        }
        bool same_instance = !last_instance.empty() && str(a->instance()) == last_instance;
        instance = last_instance = str(a->instance());
        // An older daemon does not know the opt-in and Acks every answer: nothing is kept.
        no_answer_acks = a->no_answer_acks();
        if (!no_answer_acks) {
          kept.clear();
          kept_bytes = 0;
          resendable.clear();
        }
        batching = a->batches();  // an older daemon does not set it: every message goes alone
        if (a->max_message_bytes() > 0) max_message_bytes = a->max_message_bytes();
        ping_interval_ms = std::max<std::uint64_t>(a->ping_interval_ms(), 1);
        liveness = std::max<std::uint32_t>(a->liveness(), 1);
        idle_pong_every = a->idle_pong_every();
        pings_unanswered = 0;
        attached = true;
        attach_outstanding = false;
        pong_ack_due = 0;  // a Pong's seq means nothing to another instance (§7.6)
        last_pong_listed = false;
        last_ping = SteadyClock::now();
        spdlog::info("attached as {} to daemon instance {} ({} node(s), capacity {}{})", opt.worker_id, instance,
                     nodes->size(), opt.capacity, direct ? ", direct: one connection" : "");
        if (same_instance && std::exchange(resume_on_attach, false)) resume_inputs();
        resume_on_attach = false;
        break;
      }
      case wire::DaemonBody::Ack: {
        auto* ack = msg->body_as_Ack();
        if (pong_ack_due != 0 && ack->pong_seq() >= pong_ack_due) pong_ack_due = 0;
        if (ack->pong_seq() != 0) answer_every_ping = false;
        if (ack->pong_seq() != 0 && !kept.empty()) on_pong_ack(ack->pong_seq(), ack->missing());
        break;
      }
      case wire::DaemonBody::Rejected: {
        auto* r = msg->body_as_Rejected();
        if (r->reattach()) {
          if (detached_for_no_nodes) break;
          if (draining) {
            forget(fmt::format("the daemon does not know this worker ({})", str(r->message())));
            break;
          }
          if (attach_outstanding) {  // it answers a message sent before the Attach on its way
            spdlog::debug("daemon does not know this worker ({}): already attaching", str(r->message()));
            break;
          }
          spdlog::info("daemon does not know this worker ({}): attaching again", str(r->message()));
          resume_on_attach = true;
          send_attach();
        } else if (!attached && r->code() != ErrorCode::ShuttingDown) {
          spdlog::error("daemon refused to attach this worker: {}: {}",
                        error_code_name(r->code()), str(r->message()));
          exit_code = 2;
          stop_requested = true;
        } else {
          // A daemon shutting down refused the Attach (it answers nothing else so): the next
          // Rejected{reattach}, from the daemon that follows, attaches at once.
          if (!attached && r->code() == ErrorCode::ShuttingDown) attach_outstanding = false;
          spdlog::warn("daemon rejected a message: {}: {}", error_code_name(r->code()),
                       str(r->message()));
        }
        break;
      }
      default:
        spdlog::warn("unexpected reply type from the daemon");
    }
  }

  // `m` is the message; `frame`, if any, the payload frame before it (PROTOCOL.md §2.1),
  // taken over by the inputs it holds: their large bytes values are read in place. A Batch's
  // items are read one by one, as if each had come alone (§2.2). `in_batch`: `m` is an item.
  // `received`: the message `m` lies in, whose content a chunk's feed may share (not copied).
  // `verified`: `m` read and verified already (read_dealer), else null.
  void on_published(std::span<const std::uint8_t> m, zmq::message_t* frame, bool in_batch = false,
                    zmq::message_t* received = nullptr, const wire::DaemonMessage* verified = nullptr) {
    auto* msg = verified ? verified : read_daemon_message(m);
    if (msg && msg->body_type() == wire::DaemonBody::Batch) {
      auto batch = frame || in_batch ? BatchItems{{}, "a Batch inside a Batch or with a payload frame"}
                                     : batch_items(*msg->body_as_Batch(), m);
      if (!batch.error.empty()) spdlog::warn("ignoring a published Batch: {}", batch.error);
      for (auto item : batch.items) on_published(item, nullptr, true, received);
      return;
    }
    if (!msg) {
      if (auto* w = read_work_request_envelope(m); w && !current.contains(w->request_id())) {
        // A request whose inputs or parameters are not a valid payload (PROTOCOL.md §4):
        // answered, so its caller hears why instead of waiting for its deadline.
        auto key = next_key++;
        in_flight.emplace(key, Running{w->request_id(), std::make_shared<std::atomic<bool>>(false)});
        current.emplace(w->request_id(), key);
        finish_request(key, failure_message(opt.worker_id, w->request_id(), ErrorCode::InvalidRequest,
                                            "inputs or parameters are not a valid Values payload"));
        return;
      }
      spdlog::warn("ignoring a published message that is not a valid DaemonMessage");
      return;
    }
    switch (msg->body_type()) {
      case wire::DaemonBody::Ping: {
        if (detached_for_no_nodes || forgotten) return;
        auto* p = msg->body_as_Ping();
        std::string ping_instance = str(p->instance());
        if (attached && ping_instance != instance && draining) {
          forget(fmt::format("daemon instance changed ({} -> {})", instance, ping_instance));
          return;
        }
        if (attached && ping_instance != instance) {
          spdlog::info("daemon restarted (instance {} -> {}): attaching again", instance, ping_instance);
          abort_chunking("the daemon restarted");
          instance.clear();
          send_attach();
          return;
        }
        last_ping = SteadyClock::now();
        detail::BufferPool::answers().release_idle(last_ping);  // an idle worker's answer buffers go back
        if (skip_idle_pong()) break;
        send_pong(p->seq(), ping_instance);
        break;
      }
      case wire::DaemonBody::WorkRequest: {
        auto* w = msg->body_as_WorkRequest();
        auto id = w->request_id();
        if (current.contains(id)) return;  // a re-send of something already running
        if (resend_kept(id)) return;       // answered already: the answer goes again, not the work
        std::string_view node = w->node() ? w->node()->string_view() : std::string_view();
        std::size_t index = nodes->size();
        for (std::size_t i = 0; i < nodes->size(); ++i)
          if ((*nodes)[i].spec.name == node) index = i;
        if (index == nodes->size()) {
          answer_now(id, failure_message(opt.worker_id, id, ErrorCode::InvalidRequest,
                                         fmt::format("this worker does not serve node '{}'", node)));
          return;
        }
        if (w->inputs_in_frame() != (frame != nullptr)) {
          answer_now(id, failure_message(opt.worker_id, id, ErrorCode::InvalidRequest,
                                         w->inputs_in_frame() ? "inputs_in_frame set but no payload frame came"
                                                              : "a payload frame that the WorkRequest does not refer to"));
          return;
        }
        Job job;
        job.request_id = id;
        try {
          if (frame) {
            auto owner = std::make_shared<zmq::message_t>(std::move(*frame));
            job.ctx.inputs_ = decode_values(bytes_of(*owner), owner);
          } else {
            job.ctx.inputs_ = decode_verified_values(payload_bytes(w->inputs()));  // read_daemon_message verified it
          }
          job.ctx.parameters_ = decode_verified_values(payload_bytes(w->parameters()));
        } catch (const std::exception& e) {  // not a valid payload (e.g. a string that is not UTF-8)
          answer_now(id, failure_message(opt.worker_id, id, ErrorCode::InvalidRequest, e.what()));
          return;
        }
        if (auto* c = w->caller()) {
          auto& caller = job.ctx.caller_;
          assign(caller.identity, c->identity());
          assign(caller.name, c->name());
          assign(caller.workspace, c->workspace());
          assign(caller.role, c->role());
          assign(caller.trace_id, c->trace_id());
        }
        if (w->stream_window_items() > 0) {  // the caller reads items: the initial grant (§7.8)
          job.stream = std::make_shared<StreamCredit>();
          job.stream->granted_items = w->stream_window_items();
          job.stream->granted_bytes = w->stream_window_bytes();
        }
        job.node_index = index;
        job.table = nodes;
        job.ctx.attempt_ = w->attempt();
        job.ctx.deadline_ = SteadyClock::now() + std::chrono::milliseconds(w->timeout_ms());
        job.chunk_window = w->chunk_window_bytes();
        if ((*nodes)[index].thread == HandlerThread::Socket && !has_chunked_inputs(job)) {
          // Run here and answered before anything else is read: nothing can abort it, grant it
          // credit or list it in a Pong meanwhile, so it is not registered (no nodes, flags or
          // output grants made and freed per call).
          job.aborted = not_aborted();
          auto answer = run_handler(
              job,
              [this, id](std::uint64_t step, std::uint64_t total, const std::string& message) {
                send_checked(progress_message(opt.worker_id, id, step, total, message), id, false);
              },
              [this](zmq::message_t item) { send_to_daemon(std::move(item)); },
              /*can_wait=*/false);
          if (answer) {
            answer_now(id, std::move(*answer));
            return;
          }
          // Outputs to send chunked: the pool sends them within the caller's credit, not this thread.
        }
        // Runs on the pool (or waits for chunks there): registered, so that an Abort, a Credit
        // or a Chunk finds it and Pongs list it.
        job.key = next_key++;
        job.aborted = std::make_shared<std::atomic<bool>>(false);
        if (job.chunk_window > 0) job.output_credits = std::make_shared<OutputCredits>(job.chunk_window);
        in_flight.emplace(job.key, Running{id, job.aborted, job.stream});
        current.emplace(id, job.key);
        if (auto error = open_input_feeds(job, (*nodes)[index])) {
          finish_request(job.key, failure_message(opt.worker_id, id, ErrorCode::InvalidRequest, *error));
          return;
        }
        auto& running_entry = in_flight.at(job.key);
        running_entry.feeds = job.feeds;
        running_entry.output_credits = job.output_credits;
        if (w->timeout_ms() > 0) running_entry.deadline = job.ctx.deadline_;
        for (auto& feed : job.feeds)  // the first window: the caller sends nothing before it
          if (feed->initial_grant() > 0)
            send_to_daemon(worker_credit_message(opt.worker_id, id, feed->stream(), feed->initial_grant()));
        enqueue(std::move(job));
        break;
      }
      case wire::DaemonBody::Abort: {
        auto* a = msg->body_as_Abort();
        if (auto it = current.find(a->request_id()); it != current.end()) {
          spdlog::info("request {} aborted: {}", a->request_id(), str(a->reason()));
          in_flight.at(it->second).abort();
        }
        resendable.erase(a->request_id());  // answered, then ended (its deadline): nothing to send again
        break;
      }
      case wire::DaemonBody::Credit: {  // the caller granted more of a stream (§7.8, §7.9)
        auto* c = msg->body_as_Credit();
        std::shared_ptr<OutputCredits> credits;
        if (auto it = current.find(c->request_id()); it != current.end()) {
          auto& r = in_flight.at(it->second);
          if (c->stream() == 0) {
            if (r.stream) r.stream->grant(c->items(), c->bytes());
            break;
          }
          credits = r.output_credits;
        } else if (auto kept_it = resendable.find(c->request_id()); kept_it != resendable.end()) {
          credits = kept_it->second;  // answered, not confirmed: its streams can go again (R11)
        }
        if (c->stream() == 0 || c->stream() % 2 != 0 || !credits) break;  // one of the worker's output streams
        std::optional<std::uint64_t> resume;
        if (c->resume()) resume = c->resume_offset();
        credits->grant(c->stream(), c->bytes(), resume);
        // A stream sent whole already: the chunks asked for go again from here.
        if (auto error = credits->send_again(c->stream(), [&](std::uint32_t s, std::uint64_t offset,
                                                               std::span<const std::uint8_t> data,
                                                               std::optional<zmq::message_t> ready) {
              send_to_daemon(ready ? std::move(*ready)
                                   : worker_chunk_message(opt.worker_id, c->request_id(), s, offset, data));
            }))
          fail_answered(c->request_id(), *error);
        break;
      }
      case wire::DaemonBody::Chunk: {  // a chunk of one of the caller's input streams (§7.9)
        auto* c = msg->body_as_Chunk();
        auto it = current.find(c->request_id());
        if (it == current.end()) break;  // over: late
        auto& r = in_flight.at(it->second);
        auto feed = std::find_if(r.feeds.begin(), r.feeds.end(), [&](auto& f) { return f->stream() == c->stream(); });
        if (feed == r.feeds.end()) {
          spdlog::warn("request {}: ignoring a chunk of stream {}, which none of its inputs is", c->request_id(),
                       c->stream());
          break;
        }
        auto* data = c->data();
        if (auto resume = (*feed)->push(c->offset(), data ? std::span<const std::uint8_t>(data->data(), data->size())
                                                          : std::span<const std::uint8_t>(),
                                        received)) {
          spdlog::info("request {}: chunked stream {} lost chunks (one at offset {}, {} bytes received): asking "
                       "again from there", c->request_id(), c->stream(), c->offset(), *resume);
          send_to_daemon(worker_credit_message(opt.worker_id, c->request_id(), c->stream(), (*feed)->granted(), *resume));
        }
        break;
      }
      default:
        spdlog::warn("unexpected published message type");
    }
  }

  // Hands a job to the handler threads.
  void enqueue(Job job) {
    bool wake = false;
    {
      std::lock_guard lock(mu);
      jobs.push_back(std::move(job));
      // A handler thread that is awake and not running a handler takes the job before it
      // sleeps: waking another one for it costs a context switch and finds nothing to do.
      auto idle_awake = static_cast<std::ptrdiff_t>(opt.capacity) - static_cast<std::ptrdiff_t>(waiting) -
                        static_cast<std::ptrdiff_t>(running.load());
      wake = static_cast<std::ptrdiff_t>(jobs.size()) > idle_awake;
    }
    if (wake) cv.notify_one();
  }

  // A feed for each chunked input of `job` (its streams must be the caller's: odd, distinct).
  // Returns an error for a reference it cannot take.
  std::optional<std::string> open_input_feeds(Job& job, const NodeDeclaration& node) {
    for (auto& [port, value] : job.ctx.inputs_) {
      if (value.kind() != ValueKind::Chunked) continue;
      auto& ref = value.as_chunked();
      if (ref.stream % 2 == 0)
        return fmt::format("input {}: chunked stream {} is even, a worker's (a caller's streams are odd)", port,
                           ref.stream);
      for (auto& f : job.feeds)
        if (f->stream() == ref.stream)
          return fmt::format("inputs {} and {} both name chunked stream {}", f->port, port, ref.stream);
      job.feeds.push_back(std::make_shared<detail::InputFeed>(
          port, ref, is_streamed(node, port) ? ChunkDelivery::Stream : ChunkDelivery::Buffer, job.aborted,
          opt.resume_after));
    }
    return std::nullopt;
  }

  // Installs a table given to set_nodes(), if any. Returns true if one was taken.
  bool take_pending_nodes() {
    std::lock_guard lock(nodes_mu);
    if (!pending_nodes) return false;
    nodes = std::move(pending_nodes);
    pending_nodes.reset();
    return true;
  }

  // The answer of a request read just now and never registered (it failed before it ran, or
  // its handler ran on the socket thread): open, so it is kept until confirmed.
  void answer_now(std::uint64_t request_id, zmq::message_t answer) {
    send_checked(std::move(answer), request_id, true, true);
  }

  void finish_request(std::uint64_t key, zmq::message_t answer) {
    if (auto it = in_flight.find(key); it != in_flight.end()) send_terminal(it->second, std::move(answer));
    drop(key);
  }

  // Sends the answer of `r`; its output streams stay while the answer is kept (§7.9 R11).
  void send_terminal(const Running& r, zmq::message_t answer) {
    bool result = flatbuffers::GetRoot<wire::WorkerMessage>(answer.data())->body_type() == wire::WorkerBody::Result;
    send_checked(std::move(answer), r.request_id, true);
    if (result && r.output_credits && kept.contains(r.request_id) && r.output_credits->any_sent())
      resendable[r.request_id] = r.output_credits;
  }

  // An answered call whose output cannot be sent again (§7.9 R10): it fails WorkerError, that
  // answer kept in place of the Result.
  // A call still running (another of its streams is being sent) is aborted and answered so:
  // its handler's answer, when it comes, is dropped.
  void fail_answered(std::uint64_t request_id, const std::string& why) {
    spdlog::warn("request {}: {}", request_id, why);
    resendable.erase(request_id);
    auto answer = failure_message(opt.worker_id, request_id, ErrorCode::WorkerError, why);
    if (auto it = current.find(request_id); it != current.end()) {
      in_flight.at(it->second).abort();
      return finish_request(it->second, std::move(answer));
    }
    send_answer(std::move(answer), request_id, kept.contains(request_id));
  }

  void drop(std::uint64_t key) {
    auto it = in_flight.find(key);
    if (it == in_flight.end()) return;
    if (auto c = current.find(it->second.request_id); c != current.end() && c->second == key)
      current.erase(c);
    in_flight.erase(it);
  }

  void on_answer() {
    zmq::message_t head, body;
    auto recv = [&](zmq::socket_t& s) {
      if (!s.recv(head, zmq::recv_flags::dontwait)) return false;
      (void)s.recv(body, zmq::recv_flags::none);
      return true;
    };
    while (results.read(recv)) {
      std::uint64_t key = 0;
      std::memcpy(&key, head.data(), 8);
      bool terminal = static_cast<const std::uint8_t*>(head.data())[8] != 0;
      if (auto it = in_flight.find(key); it != in_flight.end()) {
        if (terminal)
          send_terminal(it->second, std::move(body));
        else
          send_checked(std::move(body), it->second.request_id, false);
      }
      if (terminal) drop(key);
    }
  }

  // ---- the loop ---------------------------------------------------------------------------

  // Reads the rest of a multipart message whose frame `payload` was just read: its last frame
  // ends in `payload`, the one before it in `frame`. Returns how many frames came after `payload`'s
  // first (1: a payload frame, §2.1; more: a bad message).
  static int recv_rest(zmq::socket_t& s, zmq::message_t& payload, zmq::message_t& frame) {
    int extra = 0;
    while (payload.more()) {
      frame = std::move(payload);
      (void)s.recv(payload, zmq::recv_flags::none);
      ++extra;
    }
    return extra;
  }

  // Reads what waits on the response socket (at most 256 at a time): the replies (Attached,
  // Ack, Rejected, each alone) and, from a daemon that granted direct (§7.10), its messages for
  // this worker, [(payload frame)?, message], in the order the daemon sent them.
  void read_replies() {
    for (int i = 0; i < 256; ++i) {
      zmq::message_t frame, payload;
      int extra = 0;
      auto recv = [&](zmq::socket_t& s) {
        if (!s.recv(payload, zmq::recv_flags::dontwait)) return false;
        extra = recv_rest(s, payload, frame);
        return true;
      };
      if (!dealer->read(recv)) break;
      if (extra > 1) {
        spdlog::warn("ignoring a message of {} frames from the daemon", extra + 1);
        continue;
      }
      align_payload(payload);
      if (extra) align_payload(frame);
      auto* msg = read_daemon_message(bytes_of(payload));
      auto type = msg ? msg->body_type() : wire::DaemonBody::NONE;
      if (!extra && (!msg || type == wire::DaemonBody::Attached || type == wire::DaemonBody::Ack ||
                     type == wire::DaemonBody::Rejected)) {
        if (replies_due > 0) --replies_due;
        on_reply(bytes_of(payload));
        continue;
      }
      on_own_topic = answer_every_ping;
      on_published(bytes_of(payload), extra ? &frame : nullptr, false, &payload, msg);
    }
  }

  int run() {
    SecureOptions secure = opt.secure;
    secure.role = "worker";
    secure.insecure = secure.insecure || opt.insecure;
    request_endpoints = endpoint_list(opt.request_address);
    response_endpoints = endpoint_list(opt.response_address);
    std::vector<std::string> all = request_endpoints;
    all.insert(all.end(), response_endpoints.begin(), response_endpoints.end());
    curve = secure_connect_keys(secure, all);
    for (auto& ep : all) check_endpoint(ep, curve.has_value(), secure.insecure);
    take_pending_nodes();
    if (opt.reuse_memory) reuse_memory_for_large_messages();
    if (nodes->empty()) throw std::invalid_argument("a worker needs at least one node");
    results.use().bind(results_endpoint);
    for (std::uint32_t i = 0; i < opt.capacity; ++i) threads.emplace_back([this] { pool_thread(); });
    std::unique_ptr<SignalPipe> signals;
    if (opt.handle_signals) signals = std::make_unique<SignalPipe>();
    connect();
    SteadyClock::time_point drain_deadline{};
    SocketWait items;
    // What the wait's items are made of: refilled only when it changes (one call at a time,
    // refilling every turn was ~250 instructions a call: docs/PERFORMANCE.md, "One call at a
    // time, session 16").
    struct WaitShape {
      std::uint64_t sockets_made = 0;
      const PolledSocket *sub = nullptr, *monitor = nullptr;
      bool dealer = false;
      bool operator==(const WaitShape&) const = default;
    };
    std::optional<WaitShape> shape;
    std::size_t sub_item = 0, results_item = 0, dealer_item = 0, monitor_item = 0, signal_item = 0;
    while (true) {
      auto now = SteadyClock::now();
      if (!draining && (stop_requested || (signals && signals->triggered()))) {
        draining = true;
        drain_deadline = now + opt.drain_timeout;
        spdlog::info("stopping: detaching and finishing {} request(s)", in_flight.size());
        send_detach("worker stopping");
      }
      if (draining && (in_flight.empty() || now >= drain_deadline || exit_code != 0)) break;
      if (!draining && take_pending_nodes()) {
        if (nodes->empty()) {
          spdlog::info("no nodes left to serve: detaching until some are declared");
          send_detach("no nodes");
          detached_for_no_nodes = true;
        } else {
          spdlog::info("node list changed ({} node(s)): attaching again", nodes->size());
          detached_for_no_nodes = false;
          send_attach();
        }
      }
      auto silence = std::chrono::milliseconds(ping_interval_ms * liveness);
      if (!draining && !detached_for_no_nodes && attached && now - last_ping > silence)
        reconnect(fmt::format("no ping for {} ms", silence.count()));
      if (!draining && !detached_for_no_nodes && !attached && now - attach_sent > std::max(silence, std::chrono::milliseconds(2000)))
        reconnect("no answer to attach");
      // Once attached, the response socket carries only replies (an Ack per message sent, or
      // without answer Acks only those to Attach/Pong/Detach; rarely a Rejected): it does not
      // wake the loop by itself, which saved a wake-up of this thread per request. It is read
      // below on every turn while a reply is due (always with a daemon that Acks answers) and
      // at least every 100 ms; the 100 ms bound drains it when nothing else happens.
      PolledSocket* const waited_sub = sub.get();
      // Direct, the response socket carries everything, and is asked at every wait.
      const WaitShape now_shape{sockets_made, sub.get(), monitor.get(),
                                direct || !attached || draining || detached_for_no_nodes};
      if (shape != now_shape) {
        items.clear();
        sub_item = sub ? items.add(*sub) : 0;
        results_item = items.add(results);
        dealer_item = now_shape.dealer ? items.add(*dealer) : 0;
        monitor_item = monitor ? items.add(*monitor) : 0;
        signal_item = signals ? items.add_fd(signals->fd()) : 0;
        shape = now_shape;
      }
      try {
        items.wait(std::chrono::milliseconds(100));
      } catch (const zmq::error_t& e) {
        if (e.num() != EINTR) throw;
      }
      if (signals && items.readable(signal_item)) signals->drain();
      if (monitor && items.readable(monitor_item)) on_dealer_events();
      bool replies_first = direct ? items.readable(dealer_item)
                                  : !no_answer_acks || !attached || draining || detached_for_no_nodes ||
                                        replies_due > 0 || pong_ack_due != 0 ||
                                        now - last_reply_read >= std::chrono::milliseconds(100);
      if (replies_first) {
        last_reply_read = now;
        read_replies();
      }
      // Only what the poll found readable is read: an empty read costs libzmq two syscalls.
      // (`sub` made or dropped by an Attached just read was not waited on.)
      const bool sub_readable = waited_sub && sub.get() == waited_sub && items.readable(sub_item),
                 results_readable = items.readable(results_item);
      for (int i = 0; sub_readable && i < 256; ++i) {
        // [topic, (payload frame)?, message]; more frames than that are a bad message.
        zmq::message_t topic, frame, payload;
        int extra = 0;
        auto recv = [&](zmq::socket_t& s) {
          if (!s.recv(topic, zmq::recv_flags::dontwait)) return false;
          if (!topic.more()) return true;
          (void)s.recv(payload, zmq::recv_flags::none);
          extra = recv_rest(s, payload, frame);
          return true;
        };
        if (!sub->read(recv)) break;
        if (!topic.more()) continue;
        if (extra > 1) {
          spdlog::warn("ignoring a published message of {} frames", extra + 2);
          continue;
        }
        // Replies first also inside this batch, message by message, while the Ack to a Pong
        // that listed answers is due (§7.6): it confirms what that Pong listed before the next
        // Ping is answered, a resume Credit sends chunks again or a re-sent WorkRequest gets its
        // answer again. (Read once per turn, an Ack that came during a batch waited for the next
        // turn, up to 255 messages later, and the Pongs meanwhile listed those answers again.)
        if (i > 0 && pong_ack_due != 0) read_replies();
        align_payload(payload);
        if (extra) align_payload(frame);
        on_own_topic = topic.to_string_view() == this->topic;
        on_published(bytes_of(payload), extra ? &frame : nullptr, false, &payload);
      }
      if (results_readable) on_answer();
      if (now - last_stall_check >= std::chrono::milliseconds(100)) {
        last_stall_check = now;
        resume_stalled_inputs();
      }
      send_batch();  // this turn's messages, as one
    }
    send_batch();
    if (!in_flight.empty())
      spdlog::warn("stopping with {} request(s) unfinished after {} ms", in_flight.size(),
                   opt.drain_timeout.count());
    {
      std::lock_guard lock(mu);
      pool_stop = true;
      jobs.clear();
    }
    cv.notify_all();
    if (in_flight.empty()) {
      for (auto& t : threads) t.join();
    } else {
      // A handler stuck past the drain bound is abandoned with the process: its thread and
      // socket stay alive, so this object must never be destroyed (see ~Worker).
      for (auto& t : threads) t.detach();
      abandoned = true;
    }
    threads.clear();
    spdlog::info("worker {} stopped", opt.worker_id);
    return exit_code;
  }
};

Worker::Worker(WorkerOptions options) : impl_(std::make_unique<WorkerImpl>(std::move(options))) {}

Worker::~Worker() {
  if (impl_ && impl_->abandoned) (void)impl_.release();  // see WorkerImpl::run
}

namespace {
void check_new_node(const std::vector<NodeDeclaration>& table, const NodeDeclaration& node) {
  auto& spec = node.spec;
  if (!valid_node_name(spec.name))
    throw std::invalid_argument(fmt::format("invalid node name '{}'", spec.name));
  for (auto& n : table)
    if (n.spec.name == spec.name)
      throw std::invalid_argument(fmt::format("node '{}' declared twice", spec.name));
  for (auto& port : node.streamed_inputs) {
    auto it = std::find_if(spec.inputs.begin(), spec.inputs.end(), [&](const Port& p) { return p.name == port; });
    if (it == spec.inputs.end() || (it->type != "bytes" && it->type != "any"))
      throw std::invalid_argument(
          fmt::format("node '{}': streamed input '{}' is not a declared input of type bytes", spec.name, port));
  }
}
}  // namespace

Worker& Worker::node(NodeSpec spec, Handler handler, HandlerThread thread) {
  return node(std::move(spec), std::move(handler), NodeOptions{.thread = thread});
}

Worker& Worker::node(NodeSpec spec, Handler handler, NodeOptions options) {
  std::lock_guard lock(impl_->nodes_mu);
  auto table = std::make_shared<WorkerImpl::NodeTable>(
      impl_->pending_nodes ? *impl_->pending_nodes : *impl_->nodes);
  NodeDeclaration declaration{std::move(spec), std::move(handler), options.thread, std::move(options.streamed_inputs)};
  check_new_node(*table, declaration);
  table->push_back(std::move(declaration));
  impl_->pending_nodes = std::move(table);
  return *this;
}

void Worker::set_nodes(std::vector<NodeDeclaration> nodes) {
  auto table = std::make_shared<WorkerImpl::NodeTable>();
  for (auto& n : nodes) {
    check_new_node(*table, n);
    table->push_back(std::move(n));
  }
  std::lock_guard lock(impl_->nodes_mu);
  impl_->pending_nodes = std::move(table);
}

int Worker::run() { return impl_->run(); }
void Worker::stop() { impl_->stop_requested = true; }
const std::string& Worker::worker_id() const { return impl_->opt.worker_id; }

}  // namespace muster
