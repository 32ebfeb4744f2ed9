// metrics.cpp — see metrics.hpp.
#include "muster/gateway/metrics.hpp"

#include <algorithm>

#include "muster/prometheus_text.hpp"

namespace muster::gateway {

void GatewayMetrics::upload(const std::string& result, std::uint64_t bytes) {
  ++uploads_[result];
  upload_bytes_ += bytes;
}

void GatewayMetrics::call(const std::string& outcome, double seconds) {
  ++calls_[outcome];
  auto at = std::lower_bound(kCallBounds.begin(), kCallBounds.end(), seconds) - kCallBounds.begin();
  ++call_buckets_[static_cast<std::size_t>(at)];
  call_seconds_sum_ += seconds;
}

std::string GatewayMetrics::render(const Gauges& g, const ProcessMetrics& process) const {
  PrometheusText out;
  out.family("muster_gateway_up", "gauge", "Whether the gateway's last poll of musterd succeeded (1) or not (0).");
  out.sample("muster_gateway_up", {}, std::uint64_t{g.daemon_up ? 1u : 0u});
  out.family("muster_gateway_http_requests_total", "counter", "HTTP requests received (REST, /healthz, /metrics, upgrades excluded).");
  out.sample("muster_gateway_http_requests_total", {}, http_requests_);
  out.family("muster_gateway_websocket_connections", "gauge", "WebSocket connections open now.");
  out.sample("muster_gateway_websocket_connections", {}, g.websockets_open);
  out.family("muster_gateway_websocket_connections_total", "counter", "WebSocket connections accepted since the start.");
  out.sample("muster_gateway_websocket_connections_total", {}, ws_opened_);
  out.family("muster_gateway_websocket_messages_received_total", "counter", "WebSocket messages received from clients.");
  out.sample("muster_gateway_websocket_messages_received_total", {}, messages_received_);
  out.family("muster_gateway_websocket_messages_sent_total", "counter",
             "WebSocket messages queued to clients (a broadcast counts once per connection).");
  out.sample("muster_gateway_websocket_messages_sent_total", {}, messages_sent_);
  out.family("muster_gateway_uploads_total", "counter", "Chunked uploads finished, by result (completed, failed).");
  for (const char* r : {"completed", "failed"}) {
    auto it = uploads_.find(r);
    out.sample("muster_gateway_uploads_total", {{"result", r}}, it == uploads_.end() ? 0 : it->second);
  }
  out.family("muster_gateway_upload_bytes_total", "counter", "Bytes of completed uploads.");
  out.sample("muster_gateway_upload_bytes_total", {}, upload_bytes_);
  out.family("muster_gateway_executions_open", "gauge", "Calls through the gateway not finished yet.");
  out.sample("muster_gateway_executions_open", {}, g.executions_open);
  out.family("muster_gateway_calls_total", "counter",
             "Calls through the gateway (WebSocket and REST) by outcome: completed, or the execution status "
             "of a failure (failed, cancelled, timeout, ...).");
  if (!calls_.contains("completed")) out.sample("muster_gateway_calls_total", {{"outcome", "completed"}}, std::uint64_t{0});
  for (auto& [outcome, n] : calls_) out.sample("muster_gateway_calls_total", {{"outcome", outcome}}, n);
  out.family("muster_gateway_call_seconds", "histogram", "Time from a call's start at the gateway to its terminal state.");
  out.histogram("muster_gateway_call_seconds", {}, kCallBounds, call_buckets_, call_seconds_sum_);
  write_process_metrics(out, process);
  return out.take();
}

}  // namespace muster::gateway
