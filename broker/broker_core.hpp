// broker_core.hpp — the broker's rules as a state machine: events and a clock in, actions out.
// Owns: requests (queued, dispatched, orphaned), per-node FIFO queues and their bound,
// deadlines, heartbeats and liveness, the slow-joiner confirmation, silent-loss re-sends,
// worker death (re-queue or WorkerLost), cancel, late results, shutdown, and the limits that
// keep one peer from taking the daemon (docs/PROTOCOL.md §10, docs/RELIABILITY.md).
// Must never: touch a socket, read a clock, or block. Every guarantee of DESIGN.md is
// decided here and is unit-testable (tests/unit/broker_core_test.cpp).
//
// Contract: every accepted Submit produces exactly one terminal ReplyToClient (ResultBody or
// FailureBody) for its (peer, request_id), and none after it; except a durable call still open
// at shutdown, which this instance leaves to the next one through the journal (no reply), and
// a durable call its caller resumed (JobResume) elsewhere: the terminal reply goes to the
// (peer, request_id) it was last bound to. A durable call's terminal reply is also kept (with
// its job id) until JobAck or result_ttl, and sent again on JobResume or JobGet. Every
// worker message produces exactly one ReplyToWorker, except a live Progress, Result or Failure
// of a worker that attached with no_answer_acks: none (its delivery is proven by the next Pong's
// Ack, PROTOCOL.md §7.7).
#pragma once

#include <array>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "deadline_queue.hpp"
#include "durable_jobs.hpp"
#include "events.hpp"
#include "interner.hpp"
#include "journal.hpp"
#include "journal_recovery.hpp"
#include "node_stats.hpp"
#include "registry.hpp"
#include "request_stats.hpp"
#include "resumable_calls.hpp"
#include "spare_nodes.hpp"
#include "watchers.hpp"
#include "stream_chunks.hpp"
#include "stream_credit.hpp"

namespace muster::broker {

namespace journal {
struct Verdict;  // journal_recovery.hpp
}

struct CoreConfig {
  Millis ping_interval{1000};
  std::uint32_t liveness = 3;          // pings a worker may miss before it is dead
  // Granted to a worker that asks (Attach.idle_pongs, PROTOCOL.md §7.3): while it holds
  // nothing it may answer only every k-th broadcast ping, and is dead after
  // ping_interval × (liveness + k − 1) of silence. 0 or 1: every ping (not granted).
  std::uint32_t idle_pong_every = 2;
  std::size_t queue_limit = 1000;      // per node
  // Payload bytes (inputs + parameters) musterd may hold for open requests, queued and running
  // together; a Submit that would pass it gets QueueFull. 0 = no limit.
  std::uint64_t max_open_bytes = 512ull << 20;
  std::uint32_t max_attempts = 3;      // dispatches of an idempotent request across worker deaths
  Millis default_timeout{30000};
  Millis confirm_interval{100};        // re-send of the confirming ping
  Millis shutdown_grace{5000};
  // When the last worker of a node goes, requests queued for it wait this long for a worker
  // of the node to attach, then end NO_WORKER (0: at once).
  Millis no_worker_grace{2000};
  // Re-sends of one request to a worker whose pongs keep missing it (silent loss); one more
  // miss and the request is treated as lost with its worker (re-queued if idempotent with
  // attempts left, else WORKER_LOST).
  std::uint32_t max_resends = 3;
  // What one client connection may have outstanding: open requests plus replies musterd
  // holds for it because it does not read them (by count and by payload bytes). A Submit
  // beyond either gets QUEUE_FULL at once. 0 = no limit.
  std::size_t max_client_outstanding = 10000;
  std::uint64_t max_client_outstanding_bytes = 256ull << 20;
  // Bounds on one Attach and on the workers of one identity (Rejected{InvalidRequest}); the
  // node count of an Attach is bounded before decoding (inbound.hpp, --max-attach-nodes).
  // Spec bytes: the size of the node specs as JSON, as every client's listing carries them.
  std::uint64_t max_attach_spec_bytes = 1ull << 20;
  std::size_t max_workers_per_identity = 256;
  std::string instance = "instance";
  std::string version = "0.0.0";
  // Durable calls (docs/DURABILITY.md). The wall time at the core's start `now`: the journal
  // keeps wall-clock times (wall(now) = wall_start + (now - start)), so tests stay on the
  // fake clock. A finished durable call's outcome is kept result_ttl. A durable Submit whose
  // payload would take the journal's payload bytes past journal_max_bytes gets QUEUE_FULL
  // (0 = no limit).
  journal::WallTime wall_start{};
  Millis result_ttl{3600000};
  std::uint64_t journal_max_bytes = 1ull << 30;
  // How often tick() asks the journal to forget outcomes kept past their time.
  Millis journal_expire_interval{60000};
  // The first request id this instance gives out. Request ids must never repeat across daemon
  // instances, since a worker keeps running (and reports) requests of an earlier instance
  // across a restart (PROTOCOL.md §7.6): the daemon starts them at its start time in ms × 1024
  // and above epoch << 40 once a journal is open (on_journal_epoch). Tests keep 1.
  std::uint64_t first_request_id = 1;
  // Pushed events (watchers.hpp): events one watcher may have waiting before it overflows
  // (--watch-backlog), and the watches one connection may hold open.
  std::size_t watch_backlog = 1024;
  std::size_t max_watches_per_connection = 64;
  // Item streams (PROTOCOL.md §7.8): the bounds of a call's window.
  StreamLimits streams;
  // Resumable calls (PROTOCOL.md §8.3): how long, and within how many bytes in all, the terminal
  // reply of one is kept after it was sent (--resume-keep-ms, 0: no call is resumable;
  // --resume-keep-bytes).
  Millis resume_keep{10000};
  std::uint64_t resume_keep_bytes = 64ull << 20;
};

struct StatusSnapshot {
  std::uint64_t uptime_ms = 0;
  std::uint32_t workers = 0, nodes = 0, queued = 0, in_flight = 0;
  std::uint32_t recovering = 0;  // restored durable calls waiting for their worker (§5 DURABILITY.md)
  std::uint64_t submitted = 0, completed = 0, failed = 0, redispatched = 0;
  std::array<std::uint64_t, 16> failures_by_code{};
  double rate_1m = 0;
};

class BrokerCore : private WatchSource {
 public:
  BrokerCore(CoreConfig config, TimePoint now);

  // ---- worker events (response socket). Each appends exactly one ReplyToWorker (but the
  // answers of a no_answer_acks worker that are not refused: none; and its Pongs that have
  // nothing to be told, pong_wants_ack). ----
  void on_attach(TimePoint now, const Peer& peer, const Caller& who, AttachEvent ev);
  void on_pong(TimePoint now, const Peer& peer, const Caller& who, const std::string& worker_id,
               std::uint64_t seq, const std::string& instance,
               const std::vector<std::uint64_t>& in_flight,
               const std::vector<std::uint64_t>& answered = {});
  void on_progress(TimePoint now, const Peer& peer, const Caller& who, const std::string& worker_id,
                   std::uint64_t request_id, std::uint64_t step, std::uint64_t total,
                   std::string message);
  // A Result naming (at any depth of its outputs) a chunked output stream not forwarded whole
  // is held, unanswered, until the stream's chunks are, each arrival answered by a resume
  // Credit to the worker (PROTOCOL.md §7.9 R8); any other is the terminal reply.
  void on_result(TimePoint now, const Peer& peer, const Caller& who, const std::string& worker_id,
                 std::uint64_t request_id, Payload outputs);
  void on_failure(TimePoint now, const Peer& peer, const Caller& who, const std::string& worker_id,
                  std::uint64_t request_id, ErrorCode code, std::string message);
  void on_detach(TimePoint now, const Peer& peer, const Caller& who, const std::string& worker_id);
  // One item of a call's stream (broker_core_streams.cpp, PROTOCOL.md §7.8): forwarded to the
  // caller at once if it is the next seq within the credit forwarded to the worker; a gap ends
  // the call WorkerLost, a duplicate or an item beyond the credit ends it WorkerError (the
  // worker gets Rejected and Abort). Answered like a Progress.
  void on_item(TimePoint now, const Peer& peer, const Caller& who, const std::string& worker_id,
               std::uint64_t request_id, std::uint64_t seq, Payload values);
  // A worker message that could not be decoded (or may not be acted on); answered Rejected.
  void on_bad_worker_message(const Peer& peer, std::string why,
                             ErrorCode code = ErrorCode::BadMessage);

  // ---- client events (client socket) ----
  void on_submit(TimePoint now, const Peer& peer, const Caller& who, SubmitEvent ev);
  // `workspace`, when the Cancel was made on behalf of a user (on_behalf_of): only a request of
  // that workspace is cancelled; one of another workspace is left alone, as an id not open.
  void on_cancel(TimePoint now, const Peer& peer, std::uint64_t client_request_id,
                 const std::string* workspace = nullptr);
  // A caller's Credit (PROTOCOL.md §7.8): clamped, and published to the worker when the grant
  // grew; of a chunked output stream (≥ 1, §7.9), the same by CallChunks' rules, and a resume
  // Credit always published, with its offset (R5). Never answered; ignored for a request not
  // open, not streaming, of another workspace (`workspace` as for on_cancel), and a resume
  // Credit on stream 0 (the items have no resumption).
  void on_credit(TimePoint now, const Peer& peer, const CreditEvent& ev,
                 const std::string* workspace = nullptr);
  // ---- chunked values (broker_core_chunks.cpp, PROTOCOL.md §7.9); the rules are CallChunks'.
  // A caller's Chunk of an input stream: forwarded to the worker at once within the worker's
  // grant; any violation ends the call BadMessage (Abort to the worker). Never answered; ignored
  // for a request not open (over, another connection's) or of another workspace.
  void on_client_chunk(TimePoint now, const Peer& peer, ChunkEvent ev, const std::string* workspace = nullptr);
  // A worker's Chunk of an output stream: forwarded to the caller at once within the caller's
  // grant; a gap (chunks lost on the way) answered by a resume Credit to the worker at the bytes
  // forwarded (once until a chunk comes at that offset), a resumed stream's stale chunk dropped
  // (PROTOCOL.md §7.9 R6, R7); another violation ends the call WorkerError (Rejected and Abort
  // to the worker). The chunk that completes the streams a held Result names forwards that
  // Result (R8). Answered like a Progress.
  void on_worker_chunk(TimePoint now, const Peer& peer, const Caller& who, const std::string& worker_id,
                       std::uint64_t request_id, std::uint32_t stream, std::uint64_t offset, Payload data);
  // A worker's Credit for an input stream: clamped and forwarded to the caller; a resume Credit
  // (`resume`, R5) sends the stream back to `resume_offset` and is always forwarded, with it.
  // Answered like a Progress; ignored for a request it does not hold.
  void on_worker_credit(TimePoint now, const Peer& peer, const Caller& who, const std::string& worker_id,
                        std::uint64_t request_id, std::uint32_t stream, std::uint64_t bytes, bool resume = false,
                        std::uint64_t resume_offset = 0);
  // ---- durable jobs (docs/DURABILITY.md §6; broker_core_jobs.cpp). Every one sees only the
  // jobs of `who.workspace`: another workspace's job is "no such job". ----
  // Binds each open job to (peer, ref.request_id) and answers Accepted{job_id} there (its
  // terminal reply follows there); answers a kept outcome with its Result/Failure; anything
  // else Failure{InvalidRequest} "no such job". The message's own request_id is not answered
  // (but a JobResume of more refs than max_client_outstanding is refused under it).
  void on_job_resume(TimePoint now, const Peer& peer, const Caller& who, const JobResumeEvent& ev);
  // Forgets the kept outcomes of these jobs (journals Acked). No reply.
  void on_job_ack(TimePoint now, const Caller& who, const JobAckEvent& ev);
  // JobInfo of an open job, the kept Result/Failure of a finished one, else "no such job".
  void on_job_get(TimePoint now, const Peer& peer, const Caller& who, const JobGetEvent& ev);
  // JobInfoList: the workspace's open jobs and kept outcomes, oldest first.
  void on_job_list(TimePoint now, const Peer& peer, const Caller& who, const JobListEvent& ev);
  // Ends an open job Cancelled (Abort to its worker if it runs; its caller gets
  // Failure{Cancelled}, kept like any outcome) and answers JobInfo{Finished}; a finished
  // job's JobInfo unchanged; else "no such job".
  void on_job_cancel(TimePoint now, const Peer& peer, const Caller& who, const JobCancelEvent& ev);
  // ---- resumable calls (PROTOCOL.md §8.3; broker_core_resume.cpp) ----
  // Each CallRef, in order, under its own request_id: an open call of this caller (`who`: same
  // identity, name, workspace) with that token is bound to (peer, request_id) and answered
  // Accepted{call_token}; then items it lost end it Unavailable (Abort to its worker, C3), its
  // output streams go back to what the caller has (resume Credits to the worker, R5) and its
  // input streams to what musterd forwarded (resume Credits to the caller, C4). A kept reply of
  // this caller is sent (once; Unavailable instead when the caller lacks items or bytes musterd
  // forwarded); anything else is Failure{Unavailable} "no such call"; a request_id open on the
  // connection Failure{InvalidRequest}. The message's own request_id is not answered (but a
  // CallResume of more refs than max_client_outstanding is refused under it).
  void on_call_resume(TimePoint now, const Peer& peer, const Caller& who, const CallResumeEvent& ev);
  const ResumableCalls& resumable() const { return resumable_; }

  // Whether the node `workspace`/`node` is declared durable (NodeSpec.durable): every call to
  // it is, so the socket loop must have the journal open before it submits one.
  bool node_is_durable(const std::string& workspace, const std::string& node) const;
  const DurableJobs& jobs() const { return jobs_; }

  void on_bad_client_message(const Peer& peer, std::uint64_t request_id, std::string why,
                             ErrorCode code = ErrorCode::BadMessage);
  // The socket loop holds `replies` replies (`bytes` bytes) for this connection that its
  // client has not read yet (the ClientOutbox); they count against the connection's
  // max_client_outstanding. Reported whenever the figure changes; 0 when it drains or the
  // connection is gone.
  void on_client_backlog(const std::string& connection, std::size_t replies, std::uint64_t bytes);
  // The key of a client connection (for on_client_backlog and the socket loop's outbox).
  static std::string connection_key(const Peer& peer) { return client_lane(peer); }

  // ---- pushed events (Watch, watchers.hpp; broker_core_watch.cpp) ----
  // Opens a watch of `who`'s workspace under (peer, request_id): its Snapshot and events follow
  // from the next publish_watch_events(). Its one terminal reply: Failure{Cancelled} on Cancel,
  // Failure{ShuttingDown} at shutdown; none once its connection is gone (on_client_gone).
  void on_watch(TimePoint now, const Peer& peer, const Caller& who, std::uint64_t request_id,
                WatchScope scope);
  // A reply to this connection found nobody: its watches end.
  void on_client_gone(const std::string& connection);
  // Once per turn, before actions() are sent: the turn's changes become events for the
  // watchers that can take them (appended to actions()).
  void publish_watch_events(TimePoint now);
  const Watchers& watchers() const { return watchers_; }

  // ---- identity changes ----
  // The identity was revoked: its workers leave the registry at once (death rules apply) and
  // its own open requests end with PermissionDenied (their workers get Abort).
  void on_identity_revoked(TimePoint now, const std::string& identity);

  // ---- time ----
  void tick(TimePoint now);
  TimePoint next_wakeup() const;

  // ---- shutdown ----
  void begin_shutdown(TimePoint now);
  bool shutting_down() const { return shutting_down_; }
  bool finished() const { return finished_; }

  // ---- output ----
  std::vector<Action>& actions() { return actions_; }
  // What the journal must hold before any of actions() may be sent (group commit, docs/
  // DURABILITY.md §3): the records of durable calls in the order they happened. The socket
  // loop appends them all in one turn, commits, then sends actions(), and clears both.
  std::vector<journal::JournalOp>& journal_ops() { return journal_ops_; }
  // The journal's payload bytes and next job id as committed (after open or load, and after
  // each commit: the journal's own count is the truth, this core counts only the turn).
  void on_journal_state(std::uint64_t payload_bytes, journal::JobId next_job_id);
  // The journal's epoch: request ids from now on start at epoch << 40, above any id a worker
  // may still hold from an earlier instance (docs/DURABILITY.md §4).
  void on_journal_epoch(std::uint64_t epoch);
  // After a restart: the durable calls the journal holds (load() order), decided by
  // journal_recovery::plan() and applied (broker_core_recovery.cpp, docs/DURABILITY.md §5).
  // Queued ones go back to their node's queues in order, under new request ids. Running ones
  // become Recovering under the request id their worker knows them by (it is below every id
  // this instance gives out): no worker slot, no queue place, until their worker re-attaches
  // (same worker id and identity) and its first Pong to a ping of this instance lists the id
  // in `in_flight` or `answered` — adopted: Dispatched on it, nothing re-run — or does not —
  // lost at once; at now + ping_interval × liveness (+ `reattach_extra`: a takeover's, when
  // workers may hear the old leader until its lease ends) the rest are lost: re-queued if idempotent
  // with attempts left, else finished WORKER_LOST naming the worker. Ones past their deadline
  // finish TIMEOUT (and their worker gets Abort if it comes back holding one); finished ones
  // (and those failed here) are kept for their caller (JobResume, JobGet) until acked or
  // expired. A restored call has no client connection until its
  // caller resumes: its terminal reply is journaled, not sent. Returns how many calls went
  // back to queues.
  std::size_t restore(TimePoint now, const std::vector<journal::Call>& calls, Millis reattach_extra = Millis{0});
  // Restored running calls still waiting for their worker (Recovering), and the time the rest
  // are declared lost (TimePoint::max() when none waits).
  std::size_t recovering() const;
  TimePoint reattach_until() const { return recovering_.empty() ? TimePoint::max() : reattach_until_; }
  std::uint64_t journal_bytes() const { return journal_bytes_; }

  // ---- queries ----
  std::vector<NodeSnapshot> list_nodes(const std::string& workspace) const;  // "" = all
  std::vector<WorkerSnapshot> list_workers(TimePoint now, const std::string& workspace) const;
  // `workspace` "" = the whole daemon; else only that workspace's workers, nodes and requests.
  StatusSnapshot status(TimePoint now, const std::string& workspace = "") const;
  // Per node: outcomes, latency histograms, rate, and the live figures (workers, in flight,
  // queue depth). Nodes that were called keep their figures after their workers left (until
  // the table is swept). `workspace` "" = every workspace. Sorted by workspace, then node.
  std::vector<NodeStatsSnapshot> node_stats(TimePoint now, const std::string& workspace) const;
  // A workspace's newest failures, newest first (`workspace` "" = every workspace's, merged).
  std::vector<RecentFailure> recent_failures(const std::string& workspace) const;
  const CoreConfig& config() const { return config_; }
  const Registry& registry() const { return registry_; }
  std::size_t open_requests() const { return requests_.size(); }
  // Counted against max_open_bytes: each open request's payload, once more for each re-send
  // after a silent loss (the re-sent copy may wait in libzmq's queue to the worker).
  std::uint64_t open_bytes() const { return open_bytes_ + open_resent_bytes_; }
  std::uint64_t open_resent_bytes() const { return open_resent_bytes_; }  // of open requests
  std::uint64_t resent_bytes() const { return resent_bytes_; }  // in all, since start
  // Client connections with open requests or unread replies.
  std::size_t client_connections() const { return outstanding_.size(); }
  // Every workspace that has workers now or sent requests since the start, sorted.
  std::vector<std::string> workspace_names() const;

 private:
  // Recovering: restored running, waiting for its worker to re-attach (broker_core_recovery.cpp);
  // it holds no worker slot and no queue place.
  enum class RequestState { Queued, Dispatched, Orphaned, Recovering };
  // The payload bytes one request holds, counted in open_bytes_ for as long as the request
  // exists: however it is erased, the count goes down with it.
  class HeldBytes {
   public:
    HeldBytes() = default;
    HeldBytes(std::uint64_t* total, std::uint64_t n) : total_(total), n_(n) { *total_ += n_; }
    HeldBytes(HeldBytes&& o) noexcept : total_(std::exchange(o.total_, nullptr)), n_(o.n_) {}
    HeldBytes& operator=(HeldBytes&& o) noexcept {
      if (this != &o) {
        release();
        total_ = std::exchange(o.total_, nullptr);
        n_ = o.n_;
      }
      return *this;
    }
    ~HeldBytes() { release(); }
    bool empty() const { return total_ == nullptr; }
    void add(std::uint64_t more) {
      if (!total_) return;
      *total_ += more;
      n_ += more;
    }

   private:
    void release() {
      if (total_) *total_ -= n_;
      total_ = nullptr;
    }
    std::uint64_t* total_ = nullptr;
    std::uint64_t n_ = 0;
  };
  // One open request. Kept small (a queue of 10,000 is 10,000 of these): what all requests of
  // a connection, a node or an identity have in common is shared (Interner), the payload is
  // held as its bytes only, and the trace id is stored only when the client chose one.
  struct Request {
    std::uint64_t id = 0;
    std::shared_ptr<const Peer> client;
    std::uint64_t client_request_id = 0;
    std::shared_ptr<const NodeKey> node;  // keeps `stats` alive (StatsTable)
    NodeStats* stats = nullptr;            // the node's statistics, found once at submit
    std::shared_ptr<const Caller> caller;
    std::shared_ptr<const void> payload_owner;  // keeps `inputs` and `parameters` alive
    std::span<const std::uint8_t> inputs, parameters;
    HeldBytes held;
    HeldBytes resent_held;           // once more per re-send after a silent loss
    TimePoint submitted{}, deadline{};
    TimePoint waiting_since{};       // submitted, or re-queued after its worker was lost
    TimePoint dispatched{};          // the last send to a worker
    std::string trace_id;            // empty: the default, "<instance>-<id>"
    std::string worker_id;
    std::uint64_t dispatch_seq = 0;  // the first ping seq published after the last send
    std::uint32_t attempts = 0;      // dispatches so far (re-sends after loss count too)
    std::uint32_t deaths = 0;        // workers that died holding it
    std::uint32_t resends = 0;       // re-sends to its current worker after a silent loss
    RequestState state = RequestState::Queued;
    bool want_progress = false;
    bool payload_frames = false;     // the client takes Result outputs as a frame of their own
    bool idempotent = false;
    bool answered = false;           // its terminal reply is sent: its deadline no longer counts
    journal::JobId job_id = 0;       // a durable call's job id (journaled); 0: not durable
    std::uint64_t call_token = 0;    // a resumable call's token (PROTOCOL.md §8.3); 0: not resumable
    // Restored by restore(): it waits in the lane of restored calls, in job order, whichever
    // connection resumes it (lane_of).
    bool restored_lane = false;
    // Its caller reads items (PROTOCOL.md §7.8): the stream's credit and counts; null otherwise.
    std::unique_ptr<ItemStream> stream;
    // Chunked streams (PROTOCOL.md §7.9): each output stream's initial window (0: the caller
    // takes none), and the streams' counters, made at the first Chunk or Credit of the call.
    std::uint64_t chunk_window = 0;
    std::unique_ptr<CallChunks> chunks;
    // The worker's Result, held while an output stream it names is short (§7.9 R8): its outputs
    // and those streams with the size each must reach. Dropped when the call ends (finish).
    std::optional<Payload> held_outputs;
    std::vector<std::pair<std::uint32_t, std::uint64_t>> held_streams;
  };
  struct PeerHash {
    std::size_t operator()(const Peer& p) const;
  };
  struct PeerEq {
    bool operator()(const Peer& a, const Peer& b) const;
  };
  struct CallerHash {
    std::size_t operator()(const Caller& c) const;
  };

  void reply_worker(const Peer& peer, std::variant<AttachedReply, AckReply, RejectedReply> body);
  // A worker's item or chunk the stream rules refused: a gap (something lost on the way) ends
  // the call WORKER_LOST; anything else is the worker breaking the `what` protocol (Rejected,
  // WORKER_ERROR). Either way the worker gets an Abort and keeps its slot until it answers.
  void fail_broken_stream(TimePoint now, const Peer& peer, WorkerEntry& w, Request& r, bool gap,
                          std::string_view what, const std::string& why);
  void reply_client(const Request& r, ClientReplyBody body);
  // Sends the terminal reply, counts it (daemon, workspace, node; a failure also goes to the
  // workspace's recent failures) and forgets the client side of the request.
  void finish(TimePoint now, Request& r, std::variant<ResultBody, FailureBody> terminal);
  void fail_and_erase(std::uint64_t id, ErrorCode code, std::string message);
  // Ends an open request with Failure{Cancelled, why}: off its queue, or Abort to its worker.
  // `code`: the caller's Failure (Cancelled, or Unavailable for items lost in a reconnect).
  void cancel_request(TimePoint now, std::unordered_map<std::uint64_t, Request>::iterator it,
                      const std::string& why, ErrorCode code = ErrorCode::Cancelled);
  // ---- durable jobs (broker_core_jobs.cpp) ----
  // A durable request's terminal outcome, kept for its caller (finish()).
  void keep_outcome(const Request& r, const journal::Outcome& outcome, journal::WallTime at);
  // What a restart decided for a loaded call, kept when it is (or became) finished (restore()).
  void keep_restored(const journal::Call& call, const journal::Verdict& verdict);
  JobInfoBody job_info(const Request& r, const OpenJob& open) const;
  // A reply to a Job* message (not of a request: droppable beyond the outbox's hard cap).
  void answer_client(const Peer& peer, std::uint64_t request_id, ClientReplyBody body);
  void no_such_job(const Peer& peer, std::uint64_t request_id, std::uint64_t job_id);
  // Binds the open request `r` to (peer, request_id): its queue lane, its outstanding count.
  // `resumed_job`: a durable call's JobResume, which asks for no progress and inline outputs.
  void rebind(Request& r, const Peer& peer, std::uint64_t request_id, bool resumed_job = true);
  // A JobResume or CallResume naming more refs than max_client_outstanding: refused under its
  // own request_id (InvalidRequest "<message> of N <what>: at most M ..."); true if it was.
  bool refused_as_too_many(const Peer& peer, std::uint64_t request_id, std::size_t refs,
                           std::string_view message, std::string_view what);
  // Whether `request_id` is taken on the connection `lane` (client_lane; `key` is
  // client_key(lane, request_id)) by an open request other than `except` (0: any request), or
  // by an open Watch. A Submit, JobResume or CallResume under a taken id is refused: its
  // replies would mix with the holder's.
  bool request_id_taken(const std::string& key, const std::string& lane, std::uint64_t request_id,
                        std::uint64_t except = 0) const;
  // ---- resumable calls (broker_core_resume.cpp) ----
  // A resumable request's terminal reply, kept for a CallResume (finish()).
  void keep_for_resume(TimePoint now, const Request& r, const std::variant<ResultBody, FailureBody>& terminal);
  // The open resumable request of `token` if it is `who`'s, else null.
  Request* open_resumable(std::uint64_t token, const Caller& who);
  // C3, C4 for the open request `r` just bound to `ref`'s request id.
  void resume_streams(TimePoint now, Request& r, const CallRefEvent& ref);
  // Shutdown of a durable request: forgotten here without a terminal reply or an Abort; the
  // journal keeps it (queued, or running on its worker) for the next instance to restore.
  void leave_to_next_instance(std::unordered_map<std::uint64_t, Request>::iterator it);
  // ---- pushed events (broker_core_watch.cpp) ----
  // Tells the caller's watchers (if any) that request `r` is now in `phase`.
  void note_call(const Request& r, CallPhase phase, ErrorCode code = ErrorCode::None);
  NodeSnapshot node_snapshot(const NodeKey& key, const NodeEntry& entry, std::uint32_t in_flight) const;
  WorkerSnapshot worker_snapshot(const WorkerEntry& w, TimePoint now) const;
  std::optional<NodeSnapshot> watched_node(const std::string& workspace, const std::string& node) const override;
  std::optional<WorkerSnapshot> watched_worker(const std::string& worker_id) const override;
  std::vector<NodeSnapshot> watched_nodes(const std::string& workspace) const override;
  std::vector<WorkerSnapshot> watched_workers(const std::string& workspace) const override;
  std::vector<CallSnapshot> watched_calls(const Caller& caller) const override;

  // A new request under `id` (not open), and an open one forgotten: through spare_requests_,
  // so a call takes no malloc and free of its map node.
  Request& new_request(std::uint64_t id) { return spare_requests_.insert(requests_, id); }
  void erase_request(std::unordered_map<std::uint64_t, Request>::iterator it) { spare_requests_.erase(requests_, it); }

  // Whether request `id`'s entry in deadlines_ still counts (DeadlineQueue's `live`).
  bool deadline_counts(std::uint64_t id) const;

  // ---- item streams (broker_core_streams.cpp) ----
  // Publishes again the grant of each stream worker `w` holds that it has not used up (a PUB
  // message may have been lost); called on its Pong, so at most once per ping interval.
  void republish_credits(const WorkerEntry& w);
  // Whether request `r` may run again elsewhere: not once an item of it reached its caller.
  static bool items_delivered(const Request& r) { return r.stream && r.stream->forwarded_any(); }

  // ---- chunked values (broker_core_chunks.cpp) ----
  CallChunks& chunks_of(Request& r) const;
  // A caller's Credit for one of the worker's output streams (on_credit with stream >= 1).
  void on_chunk_credit(Request& r, const CreditEvent& ev);
  // Publishes again the output streams' grants worker `w` has not used up (on its Pong).
  void republish_chunk_credits(const WorkerEntry& w);
  // Whether a chunk or a credit of the call went through: it may not run again elsewhere.
  static bool chunks_forwarded(const Request& r) { return r.chunks && r.chunks->forwarded_any(); }
  // Sends worker `r.worker_id` the resume Credit of output `stream` at the bytes forwarded (R7, R8).
  void ask_output_resume(Request& r, std::uint32_t stream);
  // A worker's Pong still lists in `in_flight` a call that is over (it ended while the worker
  // ran it: deadline, cancel, a broken stream) — its Abort was lost on the way (PUB drops while
  // a worker reconnects). The Abort goes again, so the handler stops and an orphaned call's
  // slot is freed once the worker stops listing it (PROTOCOL.md §7.4).
  void abort_again_if_over(const WorkerEntry& w, const std::vector<std::uint64_t>& in_flight);
  // R12: a worker confirmed after attaching again with its session may have lost output chunks
  // of any call it holds, also a stream's first window (no later chunk shows that gap, and no
  // Result comes while the worker waits for credit): every output stream of those calls is
  // asked to resume at the bytes forwarded (0 for one none came of).
  void resume_outputs_after_reattach(WorkerEntry& w);
  // R8: whether the Result `outputs` of dispatched request `r` names an output stream not
  // forwarded whole; then it is held (held_outputs) and the worker sent a resume Credit for each
  // such stream. false: forward it now (also when it names a stream the call cannot carry: the
  // caller refuses it).
  bool hold_result(Request& r, const Payload& outputs);
  // The held Result of `r`, forwarded if its streams are now whole (then `r` is erased and its
  // slot on `w` released).
  void forward_held_result(TimePoint now, WorkerEntry& w, Request& r);

  // The terminal reply of dispatched request `r` from its worker's answer (counted in the
  // node's service time); the caller erases `r` and releases the worker's slot.
  void finish_answered(TimePoint now, Request& r, std::variant<ResultBody, FailureBody> answer);
  // A Result or Failure from a worker: the terminal reply if the request is still live.
  void on_answer(TimePoint now, const Peer& peer, const Caller& who, const std::string& worker_id,
                 std::uint64_t request_id, std::variant<ResultBody, FailureBody> answer);
  WorkerEntry* worker_for(const Peer& peer, const Caller& who, const std::string& worker_id);
  // The request `request_id` if it is dispatched to worker `w` now, else null (over, not its
  // own, or not dispatched): what a worker's Progress, Item, Chunk or Credit may still touch.
  Request* dispatched_to(const WorkerEntry& w, std::uint64_t request_id);
  void send_to_worker(Request& r, WorkerEntry& w, TimePoint now);
  void dispatch_node(const NodeKey& key, TimePoint now);
  void dispatch_worker_nodes(WorkerEntry& w, TimePoint now);
  void release(WorkerEntry& w, std::uint64_t request_id, TimePoint now);
  void worker_gone(WorkerEntry& w, TimePoint now, const std::string& why);
  // The worker `worker_id` lost request `r` (it died, or kept missing it): an idempotent
  // request with attempts left goes back to the front of its node's queue (true), any other
  // ends WORKER_LOST and is erased (false). The caller takes it off the worker.
  bool lose_request(std::uint64_t id, const std::string& worker_id, const std::string& why,
                    TimePoint now);
  // Requests queued for nodes whose last worker left: NO_WORKER after no_worker_grace.
  void note_unserved(TimePoint now);
  void fail_unserved(TimePoint now);
  // Whether a ping with this seq was published where `w` listens: a broadcast ping still
  // remembered, or one of its confirming pings.
  bool ping_sent_to(const WorkerEntry& w, std::uint64_t seq) const;
  // Open requests and unread replies of one client connection (max_client_outstanding).
  struct Outstanding {
    std::size_t open = 0, unread = 0;
    std::uint64_t open_bytes = 0, unread_bytes = 0;
  };
  using OutstandingMap = std::unordered_map<std::string, Outstanding>;
  void count_open(const Request& r, int delta);
  void count_open(const Request& r, int delta, const std::string& lane);  // lane: client_lane(*r.client)
  // The same on the connection's entry `at`, already found (on_submit's limits), made under
  // `lane` if it is end(): one hash lookup fewer per Submit.
  void count_open(const Request& r, int delta, const std::string& lane, OutstandingMap::iterator at);
  void remove_from_queue(Request& r);
  void expire(TimePoint now);
  void check_liveness(TimePoint now);
  // The silence after which worker `w` is dead: ping_interval × (liveness + idle_pong_every − 1).
  Millis silence_allowed(const WorkerEntry& w) const;
  // Whether a valid Pong of `w` is answered: always, but for a no_answer_acks worker whose
  // Pong listed no answers and did not confirm it (its Ack would say nothing, §7.7).
  static bool pong_wants_ack(const WorkerEntry& w, const std::vector<std::uint64_t>& answered,
                             bool confirmed_now);
  // One terminal reply to a request of `workspace` (counted for the daemon, the workspace and,
  // when given, the node); a failure is remembered among the workspace's recent failures.
  void count_terminal(TimePoint now, ErrorCode code, WorkspaceStats& workspace, NodeStats* node,
                      std::string_view node_name, std::string_view message);
  std::int64_t second_of(TimePoint now) const;
  journal::WallTime wall(TimePoint now) const;
  // Appends a record of a durable call and keeps journal_bytes_ current.
  void journal(journal::Record record);
  void check_shutdown(TimePoint now);

  // ---- recovery of running durable calls after a restart (broker_core_recovery.cpp) ----
  // A restored call as a Request under `id` (payload, caller, deadline, counts; not queued).
  Request& restored_request(TimePoint now, const journal::Call& c, std::uint64_t id);
  journal::RecoveryView recovery_view(TimePoint now) const;
  // Worker `w` answered a ping of this instance: decides each Recovering call it ran before
  // the restart (adopt what it lists in `in_flight` or `answered`, lose the rest at once).
  void settle_recovering(TimePoint now, WorkerEntry& w, const std::vector<std::uint64_t>& in_flight,
                         const std::vector<std::uint64_t>& answered);
  // At reattach_until_: every call still Recovering is lost.
  void end_reattach_window(TimePoint now);
  // Applies a verdict of journal_recovery::decide() to the Recovering call `id` (`w`: its
  // worker, re-attached, or null). Returns the node a call was re-queued to, if any.
  std::optional<NodeKey> apply_recovery(TimePoint now, std::uint64_t id, const journal::Verdict& v,
                                        WorkerEntry* w);
  // A Recovering call reached its deadline: TIMEOUT now, and Abort to its worker if it comes
  // back holding it.
  void expire_recovering(TimePoint now, std::unordered_map<std::uint64_t, Request>::iterator it);
  // A Submit refused before it became a request; `node` is the node it named ("" when the
  // name itself is the problem). Counted for the node only if it has statistics already.
  void immediate_failure(TimePoint now, const Peer& peer, const Caller& who,
                         std::uint64_t client_request_id, std::string_view node,
                         ErrorCode code, std::string message);
  std::string client_key(const Peer& peer, std::uint64_t id) const;
  static std::string client_key(std::string_view lane, std::uint64_t id);  // lane: client_lane(peer)
  // The connection a request came from (its per-connection bounds, its reply outbox).
  static std::string client_lane(const Peer& peer);
  // A request's lane in its node's FairQueue: its connection and its caller's identity. A plain
  // client has one identity per connection, so one lane per connection; a gateway acting on
  // behalf of its users (on_behalf_of) gets one lane per user ("<gateway>/<user>"), so one
  // user's flood through a shared gateway connection does not starve its other users.
  static std::string queue_lane(const Peer& peer, const Caller& caller);
  // The lane request `r` waits in: its connection's, or the restored calls' one.
  static std::string lane_of(const Request& r);

  CoreConfig config_;
  TimePoint started_;
  Registry registry_;
  std::unordered_map<std::uint64_t, Request> requests_;
  // Nodes of erased requests, reused by the next Submit (new_request, erase_request).
  SpareNodes<std::unordered_map<std::uint64_t, Request>> spare_requests_{1024};
  Interner<Peer, PeerHash, PeerEq> clients_;
  Interner<Caller, CallerHash> callers_;
  std::unordered_map<std::string, std::uint64_t> by_client_;  // client_key -> request id
  DeadlineQueue<TimePoint> deadlines_;  // of requests the client waits for (deadline_counts)
  std::vector<Action> actions_;
  std::vector<journal::JournalOp> journal_ops_;
  std::uint64_t journal_bytes_ = 0;    // payload bytes the journal holds, as this core counts
  journal::JobId next_job_id_ = 1;
  DurableJobs jobs_;  // open durable requests by job id, and kept outcomes
  TimePoint next_journal_expire_{};
  // Restored running calls whose worker has not settled them yet, by request id: the journal's
  // view of each (payloads dropped), and whether it has finished already (TIMEOUT, or its
  // caller's identity revoked) so that only an Abort to its returning worker is left to do.
  struct RecoveringCall {
    journal::Call call;
    bool finished = false;
  };
  std::map<std::uint64_t, RecoveringCall> recovering_;
  TimePoint reattach_until_{};

  std::uint64_t open_bytes_ = 0;  // payload bytes of open requests (HeldBytes)
  std::uint64_t open_resent_bytes_ = 0;  // re-sent copies of open requests (HeldBytes)
  std::uint64_t resent_bytes_ = 0;
  std::map<NodeKey, TimePoint> unserved_;  // node -> when its queued requests get NO_WORKER
  std::deque<std::uint64_t> broadcast_seqs_;  // the newest broadcast pings, oldest first
  OutstandingMap outstanding_;  // by connection key
  std::uint64_t next_request_id_ = 1;
  std::uint64_t first_issued_id_ = 0;  // the first request id this instance gave out (0: none yet)
  std::uint64_t next_ping_seq_ = 1;
  TimePoint next_ping_at_{};
  TimePoint next_confirm_at_ = TimePoint::max();

  bool shutting_down_ = false;
  bool finished_ = false;
  TimePoint shutdown_deadline_{};

  // statistics
  std::uint64_t submitted_ = 0, redispatched_ = 0;
  RequestStats terminal_;  // the daemon's terminal replies (its submitted/redispatched unused)
  StatsTable stats_;       // per workspace and per node; requests point at their entries

  Watchers watchers_;
  ResumableCalls resumable_;  // tokens and kept replies of resumable calls (PROTOCOL.md §8.3)
  TimePoint watch_now_{};  // the time of the publish under way (workers' ages)
};

}  // namespace muster::broker
