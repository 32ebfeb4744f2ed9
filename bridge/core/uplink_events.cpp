// uplink_events.cpp — see uplink_events.hpp.
#include "muster/bridge/uplink_events.hpp"

#include <fmt/format.h>

namespace muster::bridge {

std::vector<EventAction> UplinkEvents::on_event(RemoteEvent event, NodeStatus node, std::int64_t now_ms) {
  std::vector<EventAction> out;
  // Earlier events of this node first: served or ignored if its registration is settled.
  if (per_node_.count(event.node)) out = settle(event.node, node, now_ms);
  if (node.outputs) {
    out.push_back(serve(std::move(event), std::move(*node.outputs), -1));
    return out;
  }
  if (!node.registering) {
    out.push_back(ignore(std::move(event), std::string(kNotRegisteredByThisUplink), -1));
    return out;
  }
  if (known(event.uuid)) {
    out.push_back({EventAction::Kind::Duplicate, std::move(event)});
    return out;
  }
  auto it = per_node_.find(event.node);
  if (it != per_node_.end() && it->second >= opt_.max_held_per_node) {
    out.push_back(ignore(std::move(event),
                         fmt::format("its registration is on its way but {} of its events are held already "
                                     "(the most for one node)", it->second),
                         -1));
    return out;
  }
  if (held_.size() >= opt_.max_held) {
    out.push_back(ignore(std::move(event),
                         fmt::format("its registration is on its way but {} events are held already (the most "
                                     "in all)", held_.size()),
                         -1));
    return out;
  }
  ++per_node_[event.node];
  held_uuids_.insert(event.uuid);
  out.push_back({EventAction::Kind::Hold, RemoteEvent{event.node, Json(), event.uuid}});
  held_.push_back({std::move(event), now_ms});
  return out;
}

std::vector<EventAction> UplinkEvents::settle(const std::string& node, const NodeStatus& status,
                                              std::int64_t now_ms) {
  std::vector<EventAction> out;
  if (!status.outputs && status.registering) return out;  // another request is on its way
  for (auto& h : take(&node)) {
    std::int64_t held_ms = now_ms - h.since_ms;
    if (status.outputs) out.push_back(serve(std::move(h.event), *status.outputs, held_ms));
    else if (!status.refusal.empty())
      out.push_back(ignore(std::move(h.event),
                           fmt::format("held {} ms; the server refused its registration: {}", held_ms, status.refusal),
                           held_ms));
    else out.push_back(ignore(std::move(h.event), fmt::format("held {} ms; its registration failed", held_ms), held_ms));
  }
  return out;
}

std::vector<EventAction> UplinkEvents::expire(std::int64_t now_ms) {
  std::vector<EventAction> out;
  while (!held_.empty() && now_ms >= held_.front().since_ms + opt_.max_hold_ms) {
    Held h = std::move(held_.front());
    held_.pop_front();
    held_uuids_.erase(h.event.uuid);
    if (--per_node_[h.event.node] == 0) per_node_.erase(h.event.node);
    std::int64_t held_ms = now_ms - h.since_ms;
    out.push_back(ignore(std::move(h.event),
                         fmt::format("held {} ms, the longest an event waits for its node's registration", held_ms),
                         held_ms));
  }
  return out;
}

std::vector<EventAction> UplinkEvents::drop_held(const std::string& why, std::int64_t now_ms) {
  std::vector<EventAction> out;
  for (auto& h : take(nullptr)) {
    std::int64_t held_ms = now_ms - h.since_ms;
    out.push_back(ignore(std::move(h.event), fmt::format("held {} ms; {}", held_ms, why), held_ms));
  }
  return out;
}

void UplinkEvents::answered(const std::string& uuid) { in_flight_.erase(uuid); }

std::optional<std::int64_t> UplinkEvents::next_expiry() const {
  if (held_.empty()) return std::nullopt;
  return held_.front().since_ms + opt_.max_hold_ms;
}

EventAction UplinkEvents::serve(RemoteEvent event, std::vector<std::string> outputs, std::int64_t held_ms) {
  if (held_uuids_.count(event.uuid) || !in_flight_.insert(event.uuid).second)  // known(), one lookup less
    return {EventAction::Kind::Duplicate, std::move(event), {}, {}, held_ms};
  return {EventAction::Kind::Serve, std::move(event), std::move(outputs), {}, held_ms};
}

bool UplinkEvents::known(const std::string& uuid) const {
  return held_uuids_.count(uuid) > 0 || in_flight_.count(uuid) > 0;
}

EventAction UplinkEvents::ignore(RemoteEvent event, std::string why, std::int64_t held_ms) {
  return {EventAction::Kind::Ignore, std::move(event), {}, std::move(why), held_ms};
}

std::vector<UplinkEvents::Held> UplinkEvents::take(const std::string* node) {
  std::vector<Held> out;
  std::deque<Held> kept;
  for (auto& h : held_) {
    if (node && h.event.node != *node) {
      kept.push_back(std::move(h));
      continue;
    }
    held_uuids_.erase(h.event.uuid);
    out.push_back(std::move(h));
  }
  held_.swap(kept);
  if (node) per_node_.erase(*node);
  else per_node_.clear();
  return out;
}

}  // namespace muster::bridge
