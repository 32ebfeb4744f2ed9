// metrics_route.cpp — GET /metrics of muster-gateway: its own counters (GatewayMetrics) and
// process metrics in the Prometheus text format. Served without a token, like /healthz: it
// holds counts only, no names, nodes or users (docs/OPERATIONS.md).
#include "gateway.hpp"
#include "muster/prometheus_text.hpp"

namespace muster::gateway {

Response Gateway::metrics_response(const Request& req) {
  GatewayMetrics::Gauges g;
  g.websockets_open = peers_.size();
  g.executions_open = executions_.size();
  g.daemon_up = have_snapshot_ && last_.up;
  Response res{http::status::ok, req.version()};
  res.set(http::field::content_type, std::string(PrometheusText::kContentType));
  res.set(http::field::cache_control, "no-store");
  res.keep_alive(req.keep_alive());
  res.body() = metrics_.render(g, read_process_metrics());
  res.prepare_payload();
  return res;
}

}  // namespace muster::gateway
