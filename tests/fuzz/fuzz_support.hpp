// fuzz_support.hpp — what the fuzz targets share: the daemon's inbound decoding (bytes of one
// ZeroMQ payload frame -> verified message -> BrokerCore event), message builders for
// structure-aware inputs, and the invariant checker for the broker's promises.
// Owns: nothing the product uses. The decoding is musterd's own (broker/inbound.hpp), so the
// targets fuzz exactly what the daemon runs; only the socket loop's frame handling is left out.
// Must never: hide a crash (no try/catch around code under test unless the product catches too).
#pragma once

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <memory>
#include <set>
#include <span>
#include <string>
#include <vector>

#include <flatbuffers/flatbuffers.h>
#include <spdlog/spdlog.h>

#include "broker_core.hpp"
#include "inbound.hpp"
#include "muster/messages.hpp"
#include "muster/node_spec.hpp"
#include "muster/value.hpp"

namespace muster::fuzz {

using broker::BrokerCore;
using broker::Caller;
using broker::Millis;
using broker::Payload;
using broker::TimePoint;

inline void quiet_logs() { spdlog::set_level(spdlog::level::off); }

[[noreturn]] inline void violation(const char* what) {
  std::fprintf(stderr, "INVARIANT VIOLATED: %s\n", what);
  std::abort();
}
#define MUSTER_FUZZ_CHECK(cond, what) \
  do {                                \
    if (!(cond)) ::muster::fuzz::violation(what); \
  } while (0)

inline std::string str(const flatbuffers::String* s) { return s ? s->str() : std::string(); }

// The daemon's decoding limits (DaemonOptions defaults), for each socket.
inline broker::InboundLimits worker_limits() { return broker::InboundLimits{16u << 20, 1000, 0}; }
inline broker::InboundLimits client_limits() { return broker::InboundLimits{16u << 20, 1000, 8192}; }

// What musterd does with one payload frame from the response socket (daemon.cpp
// on_worker_message): its own decoder (broker/inbound.hpp), then the core.
inline void feed_worker_message(BrokerCore& core, TimePoint now, const Peer& peer,
                                const Caller& who, std::span<const std::uint8_t> data) {
  // The daemon keeps the received zmq message alive as the owner of every payload slice.
  auto owner = std::make_shared<std::vector<std::uint8_t>>(data.begin(), data.end());
  std::span<const std::uint8_t> bytes(owner->data(), owner->size());
  broker::deliver(core, now, peer, who,
                  broker::decode_worker_message(bytes, [&] { return owner; }, worker_limits()));
}

// What a client message turned into, for the invariant checker.
struct ClientFeed {
  enum Kind { Bad, Submit, Cancel, Query, Admin, Job, Credit, Chunk, Watch } kind = Bad;
  std::uint64_t request_id = 0;
};

// What musterd does with one payload frame from the client socket (daemon.cpp
// on_client_message): its own decoder, then the core. Queries (ListNodes, ListWorkers,
// GetStatus) are answered by the daemon from the core's snapshots; here the snapshots are taken
// and encoded the same way. Admin commands are fuzzed on their own (fuzz_admin_command).
inline ClientFeed feed_client_message(BrokerCore& core, TimePoint now, const Peer& peer,
                                      const Caller& who, std::span<const std::uint8_t> data) {
  auto owner = std::make_shared<std::vector<std::uint8_t>>(data.begin(), data.end());
  std::span<const std::uint8_t> bytes(owner->data(), owner->size());
  auto ev = broker::decode_client_message(bytes, [&] { return owner; }, client_limits());
  if (auto* r = std::get_if<broker::Refusal>(&ev)) {
    core.on_bad_client_message(peer, r->request_id, std::move(r->why), r->code);
    return {ClientFeed::Bad, r->request_id};
  }
  if (auto* s = std::get_if<broker::SubmitEvent>(&ev)) {
    auto rid = s->client_request_id;
    core.on_submit(now, peer, who, std::move(*s));
    return {ClientFeed::Submit, rid};
  }
  if (auto* c = std::get_if<broker::CancelEvent>(&ev)) {
    core.on_cancel(now, peer, c->request_id);
    return {ClientFeed::Cancel, c->request_id};
  }
  if (auto* c = std::get_if<broker::CreditEvent>(&ev)) {  // never answered (PROTOCOL.md §7.8)
    core.on_credit(now, peer, *c);
    return {ClientFeed::Credit, c->client_request_id};
  }
  if (auto* c = std::get_if<broker::ChunkEvent>(&ev)) {  // never answered, may end its call (§7.9)
    auto rid = c->client_request_id;
    core.on_client_chunk(now, peer, std::move(*c));
    return {ClientFeed::Chunk, rid};
  }
  if (auto* a = std::get_if<broker::AdminEvent>(&ev)) return {ClientFeed::Admin, a->request_id};
  // A Watch (unit-tested in watchers_test.cpp) answers events and ends with a terminal reply
  // under an id this checker does not track yet: decoded only, as JobResume is.
  if (auto* w = std::get_if<broker::WatchEvent>(&ev)) return {ClientFeed::Watch, w->request_id};
  if (auto* j = std::get_if<broker::JobEvent>(&ev)) {
    // Durable-job messages (unit-tested in broker_core_jobs_test.cpp): JobAck and JobList reach
    // the core (no terminal reply); JobResume, JobGet and JobCancel answer terminal replies
    // under ids this checker does not track yet, so they are decoded only.
    if (std::holds_alternative<broker::JobAckEvent>(*j) || std::holds_alternative<broker::JobListEvent>(*j))
      broker::deliver(core, now, peer, who, *j);
    return {ClientFeed::Job, broker::request_id_of(*j)};
  }
  auto& q = std::get<broker::QueryEvent>(ev);
  switch (q.query) {
    case broker::Query::ListNodes: {
      flatbuffers::FlatBufferBuilder fbb;
      for (auto& n : core.list_nodes(who.workspace)) (void)encode_node_spec(fbb, n.spec);
      break;
    }
    case broker::Query::ListWorkers: (void)core.list_workers(now, who.workspace); break;
    case broker::Query::GetStatus: (void)core.status(now); break;
    case broker::Query::GetNodeStats: (void)core.node_stats(now, who.workspace); break;
  }
  return {ClientFeed::Query, q.request_id};
}

// The payload slices a core keeps must stay readable: touch every byte of every payload in
// the actions (ASan reports a use-after-free if an owner was dropped too early).
inline std::uint64_t touch(const Payload& p) {
  std::uint64_t sum = 0;
  for (auto b : p.bytes) sum += b;
  return sum;
}

// ---- builders for structure-aware inputs ---------------------------------------------------

inline flatbuffers::Offset<flatbuffers::Vector<std::uint8_t>> nested(
    flatbuffers::FlatBufferBuilder& fbb, const std::vector<std::uint8_t>& bytes) {
  if (bytes.empty()) return 0;
  fbb.ForceVectorAlignment(bytes.size(), 1, 8);
  return fbb.CreateVector(bytes);
}

inline std::vector<std::uint8_t> finish(flatbuffers::FlatBufferBuilder& fbb) {
  return {fbb.GetBufferPointer(), fbb.GetBufferPointer() + fbb.GetSize()};
}

inline std::vector<std::uint8_t> worker_message(const std::string& worker_id, wire::WorkerBody type,
                                                flatbuffers::FlatBufferBuilder& fbb,
                                                flatbuffers::Offset<void> body) {
  finish_worker_message(fbb, worker_id, type, body);
  return finish(fbb);
}

inline std::vector<std::uint8_t> attach_message(const std::string& worker_id, const std::string& session,
                                                std::uint32_t capacity, const std::vector<NodeSpec>& nodes) {
  flatbuffers::FlatBufferBuilder fbb;
  std::vector<flatbuffers::Offset<wire::NodeSpec>> specs;
  for (auto& n : nodes) specs.push_back(encode_node_spec(fbb, n));
  auto body = wire::CreateAttachDirect(fbb, worker_id.c_str(), "fuzz-host", "muster-fuzz/0", 42,
                                       session.c_str(), capacity, &specs);
  return worker_message(worker_id, wire::WorkerBody::Attach, fbb, body.Union());
}

inline std::vector<std::uint8_t> pong_message(const std::string& worker_id, std::uint64_t seq,
                                              const std::string& instance,
                                              const std::vector<std::uint64_t>& in_flight) {
  flatbuffers::FlatBufferBuilder fbb;
  auto body = wire::CreatePongDirect(fbb, seq, instance.c_str(), &in_flight);
  return worker_message(worker_id, wire::WorkerBody::Pong, fbb, body.Union());
}

inline std::vector<std::uint8_t> result_message(const std::string& worker_id, std::uint64_t id,
                                                const Map& outputs) {
  flatbuffers::FlatBufferBuilder fbb;
  auto out = nested(fbb, outputs.empty() ? std::vector<std::uint8_t>{} : encode_values(outputs));
  wire::ResultBuilder rb(fbb);
  rb.add_request_id(id);
  if (!out.IsNull()) rb.add_outputs(out);
  auto body = rb.Finish();
  return worker_message(worker_id, wire::WorkerBody::Result, fbb, body.Union());
}

inline std::vector<std::uint8_t> failure_message(const std::string& worker_id, std::uint64_t id,
                                                 wire::ErrorCode code, const std::string& message) {
  flatbuffers::FlatBufferBuilder fbb;
  auto body = wire::CreateFailureDirect(fbb, id, code, message.c_str());
  return worker_message(worker_id, wire::WorkerBody::Failure, fbb, body.Union());
}

inline std::vector<std::uint8_t> progress_message(const std::string& worker_id, std::uint64_t id,
                                                  std::uint64_t step, std::uint64_t total) {
  flatbuffers::FlatBufferBuilder fbb;
  auto body = wire::CreateProgressDirect(fbb, id, step, total, "step");
  return worker_message(worker_id, wire::WorkerBody::Progress, fbb, body.Union());
}

inline std::vector<std::uint8_t> detach_message(const std::string& worker_id) {
  flatbuffers::FlatBufferBuilder fbb;
  auto body = wire::CreateDetachDirect(fbb, "fuzz");
  return worker_message(worker_id, wire::WorkerBody::Detach, fbb, body.Union());
}

inline std::vector<std::uint8_t> client_message(std::uint64_t rid, wire::ClientBody type,
                                                flatbuffers::FlatBufferBuilder& fbb,
                                                flatbuffers::Offset<void> body) {
  wire::ClientMessageBuilder b(fbb);
  b.add_request_id(rid);
  b.add_body_type(type);
  b.add_body(body);
  fbb.Finish(b.Finish(), wire::ClientMessageIdentifier());
  return finish(fbb);
}

inline std::vector<std::uint8_t> submit_message(std::uint64_t rid, const std::string& node,
                                                const Map& inputs, std::uint64_t timeout_ms,
                                                bool want_progress, bool want_accepted) {
  flatbuffers::FlatBufferBuilder fbb;
  auto in = nested(fbb, inputs.empty() ? std::vector<std::uint8_t>{} : encode_values(inputs));
  auto n = fbb.CreateString(node);
  wire::SubmitBuilder s(fbb);
  s.add_node(n);
  if (!in.IsNull()) s.add_inputs(in);
  s.add_timeout_ms(timeout_ms);
  s.add_want_progress(want_progress);
  s.add_want_accepted(want_accepted);
  auto body = s.Finish();
  return client_message(rid, wire::ClientBody::Submit, fbb, body.Union());
}

inline std::vector<std::uint8_t> cancel_message(std::uint64_t rid) {
  flatbuffers::FlatBufferBuilder fbb;
  auto body = wire::CreateCancel(fbb);
  return client_message(rid, wire::ClientBody::Cancel, fbb, body.Union());
}

// A core in a state where most message kinds reach deep code: worker "w1" (the worker id the
// golden vectors use) attached and confirmed, serving "echo" (idempotent), "hello" and "sleep",
// capacity 2, holding two requests, with a third one queued; instance "inst-7f3a" (the
// vectors' pong instance).
inline broker::CoreConfig fuzz_config() {
  broker::CoreConfig c;
  c.ping_interval = Millis(1000);
  c.liveness = 3;
  c.queue_limit = 4;
  c.max_attempts = 3;
  c.default_timeout = Millis(30000);
  c.confirm_interval = Millis(100);
  c.shutdown_grace = Millis(2000);
  c.instance = "inst-7f3a";
  return c;
}

inline std::vector<NodeSpec> fuzz_nodes() {
  NodeSpec echo;
  echo.name = "echo";
  echo.idempotent = true;
  NodeSpec hello;
  hello.name = "hello";
  hello.idempotent = true;
  NodeSpec sleep;
  sleep.name = "sleep";
  return {echo, hello, sleep};
}

// ---- the invariant checker ------------------------------------------------------------------
//
// Drains the core's actions after every event and checks, per DESIGN.md and PROTOCOL.md:
//  - every worker message gets exactly one ReplyToWorker (at most one once a worker attached
//    with no_answer_acks: its Progress/Result/Failure get none, PROTOCOL.md §7.7);
//  - every accepted Submit gets exactly one terminal reply (Result or Failure), never two;
//    a Submit whose id is already open gets exactly one InvalidRequest and leaves the open
//    one alone; no terminal reply for an id that is not open;
//  - every payload slice an action carries is still readable.
class Checker {
 public:
  explicit Checker(BrokerCore& core) : core_(core) {}

  // Call right after feeding one worker message.
  void after_worker_message() { drain(/*worker_replies_expected=*/1, nullptr); }
  // Call right after feeding one client message.
  void after_client_message(const Peer& peer, const ClientFeed& f) { drain(0, &f, &peer); }
  // After tick(), begin_shutdown(), or anything else.
  void after_other() { drain(0, nullptr); }

  // Every open request must have been answered once the core finished shutting down, except
  // a durable call (its Accepted carried a job id): shutdown leaves it to the next instance
  // through the journal, without a reply (broker_core.hpp, docs/DURABILITY.md §5).
  void check_all_answered() const {
    for (auto& k : open_)
      MUSTER_FUZZ_CHECK(durable_.contains(k), "a submit never got its terminal reply");
  }
  const std::vector<broker::SendWorkRequest>& work_sent() const { return work_; }
  std::size_t open() const { return open_.size(); }

 private:
  using Key = std::pair<std::string, std::uint64_t>;

  static bool is_terminal(const broker::ReplyToClient& r) {
    return std::holds_alternative<broker::ResultBody>(r.body) ||
           std::holds_alternative<broker::FailureBody>(r.body);
  }

  void drain(int worker_replies_expected, const ClientFeed* feed, const Peer* feed_peer = nullptr) {
    auto actions = std::move(core_.actions());
    core_.actions().clear();
    int worker_replies = 0;
    const ClientFeed* submit = feed && feed->kind == ClientFeed::Submit ? feed : nullptr;
    const ClientFeed* bad = feed && feed->kind == ClientFeed::Bad ? feed : nullptr;
    bool submit_was_open = false;
    Key submit_key;
    if (feed) {
      submit_key = {feed_peer->routing_id, feed->request_id};
      submit_was_open = open_.contains(submit_key);
    }
    int submit_terminals = 0, bad_replies = 0;
    for (auto& a : actions) {
      if (auto* w = std::get_if<broker::ReplyToWorker>(&a)) {
        ++worker_replies;
      } else if (auto* c = std::get_if<broker::ReplyToClient>(&a)) {
        if (auto* r = std::get_if<broker::ResultBody>(&c->body)) sink_ = sink_ + touch(r->outputs);
        if (auto* ch = std::get_if<broker::ChunkBody>(&c->body)) sink_ = sink_ + touch(ch->data);
        if (auto* acc = std::get_if<broker::AcceptedBody>(&c->body); acc && acc->job_id)
          durable_.insert({c->peer->routing_id, c->request_id});
        if (!is_terminal(*c)) continue;
        Key k{c->peer->routing_id, c->request_id};
        auto* f = std::get_if<broker::FailureBody>(&c->body);
        if (bad && k == submit_key && bad_replies == 0) {
          // The answer to a message that was not a usable ClientMessage: not a Submit's reply.
          MUSTER_FUZZ_CHECK(f && f->code == wire::ErrorCode::BadMessage,
                            "a bad client message was not answered BAD_MESSAGE");
          ++bad_replies;
          continue;
        }
        if (submit && k == submit_key && submit_terminals == 0) {
          ++submit_terminals;
          if (submit_was_open) {
            MUSTER_FUZZ_CHECK(f && f->code == wire::ErrorCode::InvalidRequest,
                              "a duplicate open request id was not refused with INVALID_REQUEST");
          } else {
            // answered at once (NoWorker, QueueFull, ...)
            MUSTER_FUZZ_CHECK(f != nullptr, "a submit got a result in the same turn it arrived");
          }
          continue;
        }
        MUSTER_FUZZ_CHECK(open_.erase(k) == 1,
                          "a terminal reply for a request that is not open (a duplicate)");
      } else if (auto* ch = std::get_if<broker::SendChunk>(&a)) {
        sink_ = sink_ + touch(ch->data);
      } else if (auto* s = std::get_if<broker::SendWorkRequest>(&a)) {
        sink_ = sink_ + touch(s->inputs) + touch(s->parameters);
        work_.push_back(*s);
        if (work_.size() > 4096) work_.erase(work_.begin(), work_.begin() + 2048);
      }
    }
    if (submit && !submit_was_open && submit_terminals == 0) open_.insert(submit_key);
    if (submit && submit_was_open)
      MUSTER_FUZZ_CHECK(submit_terminals == 1, "a duplicate open request id got no answer");
    if (bad) MUSTER_FUZZ_CHECK(bad_replies == 1, "a bad client message did not get exactly one reply");
    if (answers_unacked_ && worker_replies_expected == 1)
      MUSTER_FUZZ_CHECK(worker_replies <= 1, "a worker message got more than one reply");
    else
      MUSTER_FUZZ_CHECK(worker_replies == worker_replies_expected,
                        "a worker message did not get exactly one reply");
    for (auto& [id, w] : core_.registry().workers())
      if (w.no_answer_acks) answers_unacked_ = true;
  }

  BrokerCore& core_;
  bool answers_unacked_ = false;  // some worker attached with no_answer_acks (sticky)
  std::set<Key> open_;
  std::set<Key> durable_;  // accepted with a job id: may be left to the journal at shutdown
  std::vector<broker::SendWorkRequest> work_;
  volatile std::uint64_t sink_ = 0;
};

// The scene the single-message targets start from: worker "w1" (peer "wp-w1") attached with
// `capacity` and confirmed, then one Submit from client "c1" per entry of `nodes` (request ids
// 1, 2, ...), each checked like any other message.
// One payload frame from a worker's connection as musterd takes it (daemon.cpp
// on_worker_message): the message, or each item of a Batch as if it had come alone
// (PROTOCOL.md §2.2), each checked for its one reply; a Batch that breaks a rule is one bad message.
inline void feed_worker_frame(BrokerCore& core, Checker& check, TimePoint now, const Peer& peer, const Caller& who,
                              std::span<const std::uint8_t> data) {
  auto owner = std::make_shared<std::vector<std::uint8_t>>(data.begin(), data.end());
  std::span<const std::uint8_t> bytes(owner->data(), owner->size());
  broker::for_each_worker_event(bytes, [&] { return owner; }, worker_limits(), [&](broker::WorkerEvent&& ev) {
    broker::deliver(core, now, peer, who, std::move(ev));
    check.after_worker_message();
  });
}

// One payload frame from a client's connection as musterd takes it (daemon.cpp
// on_client_message): the message, or each item of a Batch, each checked as if it came alone.
inline void feed_client_frame(BrokerCore& core, Checker& check, TimePoint now, const Peer& peer, const Caller& who,
                              std::span<const std::uint8_t> data) {
  broker::for_each_client_message(
      data, client_limits(),
      [&](std::span<const std::uint8_t> item, bool) {
        // (a Batch inside the Batch is refused by feed_client_message's decoder as that item)
        check.after_client_message(peer, feed_client_message(core, now, peer, who, item));
      },
      [&](broker::Refusal&& r) {
        core.on_bad_client_message(peer, r.request_id, std::move(r.why), r.code);
        check.after_client_message(peer, ClientFeed{ClientFeed::Bad, r.request_id});
      });
}

inline void confirmed_worker_with_requests(BrokerCore& core, Checker& check, TimePoint now,
                                           std::uint32_t capacity, const std::vector<std::string>& nodes,
                                           bool want_progress_and_accepted) {
  Caller local;
  Peer worker_peer{"wp-w1", false, ""};
  Peer client{"c1", false, ""};
  feed_worker_message(core, now, worker_peer, local, attach_message("w1", "s1", capacity, fuzz_nodes()));
  check.after_worker_message();
  feed_worker_message(core, now, worker_peer, local, pong_message("w1", 1, "inst-7f3a", {}));
  check.after_worker_message();
  std::uint64_t rid = 0;
  for (auto& node : nodes) {
    auto f = feed_client_message(core, now, client, local,
                                 submit_message(++rid, node, Map{{"i", 7}}, 5000, want_progress_and_accepted,
                                                want_progress_and_accepted));
    check.after_client_message(client, f);
  }
}

}  // namespace muster::fuzz
