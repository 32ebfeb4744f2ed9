// token_store.hpp — the daemon's enrollment tokens: minted, checked, consumed, listed, revoked.
// Checked from memory; every change is written through to a backing first: a JSON file
// (`<data-dir>/tokens.json`, mode 0600, atomic writes: TokenFile below), or, for a failover
// pair, PostgreSQL (broker/token_store_postgres.hpp). A token that ended
// (expired, used up, revoked) is forgotten kTokenKeepAfterEnd later, at the next mint, use or
// revoke.
// Owns: the token lifecycle (active → expired | used up | revoked) and the order of checks.
// Must never: store or return a token secret after mint() returns it; compare secrets other
// than in constant time; tell a caller anything about a token whose secret it has not proven
// (expired / used up / revoked are only reported after the secret matched); change memory
// when the write to its backing failed.
// Thread-safe: every method takes an internal lock.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "muster/names.hpp"
#include "muster/role.hpp"
#include "muster/timestamp.hpp"
#include "muster/token.hpp"

namespace muster::keys {

inline constexpr std::chrono::seconds kDefaultTokenTtl{24 * 3600};
inline constexpr std::uint32_t kMaxTokenUses = 1'000'000;
inline constexpr const char* kTokenStoreFile = "tokens.json";
// How long a token that ended (expired, used up or revoked) is kept, listed with its state,
// before the store forgets it.
inline constexpr std::chrono::seconds kTokenKeepAfterEnd{7 * 24 * 3600};

enum class TokenState { Active, Expired, UsedUp, Revoked };
std::string_view token_state_name(TokenState s);  // "active", "expired", "used-up", "revoked"

// What the store knows about a token. Holds no secret and no hash.
struct TokenInfo {
  std::string id;
  Role role = Role::Worker;
  std::string workspace;
  std::string label;
  TimePoint created_at;
  TimePoint expires_at;
  std::uint32_t uses_total = 1;
  std::uint32_t uses_left = 1;
  bool revoked = false;
  std::optional<TimePoint> revoked_at;
  std::optional<TimePoint> last_used_at;

  // Revoked wins over expired, which wins over used up (so UsedUp implies unexpired).
  TokenState state(TimePoint now) const;
  bool operator==(const TokenInfo&) const = default;
};

// A token as its backing keeps it: the info and token_secret_hash() in hex (BLAKE2b-256 of the
// secret; never the secret itself).
struct StoredToken {
  TokenInfo info;
  std::string secret_hash;
  bool operator==(const StoredToken&) const = default;
};
using TokenMap = std::map<std::string, StoredToken, std::less<>>;  // by id

// Where a TokenStore keeps its tokens. The store validates what load() returns (ids, hashes,
// no id twice) and calls save() under its lock, so a backing is called by one thread at a time.
class TokenBacking {
 public:
  virtual ~TokenBacking() = default;
  // Names the backing in messages (a path, or a PostgreSQL store without its password).
  virtual std::string describe() const = 0;
  // Every stored token. Throws std::runtime_error naming the backing when it cannot be read
  // or holds something that is not a token.
  virtual std::vector<StoredToken> load() = 0;
  // Makes the backing hold `after` where it held `before` (what load() or the last successful
  // save() left). All or nothing: throws std::runtime_error when it cannot, and then still
  // holds `before`.
  virtual void save(const TokenMap& before, const TokenMap& after) = 0;
};

// The JSON file backing: `{"format": "muster-tokens", "version": 1, "daemon_public_key": ...,
// "tokens": [...]}`, rewritten whole (write_file_atomic, mode 0600) on every save and read
// only if private to its owner (read_private_file). A missing file is an empty store.
class TokenFile final : public TokenBacking {
 public:
  // `daemon_public_key_z85` is written into the file; a file written for another key is read
  // with a warning (its tokens will be refused as minted by another daemon).
  TokenFile(std::filesystem::path file, std::string daemon_public_key_z85)
      : file_(std::move(file)), daemon_key_z85_(std::move(daemon_public_key_z85)) {}
  std::string describe() const override { return file_.string(); }
  std::vector<StoredToken> load() override;
  void save(const TokenMap& before, const TokenMap& after) override;
  const std::filesystem::path& path() const { return file_; }

 private:
  std::filesystem::path file_;
  std::string daemon_key_z85_;
};

// For admin replies (`muster token list`): id, role, workspace, label, created_at, expires_at,
// uses_total, uses_left, revoked, revoked_at, last_used_at, state (as of `now`).
nlohmann::json to_json(const TokenInfo& info, TimePoint now);

struct MintRequest {
  Role role = Role::Worker;
  std::chrono::seconds ttl = kDefaultTokenTtl;  // > 0 and <= kMaxDuration
  std::uint32_t uses = 1;                       // 1 .. kMaxTokenUses
  std::string workspace = std::string(kDefaultWorkspace);  // is_valid_workspace
  std::string label;                                       // is_valid_label
};

struct MintedToken {
  std::string token;  // the token text: the only time the secret exists in clear
  TokenInfo info;
};

enum class TokenError { None, Malformed, WrongDaemonKey, Unknown, Expired, UsedUp, Revoked };
std::string_view token_error_name(TokenError e);  // "ok", "malformed", "wrong-daemon-key", ...

struct TokenCheck {
  TokenError error = TokenError::None;
  std::string message;  // for the token's holder; quotes no input, reveals nothing without the secret
  std::string detail;   // for the daemon's log (may name the token id); never the secret
  std::optional<TokenInfo> info;  // set once the secret matched (None, Expired, UsedUp, Revoked)
  explicit operator bool() const { return error == TokenError::None; }
};

class TokenStore {
 public:
  // Loads what `backing` holds (throws std::runtime_error naming it if it cannot be read or is
  // malformed) and writes every change to it. `daemon_public_key_z85` is this daemon's key:
  // tokens carrying another key are refused.
  TokenStore(std::unique_ptr<TokenBacking> backing, std::string daemon_public_key_z85);
  // The same on TokenFile(file, key): a missing file starts empty and is created on the first
  // change.
  TokenStore(std::filesystem::path file, std::string daemon_public_key_z85);

  static std::filesystem::path default_path(const std::filesystem::path& data_dir);

  // Mints and persists a token. Throws std::invalid_argument for a bad request (ttl, uses,
  // workspace, label), std::runtime_error if it cannot be saved (then nothing was minted).
  MintedToken mint(const MintRequest& req, TimePoint now);

  // All checks, no use taken. Order: format, daemon key, id, secret (constant time),
  // revoked, expired (expired when now >= expires_at), uses left. `info` is set whenever the
  // secret matched, so Expired/UsedUp/Revoked come with the token's details.
  TokenCheck check(std::string_view token_text, TimePoint now) const;

  // check(), and on success takes one use and persists. If saving fails, throws
  // std::runtime_error and no use was taken.
  TokenCheck consume(std::string_view token_text, TimePoint now);

  // Gives back one use taken by consume() (the enrollment that consumed it failed later).
  // False if the id is unknown or no use was taken.
  bool refund(std::string_view id);

  // Marks a token revoked (persisted; effective for every later check). Returns the updated
  // info, or nullopt for an unknown id. Revoking twice keeps the first revoked_at.
  std::optional<TokenInfo> revoke(std::string_view id, TimePoint now);

  std::optional<TokenInfo> find(std::string_view id) const;
  // Oldest first. No secrets, no hashes.
  std::vector<TokenInfo> list() const;

  // Forgets tokens that stopped being usable (expired, used up or revoked) more than
  // `keep_for` ago, so the store does not grow forever. Returns how many were removed.
  // mint(), consume() and revoke() already do this with kTokenKeepAfterEnd in the write they
  // make anyway (a consume or revoke that is refused changes nothing, so prunes nothing).
  std::size_t prune(TimePoint now, std::chrono::seconds keep_for);

  const std::string& daemon_public_key() const { return daemon_key_z85_; }

 private:
  using Entry = StoredToken;
  using Entries = TokenMap;

  TokenCheck check_locked(std::string_view token_text, TimePoint now) const;
  static Entries without_ended(const Entries& entries, TimePoint now, std::chrono::seconds keep_for,
                               std::size_t& removed);
  Entries pruned_copy(TimePoint now) const;  // entries_ without tokens ended kTokenKeepAfterEnd ago
  void save(const Entries& next);  // throws; commits `next` to memory once stored

  std::unique_ptr<TokenBacking> backing_;
  std::string daemon_key_z85_;
  KeyBytes daemon_key_{};
  mutable std::mutex mu_;
  Entries entries_;
};

}  // namespace muster::keys
