// process.hpp — what every muster program does the same way at start: logging setup and
// turning SIGINT/SIGTERM into something a poll loop can wait on.
// Owns: log level names, the signal self-pipe.
// Must never: do work inside a signal handler beyond writing one byte.
#pragma once

#include <string>

namespace muster {

// "trace", "debug", "info", "warn", "error", "off". Logs go to stderr. Throws on a bad name.
void setup_logging(const std::string& level, const std::string& program);

// Installs SIGINT/SIGTERM handlers that write to a pipe. fd() is readable once a signal came.
class SignalPipe {
 public:
  SignalPipe();
  ~SignalPipe();
  SignalPipe(const SignalPipe&) = delete;
  SignalPipe& operator=(const SignalPipe&) = delete;
  int fd() const;
  bool triggered() const;
  void drain() const;  // empties the pipe so a poll on fd() stops waking
  int last_signal() const;
};

}  // namespace muster
