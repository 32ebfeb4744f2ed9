// stream_bench.cpp — muster-bench-stream: streamed bandwidth and small items through musterd
// against the bare libzmq forwarder moving the same bytes in the same run (issue 18).
//   bulk:  N MiB worker -> caller. muster: the C++ SDK worker's `produce` node streams them as
//          one chunked output (1 MiB chunks, the SDK's 4 MiB credit window = 4 chunks in flight),
//          the C++ Client writes them to a sink that only counts them. forwarder: the same N MiB
//          as N answers of 1 MiB, 4 requests in flight.
//   items: K small items. muster: `count` emits {i} K times (Context::emit), the Client reads
//          them with Client::stream (its default window, 64 items). forwarder: K answers of 64
//          bytes, 64 requests in flight.
// Both systems are muster-bench's own stacks (stacks.hpp: the same processes, socket options
// and transports), started one after the other per transport, with muster-bench-stream-worker as
// their worker. The client side runs in this process; its endpoints are read from the broker's
// command line (/proc/PID/cmdline) and the stack's run directory layout (stacks.cpp's
// MusterStack: <dir>/muster-client-keys, <dir>/muster-client-token; change both together).
// Must never: assert on a timing. It reports.
#include <fstream>

#include <unistd.h>

#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <zmq.hpp>

#include "common.hpp"
#include "muster/client.hpp"
#include "stacks.hpp"

namespace mb = muster::bench;
using namespace std::chrono_literals;

namespace {

// The value after `flag` on process `pid`'s command line ("" if absent).
std::string cmdline_value(pid_t pid, std::string_view flag) {
  std::ifstream f(fmt::format("/proc/{}/cmdline", pid));
  std::vector<std::string> args;
  for (std::string a; std::getline(f, a, '\0');) args.push_back(a);
  for (std::size_t i = 0; i + 1 < args.size(); ++i)
    if (args[i] == flag) return args[i + 1];
  return {};
}

// Counts the bytes of each chunked output and keeps nothing.
class CountingSink final : public muster::OutputSink {
 public:
  void write(std::uint32_t, std::span<const std::uint8_t> data) override { bytes += data.size(); }
  void commit(std::uint32_t, const std::string&) override { committed = true; }
  void discard(std::uint32_t) noexcept override {}
  std::uint64_t bytes = 0;
  bool committed = false;
};

struct Run {
  double seconds = 0;                                      // wall time
  double broker_cpu = 0, worker_cpu = 0, client_cpu = 0;  // CPU seconds of each during it
  std::uint64_t units = 0;                                 // bytes or items delivered
  std::uint64_t broker_hwm_kib = 0;
  std::string error;
};

// Runs `body` (returns what it delivered), timing it and sampling the broker, the worker and
// this process (the client) before and after.
template <class F>
Run measure(pid_t broker, pid_t worker, F&& body) {
  Run r;
  auto a = mb::sample_process(broker), wa = mb::sample_process(worker), ca = mb::sample_process(::getpid());
  auto start = mb::SteadyClock::now();
  try {
    r.units = body();
  } catch (const std::exception& e) {
    r.error = e.what();
  }
  r.seconds = std::chrono::duration<double>(mb::SteadyClock::now() - start).count();
  auto b = mb::sample_process(broker), wb = mb::sample_process(worker), cb = mb::sample_process(::getpid());
  r.broker_cpu = b.cpu_seconds - a.cpu_seconds;
  r.worker_cpu = wb.cpu_seconds - wa.cpu_seconds;
  r.client_cpu = cb.cpu_seconds - ca.cpu_seconds;
  r.broker_hwm_kib = b.hwm_kib;
  return r;
}

// The C++ Client of the muster stack that `musterd` runs (stacks.cpp's layout: stack "muster").
muster::ClientOptions muster_client_options(pid_t musterd, mb::Transport t, const std::filesystem::path& dir) {
  muster::ClientOptions c;
  c.client_address = cmdline_value(musterd, "--client-address");
  c.insecure = t == mb::Transport::Tcp;
  if (t == mb::Transport::Curve) {
    c.secure.data_dir = (dir / "muster-client-keys").string();  // enrolled by the stack's readiness check
    c.secure.name = "bench-client";
    c.secure.role = "client";
    c.secure.enrollment_address = cmdline_value(musterd, "--enrollment-address");
    c.secure.token_file = (dir / "muster-client-token").string();
  }
  return c;
}

std::uint64_t muster_bulk(muster::Client& client, std::uint64_t mib) {
  auto sink = std::make_shared<CountingSink>();
  muster::CallOptions o;
  o.timeout_ms = 3600 * 1000;
  o.output_sink = sink;
  client.call("produce", {{"mib", muster::Value(static_cast<std::int64_t>(mib))}}, o);
  if (!sink->committed || sink->bytes != (mib << 20))
    throw std::runtime_error(fmt::format("produce delivered {} of {} bytes (committed: {})", sink->bytes,
                                         mib << 20, sink->committed));
  return sink->bytes;
}

std::uint64_t muster_items(muster::Client& client, std::uint64_t n) {
  muster::CallOptions o;
  o.timeout_ms = 3600 * 1000;
  auto s = client.stream("count", {{"n", muster::Value(static_cast<std::int64_t>(n))}}, o);
  std::uint64_t got = 0;
  for (const muster::Map& item : s) {
    (void)item;
    ++got;
  }
  s.outputs();
  if (got != n) throw std::runtime_error(fmt::format("count delivered {} of {} items", got, n));
  return got;
}

// A bare DEALER on the forwarder's client socket, set as the client library sets its own.
class ForwarderClient {
 public:
  explicit ForwarderClient(pid_t forwarder) {
    s_.set(zmq::sockopt::linger, 0);
    s_.set(zmq::sockopt::rcvhwm, 100000);
    s_.set(zmq::sockopt::sndhwm, 100000);
    if (auto secret = cmdline_value(forwarder, "--curve-secret"); !secret.empty()) {
      char pub[41] = {};
      if (zmq_curve_public(pub, secret.c_str()) != 0) throw std::runtime_error("zmq_curve_public failed");
      auto keys = mb::curve_keypair();
      s_.set(zmq::sockopt::curve_serverkey, std::string(pub, 40));
      s_.set(zmq::sockopt::curve_publickey, keys.public_key);
      s_.set(zmq::sockopt::curve_secretkey, keys.secret_key);
    }
    s_.connect(cmdline_value(forwarder, "--client-address"));
    run(1, 64, 1);  // connected (and the CURVE handshake done) before anything is timed
  }

  // `count` answers of `size` bytes from the worker, `window` requests in flight. Returns the
  // bytes received for answers of 1 MiB or more, else the number of answers.
  std::uint64_t run(std::uint64_t count, std::uint64_t size, std::uint64_t window) {
    std::uint64_t sent = 0, received = 0, bytes = 0;
    while (received < count) {
      for (; sent < count && sent - received < window; ++sent) {
        std::uint64_t req[2] = {sent + 1, size};  // id, answer size (stream_worker.cpp --baseline)
        s_.send(zmq::buffer(req, sizeof req), zmq::send_flags::none);
      }
      zmq::pollitem_t item{s_.handle(), 0, ZMQ_POLLIN, 0};
      if (zmq::poll(&item, 1, 10s) == 0) throw std::runtime_error("forwarder: no answer for 10 s");
      zmq::message_t m;
      while (s_.recv(m, zmq::recv_flags::dontwait)) {
        if (m.size() != size)
          throw std::runtime_error(fmt::format("forwarder: an answer of {} bytes, not {}", m.size(), size));
        ++received;
        bytes += m.size();
      }
    }
    return size >= (1u << 20) ? bytes : received;
  }

 private:
  zmq::context_t ctx_{1};
  zmq::socket_t s_{ctx_, zmq::socket_type::dealer};
};

}  // namespace

int main(int argc, char** argv) {
  std::uint64_t mib = 512, items = 100000;
  std::vector<std::string> transports = {"ipc", "tcp", "curve"};
  std::filesystem::path dir;
  CLI::App app{"muster-bench-stream — a chunked output and small items through musterd against the bare "
               "libzmq forwarder, in the same run (tools/bench/README.md).",
               "muster-bench-stream"};
  app.add_option("--mib", mib, "MiB moved worker -> caller per system and transport")->capture_default_str()
      ->check(CLI::Range(1, 1 << 20));
  app.add_option("--items", items, "Small items per system and transport (0: skip)")->capture_default_str();
  app.add_option("--transports", transports, "ipc, tcp, curve")->delimiter(',')->capture_default_str();
  app.add_option("--dir", dir, "Run directory (sockets, logs); default a fresh one under /tmp");
  CLI11_PARSE(app, argc, argv);
  for (const auto& name : transports)
    if (!mb::parse_transport(name)) {
      fmt::print(stderr, "muster-bench-stream: unknown transport '{}' (ipc, tcp, curve)\n", name);
      return 2;
    }
  if (dir.empty()) {
    char tmpl[] = "/tmp/muster-bench-stream-XXXXXX";
    if (!::mkdtemp(tmpl)) throw std::runtime_error("mkdtemp failed");
    dir = tmpl;
  }
  const auto bin = mb::self_dir();
  mb::Paths paths{.musterd = MUSTER_BENCH_MUSTERD, .worker = bin / "muster-bench-stream-worker",
                  .forwarder = bin / "muster-bench-forwarder", .simworkers = {}, .hbfloor = {}};

  fmt::print("muster-bench-stream: {} MiB worker -> caller, {} items; {}; {}; load {}\n", mib, items,
             mb::cpu_model(), mb::kernel_release(), mb::load_average());
  fmt::print("bulk: MiB/s, % of the forwarder's, CPU ms per MiB of broker/worker/client; items: items/s, % of "
             "the forwarder's 64-byte answers, broker CPU us per item; the broker's peak RSS (VmHWM)\n");
  fmt::print("{:<6} {:<10} {:>7} {:>6} {:>8} {:>8} {:>8} {:>9} {:>6} {:>8} {:>11}\n", "trans", "system", "MiB/s", "%",
             "broker", "worker", "client", "items/s", "%", "us/item", "VmHWM KiB");
  int failures = 0;
  for (const auto& name : transports) {
    auto t = mb::parse_transport(name);  // checked above
    Run fb, fi, mbk, mi;
    try {
      {
        auto stack = mb::make_baseline_stack(paths);
        mb::StackOptions so{.transport = *t, .workers = 1, .capacity = 1, .musterd_args = {}, .dir = dir / ("forwarder-" + name)};
        std::filesystem::create_directories(so.dir / "logs");
        stack->start(so);
        pid_t p = stack->broker_pid(), w = stack->worker_pids().at(0);
        ForwarderClient client(p);
        fb = measure(p, w, [&] { return client.run(mib, 1u << 20, 4); });
        if (items) fi = measure(p, w, [&] { return client.run(items, 64, 64); });
        stack->stop();
      }
      {
        auto stack = mb::make_muster_stack(paths);
        mb::StackOptions so{.transport = *t, .workers = 1, .capacity = 1, .musterd_args = {}, .dir = dir / ("muster-" + name)};
        std::filesystem::create_directories(so.dir / "logs");
        stack->start(so);
        pid_t p = stack->broker_pid(), w = stack->worker_pids().at(0);
        muster::Client client(muster_client_options(p, *t, so.dir));
        muster_bulk(client, 1);  // connected (enrolled, for CURVE) before anything is timed
        mbk = measure(p, w, [&] { return muster_bulk(client, mib); });
        if (items) mi = measure(p, w, [&] { return muster_items(client, items); });
        stack->stop();
      }
    } catch (const std::exception& e) {  // a stack that did not start: the next transport still runs
      ++failures;
      fmt::print(stderr, "{}: cannot run: {}\n", name, e.what());
      continue;
    }
    for (auto* r : {&fb, &fi, &mbk, &mi})
      if (!r->error.empty()) ++failures, fmt::print(stderr, "{}: error: {}\n", name, r->error);
    auto mibs = [](const Run& r) { return r.error.empty() && r.seconds > 0 ? r.units / 1048576.0 / r.seconds : 0.0; };
    auto rate = [](const Run& r) { return r.error.empty() && r.seconds > 0 ? r.units / r.seconds : 0.0; };
    auto per_mib = [&](double cpu) { return 1000.0 * cpu / static_cast<double>(mib); };
    auto per_item = [&](const Run& r) { return items ? 1e6 * r.broker_cpu / static_cast<double>(items) : 0.0; };
    auto pct = [](double a, double b) { return b > 0 ? fmt::format("{:.0f}%", 100 * a / b) : std::string("-"); };
    auto row = [&](std::string_view system, const Run& bulk, const Run& it, std::string bulk_pct, std::string items_pct) {
      fmt::print("{:<6} {:<10} {:>7.0f} {:>6} {:>8.2f} {:>8.2f} {:>8.2f} {:>9.0f} {:>6} {:>8.2f} {:>11}\n", name, system,
                 mibs(bulk), bulk_pct, per_mib(bulk.broker_cpu), per_mib(bulk.worker_cpu), per_mib(bulk.client_cpu),
                 rate(it), items_pct, per_item(it), std::max(bulk.broker_hwm_kib, it.broker_hwm_kib));
    };
    row("forwarder", fb, fi, "", "");
    row("musterd", mbk, mi, pct(mibs(mbk), mibs(fb)), pct(rate(mi), rate(fi)));
    std::fflush(stdout);
  }
  fmt::print("load after: {}; run directory {}\n", mb::load_average(), dir.string());
  return failures ? 1 : 0;
}
