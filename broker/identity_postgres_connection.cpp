// identity_postgres_connection.cpp — the fenced connection of the shared identity and token
// stores (identity_postgres_connection.hpp). Parameters and results travel as text.
#include "identity_postgres_connection.hpp"

#include <libpq-fe.h>

#include <algorithm>
#include <stdexcept>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "leadership.hpp"

namespace muster::broker {
namespace {

std::string trimmed(const char* message) {
  std::string s = message ? message : "";
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s;
}

bool succeeded(const PGresult* r) {
  const auto st = PQresultStatus(r);
  return st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK;
}

}  // namespace

FencedPostgres::Rows::~Rows() { PQclear(r_); }
int FencedPostgres::Rows::size() const { return PQntuples(r_); }
bool FencedPostgres::Rows::null(int row, int col) const { return PQgetisnull(r_, row, col) != 0; }
std::string FencedPostgres::Rows::text(int row, int col) const {
  return null(row, col) ? std::string() : std::string(PQgetvalue(r_, row, col));
}
std::int64_t FencedPostgres::Rows::integer(int row, int col) const {
  const std::string t = text(row, col);
  try {
    std::size_t used = 0;
    const long long v = std::stoll(t, &used);
    if (used == t.size()) return v;
  } catch (const std::exception&) {
  }
  throw std::runtime_error(fmt::format("column {} holds `{}`, not an integer", PQfname(r_, col), t));
}
bool FencedPostgres::Rows::boolean(int row, int col) const { return text(row, col) == "t"; }

FencedPostgres::FencedPostgres(SharedStoreSettings settings, std::uint64_t epoch)
    : settings_(std::move(settings)), epoch_(epoch), description_("postgresql (shard " + settings_.shard + ")") {
  if (epoch_ == 0) fail("the shared identity and token stores need the lease (epoch 0)");
  connect();
}

FencedPostgres::~FencedPostgres() { PQfinish(conn_); }

void FencedPostgres::fail(const std::string& what) const {
  throw std::runtime_error(fmt::format("identity and token store {}: {}", description_, what));
}

void FencedPostgres::connect() {
  PQfinish(std::exchange(conn_, nullptr));
  // The journal's defaults (journal_postgres.cpp): a server that stops answering fails a call
  // within about one term; whatever the connection string says overrides them.
  const std::string term_ms = std::to_string(settings_.term.count());
  const std::string probes = std::to_string(std::max<long long>(1, settings_.term.count() / 1000));
  const char* keys[] = {"connect_timeout", "fallback_application_name", "tcp_user_timeout",
                        "keepalives_idle", "keepalives_interval", "keepalives_count", "dbname", nullptr};
  const char* values[] = {"10", "musterd", term_ms.c_str(), "1", "1", probes.c_str(),
                          settings_.conninfo.c_str(), nullptr};
  conn_ = PQconnectdbParams(keys, values, /*expand_dbname=*/1);
  if (!conn_ || PQstatus(conn_) != CONNECTION_OK) {
    std::string why = conn_ ? trimmed(PQerrorMessage(conn_)) : "out of memory";
    PQfinish(std::exchange(conn_, nullptr));
    fail(fmt::format("cannot connect: {}", why));
  }
  PQsetNoticeProcessor(
      conn_, [](void*, const char* message) { spdlog::warn("postgresql: {}", trimmed(message)); }, nullptr);
  description_ = fmt::format("postgresql://{}@{}:{}/{} (shard {})", PQuser(conn_), PQhost(conn_),
                             PQport(conn_), PQdb(conn_), settings_.shard);
  for (const std::string& sql :
       {std::string("SET synchronous_commit = on"), std::string("SET client_min_messages = warning"),
        fmt::format("SET idle_in_transaction_session_timeout = {}", settings_.term.count())}) {
    Rows r(PQexec(conn_, sql.c_str()));
    if (!succeeded(r.get())) fail(trimmed(PQerrorMessage(conn_)));
  }
}

FencedPostgres::Rows FencedPostgres::run(const char* sql, const std::vector<Param>& params) {
  std::vector<const char*> values;
  values.reserve(params.size());
  for (const Param& p : params) values.push_back(p ? p->c_str() : nullptr);
  Rows r(PQexecParams(conn_, sql, static_cast<int>(values.size()), nullptr, values.data(), nullptr,
                      nullptr, 0));
  if (!succeeded(r.get())) {
    std::string why = trimmed(PQerrorMessage(conn_));
    if (PQstatus(conn_) == CONNECTION_BAD) why = "lost the connection: " + why;
    fail(why);
  }
  return r;
}

FencedPostgres::Rows FencedPostgres::read(const char* sql, const std::vector<Param>& params) {
  std::lock_guard lock(mu_);
  if (PQstatus(conn_) != CONNECTION_OK) connect();  // a link lost since the last call
  return run(sql, params);
}

FencedPostgres::Rows FencedPostgres::statement(const char* sql, const std::vector<Param>& params) {
  std::lock_guard lock(mu_);
  if (!in_write_) fail("a statement outside write() (a bug)");
  return run(sql, params);
}

void FencedPostgres::write(const std::function<void()>& body) {
  std::lock_guard lock(mu_);
  if (in_write_) fail("write() inside write() (a bug)");
  if (PQstatus(conn_) != CONNECTION_OK) connect();
  in_write_ = true;
  try {
    run("BEGIN", {});
    // Fencing: the lease row stays share-locked until this transaction ends, so no standby can
    // take the lease between this check and the commit.
    Rows lease = run("SELECT epoch, holder FROM leases WHERE shard = $1 FOR SHARE", {settings_.shard});
    const auto row_epoch = lease.size() == 1 ? static_cast<std::uint64_t>(lease.integer(0, 0)) : 0;
    if (!leadership::may_write(row_epoch, epoch_)) {
      const std::string holder = lease.size() == 1 ? lease.text(0, 1) : std::string();
      fail(fmt::format("lost the lease of shard {} (this daemon led at epoch {}): {} holds it at "
                       "epoch {}; the change is refused",
                       settings_.shard, epoch_, holder.empty() ? "nobody" : holder, row_epoch));
    }
    body();
    Rows done = run("COMMIT", {});
    if (std::string(PQcmdStatus(done.get())) != "COMMIT")
      fail("the change was rolled back by the server; nothing was stored");
  } catch (...) {
    in_write_ = false;
    if (PQstatus(conn_) == CONNECTION_OK && PQtransactionStatus(conn_) != PQTRANS_IDLE)
      PQclear(PQexec(conn_, "ROLLBACK"));
    throw;
  }
  in_write_ = false;
}

FencedPostgres::Param millis_param(keys::TimePoint t) {
  return std::to_string(std::chrono::floor<std::chrono::milliseconds>(t).time_since_epoch().count());
}

FencedPostgres::Param millis_param(const std::optional<keys::TimePoint>& t) {
  return t ? millis_param(*t) : std::nullopt;
}

keys::TimePoint time_at(const FencedPostgres::Rows& rows, int row, int col) {
  return keys::TimePoint(std::chrono::milliseconds(rows.integer(row, col)));
}

std::optional<keys::TimePoint> optional_time_at(const FencedPostgres::Rows& rows, int row, int col) {
  if (rows.null(row, col)) return std::nullopt;
  return time_at(rows, row, col);
}

}  // namespace muster::broker
