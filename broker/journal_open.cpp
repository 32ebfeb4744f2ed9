// journal_open.cpp — the journal factory (journal_open.hpp).
#include "journal_open.hpp"

#include <stdexcept>
#include <string_view>

#include <fmt/format.h>

#include "journal_postgres.hpp"
#include "journal_sqlite.hpp"

namespace muster::broker::journal {
namespace {
constexpr std::string_view kSqlite = "sqlite:";
}  // namespace

bool is_shared_store(const std::string& spec) {
  return spec.starts_with("postgresql://") || spec.starts_with("postgres://");
}

std::unique_ptr<Journal> open_journal(const JournalSettings& settings) {
  const std::string& spec = settings.spec;
  if (spec.starts_with(kSqlite) && spec.size() > kSqlite.size()) {
    SqliteOptions o;
    o.path = spec.substr(kSqlite.size());
    o.byte_limit = settings.byte_limit;
    // Full: the WAL's fsync deferred to a sync the journal thread runs while it writes the
    // next batch (the same promise: a batch counts once synced; docs/DURABILITY.md §3, §4).
    o.sync = settings.sync == JournalSync::Full ? SqliteOptions::Sync::Deferred : SqliteOptions::Sync::Normal;
    return std::make_unique<SqliteJournal>(o);
  }
  if (is_shared_store(spec)) {
    PostgresOptions o;
    o.conninfo = spec;
    o.shard = settings.shard;
    o.holder = settings.holder;
    o.term = settings.lease_term;
    o.byte_limit = settings.byte_limit;
    o.synchronous_commit = settings.sync == JournalSync::Full;
    return std::make_unique<PostgresJournal>(o);
  }
  throw std::invalid_argument(
      fmt::format("--journal {}: expected sqlite:PATH or postgresql://USER@HOST/DATABASE", spec));
}

}  // namespace muster::broker::journal
