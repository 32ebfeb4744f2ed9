// pushes.cpp — what the gateway pushes to every WebSocket: node.status on a timer,
// services.updated and peers.updated when they change (and on a timer), and musterd going away
// (`error` UNAVAILABLE) and coming back (`connected` again).
#include <spdlog/spdlog.h>

#include "gateway.hpp"
#include "muster/gateway/envelope.hpp"

namespace muster::gateway {

void Gateway::send_to(WsPeer& peer, std::string_view type, const Json& payload) {
  metrics_.messages_sent(1);
  out_.clear();
  append_message(out_, type, payload, unix_now());
  peer.send(out_);
}

void Gateway::broadcast(std::string_view type, const Json& payload) {
  if (peers_.empty()) return;
  auto text = make_message(type, payload, unix_now());
  // A send may drop a slow peer, which leaves peers_ later (on its read's failure): iterate a copy.
  auto peers = peers_;
  metrics_.messages_sent(peers.size());
  for (auto& [id, p] : peers) p->send(text);
}

void Gateway::broadcast_to(const std::string& workspace, std::string_view type, const Json& payload) {
  std::optional<std::string> text;
  auto peers = peers_;
  for (auto& [id, p] : peers) {
    if (p->workspace != workspace) continue;
    if (!text) text = make_message(type, payload, unix_now());
    p->send(*text);
  }
}

void Gateway::send_state(WsPeer& peer) {
  auto& ws = workspace(peer.workspace);
  if (!ws.error.empty()) send_to(peer, "error", error_payload(ws.error, ws.code));
  send_to(peer, "node.status", node_status_payload(peer.workspace));
  send_to(peer, "services.updated", ws.catalog.services());
  send_to(peer, "peers.updated", ws.catalog.peers());
}

void Gateway::schedule(net::steady_timer& timer, double seconds, std::function<void()> what) {
  timer.expires_after(std::chrono::duration_cast<std::chrono::steady_clock::duration>(std::chrono::duration<double>(seconds)));
  timer.async_wait([this, &timer, seconds, what = std::move(what)](beast::error_code ec) mutable {
    if (ec || stopping_) return;
    what();
    schedule(timer, seconds, std::move(what));
  });
}

Gateway::Workspace& Gateway::workspace(const std::string& name) {
  auto it = workspaces_.find(name);
  if (it == workspaces_.end())
    it = workspaces_.emplace(name, Workspace{Catalog(name, static_cast<std::int64_t>(opt_.inactive_ttl_s))}).first;
  return it->second;
}

Json Gateway::node_status_payload(const std::string& name) {
  auto& ws = workspace(name);
  auto uptime = std::chrono::duration_cast<std::chrono::seconds>(std::chrono::steady_clock::now() - started_).count();
  Json counts = ws.catalog.counts();
  Json daemon = Json::object();
  if (ws.status.is_object())
    for (const char* k : {"version", "instance", "uptime_ms"})
      if (ws.status.contains(k)) daemon[k] = ws.status[k];
  std::size_t open = 0, sockets = 0;
  for (auto& [id, ex] : executions_) open += ex.workspace == name;
  for (auto& [id, p] : peers_) sockets += p->workspace == name;
  Json stats = counts;
  stats["peer_id"] = instance_id_;
  stats["uptime_seconds"] = uptime;
  stats["services_count"] = counts["nodes"];
  stats["executions_open"] = open;
  stats["websockets"] = sockets;
  stats["calls"] = ws.latency.summary();
  stats["calls"]["completed"] = ws.completed;
  stats["calls"]["failed"] = ws.failed;
  stats["calls"]["cancelled"] = ws.cancelled;
  return Json{{"peer_id", instance_id_},
              {"uptime_seconds", uptime},
              {"workspace", name},
              {"daemon", daemon},
              {"stats", stats},
              {"known_peers", counts["workers"]},
              {"recent_failures", ws.catalog.recent_failures()}};
}

void Gateway::on_snapshot(Snapshot s) {
  if (stopping_) return;
  bool was_up = have_snapshot_ && last_.up;
  bool first = !have_snapshot_;
  have_snapshot_ = true;
  if (!s.up) {
    if (was_up || first) {
      spdlog::warn("musterd is unreachable: {}", s.error);
      broadcast("error", error_payload(fmt::format("musterd is unreachable: {}", s.error), codes::kUnavailable));
    }
    last_.up = false;
    last_.error = s.error;
    // The calls it carried cannot be answered any more: a fresh connection once musterd is back.
    calls_->reset(fmt::format("connection to musterd lost: {}", s.error));
    return;
  }
  calls_->connect();  // musterd answers (and the poller enrolled first if it had to)
  last_up_ = std::chrono::steady_clock::now();
  last_.up = true;
  last_.error.clear();
  if (!was_up) {
    spdlog::info("musterd is reachable{}", first ? "" : " again");
    if (!first) broadcast("connected", Json{{"message", "Connected to WebSocket server"}, {"peer_id", instance_id_}});
    for (auto& [name, ws] : workspaces_) {
      ws.last_services.clear();  // the lists are pushed again in full
      ws.last_peers.clear();
    }
  }
  for (auto& [name, view] : s.workspaces) {
    auto& ws = workspace(name);
    if (view.error != ws.error && !view.error.empty()) {
      spdlog::warn("musterd refuses workspace {}: {}", name, view.error);
      broadcast_to(name, "error", error_payload(view.error, view.code));
    }
    ws.error = view.error;
    ws.code = view.code;
    ws.catalog.update(view.nodes, view.workers, unix_now());
    ws.catalog.update_stats(view.node_stats, std::chrono::duration_cast<std::chrono::milliseconds>(
                                                 std::chrono::system_clock::now().time_since_epoch()).count());
    ws.status = std::move(view.status);
    if (!was_up) broadcast_to(name, "node.status", node_status_payload(name));
    auto services = ws.catalog.services();
    auto peers = ws.catalog.peers();
    auto services_text = services.dump(), peers_text = peers.dump();
    if (services_text != ws.last_services) {
      ws.last_services = services_text;
      broadcast_to(name, "services.updated", services);
    }
    if (peers_text != ws.last_peers) {
      ws.last_peers = peers_text;
      broadcast_to(name, "peers.updated", peers);
    }
  }
}

}  // namespace muster::gateway
