// daemon.hpp — musterd's socket loop: binds the sockets, turns verified messages into core
// events, and core actions into messages.
// Owns: sockets, the clock, decoding and encoding, signals.
// Must never: make a dispatch decision; the rules live in BrokerCore.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "broker_core.hpp"
#include "journal_open.hpp"

namespace muster {
class SignalPipe;
}

namespace muster::broker {

// Each role may listen on several endpoints (an ipc:// one for local peers and a tcp:// one
// for the LAN, say); each endpoint gets its own socket, CURVE-secured when it is tcp://.
struct DaemonOptions {
  std::string data_dir;
  std::vector<std::string> request_addresses;
  std::vector<std::string> response_addresses;
  std::vector<std::string> client_addresses;
  std::string enrollment_address;  // empty: no enrollment endpoint
  bool insecure = false;           // tcp:// without CURVE (and without enrollment)
  std::uint64_t max_message_bytes = 16ull << 20;
  std::uint32_t max_attach_nodes = 1000;  // nodes one Attach may declare
  // HOST:PORT of the Prometheus /metrics endpoint (metrics_server.hpp); empty: none. Only a
  // loopback address unless metrics_allow_remote.
  std::string metrics_address;
  bool metrics_allow_remote = false;
  // The journal of durable calls (docs/DURABILITY.md): "sqlite:PATH". Empty: the default
  // sqlite:<data_dir>/journal.db, opened at start when the file exists, else at the first
  // durable Submit. A journal given here is opened at start. Either way a journal that
  // cannot be opened at start stops musterd with the reason; one that fails a commit too.
  std::string journal;
  // A journal shared by a failover pair ("postgresql://…", docs/DURABILITY.md §12): the shard
  // the pair owns, and how long a take or renewal of its lease holds it. A musterd that does
  // not hold the lease waits for it (a standby) before it loads the journal and binds anything.
  std::string journal_shard = "default";
  std::chrono::milliseconds journal_lease_term{4000};
  // --journal-sync: how far a commit goes before what waited for it is sent (journal_open.hpp).
  journal::JournalSync journal_sync = journal::JournalSync::Full;
  // The one-commit-per-call rule of commit_pipeline.hpp (early dispatch); off only to measure
  // against it (--journal-early-dispatch false).
  bool journal_early_dispatch = true;
  // How long a batch may wait for the answers of its early-dispatched calls before it is
  // handed to the journal (commit_pipeline.hpp, "gather the answers"; --journal-gather-ms, 0: not).
  std::chrono::milliseconds journal_gather{2};
  CoreConfig core;  // core.journal_max_bytes and core.result_ttl bound and keep what it holds
};

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
