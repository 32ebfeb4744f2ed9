// token_store_postgres.cpp — the `enrollment_tokens` rows of a shard (token_store_postgres.hpp).
#include "token_store_postgres.hpp"

#include <limits>
#include <stdexcept>

#include <fmt/format.h>

namespace muster::broker {

std::vector<keys::StoredToken> PostgresTokens::load() {
  auto rows = store_->read(
      "SELECT id, secret_hash, role, workspace, label, created_ms, expires_ms, uses_total, "
      "uses_left, revoked, revoked_ms, last_used_ms FROM enrollment_tokens WHERE shard = $1 "
      "ORDER BY id",
      {store_->shard()});
  auto bad = [&](const std::string& id, const std::string& why) {
    return std::runtime_error(fmt::format("{} is not a valid token store: token {}: {}", describe(), id, why));
  };
  auto uses = [&](int r, int col, const std::string& id) {
    const auto n = rows.integer(r, col);
    if (n < 0 || n > std::numeric_limits<std::uint32_t>::max()) throw bad(id, "a use count out of range");
    return static_cast<std::uint32_t>(n);
  };
  std::vector<keys::StoredToken> out;
  out.reserve(static_cast<std::size_t>(rows.size()));
  for (int r = 0; r < rows.size(); ++r) {
    keys::StoredToken t;
    t.info.id = rows.text(r, 0);
    t.secret_hash = rows.text(r, 1);
    auto role = keys::parse_role(rows.text(r, 2));
    if (!role) throw bad(t.info.id, fmt::format("bad role `{}`", rows.text(r, 2)));
    t.info.role = *role;
    t.info.workspace = rows.text(r, 3);
    t.info.label = rows.text(r, 4);
    t.info.created_at = time_at(rows, r, 5);
    t.info.expires_at = time_at(rows, r, 6);
    t.info.uses_total = uses(r, 7, t.info.id);
    t.info.uses_left = uses(r, 8, t.info.id);
    t.info.revoked = rows.boolean(r, 9);
    t.info.revoked_at = optional_time_at(rows, r, 10);
    t.info.last_used_at = optional_time_at(rows, r, 11);
    out.push_back(std::move(t));
  }
  return out;
}

void PostgresTokens::save(const keys::TokenMap& before, const keys::TokenMap& after) {
  std::vector<const keys::StoredToken*> changed;
  for (const auto& [id, t] : after)
    if (auto was = before.find(id); was == before.end() || !(was->second == t)) changed.push_back(&t);
  std::vector<std::string> gone;
  for (const auto& [id, t] : before)
    if (!after.count(id)) gone.push_back(id);
  if (changed.empty() && gone.empty()) return;
  store_->write([&] {
    for (const std::string& id : gone)
      store_->statement("DELETE FROM enrollment_tokens WHERE shard = $1 AND id = $2", {store_->shard(), id});
    for (const keys::StoredToken* t : changed) {
      const keys::TokenInfo& i = t->info;
      store_->statement(
          "INSERT INTO enrollment_tokens (shard, id, secret_hash, role, workspace, label, "
          "created_ms, expires_ms, uses_total, uses_left, revoked, revoked_ms, last_used_ms) "
          "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) "
          "ON CONFLICT (shard, id) DO UPDATE SET secret_hash = excluded.secret_hash, "
          "role = excluded.role, workspace = excluded.workspace, label = excluded.label, "
          "created_ms = excluded.created_ms, expires_ms = excluded.expires_ms, "
          "uses_total = excluded.uses_total, uses_left = excluded.uses_left, "
          "revoked = excluded.revoked, revoked_ms = excluded.revoked_ms, "
          "last_used_ms = excluded.last_used_ms",
          {store_->shard(), i.id, t->secret_hash, std::string(keys::role_name(i.role)), i.workspace,
           i.label, millis_param(i.created_at), millis_param(i.expires_at), std::to_string(i.uses_total),
           std::to_string(i.uses_left), std::string(i.revoked ? "true" : "false"),
           millis_param(i.revoked_at), millis_param(i.last_used_at)});
    }
  });
}

}  // namespace muster::broker
