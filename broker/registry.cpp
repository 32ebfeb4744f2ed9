// registry.cpp — worker sessions and the node index.
#include "registry.hpp"

#include <algorithm>
#include <utility>

#include "subscription_policy.hpp"

namespace muster::broker {

std::string_view worker_state_name(WorkerState s) {
  switch (s) {
    case WorkerState::Confirming: return "confirming";
    case WorkerState::Ready: return "ready";
    case WorkerState::Draining: return "draining";
  }
  return "?";
}

WorkerEntry* Registry::find(const std::string& worker_id) {
  auto it = workers_.find(worker_id);
  return it == workers_.end() ? nullptr : &it->second;
}

WorkerEntry& Registry::add(WorkerEntry entry) {
  entry.topic = worker_topic(entry.owner.identity, entry.id);
  auto [it, inserted] = workers_.emplace(entry.id, std::move(entry));
  if (inserted) ++per_identity_[it->second.owner.identity];
  index(it->second);
  return it->second;
}

void Registry::note(const WorkerEntry& w) {
  if (tracking_) changes_.workers.push_back(w.id);
}

void Registry::index(WorkerEntry& w) {
  note(w);
  w.indexed_in.clear();
  for (auto& spec : w.nodes) {
    note(NodeKey{w.owner.workspace, spec.name});
    auto& entry = nodes_[NodeKey{w.owner.workspace, spec.name}];
    // The first worker of a node sets its declaration; later ones declare the same (refused
    // otherwise at Attach), or replace it when no worker serves it any more.
    if (entry.workers.empty() && !(entry.spec == spec)) {
      entry.spec = spec;
      entry.check = InputCheck(spec);
    }
    if (std::find(entry.workers.begin(), entry.workers.end(), &w) == entry.workers.end())
      entry.workers.push_back(&w);
    w.indexed_in.push_back(&entry);
  }
}

void Registry::unindex(WorkerEntry& w) {
  note(w);
  w.indexed_in.clear();
  for (auto& spec : w.nodes) {
    NodeKey key{w.owner.workspace, spec.name};
    note(key);
    auto it = nodes_.find(key);
    if (it == nodes_.end()) continue;
    auto& ws = it->second.workers;
    auto before = ws.size();
    ws.erase(std::remove(ws.begin(), ws.end(), &w), ws.end());
    if (before && ws.empty() && !it->second.queue.empty()) unserved_.push_back(key);
    drop_if_unused(key);
  }
}

void Registry::update(WorkerEntry& w, std::vector<NodeSpec> nodes, std::uint32_t capacity) {
  unindex(w);
  w.nodes = std::move(nodes);
  w.capacity = capacity;
  index(w);
}

void Registry::remove(const std::string& worker_id) {
  auto it = workers_.find(worker_id);
  if (it == workers_.end()) return;
  unindex(it->second);
  auto count = per_identity_.find(it->second.owner.identity);
  if (count != per_identity_.end() && --count->second == 0) per_identity_.erase(count);
  workers_.erase(it);
}

std::size_t Registry::workers_of(const std::string& identity) const {
  auto it = per_identity_.find(identity);
  return it == per_identity_.end() ? 0 : it->second;
}

NodeEntry* Registry::node(std::string_view workspace, std::string_view name) {
  return const_cast<NodeEntry*>(std::as_const(*this).node(workspace, name));
}

const NodeEntry* Registry::node(std::string_view workspace, std::string_view name) const {
  if (const auto* last = last_found_.entry; last && last->first.second == name && last->first.first == workspace)
    return &last->second;
  auto it = nodes_.find(NodeKeyLess::View{workspace, name});
  if (it == nodes_.end()) return nullptr;
  last_found_.entry = &*it;
  return &it->second;
}

NodeEntry& Registry::node_for_queue(const NodeKey& key) {
  note(key);
  return nodes_[key];
}

void Registry::drop_if_unused(const NodeKey& key) {
  // Asked after every dispatch: found through node() (a repeat is two compares), erased rarely.
  const NodeEntry* entry = node(key);
  if (!entry || !entry->workers.empty() || !entry->queue.empty()) return;
  note(key);
  if (last_found_.entry && &last_found_.entry->second == entry) last_found_.entry = nullptr;
  nodes_.erase(key);
}

WorkerEntry* Registry::pick(NodeEntry& entry) {
  WorkerEntry* best = nullptr;
  for (auto* w : entry.workers) {
    if (w->state != WorkerState::Ready) continue;
    auto free = w->free_slots();
    if (free == 0) continue;
    if (!best || free > best->free_slots() ||
        (free == best->free_slots() && w->last_dispatch < best->last_dispatch))
      best = w;
  }
  return best;
}

}  // namespace muster::broker
