// keys_tokens.cpp — tests for keys/: the token format, strict parsing (with fuzzing) and the
// TokenStore lifecycle with an injected clock.
#include <doctest/doctest.h>

#include "temp_dir.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <random>
#include <string>

#include "muster/curve_keys.hpp"
#include "muster/secure_file.hpp"
#include "muster/token.hpp"
#include "muster/token_store.hpp"

namespace fs = std::filesystem;
using namespace muster::keys;
using namespace std::chrono_literals;

namespace {

using muster::test::TempDir;

const TimePoint T0 = TimePoint(std::chrono::seconds(1'750'000'000));

bool safe_char(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' ||
         c == '-' || c == '_';
}

}  // namespace

TEST_CASE("keys: a token prints as muster1.<id>.<secret>.<daemon key> and parses back") {
  KeyPair daemon = generate_key_pair();
  Token t = generate_token(daemon.public_bytes());
  std::string text = t.to_string();
  CHECK(text.size() == kTokenTextLength);
  CHECK(text.rfind("muster1.", 0) == 0);
  for (char c : text) CHECK(safe_char(c));  // shell- and env-var-safe
  auto parsed = parse_token(text);
  REQUIRE(parsed);
  CHECK(parsed.token->id == t.id);
  CHECK(parsed.token->secret == t.secret);
  CHECK(parsed.token->daemon_public_key_z85() == daemon.public_key);
  CHECK(parsed.token->to_string() == text);
  CHECK(generate_token(daemon.public_bytes()).to_string() != text);
  // The hash binds the id: same secret under another id hashes differently.
  Token moved = t;
  moved.id = "0000000000000000";
  CHECK(token_secret_hash(moved) != token_secret_hash(t));
  CHECK(token_secret_hash(t).size() == 64);
}

TEST_CASE("keys: malformed tokens get precise errors that never quote the input") {
  KeyPair daemon = generate_key_pair();
  std::string good = generate_token(daemon.public_bytes()).to_string();
  auto err = [](std::string_view s) { return parse_token(s).error; };
  CHECK(err("") == TokenFormatError::Empty);
  CHECK(err(" " + good) == TokenFormatError::Whitespace);
  CHECK(err(good + "\n") == TokenFormatError::Whitespace);
  CHECK(err("'" + good + "'") == TokenFormatError::BadCharacters);
  CHECK(err("moor-token-abc") == TokenFormatError::WrongTag);
  CHECK(err("muster2" + good.substr(7)) == TokenFormatError::WrongTag);
  CHECK(err(good.substr(0, 100)) == TokenFormatError::WrongLength);
  CHECK(err(good + "A") == TokenFormatError::WrongLength);
  std::string dots = good;
  dots[30] = '.';
  CHECK(err(dots) == TokenFormatError::WrongPartCount);
  std::string upper_id = good;
  upper_id[8] = 'G';
  CHECK(err(upper_id) == TokenFormatError::BadId);
  std::string bad_secret = good;
  // 43 characters carry 258 bits for 256: the last character's 2 low bits must be zero, so
  // 'B' there is never canonical.
  bad_secret[8 + 16 + 1 + 42] = 'B';
  CHECK(err(bad_secret) == TokenFormatError::BadSecret);
  std::string bad_key = good;
  bad_key.back() = 'B';
  CHECK(err(bad_key) == TokenFormatError::BadDaemonKey);
  // Same length, but the secret part has 44 characters and the key part 42.
  std::string shifted = good.substr(0, 25) + "A" + good.substr(25, 44) + good.substr(70);
  REQUIRE(shifted.size() == good.size());
  CHECK(err(shifted) == TokenFormatError::BadSecret);

  std::string secret_part = good.substr(25, 43);
  for (const std::string& bad : {" " + good, good.substr(0, 100)}) {
    auto r = parse_token(bad);
    CHECK(r.message.find(secret_part.substr(0, 10)) == std::string::npos);
    CHECK(r.message.rfind("malformed token: ", 0) == 0);
  }
}

TEST_CASE("keys: fuzz: random and mutated token texts never crash and never parse as another token") {
  KeyPair daemon = generate_key_pair();
  Token real = generate_token(daemon.public_bytes());
  const std::string good = real.to_string();
  std::mt19937_64 rng(12345);
  std::uniform_int_distribution<int> byte(0, 255), len(0, 200);
  for (int i = 0; i < 20000; ++i) {
    std::string s(len(rng), '\0');
    for (char& c : s) c = static_cast<char>(byte(rng));
    auto r = parse_token(s);
    CHECK_FALSE(r);
    CHECK(r.error != TokenFormatError::None);
  }
  const std::string alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.";
  std::uniform_int_distribution<std::size_t> pos(0, good.size() - 1), pick(0, alphabet.size() - 1);
  int parsed_ok = 0;
  for (int i = 0; i < 20000; ++i) {
    std::string s = good;
    int edits = 1 + static_cast<int>(rng() % 3);
    for (int k = 0; k < edits; ++k) s[pos(rng)] = alphabet[pick(rng)];
    auto r = parse_token(s);
    if (r) {
      ++parsed_ok;
      // A token that still parses is a different token unless the edit was a no-op.
      if (s != good) CHECK(r.token->to_string() == s);
    }
  }
  CHECK(parsed_ok > 0);  // most single-character edits inside a part still parse
}

TEST_CASE("keys: TokenStore mints, stores only a hash, and consumes with an injected clock") {
  TempDir d;
  KeyPair daemon = generate_key_pair();
  fs::path file = TokenStore::default_path(d.path);
  TokenStore store(file, daemon.public_key);

  MintRequest req;
  req.role = Role::Worker;
  req.ttl = 10min;
  req.uses = 2;
  req.workspace = "lab";
  req.label = "gpu box";
  MintedToken m = store.mint(req, T0);
  CHECK(m.info.uses_left == 2);
  CHECK(m.info.expires_at == T0 + 10min);
  auto parsed = parse_token(m.token);
  REQUIRE(parsed);
  CHECK(parsed.token->daemon_public_key_z85() == daemon.public_key);

  // On disk: mode 0600, the hash, never the secret.
  struct stat st {};
  REQUIRE(::stat(file.c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == 0600);
  std::string disk = read_file(file).value();
  std::string secret_b64 = m.token.substr(25, 43);
  CHECK(disk.find(secret_b64) == std::string::npos);
  CHECK(disk.find(m.token) == std::string::npos);
  CHECK(disk.find(token_secret_hash(*parsed.token)) != std::string::npos);

  // list() never shows secrets or hashes.
  auto listed = store.list();
  REQUIRE(listed.size() == 1);
  auto j = to_json(listed[0], T0).dump();
  CHECK(j.find(secret_b64) == std::string::npos);
  CHECK(j.find(token_secret_hash(*parsed.token)) == std::string::npos);
  CHECK(j.find("\"state\":\"active\"") != std::string::npos);

  TokenCheck c = store.consume(m.token, T0 + 1min);
  REQUIRE(c);
  CHECK(c.info->role == Role::Worker);
  CHECK(c.info->workspace == "lab");
  CHECK(c.info->label == "gpu box");
  CHECK(c.info->uses_left == 1);
  CHECK(store.check(m.token, T0 + 1min));  // check takes no use
  CHECK(store.find(m.info.id)->uses_left == 1);

  // Survives a restart.
  TokenStore reloaded(file, daemon.public_key);
  CHECK(reloaded.find(m.info.id)->uses_left == 1);
  CHECK(reloaded.consume(m.token, T0 + 2min));
  CHECK(reloaded.consume(m.token, T0 + 3min).error == TokenError::UsedUp);
}

TEST_CASE("keys: token expiry follows the injected clock exactly") {
  TempDir d;
  KeyPair daemon = generate_key_pair();
  TokenStore store(TokenStore::default_path(d.path), daemon.public_key);
  MintRequest req;
  req.ttl = 1h;
  req.uses = 5;
  auto m = store.mint(req, T0);
  CHECK(store.check(m.token, T0 + 1h - 1ms));
  TokenCheck late = store.consume(m.token, T0 + 1h);
  CHECK(late.error == TokenError::Expired);
  CHECK(late.message.find("expired") != std::string::npos);
  CHECK(store.find(m.info.id)->uses_left == 5);  // a refused token loses no use
  CHECK(store.list()[0].state(T0 + 2h) == TokenState::Expired);
}

TEST_CASE("keys: a single-use token used twice is refused the second time") {
  TempDir d;
  KeyPair daemon = generate_key_pair();
  TokenStore store(TokenStore::default_path(d.path), daemon.public_key);
  auto m = store.mint(MintRequest{}, T0);
  CHECK(m.info.uses_total == 1);
  CHECK(store.consume(m.token, T0));
  TokenCheck again = store.consume(m.token, T0 + 1s);
  CHECK(again.error == TokenError::UsedUp);
  CHECK(again.message.find("no uses left") != std::string::npos);
  CHECK(store.list()[0].state(T0) == TokenState::UsedUp);
  // refund gives the use back (used by Enrollment when storing the identity fails).
  CHECK(store.refund(m.info.id));
  CHECK_FALSE(store.refund(m.info.id));
  CHECK(store.consume(m.token, T0 + 2s));
}

TEST_CASE("keys: a token minted by another daemon is refused as such") {
  TempDir d;
  KeyPair ours = generate_key_pair(), theirs = generate_key_pair();
  TokenStore mine(d.path / "mine.json", ours.public_key);
  TokenStore other(d.path / "other.json", theirs.public_key);
  auto foreign = other.mint(MintRequest{}, T0);
  TokenCheck c = mine.consume(foreign.token, T0);
  CHECK(c.error == TokenError::WrongDaemonKey);
  CHECK(c.message.find("another daemon") != std::string::npos);
  CHECK_FALSE(c.info.has_value());
  // The same id and secret re-labelled with our key are unknown here.
  Token t = *parse_token(foreign.token).token;
  t.daemon_public_key = ours.public_bytes();
  CHECK(mine.consume(t.to_string(), T0).error == TokenError::Unknown);
}

TEST_CASE("keys: unknown ids and wrong secrets look the same to the caller") {
  TempDir d;
  KeyPair daemon = generate_key_pair();
  TokenStore store(TokenStore::default_path(d.path), daemon.public_key);
  auto m = store.mint(MintRequest{}, T0);
  Token wrong_secret = *parse_token(m.token).token;
  wrong_secret.secret[0] ^= 1;
  Token unknown = generate_token(daemon.public_bytes());
  TokenCheck a = store.consume(wrong_secret.to_string(), T0);
  TokenCheck b = store.consume(unknown.to_string(), T0);
  CHECK(a.error == TokenError::Unknown);
  CHECK(b.error == TokenError::Unknown);
  CHECK(a.message == b.message);
  CHECK_FALSE(a.info.has_value());  // nothing about the real token leaks
  CHECK(a.detail.find("wrong secret") != std::string::npos);
  CHECK(store.find(m.info.id)->uses_left == 1);
  // After revocation or expiry, a wrong secret still only says "unknown".
  store.revoke(m.info.id, T0);
  CHECK(store.consume(wrong_secret.to_string(), T0).error == TokenError::Unknown);
}

TEST_CASE("keys: a revoked token is refused, listed as revoked, and stays revoked after restart") {
  TempDir d;
  KeyPair daemon = generate_key_pair();
  fs::path file = TokenStore::default_path(d.path);
  std::string token, id;
  {
    TokenStore store(file, daemon.public_key);
    MintRequest req;
    req.uses = 10;
    auto m = store.mint(req, T0);
    token = m.token;
    id = m.info.id;
    auto r = store.revoke(id, T0 + 1s);
    REQUIRE(r.has_value());
    CHECK(r->revoked);
    CHECK(store.revoke(id, T0 + 5s)->revoked_at == T0 + 1s);
    CHECK_FALSE(store.revoke("0123456789abcdef", T0).has_value());
  }
  TokenStore store(file, daemon.public_key);
  TokenCheck c = store.consume(token, T0 + 2s);
  CHECK(c.error == TokenError::Revoked);
  CHECK(store.list()[0].state(T0) == TokenState::Revoked);
  CHECK(to_json(store.list()[0], T0)["state"] == "revoked");
}

TEST_CASE("keys: mint validates its request; prune forgets dead tokens") {
  TempDir d;
  KeyPair daemon = generate_key_pair();
  TokenStore store(TokenStore::default_path(d.path), daemon.public_key);
  MintRequest bad;
  bad.uses = 0;
  CHECK_THROWS_AS(store.mint(bad, T0), std::invalid_argument);
  bad = MintRequest{};
  bad.ttl = 0s;
  CHECK_THROWS_AS(store.mint(bad, T0), std::invalid_argument);
  bad = MintRequest{};
  bad.workspace = "../etc";
  CHECK_THROWS_AS(store.mint(bad, T0), std::invalid_argument);
  bad = MintRequest{};
  bad.label = "evil\nlog line";
  CHECK_THROWS_AS(store.mint(bad, T0), std::invalid_argument);
  CHECK(store.list().empty());
  CHECK_FALSE(fs::exists(TokenStore::default_path(d.path)));

  MintRequest shortlived;
  shortlived.ttl = 1min;
  auto a = store.mint(shortlived, T0);
  auto b = store.mint(MintRequest{}, T0);
  CHECK(store.prune(T0 + 1h, 24h) == 0);
  CHECK(store.prune(T0 + 1min + 24h, 24h) == 1);
  CHECK_FALSE(store.find(a.info.id));
  CHECK(store.find(b.info.id));
}

TEST_CASE("keys: tokens that ended a week ago are pruned by the next mint, use or revoke") {
  // SECURITY.md §4: an expired, used-up or revoked token is forgotten kTokenKeepAfterEnd after
  // it ended, the next time the store changes. Before, prune() had no caller.
  TempDir d;
  KeyPair daemon = generate_key_pair();
  fs::path file = TokenStore::default_path(d.path);
  TokenStore store(file, daemon.public_key);
  auto mint = [&](std::chrono::seconds ttl, std::uint32_t uses, TimePoint at) {
    MintRequest r;
    r.ttl = ttl;
    r.uses = uses;
    return store.mint(r, at);
  };
  auto expired = mint(1min, 1, T0);
  auto used_up = mint(24h * 30, 1, T0);
  REQUIRE(store.consume(used_up.token, T0));
  auto revoked = mint(24h * 30, 1, T0);
  REQUIRE(store.revoke(revoked.info.id, T0));
  auto active = mint(24h * 30, 5, T0);
  REQUIRE(store.consume(active.token, T0));  // partly used, still active
  CHECK(kTokenKeepAfterEnd == std::chrono::hours(24 * 7));

  // Less than a week after they ended: kept, and listed with their state.
  mint(1h, 1, T0 + 24h * 6);
  CHECK(store.list().size() == 5);

  // A week later, the next mint forgets the three that ended, in memory and on disk.
  auto fresh = mint(1h, 1, T0 + 24h * 7 + 1min);
  CHECK_FALSE(store.find(expired.info.id));
  CHECK_FALSE(store.find(used_up.info.id));
  CHECK_FALSE(store.find(revoked.info.id));
  CHECK(store.find(active.info.id));
  CHECK(store.find(fresh.info.id));
  {
    TokenStore reloaded(file, daemon.public_key);
    CHECK(reloaded.list().size() == 3);  // active, the 6-day one (expired 6 days ago), fresh
    CHECK_FALSE(reloaded.find(used_up.info.id));
  }
  CHECK(store.check(used_up.token, T0 + 24h * 8).error == TokenError::Unknown);

  // A use (enrollment) and a revoke prune as well.
  auto six_day = store.list()[1];
  CHECK(six_day.state(T0 + 24h * 14) == TokenState::Expired);
  REQUIRE(store.consume(active.token, T0 + 24h * 14));
  CHECK_FALSE(store.find(six_day.id));
  CHECK(store.find(fresh.info.id));  // expired just under a week ago: kept
  REQUIRE(store.revoke(active.info.id, T0 + 24h * 15));
  CHECK_FALSE(store.find(fresh.info.id));
  CHECK(store.list().size() == 1);
}

TEST_CASE("keys: a damaged token store stops the daemon with a clear error") {
  TempDir d;
  KeyPair daemon = generate_key_pair();
  fs::path file = TokenStore::default_path(d.path);
  write_file_atomic(file, "{not json", 0600);
  try {
    TokenStore store(file, daemon.public_key);
    FAIL("loaded a damaged store");
  } catch (const std::runtime_error& e) {
    CHECK(std::string(e.what()).find(file.string()) != std::string::npos);
  }
  write_file_atomic(file, "{}", 0644);
  CHECK_THROWS_AS(TokenStore(file, daemon.public_key), PermissionError);
}
