// uplink_registry.cpp — see uplink_registry.hpp.
#include "muster/bridge/uplink_registry.hpp"

#include <algorithm>

namespace muster::bridge {

RegisterRequest register_request_from_node(const Json& node) {
  RegisterRequest r;
  if (!node.is_object()) return r;
  if (auto n = node.find("name"); n != node.end() && n->is_string()) r.name = n->get<std::string>();
  auto names = [](const Json& ports, std::vector<std::string>& out) {
    if (!ports.is_array()) return;
    for (auto& p : ports) {
      if (p.is_object() && p.contains("name") && p["name"].is_string()) out.push_back(p["name"].get<std::string>());
      else if (p.is_string()) out.push_back(p.get<std::string>());
    }
  };
  if (auto i = node.find("inputs"); i != node.end()) names(*i, r.inputs);
  if (auto o = node.find("outputs"); o != node.end()) names(*o, r.outputs);
  return r;
}

bool UplinkRegistry::selected(const std::string& name) const {
  if (opt_.patterns.empty()) return true;
  return std::any_of(opt_.patterns.begin(), opt_.patterns.end(),
                     [&](const std::string& p) { return glob_match(p, name); });
}

std::vector<std::string> UplinkRegistry::update(const std::vector<RegisterRequest>& broker_nodes,
                                                std::int64_t now_ms) {
  std::vector<std::string> changed;
  std::map<std::string, bool> was_present;
  for (auto& [name, e] : nodes_) {
    was_present[name] = e.present;
    e.present = false;
  }
  for (auto& n : broker_nodes) {
    if (n.name.empty() || !selected(n.name)) continue;
    auto [it, inserted] = nodes_.try_emplace(n.name);
    Entry& e = it->second;
    bool ports_changed = !inserted && (e.spec.inputs != n.inputs || e.spec.outputs != n.outputs);
    if (inserted || ports_changed || !was_present[n.name]) changed.push_back(n.name);
    if (ports_changed) {
      e.rejected_until_ms = 0;  // a new declaration deserves a new try
      e.changed = true;         // and registering at once (the old registration stays answered)
    }
    e.spec = n;
    e.present = true;
  }
  // Forget nodes that are gone and whose last registration has lapsed on the server.
  for (auto it = nodes_.begin(); it != nodes_.end();) {
    const Entry& e = it->second;
    bool lapsed = !live(e, now_ms);
    if (!e.present && lapsed && !e.registering) it = nodes_.erase(it);
    else ++it;
  }
  return changed;
}

bool UplinkRegistry::is_due(const Entry& e, std::int64_t now_ms, bool force) const {
  if (!e.present) return false;
  if (now_ms < e.rejected_until_ms) return false;
  if (force || e.last_ok_ms < 0 || e.changed) return true;
  return now_ms >= e.last_ok_ms + opt_.interval_ms;
}

std::vector<RegisterRequest> UplinkRegistry::due(std::int64_t now_ms, bool force) const {
  std::vector<RegisterRequest> out;
  for (auto& [name, e] : nodes_)
    if (is_due(e, now_ms, force)) out.push_back(e.spec);
  return out;
}

std::optional<std::int64_t> UplinkRegistry::next_due(std::int64_t now_ms) const {
  std::optional<std::int64_t> out;
  for (auto& [name, e] : nodes_) {
    if (!e.present) continue;
    std::int64_t t = e.last_ok_ms < 0 || e.changed ? now_ms : e.last_ok_ms + opt_.interval_ms;
    t = std::max(t, e.rejected_until_ms);
    if (!out || t < *out) out = t;
  }
  return out;
}

void UplinkRegistry::on_registering(const std::string& name) {
  if (auto it = nodes_.find(name); it != nodes_.end()) it->second.registering = true;
}

bool UplinkRegistry::on_registered(const std::string& name, std::int64_t now_ms) {
  auto it = nodes_.find(name);
  if (it == nodes_.end()) return false;
  bool fresh = !live(it->second, now_ms) || it->second.ok_outputs != it->second.spec.outputs;
  it->second.last_ok_ms = now_ms;
  it->second.ok_outputs = it->second.spec.outputs;
  it->second.changed = false;
  it->second.rejected_until_ms = 0;
  it->second.last_error.clear();
  it->second.registering = false;
  return fresh;
}

void UplinkRegistry::on_rejected(const std::string& name, const std::string& error, std::int64_t now_ms) {
  auto it = nodes_.find(name);
  if (it == nodes_.end()) return;
  it->second.rejected_until_ms = now_ms + opt_.rejected_retry_ms;
  it->second.last_error = error;
  it->second.registering = false;
}

void UplinkRegistry::on_register_failed(const std::string& name) {
  auto it = nodes_.find(name);
  if (it == nodes_.end()) return;
  it->second.last_error.clear();
  it->second.registering = false;
}

std::optional<std::vector<std::string>> UplinkRegistry::outputs_for(const std::string& node, std::int64_t now_ms) const {
  auto it = nodes_.find(node);
  if (it == nodes_.end()) return std::nullopt;
  if (live(it->second, now_ms)) return it->second.ok_outputs;
  return std::nullopt;
}

NodeStatus UplinkRegistry::status(const std::string& node, std::int64_t now_ms) const {
  NodeStatus s;
  auto it = nodes_.find(node);
  if (it == nodes_.end()) return s;
  const Entry& e = it->second;
  if (live(e, now_ms)) s.outputs = e.ok_outputs;
  s.registering = e.registering;
  s.refusal = e.last_error;
  return s;
}

bool UplinkRegistry::live(const Entry& e, std::int64_t now_ms) const {
  return e.last_ok_ms >= 0 && now_ms < e.last_ok_ms + opt_.server_ttl_ms;
}

std::vector<std::string> UplinkRegistry::present() const {
  std::vector<std::string> out;
  for (auto& [name, e] : nodes_)
    if (e.present) out.push_back(name);
  return out;
}

std::size_t UplinkRegistry::registered_count(std::int64_t now_ms) const {
  std::size_t n = 0;
  for (auto& [name, e] : nodes_)
    if (live(e, now_ms)) ++n;
  return n;
}

}  // namespace muster::bridge
