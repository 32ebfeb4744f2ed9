// identity_store_postgres.cpp — the `identities` rows of a shard (identity_store_postgres.hpp).
#include "identity_store_postgres.hpp"

#include <stdexcept>

#include <fmt/format.h>

namespace muster::broker {

std::vector<keys::Identity> PostgresIdentities::load() {
  auto rows = store_->read(
      "SELECT id, public_key, role, workspace, name, hostname, enrolled_ms, token_id, revoked, "
      "revoked_ms FROM identities WHERE shard = $1 ORDER BY enrolled_ms, id",
      {store_->shard()});
  std::vector<keys::Identity> out;
  out.reserve(static_cast<std::size_t>(rows.size()));
  for (int r = 0; r < rows.size(); ++r) {
    keys::Identity i;
    i.id = rows.text(r, 0);
    i.public_key = rows.text(r, 1);
    auto role = keys::parse_role(rows.text(r, 2));
    if (!role)
      throw std::runtime_error(fmt::format("{} is not a valid identity store: identity {}: bad role `{}`",
                                           describe(), i.id, rows.text(r, 2)));
    i.role = *role;
    i.workspace = rows.text(r, 3);
    i.name = rows.text(r, 4);
    i.hostname = rows.text(r, 5);
    i.enrolled_at = time_at(rows, r, 6);
    i.token_id = rows.text(r, 7);
    i.revoked = rows.boolean(r, 8);
    i.revoked_at = optional_time_at(rows, r, 9);
    out.push_back(std::move(i));
  }
  return out;
}

void PostgresIdentities::save(const keys::IdentityMap& before, const keys::IdentityMap& after) {
  std::vector<const keys::Identity*> changed;
  for (const auto& [id, i] : after)
    if (auto was = before.find(id); was == before.end() || !(was->second == i)) changed.push_back(&i);
  std::vector<std::string> gone;
  for (const auto& [id, i] : before)
    if (!after.count(id)) gone.push_back(id);
  if (changed.empty() && gone.empty()) return;
  store_->write([&] {
    for (const std::string& id : gone)
      store_->statement("DELETE FROM identities WHERE shard = $1 AND id = $2", {store_->shard(), id});
    for (const keys::Identity* i : changed)
      store_->statement(
          "INSERT INTO identities (shard, id, public_key, role, workspace, name, hostname, "
          "enrolled_ms, token_id, revoked, revoked_ms) "
          "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) "
          "ON CONFLICT (shard, id) DO UPDATE SET public_key = excluded.public_key, "
          "role = excluded.role, workspace = excluded.workspace, name = excluded.name, "
          "hostname = excluded.hostname, enrolled_ms = excluded.enrolled_ms, "
          "token_id = excluded.token_id, revoked = excluded.revoked, revoked_ms = excluded.revoked_ms",
          {store_->shard(), i->id, i->public_key, std::string(keys::role_name(i->role)), i->workspace,
           i->name, i->hostname, millis_param(i->enrolled_at), i->token_id,
           std::string(i->revoked ? "true" : "false"), millis_param(i->revoked_at)});
  });
}

}  // namespace muster::broker
