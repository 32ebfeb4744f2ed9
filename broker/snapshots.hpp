// snapshots.hpp — how a node, a worker and a call look from outside the core: what listings
// (ListNodes, ListWorkers) and pushed events (Watch, watchers.hpp) show of them.
// Owns: plain data only.
// Must never: point into the core's own structures (a snapshot outlives the state it shows).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "muster/node_spec.hpp"
#include "muster/wire/common_generated.h"

namespace muster::broker {

struct NodeSnapshot {
  NodeSpec spec;
  std::string workspace;
  std::uint32_t workers = 0, capacity = 0, in_flight = 0, queue_depth = 0;
};

struct WorkerSnapshot {
  std::string worker_id, hostname, sdk, state, workspace, identity;
  std::uint32_t pid = 0, capacity = 0, in_flight = 0;
  std::vector<std::string> nodes;
  std::uint64_t attached_ms = 0, last_seen_ms = 0;
  bool direct = false;  // granted Attach.direct: one connection (PROTOCOL.md §7.10)
};

// Where a call is, as its caller's watch sees it (wire::CallInfo; JobState's values).
enum class CallPhase : std::uint8_t { Queued = 0, Running = 1, Recovering = 2, Finished = 3 };
struct CallSnapshot {
  std::uint64_t request_id = 0;  // the caller's Submit request_id
  std::uint64_t job_id = 0;
  std::string node, worker_id, trace_id;
  CallPhase state = CallPhase::Queued;
  std::uint32_t attempts = 0;
  wire::ErrorCode code = wire::ErrorCode::None;
};

}  // namespace muster::broker
