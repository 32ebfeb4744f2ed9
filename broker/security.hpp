// security.hpp — the daemon's side of keys/: its CURVE key pair, the token and identity
// stores, enrollment, and the mapping from an authenticated connection to a Caller.
// The stores are files in the data dir, or — for a failover pair on a PostgreSQL journal —
// the shard's tables there, loaded when this daemon takes the lease (share()).
// Owns: "who is this peer and may it do this", for every message the daemon reads.
// Must never: accept a message from an identity that is unknown, revoked, or of the wrong
// role; it is asked again for every message, so a revocation takes effect at once.
#pragma once

#include <filesystem>
#include <memory>
#include <optional>
#include <string>

#include "events.hpp"
#include "identity_postgres_connection.hpp"
#include "muster/curve_keys.hpp"
#include "muster/enrollment.hpp"
#include "muster/identity_store.hpp"
#include "muster/rate_limiter.hpp"
#include "muster/role.hpp"
#include "muster/token_store.hpp"

namespace muster::broker {

class Security {
 public:
  // Keeps `data_dir` for the daemon's key pair and stores. An existing `data_dir` is checked at
  // once (refused if another user owns it or others may write it); nothing is created until
  // the keys or stores are first needed (a tcp:// CURVE endpoint at start, a token minted), so
  // a daemon used only over ipc:// writes nothing there.
  explicit Security(std::filesystem::path data_dir);

  // For a failover pair (docs/DURABILITY.md §12): the stores are the shard's tables in the
  // PostgreSQL store `settings` names, written under the lease this daemon took at `epoch`
  // (every write is fenced by it), instead of identities.json and tokens.json. Called by the
  // daemon once it leads, before the stores are first needed; they are then loaded from
  // PostgreSQL, importing the data dir's identities.json and tokens.json once
  // (identity_postgres_import.hpp). Throws std::logic_error if the stores were loaded already.
  void share(SharedStoreSettings settings, std::uint64_t epoch);

  // Whether there are stores to read: loaded already, or a daemon key pair in the data dir.
  // Read-only admin commands (token list, keys list) check this first, so that they create
  // nothing when there is nothing to list.
  bool has_stores() const;

  // Each loads (or creates, on first need) the key pair and the stores.
  const keys::KeyPair& daemon_keys() { return loaded().keys; }
  keys::TokenStore& tokens() { return *loaded().tokens; }
  keys::IdentityStore& identities() { return *loaded().identities; }
  keys::Enrollment& enrollment() { return *loaded().enrollment; }

  // The caller behind a message that came through a socket bound on an ipc:// endpoint
  // (`via_ipc`) or a tcp:// one. A peer without a ZAP identity is:
  //  - over ipc:// (the runtime dir is 0700): the local owner, an admin of the default workspace;
  //  - over tcp:// (only possible with --insecure): anonymous, of the default workspace, with
  //    the role it needs if that is worker or client, and never admin.
  // Otherwise the identity must exist, be unrevoked and hold `needed` (admin counts as client).
  std::optional<Caller> caller_for(const Peer& peer, keys::Role needed, bool via_ipc) const;

  // The identity id a connection acts as: its ZAP User-Id, else "local" over ipc:// and
  // "anonymous" over --insecure tcp://. Worker topics are built from it (subscription_policy).
  static std::string identity_of(std::string_view user_id, bool via_ipc);

 private:
  struct Stores {
    keys::KeyPair keys;
    std::unique_ptr<keys::TokenStore> tokens;
    std::unique_ptr<keys::IdentityStore> identities;
    std::unique_ptr<keys::RateLimiter> limiter;
    std::unique_ptr<keys::Enrollment> enrollment;
  };
  Stores& loaded() const;
  struct Shared {
    SharedStoreSettings settings;
    std::uint64_t epoch = 0;
  };

  std::filesystem::path data_dir_;
  std::optional<Shared> shared_;  // share(): the stores live in PostgreSQL
  mutable std::unique_ptr<Stores> stores_;  // made on first need
};

}  // namespace muster::broker
