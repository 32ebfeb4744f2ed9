// watchers.cpp — see watchers.hpp.
#include "watchers.hpp"

#include <tuple>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

namespace muster::broker {

namespace {
std::tuple<std::string, std::string, std::string> caller_key(const Caller& c) {
  return {c.workspace, c.identity, c.name};
}

// What a NodeChanged / WorkerChanged reports: the declaration and who serves it, not the load
// (in_flight, queue_depth, last_seen_ms move with every call and every ping).
bool same_node(const NodeSnapshot& a, const NodeSnapshot& b) {
  return a.spec == b.spec && a.workers == b.workers && a.capacity == b.capacity;
}
bool same_worker(const WorkerSnapshot& a, const WorkerSnapshot& b) {
  return std::tie(a.state, a.capacity, a.nodes, a.hostname, a.sdk, a.pid, a.identity, a.workspace, a.direct) ==
         std::tie(b.state, b.capacity, b.nodes, b.hostname, b.sdk, b.pid, b.identity, b.workspace, b.direct);
}

std::shared_ptr<const WatchContent> one_node(NodeSnapshot n) {
  auto c = std::make_shared<WatchContent>();
  c->nodes.push_back(std::move(n));
  return c;
}
std::shared_ptr<const WatchContent> one_worker(WorkerSnapshot w) {
  auto c = std::make_shared<WatchContent>();
  c->workers.push_back(std::move(w));
  return c;
}
}  // namespace

Watchers::Watchers(std::size_t backlog, std::size_t per_connection)
    : backlog_limit_(backlog ? backlog : 1), per_connection_(per_connection) {}

void Watchers::refuse(const Peer& peer, std::uint64_t request_id, ErrorCode code, std::string why,
                      std::vector<Action>& out) {
  out.push_back(ReplyToClient{peer, request_id, FailureBody{code, std::move(why)}, true});
}

void Watchers::open(const std::string& connection, const Peer& peer, std::uint64_t request_id,
                    const Caller& who, WatchScope scope, std::vector<Action>& out) {
  if (!scope.any())
    return refuse(peer, request_id, ErrorCode::InvalidRequest,
                  "a Watch must ask for nodes, workers or calls", out);
  Key key{connection, request_id};
  if (watches_.contains(key))
    return refuse(peer, request_id, ErrorCode::InvalidRequest,
                  fmt::format("request id {} is already open on this connection", request_id), out);
  auto& count = per_connection_count_[connection];
  if (per_connection_ && count >= per_connection_)
    return refuse(peer, request_id, ErrorCode::QueueFull,
                  fmt::format("this connection has {} watches open (limit {})", count, per_connection_), out);
  ++count;
  Watch w;
  w.peer = peer;
  w.request_id = request_id;
  w.who = who;
  w.scope = scope;
  watches_.emplace(key, std::move(w));
  if (scope.nodes || scope.workers) ++workspaces_[who.workspace].watches;  // its view: at publish
  if (scope.calls) ++call_watchers_[caller_key(who)];
  spdlog::debug("watch opened request_id={} workspace={} nodes={} workers={} calls={}", request_id,
                who.workspace, scope.nodes, scope.workers, scope.calls);
}

void Watchers::forget(std::map<Key, Watch>::iterator it) {
  const Watch& w = it->second;
  if (w.scope.nodes || w.scope.workers) {
    auto v = workspaces_.find(w.who.workspace);
    if (v != workspaces_.end() && --v->second.watches == 0) workspaces_.erase(v);
  }
  if (w.scope.calls) {
    auto c = call_watchers_.find(caller_key(w.who));
    if (c != call_watchers_.end() && --c->second == 0) call_watchers_.erase(c);
  }
  auto n = per_connection_count_.find(it->first.first);
  if (n != per_connection_count_.end() && --n->second == 0) per_connection_count_.erase(n);
  watches_.erase(it);
}

bool Watchers::is_open(const std::string& connection, std::uint64_t request_id) const {
  return !watches_.empty() && watches_.contains(Key{connection, request_id});  // (no key built when none)
}

bool Watchers::cancel(const std::string& connection, std::uint64_t request_id, const std::string* workspace,
                      std::vector<Action>& out) {
  auto it = watches_.find(Key{connection, request_id});
  if (it == watches_.end()) return false;
  if (workspace && it->second.who.workspace != *workspace) return false;
  out.push_back(ReplyToClient{it->second.peer, request_id, FailureBody{ErrorCode::Cancelled, "watch cancelled by the client"}});
  forget(it);
  return true;
}

void Watchers::end_all(ErrorCode code, const std::string& why, std::vector<Action>& out) {
  while (!watches_.empty()) {
    auto it = watches_.begin();
    out.push_back(ReplyToClient{it->second.peer, it->second.request_id, FailureBody{code, why}});
    forget(it);
  }
}

void Watchers::connection_gone(const std::string& connection) {
  unsent_.erase(connection);
  for (auto it = watches_.lower_bound(Key{connection, 0});
       it != watches_.end() && it->first.first == connection;) {
    spdlog::debug("watch ended: its connection is gone request_id={} workspace={}", it->second.request_id,
                  it->second.who.workspace);
    forget(it++);
  }
}

void Watchers::backlog(const std::string& connection, std::size_t replies) {
  if (replies == 0)
    unsent_.erase(connection);
  else if (per_connection_count_.contains(connection))
    unsent_[connection] = replies;
}

bool Watchers::watching_calls(const Caller& caller) const {
  // Asked several times per call: with no call watcher (the usual case) no key is built.
  return !call_watchers_.empty() && call_watchers_.contains(caller_key(caller));
}

void Watchers::node_changed(const std::string& workspace, const std::string& node) {
  if (watching(workspace)) changed_nodes_.emplace(workspace, node);
}

void Watchers::worker_changed(const std::string& worker_id) {
  if (!workspaces_.empty()) changed_workers_.insert(worker_id);
}

void Watchers::call_changed(const Caller& caller, CallSnapshot call) {
  if (!watching_calls(caller)) return;
  auto content = std::make_shared<WatchContent>();
  content->calls.push_back(std::move(call));
  for (auto& [key, w] : watches_)
    if (w.scope.calls && caller_key(w.who) == caller_key(caller)) queue(w, WatchEventKind::CallState, content);
}

void Watchers::queue(Watch& w, WatchEventKind kind, std::shared_ptr<const WatchContent> content) {
  if (w.needs_snapshot) return;  // the snapshot it waits for shows the change
  if (w.pending.size() >= backlog_limit_) {
    // Fallen behind: what it missed is dropped; it learns so (Overflow), then sees the present.
    w.pending.clear();
    w.pending.shrink_to_fit();
    w.needs_snapshot = w.overflowed = true;
    ++overflows_;
    spdlog::info("a watcher fell {} events behind (--watch-backlog): overflow, a snapshot follows "
                 "request_id={} workspace={}", backlog_limit_, w.request_id, w.who.workspace);
    return;
  }
  w.pending.push_back(WatchEventBody{0, kind, std::move(content)});
}

void Watchers::deliver(const std::string& workspace, WatchEventKind kind,
                       std::shared_ptr<const WatchContent> content) {
  bool about_nodes = kind == WatchEventKind::NodeAdded || kind == WatchEventKind::NodeChanged ||
                     kind == WatchEventKind::NodeRemoved;
  for (auto& [key, w] : watches_)
    if (w.who.workspace == workspace && (about_nodes ? w.scope.nodes : w.scope.workers))
      queue(w, kind, content);
}

void Watchers::diff_nodes(const WatchSource& source) {
  for (auto& [workspace, name] : std::exchange(changed_nodes_, {})) {
    auto v = workspaces_.find(workspace);
    if (v == workspaces_.end()) continue;
    auto& seen = v->second.nodes;
    auto now = source.watched_node(workspace, name);
    auto last = seen.find(name);
    if (now && last == seen.end()) {
      seen.emplace(name, *now);
      deliver(workspace, WatchEventKind::NodeAdded, one_node(std::move(*now)));
    } else if (now && !same_node(*now, last->second)) {
      last->second = *now;
      deliver(workspace, WatchEventKind::NodeChanged, one_node(std::move(*now)));
    } else if (!now && last != seen.end()) {
      auto gone = std::move(last->second);
      seen.erase(last);
      gone.workers = gone.capacity = gone.in_flight = gone.queue_depth = 0;
      deliver(workspace, WatchEventKind::NodeRemoved, one_node(std::move(gone)));
    }
  }
}

void Watchers::diff_workers(const WatchSource& source) {
  for (auto& id : std::exchange(changed_workers_, {})) {
    auto now = source.watched_worker(id);
    // Where it was last seen (a worker id is unique across the daemon).
    View* was_in = nullptr;
    std::string was_workspace;
    for (auto& [name, view] : workspaces_)
      if (view.workers.contains(id)) {
        was_in = &view;
        was_workspace = name;
        break;
      }
    if (was_in && (!now || now->workspace != was_workspace)) {
      auto last = was_in->workers.find(id);
      auto gone = std::move(last->second);
      was_in->workers.erase(last);
      deliver(was_workspace, WatchEventKind::WorkerLeft, one_worker(std::move(gone)));
      was_in = nullptr;
    }
    if (!now) continue;
    const std::string workspace = now->workspace;  // *now is moved into the event below
    auto v = workspaces_.find(workspace);
    if (v == workspaces_.end()) continue;
    auto& seen = v->second.workers;
    auto last = seen.find(id);
    if (last == seen.end()) {
      seen.emplace(id, *now);
      deliver(workspace, WatchEventKind::WorkerJoined, one_worker(std::move(*now)));
    } else if (!same_worker(*now, last->second)) {
      last->second = *now;
      deliver(workspace, WatchEventKind::WorkerChanged, one_worker(std::move(*now)));
    }
  }
}

void Watchers::send(Watch& w, WatchEventKind kind, std::shared_ptr<const WatchContent> content,
                    std::vector<Action>& out) {
  out.push_back(ReplyToClient{w.peer, w.request_id, WatchEventBody{w.next_seq++, kind, std::move(content)}});
}

void Watchers::publish(const WatchSource& source, std::vector<Action>& out) {
  if (watches_.empty()) {
    changed_nodes_.clear();
    changed_workers_.clear();
    return;
  }
  // A workspace watched for the first time: its view starts as it is now.
  for (auto& [workspace, view] : workspaces_) {
    if (view.initialized) continue;
    for (auto& n : source.watched_nodes(workspace)) view.nodes.emplace(n.spec.name, n);
    for (auto& w : source.watched_workers(workspace)) view.workers.emplace(w.worker_id, w);
    view.initialized = true;
  }
  // Workers first: a worker joins, then its nodes appear; it leaves, then they go.
  diff_workers(source);
  diff_nodes(source);
  for (auto& [key, w] : watches_) {
    if (unsent_.contains(key.first)) continue;  // its client does not read: it waits here
    if (w.overflowed) {
      send(w, WatchEventKind::Overflow, nullptr, out);
      w.overflowed = false;
    }
    if (w.needs_snapshot) {
      auto content = std::make_shared<WatchContent>();
      if (w.scope.nodes) content->nodes = source.watched_nodes(w.who.workspace);
      if (w.scope.workers) content->workers = source.watched_workers(w.who.workspace);
      if (w.scope.calls) content->calls = source.watched_calls(w.who);
      send(w, WatchEventKind::Snapshot, std::move(content), out);
      w.needs_snapshot = false;
    }
    for (auto& e : w.pending) send(w, e.kind, std::move(e.content), out);
    w.pending.clear();
  }
}

bool Watchers::ready() const {
  for (auto& [key, w] : watches_)
    if ((w.needs_snapshot || !w.pending.empty()) && !unsent_.contains(key.first)) return true;
  return false;
}

}  // namespace muster::broker
