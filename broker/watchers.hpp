// watchers.hpp — pushed events (Watch, docs/PROTOCOL.md §8.2, docs/STREAMS.md §4): who watches
// what, and what each watcher is owed.
// Owns: the open watches (by connection and request id) and their scope (the caller's workspace,
// the caller itself for its calls, what it asked for); the last view of each watched workspace's
// nodes and workers, which turns a change into NodeAdded/Changed/Removed, WorkerJoined/Changed/
// Left; each watcher's backlog and its bound (past it: Overflow, then a fresh Snapshot); each
// watch's one terminal reply (Cancel, shutdown) and its end without one (connection gone).
// Must never: show a watcher anything of another workspace, or a call of another caller; read a
// clock; touch a socket; hold more than `backlog` events for one watcher.
//
// Flow: the core tells it what changed (node_changed, worker_changed, call_changed: cheap, as
// they happen) and, once per turn, publish() turns the changes into events and hands those a
// watcher may have now to the socket loop as ReplyToClient actions. A watcher's events go out
// only while its connection has nothing waiting in the socket loop's outbox (backlog(): the
// client reads); the rest waits here, up to `backlog` events.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "events.hpp"

namespace muster::broker {

struct WatchScope {
  bool nodes = false, workers = false, calls = false;
  bool any() const { return nodes || workers || calls; }
};

// What the core knows now, asked when a change or a snapshot must be described.
class WatchSource {
 public:
  virtual ~WatchSource() = default;
  virtual std::optional<NodeSnapshot> watched_node(const std::string& workspace, const std::string& node) const = 0;
  virtual std::optional<WorkerSnapshot> watched_worker(const std::string& worker_id) const = 0;
  virtual std::vector<NodeSnapshot> watched_nodes(const std::string& workspace) const = 0;
  virtual std::vector<WorkerSnapshot> watched_workers(const std::string& workspace) const = 0;
  // The open calls of this caller (identity, user and workspace), oldest first.
  virtual std::vector<CallSnapshot> watched_calls(const Caller& caller) const = 0;
};

class Watchers {
 public:
  // `backlog`: events one watcher may have waiting (--watch-backlog); `per_connection`: open
  // watches one connection may hold (0 = no limit).
  explicit Watchers(std::size_t backlog = 1024, std::size_t per_connection = 64);

  // Opens a watch of `who`'s workspace under (connection of `peer`, request_id). Its Snapshot
  // goes out at the next publish() its connection can take. A refusal (nothing asked for, the
  // request id already open on the connection, too many watches) is a Failure action at once.
  // `connection`: the peer's connection key (BrokerCore::connection_key), as backlog() and
  // connection_gone() name it.
  void open(const std::string& connection, const Peer& peer, std::uint64_t request_id,
            const Caller& who, WatchScope scope, std::vector<Action>& out);
  // Cancel: true if (connection, request_id) was a watch; it ends with Failure{Cancelled}, the
  // last reply it gets. `workspace` (a Cancel on behalf of a user): only a watch of that workspace.
  bool cancel(const std::string& connection, std::uint64_t request_id, const std::string* workspace,
              std::vector<Action>& out);
  bool is_open(const std::string& connection, std::uint64_t request_id) const;
  // Every watch ends with Failure{code, why} (the daemon's shutdown).
  void end_all(ErrorCode code, const std::string& why, std::vector<Action>& out);
  // The connection is gone: its watches end, with no reply (nobody to send it to).
  void connection_gone(const std::string& connection);
  // Replies the socket loop holds unsent for this connection (BrokerCore::on_client_backlog).
  void backlog(const std::string& connection, std::size_t replies);

  // ---- changes, as they happen (cheap when nobody watches) ----
  bool watching(const std::string& workspace) const { return workspaces_.contains(workspace); }
  bool watching_calls(const Caller& caller) const;
  void node_changed(const std::string& workspace, const std::string& node);
  void worker_changed(const std::string& worker_id);
  void call_changed(const Caller& caller, CallSnapshot call);

  // Turns the changes into events, and appends to `out` what each watcher can take now.
  void publish(const WatchSource& source, std::vector<Action>& out);
  // Whether a publish() would send something now (the socket loop should not sleep).
  bool ready() const;

  std::size_t size() const { return watches_.size(); }
  std::uint64_t overflows() const { return overflows_; }

 private:
  struct Watch {
    Peer peer;
    std::uint64_t request_id = 0;
    Caller who;
    WatchScope scope;
    std::vector<WatchEventBody> pending;  // seq not yet given
    bool needs_snapshot = true;           // opened, or overflowed: a Snapshot before anything
    bool overflowed = false;              // an Overflow before that Snapshot
    std::uint64_t next_seq = 1;
  };
  using Key = std::pair<std::string, std::uint64_t>;  // connection, request id
  // The last view of one watched workspace, as its watchers were told.
  struct View {
    std::size_t watches = 0;
    std::map<std::string, NodeSnapshot> nodes;  // by node name
    std::map<std::string, WorkerSnapshot> workers;  // by worker id
    bool initialized = false;  // read from the source at the first publish after it was opened
  };

  void forget(std::map<Key, Watch>::iterator it);
  void refuse(const Peer& peer, std::uint64_t request_id, ErrorCode code, std::string why,
              std::vector<Action>& out);
  // Queues a change for every watcher of `workspace` that asked for it and has its snapshot.
  void deliver(const std::string& workspace, WatchEventKind kind,
               std::shared_ptr<const WatchContent> content);
  void queue(Watch& w, WatchEventKind kind, std::shared_ptr<const WatchContent> content);
  void send(Watch& w, WatchEventKind kind, std::shared_ptr<const WatchContent> content,
            std::vector<Action>& out);
  void diff_nodes(const WatchSource& source);
  void diff_workers(const WatchSource& source);

  std::size_t backlog_limit_, per_connection_;
  std::map<Key, Watch> watches_;
  std::unordered_map<std::string, View> workspaces_;  // watched ones only
  std::map<std::tuple<std::string, std::string, std::string>, std::size_t> call_watchers_;
  std::unordered_map<std::string, std::size_t> per_connection_count_;
  std::unordered_map<std::string, std::size_t> unsent_;  // connection -> replies the loop holds
  std::set<std::pair<std::string, std::string>> changed_nodes_;  // (workspace, node)
  std::set<std::string> changed_workers_;
  std::uint64_t overflows_ = 0;
};

}  // namespace muster::broker
