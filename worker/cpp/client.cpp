// client.cpp — the C++ client library. See client.hpp.
#include "muster/client.hpp"

#include <cstring>
#include <deque>
#include <unordered_map>

#include <fmt/format.h>
#include <zmq.hpp>

#include "muster/endpoints.hpp"
#include "muster/align.hpp"
#include "muster/batch.hpp"
#include "muster/frames.hpp"
#include "muster/messages.hpp"
#include "muster/node_spec.hpp"

namespace muster {

namespace {
using SteadyClock = std::chrono::steady_clock;
std::string str(const flatbuffers::String* s) { return s ? s->str() : std::string(); }

// Held Submits (ClientOptions::coalesce_submits): a larger one goes alone; a batch is sent once
// it holds kBatchMaxBytes (PROTOCOL.md §2.2).
constexpr std::size_t kBatchItemMax = 16 * 1024;
constexpr std::size_t kBatchMaxBytes = 64 * 1024;

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
  zmq::socket_t monitor{ctx, zmq::socket_type::pair};
  std::uint64_t next_id = 1;
  bool connected = false;
  bool lost_connection = false;
  struct Open {
    SteadyClock::time_point give_up;
    Assertion on_behalf_of;  // the Submit's, repeated on its Cancel
  };
  std::unordered_map<std::uint64_t, Open> open;
  std::deque<ClientEvent> pending;           // events read while waiting for something else
  std::unordered_map<std::uint64_t, Json> query_replies;
  MessageBuilders builders;  // submit's: reused for small calls (transport/frames.hpp)
  // Batches (PROTOCOL.md §2.2): the daemon sent one on this connection (so it reads them too);
  // false again after a disconnect, since the daemon that answers next may be an older one.
  bool daemon_batches = false;
  BatchWriter held;                       // Submits held by coalesce_submits
  std::vector<std::uint64_t> held_ids;    // their request ids, in order

  explicit Impl(ClientOptions o) : opt(std::move(o)) {
    if (opt.client_address.empty()) opt.client_address = default_endpoint(SocketRole::Client);
    SecureOptions secure = opt.secure;
    secure.insecure = secure.insecure || opt.insecure;
    auto curve = secure_connect_keys(secure, {opt.client_address});
    check_endpoint(opt.client_address, curve.has_value(), secure.insecure);
    if (curve) apply_curve(socket, *curve);
    // Not ZMQ_IMMEDIATE: with it, libzmq drops replies already received but not yet read
    // when the daemon disconnects right after sending them (e.g. at shutdown).
    socket.set(zmq::sockopt::linger, 0);
    socket.set(zmq::sockopt::sndhwm, 100000);
    socket.set(zmq::sockopt::rcvhwm, 100000);
    auto monitor_endpoint = fmt::format("inproc://muster-client-monitor-{}", static_cast<void*>(this));
    if (zmq_socket_monitor(socket.handle(), monitor_endpoint.c_str(),
                           ZMQ_EVENT_CONNECTED | ZMQ_EVENT_DISCONNECTED) != 0)
      throw zmq::error_t();
    monitor.set(zmq::sockopt::linger, 0);
    monitor.connect(monitor_endpoint);
    socket.connect(opt.client_address);
  }

  // Reads pending connection events. Returns true if the connection was lost since last time.
  bool read_monitor() {
    bool lost = false;
    zmq::message_t event, address;
    while (monitor.recv(event, zmq::recv_flags::dontwait)) {
      if (event.more()) (void)monitor.recv(address, zmq::recv_flags::none);
      std::uint16_t kind = 0;
      if (event.size() >= 2) std::memcpy(&kind, event.data(), 2);
      if (kind == ZMQ_EVENT_CONNECTED) connected = true;
      if (kind == ZMQ_EVENT_DISCONNECTED) {
        connected = false;
        daemon_batches = false;
        // Held Submits are open requests: fail_open ends them UNAVAILABLE with the rest.
        held.clear();
        held_ids.clear();
        lost = true;
      }
    }
    return lost;
  }

  void send(flatbuffers::FlatBufferBuilder& fbb) {
    if (!connected) {
      // Wait for the connection, so that a missing daemon is reported quickly.
      auto until = SteadyClock::now() + std::chrono::milliseconds(3000);
      while (!connected && SteadyClock::now() < until) {
        zmq::pollitem_t item{monitor.handle(), 0, ZMQ_POLLIN, 0};
        zmq::poll(&item, 1, std::chrono::milliseconds(50));
        if (read_monitor()) fail_open("lost the connection to musterd");
      }
      if (!connected)
        throw CallError(wire::ErrorCode::Unavailable,
                        fmt::format("cannot reach musterd at {} (is it running?)", opt.client_address));
    }
    flush_held();  // what is held goes first: one connection's order holds
    if (!socket.send(take_message(fbb), zmq::send_flags::dontwait))
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
    auto bytes = held.count() == 1 ? held.only() : [&] {
      auto& fbb = held.finish(BatchRoot::Client);
      return std::span<const std::uint8_t>(fbb.GetBufferPointer(), fbb.GetSize());
    }();
    if (!socket.send(zmq::message_t(bytes.data(), bytes.size()), zmq::send_flags::dontwait))
      for (auto id : held_ids)
        if (open.erase(id))
          pending.push_back(ClientEvent{id, FailureEvent{wire::ErrorCode::Unavailable,
                                                         fmt::format("cannot send to musterd at {}: too many messages queued",
                                                                     opt.client_address)}});
    held.clear();
    held_ids.clear();
  }

  // Every open request (and query) ends with UNAVAILABLE: the daemon that held it is gone, and
  // one that comes back on the same address does not know it.
  void fail_open(const std::string& why) {
    for (auto& [id, o] : open)
      pending.push_back(ClientEvent{id, FailureEvent{wire::ErrorCode::Unavailable,
                                                     fmt::format("{} at {} while the request was open",
                                                                 why, opt.client_address)}});
    open.clear();
    for (auto& [id, reply] : query_replies)
      if (reply.is_null())
        reply = Json{{"$failure", {{"code", "UNAVAILABLE"}, {"message", why}}}};
  }

  void send_message(std::uint64_t id, wire::ClientBody type, flatbuffers::Offset<void> body,
                    flatbuffers::FlatBufferBuilder& fbb, const Assertion& as = {}) {
    finish_client_message(id, type, body, fbb, as);
    send(fbb);
  }

  void finish_client_message(std::uint64_t id, wire::ClientBody type, flatbuffers::Offset<void> body,
                             flatbuffers::FlatBufferBuilder& fbb, const Assertion& as) {
    flatbuffers::Offset<wire::OnBehalfOf> asserted;
    if (as)
      asserted = wire::CreateOnBehalfOfDirect(fbb, as->user.c_str(), as->workspace.c_str(),
                                              as->role.empty() ? nullptr : as->role.c_str());
    wire::ClientMessageBuilder b(fbb);
    b.add_request_id(id);
    b.add_body_type(type);
    b.add_body(body);
    if (as) b.add_on_behalf_of(asserted);
    fbb.Finish(b.Finish(), wire::ClientMessageIdentifier());
  }

  std::uint64_t submit(const std::string& node, const Map& inputs, const CallOptions& o) {
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
    s.add_batch_replies(true);  // handle() opens a Batch of replies (PROTOCOL.md §2.2)
    auto body = s.Finish();
    finish_client_message(id, wire::ClientBody::Submit, body.Union(), fbb, o.on_behalf_of);
    // The client's guard against a daemon that never answers: its deadline plus grace. With no
    // timeout the node's own default applies, which the client does not know: then only a
    // lost connection (the monitor) ends the wait early.
    open[id] = Open{o.timeout_ms ? SteadyClock::now() + std::chrono::milliseconds(o.timeout_ms) + opt.grace
                                 : SteadyClock::time_point::max(),
                    o.on_behalf_of};
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
    zmq::pollitem_t items[] = {{socket.handle(), 0, ZMQ_POLLIN, 0}, {monitor.handle(), 0, ZMQ_POLLIN, 0}};
    try {
      zmq::poll(items, 2, wait);
    } catch (const zmq::error_t& e) {
      if (e.num() != EINTR) throw;  // a signal: let the caller look at it
    }
    // Connection events first, then the replies: a reply that arrived before a disconnect is
    // in the socket's queue by the time its event is seen, so it is still read below.
    bool lost = read_monitor();
    zmq::message_t m;
    while (socket.recv(m, zmq::recv_flags::dontwait)) {
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
    if (lost) fail_open("lost the connection to musterd");
    auto now = SteadyClock::now();
    for (auto it = open.begin(); it != open.end();) {
      if (now >= it->second.give_up) {
        pending.push_back(ClientEvent{it->first, FailureEvent{wire::ErrorCode::Unavailable,
                                                              "no reply from musterd in time (daemon down or restarted?)"}});
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
      case wire::ReplyBody::Result: {
        if (!open.erase(id)) return;
        try {
          auto* r = reply->body_as_Result();
          if (r->outputs_in_frame() && !frame)
            throw std::runtime_error("outputs_in_frame set but no payload frame came");
          Map outputs;
          if (r->outputs_in_frame()) {
            auto owner = std::make_shared<zmq::message_t>(std::move(*frame));
            outputs = decode_values(bytes_of(*owner), owner);
          } else {
            outputs = decode_values(payload_bytes(r->outputs()));
          }
          pending.push_back(ClientEvent{id, ResultEvent{std::move(outputs)}});
        } catch (const std::exception& e) {
          pending.push_back(ClientEvent{id, FailureEvent{wire::ErrorCode::BadMessage, e.what()}});
        }
        return;
      }
      case wire::ReplyBody::Failure: {
        auto* f = reply->body_as_Failure();
        if (query_replies.contains(id)) {
          query_replies[id] = Json{{"$failure", {{"code", error_code_name(f->code())}, {"message", str(f->message())}}}};
          return;
        }
        if (!open.erase(id)) return;
        pending.push_back(ClientEvent{id, FailureEvent{f->code(), str(f->message())}});
        return;
      }
      case wire::ReplyBody::Accepted: return;
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

  static Json node_list_json(const wire::NodeList* list) {
    auto out = Json::array();
    if (!list || !list->nodes()) return out;
    for (auto* n : *list->nodes()) {
      // A spec with no JSON form (a string not UTF-8, a non-finite default) is left out, so
      // one worker cannot break the listing for everyone; musterd refuses such specs at
      // attach, so only an older or foreign daemon sends one.
      Json j;
      try {
        j = to_json(decode_node_spec(n->spec()));
      } catch (const std::exception&) {
        continue;
      }
      j["workspace"] = str(n->workspace());
      j["workers"] = n->workers();
      j["capacity"] = n->capacity();
      j["in_flight"] = n->in_flight();
      j["queue_depth"] = n->queue_depth();
      out.push_back(std::move(j));
    }
    return out;
  }

  static Json worker_list_json(const wire::WorkerList* list) {
    auto out = Json::array();
    if (!list || !list->workers()) return out;
    for (auto* w : *list->workers()) {
      auto nodes = Json::array();
      if (w->nodes())
        for (auto* n : *w->nodes()) nodes.push_back(n->str());
      out.push_back(Json{{"worker_id", str(w->worker_id())}, {"hostname", str(w->hostname())},
                         {"sdk", str(w->sdk())}, {"pid", w->pid()}, {"state", str(w->state())},
                         {"capacity", w->capacity()}, {"in_flight", w->in_flight()},
                         {"nodes", nodes}, {"workspace", str(w->workspace())},
                         {"identity", str(w->identity())}, {"attached_ms", w->attached_ms()},
                         {"last_seen_ms", w->last_seen_ms()}});
    }
    return out;
  }

  static Json status_json(const wire::StatusReport* s) {
    auto failures = code_counts_json(s->failures());
    return Json{{"version", str(s->version())}, {"instance", str(s->instance())},
                {"uptime_ms", s->uptime_ms()}, {"workers", s->workers()}, {"nodes", s->nodes()},
                {"queued", s->queued()}, {"in_flight", s->in_flight()},
                {"submitted", s->submitted()}, {"completed", s->completed()},
                {"failed", s->failed()}, {"failures", failures},
                {"redispatched", s->redispatched()}, {"rate_1m", s->rate_1m()}};
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
  return impl_->submit(node, inputs, o);
}

void Client::cancel(std::uint64_t request_id) {
  auto it = impl_->open.find(request_id);
  if (it == impl_->open.end()) return;
  flatbuffers::FlatBufferBuilder fbb(64);
  auto body = wire::CreateCancel(fbb);
  impl_->send_message(request_id, wire::ClientBody::Cancel, body.Union(), fbb, it->second.on_behalf_of);
}

void Client::flush() { impl_->flush_held(); }

std::vector<ClientEvent> Client::poll(std::chrono::milliseconds wait) {
  impl_->flush_held();
  if (impl_->pending.empty()) impl_->pump(wait);
  std::vector<ClientEvent> out(std::make_move_iterator(impl_->pending.begin()),
                               std::make_move_iterator(impl_->pending.end()));
  impl_->pending.clear();
  return out;
}

std::size_t Client::open_requests() const { return impl_->open.size(); }

int Client::fd() const { return impl_->socket.get(zmq::sockopt::fd); }

Map Client::call(const std::string& node, const Map& inputs, const CallOptions& o) {
  auto id = submit(node, inputs, o);
  for (;;) {
    // Take this request's events out of the pending queue; keep the others for poll().
    auto& pending = impl_->pending;
    for (auto it = pending.begin(); it != pending.end();) {
      if (it->request_id != id) {
        ++it;
        continue;
      }
      ClientEvent ev = std::move(*it);
      it = pending.erase(it);
      if (auto* p = std::get_if<ProgressEvent>(&ev.body)) {
        if (o.on_progress) o.on_progress(p->step, p->total, p->message);
        continue;
      }
      if (auto* r = std::get_if<ResultEvent>(&ev.body)) return std::move(r->outputs);
      auto& f = std::get<FailureEvent>(ev.body);
      throw CallError(f.code, f.message);
    }
    impl_->pump(std::chrono::milliseconds(100));
  }
}

Json Client::nodes(const Assertion& as) { return impl_->query(wire::ClientBody::ListNodes, wire::CreateListNodes, as); }
Json Client::workers(const Assertion& as) {
  return impl_->query(wire::ClientBody::ListWorkers, wire::CreateListWorkers, as);
}
Json Client::status(const Assertion& as) { return impl_->query(wire::ClientBody::GetStatus, wire::CreateGetStatus, as); }
Json Client::node_stats(const Assertion& as) {
  return impl_->query(wire::ClientBody::GetNodeStats, wire::CreateGetNodeStats, as);
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
