// watch.hpp — pushed events of musterd (Watch, docs/PROTOCOL.md §8.2) for C++ programs: the
// `muster watch` command and the gateway. A Watch has a connection of its own, so it never
// mixes with a Client's calls (one Watch per thread, like a Client).
// Owns: opening the watch, reading its events as JSON, its end (cancel, the daemon's refusal or
// shutdown, the connection lost).
// Must never: hide a gap: events come with seq 1, 2, 3...; a watcher that fell behind gets
// {"kind": "overflow"} then a fresh {"kind": "snapshot"} from musterd itself.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>

#include "muster/client.hpp"
#include "muster/wire/reply_generated.h"

namespace muster {

struct WatchOptions {
  bool nodes = true, workers = true;
  bool calls = false;       // the state of this identity's own calls
  Assertion on_behalf_of;   // a gateway watching for one of its users' workspace
};

// The JSON form of one event (`muster watch --json` prints one per line):
//   {"seq": 1, "kind": "snapshot", "nodes": [...], "workers": [...], "calls": [...]}
//   {"seq": 2, "kind": "node_added"|"node_changed"|"node_removed", "node": {...}}
//   {"seq": 3, "kind": "worker_joined"|"worker_changed"|"worker_left", "worker": {...}}
//   {"seq": 4, "kind": "call_state", "call": {...}}
//   {"seq": 5, "kind": "overflow"}
// nodes and workers as `muster nodes|workers --json` list them; a call as
// {request_id, node, state: queued|running|recovering|finished, attempts, trace_id, [job_id],
// [worker_id], [code]}.
class Watch {
 public:
  // Connects and sends the Watch. Throws CallError for an unusable endpoint.
  Watch(ClientOptions client, WatchOptions what);
  ~Watch();  // cancels it (best effort)
  Watch(Watch&&) noexcept;
  Watch& operator=(Watch&&) noexcept;

  // The next event, or nullopt if none came within `wait`. Throws CallError once the watch has
  // ended: CANCELLED after cancel(), SHUTTING_DOWN when musterd stops, the daemon's refusal
  // (INVALID_REQUEST, PERMISSION_DENIED...), UNAVAILABLE when musterd cannot be reached (no
  // snapshot within ClientOptions::grace) or the connection to it is lost.
  std::optional<Json> next(std::chrono::milliseconds wait);
  // Asks musterd to end the watch; next() then returns what was still on the way and throws
  // CallError{CANCELLED}.
  void cancel();
  // The socket's file descriptor (readable when next() may have something).
  int fd() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// "node_added" for wire::EventKind::NodeAdded, ...
std::string watch_event_kind_name(wire::EventKind kind);

}  // namespace muster
