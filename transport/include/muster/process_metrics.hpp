// process_metrics.hpp — this process's resource figures for /metrics (the standard
// process_* series): resident memory, CPU seconds, open file descriptors, start time.
// Owns: reading them from /proc/self. Must never: be called on a latency-critical thread
// (it reads a few /proc files).
#pragma once

#include <cstdint>

namespace muster {

struct ProcessMetrics {
  double cpu_seconds = 0;          // user + system
  std::uint64_t resident_bytes = 0;
  std::uint64_t virtual_bytes = 0;
  std::uint64_t open_fds = 0;
  std::uint64_t max_fds = 0;
  double start_time_seconds = 0;   // since the Unix epoch
};

// Reads /proc/self; fields it cannot read stay 0.
ProcessMetrics read_process_metrics();

class PrometheusText;
// Writes the process_* families (process_cpu_seconds_total, process_resident_memory_bytes,
// process_virtual_memory_bytes, process_open_fds, process_max_fds, process_start_time_seconds).
void write_process_metrics(PrometheusText& out, const ProcessMetrics& p);

}  // namespace muster
