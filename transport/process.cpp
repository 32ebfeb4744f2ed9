// process.cpp — the signal self-pipe (logging setup: logging.cpp).
#include "muster/process.hpp"

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <stdexcept>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

namespace muster {

namespace {
int g_pipe[2] = {-1, -1};
std::atomic<int> g_signal{0};
void on_signal(int sig) {
  g_signal.store(sig);
  if (g_pipe[1] >= 0) {
    char c = 1;
    [[maybe_unused]] auto n = ::write(g_pipe[1], &c, 1);
  }
}
}  // namespace

SignalPipe::SignalPipe() {
  if (::pipe2(g_pipe, O_NONBLOCK | O_CLOEXEC) != 0) throw std::runtime_error("pipe2 failed");
  struct sigaction sa {};
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESTART;
  ::sigaction(SIGINT, &sa, nullptr);
  ::sigaction(SIGTERM, &sa, nullptr);
  ::signal(SIGPIPE, SIG_IGN);
}

SignalPipe::~SignalPipe() {
  ::signal(SIGINT, SIG_DFL);
  ::signal(SIGTERM, SIG_DFL);
  int r = g_pipe[0], w = g_pipe[1];
  g_pipe[0] = g_pipe[1] = -1;
  ::close(r);
  ::close(w);
}

int SignalPipe::fd() const { return g_pipe[0]; }
bool SignalPipe::triggered() const { return g_signal.load() != 0; }
void SignalPipe::drain() const {
  char buf[64];
  while (::read(g_pipe[0], buf, sizeof buf) > 0) {
  }
}

int SignalPipe::last_signal() const { return g_signal.load(); }

}  // namespace muster
