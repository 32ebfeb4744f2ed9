// common.hpp — what the benchmark programs share: transports and their endpoints, child
// processes, /proc readings (CPU, RSS), latency statistics, payload sizes, CURVE keys.
// Owns: nothing of muster itself; only the measuring apparatus.
// Must never: assert on a timing. Benchmarks report, they do not judge builds.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace muster::bench {

using SteadyClock = std::chrono::steady_clock;

// ---- transports -----------------------------------------------------------------------
//
// ipc:   ipc:// sockets in a private run directory.
// tcp:   tcp://127.0.0.1, clear text (musterd --insecure).
// curve: tcp://127.0.0.1 with CURVE on every socket. Adding a transport means: a value here,
//        a name in transport_name/parse_transport, endpoints in make_endpoints, and the flags
//        each side needs (see bench.cpp: MusterStack::start and BaselineStack::start).
enum class Transport { Ipc, Tcp, Curve };

std::string_view transport_name(Transport t);
std::optional<Transport> parse_transport(std::string_view name);

struct Endpoints {
  std::string request, response, client;
};

// Fresh endpoints for one stack: ipc paths under `dir`, or three free loopback ports.
Endpoints make_endpoints(Transport t, const std::filesystem::path& dir, std::string_view tag);
int free_tcp_port();

// ---- CURVE ----------------------------------------------------------------------------
struct CurveKeys {
  std::string public_key, secret_key;  // Z85, 40 characters each
};
CurveKeys curve_keypair();
bool curve_available();

// ---- child processes ------------------------------------------------------------------

// A spawned program. Its stdout/stderr go to `log` unless pipe_stdio is set, in which case
// the parent can write lines to its stdin and read lines from its stdout (stderr still goes
// to the log). Children die with the bench (PR_SET_PDEATHSIG) if it is killed.
class Process {
 public:
  Process() = default;
  Process(std::string name, std::vector<std::string> args, const std::filesystem::path& log,
          bool pipe_stdio = false, std::vector<std::string> extra_env = {});
  ~Process();
  Process(Process&& o) noexcept;
  Process& operator=(Process&& o) noexcept;
  Process(const Process&) = delete;
  Process& operator=(const Process&) = delete;

  pid_t pid() const { return pid_; }
  const std::string& name() const { return name_; }
  bool running();
  // SIGTERM, then SIGKILL after `grace`. Returns the exit status (waitpid form) or -1.
  int stop(std::chrono::milliseconds grace = std::chrono::milliseconds(3000));

  // Line protocol with a pipe_stdio child.
  void write_line(std::string_view line);
  std::optional<std::string> read_line(std::chrono::milliseconds timeout);
  int stdout_fd() const { return out_fd_; }

 private:
  void reset();
  std::string name_;
  pid_t pid_ = -1;
  int in_fd_ = -1, out_fd_ = -1;
  std::string buffered_;
};

// ---- /proc ----------------------------------------------------------------------------
struct ProcSample {
  double cpu_seconds = 0;      // utime + stime, all threads
  std::uint64_t rss_kib = 0;   // VmRSS
  std::uint64_t hwm_kib = 0;   // VmHWM (peak RSS)
  std::uint64_t anon_kib = 0;  // RssAnon: the process's private memory (heap, stacks)
  std::uint64_t file_kib = 0;  // RssFile: mapped pages of its binary and shared libraries
  SteadyClock::time_point at{};
};
ProcSample sample_process(pid_t pid);
// CPU use between two samples, in percent of one core.
double cpu_percent(const ProcSample& a, const ProcSample& b);

// ---- statistics -----------------------------------------------------------------------
struct LatencySummary {
  std::size_t count = 0;
  double mean_us = 0, p50_us = 0, p90_us = 0, p99_us = 0, p999_us = 0, max_us = 0;
};
// Nearest-rank percentiles of round trips in nanoseconds (sorts the vector).
LatencySummary summarize(std::vector<std::int64_t>& ns);

// ---- payloads -------------------------------------------------------------------------
// "64", "4k", "4KiB", "1m", "1MiB" -> bytes. Throws std::invalid_argument.
std::size_t parse_size(std::string_view s);
std::string size_name(std::size_t bytes);  // 64 B, 4 KiB, 1 MiB

// ---- the machine ----------------------------------------------------------------------
std::string cpu_model();
std::string kernel_release();
std::string load_average();  // the first three fields of /proc/loadavg
std::filesystem::path self_dir();  // directory holding this executable

}  // namespace muster::bench
