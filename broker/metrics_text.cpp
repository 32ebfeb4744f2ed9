// metrics_text.cpp — see metrics_text.hpp.
#include "metrics_text.hpp"

#include <array>
#include <cctype>

#include "muster/messages.hpp"
#include "muster/prometheus_text.hpp"

namespace muster::broker {

namespace {

// Prometheus buckets: every other bound of the core's histograms (the powers of two, 32 µs to
// 67 s), in seconds. Cumulative counts at them are exact, since they are bounds of the core's.
struct Buckets {
  std::vector<double> bounds_s;
  std::vector<std::size_t> core_index;  // the core bound each one is
};
const Buckets& prometheus_buckets() {
  static const Buckets b = [] {
    Buckets out;
    constexpr auto core = LatencyHistogram::upper_bounds_us();
    for (std::size_t i = 0; i < core.size(); i += 2) {
      out.bounds_s.push_back(static_cast<double>(core[i]) / 1e6);
      out.core_index.push_back(i);
    }
    return out;
  }();
  return b;
}

void write_histogram(PrometheusText& out, std::string_view name, std::string_view workspace,
                     std::string_view node, const LatencyHistogram& h) {
  const auto& b = prometheus_buckets();
  // Merge the core's buckets into the coarser ones: bucket k holds core buckets
  // (core_index[k-1], core_index[k]]; the last one everything above.
  std::vector<std::uint64_t> counts(b.bounds_s.size() + 1, 0);
  std::size_t k = 0;
  for (std::size_t i = 0; i < LatencyHistogram::kBuckets; ++i) {
    while (k < b.core_index.size() && i > b.core_index[k]) ++k;
    counts[k] += h.counts()[i];
  }
  out.histogram(name, {{"workspace", workspace}, {"node", node}}, b.bounds_s, counts,
                static_cast<double>(h.sum_us()) / 1e6);
}

// "TIMEOUT" -> "timeout": the outcome label of a failure code.
std::string outcome_of(ErrorCode code) {
  std::string name(error_code_name(code));
  for (auto& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return name;
}

}  // namespace

std::string render_metrics(const MetricsSnapshot& s, const ProcessMetrics& process) {
  PrometheusText out;
  out.family("muster_build_info", "gauge", "musterd's version and instance id (always 1).");
  out.sample("muster_build_info", {{"version", s.version}, {"instance", s.instance}}, std::uint64_t{1});
  out.family("muster_uptime_seconds", "gauge", "Seconds since musterd started.");
  out.sample("muster_uptime_seconds", {}, static_cast<double>(s.daemon.uptime_ms) / 1000.0);
  out.family("muster_daemon_leading", "gauge",
             "1 while this musterd serves (it holds its failover pair's lease, or has no pair); "
             "0 while it waits as the standby.");
  out.sample("muster_daemon_leading", {}, std::uint64_t{s.leading ? 1u : 0u});

  // ---- per workspace ----
  out.family("muster_workers", "gauge", "Workers attached (confirming, ready or draining).");
  for (auto& w : s.workspaces) out.sample("muster_workers", {{"workspace", w.workspace}}, std::uint64_t{w.status.workers});
  out.family("muster_nodes", "gauge", "Nodes served by at least one worker.");
  for (auto& w : s.workspaces) out.sample("muster_nodes", {{"workspace", w.workspace}}, std::uint64_t{w.status.nodes});
  out.family("muster_queued_requests", "gauge", "Requests waiting in node queues for a free worker.");
  for (auto& w : s.workspaces) out.sample("muster_queued_requests", {{"workspace", w.workspace}}, std::uint64_t{w.status.queued});
  out.family("muster_in_flight_requests", "gauge", "Requests dispatched to a worker and not answered yet.");
  for (auto& w : s.workspaces) out.sample("muster_in_flight_requests", {{"workspace", w.workspace}}, std::uint64_t{w.status.in_flight});
  out.family("muster_requests_submitted_total", "counter", "Submits received (accepted or refused).");
  for (auto& w : s.workspaces) out.sample("muster_requests_submitted_total", {{"workspace", w.workspace}}, w.status.submitted);
  out.family("muster_requests_redispatched_total", "counter",
             "Requests sent again after a silent loss or re-queued after their worker died.");
  for (auto& w : s.workspaces) out.sample("muster_requests_redispatched_total", {{"workspace", w.workspace}}, w.status.redispatched);

  // ---- per node ----
  out.family("muster_node_requests_total", "counter",
             "Terminal replies per node, by outcome: completed, or the failure code in lower case "
             "(worker_error, timeout, cancelled, queue_full, no_worker, worker_lost, ...).");
  for (auto& n : s.nodes) {
    out.sample("muster_node_requests_total", {{"workspace", n.workspace}, {"node", n.node}, {"outcome", "completed"}}, n.completed);
    for (std::size_t c = 1; c < n.failures_by_code.size(); ++c)
      if (n.failures_by_code[c]) {
        auto outcome = outcome_of(static_cast<ErrorCode>(c));
        out.sample("muster_node_requests_total", {{"workspace", n.workspace}, {"node", n.node}, {"outcome", outcome}},
                   n.failures_by_code[c]);
      }
  }
  out.family("muster_node_queue_wait_seconds", "histogram",
             "Time from a Submit (or its re-queueing after a worker died) to its dispatch to a worker.");
  for (auto& n : s.nodes) write_histogram(out, "muster_node_queue_wait_seconds", n.workspace, n.node, n.queue_wait);
  out.family("muster_node_service_seconds", "histogram",
             "Time from the dispatch of a request to its worker's Result or Failure.");
  for (auto& n : s.nodes) write_histogram(out, "muster_node_service_seconds", n.workspace, n.node, n.service);
  out.family("muster_node_workers", "gauge", "Workers serving the node.");
  for (auto& n : s.nodes) out.sample("muster_node_workers", {{"workspace", n.workspace}, {"node", n.node}}, std::uint64_t{n.workers});
  out.family("muster_node_in_flight_requests", "gauge", "Requests of the node dispatched and not answered yet.");
  for (auto& n : s.nodes) out.sample("muster_node_in_flight_requests", {{"workspace", n.workspace}, {"node", n.node}}, std::uint64_t{n.in_flight});
  out.family("muster_node_queue_depth", "gauge", "Requests of the node waiting for a free worker.");
  for (auto& n : s.nodes) out.sample("muster_node_queue_depth", {{"workspace", n.workspace}, {"node", n.node}}, std::uint64_t{n.queue_depth});

  // ---- daemon-wide ----
  out.family("muster_open_requests", "gauge", "Requests musterd holds (queued, running, or answered and awaiting the worker).");
  out.sample("muster_open_requests", {}, s.open_requests);
  out.family("muster_open_payload_bytes", "gauge", "Payload bytes held for open requests (counted against --max-open-bytes).");
  out.sample("muster_open_payload_bytes", {}, s.open_payload_bytes);
  out.family("muster_client_connections", "gauge", "Client connections with open requests or unread replies.");
  out.sample("muster_client_connections", {}, s.client_connections);
  out.family("muster_enrollments_total", "counter", "Enrollment requests answered, by result (ok, refused).");
  out.sample("muster_enrollments_total", {{"result", "ok"}}, s.enrollments_ok);
  out.sample("muster_enrollments_total", {{"result", "refused"}}, s.enrollments_refused);
  out.family("muster_revocations_total", "counter", "Tokens and identities revoked through admin commands.");
  out.sample("muster_revocations_total", {{"kind", "token"}}, s.tokens_revoked);
  out.sample("muster_revocations_total", {{"kind", "identity"}}, s.identities_revoked);

  write_process_metrics(out, process);
  return out.take();
}

}  // namespace muster::broker
