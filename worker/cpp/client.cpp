// client.cpp — the C++ client library. See client.hpp.
#include "muster/client.hpp"

#include <algorithm>
#include <cctype>
#include <cstring>
#include <deque>
#include <span>
#include <unordered_map>
#include <unordered_set>
#include <utility>

#include <fmt/format.h>
#include <zmq.hpp>

#include "muster/endpoints.hpp"
#include "muster/align.hpp"
#include "muster/batch_message.hpp"
#include "muster/chunked_outputs.hpp"
#include "muster/chunking.hpp"
#include "muster/frames.hpp"
#include "muster/messages.hpp"
#include "muster/node_spec.hpp"
#include "chunk_message.hpp"
#include "client_message.hpp"
#include "client_socket.hpp"
#include "listing_json.hpp"
#include "muster/socket_poll.hpp"
#include "muster/spare_nodes.hpp"

namespace muster {

namespace {
using SteadyClock = std::chrono::steady_clock;
std::string str(const flatbuffers::String* s) { return s ? s->str() : std::string(); }

// Job ids of durable calls one JobResume or JobAck carries at most (musterd refuses a JobResume
// of more than its --max-client-outstanding, 10,000 by default).
constexpr std::size_t kJobsPerMessage = 1000;
// Job ids handed to the application that are remembered, to drop a reply sent again for one.
constexpr std::size_t kDeliveredRemembered = 65536;
// Held Submits (ClientOptions::coalesce_submits): a larger one goes alone; a batch is sent once
// it holds kBatchMaxBytes (PROTOCOL.md §2.2).
constexpr std::size_t kBatchItemMax = 16 * 1024;
constexpr std::size_t kBatchMaxBytes = 64 * 1024;
// Item windows (PROTOCOL.md §7.8): Client::stream's default, and musterd's default bytes.
constexpr std::uint32_t kStreamWindowItems = 64;
constexpr std::uint64_t kStreamWindowBytes = 4ull << 20;
// Chunked values (PROTOCOL.md §7.9): at most this many streams of each parity per call.
constexpr std::size_t kMaxChunkInputs = 16;
constexpr const char* kDurableInline =
    "a durable call carries its values inline (at most the message limit); chunked values are for "
    "non-durable calls (docs/DURABILITY.md)";

flatbuffers::Offset<flatbuffers::Vector<std::uint8_t>> nested_values(flatbuffers::FlatBufferBuilder& fbb,
                                                                     const Map& m) {
  if (m.empty()) return 0;
  return create_nested_values(fbb, m);
}
}  // namespace

struct Client::Impl {
  ClientOptions opt;
  zmq::context_t ctx{1};
  zmq::socket_t socket{ctx, zmq::socket_type::dealer};
  // Connection events of `socket`: a client learns at once that the daemon is unreachable or
  // went away, instead of waiting for its deadlines.
  ConnectionMonitor monitor{ctx, socket};
  // pump()'s wait: the socket (asked at every wait: a send comes between any two) and the
  // monitor (asked only after an event: it is read to the end each time).
  SocketWait replies_wait;
  const std::size_t socket_item = replies_wait.add(socket), monitor_item = replies_wait.add(monitor.polled());
  std::uint64_t next_id = 1;
  bool connected = false;
  // Connections up (CONNECTED minus DISCONNECTED events): with a failover pair's two
  // endpoints, the client is connected while either is.
  int links_up = 0;
  // opt.client_address as a list: one daemon, or the two of a failover pair.
  std::vector<std::string> endpoints;
  bool lost_connection = false;
  struct Open {
    SteadyClock::time_point give_up;
    Assertion on_behalf_of;  // the Submit's, repeated on its Cancel, JobResume and JobAck
    std::uint64_t job_id = 0;  // a durable call's, from its Accepted
    std::uint64_t call_token = 0;  // a resumable call's, from its Accepted (PROTOCOL.md §8.3)
    bool resume = false;       // durable or resumable, its connection lost: resumed on the next one
    std::function<void(std::uint64_t)> on_job;
    bool keep_outcome = false;
    // Its item stream (PROTOCOL.md §7.8): the window asked for (0 items: none), what was handed
    // to the application, and the totals last granted.
    std::uint64_t window_items = 0, window_bytes = 0;
    std::uint64_t consumed_items = 0, consumed_bytes = 0;
    std::uint64_t granted_items = 0, granted_bytes = 0;
    std::uint64_t items_received = 0;  // items read from musterd (CallRef.items_received)
    // Its chunked inputs, sent as the worker grants credit (odd streams 1, 3, 5, ...).
    struct Input {
      std::string port;
      ChunkSender sender;
    };
    std::vector<Input> inputs;
    // Its chunked outputs (the worker's even streams), created with the first chunk; the sink
    // they go to (null: memory). Destroyed with the request: what was not committed is dropped.
    std::shared_ptr<OutputSink> sink;
    std::unique_ptr<ChunkedOutputs> outputs;
  };
  std::unordered_map<std::uint64_t, Open> open;
  // The nodes of `open` that terminal replies freed, for the next Submits (not a malloc and a
  // free per call; the other ways out of `open` are rare and erase as usual).
  SpareNodes<std::unordered_map<std::uint64_t, Open>> spare_open{1024};
  // Durable calls wait for a reconnect since then (ClientOptions::durable_reconnect_wait).
  std::optional<SteadyClock::time_point> lost_at;
  // Job ids handed to the application, remembered (oldest forgotten first) so that a terminal
  // reply sent again for one (after a reconnect) is dropped, not delivered twice.
  std::unordered_set<std::uint64_t> delivered;
  std::deque<std::uint64_t> delivered_order;
  // Terminal replies of durable calls read, not handed over yet: job id -> how to ack it.
  struct HandOver {
    Assertion on_behalf_of;
    bool keep = false;  // CallOptions::keep_outcome: not acknowledged
  };
  std::unordered_map<std::uint64_t, HandOver> to_hand_over;
  // Job ids handed over and not yet acknowledged to musterd (sent once connected).
  std::vector<std::pair<std::uint64_t, Assertion>> unacked;
  bool sent_acks = false;
  std::deque<ClientEvent> pending;           // events read while waiting for something else
  std::unordered_map<std::uint64_t, Json> query_replies;
  MessageBuilders builders;  // submit's: reused for small calls (transport/frames.hpp)
  // Batches (PROTOCOL.md §2.2): the daemon sent one on this connection (so it reads them too);
  // false again after a disconnect, since the daemon that answers next may be an older one.
  bool daemon_batches = false;
  BatchWriter held;                       // Submits held by coalesce_submits
  std::vector<std::uint64_t> held_ids;    // their request ids, in order

  // The acknowledgements of what the application was handed last go out before the socket
  // closes (it lingers for them, at most a second).
  ~Impl() {
    flush_acks();
    if (sent_acks) socket.set(zmq::sockopt::linger, 1000);
  }

  explicit Impl(ClientOptions o) : opt(std::move(o)) {
    endpoints = prepare_client_socket(opt, socket);
    socket.set(zmq::sockopt::sndhwm, 100000);
    socket.set(zmq::sockopt::rcvhwm, 100000);
    for (auto& ep : endpoints) socket.connect(ep);
  }

  // What the connection did since the monitor was last read.
  struct Link {
    bool lost = false;       // it went away
    bool connected = false;  // it came up (the first time, or again)
  };
  Link read_monitor() {
    Link link;
    while (auto kind = monitor.next()) {
      if (kind == ZMQ_EVENT_CONNECTED) {
        links_up = std::min(links_up + 1, static_cast<int>(endpoints.size()));
        link.connected = true;
      }
      if (kind == ZMQ_EVENT_DISCONNECTED) {
        links_up = std::max(links_up - 1, 0);
        link.lost = true;
        daemon_batches = false;
        // Held Submits are open requests: fail_open ends them UNAVAILABLE with the rest (they
        // were never sent, so no durable one among them has a job id to resume).
        held.clear();
        held_ids.clear();
      }
      connected = links_up > 0;
    }
    return link;
  }

  // Acts on what the monitor saw: a lost connection ends what cannot be resumed, a new one
  // resumes the durable calls that wait for it and sends the acks that waited.
  void on_link(const Link& link) {
    if (link.lost) fail_open("lost the connection to musterd");
    // A pair's socket (ZMQ_IMMEDIATE) dropped what it held for the lost connection with it.
    if (link.lost && !connected && endpoints.size() == 1) drop_unsent();
    if (connected && (link.connected || lost_at)) {
      resume_jobs();
      flush_acks();
    }
  }

  // The calls of the lost connection were just failed (fail_open): what libzmq still queues
  // for it (a Submit not yet written while the daemon was stalled) is dropped, so that it can
  // never reach the next daemon on this address and run after its caller was told UNAVAILABLE
  // (docs/DURABILITY.md §13). Disconnecting an endpoint drops its pipe (linger 0); connecting
  // again opens an empty one. The socket, its descriptor (fd()) and its monitor stay. Should
  // libzmq have connected again meanwhile, that connection goes silently (no DISCONNECTED
  // event) and its CONNECTED event, still to be read, is counted once (links_up is at most
  // the number of endpoints).
  void drop_unsent() {
    for (auto& ep : endpoints) {
      try {
        socket.disconnect(ep);
      } catch (const zmq::error_t&) {
        // not connected to it (any more): nothing queued for it
      }
      socket.connect(ep);
    }
  }

  // With ZMQ_IMMEDIATE (a failover pair) a connection may be up before its handshake completed
  // and the socket can take a message: waits for that, at most 3 s (then the send fails).
  void wait_until_writable() {
    if (endpoints.size() < 2) return;
    zmq::pollitem_t item{socket.handle(), 0, ZMQ_POLLOUT, 0};
    zmq::poll(&item, 1, std::chrono::milliseconds(3000));
  }

  void send(flatbuffers::FlatBufferBuilder& fbb) { send(take_message(fbb)); }

  void send(zmq::message_t message) {
    if (!connected) {
      // Wait for the connection, so that a missing daemon is reported quickly.
      auto until = SteadyClock::now() + std::chrono::milliseconds(3000);
      while (!connected && SteadyClock::now() < until) {
        zmq::pollitem_t item{monitor.handle(), 0, ZMQ_POLLIN, 0};
        zmq::poll(&item, 1, std::chrono::milliseconds(50));
        on_link(read_monitor());
      }
      if (!connected)
        throw CallError(wire::ErrorCode::Unavailable,
                        fmt::format("cannot reach musterd at {} (is it running?)", opt.client_address));
    }
    wait_until_writable();
    flush_held();  // what is held goes first: one connection's order holds
    if (!socket.send(std::move(message), zmq::send_flags::dontwait))
      throw CallError(wire::ErrorCode::Unavailable,
                      fmt::format("cannot send to musterd at {}: too many messages queued",
                                  opt.client_address));
  }

  // Holds the Submit `id` finished in `fbb` for the next flush_held() when coalescing, else
  // sends it now.
  void send_submit(std::uint64_t id, flatbuffers::FlatBufferBuilder& fbb) {
    if (!(opt.coalesce_submits && daemon_batches && connected && fbb.GetSize() <= kBatchItemMax)) return send(fbb);
    if (held.bytes() + fbb.GetSize() + 64 * (held.count() + 1) + 256 > kBatchMaxBytes) flush_held();
    held.add({fbb.GetBufferPointer(), fbb.GetSize()});
    held_ids.push_back(id);
    fbb.Clear();
  }

  // Sends the held Submits: one Batch (alone if only one). If libzmq will not take it, each of
  // them fails UNAVAILABLE (delivered by poll), as a Submit sent alone would throw.
  void flush_held() {
    if (held.count() == 0) return;
    if (!socket.send(take_batch(held, BatchRoot::Client), zmq::send_flags::dontwait))
      for (auto id : held_ids)
        if (open.erase(id))
          pending.push_back(ClientEvent{id, FailureEvent{wire::ErrorCode::Unavailable,
                                                         fmt::format("cannot send to musterd at {}: too many messages queued",
                                                                     opt.client_address)}});
    held_ids.clear();
  }

  // Every open request (and query) ends with UNAVAILABLE: the daemon that held it is gone, and
  // one that comes back on the same address does not know it. But a durable call musterd
  // accepted (its job id is known), and a resumable one it gave a token, wait to be resumed on
  // the next connection.
  void fail_open(const std::string& why) {
    for (auto it = open.begin(); it != open.end();) {
      if (it->second.job_id || it->second.call_token) {
        it->second.resume = true;
        if (!lost_at) lost_at = SteadyClock::now();
        ++it;
        continue;
      }
      pending.push_back(ClientEvent{it->first, FailureEvent{wire::ErrorCode::Unavailable,
                                                            fmt::format("{} at {} while the request was open",
                                                                        why, opt.client_address)}});
      it = open.erase(it);
    }
    for (auto& [id, reply] : query_replies)
      if (reply.is_null())
        reply = Json{{"$failure", {{"code", "UNAVAILABLE"}, {"message", why}}}};
  }

  // Durable and resumable calls waiting for a reconnect past durable_reconnect_wait end
  // UNAVAILABLE.
  void give_up_resuming(SteadyClock::time_point now) {
    if (!lost_at || connected || now - *lost_at < opt.durable_reconnect_wait) return;
    lost_at.reset();
    for (auto it = open.begin(); it != open.end();) {
      if (!it->second.resume) {
        ++it;
        continue;
      }
      if (!it->second.job_id) {  // resumable: it lived only in the musterd that is not back
        pending.push_back(ClientEvent{
            it->first, FailureEvent{wire::ErrorCode::Unavailable,
                                    fmt::format("lost the connection to musterd at {} and it did not come back "
                                                "within {} ms while the request was open",
                                                opt.client_address, opt.durable_reconnect_wait.count())}});
        it = open.erase(it);
        continue;
      }
      pending.push_back(ClientEvent{
          it->first,
          FailureEvent{wire::ErrorCode::Unavailable,
                       fmt::format("lost the connection to musterd at {} and it did not come back within "
                                   "{} ms; the durable call lives on as job {} (muster job get {})",
                                   opt.client_address, opt.durable_reconnect_wait.count(),
                                   it->second.job_id, it->second.job_id)},
          it->second.job_id});
      it = open.erase(it);
    }
  }

  // Groups job ids by the assertion they were made under (one message per user).
  template <class Each>
  static void by_assertion(const std::vector<std::pair<std::uint64_t, Assertion>>& jobs, Each&& each) {
    std::vector<bool> done(jobs.size());
    for (std::size_t i = 0; i < jobs.size(); ++i) {
      if (done[i]) continue;
      std::vector<std::uint64_t> ids;
      for (std::size_t k = i; k < jobs.size(); ++k)
        if (!done[k] && jobs[k].second == jobs[i].second) {
          ids.push_back(jobs[k].first);
          done[k] = true;
        }
      for (std::size_t at = 0; at < ids.size(); at += kJobsPerMessage)
        each(std::span(ids).subspan(at, std::min(kJobsPerMessage, ids.size() - at)), jobs[i].second);
    }
  }

  // JobResume of every durable call waiting for this connection, under its own request id;
  // CallResume of every resumable one (resume_calls).
  void resume_jobs() {
    lost_at.reset();
    std::vector<std::pair<std::uint64_t, Assertion>> jobs;
    std::vector<std::pair<std::uint64_t, Assertion>> calls;  // request ids of resumable calls
    std::unordered_map<std::uint64_t, std::uint64_t> request_of;  // job id -> request id
    for (auto& [id, o] : open)
      if (o.resume) {
        o.resume = false;
        if (!o.job_id) {
          calls.emplace_back(id, o.on_behalf_of);
          continue;
        }
        jobs.emplace_back(o.job_id, o.on_behalf_of);
        request_of[o.job_id] = id;
      }
    resume_calls(calls);
    std::sort(jobs.begin(), jobs.end(), [](auto& a, auto& b) { return a.first < b.first; });
    by_assertion(jobs, [&](std::span<const std::uint64_t> ids, const Assertion& as) {
      flatbuffers::FlatBufferBuilder fbb(64 + 24 * ids.size());
      std::vector<flatbuffers::Offset<wire::JobRef>> refs;
      for (auto job : ids) refs.push_back(wire::CreateJobRef(fbb, job, request_of[job]));
      auto body = wire::CreateJobResumeDirect(fbb, &refs);
      send_message(next_id++, wire::ClientBody::JobResume, body.Union(), fbb, as);
    });
  }

  // CallResume (PROTOCOL.md §8.3 C6) of the resumable calls `calls` (request id, assertion), each
  // under its own request id with what this client received of it: its items and the bytes of
  // each chunked output stream. Its chunk senders and receivers go on from musterd's answer
  // (resume Credits) and their own stall timers.
  void resume_calls(const std::vector<std::pair<std::uint64_t, Assertion>>& calls) {
    if (calls.empty()) return;
    by_assertion(calls, [&](std::span<const std::uint64_t> ids, const Assertion& as) {
      flatbuffers::FlatBufferBuilder fbb(64 + 64 * ids.size());
      std::vector<flatbuffers::Offset<wire::CallRef>> refs;
      for (auto id : ids) {
        auto& o = open.at(id);
        std::vector<flatbuffers::Offset<wire::StreamOffset>> outputs;
        if (o.outputs)
          for (auto [stream, offset] : o.outputs->offsets()) outputs.push_back(wire::CreateStreamOffset(fbb, stream, offset));
        refs.push_back(wire::CreateCallRefDirect(fbb, o.call_token, id, o.items_received, &outputs));
      }
      auto body = wire::CreateCallResumeDirect(fbb, &refs);
      try {
        send_message(next_id++, wire::ClientBody::CallResume, body.Union(), fbb, as);
      } catch (const CallError&) {
        // The connection went again: they wait for the next one (fail_open marks them again).
      }
    });
  }

  // A resumable call musterd bound to this connection (Accepted to its CallRef): the item
  // credit it granted is said again (a Credit may have been lost in the break; it is cumulative).
  void resumed(std::uint64_t id, Open& o) {
    if (o.window_items) send_item_credit(id, o);
  }

  // The call's cumulative item grant (§7.8), as it stands. If the connection is gone the call
  // ends UNAVAILABLE with it, or waits for the next one (fail_open): nothing to do here.
  void send_item_credit(std::uint64_t id, const Open& o) {
    flatbuffers::FlatBufferBuilder fbb(96);
    auto body = wire::CreateCredit(fbb, id, 0, o.granted_items, o.granted_bytes);
    try {
      send_message(id, wire::ClientBody::Credit, body.Union(), fbb, o.on_behalf_of);
    } catch (const CallError&) {
    }
  }

  // A terminal event handed to the application: a durable call's job is remembered as
  // delivered and acknowledged (now if connected, else on the next connection), unless the
  // call asked to keep its outcome.
  void handed_over(const ClientEvent& ev) {
    if (!ev.terminal() || !ev.job_id) return;
    auto it = to_hand_over.find(ev.job_id);
    if (it == to_hand_over.end()) return;  // not an outcome musterd keeps (UNAVAILABLE here)
    HandOver how = std::move(it->second);
    to_hand_over.erase(it);
    if (delivered.insert(ev.job_id).second) {
      delivered_order.push_back(ev.job_id);
      if (delivered_order.size() > kDeliveredRemembered) {
        delivered.erase(delivered_order.front());
        delivered_order.pop_front();
      }
    }
    if (!how.keep) unacked.emplace_back(ev.job_id, std::move(how.on_behalf_of));
  }

  void flush_acks() {
    if (unacked.empty() || !connected) return;
    auto jobs = std::move(unacked);
    unacked.clear();
    try {
      by_assertion(jobs, [&](std::span<const std::uint64_t> ids, const Assertion& as) {
        flatbuffers::FlatBufferBuilder fbb(64 + 8 * ids.size());
        auto list = fbb.CreateVector(ids.data(), ids.size());
        auto body = wire::CreateJobAck(fbb, list);
        send_message(next_id++, wire::ClientBody::JobAck, body.Union(), fbb, as);
        sent_acks = true;
      });
    } catch (const CallError&) {
      // Not sent (the connection went meanwhile): musterd keeps those outcomes until its
      // --result-ttl-ms; they are never delivered to this application twice (delivered).
    }
  }

  // A terminal reply of a durable call already handed to the application (sent again after a
  // reconnect): dropped, and acknowledged again.
  bool already_delivered(std::uint64_t job_id, const HandOver& how) {
    if (!job_id || !delivered.contains(job_id)) return false;
    if (!how.keep) unacked.emplace_back(job_id, how.on_behalf_of);
    return true;
  }

  void send_message(std::uint64_t id, wire::ClientBody type, flatbuffers::Offset<void> body,
                    flatbuffers::FlatBufferBuilder& fbb, const Assertion& as = {}) {
    finish_client_message(fbb, id, type, body, as);
    send(fbb);
  }


  // The inputs as sent: each top-level bytes value over the threshold, and each input source
  // over it, replaced by its Chunked reference (its sender in `streams`); the smaller sources
  // read in whole. Throws CallError{INVALID_REQUEST} for what cannot be sent.
  Map chunk_inputs(const Map& inputs, const CallOptions& o, std::vector<Open::Input>& streams) const {
    Map out = inputs;  // bytes values share their storage
    auto refuse = [](std::string why) { throw CallError(wire::ErrorCode::InvalidRequest, std::move(why)); };
    auto next_stream = [&] {
      if (o.durable) refuse(kDurableInline);
      if (streams.size() == kMaxChunkInputs)
        refuse(fmt::format("a call has at most {} chunked inputs (PROTOCOL.md §7.9)", kMaxChunkInputs));
      return static_cast<std::uint32_t>(2 * streams.size() + 1);
    };
    for (auto& [port, value] : out) {
      if (value.kind() != ValueKind::Bytes || value.as_bytes().size() <= opt.chunk_threshold) continue;
      streams.push_back(Open::Input{port, ChunkSender(value.as_bytes(), next_stream())});
      value = Value(streams.back().sender.reference());
    }
    for (auto& [port, source] : o.input_sources) {
      if (!source) refuse(fmt::format("input {}: no source given", port));
      if (out.contains(port)) refuse(fmt::format("input {}: given both in the inputs and as a source", port));
      try {
        if (source->size() <= opt.chunk_threshold) {
          out.set(port, Value(read_all(*source)));
          continue;
        }
        auto stream = next_stream();
        streams.push_back(Open::Input{port, ChunkSender(source, stream)});  // hashes it, unless known
      } catch (const std::runtime_error& e) {
        if (dynamic_cast<const CallError*>(&e)) throw;
        refuse(fmt::format("input {}: {}", port, e.what()));
      }
      out.set(port, Value(streams.back().sender.reference()));
    }
    return out;
  }

  std::uint64_t submit(const std::string& node, const Map& given_inputs, const CallOptions& o) {
    std::vector<Open::Input> streams;
    bool chunkable = !o.input_sources.empty() ||
                     std::any_of(given_inputs.begin(), given_inputs.end(), [&](const Map::Entry& e) {
                       return e.second.kind() == ValueKind::Bytes && e.second.as_bytes().size() > opt.chunk_threshold;
                     });
    Map chunked;
    if (chunkable) chunked = chunk_inputs(given_inputs, o, streams);
    const Map& inputs = chunkable ? chunked : given_inputs;
    auto id = next_id++;
    auto& fbb = builders.get(256 + (inputs.empty() ? 0 : encoded_size_hint(inputs)) +
                             (o.parameters.empty() ? 0 : encoded_size_hint(o.parameters)));
    auto in = nested_values(fbb, inputs);
    auto params = nested_values(fbb, o.parameters);
    auto node_off = fbb.CreateString(node);
    auto trace = o.trace_id.empty() ? flatbuffers::Offset<flatbuffers::String>() : fbb.CreateString(o.trace_id);
    wire::SubmitBuilder s(fbb);
    s.add_node(node_off);
    if (!in.IsNull()) s.add_inputs(in);
    if (!params.IsNull()) s.add_parameters(params);
    s.add_timeout_ms(o.timeout_ms);
    s.add_want_progress(static_cast<bool>(o.on_progress));
    s.add_payload_frames(true);  // large outputs come as a frame of their own, uncopied by musterd
    if (!trace.IsNull()) s.add_trace_id(trace);
    if (o.durable) s.add_durable(true);
    // Resumable (PROTOCOL.md §8.3): by default a call that streams, and never a durable one.
    if (o.resumable.value_or(chunkable || o.stream_window_items > 0 || o.output_sink != nullptr) && !o.durable)
      s.add_resumable(true);
    s.add_batch_replies(true);  // handle() opens a Batch of replies (PROTOCOL.md §2.2)
    if (o.stream_window_items) {
      s.add_stream_window_items(o.stream_window_items);
      s.add_stream_window_bytes(o.stream_window_bytes);
    }
    // The worker may chunk outputs larger than a message (PROTOCOL.md §7.9); a durable call
    // carries its values inline.
    if (!o.durable) s.add_chunk_window_bytes(kChunkWindowBytes);
    auto body = s.Finish();
    finish_client_message(fbb, id, wire::ClientBody::Submit, body.Union(), o.on_behalf_of);
    // The client's guard against a daemon that never answers: its deadline plus grace. With no
    // timeout the node's own default applies, which the client does not know: then only a
    // lost connection (the monitor) ends the wait early.
    // Built in place with one lookup (not a temporary Open moved into a node found twice), in a
    // node a finished call left if there is one.
    auto& st = spare_open.insert(open, id);
    st.give_up = o.timeout_ms ? SteadyClock::now() + std::chrono::milliseconds(o.timeout_ms) + opt.grace
                              : SteadyClock::time_point::max();
    st.on_behalf_of = o.on_behalf_of;
    if (o.on_job) st.on_job = o.on_job;
    st.keep_outcome = o.keep_outcome;
    if (o.stream_window_items) {
      st.window_items = st.granted_items = o.stream_window_items;
      st.window_bytes = st.granted_bytes = o.stream_window_bytes ? o.stream_window_bytes : kStreamWindowBytes;
    }
    st.inputs = std::move(streams);  // sent once the worker grants credit (handle: Credit)
    st.sink = o.output_sink;
    try {
      send_submit(id, fbb);
    } catch (...) {
      open.erase(id);
      throw;
    }
    return id;
  }

  // Reads whatever arrives within `wait` into `pending`/`query_replies`; expires guards.
  void pump(std::chrono::milliseconds wait) {
    flush_held();
    // Output streams under way are looked at for stalls at least every 100 ms.
    if (std::any_of(open.begin(), open.end(), [](const auto& o) { return o.second.outputs != nullptr; }))
      wait = std::min(wait, std::chrono::milliseconds(100));
    try {
      replies_wait.wait(wait);
    } catch (const zmq::error_t& e) {
      if (e.num() != EINTR) throw;  // a signal: let the caller look at it
    }
    // Connection events first, then the replies: a reply that arrived before a disconnect is
    // in the socket's queue by the time its event is seen, so it is still read below (and a
    // durable call's Accepted with its job id, so that it is resumed, not failed).
    // Only what the poll found readable is read (an empty read costs libzmq two syscalls), and
    // the socket also after any connection event, which the replies before it precede.
    Link link = replies_wait.readable(monitor_item) ? read_monitor() : Link{};
    const bool replies = replies_wait.readable(socket_item) || link.lost || link.connected;
    zmq::message_t m;
    while (replies && socket.recv(m, zmq::recv_flags::dontwait)) {
      // The reply is the last frame; the one before it, if any, may be the payload frame it
      // refers to (Result.outputs_in_frame, PROTOCOL.md §2.1).
      zmq::message_t before;
      bool has_before = false;
      while (m.more()) {
        before = std::move(m);
        has_before = true;
        (void)socket.recv(m, zmq::recv_flags::none);
      }
      align_payload(m);
      if (has_before) align_payload(before);
      handle(bytes_of(m), has_before ? &before : nullptr);
    }
    on_link(link);
    auto now = SteadyClock::now();
    give_up_resuming(now);
    ask_stalled_outputs(now);
    for (auto it = open.begin(); it != open.end();) {
      if (now >= it->second.give_up) {
        pending.push_back(ClientEvent{it->first,
                                      FailureEvent{wire::ErrorCode::Unavailable,
                                                   "no reply from musterd in time (daemon down or restarted?)"},
                                      it->second.job_id});
        it = open.erase(it);
      } else {
        ++it;
      }
    }
  }

  // `frame`, if any, is the payload frame before the reply; a Result's outputs in it take it
  // over and read their large bytes values in place. A Batch's items are handled one by one,
  // as if each had come alone (PROTOCOL.md §2.2). `in_batch`: `m` is an item.
  void handle(std::span<const std::uint8_t> m, zmq::message_t* frame, bool in_batch = false) {
    auto* reply = read_client_reply(m);
    if (!reply) return;  // not ours to understand; ignore
    auto id = reply->request_id();
    switch (reply->body_type()) {
      case wire::ReplyBody::Batch: {
        if (frame || in_batch) return;  // not a Batch the rules allow (§2.2); ignore
        daemon_batches = true;          // the daemon reads them too
        for (auto item : batch_items(*reply->body_as_Batch(), m).items) handle(item, nullptr, true);
        return;
      }
      case wire::ReplyBody::Progress: {
        if (!open.contains(id)) return;
        auto* p = reply->body_as_Progress();
        pending.push_back(ClientEvent{id, ProgressEvent{p->step(), p->total(), str(p->message())}});
        return;
      }
      case wire::ReplyBody::Item: {
        auto o = open.find(id);
        if (o == open.end() || !o->second.window_items) return;
        auto* item = reply->body_as_Item();
        std::uint64_t size = item->values() ? item->values()->size() : 0;
        o->second.items_received = std::max(o->second.items_received, item->seq() + 1);
        try {
          pending.push_back(ClientEvent{id, ItemEvent{item->seq(), decode_verified_values(payload_bytes(item->values())), size}});
        } catch (const std::exception& e) {
          // Not a valid Values payload: the call is over for this client (its terminal reply,
          // when it comes, is dropped), and it is cancelled on the daemon.
          fail_locally(id, wire::ErrorCode::BadMessage, fmt::format("item {}: {}", item->seq(), e.what()));
        }
        return;
      }
      case wire::ReplyBody::Credit: {  // the worker's grant for one of our chunked inputs
        auto o = open.find(id);
        if (o == open.end()) return;
        auto* c = reply->body_as_Credit();
        for (auto& in : o->second.inputs) {
          if (in.sender.reference().stream != c->stream()) continue;
          if (!c->resume()) {
            in.sender.on_credit(c->bytes());
          } else if (auto error = in.sender.on_resume(c->resume_offset(), c->bytes())) {
            // The bytes from there cannot be had again (§7.9 R10): the call ends here.
            return fail_locally(id, wire::ErrorCode::Unavailable,
                                fmt::format("input {}: chunked stream {}: {}", in.port, c->stream(), *error));
          }
        }
        send_chunks(id);
        return;
      }
      case wire::ReplyBody::Chunk: {  // a piece of one of the worker's chunked outputs
        auto o = open.find(id);
        if (o == open.end()) return;
        auto& st = o->second;
        auto* c = reply->body_as_Chunk();
        if (!st.outputs) st.outputs = std::make_unique<ChunkedOutputs>(kChunkWindowBytes, st.sink, opt.resume_after);
        std::span<const std::uint8_t> data;
        if (c->data()) data = {c->data()->data(), c->data()->size()};
        std::optional<ChunkedOutputs::Grant> grant;
        if (auto err = st.outputs->on_chunk(c->stream(), c->offset(), data, grant))
          return fail_locally(id, wire::ErrorCode::WorkerError, *err);
        if (grant) send_credit(id, *grant, st.on_behalf_of);
        return;
      }
      case wire::ReplyBody::Result: {
        auto* r = reply->body_as_Result();
        if (query_replies.contains(id)) {  // a JobGet's answer: the finished job's outputs
          try {
            query_replies[id] = Json{{"job_id", r->job_id()}, {"state", "finished"},
                                     {"outputs", to_json(result_outputs(*r, frame))}};
          } catch (const std::exception& e) {
            query_replies[id] = Json{{"$failure", {{"code", "BAD_MESSAGE"}, {"message", e.what()}}}};
          }
          return;
        }
        auto o = open.find(id);
        if (o == open.end()) return;
        HandOver how{o->second.on_behalf_of, o->second.keep_outcome};
        auto chunked = std::move(o->second.outputs);  // dropped (uncommitted streams discarded) at the end
        auto sink = std::move(o->second.sink);
        spare_open.erase(open, o);
        if (already_delivered(r->job_id(), how)) return;
        if (r->job_id()) to_hand_over[r->job_id()] = how;
        try {
          Map outputs = result_outputs(*r, frame);
          if (std::any_of(outputs.begin(), outputs.end(),
                          [](const Map::Entry& e) { return e.second.kind() == ValueKind::Chunked; })) {
            if (!chunked) chunked = std::make_unique<ChunkedOutputs>(kChunkWindowBytes, sink, opt.resume_after);
            if (auto err = chunked->resolve(outputs)) {
              pending.push_back(ClientEvent{id, FailureEvent{wire::ErrorCode::WorkerError, *err}, r->job_id()});
              return;
            }
          }
          pending.push_back(ClientEvent{id, ResultEvent{std::move(outputs)}, r->job_id()});
        } catch (const std::exception& e) {
          pending.push_back(ClientEvent{id, FailureEvent{wire::ErrorCode::BadMessage, e.what()}, r->job_id()});
        }
        return;
      }
      case wire::ReplyBody::Failure: {
        auto* f = reply->body_as_Failure();
        if (query_replies.contains(id)) {
          if (f->job_id())  // a JobGet's answer: the finished job's failure
            query_replies[id] = Json{{"job_id", f->job_id()}, {"state", "finished"},
                                     {"code", error_code_name(f->code())}, {"message", str(f->message())}};
          else
            query_replies[id] = Json{{"$failure", {{"code", error_code_name(f->code())}, {"message", str(f->message())}}}};
          return;
        }
        auto o = open.find(id);
        if (o == open.end()) return;
        HandOver how{o->second.on_behalf_of, o->second.keep_outcome};
        auto job = f->job_id() ? f->job_id() : o->second.job_id;
        spare_open.erase(open, o);
        if (already_delivered(f->job_id(), how)) return;
        if (f->job_id()) to_hand_over[f->job_id()] = how;
        pending.push_back(ClientEvent{id, FailureEvent{f->code(), str(f->message())}, job});
        return;
      }
      case wire::ReplyBody::Accepted: {
        auto o = open.find(id);
        if (o == open.end()) return;
        if (auto token = reply->body_as_Accepted()->call_token()) {  // resumable (PROTOCOL.md §8.3)
          bool again = o->second.call_token == token;  // bound to this connection after a break
          o->second.call_token = token;
          if (again) resumed(id, o->second);
          return;
        }
        auto job = reply->body_as_Accepted()->job_id();
        if (!job || o->second.job_id) return;
        o->second.job_id = job;
        if (o->second.on_job) o->second.on_job(job);
        return;
      }
      case wire::ReplyBody::JobInfo:
        if (query_replies.contains(id)) query_replies[id] = job_json(reply->body_as_JobInfo());
        return;
      case wire::ReplyBody::JobInfoList:
        if (query_replies.contains(id)) {
          auto jobs = Json::array();
          auto* list = reply->body_as_JobInfoList();
          if (list->jobs())
            for (auto* j : *list->jobs()) jobs.push_back(job_json(j));
          query_replies[id] = Json{{"jobs", std::move(jobs)}, {"more", list->more()}};
        }
        return;
      case wire::ReplyBody::NodeList:
        if (query_replies.contains(id)) query_replies[id] = node_list_json(reply->body_as_NodeList());
        return;
      case wire::ReplyBody::WorkerList:
        if (query_replies.contains(id)) query_replies[id] = worker_list_json(reply->body_as_WorkerList());
        return;
      case wire::ReplyBody::StatusReport:
        if (query_replies.contains(id)) query_replies[id] = status_json(reply->body_as_StatusReport());
        return;
      case wire::ReplyBody::NodeStatsReport:
        if (query_replies.contains(id)) query_replies[id] = node_stats_json(reply->body_as_NodeStatsReport());
        return;
      case wire::ReplyBody::TokenCreated:
        if (query_replies.contains(id)) {
          auto* t = reply->body_as_TokenCreated();
          query_replies[id] = Json{{"token", str(t->token())}, {"id", str(t->id())},
                                   {"expires_at", str(t->expires_at())}};
        }
        return;
      case wire::ReplyBody::AdminReport:
        if (query_replies.contains(id)) {
          auto parsed = Json::parse(str(reply->body_as_AdminReport()->json()), nullptr, false);
          query_replies[id] = parsed.is_discarded() ? Json::array() : std::move(parsed);
        }
        return;
      default: return;
    }
  }

  // A Result's outputs: in the message, or (outputs_in_frame) in the frame before it, which
  // they then take over.
  static Map result_outputs(const wire::Result& r, zmq::message_t* frame) {
    if (!r.outputs_in_frame()) return decode_verified_values(payload_bytes(r.outputs()));  // verified with `r`
    if (!frame) throw std::runtime_error("outputs_in_frame set but no payload frame came");
    auto owner = std::make_shared<zmq::message_t>(std::move(*frame));
    return decode_values(bytes_of(*owner), owner);
  }

  static Json job_json(const wire::JobInfo* j) {
    std::string state = wire::EnumNameJobState(j->state());
    std::transform(state.begin(), state.end(), state.begin(), [](unsigned char c) { return std::tolower(c); });
    Json out{{"job_id", j->job_id()},         {"state", state.empty() ? "unknown" : state},
             {"node", str(j->node())},        {"workspace", str(j->workspace())},
             {"submitted_ms", j->submitted_ms()}, {"worker_id", str(j->worker_id())},
             {"attempts", j->attempts()}};
    if (j->state() == wire::JobState::Finished) {
      out["code"] = error_code_name(j->code());
      out["finished_ms"] = j->finished_ms();
    }
    return out;
  }

  static Json node_list_json(const wire::NodeList* list) {
    auto out = Json::array();
    if (!list || !list->nodes()) return out;
    for (auto* n : *list->nodes())
      if (auto j = node_info_json(n)) out.push_back(std::move(*j));
    return out;
  }

  static Json worker_list_json(const wire::WorkerList* list) {
    auto out = Json::array();
    if (!list || !list->workers()) return out;
    for (auto* w : *list->workers()) out.push_back(worker_info_json(w));
    return out;
  }

  static Json status_json(const wire::StatusReport* s) {
    auto failures = code_counts_json(s->failures());
    return Json{{"version", str(s->version())}, {"instance", str(s->instance())},
                {"uptime_ms", s->uptime_ms()}, {"workers", s->workers()}, {"nodes", s->nodes()},
                {"queued", s->queued()}, {"in_flight", s->in_flight()},
                {"submitted", s->submitted()}, {"completed", s->completed()},
                {"failed", s->failed()}, {"failures", failures},
                {"redispatched", s->redispatched()}, {"rate_1m", s->rate_1m()},
                {"recovering", s->recovering()}};
  }

  static Json code_counts_json(const flatbuffers::Vector<flatbuffers::Offset<wire::CodeCount>>* counts) {
    auto out = Json::object();
    if (counts)
      for (auto* c : *counts) out[std::string(error_code_name(c->code()))] = c->count();
    return out;
  }

  static Json histogram_json(const wire::LatencyHistogram* h) {
    auto vec = [](const flatbuffers::Vector<std::uint64_t>* v) {
      auto out = Json::array();
      if (v)
        for (auto x : *v) out.push_back(x);
      return out;
    };
    if (!h) return Json{{"count", 0}, {"sum_us", 0}, {"p50_us", 0}, {"p90_us", 0}, {"p99_us", 0},
                        {"upper_bounds_us", Json::array()}, {"counts", Json::array()}};
    return Json{{"count", h->count()}, {"sum_us", h->sum_us()}, {"p50_us", h->p50_us()},
                {"p90_us", h->p90_us()}, {"p99_us", h->p99_us()},
                {"upper_bounds_us", vec(h->upper_bounds_us())}, {"counts", vec(h->counts())}};
  }

  static Json node_stats_json(const wire::NodeStatsReport* r) {
    auto nodes = Json::array();
    if (r->nodes())
      for (auto* n : *r->nodes())
        nodes.push_back(Json{{"workspace", str(n->workspace())}, {"node", str(n->node())},
                             {"workers", n->workers()}, {"in_flight", n->in_flight()},
                             {"queue_depth", n->queue_depth()}, {"completed", n->completed()},
                             {"failed", n->failed()}, {"failures", code_counts_json(n->failures())},
                             {"rate_1m", n->rate_1m()}, {"queue_wait", histogram_json(n->queue_wait())},
                             {"service", histogram_json(n->service())}});
    auto failures = Json::array();
    if (r->recent_failures())
      for (auto* f : *r->recent_failures())
        failures.push_back(Json{{"workspace", str(f->workspace())}, {"node", str(f->node())},
                                {"code", error_code_name(f->code())}, {"message", str(f->message())},
                                {"age_ms", f->age_ms()}});
    return Json{{"nodes", nodes}, {"recent_failures", failures}};
  }

  // An item of request `id` was handed to the application: once half a window (in items or in
  // bytes) was consumed since the last grant, grants consumed + window (cumulative, §7.8).
  void consumed(std::uint64_t id, std::uint64_t bytes) {
    auto it = open.find(id);
    if (it == open.end() || !it->second.window_items) return;
    auto& o = it->second;
    ++o.consumed_items;
    o.consumed_bytes += bytes;
    bool half_items = o.consumed_items + o.window_items - o.granted_items >= std::max<std::uint64_t>(1, o.window_items / 2);
    bool half_bytes = o.consumed_bytes + o.window_bytes - o.granted_bytes >= std::max<std::uint64_t>(1, o.window_bytes / 2);
    if (!half_items && !half_bytes) return;
    o.granted_items = o.consumed_items + o.window_items;
    o.granted_bytes = o.consumed_bytes + o.window_bytes;
    send_item_credit(id, o);
  }

  // What the application was handed: a durable call's outcome is remembered (handed_over), an
  // item is credited (consumed).
  void delivered_to_app(const ClientEvent& ev) {
    if (auto* item = std::get_if<ItemEvent>(&ev.body)) return consumed(ev.request_id, item->bytes);
    handed_over(ev);
  }

  // Ends request `id` here with a failure of ours (what the daemon sent cannot be taken, or an
  // input cannot be read): cancelled on the daemon (its terminal reply, when it comes, is
  // dropped), a FailureEvent for the application, its streams closed.
  void fail_locally(std::uint64_t id, wire::ErrorCode code, std::string message) {
    auto o = open.find(id);
    if (o == open.end()) return;
    auto job = o->second.job_id;
    try {
      cancel_request(id);
    } catch (const CallError&) {  // the connection is gone: nothing runs on for us
    }
    // (Should the Cancel have found the connection gone, the call already ended UNAVAILABLE.)
    if (!open.erase(id)) return;
    pending.push_back(ClientEvent{id, FailureEvent{code, std::move(message)}, job});
  }

  // Output streams that brought none of their granted bytes for resume_after: a resume Credit
  // each (PROTOCOL.md §7.9 R3).
  void ask_stalled_outputs(SteadyClock::time_point now) {
    if (!connected) return;
    for (auto& [id, o] : open)
      if (o.outputs)
        for (auto& grant : o.outputs->stalled(now)) send_credit(id, grant, o.on_behalf_of);
  }

  // Credit{stream, bytes} for an output stream of request `id`, a resume Credit if it says so.
  void send_credit(std::uint64_t id, const ChunkedOutputs::Grant& grant, const Assertion& as) {
    flatbuffers::FlatBufferBuilder fbb(96);
    auto body = wire::CreateCredit(fbb, id, grant.stream, 0, grant.bytes, grant.resume_offset, grant.resume);
    try {
      send_message(id, wire::ClientBody::Credit, body.Union(), fbb, as);
    } catch (const CallError&) {
      // The connection is gone: the call ends UNAVAILABLE with it (fail_open).
    }
  }

  // Sends what the credit of request `id`'s chunked inputs allows (PROTOCOL.md §7.9: never
  // past the grant). A source that cannot be read ends the call INVALID_REQUEST.
  void send_chunks(std::uint64_t id) {
    auto o = open.find(id);
    if (o == open.end()) return;
    const auto& as = o->second.on_behalf_of;
    const std::size_t header = 256 + (as ? as->user.size() + as->workspace.size() + as->role.size() : 0);
    for (auto& in : o->second.inputs) {
      const auto stream = in.sender.reference().stream;
      auto finish = [&](std::uint64_t offset) {
        return [&, offset](flatbuffers::FlatBufferBuilder& fbb, detail::ChunkData data) {
          auto body = wire::CreateChunk(fbb, id, stream, offset, data);
          finish_client_message(fbb, id, wire::ClientBody::Chunk, body.Union(), as);
        };
      };
      // A source is read straight into the Chunk message that carries it (kept, shared, for a
      // resend when it cannot be read again): no copy of its bytes.
      BuildChunk build = [&](std::uint64_t offset, std::size_t n,
                             const std::function<void(std::span<std::uint8_t>)>& fill) {
        detail::ChunkWriter writer(n, header);
        fill(writer.data());
        return writer.finish(n, finish(offset));
      };
      for (;;) {
        if (!connected) return;  // the call ends UNAVAILABLE with the connection (fail_open)
        std::optional<ChunkOut> c;
        try {
          c = in.sender.next(build);
        } catch (const std::exception& e) {
          return fail_locally(id, wire::ErrorCode::InvalidRequest, fmt::format("input {}: {}", in.port, e.what()));
        }
        if (!c) break;
        try {
          send(c->message ? std::move(*c->message) : detail::chunk_piece(c->data, header, finish(c->offset)).message);
        } catch (const CallError&) {
          return;  // the connection is gone: the call ends UNAVAILABLE with it (fail_open)
        }
      }
    }
  }

  // The next event of request `id` read so far (the others stay for poll()), or nullopt.
  std::optional<ClientEvent> take_event(std::uint64_t id) {
    for (auto it = pending.begin(); it != pending.end(); ++it) {
      if (it->request_id != id) continue;
      ClientEvent ev = std::move(*it);
      pending.erase(it);
      return ev;
    }
    return std::nullopt;
  }

  void cancel_request(std::uint64_t request_id) {
    auto it = open.find(request_id);
    if (it == open.end()) return;
    it->second.inputs.clear();  // no chunk after the Cancel: musterd would drop it anyway
    flatbuffers::FlatBufferBuilder fbb(64);
    auto body = wire::CreateCancel(fbb);
    send_message(request_id, wire::ClientBody::Cancel, body.Union(), fbb, it->second.on_behalf_of);
  }

  // Sends a query or admin command whose body `make_body` builds, and waits for its answer.
  template <class MakeBody>
  Json query(wire::ClientBody type, MakeBody make_body, const Assertion& as = {}) {
    auto id = next_id++;
    flatbuffers::FlatBufferBuilder fbb(128);
    flatbuffers::Offset<void> body = make_body(fbb).Union();
    query_replies[id] = Json();
    send_message(id, type, body, fbb, as);
    auto give_up = SteadyClock::now() + opt.grace;
    while (query_replies[id].is_null()) {
      auto now = SteadyClock::now();
      if (now >= give_up) {
        query_replies.erase(id);
        throw CallError(wire::ErrorCode::Unavailable,
                        fmt::format("no reply from musterd at {} within {} ms", opt.client_address,
                                    opt.grace.count()));
      }
      pump(std::chrono::duration_cast<std::chrono::milliseconds>(give_up - now));
    }
    Json out = std::move(query_replies[id]);
    query_replies.erase(id);
    if (out.is_object() && out.contains("$failure")) {
      auto code = error_code_from_name(out["$failure"]["code"].get<std::string>());
      throw CallError(code.value_or(wire::ErrorCode::Internal), out["$failure"]["message"].get<std::string>());
    }
    return out;
  }
};

Client::Client(ClientOptions options) : impl_(std::make_unique<Impl>(std::move(options))) {}
Client::~Client() = default;
Client::Client(Client&&) noexcept = default;
Client& Client::operator=(Client&&) noexcept = default;

std::uint64_t Client::submit(const std::string& node, const Map& inputs, const CallOptions& o) {
  impl_->flush_acks();
  return impl_->submit(node, inputs, o);
}

void Client::cancel(std::uint64_t request_id) { impl_->cancel_request(request_id); }

void Client::flush() { impl_->flush_held(); }

std::vector<ClientEvent> Client::poll(std::chrono::milliseconds wait) {
  impl_->flush_acks();  // what the last poll handed over: the application is done with it
  impl_->flush_held();
  if (impl_->pending.empty()) impl_->pump(wait);
  std::vector<ClientEvent> out(std::make_move_iterator(impl_->pending.begin()),
                               std::make_move_iterator(impl_->pending.end()));
  impl_->pending.clear();
  for (auto& ev : out) impl_->delivered_to_app(ev);  // acknowledged/credited (acks at the next call)
  return out;
}

std::size_t Client::open_requests() const { return impl_->open.size(); }

std::uint64_t Client::job_id(std::uint64_t request_id) const {
  auto it = impl_->open.find(request_id);
  return it == impl_->open.end() ? 0 : it->second.job_id;
}

int Client::fd() const { return impl_->socket.get(zmq::sockopt::fd); }

Map Client::call(const std::string& node, const Map& inputs, const CallOptions& o) {
  auto id = submit(node, inputs, o);
  for (;;) {
    // Take this request's events out of the pending queue; keep the others for poll().
    while (auto ev = impl_->take_event(id)) {
      if (auto* p = std::get_if<ProgressEvent>(&ev->body)) {
        if (o.on_progress) o.on_progress(p->step, p->total, p->message);
        continue;
      }
      impl_->delivered_to_app(*ev);  // acknowledged at the next call (or the end); items credited
      if (std::holds_alternative<ItemEvent>(ev->body)) continue;  // dropped: call() returns outputs
      if (auto* r = std::get_if<ResultEvent>(&ev->body)) return std::move(r->outputs);
      auto& f = std::get<FailureEvent>(ev->body);
      throw CallError(f.code, f.message);
    }
    impl_->pump(std::chrono::milliseconds(100));
  }
}

CallStream Client::stream(const std::string& node, const Map& inputs, CallOptions o) {
  if (!o.stream_window_items) o.stream_window_items = kStreamWindowItems;
  if (!o.stream_window_bytes) o.stream_window_bytes = kStreamWindowBytes;
  auto id = submit(node, inputs, o);
  return CallStream(*this, id, std::move(o));
}

// ---- CallStream --------------------------------------------------------------------------

CallStream::CallStream(Client& client, std::uint64_t id, CallOptions options)
    : client_(&client), id_(id), options_(std::move(options)) {}

CallStream::CallStream(CallStream&& other) noexcept
    : client_(std::exchange(other.client_, nullptr)),
      id_(other.id_),
      options_(std::move(other.options_)),
      items_(other.items_),
      done_(other.done_),
      outputs_(std::move(other.outputs_)),
      error_(std::move(other.error_)) {}

CallStream::~CallStream() {
  if (!client_ || done_) return;
  try {
    client_->impl_->cancel_request(id_);  // left before its end: the worker is told to stop
  } catch (...) {
  }
}

std::optional<Map> CallStream::next() {
  if (done_ || !client_) return std::nullopt;
  auto& impl = *client_->impl_;
  impl.flush_acks();
  for (;;) {
    while (auto ev = impl.take_event(id_)) {
      if (auto* p = std::get_if<ProgressEvent>(&ev->body)) {
        if (options_.on_progress) options_.on_progress(p->step, p->total, p->message);
        continue;
      }
      impl.delivered_to_app(*ev);
      if (auto* item = std::get_if<ItemEvent>(&ev->body)) {
        ++items_;
        return std::move(item->values);
      }
      done_ = true;
      if (auto* r = std::get_if<ResultEvent>(&ev->body)) {
        outputs_ = std::move(r->outputs);
      } else {
        auto& f = std::get<FailureEvent>(ev->body);
        error_.emplace(f.code, f.message);
      }
      return std::nullopt;
    }
    impl.pump(std::chrono::milliseconds(100));
  }
}

Map& CallStream::outputs() {
  while (next()) {
  }
  if (error_) throw *error_;
  if (!outputs_) throw CallError(wire::ErrorCode::Internal, "the stream has no outputs (moved from)");
  return *outputs_;
}

void CallStream::cancel() {
  if (client_ && !done_) client_->impl_->cancel_request(id_);
}

Json Client::nodes(const Assertion& as) { return impl_->query(wire::ClientBody::ListNodes, wire::CreateListNodes, as); }
Json Client::workers(const Assertion& as) {
  return impl_->query(wire::ClientBody::ListWorkers, wire::CreateListWorkers, as);
}
Json Client::status(const Assertion& as) { return impl_->query(wire::ClientBody::GetStatus, wire::CreateGetStatus, as); }
Json Client::node_stats(const Assertion& as) {
  return impl_->query(wire::ClientBody::GetNodeStats, wire::CreateGetNodeStats, as);
}

Json Client::job_get(std::uint64_t job_id, const Assertion& as) {
  return impl_->query(wire::ClientBody::JobGet, [&](flatbuffers::FlatBufferBuilder& fbb) {
    return wire::CreateJobGet(fbb, job_id);
  }, as);
}
Json Client::job_list(const Assertion& as) { return job_list_page({}, as)["jobs"]; }
Json Client::job_list_page(const JobListPage& page, const Assertion& as) {
  return impl_->query(
      wire::ClientBody::JobList,
      [&](flatbuffers::FlatBufferBuilder& fbb) { return wire::CreateJobList(fbb, page.limit, page.after_job_id); }, as);
}
Json Client::job_cancel(std::uint64_t job_id, const Assertion& as) {
  return impl_->query(wire::ClientBody::JobCancel, [&](flatbuffers::FlatBufferBuilder& fbb) {
    return wire::CreateJobCancel(fbb, job_id);
  }, as);
}
void Client::job_ack(const std::vector<std::uint64_t>& job_ids, const Assertion& as) {
  for (auto job : job_ids) impl_->unacked.emplace_back(job, as);
  impl_->flush_acks();  // sent now if connected, else on the next connection (or never: TTL)
}

Client::MintedToken Client::token_create(const std::string& role, std::uint64_t ttl_ms, std::uint32_t uses,
                                         const std::string& workspace, const std::string& name) {
  auto j = impl_->query(wire::ClientBody::TokenCreate, [&](flatbuffers::FlatBufferBuilder& fbb) {
    return wire::CreateTokenCreateDirect(fbb, role.c_str(), ttl_ms, uses,
                                         workspace.empty() ? nullptr : workspace.c_str(),
                                         name.empty() ? nullptr : name.c_str());
  });
  return MintedToken{j.value("token", ""), j.value("id", ""), j.value("expires_at", "")};
}
Json Client::token_list() { return impl_->query(wire::ClientBody::TokenList, wire::CreateTokenList); }
Json Client::token_revoke(const std::string& id) {
  return impl_->query(wire::ClientBody::TokenRevoke, [&](flatbuffers::FlatBufferBuilder& fbb) {
    return wire::CreateTokenRevokeDirect(fbb, id.c_str());
  });
}
Json Client::key_list() { return impl_->query(wire::ClientBody::KeyList, wire::CreateKeyList); }
Json Client::key_revoke(const std::string& id) {
  return impl_->query(wire::ClientBody::KeyRevoke, [&](flatbuffers::FlatBufferBuilder& fbb) {
    return wire::CreateKeyRevokeDirect(fbb, id.c_str());
  });
}

}  // namespace muster
