// bench.cpp — muster-bench: end-to-end calls through musterd to C++ SDK workers, against the
// bare-libzmq baseline (muster-bench-forwarder) in the same run, as separate processes.
// Prints one table of muster/baseline ratios (or JSON) and the issue-5 targets.
//
//   muster-bench                         the standard matrix (ipc, tcp, curve × 64 B, 4 KiB,
//                                        1 MiB × one-at-a-time, pipelined)
//   muster-bench --scale                 the matrix, then the scale scenario
//   muster-bench --no-matrix --scale     the scale scenario only
//   muster-bench --json                  JSON on stdout (the table goes to stderr)
//   muster-bench --system baseline,muster,muster-durable,muster-durable-pg
//                                        + durable calls (SQLite journal; PostgreSQL journal on
//                                        a private server), with their ratio to muster, the
//                                        issue-15 target and the journal's size
//
// Modes: "latency" = one call at a time (round trip percentiles); "throughput" = `--depth`
// calls kept in flight through the client library's async submit/poll (calls/s, MiB/s of
// payload each way). The bench process is the client; daemon/forwarder and workers are
// children. Each measurement alternates baseline and muster on stacks that stay up for the
// whole transport, so the ratios come from the same minutes on the same machine.
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <iostream>
#include <map>
#include <optional>
#include <thread>
#include <unordered_map>

#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>
#include <zmq.h>

#include "common.hpp"
#include "muster/allocator.hpp"
#include "scale.hpp"
#include "stacks.hpp"

using namespace muster::bench;
using namespace std::chrono_literals;
using nlohmann::json;

namespace {

// The systems whose calls are durable, each compared with system muster in the same run: the
// journal they use and the musterd flags of their own (docs/DURABILITY.md §4, §3).
struct DurableSystem {
  const char* name;
  JournalKind journal;
  std::vector<std::string> musterd_args;
  bool alt = false;  // the build of --alt-musterd (a before/after of a journal change, same run)
};
const std::vector<DurableSystem> kDurable = {
    {"muster-durable", JournalKind::Sqlite, {}},
    {"muster-durable-normal", JournalKind::Sqlite, {"--journal-sync", "normal"}},
    {"muster-durable-two-commits", JournalKind::Sqlite, {"--journal-early-dispatch", "false"}},
    {"muster-durable-pg", JournalKind::Postgres, {}},
    {"muster-durable-pg-normal", JournalKind::Postgres, {"--journal-sync", "normal"}},
    {"alt-durable", JournalKind::Sqlite, {}, true},
    {"alt-durable-normal", JournalKind::Sqlite, {"--journal-sync", "normal"}, true},
};
const std::vector<const char*> kDurableSystems = [] {
  std::vector<const char*> names;
  for (auto& d : kDurable) names.push_back(d.name);
  return names;
}();
const DurableSystem* durable_system(const std::string& name) {
  for (auto& d : kDurable)
    if (name == d.name) return &d;
  return nullptr;
}

struct Options {
  std::vector<std::string> transports = {"ipc", "tcp", "curve"};
  std::vector<std::string> payloads = {"64", "4KiB", "1MiB"};
  std::vector<std::string> modes = {"latency", "throughput"};
  std::vector<std::string> systems = {"baseline", "muster"};
  int workers = 2;
  int depth = 32;
  int capacity = 0;  // 0: auto = ceil(depth / workers)
  double duration = 2.0;
  double warmup = 0.5;
  double slice = 0.25;
  int latency_block = 20;
  int repeat = 1;
  bool json_out = false;
  std::string json_file;
  bool scale = false;
  bool no_matrix = false;
  ScaleOptions scale_opt;
  std::string scale_transport = "ipc";
  std::string scale_payload = "64";
  std::vector<std::string> musterd_args;
  bool keep = false;
  Paths paths;
  Paths alt_paths;  // a second muster build (system "alt"), e.g. a prototype fix
};

json nan_null(double v) { return std::isnan(v) ? json(nullptr) : json(v); }

struct Measurement {
  std::string system, transport, mode, note;
  std::size_t payload = 0;
  int depth = 1;
  bool ran = false;
  LatencySummary lat;
  std::uint64_t calls = 0, errors = 0;
  double seconds = 0, calls_per_s = 0, mib_per_s = 0;
  double broker_cpu = 0, workers_cpu = 0, client_cpu = 0;  // % of one core while running
  double broker_us_per_call = NAN, workers_us_per_call = NAN;  // CPU time per call
  double client_us_per_call = NAN;  // the bench process (client library); throughput mode only

  json to_json() const {
    return json{{"system", system},
                {"transport", transport},
                {"payload_bytes", payload},
                {"mode", mode},
                {"depth", depth},
                {"ran", ran},
                {"note", note},
                {"calls", calls},
                {"errors", errors},
                {"seconds", seconds},
                {"calls_per_s", calls_per_s},
                {"mib_per_s", mib_per_s},
                {"latency_us",
                 {{"mean", lat.mean_us}, {"p50", lat.p50_us}, {"p90", lat.p90_us}, {"p99", lat.p99_us},
                  {"p99.9", lat.p999_us}, {"max", lat.max_us}}},
                {"cpu_percent", {{"broker", nan_null(broker_cpu)}, {"workers", nan_null(workers_cpu)}, {"client", nan_null(client_cpu)}}},
                {"cpu_us_per_call",
                 {{"broker", nan_null(broker_us_per_call)}, {"workers", nan_null(workers_us_per_call)},
                  {"client", nan_null(client_us_per_call)}}}};
  }
};

// One system under test within one cell: its driver, its samples and its CPU accounting.
struct Runner {
  Stack* stack = nullptr;
  std::unique_ptr<Driver> driver;
  Measurement m;
  std::vector<std::int64_t> ns;
  double active_s = 0, broker_cpu_s = 0, workers_cpu_s = 0, client_cpu_s = 0;
  std::vector<pid_t> worker_pids;
  ProcSample b0, c0;
  std::vector<ProcSample> w0;

  void cpu_begin() {
    b0 = sample_process(stack->broker_pid());
    c0 = sample_process(::getpid());
    w0.clear();
    for (auto p : worker_pids) w0.push_back(sample_process(p));
  }
  void cpu_end() {
    auto b1 = sample_process(stack->broker_pid());
    auto c1 = sample_process(::getpid());
    active_s += std::chrono::duration<double>(b1.at - b0.at).count();
    broker_cpu_s += b1.cpu_seconds - b0.cpu_seconds;
    client_cpu_s += c1.cpu_seconds - c0.cpu_seconds;
    for (std::size_t i = 0; i < worker_pids.size(); ++i)
      workers_cpu_s += sample_process(worker_pids[i]).cpu_seconds - w0[i].cpu_seconds;
  }
  void finish(double seconds) {
    m.seconds = seconds;
    m.calls = ns.size();
    m.lat = summarize(ns);
    m.calls_per_s = seconds > 0 ? static_cast<double>(m.calls) / seconds : 0;
    m.mib_per_s = m.calls_per_s * static_cast<double>(m.payload) / (1 << 20);
    if (active_s > 0) {
      m.broker_cpu = 100 * broker_cpu_s / active_s;
      m.workers_cpu = 100 * workers_cpu_s / active_s;
      m.client_cpu = 100 * client_cpu_s / active_s;
    }
    if (m.calls) {
      m.broker_us_per_call = 1e6 * broker_cpu_s / static_cast<double>(m.calls);
      m.workers_us_per_call = 1e6 * workers_cpu_s / static_cast<double>(m.calls);
      m.client_us_per_call = 1e6 * client_cpu_s / static_cast<double>(m.calls);
    }
    m.ran = true;
  }
};

// One call at a time, the systems interleaved in blocks of `latency_block` calls (A×n B×n A×n
// ...), so that whatever else the machine is doing hits both alike. Blocks rather than single
// calls: work a system does after its reply (musterd's Ack to the worker, the worker reading
// it) would otherwise land on the other system's next call. The first call of each block is
// not counted for the same reason.
void measure_latency(std::vector<Runner*>& rs, const Options& o) {
  auto one = [&](Runner& r) -> std::int64_t {  // >0: round trip ns; 0: failed call; <0: hung
    auto t0 = SteadyClock::now();
    auto id = r.driver->submit();
    bool got = false, ok = false;
    while (!got) {
      r.driver->poll(1000, [&](std::uint64_t done, bool good) {
        if (done == id) got = true, ok = good;
      });
      if (!got && SteadyClock::now() - t0 > 30s) return -1;
    }
    auto t = std::chrono::duration_cast<std::chrono::nanoseconds>(SteadyClock::now() - t0).count();
    return ok ? std::max<std::int64_t>(t, 1) : 0;
  };
  auto warm_end = SteadyClock::now() + std::chrono::duration<double>(o.warmup);
  while (SteadyClock::now() < warm_end)
    for (auto* r : rs)
      if (one(*r) < 0) throw std::runtime_error(r->m.system + ": a call got no answer within 30 s");
  for (auto* r : rs) r->cpu_begin();
  // Each system gets `duration` seconds of calls, so the wall time is about twice that.
  auto start = SteadyClock::now();
  auto end = start + std::chrono::duration<double>(o.duration * static_cast<double>(rs.size()));
  const int block = std::max(1, o.latency_block);
  while (SteadyClock::now() < end)
    for (auto* r : rs)
      for (int i = 0; i < block; ++i) {
        auto t = one(*r);
        if (t < 0) throw std::runtime_error(r->m.system + ": a call got no answer within 30 s");
        if (block > 1 && i == 0) continue;  // may carry the other system's trailing work
        if (t == 0) ++r->m.errors;
        else r->ns.push_back(t);
      }
  for (auto* r : rs) r->cpu_end();
  for (auto* r : rs) {
    double busy = 0;
    for (auto t : r->ns) busy += static_cast<double>(t) / 1e9;
    r->finish(busy);  // calls/s of this system while it was the one being called
    // CPU % over the interleaved window would mix in the other system's turns: report it
    // per call only (broker/workers µs per call).
    r->m.broker_cpu = r->m.workers_cpu = r->m.client_cpu = r->m.client_us_per_call = NAN;
  }
}

// `depth` calls in flight, the systems alternating in slices of `slice` seconds (A B, B A,
// A B, ...) until each has had `duration` seconds. Each slice ramps up for 50 ms (not
// counted) and drains afterwards (not counted).
void measure_throughput(std::vector<Runner*>& rs, const Options& o) {
  auto warm = std::chrono::duration<double>(std::min(0.05, o.warmup));
  auto run_slice = [&](Runner& r, std::chrono::duration<double> ramp, std::chrono::duration<double> len,
                       bool count) {
    std::unordered_map<std::uint64_t, SteadyClock::time_point> open;
    bool measuring = false;
    auto on_done = [&](std::uint64_t id, bool ok) {
      auto it = open.find(id);
      if (it == open.end()) return;
      if (measuring && count) {
        if (ok)
          r.ns.push_back(std::chrono::duration_cast<std::chrono::nanoseconds>(SteadyClock::now() - it->second).count());
        else
          ++r.m.errors;
      }
      open.erase(it);
    };
    auto last_progress = SteadyClock::now();
    auto run_until = [&](auto until) {
      while (SteadyClock::now() < until) {
        while (open.size() < static_cast<std::size_t>(o.depth)) open.emplace(r.driver->submit(), SteadyClock::now());
        auto before = open.size();
        r.driver->poll(100, on_done);
        if (open.size() < before) last_progress = SteadyClock::now();
        if (SteadyClock::now() - last_progress > 30s)
          throw std::runtime_error(r.m.system + ": no call completed for 30 s");
      }
    };
    run_until(SteadyClock::now() + ramp);
    if (count) r.cpu_begin();
    measuring = true;
    auto start = SteadyClock::now();
    run_until(start + len);
    measuring = false;
    auto elapsed = std::chrono::duration<double>(SteadyClock::now() - start).count();
    if (count) r.cpu_end();
    for (auto until = SteadyClock::now() + 30s; !open.empty() && SteadyClock::now() < until;)
      r.driver->poll(100, on_done);
    return elapsed;
  };
  for (auto* r : rs) run_slice(*r, std::chrono::duration<double>(o.warmup), 0s, false);
  int slices = std::max(1, static_cast<int>(std::lround(o.duration / o.slice)));
  auto len = std::chrono::duration<double>(o.duration / slices);
  std::vector<double> measured(rs.size(), 0);
  for (int i = 0; i < slices; ++i)
    for (std::size_t k = 0; k < rs.size(); ++k) {
      std::size_t j = i % 2 ? rs.size() - 1 - k : k;
      measured[j] += run_slice(*rs[j], warm, len, true);
    }
  for (std::size_t j = 0; j < rs.size(); ++j) rs[j]->finish(measured[j]);
}

// The median of repeated measurements by the mode's main figure.
Measurement median(std::vector<Measurement> runs) {
  std::sort(runs.begin(), runs.end(), [](const Measurement& a, const Measurement& b) {
    return a.mode == "latency" ? a.lat.p50_us < b.lat.p50_us : a.calls_per_s < b.calls_per_s;
  });
  return runs[runs.size() / 2];
}

struct Key {
  std::string transport;
  std::size_t payload;
  std::string mode, system;
  auto operator<=>(const Key&) const = default;
};

struct Target {
  std::string name, detail;
  double value = NAN, limit = 0;
  bool at_most = true;  // value <= limit, else value >= limit
  bool measured = false;
  bool met() const { return measured && (at_most ? value <= limit : value >= limit); }
  json to_json() const {
    return json{{"name", name}, {"detail", detail}, {"value", measured ? json(value) : json(nullptr)},
                {"limit", limit}, {"comparison", at_most ? "<=" : ">="}, {"measured", measured},
                {"met", met()}};
  }
};

std::string fmt_num(double v) {
  if (std::isnan(v)) return "-";
  if (v >= 100000) return fmt::format("{:.0f}", v);
  if (v >= 1000) return fmt::format("{:.0f}", v);
  if (v >= 100) return fmt::format("{:.1f}", v);
  return fmt::format("{:.2f}", v);
}

std::string render_table(const Options& o, const std::map<Key, Measurement>& cells,
                         const std::vector<std::string>& transports, const std::vector<std::size_t>& payloads,
                         const std::string& system = "muster", const std::string& reference = "baseline") {
  std::string out;
  out += fmt::format("{:<6} {:<8} {:<12} {:<16} {:>14} {:>14} {:>8}  {}\n", "trans", "payload", "mode", "metric",
                     system, reference, "ratio", fmt::format("({} / {})", system, reference));
  out += std::string(100, '-') + "\n";
  for (auto& t : transports)
    for (auto p : payloads)
      for (auto& mode : o.modes) {
        auto mi = cells.find({t, p, mode, system});
        auto bi = cells.find({t, p, mode, reference});
        const Measurement* mm = mi != cells.end() && mi->second.ran ? &mi->second : nullptr;
        const Measurement* bb = bi != cells.end() && bi->second.ran ? &bi->second : nullptr;
        if (!mm && !bb) continue;
        std::string mode_name = mode == "latency" ? "1-at-a-time" : fmt::format("pipelined x{}", o.depth);
        std::vector<std::pair<std::string, std::function<double(const Measurement&)>>> rows;
        if (mode == "latency") {
          rows = {{"p50 us", [](auto& m) { return m.lat.p50_us; }},
                  {"p90 us", [](auto& m) { return m.lat.p90_us; }},
                  {"p99 us", [](auto& m) { return m.lat.p99_us; }},
                  {"p99.9 us", [](auto& m) { return m.lat.p999_us; }},
                  {"calls/s", [](auto& m) { return m.calls_per_s; }}};
        } else {
          rows = {{"calls/s", [](auto& m) { return m.calls_per_s; }},
                  {"MiB/s each way", [](auto& m) { return m.mib_per_s; }},
                  {"p50 us (loaded)", [](auto& m) { return m.lat.p50_us; }},
                  {"p99 us (loaded)", [](auto& m) { return m.lat.p99_us; }}};
        }
        bool first = true;
        for (auto& [label, get] : rows) {
          double mv = mm ? get(*mm) : NAN, bv = bb ? get(*bb) : NAN;
          std::string ratio = (mm && bb && bv > 0) ? fmt::format("{:.2f}x", mv / bv) : "-";
          std::string extra;
          if (first) {
            auto cpu = [](const Measurement* m) {
              return m ? fmt::format("{:.0f}/{:.0f}", m->broker_us_per_call, m->workers_us_per_call) : "-";
            };
            extra = fmt::format("cpu us/call (broker/workers): {} {}  {} {}", system, cpu(mm), reference, cpu(bb));
            if (mm && mm->errors) extra += fmt::format("  {} errors {}", system, mm->errors);
            if (bb && bb->errors) extra += fmt::format("  {} errors {}", reference, bb->errors);
            if (!mm && mi != cells.end() && !mi->second.note.empty()) extra = system + ": " + mi->second.note;
          } else if (label == rows[1].first && mode != "latency") {
            auto pct = [](const Measurement* m) {
              return m ? fmt::format("{:.0f}/{:.0f}/{:.0f}", m->broker_cpu, m->workers_cpu, m->client_cpu) : "-";
            };
            extra = fmt::format("cpu % of a core (broker/workers/client): {} {}  {} {}", system, pct(mm), reference,
                                pct(bb));
          } else if (label == rows[2].first && mode != "latency") {
            auto total = [](const Measurement* m) {
              return m ? fmt::format("{:.0f} (client {:.0f})",
                                     m->broker_us_per_call + m->workers_us_per_call + m->client_us_per_call,
                                     m->client_us_per_call)
                       : "-";
            };
            extra = fmt::format("cpu us/call, all processes: {} {}  {} {}", system, total(mm), reference, total(bb));
          }
          out += fmt::format("{:<6} {:<8} {:<12} {:<16} {:>14} {:>14} {:>8}  {}\n", first ? t : "",
                             first ? size_name(p) : "", first ? mode_name : "", label,
                             mm ? fmt_num(mv) : "n/a", bb ? fmt_num(bv) : "n/a", ratio, extra);
          first = false;
        }
      }
  return out;
}

std::vector<std::string> split_all(const std::vector<std::string>& in) {
  std::vector<std::string> out;
  for (auto& s : in) {
    std::size_t start = 0;
    while (start <= s.size()) {
      auto c = s.find(',', start);
      auto part = s.substr(start, c == std::string::npos ? std::string::npos : c - start);
      if (!part.empty()) out.push_back(part);
      if (c == std::string::npos) break;
      start = c + 1;
    }
  }
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  spdlog::set_level(spdlog::level::warn);  // the client library's enrollment notes (curve)
  // This process is the client of every system measured: the same malloc setting for all, and
  // the one musterd and the SDK use (muster/allocator.hpp).
  muster::reuse_memory_for_large_messages();
  Options o;
  auto bin = self_dir();
  o.paths.musterd = MUSTER_BENCH_MUSTERD;
  o.paths.worker = bin / "muster-bench-worker";
  o.paths.forwarder = bin / "muster-bench-forwarder";
  o.paths.simworkers = bin / "muster-bench-simworkers";
  o.paths.hbfloor = bin / "muster-bench-hbfloor";
  std::string musterd_path = o.paths.musterd.string();

  CLI::App app{"muster-bench — muster against the bare-libzmq baseline, as separate processes.",
               "muster-bench"};
  app.add_option("--transport,-t", o.transports, "ipc, tcp, curve (comma-separated)")->capture_default_str();
  app.add_option("--payload,-p", o.payloads, "Payload sizes: 64, 4KiB, 1MiB, ...")->capture_default_str();
  app.add_option("--mode,-m", o.modes, "latency (one call at a time), throughput (pipelined)")->capture_default_str();
  app.add_option("--system", o.systems,
                 "baseline, muster; also raw (musterd + protocol-minimal echo workers, no SDK) and alt "
                 "(a second muster build, see --alt-musterd), alt-raw, muster-durable (musterd with a SQLite "
                 "journal, every call durable), muster-durable-normal (the same with --journal-sync normal), "
                 "muster-durable-two-commits (the same with --journal-early-dispatch false), muster-durable-pg "
                 "(on a private PostgreSQL), muster-durable-pg-normal, alt-durable and alt-durable-normal "
                 "(muster-durable and muster-durable-normal with --alt-musterd)")->capture_default_str();
  app.add_option("--workers,-w", o.workers, "Worker processes per stack")->capture_default_str();
  app.add_option("--depth,-d", o.depth, "Calls in flight in throughput mode")->capture_default_str();
  app.add_option("--capacity", o.capacity, "SDK worker capacity (0: ceil(depth / workers))")->capture_default_str();
  app.add_option("--duration", o.duration, "Seconds measured per cell")->capture_default_str();
  app.add_option("--warmup", o.warmup, "Seconds of warm-up per cell")->capture_default_str();
  app.add_option("--slice", o.slice, "Throughput: seconds per alternating slice")->capture_default_str();
  app.add_option("--latency-block", o.latency_block, "Latency: calls per alternating block")->capture_default_str();
  app.add_option("--repeat", o.repeat, "Alternating runs per cell; the median is reported")->capture_default_str();
  app.add_flag("--json", o.json_out, "JSON on stdout, the table on stderr");
  app.add_option("--json-file", o.json_file, "Also write the JSON to this file");
  app.add_flag("--scale", o.scale, "Run the scale scenario (1,000 simulated workers, 10,000 queued)");
  app.add_flag("--no-matrix", o.no_matrix, "Skip the latency/throughput matrix");
  app.add_option("--scale-workers", o.scale_opt.workers, "Simulated workers")->capture_default_str();
  app.add_option("--scale-processes", o.scale_opt.processes, "Processes they are spread over")->capture_default_str();
  app.add_option("--scale-queued", o.scale_opt.queued, "Requests left queued")->capture_default_str();
  app.add_option("--scale-window", o.scale_opt.window_s, "Seconds of each CPU window")->capture_default_str();
  app.add_option("--scale-transport", o.scale_transport, "ipc or tcp")->capture_default_str();
  app.add_option("--scale-submit-rate", o.scale_opt.submit_rate,
                 "Requests/s when filling the queue (0: as fast as possible)")->capture_default_str();
  app.add_flag("!--no-scale-floor", o.scale_opt.floor, "Skip the bare-libzmq heartbeat floor of the scale scenario");
  app.add_flag("!--scale-no-direct", o.scale_opt.direct,
               "Simulated workers do not ask for direct (PROTOCOL.md §7.10): SUB + DEALER each, as before");
  app.add_option("--scale-soak", o.scale_opt.soak_s,
                 "Seconds to wait before a second RSS reading (steady state needs ~500 pings)")->capture_default_str();
  app.add_option("--scale-payload", o.scale_payload, "Input size of each queued request")->capture_default_str();
  app.add_option("--musterd", musterd_path, "musterd binary (e.g. a prototype build)")->capture_default_str();
  app.add_option("--worker-bin", o.paths.worker, "muster-bench-worker binary")->capture_default_str();
  app.add_option("--alt-musterd", o.alt_paths.musterd, "musterd of a second muster build, measured as system 'alt'");
  app.add_option("--alt-worker-bin", o.alt_paths.worker, "muster-bench-worker of that build");
  app.add_option("--musterd-arg", o.musterd_args, "Extra musterd flag (repeatable)")->allow_extra_args(false);
  app.add_flag("--keep", o.keep, "Keep the run directory (logs) after the run");
  CLI11_PARSE(app, argc, argv);
  o.paths.musterd = musterd_path;
  if (!o.alt_paths.musterd.empty() || !o.alt_paths.worker.empty()) {
    if (o.alt_paths.musterd.empty()) o.alt_paths.musterd = o.paths.musterd;
    if (o.alt_paths.worker.empty()) o.alt_paths.worker = o.paths.worker;
    o.alt_paths.forwarder = o.paths.forwarder;
    o.alt_paths.simworkers = o.paths.simworkers;
    o.alt_paths.hbfloor = o.paths.hbfloor;
  }
  o.transports = split_all(o.transports);
  o.payloads = split_all(o.payloads);
  o.modes = split_all(o.modes);
  o.systems = split_all(o.systems);
  if (!o.alt_paths.musterd.empty() && std::find(o.systems.begin(), o.systems.end(), "alt") == o.systems.end() &&
      std::find(o.systems.begin(), o.systems.end(), "alt-raw") == o.systems.end())
    o.systems.push_back("alt");
  if (o.capacity <= 0) o.capacity = std::max(1, (o.depth + o.workers - 1) / o.workers);

  std::vector<std::size_t> payloads;
  for (auto& p : o.payloads) payloads.push_back(parse_size(p));
  for (auto& t : o.transports)
    if (!parse_transport(t)) {
      fmt::print(stderr, "muster-bench: unknown transport '{}'\n", t);
      return 2;
    }

  const std::string load_start = load_average();
  char tmpl[] = "/tmp/muster-bench-XXXXXX";
  std::filesystem::path dir = ::mkdtemp(tmpl);
  std::filesystem::permissions(dir, std::filesystem::perms::owner_all, std::filesystem::perm_options::replace);
  fmt::print(stderr, "muster-bench: run directory {}\n", dir.string());

  std::map<Key, Measurement> cells;
  std::vector<std::string> transports_run;
  struct JournalSeen {
    std::string transport, system;
    JournalState state;
  };
  std::vector<JournalSeen> journals;  // at the end of each transport, before its stacks stop
  std::vector<std::string> activity;  // each durable musterd's journal counts, after it stopped
  json results = json::array();
  int zmq_major = 0, zmq_minor = 0, zmq_patch = 0;
  zmq_version(&zmq_major, &zmq_minor, &zmq_patch);

  if (!o.no_matrix) {
    for (auto& tname : o.transports) {
      Transport t = *parse_transport(tname);
      StackOptions so{t, o.workers, static_cast<std::uint32_t>(o.capacity), o.musterd_args, dir};
      std::map<std::string, std::unique_ptr<Stack>> stacks;
      std::map<std::string, std::string> unsupported;
      for (auto& sys : o.systems) {
        auto stack = sys == "muster" ? make_muster_stack(o.paths)
                     : durable_system(sys) ? make_muster_stack(durable_system(sys)->alt ? o.alt_paths : o.paths,
                                                               sys, false, durable_system(sys)->journal,
                                                               durable_system(sys)->musterd_args)
                     : sys == "alt"  ? make_muster_stack(o.alt_paths, "alt")
                     : sys == "raw"  ? make_muster_stack(o.paths, "raw", true)
                     : sys == "alt-raw" ? make_muster_stack(o.alt_paths, "alt-raw", true)
                                     : make_baseline_stack(o.paths);
        try {
          fmt::print(stderr, "[{}] starting {} ({} workers)\n", tname, sys, o.workers);
          stack->start(so);
          stacks[sys] = std::move(stack);
        } catch (const Unsupported& e) {
          fmt::print(stderr, "[{}] {}: not measured: {}\n", tname, sys, e.what());
          unsupported[sys] = e.what();
        }
      }
      transports_run.push_back(tname);
      for (auto p : payloads)
        for (auto& mode : o.modes) {
          std::map<std::string, std::vector<Measurement>> runs;
          for (int rep = 0; rep < o.repeat; ++rep) {
            std::vector<std::unique_ptr<Runner>> owned;
            std::vector<Runner*> active;
            for (auto& sys : o.systems) {
              auto r = std::make_unique<Runner>();
              r->m.system = sys;
              r->m.transport = tname;
              r->m.mode = mode;
              r->m.payload = p;
              r->m.depth = mode == "latency" ? 1 : o.depth;
              if (!stacks.count(sys)) {
                r->m.note = unsupported[sys];
              } else {
                r->stack = stacks[sys].get();
                r->driver = r->stack->driver(p);
                r->worker_pids = r->stack->worker_pids();
                active.push_back(r.get());
              }
              owned.push_back(std::move(r));
            }
            try {
              if (mode == "latency") measure_latency(active, o);
              else measure_throughput(active, o);
            } catch (const std::exception& e) {
              fmt::print(stderr, "[{}] {} {}: failed: {}\n", tname, size_name(p), mode, e.what());
              for (auto* r : active) r->m.note = e.what(), r->m.ran = false;
            }
            for (auto& r : owned) {
              auto& m = r->m;
              if (m.ran)
                fmt::print(stderr, "[{}] {:<8} {:>7} {:<10} p50 {:>9.1f} us  p99 {:>9.1f} us  {:>9.0f} calls/s  "
                                   "cpu us/call {:.1f}/{:.1f}\n",
                           tname, m.system, size_name(p), mode, m.lat.p50_us, m.lat.p99_us, m.calls_per_s,
                           m.broker_us_per_call, m.workers_us_per_call);
              runs[m.system].push_back(m);
              results.push_back(m.to_json());
            }
          }
          for (auto& [sys, list] : runs) cells[{tname, p, mode, sys}] = median(list);
        }
      for (auto& [sys, s] : stacks)
        if (auto j = s->journal()) {
          fmt::print(stderr, "[{}] {} journal: {} B + WAL {} B, {} jobs held\n", tname, sys, j->db_bytes, j->wal_bytes,
                     j->jobs_held);
          journals.push_back({tname, sys, *j});
        }
      for (auto& [sys, s] : stacks) s->stop();
      for (auto& [sys, s] : stacks)
        if (auto a = s->journal_activity(); !a.empty()) {
          fmt::print(stderr, "[{}] {} journal: {}\n", tname, sys, a);
          activity.push_back(fmt::format("journal work of {} over {} (musterd's count at exit): {}\n", sys, tname, a));
        }
    }
  }

  ScaleResult scale;
  if (o.scale) {
    o.scale_opt.transport = parse_transport(o.scale_transport).value_or(Transport::Ipc);
    o.scale_opt.payload = parse_size(o.scale_payload);
    o.scale_opt.musterd_args = o.musterd_args;
    o.scale_opt.dir = dir;
    fmt::print(stderr, "[scale] {} simulated workers in {} processes, {} queued, over {}\n", o.scale_opt.workers,
               o.scale_opt.processes, o.scale_opt.queued, o.scale_transport);
    try {
      scale = run_scale(o.paths, o.scale_opt);
      if (o.scale_opt.floor) run_scale_floor(o.paths, o.scale_opt, scale);
    } catch (const std::exception& e) {
      scale.note = e.what();
    }
  }

  // ---- targets (issue 5) ----
  std::vector<Target> targets;
  auto cell = [&](const std::string& t, std::size_t p, const std::string& mode, const std::string& sys) -> const Measurement* {
    auto it = cells.find({t, p, mode, sys});
    return it != cells.end() && it->second.ran ? &it->second : nullptr;
  };
  for (auto& t : transports_run)
    for (auto p : payloads) {
      auto *m = cell(t, p, "latency", "muster"), *b = cell(t, p, "latency", "baseline");
      Target x{fmt::format("p50 one-at-a-time, {} {}", t, size_name(p)), "muster p50 / baseline p50", NAN, 1.3, true};
      if (m && b) x.value = m->lat.p50_us / b->lat.p50_us, x.measured = true;
      if (t != "curve" && (m || b)) targets.push_back(x);
    }
  for (auto& t : transports_run) {
    auto *m = cell(t, 64, "throughput", "muster"), *b = cell(t, 64, "throughput", "baseline");
    Target x{fmt::format("pipelined 64 B, {} workers, {}", o.workers, t), "muster calls/s / baseline calls/s", NAN, 0.5, false};
    if (m && b) x.value = m->calls_per_s / b->calls_per_s, x.measured = true;
    if ((t == "ipc" || t == "curve") && (m || b)) targets.push_back(x);
  }
  for (const char* durable : kDurableSystems)
    for (auto& t : transports_run) {
      auto *d = cell(t, 64, "throughput", durable), *m = cell(t, 64, "throughput", "muster");
      Target x{fmt::format("{} pipelined 64 B, {} (issue 15)", durable, t),
               fmt::format("{} calls/s / muster calls/s", durable), NAN, 0.5, false};
      if (d && m) x.value = d->calls_per_s / m->calls_per_s, x.measured = true;
      if (d) targets.push_back(x);
    }
  for (auto& t : transports_run) {
    auto *m = cell(t, 1 << 20, "throughput", "muster"), *b = cell(t, 1 << 20, "throughput", "baseline");
    Target x{fmt::format("1 MiB bandwidth, {}", t), "muster MiB/s / baseline MiB/s (pipelined)", NAN, 0.8, false};
    if (m && b) x.value = m->mib_per_s / b->mib_per_s, x.measured = true;
    if (m || b) targets.push_back(x);
  }
  if (o.scale) {
    auto add = [&](std::string name, std::string detail, double v, double limit) {
      Target x{std::move(name), std::move(detail), v, limit, true};
      x.measured = scale.ran && v >= 0;
      targets.push_back(x);
    };
    add(fmt::format("scale: RSS with {} workers + {} queued (MiB)", o.scale_opt.workers, o.scale_opt.queued),
        "musterd VmRSS", static_cast<double>(scale.loaded_rss_kib) / 1024.0, 64);
    if (o.scale_opt.soak_s > 0)
      add(fmt::format("scale: RSS as above after {:.0f} s more (MiB)", o.scale_opt.soak_s), "musterd VmRSS",
          static_cast<double>(scale.soaked_rss_kib) / 1024.0, 64);
    add("scale: idle CPU, heartbeats only (% of a core)", "musterd utime+stime over the window", scale.idle_cpu_pct, 2);
    add(fmt::format("scale: attach storm of {} settles (s)", o.scale_opt.workers), "go -> last worker confirmed",
        scale.settle_s, 2);
  }

  // ---- output ----
  std::string table;
  if (!o.no_matrix) {
    table = render_table(o, cells, transports_run, payloads);
    std::vector<const char*> extras = {"raw", "alt", "alt-raw"};
    extras.insert(extras.end(), kDurableSystems.begin(), kDurableSystems.end());
    for (const char* extra : extras)
      if (std::find(o.systems.begin(), o.systems.end(), extra) != o.systems.end())
        table += "\n" + render_table(o, cells, transports_run, payloads, extra);
    for (const char* durable : kDurableSystems)
      if (std::find(o.systems.begin(), o.systems.end(), durable) != o.systems.end())
        table += "\n" + render_table(o, cells, transports_run, payloads, durable, "muster");
    for (auto& j : journals)
      table += j.state.path.empty()
                   ? fmt::format("journal of {} over {} at the end: {}, {} durable jobs held\n", j.system,
                                 j.transport, j.state.store, j.state.jobs_held)
                   : fmt::format("journal of {} over {} at the end: {} B + WAL {} B ({:.1f} MiB), {} durable jobs held\n",
                                 j.system, j.transport, j.state.db_bytes, j.state.wal_bytes,
                                 static_cast<double>(j.state.db_bytes + j.state.wal_bytes) / (1 << 20),
                                 j.state.jobs_held);
    for (auto& a : activity) table += a;
  }
  std::string text;
  text += fmt::format("muster-bench: {} CPU(s), {}, {}, libzmq {}.{}.{}\n", std::thread::hardware_concurrency(),
                      cpu_model(), kernel_release(), zmq_major, zmq_minor, zmq_patch);
  const std::string load_end = load_average();
  text += fmt::format("load average at start {}, at end {} (anything else running skews every figure)\n",
                      load_start, load_end);
  text += fmt::format("workers {} (SDK capacity {}), depth {}, {} s per cell after {} s warm-up, repeat {}\n\n",
                      o.workers, o.capacity, o.depth, o.duration, o.warmup, o.repeat);
  text += table;
  if (o.scale) {
    text += fmt::format("\nscale ({} simulated workers in {} processes, {} queued, {}):\n", o.scale_opt.workers,
                        o.scale_opt.processes, o.scale_opt.queued, o.scale_transport);
    if (!scale.ran) text += fmt::format("  not completed: {}\n", scale.note);
    text += fmt::format("  attach storm settles in {:.3f} s ({} confirmed)\n", scale.settle_s, scale.confirmed);
    text += fmt::format("  idle (heartbeats only): musterd CPU {:.2f} % of a core, RSS {:.1f} MiB (anon {:.1f}, file {:.1f})\n",
                        scale.idle_cpu_pct, scale.idle_rss_kib / 1024.0, scale.idle_anon_kib / 1024.0,
                        scale.idle_file_kib / 1024.0);
    text += fmt::format("  loaded ({} held, {} queued): musterd CPU {:.2f} %, RSS {:.1f} MiB (anon {:.1f}, file {:.1f}), "
                        "peak {:.1f} MiB (start {:.1f} MiB), read {:.1f} s after the first submission\n",
                        scale.held, scale.queued_seen, scale.loaded_cpu_pct, scale.loaded_rss_kib / 1024.0,
                        scale.loaded_anon_kib / 1024.0, scale.loaded_file_kib / 1024.0, scale.peak_rss_kib / 1024.0,
                        scale.start_rss_kib / 1024.0, scale.loaded_after_s);
    if (scale.soaked_rss_kib)
      text += fmt::format("  after a further {:.0f} s of heartbeats: musterd RSS {:.1f} MiB\n", o.scale_opt.soak_s,
                          scale.soaked_rss_kib / 1024.0);
    text += fmt::format("  storm: CPU musterd {:.2f} s, simulated workers {:.2f} s; {} listed ready by musterd\n",
                        scale.storm_daemon_cpu_s, scale.storm_sims_cpu_s, scale.ready_listed);
    if (scale.floor_ran)
      text += fmt::format("  bare-libzmq floor (same heartbeats, muster-bench-hbfloor): CPU {:.2f} % of a core, "
                          "RSS {:.1f} MiB (anon {:.1f}) -> musterd idle / floor: CPU {:.2f}x, RSS {:.2f}x\n",
                          scale.floor_cpu_pct, scale.floor_rss_kib / 1024.0, scale.floor_anon_kib / 1024.0,
                          scale.floor_cpu_pct > 0 ? scale.idle_cpu_pct / scale.floor_cpu_pct : 0.0,
                          scale.floor_rss_kib ? static_cast<double>(scale.idle_rss_kib) / scale.floor_rss_kib : 0.0);
    if (scale.ran && !scale.note.empty()) text += "  note: " + scale.note + "\n";
  }
  text += "\ntargets (issue 5; durable: issue 15):\n";
  for (auto& x : targets)
    text += fmt::format("  {:<8} {:<52} {:>8} {} {}\n", !x.measured ? "n/a" : x.met() ? "MET" : "MISSED", x.name,
                        x.measured ? fmt::format("{:.2f}", x.value) : "-", x.at_most ? "<=" : ">=", x.limit);

  json doc{{"machine",
            {{"nproc", std::thread::hardware_concurrency()},
             {"cpu_model", cpu_model()},
             {"kernel", kernel_release()},
             {"libzmq", fmt::format("{}.{}.{}", zmq_major, zmq_minor, zmq_patch)},
             {"loadavg_start", load_start},
             {"loadavg_end", load_end}}},
           {"config",
            {{"transports", o.transports},
             {"payloads", payloads},
             {"modes", o.modes},
             {"workers", o.workers},
             {"capacity", o.capacity},
             {"depth", o.depth},
             {"duration_s", o.duration},
             {"warmup_s", o.warmup},
             {"repeat", o.repeat},
             {"latency_block", o.latency_block},
             {"slice_s", o.slice},
             {"musterd", o.paths.musterd.string()},
             {"musterd_args", o.musterd_args}}},
           {"runs", results}};
  json summary = json::array();
  for (auto& [k, m] : cells) summary.push_back(m.to_json());
  doc["cells"] = summary;
  json ratios = json::array();
  for (auto& t : transports_run)
    for (auto p : payloads)
      for (auto& mode : o.modes) {
        auto *m = cell(t, p, mode, "muster"), *b = cell(t, p, mode, "baseline");
        if (!m || !b) continue;
        json r{{"transport", t}, {"payload_bytes", p}, {"mode", mode}};
        if (mode == "latency")
          r["p50"] = m->lat.p50_us / b->lat.p50_us, r["p90"] = m->lat.p90_us / b->lat.p90_us,
          r["p99"] = m->lat.p99_us / b->lat.p99_us, r["p99.9"] = m->lat.p999_us / b->lat.p999_us;
        r["calls_per_s"] = m->calls_per_s / b->calls_per_s;
        ratios.push_back(r);
      }
  doc["ratios"] = ratios;
  json durable_ratios = json::array();  // muster-durable(-pg) / muster, same run
  for (const char* durable : kDurableSystems)
  for (auto& t : transports_run)
    for (auto p : payloads)
      for (auto& mode : o.modes) {
        auto *d = cell(t, p, mode, durable), *m = cell(t, p, mode, "muster");
        if (!d || !m) continue;
        durable_ratios.push_back(json{{"system", durable}, {"transport", t}, {"payload_bytes", p}, {"mode", mode},
                                      {"p50", d->lat.p50_us / m->lat.p50_us},
                                      {"calls_per_s", d->calls_per_s / m->calls_per_s},
                                      {"broker_us_per_call", {{"durable", d->broker_us_per_call},
                                                              {"muster", m->broker_us_per_call}}}});
      }
  if (!durable_ratios.empty()) doc["durable_ratios"] = durable_ratios;
  json jj = json::array();
  for (auto& j : journals)
    jj.push_back(json{{"transport", j.transport}, {"system", j.system}, {"store", j.state.store},
                      {"path", j.state.path.string()},
                      {"db_bytes", j.state.db_bytes}, {"wal_bytes", j.state.wal_bytes},
                      {"jobs_held", j.state.jobs_held}});
  if (!jj.empty()) doc["journals"] = jj;
  if (o.scale) doc["scale"] = scale.to_json();
  json tj = json::array();
  for (auto& x : targets) tj.push_back(x.to_json());
  doc["targets"] = tj;

  if (o.json_out) {
    std::cerr << text;
    std::cout << doc.dump(2) << std::endl;
  } else {
    std::cout << text;
  }
  if (!o.json_file.empty()) {
    std::ofstream f(o.json_file);
    f << doc.dump(2) << "\n";
  }
  if (o.keep) fmt::print(stderr, "muster-bench: logs kept in {}\n", dir.string());
  else std::filesystem::remove_all(dir);
  return 0;
}
