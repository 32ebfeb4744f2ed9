// watch_wire.cpp — see watch_wire.hpp.
#include "watch_wire.hpp"

#include "muster/messages.hpp"

namespace muster::broker {

flatbuffers::Offset<wire::NodeInfo> encode_node_info(flatbuffers::FlatBufferBuilder& fbb, const NodeSnapshot& n) {
  auto spec = encode_node_spec(fbb, n.spec);
  auto ws = fbb.CreateString(n.workspace);
  wire::NodeInfoBuilder b(fbb);
  b.add_spec(spec);
  b.add_workspace(ws);
  b.add_workers(n.workers);
  b.add_capacity(n.capacity);
  b.add_in_flight(n.in_flight);
  b.add_queue_depth(n.queue_depth);
  return b.Finish();
}

flatbuffers::Offset<wire::WorkerInfo> encode_worker_info(flatbuffers::FlatBufferBuilder& fbb,
                                                         const WorkerSnapshot& w) {
  std::vector<flatbuffers::Offset<flatbuffers::String>> nodes;
  for (auto& n : w.nodes) nodes.push_back(fbb.CreateString(n));
  return wire::CreateWorkerInfoDirect(fbb, w.worker_id.c_str(), w.hostname.c_str(), w.sdk.c_str(), w.pid,
                                      w.state.c_str(), w.capacity, w.in_flight, &nodes, w.workspace.c_str(),
                                      w.identity.c_str(), w.attached_ms, w.last_seen_ms, w.direct);
}

flatbuffers::Offset<wire::CallInfo> encode_call_info(flatbuffers::FlatBufferBuilder& fbb, const CallSnapshot& c) {
  return wire::CreateCallInfoDirect(fbb, c.request_id, c.job_id, c.node.c_str(),
                                    static_cast<wire::JobState>(c.state),
                                    c.worker_id.empty() ? nullptr : c.worker_id.c_str(), c.attempts, c.code,
                                    c.trace_id.c_str());
}

flatbuffers::Offset<wire::Event> encode_watch_event(flatbuffers::FlatBufferBuilder& fbb, const WatchEventBody& e) {
  flatbuffers::Offset<flatbuffers::Vector<flatbuffers::Offset<wire::NodeInfo>>> nodes;
  flatbuffers::Offset<flatbuffers::Vector<flatbuffers::Offset<wire::WorkerInfo>>> workers;
  flatbuffers::Offset<flatbuffers::Vector<flatbuffers::Offset<wire::CallInfo>>> calls;
  flatbuffers::Offset<wire::NodeInfo> node;
  flatbuffers::Offset<wire::WorkerInfo> worker;
  flatbuffers::Offset<wire::CallInfo> call;
  if (e.content) {
    auto& c = *e.content;
    if (e.kind == WatchEventKind::Snapshot) {
      std::vector<flatbuffers::Offset<wire::NodeInfo>> n;
      for (auto& x : c.nodes) n.push_back(encode_node_info(fbb, x));
      std::vector<flatbuffers::Offset<wire::WorkerInfo>> w;
      for (auto& x : c.workers) w.push_back(encode_worker_info(fbb, x));
      std::vector<flatbuffers::Offset<wire::CallInfo>> k;
      for (auto& x : c.calls) k.push_back(encode_call_info(fbb, x));
      nodes = fbb.CreateVector(n);
      workers = fbb.CreateVector(w);
      calls = fbb.CreateVector(k);
    } else {
      if (!c.nodes.empty()) node = encode_node_info(fbb, c.nodes.front());
      if (!c.workers.empty()) worker = encode_worker_info(fbb, c.workers.front());
      if (!c.calls.empty()) call = encode_call_info(fbb, c.calls.front());
    }
  }
  wire::EventBuilder b(fbb);
  b.add_seq(e.seq);
  b.add_kind(static_cast<wire::EventKind>(e.kind));
  if (!nodes.IsNull()) b.add_nodes(nodes);
  if (!workers.IsNull()) b.add_workers(workers);
  if (!calls.IsNull()) b.add_calls(calls);
  if (!node.IsNull()) b.add_node(node);
  if (!worker.IsNull()) b.add_worker(worker);
  if (!call.IsNull()) b.add_call(call);
  return b.Finish();
}

}  // namespace muster::broker
