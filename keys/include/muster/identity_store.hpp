// identity_store.hpp — the enrolled identities (the allowed keys), with live revocation.
// Lookups are answered from memory; every change is written through to a backing first: a
// JSON file (`<data-dir>/identities.json`, mode 0600, atomic writes: IdentityFile below), or,
// for a failover pair, PostgreSQL (broker/identity_store_postgres.hpp).
// Owns: which CURVE public key is which identity (uuid, role, workspace, name, hostname),
// and whether it may still connect.
// Must never: let a revoked identity pass a lookup for even one more call after revoke()
// returns; let one public key hold two identities; change memory when the write to its
// backing failed.
// Thread-safe: lookups take a shared lock (the ZAP handler calls them on every handshake),
// changes an exclusive one.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include <nlohmann/json.hpp>

#include "muster/encoding.hpp"
#include "muster/role.hpp"
#include "muster/timestamp.hpp"

namespace muster::keys {

inline constexpr const char* kIdentityStoreFile = "identities.json";

struct Identity {
  std::string id;          // random UUID v4, lowercase: also the ZAP User-Id
  std::string public_key;  // Z85, 40 characters
  Role role = Role::Worker;
  std::string workspace;
  std::string name;
  std::string hostname;
  TimePoint enrolled_at;
  std::string token_id;    // the token that enrolled it
  bool revoked = false;
  std::optional<TimePoint> revoked_at;
  bool operator==(const Identity&) const = default;
};

// Every identity of a store, by id.
using IdentityMap = std::unordered_map<std::string, Identity>;

// Where an IdentityStore keeps its identities. The store validates what load() returns
// (Z85 keys, no key or id twice) and calls save() under its exclusive lock, so a backing is
// called by one thread at a time.
class IdentityBacking {
 public:
  virtual ~IdentityBacking() = default;
  // Names the backing in messages (a path, or a PostgreSQL store without its password).
  virtual std::string describe() const = 0;
  // Every stored identity, revoked ones included. Throws std::runtime_error naming the backing
  // when it cannot be read or holds something that is not an identity.
  virtual std::vector<Identity> load() = 0;
  // Makes the backing hold `after` where it held `before` (what load() or the last successful
  // save() left). All or nothing: throws std::runtime_error when it cannot, and then still
  // holds `before`.
  virtual void save(const IdentityMap& before, const IdentityMap& after) = 0;
};

// The JSON file backing: `{"format": "muster-identities", "version": 1, "identities": [...]}`,
// rewritten whole (write_file_atomic, mode 0600) on every save. A missing file is an empty
// store, created by the first save.
class IdentityFile final : public IdentityBacking {
 public:
  explicit IdentityFile(std::filesystem::path file) : file_(std::move(file)) {}
  std::string describe() const override { return file_.string(); }
  std::vector<Identity> load() override;
  void save(const IdentityMap& before, const IdentityMap& after) override;
  const std::filesystem::path& path() const { return file_; }

 private:
  std::filesystem::path file_;
};

// For admin replies (`muster keys list`) and caller context: every field above, times as
// ISO 8601 UTC, revoked_at null when not revoked.
nlohmann::json to_json(const Identity& identity);

// A random RFC 4122 version-4 UUID, lowercase with dashes.
std::string new_uuid_v4();

struct NewIdentity {
  std::string public_key;  // Z85
  Role role = Role::Worker;
  std::string workspace;
  std::string name;
  std::string hostname;
  std::string token_id;
};

enum class AddStatus {
  Created,     // a new identity was stored
  Existing,    // the key was already enrolled with the same role and workspace: that identity
  Conflict,    // the key is enrolled with another role or workspace: nothing stored
  KeyRevoked,  // the key belongs to a revoked identity: it can never enroll again
  InvalidKey,  // public_key is not a Z85 key
};

struct AddResult {
  AddStatus status = AddStatus::InvalidKey;
  std::optional<Identity> identity;  // Created/Existing: the identity; Conflict/KeyRevoked: the holder
  std::string message;               // human-readable reason when not Created/Existing
  bool ok() const { return status == AddStatus::Created || status == AddStatus::Existing; }
};

class IdentityStore {
 public:
  // Loads what `backing` holds (throws std::runtime_error naming it if it cannot be read or is
  // malformed: a key that is not Z85, a key or an id twice) and writes every change to it.
  explicit IdentityStore(std::unique_ptr<IdentityBacking> backing);
  // The same on IdentityFile(file): a missing file starts empty and is created on the first change.
  explicit IdentityStore(std::filesystem::path file);

  static std::filesystem::path default_path(const std::filesystem::path& data_dir);

  // Hash-map lookups, revoked identities included (check `revoked`).
  std::optional<Identity> find_by_key(std::string_view public_key_z85) const;
  std::optional<Identity> find_by_key(const KeyBytes& public_key) const;
  std::optional<Identity> find_by_id(std::string_view id) const;

  // The identity behind `public_key` if it exists, is not revoked and its role satisfies
  // `needed` (role_satisfies: admin may act as client). This is the ZAP decision.
  std::optional<Identity> authorize(std::string_view public_key_z85, Role needed) const;
  std::optional<Identity> authorize(const KeyBytes& public_key, Role needed) const;
  bool is_allowed(std::string_view public_key_z85, Role needed) const;

  // The same rule by identity id (the ZAP User-Id a message arrived with): the daemon's
  // per-message check, so a revoked peer that is still connected is refused at once.
  std::optional<Identity> authorize_id(std::string_view id, Role needed) const;

  // What add() would answer, without storing anything.
  AddResult preview(const NewIdentity& req) const;
  // Stores a new identity (uuid v4, enrolled_at = now), or returns the existing one for the
  // same key, role and workspace. Throws std::runtime_error if it cannot be saved (then nothing
  // was stored, in memory or in the backing).
  AddResult add(const NewIdentity& req, TimePoint now);

  // Revokes by identity id; takes effect for every lookup as soon as it returns. Returns the
  // revoked identity (so the daemon can drop its live sessions), or nullopt for an unknown id.
  // Revoking twice keeps the first revoked_at. Throws std::runtime_error if it cannot be saved
  // (then nothing changed).
  std::optional<Identity> revoke(std::string_view id, TimePoint now);

  // Ordered by enrolled_at.
  std::vector<Identity> list() const;
  std::size_t size() const;

  // Increases on every change (add, revoke): a cheap "did anything change?" for caches.
  std::uint64_t generation() const;

 private:
  using ById = IdentityMap;
  using ByKey = std::unordered_map<std::string, std::string>;  // Z85 key -> id

  AddResult preview_locked(const NewIdentity& req) const;

  std::unique_ptr<IdentityBacking> backing_;
  mutable std::shared_mutex mu_;
  ById by_id_;
  ByKey by_key_;
  std::uint64_t generation_ = 0;
};

}  // namespace muster::keys
