// security.cpp — see security.hpp.
#include "security.hpp"

#include <spdlog/spdlog.h>

#include "muster/key_file.hpp"

namespace muster::broker {

Security::Security(const std::filesystem::path& data_dir) {
  bool created = false;
  keys_ = keys::load_or_create_daemon_keys(data_dir, &created);
  if (created)
    spdlog::info("created the daemon key pair in {} (public key {})", data_dir.string(),
                 keys::key_fingerprint(keys_.public_key));
  tokens_ = std::make_unique<keys::TokenStore>(keys::TokenStore::default_path(data_dir),
                                               keys_.public_key);
  identities_ = std::make_unique<keys::IdentityStore>(keys::IdentityStore::default_path(data_dir));
  limiter_ = std::make_unique<keys::RateLimiter>();
  enrollment_ = std::make_unique<keys::Enrollment>(*tokens_, *identities_, limiter_.get());
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
  auto id = identities_->authorize_id(peer.identity, needed);
  if (!id) return std::nullopt;
  return Caller{id->id, id->name, id->workspace, std::string(keys::role_name(id->role))};
}

}  // namespace muster::broker
