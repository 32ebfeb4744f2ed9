// node_stats_view.hpp — how `muster nodes --stats` and `muster status` show per-node
// statistics (the JSON of Client::node_stats()).
// Owns: the human-readable tables. Must never: query the daemon (callers pass the JSON).
#pragma once

#include <ostream>

#include "muster/client.hpp"

namespace muster::cli {

// One line per node: calls, errors, p50/p90/p99 service time, rate, queue wait p50, and the
// workspace's recent failures below.
void print_node_stats(std::ostream& out, const Json& stats);
// The short per-node summary `muster status` ends with (busiest nodes first, at most `max`).
void print_node_summary(std::ostream& out, const Json& stats, std::size_t max = 10);

}  // namespace muster::cli
