// broker_core_watch.cpp — the core's side of pushed events (Watch, watchers.hpp): opening a
// watch, telling the watchers what changed, and describing nodes, workers and calls to them.
// Must never: decide who sees what (Watchers does), or let a watch touch a request.
#include <algorithm>

#include "broker_core.hpp"

namespace muster::broker {

namespace {
template <class Request>
std::string trace_of(const Request& r, const std::string& instance) {
  return r.trace_id.empty() ? instance + '-' + std::to_string(r.id) : r.trace_id;
}
}  // namespace

void BrokerCore::on_watch(TimePoint now, const Peer& peer, const Caller& who, std::uint64_t request_id,
                          WatchScope scope) {
  (void)now;
  if (shutting_down_) {
    actions_.push_back(ReplyToClient{peer, request_id,
                                     FailureBody{ErrorCode::ShuttingDown, "the daemon is shutting down"}, true});
    return;
  }
  if (by_client_.contains(client_key(peer, request_id))) {
    actions_.push_back(ReplyToClient{
        peer, request_id,
        FailureBody{ErrorCode::InvalidRequest,
                    "request id " + std::to_string(request_id) + " is already open on this connection"},
        true});
    return;
  }
  watchers_.open(client_lane(peer), peer, request_id, who, scope, actions_);
}

void BrokerCore::on_client_gone(const std::string& connection) { watchers_.connection_gone(connection); }

void BrokerCore::publish_watch_events(TimePoint now) {
  auto changes = registry_.take_changes();
  for (auto& id : changes.workers) watchers_.worker_changed(id);
  for (auto& [workspace, node] : changes.nodes) watchers_.node_changed(workspace, node);
  watch_now_ = now;
  watchers_.publish(*this, actions_);
  registry_.track_changes(watchers_.size() > 0);
}

void BrokerCore::note_call(const Request& r, CallPhase phase, ErrorCode code) {
  if (!watchers_.watching_calls(*r.caller)) return;
  CallSnapshot c;
  c.request_id = r.client_request_id;
  c.job_id = r.job_id;
  c.node = r.node->second;
  c.state = phase;
  if (phase == CallPhase::Running) c.worker_id = r.worker_id;
  c.attempts = r.attempts;
  c.code = code;
  c.trace_id = trace_of(r, config_.instance);
  watchers_.call_changed(*r.caller, std::move(c));
}

std::optional<NodeSnapshot> BrokerCore::watched_node(const std::string& workspace,
                                                     const std::string& node) const {
  NodeKey key{workspace, node};
  auto it = registry_.nodes().find(key);
  if (it == registry_.nodes().end()) return std::nullopt;
  std::uint32_t in_flight = 0;  // what its workers hold of it
  for (auto* w : it->second.workers)
    for (auto id : w->holding)
      if (auto r = requests_.find(id); r != requests_.end() && *r->second.node == key) ++in_flight;
  return node_snapshot(key, it->second, in_flight);
}

std::optional<WorkerSnapshot> BrokerCore::watched_worker(const std::string& worker_id) const {
  auto it = registry_.workers().find(worker_id);
  if (it == registry_.workers().end()) return std::nullopt;
  return worker_snapshot(it->second, watch_now_);
}

std::vector<NodeSnapshot> BrokerCore::watched_nodes(const std::string& workspace) const {
  std::vector<NodeSnapshot> out;
  for (auto it = registry_.nodes().lower_bound(NodeKey{workspace, ""});
       it != registry_.nodes().end() && it->first.first == workspace; ++it)
    out.push_back(*watched_node(workspace, it->first.second));
  return out;
}

std::vector<WorkerSnapshot> BrokerCore::watched_workers(const std::string& workspace) const {
  if (workspace.empty()) return {};  // "" would mean every workspace to list_workers
  return list_workers(watch_now_, workspace);
}

std::vector<CallSnapshot> BrokerCore::watched_calls(const Caller& caller) const {
  std::vector<std::pair<std::uint64_t, CallSnapshot>> open;
  for (auto& [id, r] : requests_) {
    if (r.answered || r.state == RequestState::Orphaned) continue;
    const Caller& c = *r.caller;
    if (c.workspace != caller.workspace || c.identity != caller.identity || c.name != caller.name) continue;
    CallSnapshot s;
    s.request_id = r.client_request_id;
    s.job_id = r.job_id;
    s.node = r.node->second;
    s.state = r.state == RequestState::Dispatched   ? CallPhase::Running
              : r.state == RequestState::Recovering ? CallPhase::Recovering
                                                    : CallPhase::Queued;
    if (s.state == CallPhase::Running) s.worker_id = r.worker_id;
    s.attempts = r.attempts;
    s.trace_id = trace_of(r, config_.instance);
    open.emplace_back(id, std::move(s));
  }
  std::sort(open.begin(), open.end(), [](auto& a, auto& b) { return a.first < b.first; });
  std::vector<CallSnapshot> out;
  for (auto& [id, s] : open) out.push_back(std::move(s));
  return out;
}

}  // namespace muster::broker
