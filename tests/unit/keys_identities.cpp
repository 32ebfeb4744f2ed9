// keys_identities.cpp — tests for keys/: the identity store (lookups, duplicates, live
// revocation, persistence) and the ZAP verdicts built on it.
#include <doctest/doctest.h>

#include "temp_dir.hpp"

#include <unistd.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <regex>
#include <string>
#include <thread>
#include <vector>

#include "muster/curve_keys.hpp"
#include "muster/identity_store.hpp"
#include "muster/zap_policy.hpp"

namespace fs = std::filesystem;
using namespace muster::keys;
using namespace std::chrono_literals;

namespace {

using muster::test::TempDir;

const TimePoint T0 = TimePoint(std::chrono::seconds(1'750'000'000));

NewIdentity new_identity(const std::string& key, Role role = Role::Worker, std::string ws = "default") {
  NewIdentity n;
  n.public_key = key;
  n.role = role;
  n.workspace = std::move(ws);
  n.name = "w1";
  n.hostname = "host-a";
  n.token_id = "0011223344556677";
  return n;
}

ZapRequest zap(std::string_view domain, const KeyBytes& key, std::string_view mech = "CURVE") {
  ZapRequest r;
  r.domain = domain;
  r.address = "10.0.0.2";
  r.mechanism = mech;
  r.client_key = std::span<const std::uint8_t>(key.data(), key.size());
  return r;
}

}  // namespace

TEST_CASE("keys: identity ids are random v4 UUIDs") {
  std::regex uuid("^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$");
  std::string a = new_uuid_v4(), b = new_uuid_v4();
  CHECK(std::regex_match(a, uuid));
  CHECK(a != b);
}

TEST_CASE("keys: enrolled identities are found by key and id, with role rules") {
  TempDir d;
  IdentityStore store(IdentityStore::default_path(d.path));
  KeyPair w = generate_key_pair(), c = generate_key_pair(), a = generate_key_pair(), x = generate_key_pair();
  auto wr = store.add(new_identity(w.public_key, Role::Worker), T0);
  REQUIRE(wr.status == AddStatus::Created);
  store.add(new_identity(c.public_key, Role::Client), T0 + 1s);
  store.add(new_identity(a.public_key, Role::Admin), T0 + 2s);
  CHECK(store.size() == 3);

  const Identity& wi = *wr.identity;
  CHECK(wi.enrolled_at == T0);
  CHECK(wi.name == "w1");
  CHECK(store.find_by_key(w.public_key)->id == wi.id);
  CHECK(store.find_by_key(w.public_bytes())->id == wi.id);
  CHECK(store.find_by_id(wi.id)->public_key == w.public_key);
  CHECK_FALSE(store.find_by_key(x.public_key));

  CHECK(store.is_allowed(w.public_key, Role::Worker));
  CHECK_FALSE(store.is_allowed(w.public_key, Role::Client));
  CHECK(store.is_allowed(c.public_key, Role::Client));
  CHECK_FALSE(store.is_allowed(c.public_key, Role::Worker));
  CHECK_FALSE(store.is_allowed(c.public_key, Role::Admin));
  CHECK(store.is_allowed(a.public_key, Role::Admin));
  CHECK(store.is_allowed(a.public_key, Role::Client));  // admin ⊇ client
  CHECK_FALSE(store.is_allowed(a.public_key, Role::Worker));
  CHECK_FALSE(store.is_allowed(x.public_key, Role::Worker));
  CHECK(store.authorize_id(wi.id, Role::Worker));

  auto listed = store.list();
  REQUIRE(listed.size() == 3);
  CHECK(listed[0].id == wi.id);  // ordered by enrolled_at
  auto j = to_json(listed[0]);
  CHECK(j["public_key"] == w.public_key);
  CHECK(j["revoked_at"].is_null());
}

TEST_CASE("keys: identity revocation takes effect at once and survives a restart") {
  TempDir d;
  fs::path file = IdentityStore::default_path(d.path);
  KeyPair w = generate_key_pair();
  std::string id;
  {
    IdentityStore store(file);
    id = store.add(new_identity(w.public_key), T0).identity->id;
    auto gen = store.generation();
    CHECK(store.is_allowed(w.public_key, Role::Worker));
    auto revoked = store.revoke(id, T0 + 1min);
    REQUIRE(revoked.has_value());
    CHECK(revoked->public_key == w.public_key);  // the daemon uses it to drop live sessions
    // Immediately: no lookup lets it through.
    CHECK_FALSE(store.is_allowed(w.public_key, Role::Worker));
    CHECK_FALSE(store.authorize(w.public_bytes(), Role::Worker));
    CHECK_FALSE(store.authorize_id(id, Role::Worker));
    CHECK(store.find_by_id(id)->revoked);
    CHECK(store.generation() > gen);
    CHECK(store.revoke(id, T0 + 2min)->revoked_at == T0 + 1min);
    CHECK_FALSE(store.revoke("no-such-id", T0));
  }
  IdentityStore reloaded(file);
  CHECK_FALSE(reloaded.is_allowed(w.public_key, Role::Worker));
  CHECK(reloaded.find_by_id(id)->revoked_at == T0 + 1min);
  // A revoked key can never enroll again.
  auto again = reloaded.add(new_identity(w.public_key), T0 + 1h);
  CHECK(again.status == AddStatus::KeyRevoked);
  CHECK(again.message.find("new key") != std::string::npos);
}

TEST_CASE("keys: a key enrolled twice returns the same identity only for the same role and workspace") {
  TempDir d;
  IdentityStore store(IdentityStore::default_path(d.path));
  KeyPair w = generate_key_pair();
  auto first = store.add(new_identity(w.public_key, Role::Worker, "lab"), T0);
  REQUIRE(first.status == AddStatus::Created);
  auto same = store.add(new_identity(w.public_key, Role::Worker, "lab"), T0 + 1s);
  CHECK(same.status == AddStatus::Existing);
  CHECK(same.identity->id == first.identity->id);
  CHECK(same.identity->enrolled_at == T0);
  auto other_ws = store.add(new_identity(w.public_key, Role::Worker, "prod"), T0 + 2s);
  CHECK(other_ws.status == AddStatus::Conflict);
  CHECK(other_ws.message.find("workspace lab") != std::string::npos);
  CHECK(store.add(new_identity(w.public_key, Role::Client, "lab"), T0).status == AddStatus::Conflict);
  CHECK(store.size() == 1);
  CHECK(store.add(new_identity("not-a-key"), T0).status == AddStatus::InvalidKey);
  CHECK(store.preview(new_identity(generate_key_pair().public_key)).status == AddStatus::Created);
  CHECK(store.size() == 1);  // preview stores nothing
}

TEST_CASE("keys: a failed save changes nothing in memory") {
  TempDir d;
  fs::path file = IdentityStore::default_path(d.path);
  IdentityStore store(file);
  KeyPair w = generate_key_pair();
  std::string id = store.add(new_identity(w.public_key), T0).identity->id;
  // Make the next save fail: the store's file name is now a non-empty directory.
  fs::remove(file);
  fs::create_directories(file / "blocker");
  CHECK_THROWS_AS(store.add(new_identity(generate_key_pair().public_key), T0), std::runtime_error);
  CHECK(store.size() == 1);
  CHECK_THROWS_AS(store.revoke(id, T0), std::runtime_error);
  CHECK(store.is_allowed(w.public_key, Role::Worker));
}

TEST_CASE("keys: ZAP verdicts: enrolled keys of the right role only, CURVE only, fail closed") {
  TempDir d;
  IdentityStore store(IdentityStore::default_path(d.path));
  KeyPair w = generate_key_pair(), c = generate_key_pair(), a = generate_key_pair(), x = generate_key_pair();
  std::string wid = store.add(new_identity(w.public_key, Role::Worker), T0).identity->id;
  store.add(new_identity(c.public_key, Role::Client), T0);
  store.add(new_identity(a.public_key, Role::Admin), T0);
  auto wb = w.public_bytes(), cb = c.public_bytes(), ab = a.public_bytes(), xb = x.public_bytes();

  ZapVerdict v = zap_decide(store, zap(kZapDomainWorker, wb));
  CHECK(v.allow);
  CHECK(v.status_code == "200");
  CHECK(v.user_id == wid);
  CHECK(zap_decide(store, zap(kZapDomainClient, cb)).allow);
  CHECK(zap_decide(store, zap(kZapDomainClient, ab)).allow);
  CHECK_FALSE(zap_decide(store, zap(kZapDomainClient, wb)).allow);
  CHECK_FALSE(zap_decide(store, zap(kZapDomainWorker, cb)).allow);
  CHECK_FALSE(zap_decide(store, zap(kZapDomainWorker, ab)).allow);
  ZapVerdict unknown = zap_decide(store, zap(kZapDomainWorker, xb));
  CHECK_FALSE(unknown.allow);
  CHECK(unknown.status_code == "400");
  CHECK(unknown.status_text == "key not enrolled");
  CHECK_FALSE(zap_decide(store, zap("something-else", wb)).allow);
  CHECK_FALSE(zap_decide(store, zap("", wb)).allow);
  CHECK_FALSE(zap_decide(store, zap(kZapDomainWorker, wb, "NULL")).allow);
  CHECK_FALSE(zap_decide(store, zap(kZapDomainWorker, wb, "PLAIN")).allow);
  ZapRequest short_key = zap(kZapDomainWorker, wb);
  short_key.client_key = short_key.client_key.first(31);
  CHECK_FALSE(zap_decide(store, short_key).allow);

  // The enrollment socket lets any key in and hands its Z85 key to the enrollment check.
  ZapVerdict e = zap_decide(store, zap(kZapDomainEnroll, xb));
  CHECK(e.allow);
  CHECK(e.user_id == x.public_key);
  CHECK_FALSE(zap_decide(store, zap(kZapDomainEnroll, xb, "NULL")).allow);

  // Revocation: the very next handshake is refused.
  store.revoke(wid, T0);
  ZapVerdict r = zap_decide(store, zap(kZapDomainWorker, wb));
  CHECK_FALSE(r.allow);
  CHECK(r.status_text == "identity revoked");
}

TEST_CASE("keys: lookups from other threads see a revocation as soon as revoke() returns") {
  TempDir d;
  IdentityStore store(IdentityStore::default_path(d.path));
  std::vector<KeyPair> keys;
  std::vector<std::string> ids;
  for (int i = 0; i < 20; ++i) {
    keys.push_back(generate_key_pair());
    ids.push_back(store.add(new_identity(keys.back().public_key), T0).identity->id);
  }
  std::atomic<int> revoked_upto{-1};
  std::atomic<bool> done{false}, violation{false};
  auto reader = [&] {
    while (!done.load()) {
      int upto = revoked_upto.load();  // everything <= upto was revoked before this load
      for (int i = 0; i <= upto; ++i)
        if (store.is_allowed(keys[i].public_key, Role::Worker)) violation = true;
      for (int i = 0; i < 20; ++i) (void)zap_decide(store, zap(kZapDomainWorker, keys[i].public_bytes()));
    }
  };
  std::thread a(reader), b(reader);
  for (int i = 0; i < 20; ++i) {
    store.revoke(ids[i], T0 + std::chrono::seconds(i));
    revoked_upto.store(i);
  }
  done = true;
  a.join();
  b.join();
  CHECK_FALSE(violation.load());
  for (auto& k : keys) CHECK_FALSE(store.is_allowed(k.public_key, Role::Worker));
}
