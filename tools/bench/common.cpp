// common.cpp — see common.hpp.
#include "common.hpp"

#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <fstream>
#include <numeric>
#include <sstream>
#include <stdexcept>
#include <thread>

#include <fmt/format.h>
#include <zmq.h>

extern char** environ;

namespace muster::bench {

// ---- transports -----------------------------------------------------------------------

std::string_view transport_name(Transport t) {
  switch (t) {
    case Transport::Ipc: return "ipc";
    case Transport::Tcp: return "tcp";
    case Transport::Curve: return "curve";
  }
  return "?";
}

std::optional<Transport> parse_transport(std::string_view name) {
  if (name == "ipc") return Transport::Ipc;
  if (name == "tcp") return Transport::Tcp;
  if (name == "curve") return Transport::Curve;
  return std::nullopt;
}

int free_tcp_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) throw std::runtime_error("socket() failed");
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    ::close(fd);
    throw std::runtime_error("bind() to a free port failed");
  }
  socklen_t len = sizeof addr;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  ::close(fd);
  return ntohs(addr.sin_port);
}

Endpoints make_endpoints(Transport t, const std::filesystem::path& dir, std::string_view tag) {
  if (t == Transport::Ipc) {
    auto base = dir / std::string(tag);
    std::filesystem::create_directories(base);
    std::filesystem::permissions(base, std::filesystem::perms::owner_all,
                                 std::filesystem::perm_options::replace);
    return {"ipc://" + (base / "request.sock").string(), "ipc://" + (base / "response.sock").string(),
            "ipc://" + (base / "client.sock").string()};
  }
  // Three distinct free ports (asked for while all three are held would be better; a clash
  // shows up as a bind error in the child's log).
  int a = free_tcp_port(), b = free_tcp_port(), c = free_tcp_port();
  while (b == a) b = free_tcp_port();
  while (c == a || c == b) c = free_tcp_port();
  return {fmt::format("tcp://127.0.0.1:{}", a), fmt::format("tcp://127.0.0.1:{}", b),
          fmt::format("tcp://127.0.0.1:{}", c)};
}

// ---- CURVE ----------------------------------------------------------------------------

bool curve_available() { return zmq_has("curve") != 0; }

CurveKeys curve_keypair() {
  char pub[41] = {}, sec[41] = {};
  if (zmq_curve_keypair(pub, sec) != 0) throw std::runtime_error("zmq_curve_keypair failed");
  return {pub, sec};
}

// ---- child processes ------------------------------------------------------------------

Process::Process(std::string name, std::vector<std::string> args, const std::filesystem::path& log,
                 bool pipe_stdio, std::vector<std::string> extra_env)
    : name_(std::move(name)) {
  // Everything the child needs is prepared before fork: after it only async-signal-safe calls.
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  std::vector<std::string> env_strings = std::move(extra_env);
  for (char** e = environ; *e; ++e) {
    std::string_view kv(*e);
    bool overridden = false;
    for (auto& x : env_strings) {
      auto eq = x.find('=');
      if (kv.substr(0, kv.find('=') + 1) == std::string_view(x).substr(0, eq + 1)) overridden = true;
    }
    if (!overridden) env_strings.emplace_back(kv);
  }
  std::vector<char*> envp;
  for (auto& s : env_strings) envp.push_back(s.data());
  envp.push_back(nullptr);

  int log_fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (log_fd < 0) throw std::runtime_error(fmt::format("cannot open {}: {}", log.string(), std::strerror(errno)));
  int in_pipe[2] = {-1, -1}, out_pipe[2] = {-1, -1};
  if (pipe_stdio) {
    if (::pipe2(in_pipe, O_CLOEXEC) != 0 || ::pipe2(out_pipe, O_CLOEXEC) != 0)
      throw std::runtime_error("pipe2 failed");
  }
  pid_t parent = ::getpid();
  pid_t pid = ::fork();
  if (pid < 0) throw std::runtime_error("fork failed");
  if (pid == 0) {
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent) ::_exit(127);
    if (pipe_stdio) {
      ::dup2(in_pipe[0], 0);
      ::dup2(out_pipe[1], 1);
    } else {
      int devnull = ::open("/dev/null", O_RDONLY);
      ::dup2(devnull, 0);
      ::dup2(log_fd, 1);
    }
    ::dup2(log_fd, 2);
    ::execve(argv[0], argv.data(), envp.data());
    const char msg[] = "exec failed\n";
    (void)!::write(2, msg, sizeof msg - 1);
    ::_exit(127);
  }
  pid_ = pid;
  ::close(log_fd);
  if (pipe_stdio) {
    ::close(in_pipe[0]);
    ::close(out_pipe[1]);
    in_fd_ = in_pipe[1];
    out_fd_ = out_pipe[0];
  }
}

Process::~Process() { stop(std::chrono::milliseconds(2000)); }

Process::Process(Process&& o) noexcept { *this = std::move(o); }

Process& Process::operator=(Process&& o) noexcept {
  if (this != &o) {
    stop(std::chrono::milliseconds(2000));
    name_ = std::move(o.name_);
    pid_ = o.pid_;
    in_fd_ = o.in_fd_;
    out_fd_ = o.out_fd_;
    buffered_ = std::move(o.buffered_);
    o.pid_ = -1;
    o.in_fd_ = o.out_fd_ = -1;
  }
  return *this;
}

void Process::reset() {
  if (in_fd_ >= 0) ::close(in_fd_);
  if (out_fd_ >= 0) ::close(out_fd_);
  in_fd_ = out_fd_ = -1;
  pid_ = -1;
}

bool Process::running() {
  if (pid_ <= 0) return false;
  int status = 0;
  pid_t r = ::waitpid(pid_, &status, WNOHANG);
  if (r == pid_) {
    reset();
    return false;
  }
  return true;
}

int Process::stop(std::chrono::milliseconds grace) {
  if (pid_ <= 0) return -1;
  int status = -1;
  if (::waitpid(pid_, &status, WNOHANG) == pid_) {
    reset();
    return status;
  }
  ::kill(pid_, SIGTERM);
  auto until = SteadyClock::now() + grace;
  while (SteadyClock::now() < until) {
    if (::waitpid(pid_, &status, WNOHANG) == pid_) {
      reset();
      return status;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  ::kill(pid_, SIGKILL);
  ::waitpid(pid_, &status, 0);
  reset();
  return status;
}

void Process::write_line(std::string_view line) {
  if (in_fd_ < 0) return;
  std::string s(line);
  s.push_back('\n');
  std::size_t off = 0;
  while (off < s.size()) {
    auto n = ::write(in_fd_, s.data() + off, s.size() - off);
    if (n <= 0) {
      if (errno == EINTR) continue;
      return;
    }
    off += static_cast<std::size_t>(n);
  }
}

std::optional<std::string> Process::read_line(std::chrono::milliseconds timeout) {
  auto until = SteadyClock::now() + timeout;
  for (;;) {
    if (auto nl = buffered_.find('\n'); nl != std::string::npos) {
      std::string line = buffered_.substr(0, nl);
      buffered_.erase(0, nl + 1);
      return line;
    }
    if (out_fd_ < 0) return std::nullopt;
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(until - SteadyClock::now());
    if (left.count() < 0) return std::nullopt;
    pollfd p{out_fd_, POLLIN, 0};
    int r = ::poll(&p, 1, static_cast<int>(left.count()));
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return std::nullopt;
    char buf[4096];
    auto n = ::read(out_fd_, buf, sizeof buf);
    if (n <= 0) return std::nullopt;  // EOF: the child is gone
    buffered_.append(buf, static_cast<std::size_t>(n));
  }
}

// ---- /proc ----------------------------------------------------------------------------

ProcSample sample_process(pid_t pid) {
  ProcSample s;
  s.at = SteadyClock::now();
  {
    std::ifstream f(fmt::format("/proc/{}/stat", pid));
    std::string all((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    // Fields after the command name (which may contain spaces) start after the last ')'.
    auto rp = all.rfind(')');
    if (rp != std::string::npos) {
      std::istringstream in(all.substr(rp + 2));
      std::vector<std::string> fields;
      std::string x;
      while (in >> x) fields.push_back(x);
      // fields[0] is field 3 (state); utime is field 14, stime field 15.
      if (fields.size() > 13) {
        double ticks = static_cast<double>(::sysconf(_SC_CLK_TCK));
        s.cpu_seconds = (std::stod(fields[11]) + std::stod(fields[12])) / ticks;
      }
    }
  }
  std::ifstream st(fmt::format("/proc/{}/status", pid));
  std::string line;
  while (std::getline(st, line)) {
    if (line.rfind("VmRSS:", 0) == 0) s.rss_kib = std::stoull(line.substr(6));
    if (line.rfind("VmHWM:", 0) == 0) s.hwm_kib = std::stoull(line.substr(6));
    if (line.rfind("RssAnon:", 0) == 0) s.anon_kib = std::stoull(line.substr(8));
    if (line.rfind("RssFile:", 0) == 0) s.file_kib = std::stoull(line.substr(8));
  }
  return s;
}

double cpu_percent(const ProcSample& a, const ProcSample& b) {
  double wall = std::chrono::duration<double>(b.at - a.at).count();
  if (wall <= 0) return 0;
  return 100.0 * (b.cpu_seconds - a.cpu_seconds) / wall;
}

// ---- statistics -----------------------------------------------------------------------

LatencySummary summarize(std::vector<std::int64_t>& ns) {
  LatencySummary s;
  s.count = ns.size();
  if (ns.empty()) return s;
  std::sort(ns.begin(), ns.end());
  auto at = [&](double p) {
    // nearest rank: the smallest value with at least p of the samples at or below it
    auto rank = static_cast<std::size_t>(std::ceil(p * static_cast<double>(ns.size())));
    rank = std::clamp<std::size_t>(rank, 1, ns.size());
    return static_cast<double>(ns[rank - 1]) / 1000.0;
  };
  s.p50_us = at(0.50);
  s.p90_us = at(0.90);
  s.p99_us = at(0.99);
  s.p999_us = at(0.999);
  s.max_us = static_cast<double>(ns.back()) / 1000.0;
  long double sum = std::accumulate(ns.begin(), ns.end(), 0.0L);
  s.mean_us = static_cast<double>(sum / static_cast<long double>(ns.size()) / 1000.0L);
  return s;
}

// ---- payloads -------------------------------------------------------------------------

std::size_t parse_size(std::string_view s) {
  std::size_t i = 0;
  while (i < s.size() && std::isdigit(static_cast<unsigned char>(s[i]))) ++i;
  if (i == 0) throw std::invalid_argument(fmt::format("not a size: '{}'", s));
  std::size_t n = std::stoull(std::string(s.substr(0, i)));
  std::string unit(s.substr(i));
  std::transform(unit.begin(), unit.end(), unit.begin(), [](unsigned char c) { return std::tolower(c); });
  if (unit.empty() || unit == "b") return n;
  if (unit == "k" || unit == "kib" || unit == "kb") return n << 10;
  if (unit == "m" || unit == "mib" || unit == "mb") return n << 20;
  throw std::invalid_argument(fmt::format("unknown size unit in '{}'", s));
}

std::string size_name(std::size_t b) {
  if (b >= (1u << 20) && b % (1u << 20) == 0) return fmt::format("{} MiB", b >> 20);
  if (b >= 1024 && b % 1024 == 0) return fmt::format("{} KiB", b >> 10);
  return fmt::format("{} B", b);
}

// ---- the machine ----------------------------------------------------------------------

std::string cpu_model() {
  std::ifstream f("/proc/cpuinfo");
  std::string line;
  while (std::getline(f, line))
    if (line.rfind("model name", 0) == 0) {
      auto c = line.find(':');
      return c == std::string::npos ? line : line.substr(c + 2);
    }
  return "unknown";
}

std::string kernel_release() {
  utsname u{};
  ::uname(&u);
  return fmt::format("{} {}", u.sysname, u.release);
}

std::string load_average() {
  std::ifstream f("/proc/loadavg");
  std::string a, b, c;
  f >> a >> b >> c;
  return a + " " + b + " " + c;
}

std::filesystem::path self_dir() {
  return std::filesystem::read_symlink("/proc/self/exe").parent_path();
}

}  // namespace muster::bench
