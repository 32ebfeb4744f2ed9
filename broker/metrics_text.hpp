// metrics_text.hpp — musterd's /metrics page: what the socket loop copies out of the core for
// a scrape (MetricsSnapshot) and its rendering in the Prometheus text format.
// Owns: the metric names, types, labels and help texts (docs/OPERATIONS.md lists them).
// Must never: touch a socket or the core (it reads only the snapshot it is given), so the
// text is built off musterd's main loop and unit-tested on its own.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "broker_core.hpp"
#include "muster/process_metrics.hpp"

namespace muster::broker {

struct WorkspaceMetrics {
  std::string workspace;
  StatusSnapshot status;  // that workspace's counts, workers, queued, in flight
};

struct MetricsSnapshot {
  std::string version, instance;
  // False while this musterd waits as the standby of a failover pair (it then serves nothing
  // and holds no calls: every other figure is zero or empty); true once it leads, and always
  // for a daemon with a journal of its own.
  bool leading = true;
  StatusSnapshot daemon;                     // the whole daemon
  std::vector<WorkspaceMetrics> workspaces;  // sorted by name
  std::vector<NodeStatsSnapshot> nodes;      // every workspace's
  std::uint64_t open_requests = 0, open_payload_bytes = 0;
  std::uint64_t client_connections = 0;      // with open requests or unread replies
  std::uint64_t enrollments_ok = 0, enrollments_refused = 0;
  std::uint64_t tokens_revoked = 0, identities_revoked = 0;
};

std::string render_metrics(const MetricsSnapshot& s, const ProcessMetrics& process);

}  // namespace muster::broker
