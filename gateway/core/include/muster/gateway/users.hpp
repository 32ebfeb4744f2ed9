// users.hpp — the gateway's users file: who may log in, their workspace and role.
// Format (JSON, mode 0600): {"users": [{"name", "workspace", "role", "password_hash"}]}, the
// hash from libsodium's crypto_pwhash_str (Argon2id). `muster-gateway user add` writes it.
// Owns: the file format, user name and role rules, password hashing and checking.
// Must never: hold or write a password in clear, or log one.
#pragma once

#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace muster::gateway {

enum class Role { Read, Call, Admin };
std::optional<Role> role_from_name(std::string_view name);  // "read", "call", "admin"
std::string_view role_name(Role role);
// Admin includes call; call includes read.
inline bool role_allows(Role have, Role need) { return static_cast<int>(have) >= static_cast<int>(need); }

// [A-Za-z0-9_.@-]{1,64}
bool valid_user_name(std::string_view name);

struct User {
  std::string name, workspace;
  Role role = Role::Read;
  std::string password_hash;
};

// Argon2id via crypto_pwhash_str (interactive limits). Throws on an empty password.
std::string hash_password(std::string_view password);
bool verify_password(const std::string& hash, std::string_view password);

class UsersFile {
 public:
  // A missing file is an empty list. Throws std::invalid_argument naming the file and the entry
  // that is wrong (bad JSON, duplicate or invalid name, unknown role, missing hash).
  static UsersFile load(const std::filesystem::path& path);
  const User* find(std::string_view name) const;
  const std::vector<User>& users() const { return users_; }
  // Throws std::invalid_argument if the name is taken or invalid.
  void add(User user);
  bool remove(std::string_view name);
  // Written to a temporary file (0600) and renamed over `path`.
  void save(const std::filesystem::path& path) const;

 private:
  std::vector<User> users_;
};

}  // namespace muster::gateway
