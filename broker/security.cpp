// security.cpp — see security.hpp.
#include "security.hpp"

#include <spdlog/spdlog.h>

#include "muster/key_file.hpp"
#include "muster/secure_file.hpp"

namespace muster::broker {

Security::Security(std::filesystem::path data_dir) : data_dir_(std::move(data_dir)) {
  std::error_code ec;
  if (std::filesystem::exists(data_dir_, ec)) keys::ensure_data_dir(data_dir_);  // only checks
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
  s->tokens = std::make_unique<keys::TokenStore>(keys::TokenStore::default_path(data_dir_), s->keys.public_key);
  s->identities = std::make_unique<keys::IdentityStore>(keys::IdentityStore::default_path(data_dir_));
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
