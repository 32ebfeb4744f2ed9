// daemon.hpp — musterd's socket loop: binds the sockets, turns verified messages into core
// events, and core actions into messages.
// Owns: sockets, the clock, decoding and encoding, signals.
// Must never: make a dispatch decision; the rules live in BrokerCore.
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include "broker_core.hpp"

namespace muster {
class SignalPipe;
}

namespace muster::broker {

struct DaemonOptions {
  std::string data_dir;
  std::string request_address;
  std::string response_address;
  std::string client_address;
  bool insecure = false;
  std::uint64_t max_message_bytes = 16ull << 20;
  CoreConfig core;
};

// Resolves the authenticated identity of a peer (ZAP User-Id) to a Caller. The default maps
// every peer to the local owner (IPC: the directory is 0700, so only the owner connects).
using CallerResolver = std::function<Caller(const Peer&)>;

class Daemon {
 public:
  explicit Daemon(DaemonOptions options);
  ~Daemon();
  // Runs until SIGINT/SIGTERM (through `signals`) and a clean shutdown. Returns an exit code.
  int run(SignalPipe& signals);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace muster::broker
