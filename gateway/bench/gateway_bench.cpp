// gateway_bench.cpp — what muster-gateway costs: the same node called directly with the C++
// client and through the gateway (WebSocket and REST), sequential (latency p50/p99) and
// pipelined (calls/s), in one run against one musterd. Not a test: gateway/bench/run.sh starts
// everything and prints the table (docs/GATEWAY.md "Performance").
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <chrono>
#include <fstream>
#include <map>
#include <cstdio>
#include <deque>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include "../src/coalescing_stream.hpp"
#include "muster/client.hpp"
#include "net.hpp"

namespace bridge = muster::bridge;
namespace beast = bridge::beast;
namespace http = bridge::http;
namespace websocket = bridge::websocket;
using tcp = bridge::tcp;
using Clock = std::chrono::steady_clock;
using muster::Json;

namespace {

struct Result {
  std::string what;
  std::size_t calls = 0;
  double p50_us = 0, p99_us = 0, per_s = 0;
};

double pct(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  auto rank = static_cast<std::size_t>(std::ceil(p * static_cast<double>(v.size())));
  return v[std::clamp<std::size_t>(rank, 1, v.size()) - 1];
}

double us_since(Clock::time_point t) { return std::chrono::duration<double, std::micro>(Clock::now() - t).count(); }

Result sequential(const std::string& what, std::size_t n, const std::function<void()>& call) {
  for (std::size_t i = 0; i < std::min<std::size_t>(n / 10 + 1, 200); ++i) call();  // warm up
  std::vector<double> lat;
  lat.reserve(n);
  auto start = Clock::now();
  for (std::size_t i = 0; i < n; ++i) {
    auto t = Clock::now();
    call();
    lat.push_back(us_since(t));
  }
  double secs = us_since(start) / 1e6;
  return {what, n, pct(lat, 0.5), pct(lat, 0.99), static_cast<double>(n) / secs};
}

// ---- a WebSocket client of the gateway (Beast, synchronous) ----
// Its writes are coalesced (gateway/src/coalescing_stream.hpp): the execution.start messages
// written before the next read from the socket leave in one write, as a throughput-minded client
// would send them (one message per frame, one syscall per burst).
class GatewayWs {
 public:
  GatewayWs(bridge::net::io_context& ioc, const std::string& host, const std::string& port, const std::string& token)
      : ws_(ioc) {
    tcp::resolver resolver(ioc);
    auto results = resolver.resolve(host, port);
    bridge::net::connect(ws_.next_layer().next_layer(), results.begin(), results.end());
    ws_.next_layer().next_layer().set_option(tcp::no_delay(true));
    ws_.read_message_max(64 * 1024 * 1024);
    ws_.handshake(host, "/api/ws?token=" + token);
    ws_.text(true);
  }
  void start(std::uint64_t ref) {
    ws_.write(bridge::net::buffer(fmt::format(
        R"({{"type":"execution.start","payload":{{"node":"echo","inputs":{{"x":{}}},"client_ref":{}}},"timestamp":0}})", ref, ref)));
  }
  // The client_ref of the next finished execution (other messages are skipped). It reads the
  // three fields it needs (type, client_ref, status) where the gateway writes them
  // (gateway/core/executions.cpp) instead of parsing every message with nlohmann, whose cost
  // would otherwise dominate this client (the direct client decodes FlatBuffers); anything not
  // in that shape is parsed in full.
  std::uint64_t next_done() {
    for (;;) {
      buffer_.consume(buffer_.size());
      ws_.read(buffer_);
      std::string_view m(static_cast<const char*>(buffer_.data().data()), buffer_.size());
      static constexpr std::string_view kUpdated = R"({"type":"execution.updated","payload":{"execution_id":)";
      if (m.substr(0, kUpdated.size()) != kUpdated) {
        auto j = Json::parse(m);
        if (j["type"] == "execution.updated") throw std::runtime_error("unexpected execution.updated: " + j.dump());
        continue;  // a push
      }
      auto ref_at = m.find(R"(,"client_ref":)");
      auto status_at = m.find(R"(,"status":")");
      if (ref_at == std::string_view::npos || status_at == std::string_view::npos)
        throw std::runtime_error("unexpected execution.updated: " + std::string(m));
      auto status = m.substr(status_at + 11, m.find('"', status_at + 11) - (status_at + 11));
      if (status == "pending" || status == "running") continue;
      if (status != "completed") throw std::runtime_error("call failed: " + std::string(m));
      std::uint64_t ref = 0;
      auto digits = m.substr(ref_at + 14);
      std::from_chars(digits.data(), digits.data() + digits.size(), ref);
      return ref;
    }
  }

 private:
  websocket::stream<muster::gateway::CoalescingStream<tcp::socket>> ws_;
  beast::flat_buffer buffer_;
};

class GatewayHttp {
 public:
  GatewayHttp(bridge::net::io_context& ioc, const std::string& host, const std::string& port) : socket_(ioc), host_(host) {
    tcp::resolver resolver(ioc);
    auto results = resolver.resolve(host, port);
    bridge::net::connect(socket_, results.begin(), results.end());
    socket_.set_option(tcp::no_delay(true));
  }
  Json request(http::verb verb, const std::string& target, const std::string& body, const std::string& token = "") {
    http::request<http::string_body> req{verb, target, 11};
    req.set(http::field::host, host_);
    req.set(http::field::content_type, "application/json");
    if (!token.empty()) req.set(http::field::authorization, "Bearer " + token);
    req.keep_alive(true);
    req.body() = body;
    req.prepare_payload();
    http::write(socket_, req);
    http::response<http::string_body> res;
    http::read(socket_, buffer_, res);
    if (res.result() != http::status::ok)
      throw std::runtime_error(fmt::format("{} {}: {} {}", verb == http::verb::post ? "POST" : "GET", target,
                                           res.result_int(), res.body()));
    return Json::parse(res.body());
  }

 private:
  tcp::socket socket_;
  beast::flat_buffer buffer_;
  std::string host_;
};

// CPU seconds (utime + stime) a process has used: /proc/PID/stat, or getrusage for this one.
double cpu_seconds(int pid) {
  if (pid == 0) {
    rusage u{};
    getrusage(RUSAGE_SELF, &u);
    return static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
           static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
  }
  std::ifstream in(fmt::format("/proc/{}/stat", pid));
  std::string stat((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  auto fields = stat.substr(stat.rfind(')') + 2);  // after "pid (comm) "
  std::vector<std::string> f;
  for (std::size_t at = 0; at < fields.size();) {
    auto end = fields.find(' ', at);
    if (end == std::string::npos) end = fields.size();
    f.push_back(fields.substr(at, end - at));
    at = end + 1;
  }
  if (f.size() < 13) return 0;
  // Fields 14 and 15 of stat (utime, stime) are the 12th and 13th after the comm.
  return (std::stod(f[11]) + std::stod(f[12])) / static_cast<double>(sysconf(_SC_CLK_TCK));
}

// The CPU time of named processes (and of this client, "client") over one phase.
struct CpuMeter {
  std::map<std::string, int> pids;  // name -> pid; "client" is this process
  std::map<std::string, double> start;
  void begin() {
    for (auto& [name, pid] : pids) start[name] = cpu_seconds(pid);
  }
  std::map<std::string, double> end() {
    std::map<std::string, double> used;
    for (auto& [name, pid] : pids) used[name] = cpu_seconds(pid) - start[name];
    return used;
  }
};

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"gateway_bench — the gateway's cost next to direct C++ client calls (gateway/bench/run.sh)"};
  std::string gateway = "127.0.0.1:8080", user, password;
  std::size_t calls = 5000, pipelined = 20000, window = 64;
  app.add_option("--gateway", gateway, "host:port of muster-gateway")->capture_default_str();
  app.add_option("--user", user, "user with role call")->required();
  app.add_option("--password", password, "their password")->required();
  app.add_option("--calls", calls, "sequential calls per path")->capture_default_str();
  app.add_option("--pipelined", pipelined, "pipelined calls per path")->capture_default_str();
  app.add_option("--window", window, "calls in flight when pipelined")->capture_default_str();
  std::vector<std::string> cpu_of;
  app.add_option("--cpu", cpu_of,
                 "NAME=PID of a process whose CPU time per pipelined call to print (repeatable; run.sh "
                 "passes musterd, worker and gateway)");
  CLI11_PARSE(app, argc, argv);
  CpuMeter meter;
  meter.pids["client"] = 0;
  for (auto& c : cpu_of) meter.pids[c.substr(0, c.find('='))] = std::stoi(c.substr(c.find('=') + 1));
  std::map<std::string, double> cpu_direct, cpu_gateway;
  auto colon = gateway.rfind(':');
  std::string host = gateway.substr(0, colon), port = gateway.substr(colon + 1);

  try {
    bridge::net::io_context ioc;
    GatewayHttp rest(ioc, host, port);
    auto token = rest.request(http::verb::post, "/api/auth/login",
                              Json{{"username", user}, {"password", password}}.dump())["token"].get<std::string>();
    muster::Client client;
    GatewayWs ws(ioc, host, port, token);
    muster::Map inputs{{"x", 1}};
    std::vector<Result> results;

    results.push_back(sequential("direct C++ client", calls, [&] { client.call("echo", inputs); }));
    std::uint64_t ref = 0;
    results.push_back(sequential("gateway WebSocket", calls, [&] {
      ws.start(++ref);
      ws.next_done();
    }));
    results.push_back(sequential("gateway REST (keep-alive)", calls, [&] {
      rest.request(http::verb::post, "/api/nodes/echo/call", R"({"inputs":{"x":1}})", token);
    }));

    // Pipelined: `window` calls in flight, refilled as each finishes.
    {
      meter.begin();
      auto start = Clock::now();
      std::size_t sent = 0, done = 0;
      while (done < pipelined) {
        while (sent < pipelined && sent - done < window) {
          client.submit("echo", inputs);
          ++sent;
        }
        for (auto& ev : client.poll(std::chrono::milliseconds(100))) {
          if (!ev.terminal()) continue;
          if (!std::holds_alternative<muster::ResultEvent>(ev.body)) throw std::runtime_error("a direct call failed");
          ++done;
        }
      }
      results.push_back({fmt::format("direct C++ client, {} in flight", window), pipelined, 0, 0,
                         static_cast<double>(pipelined) / (us_since(start) / 1e6)});
      cpu_direct = meter.end();
    }
    {
      meter.begin();
      auto start = Clock::now();
      std::size_t sent = 0, done = 0;
      while (done < pipelined) {
        while (sent < pipelined && sent - done < window) {
          ws.start(++ref);
          ++sent;
        }
        ws.next_done();
        ++done;
      }
      results.push_back({fmt::format("gateway WebSocket, {} in flight", window), pipelined, 0, 0,
                         static_cast<double>(pipelined) / (us_since(start) / 1e6)});
      cpu_gateway = meter.end();
    }

    fmt::print("{:<40} {:>8} {:>10} {:>10} {:>10}\n", "path (node echo)", "calls", "p50 µs", "p99 µs", "calls/s");
    for (auto& r : results) {
      if (r.p50_us > 0)
        fmt::print("{:<40} {:>8} {:>10.0f} {:>10.0f} {:>10.0f}\n", r.what, r.calls, r.p50_us, r.p99_us, r.per_s);
      else
        fmt::print("{:<40} {:>8} {:>10} {:>10} {:>10.0f}\n", r.what, r.calls, "-", "-", r.per_s);
    }
    fmt::print("gateway adds {:.0f} µs p50 over WebSocket ({:.0f} µs over REST); pipelined WebSocket keeps {:.0f} % of "
               "direct throughput\n",
               results[1].p50_us - results[0].p50_us, results[2].p50_us - results[0].p50_us,
               100.0 * results[4].per_s / results[3].per_s);
    // CPU per pipelined call: the figure that holds on a shared machine. With every process
    // CPU-bound on `cores` cores, a path's ceiling is cores / (its CPU per call).
    fmt::print("\nCPU µs per pipelined call (utime+stime){}\n", "");
    double total_direct = 0, total_gateway = 0;
    for (auto& [name, pid] : meter.pids) {
      double d = cpu_direct[name] / static_cast<double>(pipelined) * 1e6;
      double g = cpu_gateway[name] / static_cast<double>(pipelined) * 1e6;
      total_direct += d;
      total_gateway += g;
      fmt::print("  {:<10} direct {:>6.1f}   gateway WebSocket {:>6.1f}\n", name, d, g);
    }
    const double cores = static_cast<double>(sysconf(_SC_NPROCESSORS_ONLN));
    fmt::print("  {:<10} direct {:>6.1f}   gateway WebSocket {:>6.1f}\n", "total", total_direct, total_gateway);
    fmt::print("CPU-bound ceiling on {:.0f} cores: direct {:.0f} calls/s, gateway {:.0f} calls/s ({:.0f} %)\n", cores,
               cores * 1e6 / total_direct, cores * 1e6 / total_gateway, 100.0 * total_direct / total_gateway);
  } catch (const std::exception& e) {
    fmt::print(stderr, "gateway_bench: {}\n", e.what());
    return 1;
  }
  return 0;
}
