// node_stats_wire.hpp — the NodeStatsReport (reply.fbs) musterd answers GetNodeStats with,
// built from the core's snapshots.
// Owns: turning NodeStatsSnapshot / RecentFailure into FlatBuffers tables.
// Must never: decide what a caller may see (the daemon passes only the caller's workspace).
#pragma once

#include <array>
#include <cstdint>
#include <vector>

#include <flatbuffers/flatbuffers.h>

#include "muster/wire/reply_generated.h"
#include "node_stats.hpp"

namespace muster::broker {

// The non-zero counts of `by_code` (index = ErrorCode), as CodeCount tables.
flatbuffers::Offset<flatbuffers::Vector<flatbuffers::Offset<wire::CodeCount>>> encode_code_counts(
    flatbuffers::FlatBufferBuilder& fbb, const std::array<std::uint64_t, 16>& by_code);

flatbuffers::Offset<wire::NodeStatsReport> encode_node_stats_report(
    flatbuffers::FlatBufferBuilder& fbb, const std::vector<NodeStatsSnapshot>& nodes,
    const std::vector<RecentFailure>& failures, TimePoint now);

}  // namespace muster::broker
