// node_stats_wire.cpp — see node_stats_wire.hpp.
#include "node_stats_wire.hpp"

#include <chrono>

namespace muster::broker {

namespace {

flatbuffers::Offset<wire::LatencyHistogram> encode_histogram(flatbuffers::FlatBufferBuilder& fbb,
                                                             const LatencyHistogram& h) {
  static constexpr auto bounds = LatencyHistogram::upper_bounds_us();
  auto b = fbb.CreateVector(bounds.data(), bounds.size());
  auto c = fbb.CreateVector(h.counts().data(), h.counts().size());
  return wire::CreateLatencyHistogram(fbb, b, c, h.count(), h.sum_us(), h.quantile_us(0.5),
                                      h.quantile_us(0.9), h.quantile_us(0.99));
}

}  // namespace

flatbuffers::Offset<flatbuffers::Vector<flatbuffers::Offset<wire::CodeCount>>> encode_code_counts(
    flatbuffers::FlatBufferBuilder& fbb, const std::array<std::uint64_t, 16>& by_code) {
  std::vector<flatbuffers::Offset<wire::CodeCount>> counts;
  for (std::size_t i = 1; i < by_code.size(); ++i)
    if (by_code[i]) counts.push_back(wire::CreateCodeCount(fbb, static_cast<wire::ErrorCode>(i), by_code[i]));
  return fbb.CreateVector(counts);
}

flatbuffers::Offset<wire::NodeStatsReport> encode_node_stats_report(
    flatbuffers::FlatBufferBuilder& fbb, const std::vector<NodeStatsSnapshot>& nodes,
    const std::vector<RecentFailure>& failures, TimePoint now) {
  std::vector<flatbuffers::Offset<wire::NodeStats>> node_tables;
  node_tables.reserve(nodes.size());
  for (auto& n : nodes) {
    auto ws = fbb.CreateString(n.workspace);
    auto name = fbb.CreateString(n.node);
    auto codes = encode_code_counts(fbb, n.failures_by_code);
    auto wait = encode_histogram(fbb, n.queue_wait);
    auto service = encode_histogram(fbb, n.service);
    node_tables.push_back(wire::CreateNodeStats(fbb, ws, name, n.workers, n.in_flight,
                                                n.queue_depth, n.completed, n.failed, codes,
                                                n.rate_1m, wait, service));
  }
  std::vector<flatbuffers::Offset<wire::RecentFailure>> failure_tables;
  for (auto& f : failures) {
    auto age = f.at < now ? std::chrono::duration_cast<std::chrono::milliseconds>(now - f.at).count() : 0;
    failure_tables.push_back(wire::CreateRecentFailureDirect(
        fbb, f.workspace.c_str(), f.node.c_str(), f.code, f.message.c_str(),
        static_cast<std::uint64_t>(age)));
  }
  return wire::CreateNodeStatsReportDirect(fbb, &node_tables, &failure_tables);
}

}  // namespace muster::broker
