// keys_enrollment.cpp — tests for keys/: the enrollment decision (every refusal stores nothing
// and takes no token use) and the per-peer rate limiter.
#include <doctest/doctest.h>

#include "temp_dir.hpp"

#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <sstream>
#include <string>

#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/spdlog.h>

#include "muster/curve_keys.hpp"
#include "muster/enrollment.hpp"

namespace fs = std::filesystem;
using namespace muster::keys;
using namespace std::chrono_literals;

namespace {

using muster::test::TempDir;

const TimePoint T0 = TimePoint(std::chrono::seconds(1'750'000'000));

struct Daemon {
  TempDir dir;
  KeyPair keys = generate_key_pair();
  TokenStore tokens{TokenStore::default_path(dir.path), keys.public_key};
  IdentityStore identities{IdentityStore::default_path(dir.path)};
  RateLimiter limiter{RateLimitPolicy{}};
  Enrollment enrollment{tokens, identities, &limiter};

  std::string mint(Role role = Role::Worker, std::uint32_t uses = 1, std::string ws = "default",
                   std::chrono::seconds ttl = 1h) {
    MintRequest r;
    r.role = role;
    r.uses = uses;
    r.workspace = std::move(ws);
    r.ttl = ttl;
    r.label = "label";
    return tokens.mint(r, T0).token;
  }
  std::uint32_t uses_left(const std::string& token) {
    return tokens.find(parse_token(token).token->id)->uses_left;
  }
};

EnrollRequestFields request(const std::string& token, const KeyPair& kp, std::string role = "worker") {
  EnrollRequestFields r;
  r.token = token;
  r.public_key = kp.public_key;
  r.role = std::move(role);
  r.name = "echo-1";
  r.hostname = "host-b.lan";
  return r;
}

}  // namespace

TEST_CASE("keys: enrollment with a good token stores the identity and takes one use") {
  Daemon d;
  std::string tok = d.mint(Role::Worker, 2, "lab");
  KeyPair w = generate_key_pair();
  EnrollOutcome o = d.enrollment.enroll(request(tok, w), w.public_key, "10.0.0.2", T0);
  REQUIRE(o.ok);
  CHECK(o.created);
  CHECK(o.code == EnrollErrorCode::None);
  CHECK(o.identity->role == Role::Worker);
  CHECK(o.identity->workspace == "lab");
  CHECK(o.identity->name == "echo-1");
  CHECK(o.identity->hostname == "host-b.lan");
  CHECK(o.identity->public_key == w.public_key);
  CHECK(o.identity->token_id == parse_token(tok).token->id);
  CHECK(d.identities.is_allowed(w.public_key, Role::Worker));
  CHECK(d.uses_left(tok) == 1);
  CHECK(o.log.find(tok) == std::string::npos);

  // Empty role and name: the token's role and label.
  KeyPair w2 = generate_key_pair();
  auto r2 = request(tok, w2, "");
  r2.name = "";
  EnrollOutcome o2 = d.enrollment.enroll(r2, w2.public_key, "10.0.0.3", T0);
  REQUIRE(o2.ok);
  CHECK(o2.identity->role == Role::Worker);
  CHECK(o2.identity->name == "label");
}

TEST_CASE("keys: every refused enrollment stores nothing and takes no token use") {
  Daemon d;
  std::string tok = d.mint(Role::Worker, 3);
  KeyPair w = generate_key_pair(), other = generate_key_pair();
  auto refused = [&](const EnrollRequestFields& r, std::string_view conn, EnrollFailure f, EnrollErrorCode code) {
    EnrollOutcome o = d.enrollment.enroll(r, conn, "10.0.0.9", T0 + 1min);
    d.limiter.record_success("10.0.0.9");  // keep the limiter out of this test
    CHECK_FALSE(o.ok);
    CHECK(o.failure == f);
    CHECK(o.code == code);
    CHECK_FALSE(o.message.empty());
    CHECK(o.message.find(tok.substr(25, 43)) == std::string::npos);  // never the secret
    CHECK(d.identities.size() == 0);
    CHECK(d.uses_left(tok) == 3);
    return o;
  };

  // The request's key is not the connection's key.
  auto o = refused(request(tok, w), other.public_key, EnrollFailure::KeyMismatch, EnrollErrorCode::PermissionDenied);
  CHECK(o.message.find("CURVE key of this connection") != std::string::npos);
  // Fields.
  auto r = request(tok, w);
  r.public_key = "short";
  refused(r, w.public_key, EnrollFailure::InvalidField, EnrollErrorCode::InvalidRequest);
  refused(request(tok, w, "root"), w.public_key, EnrollFailure::InvalidField, EnrollErrorCode::InvalidRequest);
  r = request(tok, w);
  r.name = "x\x1b[31mred";
  refused(r, w.public_key, EnrollFailure::InvalidField, EnrollErrorCode::InvalidRequest);
  r = request(tok, w);
  r.hostname = "a b";
  refused(r, w.public_key, EnrollFailure::InvalidField, EnrollErrorCode::InvalidRequest);
  // Tokens.
  refused(request("not a token", w), w.public_key, EnrollFailure::MalformedToken, EnrollErrorCode::InvalidRequest);
  refused(request(tok.substr(0, 111), w), w.public_key, EnrollFailure::MalformedToken, EnrollErrorCode::InvalidRequest);
  KeyPair other_daemon = generate_key_pair();
  TokenStore foreign(d.dir.path / "foreign.json", other_daemon.public_key);
  o = refused(request(foreign.mint(MintRequest{}, T0).token, w), w.public_key, EnrollFailure::WrongDaemonKey,
              EnrollErrorCode::PermissionDenied);
  CHECK(o.message.find("another daemon") != std::string::npos);
  refused(request(generate_token(d.keys.public_bytes()).to_string(), w), w.public_key, EnrollFailure::UnknownToken,
          EnrollErrorCode::PermissionDenied);
  // Role the token was not minted for.
  o = refused(request(tok, w, "admin"), w.public_key, EnrollFailure::RoleMismatch, EnrollErrorCode::PermissionDenied);
  CHECK(o.message == "this token is for role worker, not admin");
  // Connection key that is not Z85 (a daemon bug) is internal, not the peer's fault.
  refused(request(tok, w), "garbage", EnrollFailure::Internal, EnrollErrorCode::Internal);
}

TEST_CASE("keys: expired and revoked tokens are refused by enrollment") {
  Daemon d;
  std::string tok = d.mint(Role::Client, 5, "default", 10min);
  KeyPair c = generate_key_pair();
  EnrollOutcome late = d.enrollment.enroll(request(tok, c, "client"), c.public_key, "p", T0 + 10min);
  CHECK(late.failure == EnrollFailure::TokenExpired);
  CHECK(late.message.find("expired") != std::string::npos);
  d.tokens.revoke(parse_token(tok).token->id, T0 + 1min);
  EnrollOutcome rev = d.enrollment.enroll(request(tok, c, "client"), c.public_key, "p", T0 + 2min);
  CHECK(rev.failure == EnrollFailure::TokenRevoked);
  CHECK(d.identities.size() == 0);
}

TEST_CASE("keys: a single-use token cannot enroll a second key; a lost answer can be retried") {
  Daemon d;
  std::string tok = d.mint();
  KeyPair first = generate_key_pair(), second = generate_key_pair();
  EnrollOutcome a = d.enrollment.enroll(request(tok, first), first.public_key, "10.0.0.2", T0);
  REQUIRE(a.ok);
  CHECK(d.uses_left(tok) == 0);

  EnrollOutcome b = d.enrollment.enroll(request(tok, second), second.public_key, "10.0.0.3", T0 + 1s);
  CHECK_FALSE(b.ok);
  CHECK(b.failure == EnrollFailure::TokenUsedUp);
  CHECK(b.message.find("no uses left") != std::string::npos);
  CHECK_FALSE(d.identities.find_by_key(second.public_key));

  // The first peer never got its answer and retries with the same key and token.
  EnrollOutcome retry = d.enrollment.enroll(request(tok, first), first.public_key, "10.0.0.2", T0 + 2s);
  REQUIRE(retry.ok);
  CHECK_FALSE(retry.created);
  CHECK(retry.identity->id == a.identity->id);
  CHECK(d.identities.size() == 1);
}

TEST_CASE("keys: the lost-answer retry ends when the token expires") {
  Daemon d;
  std::string tok = d.mint(Role::Worker, 1, "default", 10min);
  KeyPair w = generate_key_pair();
  REQUIRE(d.enrollment.enroll(request(tok, w), w.public_key, "p", T0).ok);
  CHECK(d.enrollment.enroll(request(tok, w), w.public_key, "p", T0 + 9min).ok);
  EnrollOutcome late = d.enrollment.enroll(request(tok, w), w.public_key, "p", T0 + 10min);
  CHECK(late.failure == EnrollFailure::TokenExpired);
  // A used-up token that also expired is listed as expired.
  CHECK(d.tokens.list()[0].state(T0 + 10min) == TokenState::Expired);
  CHECK(d.tokens.list()[0].state(T0 + 9min) == TokenState::UsedUp);
}

TEST_CASE("keys: duplicate enrollment of one key") {
  Daemon d;
  KeyPair w = generate_key_pair();
  std::string lab = d.mint(Role::Worker, 1, "lab");
  EnrollOutcome a = d.enrollment.enroll(request(lab, w), w.public_key, "p", T0);
  REQUIRE(a.ok);

  // Same role and workspace with another valid token: the same identity, no use taken.
  std::string lab2 = d.mint(Role::Worker, 1, "lab");
  EnrollOutcome same = d.enrollment.enroll(request(lab2, w), w.public_key, "p", T0 + 1s);
  REQUIRE(same.ok);
  CHECK_FALSE(same.created);
  CHECK(same.identity->id == a.identity->id);
  CHECK(d.uses_left(lab2) == 1);

  // Another workspace or role: refused, nothing stored, no use taken.
  std::string prod = d.mint(Role::Worker, 1, "prod");
  EnrollOutcome ws = d.enrollment.enroll(request(prod, w), w.public_key, "p", T0 + 2s);
  CHECK(ws.failure == EnrollFailure::KeyConflict);
  CHECK(d.uses_left(prod) == 1);
  std::string client = d.mint(Role::Client, 1, "lab");
  CHECK(d.enrollment.enroll(request(client, w, "client"), w.public_key, "p", T0 + 3s).failure ==
        EnrollFailure::KeyConflict);
  CHECK(d.identities.size() == 1);

  // A revoked key cannot come back, even with a fresh token.
  d.identities.revoke(a.identity->id, T0 + 4s);
  std::string fresh = d.mint(Role::Worker, 1, "lab");
  EnrollOutcome back = d.enrollment.enroll(request(fresh, w), w.public_key, "p", T0 + 5s);
  CHECK(back.failure == EnrollFailure::KeyRevoked);
  CHECK(d.uses_left(fresh) == 1);
}

TEST_CASE("keys: when storing the identity fails, the token use is given back") {
  Daemon d;
  std::string tok = d.mint();
  fs::path file = IdentityStore::default_path(d.dir.path);
  fs::create_directories(file / "blocker");  // the next save of identities.json fails
  KeyPair w = generate_key_pair();
  EnrollOutcome o = d.enrollment.enroll(request(tok, w), w.public_key, "p", T0);
  CHECK_FALSE(o.ok);
  CHECK(o.failure == EnrollFailure::Internal);
  CHECK(o.code == EnrollErrorCode::Internal);
  CHECK(d.uses_left(tok) == 1);
  CHECK(d.identities.size() == 0);
  CHECK_FALSE(d.limiter.blocked_for("p", T0));
  fs::remove_all(file);
  CHECK(d.enrollment.enroll(request(tok, w), w.public_key, "p", T0 + 1s).ok);
}

// Enrollment logs each outcome itself (the daemon does not): the failure that starts a block
// says so and for how long; the refusals while blocked, which a peer may repeat at will, are
// debug lines, not warnings.
TEST_CASE("keys: the failure that blocks a peer is logged with the block; refusals while blocked are debug") {
  std::ostringstream out;
  auto previous = spdlog::default_logger();
  auto logger = std::make_shared<spdlog::logger>("test", std::make_shared<spdlog::sinks::ostream_sink_st>(out));
  logger->set_pattern("%l %v");
  logger->set_level(spdlog::level::debug);
  spdlog::set_default_logger(logger);
  struct Restore {
    std::shared_ptr<spdlog::logger> logger;
    ~Restore() { spdlog::set_default_logger(logger); }
  } restore{previous};

  Daemon d;
  KeyPair w = generate_key_pair();
  auto bad = request(generate_token(d.keys.public_bytes()).to_string(), w);
  for (int i = 0; i < 4; ++i) (void)d.enrollment.enroll(bad, w.public_key, "10.6.6.6", T0);
  (void)d.enrollment.enroll(bad, w.public_key, "10.6.6.6", T0 + 500ms);
  const std::string log = out.str();
  CAPTURE(log);
  CHECK(log.find("warning enrollment from 10.6.6.6 refused (unknown-token): ") != std::string::npos);
  CHECK(log.find("; its next attempts are refused unchecked for 1s\n") != std::string::npos);
  CHECK(log.find("debug enrollment from 10.6.6.6 refused unchecked: rate-limited for 1s more\n") !=
        std::string::npos);
  // Four warnings (three free failures, the one that blocks), one debug line.
  std::size_t warnings = 0;
  for (auto at = log.find("warning "); at != std::string::npos; at = log.find("warning ", at + 1)) ++warnings;
  CHECK(warnings == 4);
}

TEST_CASE("keys: repeated enrollment failures from one peer are slowed down") {
  Daemon d;
  std::string tok = d.mint();
  KeyPair w = generate_key_pair();
  auto bad = request(generate_token(d.keys.public_bytes()).to_string(), w);
  TimePoint t = T0;
  // Three free failures, then 1 s, 2 s, 4 s ... of blocking.
  for (int i = 0; i < 3; ++i) {
    EnrollOutcome o = d.enrollment.enroll(bad, w.public_key, "10.6.6.6", t);
    CHECK(o.failure == EnrollFailure::UnknownToken);
    CHECK_FALSE(o.retry_after.has_value());
  }
  EnrollOutcome fourth = d.enrollment.enroll(bad, w.public_key, "10.6.6.6", t);
  CHECK(fourth.failure == EnrollFailure::UnknownToken);
  CHECK(fourth.retry_after == 1000ms);

  // While blocked, even a good token is not looked at, and nothing is consumed.
  EnrollOutcome blocked = d.enrollment.enroll(request(tok, w), w.public_key, "10.6.6.6", t + 500ms);
  CHECK(blocked.failure == EnrollFailure::RateLimited);
  CHECK(blocked.code == EnrollErrorCode::PermissionDenied);
  CHECK(blocked.retry_after == 500ms);
  CHECK(blocked.message.find("retry in 1s") != std::string::npos);
  CHECK(d.uses_left(tok) == 1);
  // Other peers are not affected.
  KeyPair v = generate_key_pair();
  std::string tok2 = d.mint();
  CHECK(d.enrollment.enroll(request(tok2, v), v.public_key, "10.0.0.7", t + 500ms).ok);

  t += 1s;
  EnrollOutcome fifth = d.enrollment.enroll(bad, w.public_key, "10.6.6.6", t);
  CHECK(fifth.failure == EnrollFailure::UnknownToken);
  CHECK(fifth.retry_after == 2000ms);
  CHECK(d.enrollment.enroll(request(tok, w), w.public_key, "10.6.6.6", t + 1999ms).failure ==
        EnrollFailure::RateLimited);
  // Once the block is over, a good token works and the peer's record is cleared.
  EnrollOutcome ok = d.enrollment.enroll(request(tok, w), w.public_key, "10.6.6.6", t + 2s);
  CHECK(ok.ok);
  CHECK_FALSE(d.limiter.blocked_for("10.6.6.6", t + 2s));
  CHECK(d.limiter.tracked_peers() == 0);
}

TEST_CASE("keys: rate limiter backoff, cap, forgetting and memory bound") {
  RateLimitPolicy p;
  p.free_failures = 1;
  p.base_delay = 100ms;
  p.max_delay = 1s;
  p.forget_after = 60s;
  p.max_peers = 3;
  RateLimiter rl(p);
  TimePoint t = T0;
  CHECK_FALSE(rl.blocked_for("a", t));
  CHECK_FALSE(rl.record_failure("a", t));
  CHECK(rl.record_failure("a", t) == 100ms);
  CHECK(rl.blocked_for("a", t + 50ms) == 50ms);
  CHECK(rl.record_failure("a", t) == 200ms);
  CHECK(rl.record_failure("a", t) == 400ms);
  CHECK(rl.record_failure("a", t) == 800ms);
  CHECK(rl.record_failure("a", t) == 1000ms);  // capped
  for (int i = 0; i < 100; ++i) rl.record_failure("a", t);  // no overflow however many
  CHECK(rl.blocked_for("a", t) == 1000ms);
  CHECK_FALSE(rl.blocked_for("a", t + 1s));
  // Quiet for forget_after: a fresh start.
  CHECK_FALSE(rl.record_failure("a", t + 61s));
  // Bounded memory: a fourth peer evicts the oldest.
  rl.record_failure("b", t + 62s);
  rl.record_failure("c", t + 63s);
  rl.record_failure("d", t + 64s);
  CHECK(rl.tracked_peers() == 3);
  CHECK(rl.prune(t + 64s + 61s) == 3);
  CHECK(rl.tracked_peers() == 0);
  rl.record_failure("e", t);
  rl.record_success("e");
  CHECK(rl.tracked_peers() == 0);
}

TEST_CASE("keys: re-enrolling an enrolled key does not reset the failure record of its address") {
  // An enrolled peer could otherwise interleave a no-op re-enrollment with each bad guess and
  // guess tokens at full speed.
  Daemon d;
  KeyPair w = generate_key_pair();
  std::string tok = d.mint(Role::Worker, 1);
  REQUIRE(d.enrollment.enroll(request(tok, w), w.public_key, "10.6.6.6", T0).created);
  KeyPair guesser = generate_key_pair();
  auto guess = request(generate_token(d.keys.public_bytes()).to_string(), guesser);
  int refused_unchecked = 0, guesses = 0;
  for (int i = 0; i < 10; ++i) {
    EnrollOutcome again = d.enrollment.enroll(request(tok, w), w.public_key, "10.6.6.6", T0);
    if (again.ok) CHECK_FALSE(again.created);
    EnrollOutcome g = d.enrollment.enroll(guess, guesser.public_key, "10.6.6.6", T0);
    ++guesses;
    if (g.failure == EnrollFailure::RateLimited) ++refused_unchecked;
  }
  // Three free failures, the fourth blocks: guesses 5..10 are not looked at.
  CHECK(refused_unchecked == 6);
  CHECK(d.limiter.blocked_for("10.6.6.6", T0));
  // A real first enrollment from that address (once the block is over) still clears the record.
  KeyPair fresh = generate_key_pair();
  std::string tok2 = d.mint(Role::Worker, 1);
  EnrollOutcome first = d.enrollment.enroll(request(tok2, fresh), fresh.public_key, "10.6.6.6", T0 + 10min);
  REQUIRE(first.created);
  CHECK(d.limiter.tracked_peers() == 0);
}
