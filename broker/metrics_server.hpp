// metrics_server.hpp — musterd's /metrics endpoint (--metrics-address): a small HTTP/1.1
// server on a thread of its own that asks the socket loop for a fresh MetricsSnapshot per
// scrape and renders it there.
// Owns: the listening socket, its thread, the hand-over of snapshots between the loop and
// that thread (MetricsExchange).
// Must never: make musterd's main loop wait. The loop only answers a request for a snapshot
// when it next wakes (the exchange's fd is in its poll set) and hands it over by swapping a
// pointer; a slow or stuck scraper holds up the metrics thread only (each connection gets
// 5 s to send its request and to take the answer, one at a time).
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "metrics_text.hpp"

namespace muster::broker {

// Between the socket loop (publish) and the metrics thread (request).
class MetricsExchange {
 public:
  MetricsExchange();
  ~MetricsExchange();
  MetricsExchange(const MetricsExchange&) = delete;
  MetricsExchange& operator=(const MetricsExchange&) = delete;

  // ---- the metrics thread ----
  // Asks the loop for a snapshot and waits up to `wait` for it; the previous snapshot (or
  // null) when the loop did not answer in time.
  std::shared_ptr<const MetricsSnapshot> request(std::chrono::milliseconds wait);

  // ---- the socket loop ----
  int fd() const { return fd_; }  // readable while a snapshot is wanted
  // Whether a snapshot is wanted (and clears the fd's readiness).
  bool wanted();
  void publish(std::shared_ptr<const MetricsSnapshot> snapshot);

 private:
  int fd_ = -1;  // eventfd
  std::mutex mutex_;
  std::condition_variable published_;
  std::shared_ptr<const MetricsSnapshot> latest_;
  std::uint64_t generation_ = 0;
};

class MetricsServer {
 public:
  // Binds HOST:PORT (a numeric IPv4/IPv6 address or "localhost"; port 0 picks one) and starts
  // serving. Throws std::invalid_argument for a bad address, or one that is not loopback
  // while `allow_remote` is false; std::runtime_error when it cannot bind.
  MetricsServer(const std::string& address, bool allow_remote, MetricsExchange& exchange);
  ~MetricsServer();  // stops the thread and closes the socket
  std::string bound_address() const { return bound_; }  // host:port actually bound

  // The HTTP answer (status line, headers, body) to one request's first line and headers;
  // public for the unit tests.
  static std::string respond(std::string_view request, const std::function<std::string()>& render);

 private:
  void serve();
  void serve_connection(int fd);
  MetricsExchange& exchange_;
  int listen_fd_ = -1;
  int stop_fd_ = -1;
  std::string bound_;
  std::thread thread_;
};

}  // namespace muster::broker
