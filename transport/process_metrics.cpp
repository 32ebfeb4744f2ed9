// process_metrics.cpp — see process_metrics.hpp.
#include "muster/process_metrics.hpp"

#include <sys/resource.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "muster/prometheus_text.hpp"

namespace muster {

namespace {

// Seconds since the epoch at which the system booted (/proc/stat "btime").
double boot_time() {
  std::ifstream in("/proc/stat");
  std::string key;
  double value = 0;
  while (in >> key) {
    if (key == "btime") {
      in >> value;
      return value;
    }
    in.ignore(1 << 16, '\n');
  }
  return 0;
}

}  // namespace

ProcessMetrics read_process_metrics() {
  ProcessMetrics p;
  const double ticks = static_cast<double>(::sysconf(_SC_CLK_TCK));
  const auto page = static_cast<std::uint64_t>(::sysconf(_SC_PAGESIZE));
  {
    std::ifstream in("/proc/self/stat");
    std::string line;
    std::getline(in, line);
    // Fields after the command name (which may hold spaces) start after the last ')'.
    auto close = line.rfind(')');
    if (close != std::string::npos) {
      std::istringstream rest(line.substr(close + 2));
      std::string f[25];
      for (auto& x : f) rest >> x;
      // rest[0] is field 3 (state): utime 14, stime 15, starttime 22, vsize 23, rss 24.
      try {
        p.cpu_seconds = (std::stod(f[11]) + std::stod(f[12])) / ticks;
        p.start_time_seconds = boot_time() + std::stod(f[19]) / ticks;
        p.virtual_bytes = std::stoull(f[20]);
        p.resident_bytes = std::stoull(f[21]) * page;
      } catch (const std::exception&) {
      }
    }
  }
  std::error_code ec;
  for (auto it = std::filesystem::directory_iterator("/proc/self/fd", ec);
       !ec && it != std::filesystem::directory_iterator(); it.increment(ec))
    ++p.open_fds;
  if (p.open_fds) --p.open_fds;  // the directory iterator's own descriptor
  rlimit lim{};
  if (::getrlimit(RLIMIT_NOFILE, &lim) == 0) p.max_fds = lim.rlim_cur;
  return p;
}

void write_process_metrics(PrometheusText& out, const ProcessMetrics& p) {
  out.family("process_cpu_seconds_total", "counter", "Total user and system CPU time spent in seconds.");
  out.sample("process_cpu_seconds_total", {}, p.cpu_seconds);
  out.family("process_resident_memory_bytes", "gauge", "Resident memory size in bytes.");
  out.sample("process_resident_memory_bytes", {}, p.resident_bytes);
  out.family("process_virtual_memory_bytes", "gauge", "Virtual memory size in bytes.");
  out.sample("process_virtual_memory_bytes", {}, p.virtual_bytes);
  out.family("process_open_fds", "gauge", "Number of open file descriptors.");
  out.sample("process_open_fds", {}, p.open_fds);
  out.family("process_max_fds", "gauge", "Maximum number of open file descriptors.");
  out.sample("process_max_fds", {}, p.max_fds);
  out.family("process_start_time_seconds", "gauge", "Start time of the process since unix epoch in seconds.");
  out.sample("process_start_time_seconds", {}, p.start_time_seconds);
}

}  // namespace muster
