// metrics.hpp — what muster-gateway counts for its own /metrics page (Prometheus text format):
// HTTP requests, WebSocket connections and messages, uploads, calls by outcome and their
// latency. docs/OPERATIONS.md lists every series.
// Owns: the counters and the rendering. Must never: do I/O; it is used on the gateway's one
// Asio thread only (no locks).
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <string>

#include "muster/process_metrics.hpp"

namespace muster::gateway {

class GatewayMetrics {
 public:
  // Call latency bounds in seconds (the last bucket: above them).
  static constexpr std::array<double, 15> kCallBounds{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                                                      0.5,   1,      2.5,   5,    10,    30,    60};

  void http_request() { ++http_requests_; }
  void websocket_opened() { ++ws_opened_; }
  void message_received() { ++messages_received_; }
  void messages_sent(std::uint64_t n) { messages_sent_ += n; }
  // `result`: completed or failed.
  void upload(const std::string& result, std::uint64_t bytes);
  // A call's terminal state (`outcome`: completed, failed, cancelled, timeout, ...) after `seconds`.
  void call(const std::string& outcome, double seconds);

  // The gauges come from the gateway's state at scrape time.
  struct Gauges {
    std::uint64_t websockets_open = 0, executions_open = 0;
    bool daemon_up = false;
  };
  std::string render(const Gauges& gauges, const ProcessMetrics& process) const;

 private:
  std::uint64_t http_requests_ = 0, ws_opened_ = 0, messages_received_ = 0, messages_sent_ = 0;
  std::map<std::string, std::uint64_t> uploads_, calls_;
  std::uint64_t upload_bytes_ = 0;
  std::array<std::uint64_t, kCallBounds.size() + 1> call_buckets_{};
  double call_seconds_sum_ = 0;
};

}  // namespace muster::gateway
