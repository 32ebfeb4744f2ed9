// watch.cpp — see watch.hpp.
#include "muster/watch.hpp"

#include <cstring>

#include <fmt/format.h>
#include <zmq.hpp>

#include "client_message.hpp"
#include "client_socket.hpp"
#include "listing_json.hpp"
#include "muster/endpoints.hpp"
#include "muster/frames.hpp"
#include "muster/messages.hpp"

namespace muster {

namespace {
using SteadyClock = std::chrono::steady_clock;
constexpr std::uint64_t kWatchRequestId = 1;  // the one request of this connection
}  // namespace

std::string watch_event_kind_name(wire::EventKind kind) {
  switch (kind) {
    case wire::EventKind::Snapshot: return "snapshot";
    case wire::EventKind::NodeAdded: return "node_added";
    case wire::EventKind::NodeChanged: return "node_changed";
    case wire::EventKind::NodeRemoved: return "node_removed";
    case wire::EventKind::WorkerJoined: return "worker_joined";
    case wire::EventKind::WorkerChanged: return "worker_changed";
    case wire::EventKind::WorkerLeft: return "worker_left";
    case wire::EventKind::CallState: return "call_state";
    case wire::EventKind::Overflow: return "overflow";
  }
  return fmt::format("unknown_{}", static_cast<int>(kind));
}

struct Watch::Impl {
  ClientOptions opt;
  WatchOptions what;
  zmq::context_t ctx{1};
  zmq::socket_t socket{ctx, zmq::socket_type::dealer};
  ConnectionMonitor monitor{ctx, socket};
  int links_up = 0;
  bool sent = false, cancel_sent = false, snapshot_seen = false;
  std::optional<CallError> ended;
  SteadyClock::time_point give_up;  // no snapshot by then: UNAVAILABLE

  Impl(ClientOptions o, WatchOptions w) : opt(std::move(o)), what(std::move(w)) {
    for (auto& ep : prepare_client_socket(opt, socket)) socket.connect(ep);  // as a Client
    give_up = SteadyClock::now() + opt.grace;
  }

  ~Impl() {
    if (sent && !ended && links_up > 0) {
      try {
        send_cancel();
        socket.set(zmq::sockopt::linger, 200);
      } catch (const std::exception&) {
      }
    }
  }

  void send_body(wire::ClientBody type, flatbuffers::Offset<void> body, flatbuffers::FlatBufferBuilder& fbb) {
    finish_client_message(fbb, kWatchRequestId, type, body, what.on_behalf_of);
    socket.send(take_message(fbb), zmq::send_flags::dontwait);
  }

  void send_watch() {
    flatbuffers::FlatBufferBuilder fbb(128);
    auto body = wire::CreateWatch(fbb, what.nodes, what.workers, what.calls);
    send_body(wire::ClientBody::Watch, body.Union(), fbb);
    sent = true;
  }

  void send_cancel() {
    flatbuffers::FlatBufferBuilder fbb(64);
    auto body = wire::CreateCancel(fbb);
    send_body(wire::ClientBody::Cancel, body.Union(), fbb);
    cancel_sent = true;
  }

  // Reads the monitor: the watch is sent once connected; a lost connection ends it.
  void read_monitor() {
    while (auto kind = monitor.next()) {
      if (kind == ZMQ_EVENT_CONNECTED) ++links_up;
      if (kind == ZMQ_EVENT_DISCONNECTED) {
        links_up = std::max(links_up - 1, 0);
        // musterd forgot this watch with the connection (or is gone): it has ended.
        if (sent && !ended)
          ended = CallError(wire::ErrorCode::Unavailable, "lost the connection to musterd; watch again");
      }
    }
    if (links_up > 0 && !sent && !ended) send_watch();
  }

  static Json event_json(const wire::Event* e) {
    Json j{{"seq", e->seq()}, {"kind", watch_event_kind_name(e->kind())}};
    if (e->kind() == wire::EventKind::Snapshot) {
      auto nodes = Json::array(), workers = Json::array(), calls = Json::array();
      if (e->nodes())
        for (auto* n : *e->nodes())
          if (auto x = node_info_json(n)) nodes.push_back(std::move(*x));
      if (e->workers())
        for (auto* w : *e->workers()) workers.push_back(worker_info_json(w));
      if (e->calls())
        for (auto* c : *e->calls()) calls.push_back(call_info_json(c));
      j["nodes"] = std::move(nodes);
      j["workers"] = std::move(workers);
      j["calls"] = std::move(calls);
      return j;
    }
    if (e->node())
      if (auto x = node_info_json(e->node())) j["node"] = std::move(*x);
    if (e->worker()) j["worker"] = worker_info_json(e->worker());
    if (e->call()) j["call"] = call_info_json(e->call());
    return j;
  }

  // One reply read from the socket: an event, or the end.
  std::optional<Json> handle(zmq::message_t& m) {
    auto* reply = read_client_reply(bytes_of(m));
    if (!reply || reply->request_id() != kWatchRequestId) return std::nullopt;  // not ours
    if (auto* f = reply->body_as_Failure()) {
      ended = CallError(f->code(), f->message() ? f->message()->str() : "the watch ended");
      return std::nullopt;
    }
    auto* e = reply->body_as_Event();
    if (!e) return std::nullopt;
    if (e->kind() == wire::EventKind::Snapshot) snapshot_seen = true;
    return event_json(e);
  }

  std::optional<Json> next(std::chrono::milliseconds wait) {
    auto until = SteadyClock::now() + wait;
    for (;;) {
      read_monitor();
      zmq::message_t m;
      while (socket.recv(m, zmq::recv_flags::dontwait)) {
        while (m.more()) (void)socket.recv(m, zmq::recv_flags::none);  // the reply is the last frame
        if (auto j = handle(m)) return j;
        if (ended) break;
      }
      if (ended) throw *ended;
      if (!snapshot_seen && SteadyClock::now() >= give_up)
        throw CallError(wire::ErrorCode::Unavailable,
                        fmt::format("musterd at {} did not answer the watch (is it running?)", opt.client_address));
      auto now = SteadyClock::now();
      if (now >= until) return std::nullopt;
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(until - now);
      if (!snapshot_seen)
        left = std::min(left, std::chrono::duration_cast<std::chrono::milliseconds>(give_up - now) +
                                  std::chrono::milliseconds(1));
      zmq::pollitem_t items[] = {{socket.handle(), 0, ZMQ_POLLIN, 0}, {monitor.handle(), 0, ZMQ_POLLIN, 0}};
      zmq::poll(items, 2, std::min(left, std::chrono::milliseconds(250)));
    }
  }
};

Watch::Watch(ClientOptions client, WatchOptions what)
    : impl_(std::make_unique<Impl>(std::move(client), std::move(what))) {}
Watch::~Watch() = default;
Watch::Watch(Watch&&) noexcept = default;
Watch& Watch::operator=(Watch&&) noexcept = default;

std::optional<Json> Watch::next(std::chrono::milliseconds wait) { return impl_->next(wait); }

void Watch::cancel() {
  impl_->read_monitor();
  if (impl_->sent && !impl_->cancel_sent && !impl_->ended) impl_->send_cancel();
}

int Watch::fd() const { return impl_->socket.get(zmq::sockopt::fd); }

}  // namespace muster
