// gateway_users.cpp — the gateway's users file: hashing (never clear text), load/save round
// trip with mode 0600, and the errors for broken files and bad names.
#include <doctest/doctest.h>

#include <sys/stat.h>

#include <fstream>
#include <string>

#include "muster/gateway/data_dir.hpp"
#include "muster/gateway/users.hpp"
#include "temp_dir.hpp"

using namespace muster::gateway;

namespace {
void write(const std::filesystem::path& p, const std::string& text) { std::ofstream(p) << text; }
std::string read(const std::filesystem::path& p) {
  std::ifstream in(p);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}
}  // namespace

TEST_CASE("gateway users: passwords are hashed with Argon2id and checked") {
  auto h = hash_password("correct horse");
  CHECK(h.rfind("$argon2id$", 0) == 0);
  CHECK(h.find("correct horse") == std::string::npos);
  CHECK(verify_password(h, "correct horse"));
  CHECK_FALSE(verify_password(h, "correct horsE"));
  CHECK_FALSE(verify_password("", "x"));
  CHECK_THROWS_AS(hash_password(""), std::invalid_argument);
}

TEST_CASE("gateway users: the file round-trips, mode 0600, no clear password") {
  muster::test::TempDir dir;
  auto path = dir.path / "users.json";
  auto empty = UsersFile::load(path);  // missing: empty
  CHECK(empty.users().empty());
  UsersFile f;
  f.add(User{"alice", "alpha", Role::Call, hash_password("pw-alice")});
  f.add(User{"bob", "beta", Role::Read, hash_password("pw-bob")});
  CHECK_THROWS_WITH_AS(f.add(User{"alice", "alpha", Role::Read, "$argon2id$x"}), "user 'alice' already exists",
                       std::invalid_argument);
  CHECK_THROWS_AS(f.add(User{"bad name", "alpha", Role::Read, "$argon2id$x"}), std::invalid_argument);
  CHECK_THROWS_AS(f.add(User{"carol", "", Role::Read, "$argon2id$x"}), std::invalid_argument);
  f.save(path);
  struct stat st {};
  REQUIRE(::stat(path.c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == 0600);
  CHECK(read(path).find("pw-alice") == std::string::npos);
  auto g = UsersFile::load(path);
  REQUIRE(g.find("alice"));
  CHECK(g.find("alice")->workspace == "alpha");
  CHECK(g.find("alice")->role == Role::Call);
  CHECK(verify_password(g.find("alice")->password_hash, "pw-alice"));
  CHECK(g.find("bob")->role == Role::Read);
  CHECK(g.remove("bob"));
  CHECK_FALSE(g.remove("bob"));
  CHECK(g.find("bob") == nullptr);
}

TEST_CASE("gateway users: broken files are refused with the entry named") {
  muster::test::TempDir dir;
  auto path = dir.path / "users.json";
  write(path, "{not json");
  CHECK_THROWS_AS(UsersFile::load(path), std::invalid_argument);
  write(path, R"({"users":[{"name":"a","workspace":"w","role":"root","password_hash":"$argon2id$x"}]})");
  CHECK_THROWS_WITH_AS(UsersFile::load(path), doctest::Contains("entry 0: role must be read, call or admin"),
                       std::invalid_argument);
  write(path, R"({"users":[{"name":"a","workspace":"w","role":"read","password":"clear"}]})");
  CHECK_THROWS_WITH_AS(UsersFile::load(path), doctest::Contains("'password_hash' must be a string"), std::invalid_argument);
  write(path, R"({"users":[{"name":"a","workspace":"w","role":"read","password_hash":"clear"}]})");
  CHECK_THROWS_AS(UsersFile::load(path), std::invalid_argument);
}

TEST_CASE("gateway users: roles") {
  CHECK(role_from_name("call") == Role::Call);
  CHECK_FALSE(role_from_name("root").has_value());
  CHECK(role_allows(Role::Admin, Role::Call));
  CHECK(role_allows(Role::Call, Role::Read));
  CHECK_FALSE(role_allows(Role::Read, Role::Call));
}

TEST_CASE("gateway data dir: the JWT key and instance id are created once, 0600") {
  muster::test::TempDir dir;
  auto data = dir.path / "gw";
  ensure_data_dir(data);
  auto key = load_or_create_key(data / "jwt.key");
  CHECK(key.size() == 32);
  CHECK(load_or_create_key(data / "jwt.key") == key);
  struct stat st {};
  REQUIRE(::stat((data / "jwt.key").c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == 0600);
  auto id = load_or_create_instance_id(data / "instance-id");
  CHECK(id.rfind("gw-", 0) == 0);
  CHECK(id.size() == 19);
  CHECK(load_or_create_instance_id(data / "instance-id") == id);
  ::chmod((data / "jwt.key").c_str(), 0644);
  CHECK_THROWS_WITH_AS(load_or_create_key(data / "jwt.key"), doctest::Contains("readable by others"), std::runtime_error);
}
