// daemon_link.hpp — the gateway's poller of musterd: a thread that owns a muster::Client (one
// Client per thread; enrolling first if needed) and reads the node list, the worker list and the
// status of every served workspace every `poll_interval` (each on behalf of the gateway's poll
// user, kPollUser, of that workspace). Calls go through CallLink, on the Asio thread.
// Owns: noticing that musterd is unreachable (a query unanswered within the client's grace) and
// starting over with a fresh Client; a Watch per served workspace (docs/PROTOCOL.md §8.2), so a
// node or worker that comes or goes is read at once, not at the next poll.
// Must never: call back into sockets (callbacks run on the link thread; the server posts them
// to its own thread), or hold a broker rule.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <variant>
#include <vector>

#include "muster/client.hpp"
#include "muster/watch.hpp"
#include "muster/gateway/executions.hpp"

namespace muster::gateway {

// The user the gateway names when it asks musterd for a workspace's lists (role read).
inline constexpr const char* kPollUser = "gateway";

// One workspace's lists as musterd answered them for it.
struct WorkspaceView {
  Json nodes, workers, status;
  Json node_stats;  // Client::node_stats(); null when musterd does not answer GetNodeStats
  std::string error, code;  // musterd refused this workspace (e.g. PERMISSION_DENIED): why
};

struct Snapshot {
  bool up = false;
  std::string error;  // why musterd is unreachable (when !up)
  std::map<std::string, WorkspaceView> workspaces;  // every workspace polled
};

// One event of a call (CallLink).
struct CallEvent {
  std::uint64_t call_id = 0;
  decltype(ClientEvent::body) body;  // never an ItemEvent: the gateway asks for no items
};

class DaemonLink {
 public:
  using OnSnapshot = std::function<void(Snapshot)>;  // after every poll, up or down
  DaemonLink(ClientOptions client, std::chrono::milliseconds poll_interval, OnSnapshot on_snapshot);
  ~DaemonLink();  // stops and joins

  void start();
  void stop();
  // Thread-safe: the workspaces to poll from the next poll on.
  void set_workspaces(std::vector<std::string> workspaces);
  // Thread-safe: asks for a poll now.
  void poll_now();

 private:
  void run();
  bool connect();
  void poll_daemon();
  void wake();
  // Opens a Watch for each workspace that has none (after a poll found musterd up), and drops
  // those of workspaces no longer served.
  void keep_watches(const std::vector<std::string>& workspaces);
  // Reads what the watches pushed: true if a node or worker changed (the lists are read again
  // now). A watch that ended is dropped (opened again after the next poll).
  bool drain_watches();

  ClientOptions options_;
  std::chrono::milliseconds interval_;
  OnSnapshot on_snapshot_;
  std::thread thread_;
  std::atomic<bool> stopping_{false};
  int wake_fd_ = -1;

  std::mutex mu_;
  bool poll_requested_ = false;
  std::vector<std::string> workspaces_;

  std::unique_ptr<Client> client_;  // link thread only
  std::map<std::string, std::unique_ptr<Watch>> watches_;  // by workspace; link thread only
};

}  // namespace muster::gateway
