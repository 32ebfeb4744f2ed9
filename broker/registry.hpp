// registry.hpp — the live workers, the nodes they serve, and the choice of worker for a node.
// Owns: worker sessions (state, capacity, what each holds), the node index per workspace,
// and the dispatch rule "most free capacity, ties to the one that waited longest".
// Must never: decide what happens to requests; it only answers who can take one.
#pragma once

#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

#include "events.hpp"
#include "fair_queue.hpp"
#include "input_check.hpp"

namespace muster::broker {

enum class WorkerState { Confirming, Ready, Draining };
std::string_view worker_state_name(WorkerState s);

struct NodeEntry;
struct NodeStats;  // node_stats.hpp

struct WorkerEntry {
  std::string id;
  Caller owner;                      // the identity that attached it
  Peer connection;                   // the connection (routing id + socket) that attached it last
  // The connection of the worker this one replaced (an Attach of the same id with another
  // session): its messages are refused without `reattach`, so that two processes given the same
  // worker id do not take it from each other in turn (PROTOCOL.md §7.3).
  std::optional<Peer> replaced_connection;
  // Attached again with its session (a reconnect): once confirmed, it is asked to resume every
  // output stream of the calls it holds (PROTOCOL.md §7.9 R12).
  bool resume_outputs_on_confirm = false;
  std::string hostname, sdk, session;
  std::uint32_t pid = 0;
  std::uint32_t capacity = 1;
  std::vector<NodeSpec> nodes;
  bool payload_frames = false;       // takes WorkRequest inputs as a frame of their own
  bool no_answer_acks = false;       // its live answers get no Ack (PROTOCOL.md §7.7)
  std::uint32_t idle_pong_every = 1; // granted: it answers every k-th ping while idle (§7.3)
  // Granted Attach.direct (PROTOCOL.md §7.10): what musterd sends it goes to `connection` on
  // the response socket, not to `topic` on the request socket. `connection` is its route: only
  // an Attach that passes the ownership rules (same identity; same session or a new one) moves it.
  bool direct = false;
  WorkerState state = WorkerState::Confirming;
  // Seqs of the confirming pings sent to it since its last Attach (newest last, at most
  // kKeptPings): only a Pong to one of these proves the PUB path reaches it.
  std::vector<std::uint64_t> confirm_seqs;
  TimePoint attached_at{}, last_heard{}, next_confirm_ping{}, last_dispatch{};
  std::unordered_set<std::uint64_t> holding;  // request ids it has been given and not answered
  // Its topic on the request socket (worker_topic of owner.identity and id), set by
  // Registry::add: musterd publishes every WorkRequest on it, and built it each time before.
  std::string topic;
  // The node entries it is indexed in, one per node of `nodes` (same order), set by
  // Registry::index and emptied by unindex: an entry stays while it serves it (std::map nodes do
  // not move), so the dispatch on each of its answers looks at their queues without a lookup.
  std::vector<NodeEntry*> indexed_in;

  std::uint32_t free_slots() const {
    return holding.size() >= capacity ? 0 : capacity - static_cast<std::uint32_t>(holding.size());
  }
};

// (workspace, node name)
using NodeKey = std::pair<std::string, std::string>;
// Orders NodeKeys, and finds one by (workspace, node name) views without copying them.
struct NodeKeyLess {
  using is_transparent = void;
  using View = std::pair<std::string_view, std::string_view>;
  static View view(const NodeKey& k) { return {k.first, k.second}; }
  static View view(const View& k) { return k; }
  template <class A, class B>
  bool operator()(const A& a, const B& b) const { return view(a) < view(b); }
};

struct NodeEntry {
  // As declared by its workers: every worker serving a node declares it the same way
  // (BrokerCore::on_attach refuses a different declaration, spec_difference.hpp).
  NodeSpec spec;
  InputCheck check;                    // what spec's inputs and parameters accept
  std::vector<WorkerEntry*> workers;   // Confirming and Ready workers serving it
  FairQueue queue;                     // request ids waiting: round robin across clients
  // Its statistics entry (node_stats.hpp StatsTable), found by BrokerCore at its first Submit
  // and kept here so that later Submits do not hash (workspace, name) again. Holding the key
  // keeps the entry alive while the node is registered, as the table's sweep does anyway.
  std::shared_ptr<const NodeKey> stats_key;
  NodeStats* stats = nullptr;
};

class Registry {
 public:
  Registry() = default;
  // Not copyable: node()'s remembered entry would point into the other registry's map. A move
  // keeps std::map's nodes where they are, so the registry moved to keeps it; the one moved
  // from forgets it (LastFound).
  Registry(const Registry&) = delete;
  Registry& operator=(const Registry&) = delete;
  Registry(Registry&&) = default;
  Registry& operator=(Registry&&) = default;

  WorkerEntry* find(const std::string& worker_id);
  const std::unordered_map<std::string, WorkerEntry>& workers() const { return workers_; }
  const std::map<NodeKey, NodeEntry, NodeKeyLess>& nodes() const { return nodes_; }

  // Adds a worker (not yet in the map) and indexes its nodes. Returns the stored entry.
  WorkerEntry& add(WorkerEntry entry);
  // Replaces the declared nodes/capacity of an existing worker (re-attach of the same session).
  void update(WorkerEntry& w, std::vector<NodeSpec> nodes, std::uint32_t capacity);
  // Takes the worker out of the node index (no new work) but keeps it registered.
  void unindex(WorkerEntry& w);
  // Forgets the worker entirely. Its node entries disappear when no worker and no queue is left.
  void remove(const std::string& worker_id);

  // A node's entry, nullptr if none. The entry found last is remembered: a Submit asks for its
  // node twice (musterd's durable check, then BrokerCore::on_submit), an answer for its worker's
  // nodes, and a stream of calls asks for the same node again and again; a repeat costs two
  // string compares instead of a walk of the tree (~200 instructions each).
  NodeEntry* node(const NodeKey& key) { return node(key.first, key.second); }
  NodeEntry* node(std::string_view workspace, std::string_view name);
  const NodeEntry* node(std::string_view workspace, std::string_view name) const;
  NodeEntry& node_for_queue(const NodeKey& key);  // existing entry, for requeueing
  void drop_if_unused(const NodeKey& key);

  // The Ready worker serving the node with the most free slots; nullptr if none has one.
  WorkerEntry* pick(NodeEntry& entry);
  // True if some Confirming or Ready worker serves it.
  static bool served(const NodeEntry& entry) { return !entry.workers.empty(); }

  // Nodes whose last worker left the index while requests were queued for them, since the
  // last call (BrokerCore decides what happens to those requests).
  std::vector<NodeKey> take_unserved() { return std::exchange(unserved_, {}); }
  // Workers attached by this identity (every state).
  std::size_t workers_of(const std::string& identity) const;

  // ---- changes, for pushed events (watchers.hpp): recorded only while tracking is on ----
  struct Changes {
    std::vector<std::string> workers;  // added, updated, (un)indexed, removed, touched
    std::vector<NodeKey> nodes;        // whose entry, workers or capacity may have changed
  };
  void track_changes(bool on) { tracking_ = on; }
  // A change the registry does not make itself (the worker's state).
  void touched(const WorkerEntry& w) { note(w); }
  Changes take_changes() { return std::exchange(changes_, {}); }

 private:
  void index(WorkerEntry& w);
  void note(const WorkerEntry& w);
  void note(const NodeKey& key) {
    if (tracking_) changes_.nodes.push_back(key);
  }
  std::unordered_map<std::string, WorkerEntry> workers_;
  // node()'s last find (a std::map node does not move); forgotten when drop_if_unused erases it,
  // and by a registry moved from (the node now belongs to the registry moved to).
  struct LastFound {
    const std::pair<const NodeKey, NodeEntry>* entry = nullptr;
    LastFound() = default;
    LastFound(LastFound&& o) noexcept : entry(std::exchange(o.entry, nullptr)) {}
    LastFound& operator=(LastFound&& o) noexcept {
      entry = std::exchange(o.entry, nullptr);
      return *this;
    }
  };
  mutable LastFound last_found_;
  std::map<NodeKey, NodeEntry, NodeKeyLess> nodes_;
  std::vector<NodeKey> unserved_;
  std::unordered_map<std::string, std::size_t> per_identity_;
  bool tracking_ = false;
  Changes changes_;
};

}  // namespace muster::broker
