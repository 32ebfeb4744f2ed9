// security.cpp — see security.hpp.
#include "security.hpp"

#include <stdexcept>

#include <spdlog/spdlog.h>

#include "identity_postgres_import.hpp"
#include "identity_store_postgres.hpp"
#include "token_store_postgres.hpp"
#include "muster/key_file.hpp"
#include "muster/secure_file.hpp"

namespace muster::broker {

Security::Security(std::filesystem::path data_dir) : data_dir_(std::move(data_dir)) {
  std::error_code ec;
  if (std::filesystem::exists(data_dir_, ec)) keys::ensure_data_dir(data_dir_);  // only checks
}

void Security::share(SharedStoreSettings settings, std::uint64_t epoch) {
  if (stores_) throw std::logic_error("Security::share() after the stores were loaded");
  shared_ = Shared{std::move(settings), epoch};
}

bool Security::has_stores() const {
  std::error_code ec;
  return stores_ || std::filesystem::exists(keys::daemon_secret_key_path(data_dir_), ec);
}

Security::Stores& Security::loaded() const {
  if (stores_) return *stores_;
  auto s = std::make_unique<Stores>();
  bool created = false;
  s->keys = keys::load_or_create_daemon_keys(data_dir_, &created);
  if (created)
    spdlog::info("created the daemon key pair in {} (public key {})", data_dir_.string(),
                 keys::key_fingerprint(s->keys.public_key));
  if (shared_) {
    auto store = std::make_shared<FencedPostgres>(shared_->settings, shared_->epoch);
    auto identities = std::make_unique<PostgresIdentities>(store);
    auto tokens = std::make_unique<PostgresTokens>(store);
    import_file_stores(data_dir_, s->keys.public_key, *identities, *tokens);
    s->tokens = std::make_unique<keys::TokenStore>(std::move(tokens), s->keys.public_key);
    s->identities = std::make_unique<keys::IdentityStore>(std::move(identities));
    spdlog::info("identities and tokens: {}, shared by the failover pair ({} identities, {} tokens)",
                 store->describe(), s->identities->size(), s->tokens->list().size());
  } else {
    s->tokens = std::make_unique<keys::TokenStore>(keys::TokenStore::default_path(data_dir_), s->keys.public_key);
    s->identities = std::make_unique<keys::IdentityStore>(keys::IdentityStore::default_path(data_dir_));
  }
  s->limiter = std::make_unique<keys::RateLimiter>();
  s->enrollment = std::make_unique<keys::Enrollment>(*s->tokens, *s->identities, s->limiter.get());
  stores_ = std::move(s);
  return *stores_;
}

std::string Security::identity_of(std::string_view user_id, bool via_ipc) {
  if (!user_id.empty()) return std::string(user_id);
  return via_ipc ? "local" : "anonymous";
}

std::optional<Caller> Security::caller_for(const Peer& peer, keys::Role needed, bool via_ipc) const {
  if (peer.identity.empty()) {
    if (via_ipc) return Caller{};  // the local owner
    // --insecure tcp://: nobody is authenticated, so nobody is admin (docs/SECURITY.md §2).
    auto anonymous = identity_of("", false);
    return Caller{anonymous, anonymous, "default",
                  needed == keys::Role::Worker ? "worker" : "client"};
  }
  auto id = loaded().identities->authorize_id(peer.identity, needed);
  if (!id) return std::nullopt;
  return Caller{id->id, id->name, id->workspace, std::string(keys::role_name(id->role))};
}

}  // namespace muster::broker
