// node_stats_view.cpp — see node_stats_view.hpp.
#include "node_stats_view.hpp"

#include <algorithm>
#include <vector>

#include <fmt/format.h>

namespace muster::cli {

namespace {

// A duration in µs, short: 850µs, 12.3ms, 4.20s; "-" when nothing was measured.
std::string duration(const Json& histogram, const char* key) {
  if (histogram.value("count", std::uint64_t{0}) == 0) return "-";
  auto us = histogram.value(key, std::uint64_t{0});
  if (us < 1000) return fmt::format("{}µs", us);
  if (us < 1'000'000) return fmt::format("{:.1f}ms", us / 1000.0);
  return fmt::format("{:.2f}s", us / 1e6);
}

std::uint64_t calls(const Json& n) {
  return n.value("completed", std::uint64_t{0}) + n.value("failed", std::uint64_t{0});
}

}  // namespace

void print_node_stats(std::ostream& out, const Json& stats) {
  out << fmt::format("{:<24} {:>8} {:>7} {:>9} {:>9} {:>9} {:>8} {:>10} {:>7} {:>6}\n", "NODE",
                     "CALLS", "ERRORS", "P50", "P90", "P99", "RATE/s", "WAIT-P50", "WORKERS", "QUEUED");
  for (auto& n : stats["nodes"]) {
    auto& service = n["service"];
    out << fmt::format("{:<24} {:>8} {:>7} {:>9} {:>9} {:>9} {:>8.2f} {:>10} {:>7} {:>6}\n",
                       n.value("node", ""), calls(n), n.value("failed", std::uint64_t{0}),
                       duration(service, "p50_us"), duration(service, "p90_us"),
                       duration(service, "p99_us"), n.value("rate_1m", 0.0),
                       duration(n["queue_wait"], "p50_us"), n.value("workers", 0),
                       n.value("queue_depth", 0));
  }
  auto& failures = stats["recent_failures"];
  if (failures.empty()) return;
  out << "\nRECENT FAILURES (newest first)\n";
  for (auto& f : failures)
    out << fmt::format("  {:>8.1f}s ago  {:<20} {:<18} {}\n", f.value("age_ms", std::uint64_t{0}) / 1000.0,
                       f.value("node", "").empty() ? "-" : f.value("node", ""), f.value("code", ""),
                       f.value("message", ""));
}

void print_node_summary(std::ostream& out, const Json& stats, std::size_t max) {
  std::vector<const Json*> nodes;
  for (auto& n : stats["nodes"]) nodes.push_back(&n);
  std::stable_sort(nodes.begin(), nodes.end(), [](auto* a, auto* b) { return calls(*a) > calls(*b); });
  if (nodes.empty()) return;
  out << "per node (busiest first; `muster nodes --stats` for all)\n";
  for (std::size_t i = 0; i < nodes.size() && i < max; ++i) {
    auto& n = *nodes[i];
    out << fmt::format("  {:<22} {:>8} calls {:>6} errors  p50 {:>8}  p99 {:>8}  {:.2f}/s\n",
                       n.value("node", ""), calls(n), n.value("failed", std::uint64_t{0}),
                       duration(n["service"], "p50_us"), duration(n["service"], "p99_us"),
                       n.value("rate_1m", 0.0));
  }
}

}  // namespace muster::cli
