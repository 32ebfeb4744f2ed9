// identity_postgres_connection.hpp — the libpq connection through which a failover pair's
// identity and token stores (identity_store_postgres.hpp, token_store_postgres.hpp) read and
// write their tables in the pair's PostgreSQL store, next to the journal (docs/DURABILITY.md §12).
// Owns: its own connection (the journal's is the socket loop's, turn by turn), fencing of every
// write by the lease at the epoch this daemon took it with, and reconnecting after a lost link.
// Must never: write without first reading the shard's lease row FOR SHARE in the same
// transaction and finding this daemon's epoch there (so a paused old leader can never change an
// identity or a token after a standby took over: leadership::may_write, as journal turns do);
// keep a transaction open across calls; put a password in a message.
// Thread-safe: one call at a time (an internal lock), so both stores may share it.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "muster/timestamp.hpp"

struct pg_conn;
struct pg_result;

namespace muster::broker {

// Where a failover pair keeps its shared state: the journal's store and shard.
struct SharedStoreSettings {
  std::string conninfo;  // a libpq URI (postgresql://…) or key=value string
  std::string shard = "default";
  // The lease's term: a session that a paused daemon leaves inside a transaction (holding the
  // lease row FOR SHARE) is ended by the server after it, as the journal's is.
  std::chrono::milliseconds term{4000};
};

class FencedPostgres {
 public:
  // One result; values read as text (every statement here selects text, bigint or boolean).
  class Rows {
   public:
    explicit Rows(pg_result* r) : r_(r) {}
    ~Rows();
    Rows(Rows&& o) noexcept : r_(o.r_) { o.r_ = nullptr; }
    Rows(const Rows&) = delete;
    Rows& operator=(const Rows&) = delete;
    int size() const;
    bool null(int row, int col) const;
    std::string text(int row, int col) const;
    std::int64_t integer(int row, int col) const;  // throws std::runtime_error if not one
    bool boolean(int row, int col) const;          // PostgreSQL's "t"
    pg_result* get() const { return r_; }

   private:
    pg_result* r_;
  };
  using Param = std::optional<std::string>;  // nullopt: NULL

  // Connects to `settings.conninfo` for the daemon that leads `settings.shard` at `epoch`.
  // Throws std::runtime_error naming the store (never its password) when it cannot.
  FencedPostgres(SharedStoreSettings settings, std::uint64_t epoch);
  ~FencedPostgres();
  FencedPostgres(const FencedPostgres&) = delete;
  FencedPostgres& operator=(const FencedPostgres&) = delete;

  // postgresql://USER@HOST:PORT/DB (shard NAME)
  const std::string& describe() const { return description_; }
  const std::string& shard() const { return settings_.shard; }
  std::uint64_t epoch() const { return epoch_; }

  // One statement outside any write (a read: what a takeover loads).
  Rows read(const char* sql, const std::vector<Param>& params);

  // Runs `body` in one transaction that first reads the shard's lease row FOR SHARE and goes on
  // only while it holds this daemon's epoch; `body` runs statements with `statement`. Commits,
  // or rolls back and throws std::runtime_error (naming the store; "lost the lease" when fenced)
  // if anything failed: then nothing of `body` was stored.
  void write(const std::function<void()>& body);
  // A statement inside write()'s body; throws on failure (which rolls the write back).
  Rows statement(const char* sql, const std::vector<Param>& params);

 private:
  Rows run(const char* sql, const std::vector<Param>& params);
  [[noreturn]] void fail(const std::string& what) const;
  void connect();

  SharedStoreSettings settings_;
  std::uint64_t epoch_;
  std::string description_;
  pg_conn* conn_ = nullptr;
  bool in_write_ = false;
  std::recursive_mutex mu_;  // write() holds it while its body runs statement()
};

// Times as the shared tables keep them: milliseconds since the Unix epoch (the precision of
// identities.json and tokens.json).
FencedPostgres::Param millis_param(keys::TimePoint t);
FencedPostgres::Param millis_param(const std::optional<keys::TimePoint>& t);  // nullopt: NULL
keys::TimePoint time_at(const FencedPostgres::Rows& rows, int row, int col);
std::optional<keys::TimePoint> optional_time_at(const FencedPostgres::Rows& rows, int row, int col);

}  // namespace muster::broker
