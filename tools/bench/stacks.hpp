// stacks.hpp — the two systems muster-bench compares, each as separate processes, and the
// client side ("driver") that calls into them from the bench process.
//   MusterStack:   musterd + N muster-bench-worker (C++ SDK, echo); driver = the C++ client library (worker/cpp).
//                  (or N muster-bench-simworkers --echo: the daemon alone, no SDK; or durable:
//                  musterd with a SQLite journal of its own and every call CallOptions::durable)
//   BaselineStack: muster-bench-forwarder + N muster-bench-worker --baseline; driver = a bare
//                  DEALER. Same socket types, options and transport as the muster stack.
// Owns: spawning, readiness checks and teardown of each stack.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "common.hpp"

namespace muster::bench {

// Thrown by start() when a stack cannot run on a transport (e.g. musterd without CURVE).
struct Unsupported : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// Calls echo with a fixed payload. submit() never blocks for long; poll() reports each
// completed call once (ok = the echo came back intact).
class Driver {
 public:
  virtual ~Driver() = default;
  virtual std::uint64_t submit() = 0;
  virtual void poll(int timeout_ms, const std::function<void(std::uint64_t id, bool ok)>& done) = 0;
};

struct Paths {
  std::filesystem::path musterd, worker, forwarder, simworkers, hbfloor;
};

struct StackOptions {
  Transport transport = Transport::Ipc;
  int workers = 2;
  std::uint32_t capacity = 1;            // SDK worker capacity
  std::vector<std::string> musterd_args;  // extra flags for musterd (experiments)
  std::filesystem::path dir;              // run directory (sockets, logs)
};

// The journal of a durable stack as it stands (docs/DURABILITY.md §4): its file sizes (SQLite
// only) and the durable jobs musterd still holds (open, or finished and not acknowledged).
struct JournalState {
  std::string store;  // the --journal musterd was given (a PostgreSQL one without its sizes)
  std::filesystem::path path;
  std::uintmax_t db_bytes = 0, wal_bytes = 0;
  std::int64_t jobs_held = -1;  // -1: could not be asked
};

class Stack {
 public:
  virtual ~Stack() = default;
  virtual std::string name() const = 0;
  virtual void start(const StackOptions& o) = 0;
  virtual void stop() = 0;
  virtual pid_t broker_pid() const = 0;
  virtual std::vector<pid_t> worker_pids() const = 0;
  virtual std::unique_ptr<Driver> driver(std::size_t payload) = 0;
  // Only a stack with a journal (system muster-durable) has one; ask while it runs.
  virtual std::optional<JournalState> journal() const { return std::nullopt; }
  // After stop(): musterd's own count of its journal work ("B batch(es) committed, R record(s),
  // W WorkRequest(s) sent before their call's commit"), empty when it has none.
  virtual std::string journal_activity() const { return {}; }
};

// `name` tells two muster builds apart in one run ("muster", "alt"): run dir, logs.
// raw_workers: the workers are muster-bench-simworkers --echo (protocol-minimal, no SDK), to
// separate musterd's cost from the SDK's (system "raw").
// journal: Sqlite — musterd journals to sqlite:<run dir>/<name>-<transport>-journal.db (system
// "muster-durable"); Postgres — to a database of its own on a private PostgreSQL server the
// bench starts once (tests/integration/postgres_server.py, fsync on; system
// "muster-durable-pg"). Either way every call is submitted durable; outcomes are acknowledged
// as the client library does by default (at its next poll or submit), so the journal holds
// only the calls in flight. `durable_args`: more musterd flags of this stack alone (systems
// muster-durable-normal: --journal-sync normal; muster-durable-two-commits:
// --journal-early-dispatch false).
enum class JournalKind { None, Sqlite, Postgres };
std::unique_ptr<Stack> make_muster_stack(const Paths& paths, std::string name = "muster",
                                         bool raw_workers = false, JournalKind journal = JournalKind::None,
                                         std::vector<std::string> durable_args = {});
std::unique_ptr<Stack> make_baseline_stack(const Paths& paths);

// The bench's own ids for the run directory layout.
std::filesystem::path log_path(const std::filesystem::path& dir, std::string_view name);

}  // namespace muster::bench
