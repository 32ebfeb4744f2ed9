// identity_store_postgres.hpp — the identity store's backing for a failover pair: the
// `identities` table of the pair's PostgreSQL store (docs/DURABILITY.md §12, "Identities,
// tokens and revocations"), so that a key enrolled or revoked on the active daemon is known to
// the standby when it takes over (it loads the table then).
// Owns: the rows of its shard in `identities` and how an Identity maps to them.
// Must never: write other than through FencedPostgres::write (fenced by the lease), or write a
// row that did not change.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "identity_postgres_connection.hpp"
#include "muster/identity_store.hpp"

namespace muster::broker {

class PostgresIdentities final : public keys::IdentityBacking {
 public:
  explicit PostgresIdentities(std::shared_ptr<FencedPostgres> store) : store_(std::move(store)) {}
  std::string describe() const override { return store_->describe(); }
  // The shard's identities, oldest first. Throws std::runtime_error naming the store.
  std::vector<keys::Identity> load() override;
  // One fenced transaction: the rows of the identities that differ between `before` and
  // `after` (inserted or updated), and deletes of those `after` no longer holds.
  void save(const keys::IdentityMap& before, const keys::IdentityMap& after) override;

 private:
  std::shared_ptr<FencedPostgres> store_;
};

}  // namespace muster::broker
