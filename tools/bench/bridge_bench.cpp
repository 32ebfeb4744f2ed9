// bridge_bench.cpp — muster-bridge-bench: what the uplink adds per event.
//
// Plays a minimal Hurozo backend on 127.0.0.1:<port> (POST /api/remote_nodes/register and the
// WebSocket at /ws), waits for `muster-bridge uplink` to connect, then measures
//   1. direct: calls to the node through musterd (the muster client library), one at a time
//      (latency) and with `concurrency` in flight (throughput);
//   2. uplink: `remote_node` events sent on the WebSocket and answered by the uplink, which
//      calls the same node through the same musterd, one at a time and `concurrency` at once.
// "Added latency" is the uplink's per-event latency minus the direct call's. Run it through
// tools/bench/bridge_bench.sh, which starts musterd, the example worker and the uplink.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <iostream>
#include <mutex>
#include <numeric>
#include <optional>
#include <thread>
#include <unordered_map>
#include <utility>
#include <vector>

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/websocket.hpp>
#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include "muster/bridge/hurozo.hpp"
#include "muster/client.hpp"
#include "muster/value_json.hpp"

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace websocket = beast::websocket;
using tcp = net::ip::tcp;
using Clock = std::chrono::steady_clock;
using muster::Json;

namespace {

struct Stats {
  double p50 = 0, p90 = 0, p99 = 0, mean = 0, max = 0;
};

Stats stats_of(std::vector<double> us) {
  Stats s;
  if (us.empty()) return s;
  std::sort(us.begin(), us.end());
  auto at = [&](double q) { return us[std::min(us.size() - 1, static_cast<std::size_t>(q * us.size()))]; };
  s.p50 = at(0.50);
  s.p90 = at(0.90);
  s.p99 = at(0.99);
  s.max = us.back();
  s.mean = std::accumulate(us.begin(), us.end(), 0.0) / us.size();
  return s;
}

double us_since(Clock::time_point t) {
  return std::chrono::duration<double, std::micro>(Clock::now() - t).count();
}

// The fake backend: HTTP registrations on one thread; the first WebSocket is handed over.
class FakeBackend {
 public:
  explicit FakeBackend(unsigned short port) : acceptor_(ioc_, {net::ip::make_address("127.0.0.1"), port}) {
    port_ = acceptor_.local_endpoint().port();
    thread_ = std::thread([this] { serve(); });
  }
  ~FakeBackend() {
    stopping_ = true;
    beast::error_code ec;
    acceptor_.close(ec);
    if (thread_.joinable()) thread_.detach();
  }
  unsigned short port() const { return port_; }

  // Waits for the uplink's WebSocket.
  std::unique_ptr<websocket::stream<tcp::socket>> wait_ws(std::chrono::seconds timeout) {
    std::unique_lock lock(mu_);
    cv_.wait_for(lock, timeout, [&] { return ws_ != nullptr; });
    return std::move(ws_);
  }
  int registrations() const { return registrations_; }

 private:
  void serve() {
    while (!stopping_) {
      beast::error_code ec;
      tcp::socket socket(ioc_);
      acceptor_.accept(socket, ec);
      if (ec) return;
      std::thread([this, s = std::move(socket)]() mutable { handle(std::move(s)); }).detach();
    }
  }

  void handle(tcp::socket socket) {
    beast::flat_buffer buffer;
    for (;;) {
      http::request<http::string_body> req;
      beast::error_code ec;
      http::read(socket, buffer, req, ec);
      if (ec) return;
      if (websocket::is_upgrade(req)) {
        auto ws = std::make_unique<websocket::stream<tcp::socket>>(std::move(socket));
        ws->accept(req, ec);
        if (ec) return;
        ws->next_layer().set_option(tcp::no_delay(true), ec);
        std::lock_guard lock(mu_);
        ws_ = std::move(ws);
        cv_.notify_all();
        return;
      }
      http::response<http::string_body> res{http::status::ok, req.version()};
      res.set(http::field::content_type, "application/json");
      Json body = Json::parse(req.body(), nullptr, false);
      if (req.target() == "/api/remote_nodes/register" && body.is_object()) {
        registrations_++;
        res.body() = Json{{"status", "registered"},
                          {"websocket_url", fmt::format("ws://127.0.0.1:{}/ws", port_)},
                          {"token", "bench-token"},
                          {"inputs", body.value("inputs", Json::array())},
                          {"outputs", body.value("outputs", Json::array())}}
                         .dump();
      } else {
        res.result(http::status::not_found);
        res.body() = R"({"error":"Not found"})";
      }
      res.keep_alive(req.keep_alive());
      res.prepare_payload();
      http::write(socket, res, ec);
      if (ec || !req.keep_alive()) return;
    }
  }

  net::io_context ioc_;
  tcp::acceptor acceptor_;
  unsigned short port_ = 0;
  std::thread thread_;
  std::atomic<bool> stopping_{false};
  std::atomic<int> registrations_{0};
  std::mutex mu_;
  std::condition_variable cv_;
  std::unique_ptr<websocket::stream<tcp::socket>> ws_;
};

struct Result {
  Stats latency;
  double rate = 0;
  std::size_t null_replies = 0;
};

Result bench_direct(muster::Client& client, const std::string& node, const muster::Map& inputs, int n_lat,
                    int n_tp, int concurrency) {
  Result r;
  std::vector<double> lat;
  muster::CallOptions o;
  o.timeout_ms = 60000;
  for (int i = 0; i < n_lat; ++i) {
    auto t = Clock::now();
    client.call(node, inputs, o);
    lat.push_back(us_since(t));
  }
  r.latency = stats_of(lat);
  auto start = Clock::now();
  int sent = 0, done = 0;
  while (done < n_tp) {
    while (sent < n_tp && sent - done < concurrency) {
      client.submit(node, inputs, o);
      ++sent;
    }
    for (auto& ev : client.poll(std::chrono::milliseconds(100)))
      if (ev.terminal()) {
        ++done;
        if (!std::holds_alternative<muster::ResultEvent>(ev.body)) ++r.null_replies;
      }
  }
  r.rate = n_tp / std::chrono::duration<double>(Clock::now() - start).count();
  return r;
}

Result bench_uplink(websocket::stream<tcp::socket>& ws, const std::string& node, const Json& inputs,
                    const std::vector<std::string>& outputs, int n_lat, int n_tp, int concurrency) {
  Result r;
  std::uint64_t seq = 0;
  beast::flat_buffer buffer;
  ws.text(true);
  auto send_event = [&](std::unordered_map<std::string, Clock::time_point>& open) {
    std::string uuid = fmt::format("bench-{}", ++seq);
    std::string text = Json{{"node", node}, {"inputs", inputs}, {"uuid", uuid}}.dump();
    open[uuid] = Clock::now();
    ws.write(net::buffer(text));
  };
  auto read_reply = [&](std::unordered_map<std::string, Clock::time_point>& open) -> double {
    for (;;) {
      buffer.clear();
      ws.read(buffer);
      Json j = Json::parse(beast::buffers_to_string(buffer.data()), nullptr, false);
      if (!j.is_object() || !j.contains("uuid")) continue;
      auto it = open.find(j["uuid"].get<std::string>());
      if (it == open.end()) continue;
      double us = us_since(it->second);
      open.erase(it);
      bool all_null = !outputs.empty();
      for (auto& k : outputs)
        if (j["outputs"].contains(k) && !j["outputs"][k].is_null()) all_null = false;
      if (all_null) ++r.null_replies;
      return us;
    }
  };
  std::unordered_map<std::string, Clock::time_point> open;
  std::vector<double> lat;
  for (int i = 0; i < n_lat; ++i) {
    send_event(open);
    lat.push_back(read_reply(open));
  }
  r.latency = stats_of(lat);
  auto start = Clock::now();
  int sent = 0, done = 0;
  while (done < n_tp) {
    while (sent < n_tp && sent - done < concurrency) {
      send_event(open);
      ++sent;
    }
    read_reply(open);
    ++done;
  }
  r.rate = n_tp / std::chrono::duration<double>(Clock::now() - start).count();
  return r;
}

void print(const char* what, const Result& r) {
  std::cout << fmt::format("{:<8} latency µs: p50 {:8.1f}  p90 {:8.1f}  p99 {:8.1f}  mean {:8.1f}  max {:8.1f}\n", what,
                           r.latency.p50, r.latency.p90, r.latency.p99, r.latency.mean, r.latency.max);
  std::cout << fmt::format("{:<8} throughput: {:9.0f} /s{}\n", what, r.rate,
                           r.null_replies ? fmt::format("  ({} failed)", r.null_replies) : "");
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"muster-bridge-bench — events/s and added latency per event through `muster-bridge uplink`.",
               "muster-bridge-bench"};
  unsigned short port = 0;
  std::string node = "hello", inputs_text = R"({"name":"Ada"})";
  int n_lat = 2000, n_tp = 20000, concurrency = 64, wait_s = 30;
  muster::ClientOptions copt;
  std::string port_file;
  app.add_option("--port", port, "Port of the fake Hurozo backend (0: any)");
  app.add_option("--port-file", port_file, "Write the chosen port here once listening");
  app.add_option("--node", node, "Node to call")->capture_default_str();
  app.add_option("--inputs", inputs_text, "Inputs as JSON")->capture_default_str();
  app.add_option("--latency-events", n_lat, "Sequential events for latency")->capture_default_str();
  app.add_option("--throughput-events", n_tp, "Events for throughput")->capture_default_str();
  app.add_option("--concurrency", concurrency, "Events in flight for throughput")->capture_default_str();
  app.add_option("--wait", wait_s, "Seconds to wait for the uplink")->capture_default_str();
  app.add_option("--client-address", copt.client_address, "musterd client endpoint");
  CLI11_PARSE(app, argc, argv);
  try {
    muster::Map inputs = muster::map_from_json_text(inputs_text);
    Json inputs_json = Json::parse(inputs_text);
    FakeBackend backend(port);
    if (!port_file.empty()) {
      FILE* f = std::fopen(port_file.c_str(), "w");
      if (f) {
        std::fprintf(f, "%u\n", backend.port());
        std::fclose(f);
      }
    }
    std::cerr << fmt::format("fake Hurozo backend on http://127.0.0.1:{}; waiting for the uplink\n", backend.port());
    auto ws = backend.wait_ws(std::chrono::seconds(wait_s));
    if (!ws) {
      std::cerr << "the uplink did not connect\n";
      return 1;
    }
    muster::Client client(copt);
    std::vector<std::string> outputs;
    for (auto& n : client.nodes())
      if (n["name"] == node)
        for (auto& p : n["outputs"]) outputs.push_back(p["name"].get<std::string>());

    // Warm up both paths.
    bench_direct(client, node, inputs, 100, 100, 8);
    bench_uplink(*ws, node, inputs_json, outputs, 100, 100, 8);

    std::cout << fmt::format("node {} inputs {}; {} sequential calls/events, {} at concurrency {}\n", node,
                             inputs_text, n_lat, n_tp, concurrency);
    auto direct = bench_direct(client, node, inputs, n_lat, n_tp, concurrency);
    print("direct", direct);
    auto up = bench_uplink(*ws, node, inputs_json, outputs, n_lat, n_tp, concurrency);
    print("uplink", up);
    std::cout << fmt::format("added by the uplink per event: p50 {:.1f} µs, p99 {:.1f} µs, mean {:.1f} µs\n",
                             up.latency.p50 - direct.latency.p50, up.latency.p99 - direct.latency.p99,
                             up.latency.mean - direct.latency.mean);
    beast::error_code ec;
    ws->close(websocket::close_code::normal, ec);
    return 0;
  } catch (const std::exception& e) {
    std::cerr << "muster-bridge-bench: " << e.what() << "\n";
    return 1;
  }
}
