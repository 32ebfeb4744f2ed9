// identity_token_backings_test.cpp — the contract of keys::IdentityBacking and keys::TokenBacking
// (identity_store.hpp, token_store.hpp), run through the stores against both backings: the JSON
// files of a data dir, and a failover pair's PostgreSQL tables (a database of a private server,
// tests/unit/postgres_for_test.hpp, the lease taken by a journal as a daemon takes it).
// Every change is seen by a store opened afterwards on the same storage (what a standby does
// when it takes over); a write that fails changes nothing, in memory or in the storage (for
// PostgreSQL, the write of a daemon that lost the lease: fencing); no secret is stored.
// Then the PostgreSQL-only rules, and the one-time import of a data dir's files.
#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>

#include "identity_postgres_import.hpp"
#include "identity_store_postgres.hpp"
#include "journal_postgres.hpp"
#include "muster/curve_keys.hpp"
#include "muster/identity_store.hpp"
#include "muster/token.hpp"
#include "muster/token_store.hpp"
#include "postgres_for_test.hpp"
#include "temp_dir.hpp"
#include "token_store_postgres.hpp"

namespace fs = std::filesystem;
using namespace muster;
using namespace muster::keys;
using namespace std::chrono_literals;

namespace {

const TimePoint T0 = TimePoint(std::chrono::seconds(1'750'000'000));

std::string slurp(const fs::path& p) {
  std::ifstream in(p);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// The data dir's JSON files.
struct FileBackings {
  static constexpr const char* kName = "files";
  test::TempDir dir;
  KeyPair daemon = generate_key_pair();
  fs::path identity_file = dir.path / "identities.json", token_file = dir.path / "tokens.json";
  std::optional<std::string> saved_identities, saved_tokens;

  std::optional<std::string> unavailable() const { return std::nullopt; }
  std::unique_ptr<IdentityBacking> identities() const { return std::make_unique<IdentityFile>(identity_file); }
  std::unique_ptr<TokenBacking> tokens() const { return std::make_unique<TokenFile>(token_file, daemon.public_key); }
  // Every write fails from now on: each file's name is taken by a directory that is not empty
  // (the atomic rename cannot replace it; root ignores permission bits).
  void break_writes() {
    for (auto [file, saved] : {std::pair{&identity_file, &saved_identities}, std::pair{&token_file, &saved_tokens}}) {
      if (fs::exists(*file)) *saved = slurp(*file);
      fs::remove(*file);
      fs::create_directories(*file / "in-the-way");
    }
  }
  void repair_writes() {
    for (auto [file, saved] : {std::pair{&identity_file, &saved_identities}, std::pair{&token_file, &saved_tokens}}) {
      fs::remove_all(*file);
      if (*saved) {
        std::ofstream(*file) << **saved;
        fs::permissions(*file, fs::perms::owner_read | fs::perms::owner_write);
      }
    }
  }
  std::string expected_failure() const { return "identities.json"; }
  // Everything stored, as text.
  std::string raw() const {
    return (fs::exists(identity_file) ? slurp(identity_file) : "") + (fs::exists(token_file) ? slurp(token_file) : "");
  }
};

// The pair's PostgreSQL tables, written under the lease a journal took (epoch 1).
struct PostgresBackings {
  static constexpr const char* kName = "postgresql";
  KeyPair daemon = generate_key_pair();
  std::string conninfo;
  std::unique_ptr<broker::journal::PostgresJournal> journal;  // made the schema, holds the lease
  std::shared_ptr<broker::FencedPostgres> store;

  PostgresBackings() {
    auto& server = test::TestPostgres::get();
    if (server.absent()) return;
    conninfo = server.fresh_database();
    broker::journal::PostgresOptions o;
    o.conninfo = conninfo;
    o.holder = "test-active";
    o.term = 3000ms;
    journal = std::make_unique<broker::journal::PostgresJournal>(o);
    REQUIRE(journal->try_lead(std::chrono::steady_clock::now()).leading);
    store = std::make_shared<broker::FencedPostgres>(broker::SharedStoreSettings{conninfo, "default", 3000ms},
                                                     journal->epoch());
  }
  std::optional<std::string> unavailable() const { return test::TestPostgres::get().absent(); }
  std::unique_ptr<IdentityBacking> identities() const { return std::make_unique<broker::PostgresIdentities>(store); }
  std::unique_ptr<TokenBacking> tokens() const { return std::make_unique<broker::PostgresTokens>(store); }
  // Another daemon took the lease over (its epoch is 2): this one's writes are fenced.
  void break_writes() {
    test::TestPostgres::sql(conninfo, "UPDATE leases SET holder = 'the-standby', epoch = epoch + 1");
  }
  void repair_writes() { test::TestPostgres::sql(conninfo, "UPDATE leases SET holder = 'test-active', epoch = 1"); }
  std::string expected_failure() const {
    return "lost the lease of shard default (this daemon led at epoch 1): the-standby holds it at epoch 2; "
           "the change is refused";
  }
  std::string raw() const {
    PGconn* c = PQconnectdb(conninfo.c_str());
    std::string out;
    for (const char* sql : {"SELECT identities::text FROM identities", "SELECT enrollment_tokens::text FROM enrollment_tokens"}) {
      PGresult* r = PQexec(c, sql);
      for (int i = 0; i < PQntuples(r); ++i) out += std::string(PQgetvalue(r, i, 0)) + "\n";
      PQclear(r);
    }
    PQfinish(c);
    return out;
  }
};

#define MUSTER_BACKINGS FileBackings, PostgresBackings
#define MUSTER_SKIP_UNLESS_BACKING(b)                                                           \
  if (auto why__ = (b).unavailable()) {                                                         \
    MESSAGE("skipped, the " << std::string((b).kName) << " backing is absent: " << *why__);     \
    return;                                                                                     \
  }

NewIdentity new_identity(Role role = Role::Worker, std::string name = "w1") {
  NewIdentity n;
  n.public_key = generate_key_pair().public_key;
  n.role = role;
  n.workspace = "alpha";
  n.name = std::move(name);
  n.hostname = "host-a";
  n.token_id = "0011223344556677";
  return n;
}

MintRequest mint_request(std::uint32_t uses = 1, std::chrono::seconds ttl = 3600s) {
  MintRequest m;
  m.role = Role::Worker;
  m.workspace = "alpha";
  m.label = "for ünïcode host";
  m.uses = uses;
  m.ttl = ttl;
  return m;
}

}  // namespace

TEST_CASE_TEMPLATE("identity backings: what one store adds and revokes, a store opened later holds", B, MUSTER_BACKINGS) {
  B b;
  MUSTER_SKIP_UNLESS_BACKING(b);
  IdentityStore active(b.identities());
  CHECK(active.size() == 0);
  auto kept = active.add(new_identity(Role::Worker, "kept"), T0 + 1ms);
  auto gone = active.add(new_identity(Role::Client, "gone"), T0 + 2ms);
  REQUIRE(kept.status == AddStatus::Created);
  REQUIRE(gone.status == AddStatus::Created);
  REQUIRE(active.revoke(gone.identity->id, T0 + 3s));

  IdentityStore standby(b.identities());  // what a daemon taking over loads
  CHECK(standby.list() == active.list());
  CHECK(standby.list().size() == 2);
  CHECK(standby.authorize(kept.identity->public_key, Role::Worker));
  CHECK_FALSE(standby.authorize(gone.identity->public_key, Role::Client));
  CHECK_FALSE(standby.authorize_id(gone.identity->id, Role::Client));
  const auto revoked = standby.find_by_id(gone.identity->id);
  REQUIRE(revoked);
  CHECK(revoked->revoked_at == T0 + 3s);
  CHECK(revoked->name == "gone");
  CHECK(revoked->hostname == "host-a");
  CHECK(revoked->workspace == "alpha");
  CHECK(revoked->enrolled_at == T0 + 2ms);
  // A revoked key stays known, so it can never enroll again, on either.
  NewIdentity again = new_identity(Role::Client);
  again.public_key = gone.identity->public_key;
  CHECK(standby.preview(again).status == AddStatus::KeyRevoked);
  // Revoking twice keeps the first time, and writes nothing new.
  CHECK(standby.revoke(gone.identity->id, T0 + 9s)->revoked_at == T0 + 3s);
}

TEST_CASE_TEMPLATE("identity backings: a write that fails changes nothing, in memory or stored", B, MUSTER_BACKINGS) {
  B b;
  MUSTER_SKIP_UNLESS_BACKING(b);
  IdentityStore store(b.identities());
  auto first = store.add(new_identity(), T0);
  REQUIRE(first.ok());
  b.break_writes();
  std::string error;
  try {
    store.revoke(first.identity->id, T0 + 1s);
  } catch (const std::runtime_error& e) {
    error = e.what();
  }
  INFO(error);
  CHECK(error.find(b.expected_failure()) != std::string::npos);
  // The revocation did not happen: the identity still passes (revoke() did not return).
  CHECK(store.authorize_id(first.identity->id, Role::Worker));
  CHECK_THROWS_AS(store.add(new_identity(Role::Worker, "w2"), T0 + 2s), std::runtime_error);
  CHECK(store.size() == 1);
  const auto generation = store.generation();
  b.repair_writes();
  IdentityStore reopened(b.identities());
  CHECK(reopened.list() == store.list());
  // Once writes work again, the same revocation goes through and holds.
  REQUIRE(store.revoke(first.identity->id, T0 + 3s));
  CHECK(store.generation() == generation + 1);
  CHECK_FALSE(IdentityStore(b.identities()).authorize_id(first.identity->id, Role::Worker));
}

TEST_CASE_TEMPLATE("token backings: a token minted on one store checks on a store opened later; a use is taken once", B,
                   MUSTER_BACKINGS) {
  B b;
  MUSTER_SKIP_UNLESS_BACKING(b);
  TokenStore active(b.tokens(), b.daemon.public_key);
  const MintedToken once = active.mint(mint_request(1), T0);
  const MintedToken twice = active.mint(mint_request(2), T0 + 1s);
  {
    TokenStore standby(b.tokens(), b.daemon.public_key);
    CHECK(standby.list() == active.list());
    const TokenCheck c = standby.check(once.token, T0 + 2s);
    CHECK(c);
    REQUIRE(c.info);
    CHECK(c.info->label == "for ünïcode host");
    CHECK(c.info->expires_at == T0 + 3600s);
    CHECK(standby.check(once.token.substr(0, 25) + std::string(43, 'A') + once.token.substr(68), T0).error ==
          TokenError::Unknown);  // the right id with another secret
  }
  REQUIRE(active.consume(once.token, T0 + 3s));
  REQUIRE(active.consume(twice.token, T0 + 4s));
  TokenStore standby(b.tokens(), b.daemon.public_key);
  CHECK(standby.check(once.token, T0 + 5s).error == TokenError::UsedUp);
  const TokenCheck left = standby.consume(twice.token, T0 + 5s);
  REQUIRE(left);
  CHECK(left.info->uses_left == 0);
  CHECK(left.info->last_used_at == T0 + 5s);
  // Revocations and refunds travel the same way.
  REQUIRE(standby.refund(twice.info.id));
  REQUIRE(standby.revoke(twice.info.id, T0 + 6s));
  TokenStore third(b.tokens(), b.daemon.public_key);
  CHECK(third.find(twice.info.id)->uses_left == 1);
  CHECK(third.check(twice.token, T0 + 7s).error == TokenError::Revoked);
  // Tokens that ended long ago are forgotten by the storage too.
  CHECK(third.prune(T0 + 30 * 24h, 24h) == 2);
  CHECK(TokenStore(b.tokens(), b.daemon.public_key).list().empty());
}

TEST_CASE_TEMPLATE("token backings: no secret is stored, and a write that fails takes no use", B, MUSTER_BACKINGS) {
  B b;
  MUSTER_SKIP_UNLESS_BACKING(b);
  TokenStore store(b.tokens(), b.daemon.public_key);
  const MintedToken t = store.mint(mint_request(1), T0);
  const std::string secret = t.token.substr(std::string("muster1.").size() + 17, 43);
  const std::string stored = b.raw();
  CHECK(stored.find(t.info.id) != std::string::npos);
  CHECK(stored.find(secret) == std::string::npos);
  CHECK(stored.find(t.token) == std::string::npos);
  b.break_writes();
  CHECK_THROWS_AS(store.consume(t.token, T0 + 1s), std::runtime_error);
  CHECK_THROWS_AS(store.mint(mint_request(1), T0 + 1s), std::runtime_error);
  CHECK(store.find(t.info.id)->uses_left == 1);
  CHECK(store.list().size() == 1);
  b.repair_writes();
  CHECK(TokenStore(b.tokens(), b.daemon.public_key).check(t.token, T0 + 2s));
}

TEST_CASE("postgresql backings: a daemon needs the lease to open them, and each shard has its own rows") {
  PostgresBackings b;
  MUSTER_SKIP_UNLESS_BACKING(b);
  CHECK_THROWS_WITH_AS(broker::FencedPostgres(broker::SharedStoreSettings{b.conninfo, "default", 3000ms}, 0),
                       doctest::Contains("need the lease (epoch 0)"), std::runtime_error);
  IdentityStore store(b.identities());
  REQUIRE(store.add(new_identity(), T0).ok());
  // A second pair on its own shard of the same database (its own lease) sees none of them.
  broker::journal::PostgresOptions o;
  o.conninfo = b.conninfo;
  o.shard = "other";
  o.holder = "other-active";
  broker::journal::PostgresJournal other(o);
  REQUIRE(other.try_lead(std::chrono::steady_clock::now()).leading);
  auto other_store = std::make_shared<broker::FencedPostgres>(broker::SharedStoreSettings{b.conninfo, "other", 3000ms},
                                                              other.epoch());
  IdentityStore others(std::make_unique<broker::PostgresIdentities>(other_store));
  CHECK(others.size() == 0);
  REQUIRE(others.add(new_identity(), T0).ok());
  CHECK(IdentityStore(b.identities()).size() == 1);
  // A row PostgreSQL holds that is not an identity is refused by name.
  test::TestPostgres::sql(b.conninfo, "UPDATE identities SET role = 'emperor' WHERE shard = 'default'");
  CHECK_THROWS_WITH_AS(IdentityStore(b.identities()), doctest::Contains("is not a valid identity store"),
                       std::runtime_error);
}

// ---- the one-time import of a data dir's files (identity_postgres_import.hpp) ---------------

TEST_CASE("import: a revocation in either wins, a token keeps its fewest uses, nothing is removed") {
  Identity a{"id-a", generate_key_pair().public_key, Role::Worker, "alpha", "a", "h", T0, "t1", false, {}};
  Identity b{"id-b", generate_key_pair().public_key, Role::Client, "alpha", "b", "h", T0, "t1", false, {}};
  Identity c{"id-c", generate_key_pair().public_key, Role::Client, "alpha", "c", "h", T0, "t1", true, T0 + 5s};
  IdentityMap shared{{a.id, a}, {c.id, c}};
  Identity a_revoked = a;
  a_revoked.revoked = true;
  a_revoked.revoked_at = T0 + 1s;
  Identity c_later = c;
  c_later.revoked_at = T0 + 9s;
  const IdentityMap merged = broker::merge_identities(shared, {a_revoked, b, c_later}, "identities.json");
  CHECK(merged.size() == 3);
  CHECK(merged.at("id-a").revoked);
  CHECK(merged.at("id-a").revoked_at == T0 + 1s);
  CHECK(merged.at("id-b") == b);
  CHECK(merged.at("id-c").revoked_at == T0 + 5s);  // the first revocation
  CHECK(broker::merge_identities(merged, {a, b, c}, "identities.json") == merged);  // unrevokes nothing

  Identity a_elsewhere = a;
  a_elsewhere.id = "id-x";
  CHECK_THROWS_WITH_AS(broker::merge_identities(shared, {a_elsewhere}, "F"),
                       doctest::Contains("is identity id-a there and identity id-x in the file"),
                       broker::ImportConflict);
  Identity a_admin = a;
  a_admin.role = Role::Admin;
  CHECK_THROWS_WITH_AS(broker::merge_identities(shared, {a_admin}, "F"), doctest::Contains("cannot import F"),
                       broker::ImportConflict);

  StoredToken t{{"0011223344556677", Role::Worker, "alpha", "l", T0, T0 + 1h, 3, 2, false, {}, T0 + 1s}, std::string(64, 'a')};
  StoredToken t_used = t;
  t_used.info.uses_left = 1;
  t_used.info.last_used_at = T0 + 2s;
  StoredToken t_fresh = t;
  t_fresh.info.uses_left = 3;
  t_fresh.info.last_used_at.reset();
  const TokenMap tokens = broker::merge_tokens({{t.info.id, t}}, {t_fresh}, "tokens.json");
  CHECK(tokens.at(t.info.id) == t);  // a use taken in the shared store stays taken
  CHECK(broker::merge_tokens({{t.info.id, t}}, {t_used}, "tokens.json").at(t.info.id) == t_used);
  StoredToken t_other = t;
  t_other.secret_hash = std::string(64, 'b');
  CHECK_THROWS_AS(broker::merge_tokens({{t.info.id, t}}, {t_other}, "tokens.json"), broker::ImportConflict);
}

TEST_CASE("import: a data dir's files are imported into the shared store once, then renamed") {
  PostgresBackings b;
  MUSTER_SKIP_UNLESS_BACKING(b);
  test::TempDir data;
  // What a daemon that ran alone left: two identities (one revoked), a token with a use taken.
  IdentityStore alone(IdentityStore::default_path(data.path));
  auto kept = alone.add(new_identity(Role::Worker, "kept"), T0);
  auto gone = alone.add(new_identity(Role::Client, "gone"), T0 + 1s);
  REQUIRE(alone.revoke(gone.identity->id, T0 + 2s));
  TokenStore alone_tokens(TokenStore::default_path(data.path), b.daemon.public_key);
  const MintedToken t = alone_tokens.mint(mint_request(2), T0);
  REQUIRE(alone_tokens.consume(t.token, T0 + 1s));

  auto ids = b.identities();
  auto toks = b.tokens();
  const auto report = broker::import_file_stores(data.path, b.daemon.public_key, *ids, *toks);
  CHECK(report.identities_added == 2);
  CHECK(report.tokens_added == 1);
  CHECK(report.renamed.size() == 2);
  CHECK_FALSE(fs::exists(data.path / "identities.json"));
  CHECK(fs::exists(data.path / "identities.json.imported"));
  CHECK(fs::exists(data.path / "tokens.json.imported"));
  IdentityStore shared(b.identities());
  CHECK(shared.list() == alone.list());
  CHECK_FALSE(shared.authorize_id(gone.identity->id, Role::Client));
  TokenStore shared_tokens(b.tokens(), b.daemon.public_key);
  CHECK(shared_tokens.find(t.info.id)->uses_left == 1);
  CHECK(shared_tokens.check(t.token, T0 + 2s));
  // Nothing to import the next time.
  CHECK(broker::import_file_stores(data.path, b.daemon.public_key, *ids, *toks).renamed.empty());

  // A file that cannot be merged is refused whole, and stays where it is.
  IdentityStore conflicting(IdentityStore::default_path(data.path));
  NewIdentity same_key = new_identity(Role::Admin);
  same_key.public_key = kept.identity->public_key;
  REQUIRE(conflicting.add(same_key, T0 + 5s).ok());
  TokenStore more_tokens(TokenStore::default_path(data.path), b.daemon.public_key);
  more_tokens.mint(mint_request(1), T0);
  CHECK_THROWS_WITH_AS(broker::import_file_stores(data.path, b.daemon.public_key, *ids, *toks),
                       doctest::Contains("move the file out of the data dir"), broker::ImportConflict);
  CHECK(fs::exists(data.path / "identities.json"));
  CHECK(fs::exists(data.path / "tokens.json"));
  CHECK(TokenStore(b.tokens(), b.daemon.public_key).list().size() == 1);  // its token was not imported
  CHECK(IdentityStore(b.identities()).size() == 2);
}
