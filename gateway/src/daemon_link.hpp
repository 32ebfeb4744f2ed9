// daemon_link.hpp — the gateway's one connection to musterd: a thread that owns the
// muster::Client (one Client per thread), submits and cancels calls, and polls the node list,
// the worker list and the status every `poll_interval`.
// Owns: the mapping from the gateway's call ids to the client's request ids; noticing that
// musterd is unreachable (a query unanswered within the client's grace) and starting over with
// a fresh Client, failing the calls that were open with UNAVAILABLE.
// Must never: call back into sockets (callbacks run on the link thread; the server posts them
// to its own thread), or hold a broker rule.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <variant>
#include <vector>

#include "muster/client.hpp"
#include "muster/gateway/executions.hpp"

namespace muster::gateway {

struct Snapshot {
  bool up = false;
  std::string error;  // why musterd is unreachable (when !up)
  Json nodes, workers, status;
  Json node_stats;  // Client::node_stats(); null when musterd does not answer GetNodeStats
};

struct CallEvent {
  std::uint64_t call_id = 0;
  std::variant<ProgressEvent, ResultEvent, FailureEvent> body;
};

class DaemonLink {
 public:
  struct Callbacks {
    std::function<void(Snapshot)> on_snapshot;   // after every poll, up or down
    std::function<void(std::vector<CallEvent>)> on_call_events;  // a batch per loop turn
  };
  DaemonLink(ClientOptions client, std::chrono::milliseconds poll_interval, Callbacks callbacks);
  ~DaemonLink();  // stops and joins

  void start();
  void stop();
  // Thread-safe. Every submitted call gets exactly one terminal CallEvent.
  void submit(std::uint64_t call_id, CallRequest request);
  void cancel(std::uint64_t call_id);
  // Thread-safe: asks for a poll now (e.g. for a REST query).
  void poll_now();

 private:
  struct Submit {
    std::uint64_t call_id;
    CallRequest request;
  };
  struct Cancel {
    std::uint64_t call_id;
  };
  using Command = std::variant<Submit, Cancel>;

  void run();
  bool connect();
  void run_commands();
  void pump_events(std::chrono::milliseconds wait);
  void poll_daemon();
  void fail_open_calls(const std::string& why);
  void emit(CallEvent ev) { out_.push_back(std::move(ev)); }
  void flush();
  void wake();

  ClientOptions options_;
  std::chrono::milliseconds interval_;
  Callbacks cb_;
  std::thread thread_;
  std::atomic<bool> stopping_{false};
  int wake_fd_ = -1;

  std::mutex mu_;
  std::deque<Command> commands_;
  bool poll_requested_ = false;

  // Link thread only.
  std::unique_ptr<Client> client_;
  std::unordered_map<std::uint64_t, std::uint64_t> request_of_call_, call_of_request_;
  std::vector<CallEvent> out_;  // events of this loop turn, handed over together
};

}  // namespace muster::gateway
