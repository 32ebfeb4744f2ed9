// scale.cpp — see scale.hpp. The sequence:
//   1. musterd alone: RSS at start.
//   2. `processes` muster-bench-simworkers connect `workers` simulated workers (a DEALER each,
//      direct; SUB + DEALER with --scale-no-direct) and wait; then all attach at once ("go"). Settle time = go -> the last worker's
//      confirming Pong acknowledged (it is then dispatchable), across all processes.
//   3. Idle: every worker attached, nothing to do, only heartbeats. musterd CPU over a window.
//   4. Loaded: workers × capacity requests dispatched (held by the workers, never answered)
//      plus `queued` more waiting in the node's queue. musterd RSS and CPU over a window.
#include "scale.hpp"

#include <sstream>
#include <thread>

#include <fmt/format.h>

#include "muster/client.hpp"

namespace muster::bench {

using namespace std::chrono_literals;

nlohmann::json ScaleResult::to_json() const {
  return nlohmann::json{{"ran", ran},
                        {"note", note},
                        {"settle_s", settle_s},
                        {"idle_cpu_percent", idle_cpu_pct},
                        {"idle_rss_kib", idle_rss_kib},
                        {"loaded_cpu_percent", loaded_cpu_pct},
                        {"loaded_rss_kib", loaded_rss_kib},
                        {"soaked_rss_kib", soaked_rss_kib},
                        {"peak_rss_kib", peak_rss_kib},
                        {"start_rss_kib", start_rss_kib},
                        {"idle_anon_kib", idle_anon_kib},
                        {"idle_file_kib", idle_file_kib},
                        {"loaded_anon_kib", loaded_anon_kib},
                        {"loaded_file_kib", loaded_file_kib},
                        {"loaded_after_s", loaded_after_s},
                        {"confirmed_workers", confirmed},
                        {"held_requests", held},
                        {"queued_requests", queued_seen},
                        {"submit_s", submit_s},
                        {"ready_listed", ready_listed},
                        {"storm_daemon_cpu_s", storm_daemon_cpu_s},
                        {"storm_simworkers_cpu_s", storm_sims_cpu_s},
                        {"floor_ran", floor_ran},
                        {"floor_cpu_percent", floor_cpu_pct},
                        {"floor_rss_kib", floor_rss_kib},
                        {"floor_anon_kib", floor_anon_kib}};
}

namespace {

void log(const std::string& s) { fmt::print(stderr, "  scale: {}\n", s); }

}  // namespace

ScaleResult run_scale(const Paths& paths, const ScaleOptions& o) {
  ScaleResult r;
  if (o.transport == Transport::Curve) {
    r.note = "musterd has no CURVE support yet";
    return r;
  }
  auto ep = make_endpoints(o.transport, o.dir, "scale");
  std::vector<std::string> args = {
      paths.musterd.string(), "--data-dir", (o.dir / "scale-data").string(), "--request-address",
      ep.request, "--response-address", ep.response, "--client-address", ep.client, "--log-level",
      "warn", "--queue-limit", std::to_string(o.queued + 1000), "--default-timeout-ms", "3600000",
      "--shutdown-grace-ms", "0",
      // One client holds every request of the scenario: without this the per-client limit
      // (10,000 by default) refused the last 1,000 and the wait for them below ran its full 60 s.
      "--max-client-outstanding", std::to_string(o.workers + o.queued),
      // Over ipc:// every simulated worker is the one local identity (PROTOCOL.md §10).
      "--max-workers-per-identity", std::to_string(o.workers)};
  bool tcp = o.transport == Transport::Tcp;
  if (tcp) args.push_back("--insecure");
  for (auto& a : o.musterd_args) args.push_back(a);
  std::vector<std::string> env = {"MUSTER_RUNTIME_DIR=" + (o.dir / "run").string()};
  Process daemon("musterd", args, log_path(o.dir, "musterd-scale"), false, env);

  ClientOptions copt;
  copt.client_address = ep.client;
  copt.insecure = tcp;
  copt.grace = 10s;
  std::optional<Client> client;
  for (auto until = SteadyClock::now() + 20s; SteadyClock::now() < until;) {
    try {
      client.emplace(copt);
      client->status();
      break;
    } catch (const std::exception&) {
      client.reset();
      std::this_thread::sleep_for(100ms);
    }
  }
  if (!client) {
    r.note = "musterd did not come up";
    return r;
  }
  r.start_rss_kib = sample_process(daemon.pid()).rss_kib;

  // 2. connect, then the storm
  std::vector<Process> sims;
  int per = (o.workers + o.processes - 1) / o.processes;
  int left = o.workers;
  for (int p = 0; p < o.processes && left > 0; ++p) {
    int n = std::min(per, left);
    left -= n;
    std::vector<std::string> args{paths.simworkers.string(), "--count", std::to_string(n),
                                  "--prefix", fmt::format("sim{}", p), "--request-address",
                                  ep.request, "--response-address", ep.response};
    if (!o.direct) args.push_back("--no-direct");
    sims.emplace_back(fmt::format("sim-{}", p), std::move(args),
                      log_path(o.dir, fmt::format("simworkers-{}", p)), true, env);
  }
  for (auto& s : sims) {
    auto line = s.read_line(60s);
    if (!line || line->rfind("connected", 0) != 0) {
      r.note = "a simworkers process did not connect";
      return r;
    }
  }
  log(fmt::format("{} simulated workers connected in {} processes; attaching all at once", o.workers,
                  sims.size()));
  auto storm_d0 = sample_process(daemon.pid());
  std::vector<ProcSample> storm_s0;
  for (auto& s : sims) storm_s0.push_back(sample_process(s.pid()));
  for (auto& s : sims) s.write_line("go");
  std::int64_t first_go = 0, last_confirm = 0;
  for (auto& s : sims) {
    auto line = s.read_line(60s);
    if (!line || line->rfind("settled", 0) != 0) {
      r.note = "the attach storm did not settle within 60 s";
      s.write_line("stats");
      if (auto st = s.read_line(2s)) r.note += " (" + *st + ")";
      return r;
    }
    std::istringstream in(line->substr(8));
    std::int64_t n = 0, go = 0, last = 0;
    in >> n >> go >> last;
    r.confirmed += static_cast<int>(n);
    first_go = first_go ? std::min(first_go, go) : go;
    last_confirm = std::max(last_confirm, last);
  }
  r.settle_s = static_cast<double>(last_confirm - first_go) / 1e9;
  r.storm_daemon_cpu_s = sample_process(daemon.pid()).cpu_seconds - storm_d0.cpu_seconds;
  r.storm_sims_cpu_s = 0;
  for (std::size_t i = 0; i < sims.size(); ++i)
    r.storm_sims_cpu_s += sample_process(sims[i].pid()).cpu_seconds - storm_s0[i].cpu_seconds;
  // Cross-check on the daemon's side: every worker listed as ready.
  {
    int ready = 0;
    for (auto& w : client->workers()) ready += w["state"] == "ready";
    r.ready_listed = ready;
  }
  log(fmt::format("storm settled: {} workers confirmed in {:.3f} s ({} listed ready); CPU during it: "
                  "musterd {:.2f} s, simulated workers {:.2f} s",
                  r.confirmed, r.settle_s, r.ready_listed, r.storm_daemon_cpu_s, r.storm_sims_cpu_s));

  // 3. idle
  std::this_thread::sleep_for(2s);
  auto a = sample_process(daemon.pid());
  std::this_thread::sleep_for(std::chrono::duration<double>(o.window_s));
  auto b = sample_process(daemon.pid());
  r.idle_cpu_pct = cpu_percent(a, b);
  r.idle_rss_kib = b.rss_kib;
  r.idle_anon_kib = b.anon_kib;
  r.idle_file_kib = b.file_kib;
  log(fmt::format("idle: musterd CPU {:.2f} % of a core, RSS {:.1f} MiB (anon {:.1f}, file {:.1f})", r.idle_cpu_pct,
                  b.rss_kib / 1024.0, b.anon_kib / 1024.0, b.file_kib / 1024.0));

  // 4. loaded
  Map inputs{{"data", Bytes(o.payload, 0x5a)}};
  CallOptions call;
  call.timeout_ms = 3600000;
  int total = o.workers + o.queued;  // capacity 1 each
  auto t0 = SteadyClock::now();
  for (int i = 0; i < total; ++i) {
    if (o.submit_rate > 0)
      std::this_thread::sleep_until(t0 + std::chrono::duration_cast<SteadyClock::duration>(
                                             std::chrono::duration<double>(i / o.submit_rate)));
    client->submit("bench.hold", inputs, call);
    if (i % 1000 == 999)
      for (auto& ev : client->poll(0ms))
        if (auto* f = std::get_if<FailureEvent>(&ev.body))
          log(fmt::format("a held request failed: {}", f->message));
  }
  r.submit_s = std::chrono::duration<double>(SteadyClock::now() - t0).count();
  for (auto until = SteadyClock::now() + 60s; SteadyClock::now() < until;) {
    auto st = client->status();
    r.queued_seen = st["queued"].get<int>();
    r.held = st["in_flight"].get<int>();
    if (r.queued_seen >= o.queued && r.held >= o.workers) break;
    std::this_thread::sleep_for(200ms);
  }
  log(fmt::format("{} requests submitted in {:.2f} s: {} held by workers, {} queued", total,
                  r.submit_s, r.held, r.queued_seen));
  std::this_thread::sleep_for(2s);
  a = sample_process(daemon.pid());
  std::this_thread::sleep_for(std::chrono::duration<double>(o.window_s));
  b = sample_process(daemon.pid());
  r.loaded_cpu_pct = cpu_percent(a, b);
  r.loaded_rss_kib = b.rss_kib;
  r.loaded_anon_kib = b.anon_kib;
  r.loaded_file_kib = b.file_kib;
  r.loaded_after_s = std::chrono::duration<double>(b.at - t0).count();
  r.peak_rss_kib = b.hwm_kib;
  log(fmt::format("loaded: musterd CPU {:.2f} % of a core, RSS {:.1f} MiB (anon {:.1f}, file {:.1f}; peak {:.1f} MiB), "
                  "{:.1f} s after the first submission",
                  r.loaded_cpu_pct, b.rss_kib / 1024.0, b.anon_kib / 1024.0, b.file_kib / 1024.0,
                  b.hwm_kib / 1024.0, r.loaded_after_s));
  if (o.soak_s > 0) {
    log(fmt::format("soaking {:.0f} s (heartbeats only)", o.soak_s));
    std::this_thread::sleep_for(std::chrono::duration<double>(o.soak_s));
    auto c = sample_process(daemon.pid());
    r.soaked_rss_kib = c.rss_kib;
    r.peak_rss_kib = c.hwm_kib;
    log(fmt::format("after the soak: musterd RSS {:.1f} MiB", c.rss_kib / 1024.0));
  }
  auto st = client->status();
  if (st["workers"].get<int>() != o.workers)
    r.note = fmt::format("{} workers attached at the end (expected {})", st["workers"].get<int>(), o.workers);
  r.ran = true;

  for (auto& s : sims) s.write_line("quit");
  daemon.stop(10s);
  client.reset();
  for (auto& s : sims) s.stop(2s);
  return r;
}

void run_scale_floor(const Paths& paths, const ScaleOptions& o, ScaleResult& r) {
  auto ep = make_endpoints(o.transport == Transport::Tcp ? Transport::Tcp : Transport::Ipc, o.dir, "floor");
  Process server("hbfloor", {paths.hbfloor.string(), "server", "--request-address", ep.request,
                             "--response-address", ep.response},
                 log_path(o.dir, "hbfloor-server"));
  std::this_thread::sleep_for(200ms);
  std::vector<Process> clients;
  int per = (o.workers + o.processes - 1) / o.processes, left = o.workers;
  for (int p = 0; p < o.processes && left > 0; ++p) {
    int n = std::min(per, left);
    left -= n;
    clients.emplace_back(fmt::format("hbfloor-{}", p),
                         std::vector<std::string>{paths.hbfloor.string(), "clients", "--count", std::to_string(n),
                                                  "--request-address", ep.request, "--response-address",
                                                  ep.response},
                         log_path(o.dir, fmt::format("hbfloor-clients-{}", p)));
  }
  // The same points in time as musterd's idle reading: ~2 s after everyone is connected.
  std::this_thread::sleep_for(2500ms);
  auto a = sample_process(server.pid());
  std::this_thread::sleep_for(std::chrono::duration<double>(o.window_s));
  auto b = sample_process(server.pid());
  r.floor_cpu_pct = cpu_percent(a, b);
  r.floor_rss_kib = b.rss_kib;
  r.floor_anon_kib = b.anon_kib;
  r.floor_ran = server.running();
  log(fmt::format("bare-libzmq floor, same heartbeats: CPU {:.2f} % of a core, RSS {:.1f} MiB", r.floor_cpu_pct,
                  b.rss_kib / 1024.0));
  for (auto& c : clients) c.stop(2s);
  server.stop(2s);
}

}  // namespace muster::bench
