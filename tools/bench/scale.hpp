// scale.hpp — the scale scenario of muster-bench (--scale): many attached workers, a deep
// queue, an attach storm; musterd's RSS and CPU read from /proc.
// Owns: the scenario's sequence and its numbers; nothing else.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "common.hpp"
#include "stacks.hpp"

namespace muster::bench {

struct ScaleOptions {
  int workers = 1000;          // simulated attached workers
  int processes = 4;           // processes they are spread over
  int queued = 10000;          // requests left waiting in the queue (beyond the workers' capacity)
  double window_s = 10;        // CPU measuring window
  std::size_t payload = 64;    // input bytes per queued request
  double submit_rate = 0;      // requests/s when queueing them (0: as fast as possible)
  double soak_s = 0;           // extra wait before the loaded RSS is read (libzmq's pipes
                               // grow their memory over the first ~500 heartbeats)
  Transport transport = Transport::Ipc;
  bool floor = true;            // also run the bare-libzmq heartbeat floor (muster-bench-hbfloor)
  bool direct = true;           // the simulated workers ask for direct (PROTOCOL.md §7.10)
  std::vector<std::string> musterd_args;
  std::filesystem::path dir;
};

struct ScaleResult {
  bool ran = false;
  std::string note;
  double settle_s = -1;              // go -> every worker confirmed
  double idle_cpu_pct = -1;          // musterd, workers idle, heartbeats only
  std::uint64_t idle_rss_kib = 0;
  double loaded_cpu_pct = -1;        // musterd, workers holding 1/each, `queued` waiting
  std::uint64_t loaded_rss_kib = 0;  // VmRSS with everything attached and queued
  std::uint64_t soaked_rss_kib = 0;  // VmRSS after the soak (0: no soak)
  std::uint64_t peak_rss_kib = 0;    // VmHWM at the end
  std::uint64_t start_rss_kib = 0;   // before any worker attached
  // VmRSS = RssAnon (musterd's own heap, libzmq's included) + RssFile (pages of its binary and
  // shared libraries, ~12 MiB for musterd, shared with every process that maps them).
  std::uint64_t idle_anon_kib = 0, idle_file_kib = 0, loaded_anon_kib = 0, loaded_file_kib = 0;
  double loaded_after_s = 0;         // first submission -> the loaded RSS reading
  int confirmed = 0, held = 0, queued_seen = 0;
  double submit_s = 0;               // time to submit workers+queued requests
  int ready_listed = 0;              // workers musterd lists as ready after the storm
  double storm_daemon_cpu_s = 0, storm_sims_cpu_s = 0;  // CPU spent during the storm
  // The same heartbeat traffic in bare libzmq (muster-bench-hbfloor), read at the same point
  // in time as `idle_*`: what libzmq itself costs for that many workers.
  bool floor_ran = false;
  double floor_cpu_pct = -1;
  std::uint64_t floor_rss_kib = 0, floor_anon_kib = 0;
  nlohmann::json to_json() const;
};

ScaleResult run_scale(const Paths& paths, const ScaleOptions& o);
// Fills the floor_* fields of `r`.
void run_scale_floor(const Paths& paths, const ScaleOptions& o, ScaleResult& r);

}  // namespace muster::bench
