// daemon.cpp — musterd's socket loop. See daemon.hpp.
#include "daemon.hpp"

#include <array>
#include <filesystem>
#include <optional>
#include <thread>
#include <random>
#include <tuple>
#include <unordered_set>
#include <variant>

#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <zmq.hpp>

#include "muster/endpoints.hpp"
#include "muster/batch.hpp"
#include "muster/batch_message.hpp"
#include "muster/frames.hpp"
#include "muster/messages.hpp"
#include "muster/process.hpp"
#include "muster/runtime_dir.hpp"
#include "muster/zap_policy.hpp"
#include "muster/socket_poll.hpp"
#include "admin.hpp"
#include "caller_context.hpp"
#include "client_outbox.hpp"
#include "commit_pipeline.hpp"
#include "inbound.hpp"
#include "journal_open.hpp"
#include "journal_thread.hpp"
#include "metrics_server.hpp"
#include "node_stats_wire.hpp"
#include "security.hpp"
#include "standby.hpp"
#include "subscription_policy.hpp"
#include "watch_wire.hpp"
#include "zap_handler.hpp"

namespace muster::broker {

namespace {

std::string random_instance() {
  std::random_device rd;
  std::uniform_int_distribution<std::uint64_t> dist;
  return fmt::format("{:016x}", dist(rd));
}

std::string str(const flatbuffers::String* s) { return s ? s->str() : std::string(); }

flatbuffers::Offset<flatbuffers::Vector<std::uint8_t>> payload_vector(
    flatbuffers::FlatBufferBuilder& fbb, const Payload& p) {
  if (p.bytes.empty()) return 0;
  fbb.ForceVectorAlignment(p.bytes.size(), 1, 8);  // a nested buffer needs 8-byte alignment
  return fbb.CreateVector(p.bytes.data(), p.bytes.size());
}

// A Chunk of a call's stream (PROTOCOL.md §7.9): the data copied in, 8-byte aligned.
flatbuffers::Offset<wire::Chunk> create_chunk(flatbuffers::FlatBufferBuilder& fbb, std::uint64_t request_id,
                                              std::uint32_t stream, std::uint64_t offset, const Payload& data) {
  return wire::CreateChunk(fbb, request_id, stream, offset, payload_vector(fbb, data));
}

// Payloads at least this big go to a peer that takes payload frames as a frame of their own
// (PROTOCOL.md §2.1); smaller ones are cheaper copied into the message than sent as a frame.
constexpr std::size_t kPayloadFrameMin = 16 * 1024;

bool as_frame(const Payload& p, bool peer_takes_frames) {
  return peer_takes_frames && p.bytes.size() >= kPayloadFrameMin;
}

// A frame that shows a payload's bytes without copying them: it holds the payload's owner
// (the received message, or its copy) until libzmq has sent it.
zmq::message_t frame_of(const Payload& p) {
  auto* keep = new std::shared_ptr<const void>(p.owner);
  return zmq::message_t(
      const_cast<std::uint8_t*>(p.bytes.data()), p.bytes.size(),
      [](void*, void* hint) { delete static_cast<std::shared_ptr<const void>*>(hint); }, keep);
}

static_assert(static_cast<int>(JobState::Queued) == static_cast<int>(wire::JobState::Queued) &&
              static_cast<int>(JobState::Running) == static_cast<int>(wire::JobState::Running) &&
              static_cast<int>(JobState::Recovering) == static_cast<int>(wire::JobState::Recovering) &&
              static_cast<int>(JobState::Finished) == static_cast<int>(wire::JobState::Finished));

flatbuffers::Offset<wire::JobInfo> encode_job_info(flatbuffers::FlatBufferBuilder& fbb, const JobInfoBody& j) {
  return wire::CreateJobInfoDirect(fbb, j.job_id, static_cast<wire::JobState>(j.state), j.node.c_str(),
                                   j.workspace.c_str(), j.submitted_ms,
                                   j.worker_id.empty() ? nullptr : j.worker_id.c_str(), j.attempts, j.code,
                                   j.finished_ms);
}

// One reply to a client, as the outbox keeps it until libzmq takes it.
struct ClientFrames {
  Peer peer;
  std::array<zmq::message_t, 2> frames;  // [payload frame]? message
  std::size_t count = 0;
};

// Sends one reply without blocking: Full when the connection's pipe is at its high-water mark
// (EAGAIN; nothing is taken and `m` stays whole), Gone when the peer is not connected
// (EHOSTUNREACH with ROUTER_MANDATORY).
SendOutcome send_client_frames(zmq::socket_t& socket, ClientFrames& m) {
  try {
    if (!socket.send(zmq::buffer(m.peer.routing_id), zmq::send_flags::sndmore | zmq::send_flags::dontwait))
      return SendOutcome::Full;
    // Once the first frame is taken, libzmq takes the rest of the message whole.
    if (m.peer.delimiter) socket.send(zmq::message_t(), zmq::send_flags::sndmore);
    for (std::size_t i = 0; i + 1 < m.count; ++i) socket.send(std::move(m.frames[i]), zmq::send_flags::sndmore);
    socket.send(std::move(m.frames[m.count - 1]), zmq::send_flags::dontwait);
    return SendOutcome::Sent;
  } catch (const zmq::error_t&) {
    return SendOutcome::Gone;
  }
}

// The socket loop's budget per socket per turn: at most this many messages and this much time
// (one message may overrun it), so one peer's expensive messages (a big Attach) cannot keep
// the loop from reading the other sockets (docs/RELIABILITY.md, "attach-storm").
constexpr int kBatch = 256;
constexpr auto kSocketBudget = std::chrono::milliseconds(4);
// While replies wait in an outbox, the loop wakes at least this often to retry them.
constexpr auto kOutboxRetry = std::chrono::milliseconds(5);

// Batches (PROTOCOL.md §2.2): a message larger than kBatchItemMax goes alone; a batch is sent
// once it holds kBatchMaxBytes, and at the end of every flush (one loop turn's messages).
constexpr std::size_t kBatchItemMax = 16 * 1024;
constexpr std::size_t kBatchMaxBytes = 64 * 1024;

// The messages of one turn for one worker (its topic) or one client connection, sent as one.
// Where a worker's messages go: its topic on the request sockets, or, for a direct worker
// (PROTOCOL.md §7.10), its connection on the response socket it attached through.
using WorkerRoute = std::variant<std::string, Peer>;
WorkerRoute route_of(const WorkerEntry& w) { return w.direct ? WorkerRoute{w.connection} : WorkerRoute{w.topic}; }

struct WorkerBatch {
  WorkerRoute route;  // the worker's when the batch was opened
  BatchWriter writer;
};
struct ClientBatch {
  Peer peer;
  BatchWriter writer;
  ReplyKind kind = ReplyKind::Progress;  // the strongest kind of its replies (outbox rules)
};

}  // namespace

struct Daemon::Impl {
  DaemonOptions opt;
  zmq::context_t ctx{1};
  std::unique_ptr<Security> security;
  std::unique_ptr<ZapHandler> zap;
  // The loop's sockets, reached only through PolledSocket::use() or read(): the loop's wait
  // asks a socket before blocking only when it was used since it was last found not readable.
  std::vector<PolledSocket> requests;   // XPUB (manual), one per endpoint: everything is published
                                        // on each a subscription was applied on (request_subscribed);
                                        // subscriptions pass subscription_policy
  std::vector<PolledSocket> responses;  // ROUTER; Peer::via says which one a worker is on
  std::vector<PolledSocket> clients;    // ROUTER; Peer::via likewise
  std::optional<PolledSocket> enroll;   // ROUTER
  // Per request socket: whether a subscription was ever applied on it. An XPUB delivers nothing
  // on a socket nobody subscribed on, so nothing is published there: each send would cost
  // syscalls and make the next wait ask it (the local ipc socket, when every worker is on tcp).
  std::vector<bool> request_subscribed;
  BrokerCore core;
  std::uint64_t unroutable = 0;
  // Client replies libzmq could not take yet (a client not reading), per connection, in order.
  ClientOutbox<ClientFrames> outbox;
  std::uint64_t dropped_refusals_logged = 0;
  TimePoint dropped_logged_at{};
  // Refused subscriptions are logged at most once a second (a peer may send thousands).
  Clock::time_point refusal_logged_at{};
  std::uint64_t refusals_unlogged = 0;
  // /metrics (--metrics-address): the server thread asks, the loop answers with a snapshot.
  std::uint64_t enrollments_ok = 0, enrollments_refused = 0, tokens_revoked = 0, identities_revoked = 0;
  std::unique_ptr<MetricsExchange> metrics_exchange;
  std::unique_ptr<MetricsServer> metrics_server;  // after the exchange: destroyed before it
  // Every send path's builder: reused for small messages (transport/frames.hpp).
  MessageBuilders builders;
  std::string default_trace;  // send_work's default trace id, reused
  CallerContextBlock caller_context;  // send_work's CallerContext, written once per caller (but its trace id)
  // The journal of durable calls, once opened (open_journal), on the thread that commits it;
  // `pipeline` holds each turn's actions until the commit of its records (and of every turn
  // before it) is confirmed (pipelined group commit, docs/DURABILITY.md §3).
  std::unique_ptr<journal::JournalThread> journal;
  CommitPipeline pipeline{opt.core.ping_interval / 2, opt.journal_early_dispatch, opt.journal_gather};
  std::uint64_t committing_core_bytes = 0;  // the batch in flight's Batch::core_bytes
  // Batches (PROTOCOL.md §2.2), a transport matter only: the core never sees them. Workers whose
  // Attach asked for batches (and were told Attached.batches), connections whose Submits did.
  std::unordered_set<std::string> batching_workers;  // worker ids
  std::unordered_map<std::string, bool> attach_asks;  // routing id + worker id -> batches, this turn
  // Inside flush(), the batchable messages of the turn wait here, per peer, until its end.
  bool collecting = false;
  std::unordered_map<std::string, WorkerBatch> worker_batches;  // by worker id (reused)
  // By connection key: one entry per connection whose Submits asked for batches (reused each
  // turn), so a reply finds whether to batch and where in one lookup.
  std::unordered_map<std::string, ClientBatch> client_batches;
  std::vector<std::string> open_worker_batches, open_client_batches;  // with items this turn

  explicit Impl(DaemonOptions o)
      : opt(std::move(o)), core(opt.core, Clock::now()), outbox(2 * opt.core.max_client_outstanding) {}

  bool curve_for(const std::string& ep) const { return is_tcp(ep) && !opt.insecure; }

  // Whether the socket a peer came through is bound on an ipc:// endpoint (the local owner's).
  static bool via_ipc(const std::vector<std::string>& endpoints, std::uint8_t via) {
    return via < endpoints.size() && is_ipc(endpoints[via]);
  }

  // False when a signal stopped a standby before it led (nothing was bound).
  bool setup(SignalPipe& signals) {
    bool any_curve = !opt.enrollment_address.empty();
    for (auto* list : {&opt.request_addresses, &opt.response_addresses, &opt.client_addresses})
      for (auto& ep : *list) {
        check_endpoint(ep, /*curve=*/!opt.insecure, opt.insecure);
        any_curve = any_curve || curve_for(ep);
      }
    if (!opt.enrollment_address.empty()) {
      if (!is_tcp(opt.enrollment_address))
        throw std::invalid_argument(fmt::format("{}: the enrollment endpoint must be tcp://", opt.enrollment_address));
      if (opt.insecure)
        throw std::invalid_argument("--enrollment-address needs CURVE: it cannot be used with --insecure");
    }
    security = std::make_unique<Security>(opt.data_dir);
    if (!opt.metrics_address.empty()) {  // before the journal: a standby answers scrapes too
      metrics_exchange = std::make_unique<MetricsExchange>();
      metrics_server = std::make_unique<MetricsServer>(opt.metrics_address, opt.metrics_allow_remote,
                                                       *metrics_exchange);
    }
    if (!opt.journal.empty() || std::filesystem::exists(default_journal_path()))
      if (!open_journal(&signals)) return false;  // a standby waits there for the lease
    if (any_curve) zap = std::make_unique<ZapHandler>(ctx, security->identities());  // before any CURVE bind
    for (auto& ep : opt.request_addresses)
      requests.emplace_back(make_socket(zmq::socket_type::xpub, ep, keys::kZapDomainWorker, "request"));
    request_subscribed.assign(requests.size(), false);
    for (auto& ep : opt.response_addresses)
      responses.emplace_back(make_socket(zmq::socket_type::router, ep, keys::kZapDomainWorker, "response"));
    for (auto& ep : opt.client_addresses)
      clients.emplace_back(make_socket(zmq::socket_type::router, ep, keys::kZapDomainClient, "client"));
    if (!opt.enrollment_address.empty())
      enroll.emplace(make_socket(zmq::socket_type::router, opt.enrollment_address, keys::kZapDomainEnroll, "enrollment"));
    if (any_curve)
      spdlog::info("CURVE on tcp:// endpoints; daemon public key {}", security->daemon_keys().public_key);
    return true;
  }

  // ---- the journal of durable calls (docs/DURABILITY.md) ------------------------------------

  std::filesystem::path default_journal_path() const {
    return std::filesystem::path(opt.data_dir) / "journal.db";
  }

  // Opens --journal (or the default file); with `signals`, a journal shared by a failover pair
  // first waits for its lease (standby.hpp) and false means a signal stopped that wait. Throws
  // JournalError (naming the store) or invalid_argument (a spec of an unknown kind).
  bool open_journal(SignalPipe* signals) {
    journal::JournalSettings js{opt.journal, opt.core.journal_max_bytes, opt.journal_sync,
                                opt.journal_shard, lease_holder(core.config().instance),
                                opt.journal_lease_term};
    if (js.spec.empty()) {
      js.spec = "sqlite:" + default_journal_path().string();
      // The data dir holds keys too: the owner's alone, as Security makes it.
      if (std::error_code ec; std::filesystem::create_directories(opt.data_dir, ec))
        std::filesystem::permissions(opt.data_dir, std::filesystem::perms::owner_all, ec);
    }
    auto j = journal::open_journal(js);
    std::optional<StandbyMetrics> standby_metrics;
    if (metrics_exchange)
      standby_metrics.emplace(StandbyMetrics{*metrics_exchange, [this] {
        auto s = std::make_shared<MetricsSnapshot>();
        s->version = MUSTER_DAEMON_VERSION;
        s->instance = core.config().instance;
        s->leading = false;
        s->daemon.uptime_ms = core.status(Clock::now()).uptime_ms;
        return std::shared_ptr<const MetricsSnapshot>(std::move(s));
      }});
    if (signals && !wait_until_leading(*j, *signals, standby_metrics ? &*standby_metrics : nullptr)) return false;
    // Job ids are never reused; request ids start above any an earlier instance gave out.
    auto loaded = j->load();
    core.on_journal_state(j->payload_bytes(), loaded.next_job_id);
    core.on_journal_epoch(j->epoch());
    // A pair shares its identities and tokens too, written under the same lease (§12).
    if (journal::is_shared_store(js.spec)) security->share({js.spec, js.shard, js.lease_term}, j->epoch());
    spdlog::info("journal {} open (epoch {}, {} call(s) held, {} payload bytes)", j->describe(),
                 j->epoch(), loaded.calls.size(), j->payload_bytes());
    journal = std::make_unique<journal::JournalThread>(std::move(j), opt.journal_lease_term / 4);
    // The calls an earlier instance left open (docs/DURABILITY.md §5); what this decides is
    // journaled by the first turn's commit, before anything is sent.
    // On a shared journal this instance may be taking over from a leader its workers still
    // heard until its lease ran out (a partitioned or paused one): they notice only then, and
    // an Attach it swallowed goes again after the SDKs' attach timeout (5 s). Their running
    // calls wait that much longer before they count as lost (docs/DURABILITY.md §12).
    const auto reattach_extra = journal::is_shared_store(opt.journal)
                                    ? std::chrono::duration_cast<Millis>(opt.journal_lease_term) +
                                          std::chrono::milliseconds(5000)
                                    : Millis{0};
    if (auto requeued = core.restore(Clock::now(), loaded.calls, reattach_extra))
      spdlog::info("restored {} durable call(s) of an earlier instance to their queues", requeued);
    return true;
  }

  // Empty when durable calls can be journaled now (opening the default journal on first use),
  // else why not.
  std::string journal_unavailable() {
    if (journal) return {};
    try {
      open_journal(nullptr);  // the default SQLite file: never shared, never waits
      return {};
    } catch (const std::exception& e) {
      spdlog::error("cannot open the journal for a durable call: {}", e.what());
      return fmt::format("durable calls need the journal, which musterd cannot open: {}", e.what());
    }
  }

  // Pipelined group commit (docs/DURABILITY.md §3; the rules are commit_pipeline.hpp's): the
  // turn's records join the next batch and its actions wait in the pipeline; the batches the
  // journal thread synced release what waited for them, and the next batch goes to it as soon
  // as the one before is written (its sync may still run).
  // `block`: waits for the oldest batch not synced first (the loop ran max_lag ahead, or it drains).
  // A failure stops musterd: its memory is ahead of its journal, and nothing that waited for
  // the failed commit is sent.
  void end_turn() {
    auto& ops = core.journal_ops();
    if (!journal) ops.clear();  // only ExpireKept can come without a journal (no durable call yet)
    pipeline.end_turn(std::move(ops), std::move(core.actions()), core.journal_bytes());
    ops.clear();
    core.actions().clear();
  }

  void pump_journal(bool block) {
    if (!journal) return;
    try {
      const auto oldest = block ? pipeline.oldest_unconfirmed() : std::nullopt;
      auto p = oldest ? journal->wait(*oldest) : journal->done();
      if (auto& d = p.written) {
        journal->take_spares(pipeline.spares());  // the written turns' vectors, for the next turns
        pipeline.written(d->seq);
        core.on_journal_state(
            CommitPipeline::resynced_bytes(core.journal_bytes(), d->payload_bytes, committing_core_bytes), 0);
      }
      pipeline.committed(p.synced);
      if (auto batch = pipeline.next_batch(Clock::now(), /*gather=*/!block)) {
        committing_core_bytes = batch->core_bytes;
        journal->commit(batch->seq, std::move(batch->turns));
      }
    } catch (const journal::JournalError& e) {
      throw journal::JournalError(fmt::format(
          "the journal failed; stopping, nothing that waited for this commit was sent (a restart "
          "recovers from the last committed turn): {}", e.what()));
    }
  }

  // What a scrape of /metrics reports, copied out of the core (rendered on the metrics thread).
  std::shared_ptr<const MetricsSnapshot> metrics_snapshot(TimePoint now) const {
    auto s = std::make_shared<MetricsSnapshot>();
    s->version = MUSTER_DAEMON_VERSION;
    s->instance = core.config().instance;
    s->daemon = core.status(now);
    for (auto& ws : core.workspace_names()) s->workspaces.push_back({ws, core.status(now, ws)});
    s->nodes = core.node_stats(now, "");
    s->open_requests = core.open_requests();
    s->open_payload_bytes = core.open_bytes();
    s->client_connections = core.client_connections();
    s->enrollments_ok = enrollments_ok;
    s->enrollments_refused = enrollments_refused;
    s->tokens_revoked = tokens_revoked;
    s->identities_revoked = identities_revoked;
    return s;
  }

  zmq::socket_t make_socket(zmq::socket_type type, const std::string& ep, std::string_view domain,
                            std::string_view what) {
    zmq::socket_t s(ctx, type);
    s.set(zmq::sockopt::linger, 2000);
    s.set(zmq::sockopt::sndhwm, 100000);
    s.set(zmq::sockopt::rcvhwm, 100000);
    s.set(zmq::sockopt::maxmsgsize, static_cast<std::int64_t>(opt.max_message_bytes * 2));
    if (type == zmq::socket_type::router) s.set(zmq::sockopt::router_mandatory, 1);
    if (type == zmq::socket_type::xpub) {
      // Every (un)subscription comes to us, and none is applied unless we apply it.
      s.set(zmq::sockopt::xpub_verboser, 1);
      s.set(zmq::sockopt::xpub_manual, 1);
    }
    if (curve_for(ep)) {
      s.set(zmq::sockopt::curve_server, 1);
      s.set(zmq::sockopt::curve_secretkey, security->daemon_keys().secret_key);
      s.set(zmq::sockopt::zap_domain, std::string(domain));
    }
    prepare_ipc_bind(ep);
    try {
      s.bind(ep);
    } catch (const zmq::error_t& e) {
      throw std::runtime_error(fmt::format("cannot bind the {} socket on {}: {}", what, ep, e.what()));
    }
    spdlog::info("{} socket on {}{}", what, ep, curve_for(ep) ? " (CURVE)" : "");
    return s;
  }

  // ---- inbound -----------------------------------------------------------------------

  // Limits of the decoder (inbound.hpp) for each socket.
  InboundLimits worker_limits() const {
    InboundLimits limits{opt.max_message_bytes, opt.max_attach_nodes, 0};
    // A node list within --max-attach-spec-bytes (counted as JSON) never takes twice that in
    // FlatBuffers; anything larger is refused unverified.
    if (opt.core.max_attach_spec_bytes) limits.max_attach_bytes = 2 * opt.core.max_attach_spec_bytes + 65536;
    return limits;
  }
  InboundLimits client_limits() const {
    // libzmq hands out small received messages as slices of a shared 8 KiB read buffer
    // (ZMQ_IN_BATCH_SIZE), and one slice alive keeps all of it: a queued request keeps a copy
    // of its payload bytes alone (docs/PERFORMANCE.md, "An open request's memory").
    return client_socket_limits(opt.max_message_bytes, opt.max_attach_nodes);
  }

  void on_worker_message(RouterMessage& m) {
    auto now = Clock::now();
    if (m.frame_count < 2) return;  // nothing to answer with
    if (!m.well_formed)
      return core.on_bad_worker_message(
          m.peer, fmt::format("expected one payload frame (after an optional empty delimiter), "
                              "got {} frames",
                              m.frame_count - 1));
    auto owner = std::make_shared<zmq::message_t>(std::move(m.payload));
    // A Batch's items are handled one by one as if each had come alone (PROTOCOL.md §2.2).
    std::optional<std::optional<Caller>> caller;  // looked up once per ZeroMQ message
    for_each_worker_event(bytes_of(*owner), [&] { return owner; }, worker_limits(), [&](WorkerEvent&& ev) {
      if (auto* r = std::get_if<Refusal>(&ev)) return core.on_bad_worker_message(m.peer, std::move(r->why), r->code);
      if (!caller)
        caller = security->caller_for(m.peer, keys::Role::Worker, via_ipc(opt.response_addresses, m.peer.via));
      if (!*caller)
        return core.on_bad_worker_message(m.peer, "this identity is revoked or not enrolled as a worker",
                                          ErrorCode::PermissionDenied);
      if (auto* a = std::get_if<AttachEvent>(&ev)) attach_asks[m.peer.routing_id + a->worker_id] = a->batches;
      deliver(core, now, m.peer, **caller, std::move(ev));
    });
  }

  void on_client_message(RouterMessage& m) {
    auto now = Clock::now();
    if (m.frame_count < 2) return;
    if (!m.well_formed)
      return core.on_bad_client_message(
          m.peer, 0,
          fmt::format("expected one payload frame (after an optional empty delimiter), got {} frames",
                      m.frame_count - 1));
    // Kept only for a large message (client_limits): moving it leaves its bytes where they are
    // (the items of a Batch are slices of it too: one owner for all).
    std::shared_ptr<zmq::message_t> owner;
    KeepBytes keep = [&] {
      if (!owner) owner = std::make_shared<zmq::message_t>(std::move(m.payload));
      return std::shared_ptr<const void>(owner);
    };
    std::optional<std::optional<Caller>> caller;  // looked up once per ZeroMQ message
    // A Batch's items are handled one by one as if each had come alone (PROTOCOL.md §2.2).
    for_each_client_message(
        bytes_of(m.payload), client_limits(),
        [&](std::span<const std::uint8_t> bytes, bool in_batch) {
          on_client_item(now, m.peer, bytes, keep, in_batch, caller);
        },
        [&](Refusal&& r) { core.on_bad_client_message(m.peer, r.request_id, std::move(r.why), r.code); });
  }

  // One ClientMessage (alone, or an item of a Batch). `caller`: the sender, once looked up.
  void on_client_item(TimePoint now, const Peer& peer, std::span<const std::uint8_t> bytes, const KeepBytes& keep,
                      bool in_batch, std::optional<std::optional<Caller>>& caller) {
    std::optional<OnBehalfOf> asserted;
    ClientEvent ev = decode_client_message(bytes, keep, client_limits(), &asserted, in_batch);
    if (auto* r = std::get_if<Refusal>(&ev))
      return core.on_bad_client_message(peer, r->request_id, std::move(r->why), r->code);
    auto rid = std::visit([](auto& e) -> std::uint64_t {
      using T = std::decay_t<decltype(e)>;
      if constexpr (std::is_same_v<T, SubmitEvent> || std::is_same_v<T, CreditEvent> || std::is_same_v<T, ChunkEvent>)
        return e.client_request_id;
      else if constexpr (std::is_same_v<T, JobEvent>) return request_id_of(e);
      else return e.request_id;
    }, ev);
    if (!caller) caller = security->caller_for(peer, keys::Role::Client, via_ipc(opt.client_addresses, peer.via));
    if (!*caller)
      return core.on_bad_client_message(peer, rid, "this identity is revoked or not enrolled as a client",
                                        ErrorCode::PermissionDenied);
    // A gateway's message acts as the user it asserts, if it may (broker/on_behalf_of).
    // A Credit, like a Cancel, touches only the connection's own request. Most messages assert
    // no one and act as their sender: then no verdict (a copy of the caller) is made.
    AssertionVerdict verdict;
    const Caller* acting = &**caller;
    if (!acts_as_sender(**caller, asserted)) {
      verdict = decide_on_behalf_of(**caller, asserted,
                                    std::holds_alternative<CancelEvent>(ev) || std::holds_alternative<CreditEvent>(ev) ||
                                        std::holds_alternative<ChunkEvent>(ev),
                                    std::holds_alternative<AdminEvent>(ev));
      if (!verdict.caller) return core.on_bad_client_message(peer, rid, std::move(verdict.reason), verdict.code);
      acting = &*verdict.caller;
    }
    const Caller& who = *acting;
    if (auto* s = std::get_if<SubmitEvent>(&ev)) {
      if (s->batch_replies) mark_batching_client(peer);
      if (s->durable || core.node_is_durable(who.workspace, s->node))
        if (auto why = journal_unavailable(); !why.empty())
          return core.on_bad_client_message(peer, rid, std::move(why), ErrorCode::Unavailable);
      return core.on_submit(now, peer, who, std::move(*s));
    }
    if (auto* c = std::get_if<CancelEvent>(&ev))
      return core.on_cancel(now, peer, c->request_id, asserted ? &who.workspace : nullptr);
    if (auto* w = std::get_if<WatchEvent>(&ev)) return core.on_watch(now, peer, who, w->request_id, w->scope);
    if (auto* c = std::get_if<CreditEvent>(&ev)) return core.on_credit(now, peer, *c, asserted ? &who.workspace : nullptr);
    if (auto* c = std::get_if<ChunkEvent>(&ev))
      return core.on_client_chunk(now, peer, std::move(*c), asserted ? &who.workspace : nullptr);
    if (auto* j = std::get_if<JobEvent>(&ev)) return deliver(core, now, peer, who, *j);
    if (auto* a = std::get_if<AdminEvent>(&ev)) {
      auto type = a->message->body_type();
      auto reply = run_admin(*security, core, *a->message, who, now);
      if (std::holds_alternative<AdminReportBody>(reply)) {
        if (type == wire::ClientBody::TokenRevoke) ++tokens_revoked;
        if (type == wire::ClientBody::KeyRevoke) ++identities_revoked;
      }
      return send_admin_reply(peer, a->request_id, std::move(reply));
    }
    auto& q = std::get<QueryEvent>(ev);
    switch (q.query) {
      case Query::ListNodes: return send_node_list(peer, q.request_id, who);
      case Query::ListWorkers: return send_worker_list(peer, q.request_id, who, now);
      case Query::GetStatus: return send_status(peer, q.request_id, who, now);
      case Query::GetNodeStats: return send_node_stats(peer, q.request_id, who, now);
    }
  }

  // ---- queries (answered directly, they change nothing) ----------------------------------

  std::string visible_workspace(const Caller& who) const {
    return who.role == "admin" && who.identity == "local" ? std::string() : who.workspace;
  }

  // `payload`, if given, is the frame the reply refers to (Result.outputs_in_frame).
  // Replies go out through the outbox: sent at once when the client's pipe has room, else
  // kept in order and retried (a request's replies are never dropped while its client is
  // connected; `kind` says what else may be, docs/PROTOCOL.md §10).
  void send_reply(const Peer& peer, std::uint64_t rid, flatbuffers::FlatBufferBuilder& fbb,
                  wire::ReplyBody type, flatbuffers::Offset<void> body,
                  std::optional<zmq::message_t> payload = std::nullopt,
                  ReplyKind kind = ReplyKind::NoRequest) {
    wire::ClientReplyBuilder b(fbb);
    b.add_request_id(rid);
    b.add_body_type(type);
    b.add_body(body);
    fbb.Finish(b.Finish(), wire::ClientReplyIdentifier());
    // Inside flush(), a reply to a connection that reads batches waits in its batch (one per
    // turn, PROTOCOL.md §2.2) unless it has a payload frame or is large; what waits for the
    // connection is sent before anything that does not, so its order holds.
    if (collecting) {
      if (auto it = client_batches.find(BrokerCore::connection_key(peer)); it != client_batches.end()) {
        auto& batch = it->second;
        if (payload || fbb.GetSize() > kBatchItemMax) {
          send_client_batch(it->first, batch);  // may erase `it` (the connection is gone)
        } else {
          if (batch.writer.count() == 0) {
            batch.peer = peer;
            batch.kind = kind;
            open_client_batches.push_back(it->first);
          }
          batch.kind = std::min(batch.kind, kind);  // OfRequest < NoRequest < Progress
          batch.writer.add({fbb.GetBufferPointer(), fbb.GetSize()});
          fbb.Clear();
          if (batch.writer.bytes() >= kBatchMaxBytes) send_client_batch(it->first, batch);
          return;
        }
      }
    }
    ClientFrames m{peer, {}, 0};
    if (payload) m.frames[m.count++] = std::move(*payload);
    m.frames[m.count++] = take_message(fbb);
    std::uint64_t bytes = 0;
    for (std::size_t i = 0; i < m.count; ++i) bytes += m.frames[i].size();
    outbox.deliver(BrokerCore::connection_key(peer), std::move(m), bytes, kind,
                   [&](ClientFrames& f) { return send_to_client(f); });
  }

  // Hands what waits in `batch` (alone if it is one reply) to the outbox and empties it.
  void send_client_batch(const std::string& key, ClientBatch& batch) {
    auto& w = batch.writer;
    const std::size_t replies = w.count();
    if (replies == 0) return;
    ClientFrames m{batch.peer, {}, 1};
    m.frames[0] = take_batch(w, BatchRoot::Reply);
    const std::uint64_t bytes = m.frames[0].size();
    outbox.deliver(key, std::move(m), bytes, batch.kind, [&](ClientFrames& f) { return send_to_client(f); },
                   replies);
  }

  SendOutcome send_to_client(ClientFrames& f) {
    auto outcome = send_client_frames(clients.at(f.peer.via).use(), f);
    if (outcome == SendOutcome::Gone) {
      // It reads no more batches (nothing of a turn's batch is used after its send).
      client_batches.erase(BrokerCore::connection_key(f.peer));
      core.on_client_gone(BrokerCore::connection_key(f.peer));  // its watches end
      ++unroutable;
      spdlog::debug("a reply to a client that is gone was discarded");
    }
    return outcome;
  }

  // Tells the core how much waits unread for each connection whose outbox changed, and logs
  // (at most once a second) refusals dropped because their client reads nothing.
  void report_outbox(TimePoint now) {
    for (auto& key : outbox.take_changed())
      core.on_client_backlog(key, outbox.pending(key), outbox.pending_bytes(key));
    auto dropped = outbox.counts().dropped_refusals;
    if (dropped != dropped_refusals_logged && now - dropped_logged_at >= std::chrono::seconds(1)) {
      spdlog::warn("{} refusal(s) of submits beyond a connection's --max-client-outstanding were "
                   "dropped: that client reads none of its replies ({} in all)",
                   dropped - dropped_refusals_logged, dropped);
      dropped_refusals_logged = dropped;
      dropped_logged_at = now;
    }
  }

  void send_node_list(const Peer& peer, std::uint64_t rid, const Caller& who) {
    flatbuffers::FlatBufferBuilder fbb(1024);
    std::vector<flatbuffers::Offset<wire::NodeInfo>> infos;
    for (auto& n : core.list_nodes(visible_workspace(who))) infos.push_back(encode_node_info(fbb, n));
    auto list = wire::CreateNodeListDirect(fbb, &infos);
    send_reply(peer, rid, fbb, wire::ReplyBody::NodeList, list.Union());
  }

  void send_worker_list(const Peer& peer, std::uint64_t rid, const Caller& who, TimePoint now) {
    flatbuffers::FlatBufferBuilder fbb(1024);
    std::vector<flatbuffers::Offset<wire::WorkerInfo>> infos;
    for (auto& w : core.list_workers(now, visible_workspace(who))) infos.push_back(encode_worker_info(fbb, w));
    auto list = wire::CreateWorkerListDirect(fbb, &infos);
    send_reply(peer, rid, fbb, wire::ReplyBody::WorkerList, list.Union());
  }

  void send_status(const Peer& peer, std::uint64_t rid, const Caller& who, TimePoint now) {
    auto s = core.status(now, visible_workspace(who));
    flatbuffers::FlatBufferBuilder fbb(512);
    auto failures = encode_code_counts(fbb, s.failures_by_code);
    auto version = fbb.CreateString(MUSTER_DAEMON_VERSION);
    auto instance = fbb.CreateString(core.config().instance);
    auto report = wire::CreateStatusReport(
        fbb, version, instance, s.uptime_ms, s.workers, s.nodes, s.queued, s.in_flight,
        s.submitted, s.completed, s.failed, failures, s.redispatched, s.rate_1m, s.recovering);
    send_reply(peer, rid, fbb, wire::ReplyBody::StatusReport, report.Union());
  }

  void send_node_stats(const Peer& peer, std::uint64_t rid, const Caller& who, TimePoint now) {
    auto workspace = visible_workspace(who);
    flatbuffers::FlatBufferBuilder fbb(4096);
    auto report = encode_node_stats_report(fbb, core.node_stats(now, workspace),
                                           core.recent_failures(workspace), now);
    send_reply(peer, rid, fbb, wire::ReplyBody::NodeStatsReport, report.Union());
  }

  void send_admin_reply(const Peer& peer, std::uint64_t rid, AdminReply reply) {
    flatbuffers::FlatBufferBuilder fbb(512);
    if (auto* t = std::get_if<TokenCreatedBody>(&reply)) {
      auto body = wire::CreateTokenCreatedDirect(fbb, t->token.c_str(), t->id.c_str(), t->expires_at.c_str());
      return send_reply(peer, rid, fbb, wire::ReplyBody::TokenCreated, body.Union());
    }
    if (auto* r = std::get_if<AdminReportBody>(&reply)) {
      auto body = wire::CreateAdminReportDirect(fbb, r->json.c_str());
      return send_reply(peer, rid, fbb, wire::ReplyBody::AdminReport, body.Union());
    }
    auto& f = std::get<FailureBody>(reply);
    auto body = wire::CreateFailureDirect(fbb, rid, f.code, f.message.c_str());
    send_reply(peer, rid, fbb, wire::ReplyBody::Failure, body.Union());
  }

  // ---- enrollment ---------------------------------------------------------------------------

  void on_enroll_message(RouterMessage& m) {
    if (m.frame_count < 2) return;
    flatbuffers::FlatBufferBuilder fbb(256);
    auto answer = [&](bool ok, const keys::Identity* id, ErrorCode code, const std::string& error) {
      auto body = wire::CreateEnrollResponseDirect(
          fbb, ok, id ? id->id.c_str() : nullptr,
          id ? std::string(keys::role_name(id->role)).c_str() : nullptr,
          id ? id->workspace.c_str() : nullptr, id ? id->name.c_str() : nullptr, code,
          error.empty() ? nullptr : error.c_str());
      fbb.Finish(body, wire::EnrollResponseIdentifier());
      if (!send_router(enroll->use(), m.peer, message_of(fbb))) ++unroutable;
    };
    const wire::EnrollRequest* req =
        m.well_formed && m.payload.size() <= 65536 ? read_enroll_request(bytes_of(m.payload)) : nullptr;
    if (!req) {
      spdlog::warn("bad message on the enrollment socket from {}", m.peer.address);
      ++enrollments_refused;
      return answer(false, nullptr, ErrorCode::BadMessage, "not a valid EnrollRequest");
    }
    keys::EnrollRequestFields fields{req->token()->str(), req->public_key()->str(), str(req->role()),
                                     str(req->name()), str(req->hostname())};
    auto outcome = security->enrollment().enroll(fields, m.peer.identity, m.peer.address, keys::Clock::now());
    // keys::Enrollment logs the outcome itself.
    if (outcome.ok) {
      ++enrollments_ok;
      return answer(true, &*outcome.identity, ErrorCode::None, "");
    }
    ++enrollments_refused;
    answer(false, nullptr, static_cast<ErrorCode>(outcome.code), outcome.message);
  }

  // ---- subscriptions (request sockets) -------------------------------------------------------

  // Reads one (un)subscription from request socket `i`; applies it to the connection it came
  // from only if subscription_policy allows it for that connection's identity.
  bool on_subscription(std::size_t i) {
    zmq::message_t msg;
    if (!requests[i].read([&](zmq::socket_t& s) { return s.recv(msg, zmq::recv_flags::dontwait).has_value(); }))
      return false;
    const char* user_id = zmq_msg_gets(msg.handle(), "User-Id");  // NULL when there is none
    std::string identity = Security::identity_of(user_id ? user_id : "", is_ipc(opt.request_addresses[i]));
    auto d = decide_subscription(bytes_of(msg), identity);
    if (d.apply && d.subscribe && user_id && *user_id &&
        !security->identities().authorize_id(user_id, keys::Role::Worker)) {
      d.apply = false;
      d.reason = "the identity is revoked or not enrolled as a worker";
    }
    if (!d.apply) {
      refused_subscription(identity, d.reason);
      return true;
    }
    if (d.subscribe) {
      requests[i].use().set(zmq::sockopt::subscribe, d.topic);  // manual mode: the last sender's pipe
      request_subscribed[i] = true;
    } else
      requests[i].use().set(zmq::sockopt::unsubscribe, d.topic);
    spdlog::debug("{} {} '{}' on the request socket {}", identity,
                  d.subscribe ? "subscribed to" : "unsubscribed from", d.topic, opt.request_addresses[i]);
    return true;
  }

  void refused_subscription(const std::string& identity, const std::string& reason) {
    auto now = Clock::now();
    if (now - refusal_logged_at < std::chrono::seconds(1)) {
      ++refusals_unlogged;
      return;
    }
    spdlog::warn("refused a subscription of {} on the request socket: {}{}", identity, reason,
                 refusals_unlogged ? fmt::format(" ({} more refused since the last warning)", refusals_unlogged)
                                   : std::string());
    refusal_logged_at = now;
    refusals_unlogged = 0;
  }

  // An attached worker (its topic, or its connection if direct); null when it is gone.
  // Valid until the core runs again.
  const WorkerEntry* attached_worker(const std::string& worker_id) const {
    auto& workers = core.registry().workers();
    auto it = workers.find(worker_id);
    return it == workers.end() ? nullptr : &it->second;
  }

  // ---- outbound ---------------------------------------------------------------------------

  static void finish_daemon_message(flatbuffers::FlatBufferBuilder& fbb, wire::DaemonBody type,
                                    flatbuffers::Offset<void> body) {
    wire::DaemonMessageBuilder b(fbb);
    b.add_body_type(type);
    b.add_body(body);
    fbb.Finish(b.Finish(), wire::DaemonMessageIdentifier());
  }

  // Calls publish(socket, last) for each request socket a subscription was applied on
  // (request_subscribed), `last` for the last of them.
  template <class Publish>
  void for_each_subscribed(Publish&& publish) {
    std::size_t last = requests.size();
    for (std::size_t i = 0; i < requests.size(); ++i)
      if (request_subscribed[i]) last = i;
    for (std::size_t i = 0; i < requests.size(); ++i)
      if (request_subscribed[i]) publish(requests[i].use(), i == last);
  }

  // Publishes the message finished in `fbb` as [topic, (payload frame)?, message]; `payload` is
  // the frame the message refers to (WorkRequest.inputs_in_frame), sent uncopied.
  void publish_finished(const std::string& topic, flatbuffers::FlatBufferBuilder& fbb, const Payload* payload) {
    for_each_subscribed([&](zmq::socket_t& socket, bool last) {
      // The last socket takes the buffer itself; the others get a copy.
      zmq::message_t body = last ? take_message(fbb) : zmq::message_t(fbb.GetBufferPointer(), fbb.GetSize());
      socket.send(zmq::buffer(topic), zmq::send_flags::sndmore);
      if (payload) socket.send(frame_of(*payload), zmq::send_flags::sndmore);
      socket.send(std::move(body), zmq::send_flags::none);
    });
  }

  // Publishes on worker `worker_id`'s topic, or sends on its connection if it is direct
  // (PROTOCOL.md §7.10); a worker the registry no longer knows (it left in this same loop turn)
  // has nothing to receive. Inside flush(), a message for a worker that reads batches waits in
  // its batch (one per turn, PROTOCOL.md §2.2) unless it has a payload frame or is large; what
  // waits for the worker is sent before anything that does not.
  void publish_to_worker(const std::string& worker_id, flatbuffers::FlatBufferBuilder& fbb,
                         wire::DaemonBody type, flatbuffers::Offset<void> body,
                         const Payload* payload = nullptr) {
    auto* w = attached_worker(worker_id);
    if (!w) {
      spdlog::debug("worker {} is gone: its {} was not published", worker_id,
                    wire::EnumNameDaemonBody(type));
      return;
    }
    finish_daemon_message(fbb, type, body);
    if (collecting && !payload && fbb.GetSize() <= kBatchItemMax && batching_workers.contains(worker_id)) {
      auto& batch = worker_batches[worker_id];
      if (batch.writer.count() == 0) {
        batch.route = route_of(*w);
        open_worker_batches.push_back(worker_id);
      }
      batch.writer.add({fbb.GetBufferPointer(), fbb.GetSize()});
      if (batch.writer.bytes() >= kBatchMaxBytes) send_worker_batch(batch);
      return;
    }
    if (auto it = worker_batches.find(worker_id); it != worker_batches.end()) send_worker_batch(it->second);
    if (w->direct)
      send_direct(w->connection, take_message(fbb), payload);
    else
      publish_finished(w->topic, fbb, payload);
  }

  // Sends [routing id, (payload frame)?, message] to a direct worker's connection on the
  // response socket it attached through. A message that cannot go (EHOSTUNREACH: that
  // connection is gone, the worker reconnected or left; EAGAIN: its queue is full) is dropped,
  // as the request socket drops it: §7.3's Pong repairs it (the worker re-attaches from its new
  // connection, §7.10).
  void send_direct(const Peer& to, zmq::message_t message, const Payload* payload = nullptr) {
    std::array<zmq::message_t, 2> frames;
    std::size_t n = 0;
    if (payload) frames[n++] = frame_of(*payload);
    frames[n++] = std::move(message);
    if (!send_router(responses.at(to.via).use(), to, std::span<zmq::message_t>(frames.data(), n))) {
      ++unroutable;
      spdlog::debug("a message to a direct worker was dropped (its connection is gone or full)");
    }
  }

  // Sends the broadcast Ping finished in `fbb` to every direct worker (they receive nothing on
  // the request sockets), after what waits in their batches (flush_worker_batches, §7.3).
  void ping_direct_workers(flatbuffers::FlatBufferBuilder& fbb) {
    for (auto& [id, w] : core.registry().workers())
      if (w.direct) send_direct(w.connection, zmq::message_t(fbb.GetBufferPointer(), fbb.GetSize()));
  }

  // Publishes every worker batch of this turn so far.
  void flush_worker_batches() {
    for (auto& id : open_worker_batches) send_worker_batch(worker_batches[id]);
    open_worker_batches.clear();
  }

  // Publishes what waits in `batch` (alone if it is one message) and empties it.
  void send_worker_batch(WorkerBatch& batch) {
    if (batch.writer.count() == 0) return;
    zmq::message_t whole = take_batch(batch.writer, BatchRoot::Daemon);
    if (auto* to = std::get_if<Peer>(&batch.route)) return send_direct(*to, std::move(whole));
    const auto& topic = std::get<std::string>(batch.route);
    for_each_subscribed([&](zmq::socket_t& socket, bool last) {
      // The last socket takes the message itself; the others get a copy.
      zmq::message_t m = last ? std::move(whole) : zmq::message_t(whole.data(), whole.size());
      socket.send(zmq::buffer(topic), zmq::send_flags::sndmore);
      socket.send(std::move(m), zmq::send_flags::none);
    });
  }

  // A worker's Attached says whether its Attach asked for batches; from then on it gets them.
  bool settle_worker_batches(const Peer& peer, const std::string& worker_id) {
    auto it = attach_asks.find(peer.routing_id + worker_id);
    bool batches = it != attach_asks.end() && it->second;
    if (batches) {
      // Ids of workers gone long ago go when the set outgrows the registry (with anything still
      // waiting for them: a worker gone has nothing to receive).
      if (batching_workers.size() > 2 * core.registry().workers().size() + 64) {
        auto gone = [&](const std::string& id) { return !core.registry().workers().contains(id); };
        std::erase_if(batching_workers, gone);
        std::erase_if(worker_batches, [&](const auto& entry) { return gone(entry.first); });
      }
      batching_workers.insert(worker_id);
    } else {
      batching_workers.erase(worker_id);
    }
    return batches;
  }

  // A connection whose Submit said batch_replies reads Batch from now on.
  void mark_batching_client(const Peer& peer) {
    auto key = BrokerCore::connection_key(peer);
    if (client_batches.contains(key)) return;
    // Keys of connections gone long ago go when the map outgrows the open ones (a connection
    // still there is marked again by its next Submit).
    if (client_batches.size() > 2 * core.client_connections() + 1024)
      client_batches.clear();  // never inside flush(): none holds a reply now
    client_batches.try_emplace(std::move(key));
  }

  void reply_to_worker(const ReplyToWorker& a) {
    auto& fbb = builders.get();
    wire::DaemonBody type{};
    flatbuffers::Offset<void> body;
    if (auto* at = std::get_if<AttachedReply>(&a.body)) {
      type = wire::DaemonBody::Attached;
      // The identity the Attach came with (BrokerCore made it the worker's owner).
      auto topic = worker_topic(
          Security::identity_of(a.peer.identity, via_ipc(opt.response_addresses, a.peer.via)),
          at->worker_id);
      body = wire::CreateAttachedDirect(fbb, at->worker_id.c_str(), core.config().instance.c_str(),
                                        topic.c_str(), std::string(kBroadcastTopic).c_str(),
                                        static_cast<std::uint64_t>(core.config().ping_interval.count()),
                                        core.config().liveness, opt.max_message_bytes,
                                        at->no_answer_acks, settle_worker_batches(a.peer, at->worker_id),
                                        at->idle_pong_every, at->direct)
                 .Union();
    } else if (auto* ack = std::get_if<AckReply>(&a.body)) {
      type = wire::DaemonBody::Ack;
      body = wire::CreateAckDirect(fbb, ack->late, ack->pong_seq,
                                   ack->missing.empty() ? nullptr : &ack->missing)
                 .Union();
    } else {
      auto& r = std::get<RejectedReply>(a.body);
      type = wire::DaemonBody::Rejected;
      body = wire::CreateRejectedDirect(fbb, r.code, r.message.c_str(), r.reattach).Union();
    }
    wire::DaemonMessageBuilder b(fbb);
    b.add_body_type(type);
    b.add_body(body);
    fbb.Finish(b.Finish(), wire::DaemonMessageIdentifier());
    if (!send_router(responses.at(a.peer.via).use(), a.peer, take_message(fbb))) {
      ++unroutable;
      spdlog::debug("reply to a worker that is gone was dropped");
    }
  }

  void reply_to_client(ReplyToClient& a) {
    auto* result = std::get_if<ResultBody>(&a.body);
    bool inline_outputs = result && !as_frame(result->outputs, result->payload_frames);
    auto* item = std::get_if<ItemBody>(&a.body);
    auto* chunk = std::get_if<ChunkBody>(&a.body);
    auto& fbb = builders.get(inline_outputs ? result->outputs.bytes.size() + 128
                             : item         ? item->values.bytes.size() + 128
                             : chunk        ? chunk->data.bytes.size() + 128
                                            : 0);
    wire::ReplyBody type{};
    flatbuffers::Offset<void> body;
    if (auto* acc = std::get_if<AcceptedBody>(&a.body)) {
      type = wire::ReplyBody::Accepted;
      body = wire::CreateAccepted(fbb, acc->queued, acc->job_id, acc->call_token).Union();
    } else if (auto* p = std::get_if<ProgressBody>(&a.body)) {
      type = wire::ReplyBody::Progress;
      body = wire::CreateProgressDirect(fbb, a.request_id, p->step, p->total, p->message.c_str()).Union();
    } else if (auto* r = std::get_if<ResultBody>(&a.body)) {
      if (as_frame(r->outputs, r->payload_frames)) {
        wire::ResultBuilder rb(fbb);
        rb.add_request_id(a.request_id);
        rb.add_outputs_in_frame(true);
        rb.add_job_id(r->job_id);
        return send_reply(*a.peer, a.request_id, fbb, wire::ReplyBody::Result, rb.Finish().Union(),
                          frame_of(r->outputs), ReplyKind::OfRequest);
      }
      auto outputs = payload_vector(fbb, r->outputs);
      wire::ResultBuilder rb(fbb);
      rb.add_request_id(a.request_id);
      if (!outputs.IsNull()) rb.add_outputs(outputs);
      rb.add_job_id(r->job_id);
      type = wire::ReplyBody::Result;
      body = rb.Finish().Union();
    } else if (auto* f = std::get_if<FailureBody>(&a.body)) {
      type = wire::ReplyBody::Failure;
      body = wire::CreateFailureDirect(fbb, a.request_id, f->code, f->message.c_str(), f->job_id).Union();
    } else if (auto* e = std::get_if<WatchEventBody>(&a.body)) {
      type = wire::ReplyBody::Event;
      body = encode_watch_event(fbb, *e).Union();
    } else if (auto* item = std::get_if<ItemBody>(&a.body)) {
      type = wire::ReplyBody::Item;
      auto values = payload_vector(fbb, item->values);
      wire::ItemBuilder ib(fbb);
      ib.add_request_id(a.request_id);
      ib.add_seq(item->seq);
      if (!values.IsNull()) ib.add_values(values);
      body = ib.Finish().Union();
    } else if (chunk) {  // a chunk of the worker's output stream (PROTOCOL.md §7.9)
      type = wire::ReplyBody::Chunk;
      body = create_chunk(fbb, a.request_id, chunk->stream, chunk->offset, chunk->data).Union();
    } else if (auto* credit = std::get_if<CreditBody>(&a.body)) {  // the worker's, for an input stream
      type = wire::ReplyBody::Credit;
      body = wire::CreateCredit(fbb, a.request_id, credit->stream, 0, credit->bytes, credit->resume_offset,
                                credit->resume).Union();
    } else if (auto* info = std::get_if<JobInfoBody>(&a.body)) {
      type = wire::ReplyBody::JobInfo;
      body = encode_job_info(fbb, *info).Union();
    } else {
      std::vector<flatbuffers::Offset<wire::JobInfo>> infos;
      auto& list = std::get<JobInfoListBody>(a.body);
      for (auto& job : list.jobs) infos.push_back(encode_job_info(fbb, job));
      type = wire::ReplyBody::JobInfoList;
      body = wire::CreateJobInfoListDirect(fbb, &infos, list.more).Union();
    }
    send_reply(*a.peer, a.request_id, fbb, type, body, std::nullopt,
               std::holds_alternative<ProgressBody>(a.body) ? ReplyKind::Progress
               : a.refusal                                  ? ReplyKind::NoRequest
                                                            : ReplyKind::OfRequest);
  }

  void send_work(const SendWorkRequest& a) {
    bool framed = as_frame(a.inputs, a.payload_frames);
    auto& fbb = builders.get((framed ? 0 : a.inputs.bytes.size()) + a.parameters.bytes.size() + 512);
    auto inputs = framed ? 0 : payload_vector(fbb, a.inputs);
    auto params = payload_vector(fbb, a.parameters);
    auto node = fbb.CreateString(a.node);
    const std::string* trace = &a.caller.trace_id;
    if (trace->empty()) {  // the default, written into a reused string (no allocation per call)
      default_trace.clear();
      append_default_trace_id(default_trace, core.config().instance, a.request_id);
      trace = &default_trace;
    }
    auto caller = caller_context.write(fbb, a.caller.who, *trace);
    wire::WorkRequestBuilder b(fbb);
    b.add_request_id(a.request_id);
    b.add_node(node);
    if (!inputs.IsNull()) b.add_inputs(inputs);
    if (!params.IsNull()) b.add_parameters(params);
    b.add_timeout_ms(a.timeout_ms);
    b.add_attempt(a.attempt);
    b.add_caller(caller);
    if (framed) b.add_inputs_in_frame(true);
    if (a.stream_window_items) {  // the caller reads items (PROTOCOL.md §7.8)
      b.add_stream_window_items(a.stream_window_items);
      b.add_stream_window_bytes(a.stream_window_bytes);
    }
    if (a.chunk_window_bytes) b.add_chunk_window_bytes(a.chunk_window_bytes);  // takes chunked outputs (§7.9)
    auto body = b.Finish();
    publish_to_worker(a.worker_id, fbb, wire::DaemonBody::WorkRequest, body.Union(),
                      framed ? &a.inputs : nullptr);
  }

  // Ends the loop turn: its actions go out once the journal committed what they depend on
  // (pipeline), with whatever the commits confirmed since the last turn released. `now`: the
  // turn's time, read once after its reading (one clock read a turn, not one per step).
  void flush(Clock::time_point now) {
    core.publish_watch_events(now);  // the turn's changes, to whoever watches them
    end_turn();
    pump_journal(pipeline.must_wait(now));
    send_released();
  }
  void flush() { flush(Clock::now()); }

  // Waits until every turn's actions went out (every batch committed): before musterd exits.
  void drain_journal() {
    while (!pipeline.idle()) {
      pump_journal(/*block=*/true);
      send_released();
    }
  }

  void send_released() {
    // What waited comes first: a connection's replies keep their order.
    if (!outbox.empty()) outbox.retry([&](ClientFrames& f) { return send_to_client(f); });
    collecting = true;  // batchable messages wait per peer until the turn's end (§2.2)
    auto& actions = pipeline.released();
    for (auto& action : actions) {
      std::visit(
          [&](auto& a) {
            using T = std::decay_t<decltype(a)>;
            if constexpr (std::is_same_v<T, SendWorkRequest>) {
              send_work(a);
            } else if constexpr (std::is_same_v<T, SendAbort>) {
              auto& fbb = builders.get();
              auto body = wire::CreateAbortDirect(fbb, a.request_id, a.code, a.reason.c_str());
              publish_to_worker(a.worker_id, fbb, wire::DaemonBody::Abort, body.Union());
            } else if constexpr (std::is_same_v<T, SendPing>) {
              auto& fbb = builders.get();
              auto body = wire::CreatePingDirect(fbb, a.seq, core.config().instance.c_str());
              if (a.worker_id.empty()) {
                // A broadcast Ping must follow every WorkRequest published before it (§7.3: a
                // Pong omitting one means it was lost): what waits in a batch goes first.
                flush_worker_batches();
                finish_daemon_message(fbb, wire::DaemonBody::Ping, body.Union());
                ping_direct_workers(fbb);
                publish_finished(std::string(kBroadcastTopic), fbb, nullptr);
              } else {
                publish_to_worker(a.worker_id, fbb, wire::DaemonBody::Ping, body.Union());
              }
            } else if constexpr (std::is_same_v<T, ReplyToWorker>) {
              reply_to_worker(a);
            } else if constexpr (std::is_same_v<T, SendChunk>) {  // an input chunk (PROTOCOL.md §7.9)
              auto& fbb = builders.get(a.data.bytes.size() + 128);
              auto body = create_chunk(fbb, a.request_id, a.stream, a.offset, a.data);
              publish_to_worker(a.worker_id, fbb, wire::DaemonBody::Chunk, body.Union());
            } else if constexpr (std::is_same_v<T, SendCredit>) {
              auto& fbb = builders.get();
              auto body = wire::CreateCredit(fbb, a.request_id, a.stream, a.items, a.bytes, a.resume_offset, a.resume);
              publish_to_worker(a.worker_id, fbb, wire::DaemonBody::Credit, body.Union());
            } else {
              reply_to_client(a);
            }
          },
          action);
    }
    actions.clear();
    collecting = false;
    flush_worker_batches();
    for (auto& key : open_client_batches)  // (one gone during the turn is no longer there)
      if (auto it = client_batches.find(key); it != client_batches.end()) send_client_batch(it->first, it->second);
    open_client_batches.clear();
    if (pipeline.held_turns() == 0) attach_asks.clear();  // every Attached of them went out
    report_outbox(Clock::now());
  }

  int run(SignalPipe& signals) {
    if (!setup(signals)) return 0;  // a standby stopped before it led
    spdlog::info("musterd {} ready (instance {}), ping every {} ms, liveness {}", MUSTER_DAEMON_VERSION,
                 core.config().instance, core.config().ping_interval.count(), core.config().liveness);
    // Poll order: subscriptions, worker sockets, client sockets, enrollment, ZAP, signals.
    SocketWait items;
    for (auto& s : requests) items.add(s);
    for (auto& s : responses) items.add(s);
    for (auto& s : clients) items.add(s);
    if (enroll) items.add(*enroll);
    if (zap) items.add(zap->socket());
    const std::size_t metrics_item = metrics_exchange ? items.add_fd(metrics_exchange->fd()) : 0;
    const std::size_t signal_item = items.add_fd(signals.fd());
    // Item index of the first request, response and client socket, enrollment and ZAP.
    const std::size_t first_response = requests.size(), first_client = first_response + responses.size();
    const std::size_t enroll_item = first_client + clients.size(), zap_item = enroll_item + (enroll ? 1 : 0);
    // Last: the journal thread's "batch done" fd, once the journal is open (the default one
    // opens at the first durable Submit).
    bool journal_polled = false;
    RouterMessage msg;
    // A message has a User-Id only if the ZAP handler gave its connection one (CURVE
    // endpoints): without one, recv_router does not ask (frames.hpp). Peer-Address is asked
    // only on the enrollment socket, the one reader of it (the enrollment rate limiter, logs).
    const bool user_ids = zap != nullptr;
    while (!core.finished()) {
      if (journal && !journal_polled) {
        items.add_fd(journal->fd());
        journal_polled = true;
      }
      auto now = Clock::now();
      auto wake = std::min(core.next_wakeup(), pipeline.gather_until());  // a batch waiting for answers
      auto wait = wake <= now ? Millis(0)
                              : std::min(Millis(1000), std::chrono::ceil<Millis>(wake - now));
      if (!outbox.empty()) wait = std::min<Millis>(wait, kOutboxRetry);
      if (core.watchers().ready()) wait = Millis(0);  // a watcher's events can go out now
      try {
        items.wait(wait);
      } catch (const zmq::error_t& e) {
        if (e.num() != EINTR) throw;
      }
      // A journal held under a lease renews it on its thread, which stops musterd (JournalError)
      // once another daemon took over: before anything read now is acted on. What a commit
      // confirmed meanwhile goes out now, not after this turn (a WorkRequest whose Dispatched
      // is durable should reach its worker as soon as it may: DURABILITY.md §13).
      pump_journal(false);
      if (!pipeline.released().empty()) send_released();
      // Woken much later than asked (the process was stopped, a slow fsync): first read all
      // that waits (pongs and results sent meanwhile), then let the core judge liveness.
      const bool late = Clock::now() - (now + wait) > core.config().ping_interval;
      // Only a socket the poll found readable is read: an empty read costs libzmq two syscalls
      // (getpid and a poll of the socket's mailbox), so reading all six every turn was ~12 of
      // the ~40 syscalls of a turn (docs/PERFORMANCE.md, one call at a time). What arrives
      // after the poll, or stays past a read budget, makes the next poll return at once. The
      // empty read that ends a socket's reading leaves it quiet: the next wait does not ask it.
      auto readable = [&](std::size_t item) { return late || items.readable(item); };
      // A socket's budget starts after its first message: a turn that carries one message
      // (one call at a time) reads the clock once for it, before the read that finds nothing.
      auto within_budget = [](int n, Clock::time_point& until) {
        if (n == 0) return true;
        if (n > 1) return Clock::now() < until;
        until = Clock::now() + kSocketBudget;
        return true;
      };
      auto read = [&](PolledSocket& socket, std::size_t via, bool peer_addresses, auto&& handle) {
        Clock::time_point until{};
        for (int n = 0; (late ? n < 1'000'000 : n < kBatch && within_budget(n, until)) &&
                        socket.read([&](zmq::socket_t& s) { return recv_router(s, msg, user_ids, peer_addresses); });
             ++n) {
          msg.peer.via = static_cast<std::uint8_t>(via);
          handle(msg);
        }
      };
      if (items.readable(signal_item)) signals.drain();
      if (signals.triggered() && !core.shutting_down()) {
        spdlog::info("signal {} received: shutting down", signals.last_signal());
        core.begin_shutdown(Clock::now());
      }
      if (zap && readable(zap_item)) zap->serve();
      for (std::size_t i = 0; i < requests.size(); ++i)
        for (int n = 0; readable(i) && n < kBatch; ++n)
          if (!on_subscription(i)) break;
      for (std::size_t i = 0; i < responses.size(); ++i)
        if (readable(first_response + i)) read(responses[i], i, false, [&](RouterMessage& m) { on_worker_message(m); });
      for (std::size_t i = 0; i < clients.size(); ++i)
        if (readable(first_client + i)) read(clients[i], i, false, [&](RouterMessage& m) { on_client_message(m); });
      if (enroll && readable(enroll_item)) read(*enroll, 0, true, [&](RouterMessage& m) { on_enroll_message(m); });
      now = Clock::now();
      if (now >= core.next_wakeup() || core.shutting_down()) core.tick(now);
      flush(now);
      if (metrics_exchange && items.readable(metrics_item) && metrics_exchange->wanted())
        metrics_exchange->publish(metrics_snapshot(now));
    }
    flush();
    drain_journal();
    if (journal) {
      // Counts a loaded machine does not change (docs/DURABILITY.md §10 reads them).
      auto& s = pipeline.stats();
      spdlog::info("journal: {} batch(es) committed, {} record(s), {} WorkRequest(s) sent before "
                   "their call's commit, {} call(s) finished in the batch of their Submitted, {} "
                   "batch(es) held for answers, {} confirmation(s)", s.batches, s.records,
                   s.early_work_requests, s.finished_with_submitted, s.gathered, s.commits);
    }
    // Replies still waiting for slow readers get a bounded chance to go out before exit.
    for (auto until = Clock::now() + opt.core.shutdown_grace; !outbox.empty() && Clock::now() < until;) {
      std::this_thread::sleep_for(kOutboxRetry);
      flush();
    }
    spdlog::info("musterd stopped: every request got its terminal reply");
    return 0;
  }
};

Daemon::Daemon(DaemonOptions options) : impl_(std::make_unique<Impl>([&] {
  if (options.core.instance.empty() || options.core.instance == "instance")
    options.core.instance = random_instance();
  options.core.wall_start =
      std::chrono::floor<std::chrono::milliseconds>(std::chrono::system_clock::now());
  // Request ids never repeat across instances (a worker keeps an earlier instance's requests
  // across a restart, PROTOCOL.md §7.6): above those of any instance started earlier, as long
  // as none gave out 1024 ids per ms of its life.
  if (options.core.first_request_id <= 1)
    options.core.first_request_id =
        static_cast<std::uint64_t>(options.core.wall_start.time_since_epoch().count()) << 10;
  return std::move(options);
}())) {}

Daemon::~Daemon() = default;

int Daemon::run(SignalPipe& signals) { return impl_->run(signals); }

}  // namespace muster::broker
