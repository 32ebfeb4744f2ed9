// pushes.cpp — what the gateway pushes to every WebSocket: node.status on a timer,
// services.updated and peers.updated when they change (and on a timer), and musterd going away
// (`error` UNAVAILABLE) and coming back (`connected` again).
#include <spdlog/spdlog.h>

#include "gateway.hpp"
#include "muster/gateway/envelope.hpp"

namespace muster::gateway {

void Gateway::send_to(WsPeer& peer, std::string_view type, const Json& payload) {
  metrics_.messages_sent(1);
  peer.send(std::make_shared<const std::string>(make_message(type, payload, unix_now())));
}

void Gateway::broadcast(std::string_view type, const Json& payload) {
  if (peers_.empty()) return;
  auto text = std::make_shared<const std::string>(make_message(type, payload, unix_now()));
  // A send may drop a slow peer, which leaves peers_ later (on its read's failure): iterate a copy.
  auto peers = peers_;
  metrics_.messages_sent(peers.size());
  for (auto& [id, p] : peers) p->send(text);
}

void Gateway::schedule(net::steady_timer& timer, double seconds, std::function<void()> what) {
  timer.expires_after(std::chrono::duration_cast<std::chrono::steady_clock::duration>(std::chrono::duration<double>(seconds)));
  timer.async_wait([this, &timer, seconds, what = std::move(what)](beast::error_code ec) mutable {
    if (ec || stopping_) return;
    what();
    schedule(timer, seconds, std::move(what));
  });
}

Json Gateway::node_status_payload() const {
  auto uptime = std::chrono::duration_cast<std::chrono::seconds>(std::chrono::steady_clock::now() - started_).count();
  Json counts = catalog_.counts();
  Json daemon = Json::object();
  if (last_.status.is_object())
    for (const char* k : {"version", "instance", "uptime_ms"})
      if (last_.status.contains(k)) daemon[k] = last_.status[k];
  Json stats = counts;
  stats["peer_id"] = instance_id_;
  stats["uptime_seconds"] = uptime;
  stats["services_count"] = counts["nodes"];
  stats["executions_open"] = executions_.size();
  stats["websockets"] = peers_.size();
  stats["calls"] = latency_.summary();
  stats["calls"]["completed"] = completed_;
  stats["calls"]["failed"] = failed_;
  stats["calls"]["cancelled"] = cancelled_;
  return Json{{"peer_id", instance_id_},
              {"uptime_seconds", uptime},
              {"workspace", opt_.workspace},
              {"daemon", daemon},
              {"stats", stats},
              {"known_peers", counts["workers"]},
              {"recent_failures", catalog_.recent_failures()}};
}

void Gateway::on_snapshot(Snapshot s) {
  if (stopping_) return;
  bool was_up = have_snapshot_ && last_.up;
  bool first = !have_snapshot_;
  have_snapshot_ = true;
  if (!s.up) {
    if (was_up || first) {
      spdlog::warn("musterd is unreachable: {}", s.error);
      last_.up = false;
      last_.error = s.error;
      broadcast("error", error_payload(fmt::format("musterd is unreachable: {}", s.error), codes::kUnavailable));
    }
    last_.up = false;
    last_.error = s.error;
    return;
  }
  last_up_ = std::chrono::steady_clock::now();
  catalog_.update(s.nodes, s.workers, unix_now());
  catalog_.update_stats(s.node_stats, std::chrono::duration_cast<std::chrono::milliseconds>(
                                          std::chrono::system_clock::now().time_since_epoch()).count());
  last_ = std::move(s);
  if (!was_up) {
    spdlog::info("musterd is reachable{}", first ? "" : " again");
    if (!first) broadcast("connected", Json{{"message", "Connected to WebSocket server"}, {"peer_id", instance_id_}});
    broadcast("node.status", node_status_payload());
    last_services_.clear();  // the lists are pushed again in full
    last_peers_.clear();
  }
  auto services = catalog_.services();
  auto peers = catalog_.peers();
  auto services_text = services.dump(), peers_text = peers.dump();
  if (services_text != last_services_) {
    last_services_ = services_text;
    broadcast("services.updated", services);
  }
  if (peers_text != last_peers_) {
    last_peers_ = peers_text;
    broadcast("peers.updated", peers);
  }
}

}  // namespace muster::gateway
