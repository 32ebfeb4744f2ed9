// journal_stores.hpp — the journal implementations the contract tests run against
// (tests/unit/journal_contract_test.cpp): each store opens a fresh journal of its kind, as a
// daemon would (for PostgreSQL: connected and holding the lease of its shard), reopens the same
// one, and says why it cannot run (PostgreSQL binaries absent: the test is skipped, saying so).
#pragma once

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <thread>

#include <doctest/doctest.h>

#include "journal_postgres.hpp"
#include "journal_sqlite.hpp"
#include "postgres_for_test.hpp"
#include "temp_dir.hpp"

namespace muster::test {

struct SqliteStore {
  static constexpr const char* kName = "sqlite";
  TempDir dir;
  std::filesystem::path path = dir.path / "journal.db";

  std::optional<std::string> unavailable() const { return std::nullopt; }
  std::string describe() const { return "sqlite:" + path.string(); }
  std::unique_ptr<broker::journal::Journal> open(std::uint64_t byte_limit = 0) const {
    broker::journal::SqliteOptions o;
    o.path = path;
    o.byte_limit = byte_limit;
    return std::make_unique<broker::journal::SqliteJournal>(o);
  }
};

struct PostgresStore {
  static constexpr const char* kName = "postgresql";
  // Long enough that a busy test machine never idles a turn past it (the server ends a
  // session idle inside a transaction for longer than the term).
  static constexpr std::chrono::milliseconds kTerm{3000};
  std::string conninfo;

  PostgresStore() {
    auto& server = TestPostgres::get();
    if (!server.absent()) conninfo = server.fresh_database();
  }
  std::optional<std::string> unavailable() const { return TestPostgres::get().absent(); }

  broker::journal::PostgresOptions options(std::uint64_t byte_limit = 0, std::string holder = {}) const {
    static int opened = 0;
    broker::journal::PostgresOptions o;
    o.conninfo = conninfo;
    o.holder = holder.empty() ? "test-daemon-" + std::to_string(::getpid()) + "-" + std::to_string(++opened)
                              : std::move(holder);
    o.term = kTerm;
    o.byte_limit = byte_limit;
    return o;
  }
  // A journal holding the lease (waiting, bounded, for one a killed daemon left to expire).
  // `synchronous_commit`: false for --journal-sync normal.
  std::unique_ptr<broker::journal::Journal> open(std::uint64_t byte_limit = 0, bool synchronous_commit = true) const {
    auto o = options(byte_limit);
    o.synchronous_commit = synchronous_commit;
    auto j = std::make_unique<broker::journal::PostgresJournal>(o);
    const auto until = std::chrono::steady_clock::now() + 4 * kTerm;
    for (;;) {
      auto s = j->try_lead(std::chrono::steady_clock::now());
      if (s.leading) return j;
      REQUIRE(std::chrono::steady_clock::now() < until);
      std::this_thread::sleep_for(s.retry_in);
    }
  }
};

}  // namespace muster::test

// Skips the rest of a test case whose store cannot run here, saying why.
#define MUSTER_SKIP_UNLESS_AVAILABLE(store)                                        \
  if (auto why__ = (store).unavailable()) {                                        \
    MESSAGE("skipped, the " << std::string((store).kName) << " journal is absent: " << *why__); \
    return;                                                                        \
  }
