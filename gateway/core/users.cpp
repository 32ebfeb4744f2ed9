// users.cpp — see users.hpp.
#include "muster/gateway/users.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <sodium.h>
#include <unistd.h>

#include <fstream>
#include <stdexcept>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

namespace muster::gateway {

std::optional<Role> role_from_name(std::string_view name) {
  if (name == "read") return Role::Read;
  if (name == "call") return Role::Call;
  if (name == "admin") return Role::Admin;
  return std::nullopt;
}

std::string_view role_name(Role role) {
  switch (role) {
    case Role::Read: return "read";
    case Role::Call: return "call";
    case Role::Admin: return "admin";
  }
  return "read";
}

bool valid_user_name(std::string_view name) {
  if (name.empty() || name.size() > 64) return false;
  for (unsigned char c : name)
    if (!(std::isalnum(c) || c == '_' || c == '.' || c == '@' || c == '-')) return false;
  return true;
}

namespace {
void init_sodium() {
  if (sodium_init() < 0) throw std::runtime_error("libsodium could not be initialised");
}
}  // namespace

std::string hash_password(std::string_view password) {
  if (password.empty()) throw std::invalid_argument("the password is empty");
  init_sodium();
  char out[crypto_pwhash_STRBYTES];
  if (crypto_pwhash_str(out, password.data(), password.size(), crypto_pwhash_OPSLIMIT_INTERACTIVE,
                        crypto_pwhash_MEMLIMIT_INTERACTIVE) != 0)
    throw std::runtime_error("crypto_pwhash_str failed (out of memory?)");
  return out;
}

bool verify_password(const std::string& hash, std::string_view password) {
  init_sodium();
  if (hash.empty() || hash.size() >= crypto_pwhash_STRBYTES) return false;
  return crypto_pwhash_str_verify(hash.c_str(), password.data(), password.size()) == 0;
}

UsersFile UsersFile::load(const std::filesystem::path& path) {
  UsersFile f;
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) return f;
  std::ifstream in(path);
  if (!in) throw std::invalid_argument(fmt::format("users file '{}' cannot be read", path.string()));
  auto j = nlohmann::json::parse(in, nullptr, false);
  if (j.is_discarded() || !j.is_object() || !j.contains("users") || !j["users"].is_array())
    throw std::invalid_argument(fmt::format("users file '{}' is not {{\"users\": [...]}} JSON", path.string()));
  for (std::size_t i = 0; i < j["users"].size(); ++i) {
    auto& u = j["users"][i];
    auto where = fmt::format("users file '{}', entry {}", path.string(), i);
    if (!u.is_object()) throw std::invalid_argument(where + ": not an object");
    auto str = [&](const char* k) -> std::string {
      if (!u.contains(k) || !u[k].is_string()) throw std::invalid_argument(fmt::format("{}: '{}' must be a string", where, k));
      return u[k].get<std::string>();
    };
    User user;
    user.name = str("name");
    user.workspace = str("workspace");
    auto role = role_from_name(str("role"));
    if (!role) throw std::invalid_argument(where + ": role must be read, call or admin");
    user.role = *role;
    user.password_hash = str("password_hash");
    if (user.password_hash.rfind("$argon2", 0) != 0)
      throw std::invalid_argument(where + ": password_hash is not a crypto_pwhash_str hash");
    f.add(std::move(user));
  }
  return f;
}

const User* UsersFile::find(std::string_view name) const {
  for (auto& u : users_)
    if (u.name == name) return &u;
  return nullptr;
}

void UsersFile::add(User user) {
  if (!valid_user_name(user.name))
    throw std::invalid_argument(fmt::format("'{}' is not a valid user name ([A-Za-z0-9_.@-], 1 to 64)", user.name));
  if (user.workspace.empty() || user.workspace.size() > 64)
    throw std::invalid_argument("a user needs a workspace (1 to 64 characters)");
  if (find(user.name)) throw std::invalid_argument(fmt::format("user '{}' already exists", user.name));
  users_.push_back(std::move(user));
}

bool UsersFile::remove(std::string_view name) {
  return std::erase_if(users_, [&](const User& u) { return u.name == name; }) > 0;
}

void UsersFile::save(const std::filesystem::path& path) const {
  nlohmann::json j;
  j["users"] = nlohmann::json::array();
  for (auto& u : users_)
    j["users"].push_back({{"name", u.name}, {"workspace", u.workspace}, {"role", role_name(u.role)},
                          {"password_hash", u.password_hash}});
  std::string text = j.dump(2) + "\n";
  auto tmp = path;
  tmp += ".tmp";
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) throw std::runtime_error(fmt::format("cannot write '{}'", tmp.string()));
  bool ok = ::fchmod(fd, 0600) == 0 && ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size()) &&
            ::fsync(fd) == 0;
  ::close(fd);
  if (!ok || ::rename(tmp.c_str(), path.c_str()) != 0) {
    ::unlink(tmp.c_str());
    throw std::runtime_error(fmt::format("cannot write the users file '{}'", path.string()));
  }
}

}  // namespace muster::gateway
