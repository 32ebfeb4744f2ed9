// token_store_postgres.hpp — the token store's backing for a failover pair: the
// `enrollment_tokens` table of the pair's PostgreSQL store (docs/DURABILITY.md §12,
// "Identities, tokens and revocations"), so that a token minted on the active daemon enrolls on
// the standby once it took over, and a use taken on one is gone on the other.
// Owns: the rows of its shard in `enrollment_tokens` and how a StoredToken maps to them.
// Must never: store a token's secret (its BLAKE2b-256 hash only, as tokens.json), write other than
// through FencedPostgres::write (fenced by the lease), or write a row that did not change.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "identity_postgres_connection.hpp"
#include "muster/token_store.hpp"

namespace muster::broker {

class PostgresTokens final : public keys::TokenBacking {
 public:
  explicit PostgresTokens(std::shared_ptr<FencedPostgres> store) : store_(std::move(store)) {}
  std::string describe() const override { return store_->describe(); }
  // The shard's tokens. Throws std::runtime_error naming the store.
  std::vector<keys::StoredToken> load() override;
  // One fenced transaction: the rows of the tokens that differ between `before` and `after`
  // (minted, used, refunded, revoked), and deletes of those `after` no longer holds (pruned).
  void save(const keys::TokenMap& before, const keys::TokenMap& after) override;

 private:
  std::shared_ptr<FencedPostgres> store_;
};

}  // namespace muster::broker
