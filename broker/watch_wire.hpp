// watch_wire.hpp — the listings' and pushed events' tables (reply.fbs NodeInfo, WorkerInfo,
// CallInfo, Event) musterd sends, built from the core's snapshots.
// Owns: turning NodeSnapshot / WorkerSnapshot / CallSnapshot / WatchEventBody into FlatBuffers.
// Must never: decide what a caller may see (the core passes only what it may).
#pragma once

#include <flatbuffers/flatbuffers.h>

#include "events.hpp"
#include "muster/wire/reply_generated.h"

namespace muster::broker {

flatbuffers::Offset<wire::NodeInfo> encode_node_info(flatbuffers::FlatBufferBuilder& fbb, const NodeSnapshot& n);
flatbuffers::Offset<wire::WorkerInfo> encode_worker_info(flatbuffers::FlatBufferBuilder& fbb,
                                                         const WorkerSnapshot& w);
flatbuffers::Offset<wire::CallInfo> encode_call_info(flatbuffers::FlatBufferBuilder& fbb, const CallSnapshot& c);
// A Snapshot fills the lists; a delta the one node, worker or call; an Overflow nothing.
flatbuffers::Offset<wire::Event> encode_watch_event(flatbuffers::FlatBufferBuilder& fbb, const WatchEventBody& e);

}  // namespace muster::broker
