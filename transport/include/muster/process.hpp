// process.hpp — what every muster program does the same way at start: logging setup and
// turning SIGINT/SIGTERM into something a poll loop can wait on.
// Owns: the signal self-pipe (logging: logging.hpp, included here for the programs' mains).
// Must never: do work inside a signal handler beyond writing one byte.
#pragma once

#include <string>

#include "muster/logging.hpp"

namespace muster {


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
