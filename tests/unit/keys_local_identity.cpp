// keys_local_identity.cpp — tests for keys/: the enrolling side's files, the enroll-or-reuse
// decision with no re-trust of a daemon key, the token lookup order, and one full enrollment
// through both sides' code (without sockets).
#include <doctest/doctest.h>

#include "temp_dir.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <string>

#include "muster/enrollment.hpp"
#include "muster/key_file.hpp"
#include "muster/local_identity.hpp"
#include "muster/token_source.hpp"

namespace fs = std::filesystem;
using namespace muster::keys;
using namespace std::chrono_literals;

namespace {

using muster::test::TempDir;

const TimePoint T0 = TimePoint(std::chrono::seconds(1'750'000'000));

void write_text(const fs::path& p, const std::string& s, mode_t mode = 0600) {
  fs::create_directories(p.parent_path());
  { std::ofstream(p) << s; }
  ::chmod(p.c_str(), mode);
}

}  // namespace

TEST_CASE("keys: local identity paths and names") {
  auto p = local_identity_paths("/data", "echo");
  CHECK(p.secret_key == "/data/echo-curve.key");
  CHECK(p.public_key == "/data/echo-curve.pub");
  CHECK(p.identity == "/data/echo-identity.json");
  for (const char* bad : {"", "../x", "a/b", ".hidden", "-x", "a b"})
    CHECK_THROWS_AS(local_identity_paths("/data", bad), std::invalid_argument);
}

TEST_CASE("keys: plan_enrollment needs a token until enrolled, then reuses the identity") {
  TempDir d;
  fs::path data = d.path / "worker-data";
  KeyPair daemon = generate_key_pair();
  TokenStore tokens(d.path / "tokens.json", daemon.public_key);

  // No identity, no token.
  try {
    plan_enrollment(data, "echo", std::nullopt);
    FAIL("planned without a token");
  } catch (const NotEnrolled& e) {
    std::string msg = e.what();
    CHECK(msg.find("MUSTER_ENROLLMENT_TOKEN") != std::string::npos);
    CHECK(msg.find("--enrollment-token-file") != std::string::npos);
    CHECK(msg.find("enrollment-token") != std::string::npos);
  }
  // The key pair was created, privately.
  struct stat st {};
  REQUIRE(::stat((data / "echo-curve.key").c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == 0600);

  CHECK_THROWS_AS(plan_enrollment(data, "echo", std::string("garbage")), std::invalid_argument);

  std::string tok = tokens.mint(MintRequest{}, T0).token;
  EnrollmentPlan plan = plan_enrollment(data, "echo", tok);
  CHECK(plan.needs_enrollment());
  CHECK(plan.token == tok);
  CHECK(plan.daemon_public_key == daemon.public_key);  // from the token: no trust on first use
  CHECK(plan.keys.public_key == load_public_key_file(data / "echo-curve.pub"));

  LocalIdentity saved = record_enrollment(data, "echo", plan, "id-1", "worker", "default", "echo", T0);
  CHECK(saved.daemon_public_key == daemon.public_key);
  REQUIRE(::stat((data / "echo-identity.json").c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == 0600);

  // Next run: no token needed, same keys and daemon key.
  EnrollmentPlan again = plan_enrollment(data, "echo", std::nullopt);
  CHECK_FALSE(again.needs_enrollment());
  CHECK(again.identity->identity_id == "id-1");
  CHECK(again.keys.public_key == plan.keys.public_key);
  CHECK(again.daemon_public_key == daemon.public_key);
  // A token for the same daemon still lying around is harmless.
  CHECK_FALSE(plan_enrollment(data, "echo", tok).needs_enrollment());
  CHECK_FALSE(plan_enrollment(data, "echo", std::nullopt, daemon.public_key).needs_enrollment());
}

TEST_CASE("keys: a different daemon key is refused, never re-trusted") {
  TempDir d;
  fs::path data = d.path / "w";
  KeyPair daemon = generate_key_pair(), impostor = generate_key_pair();
  TokenStore ours(d.path / "a.json", daemon.public_key), theirs(d.path / "b.json", impostor.public_key);
  EnrollmentPlan plan = plan_enrollment(data, "w", ours.mint(MintRequest{}, T0).token);
  record_enrollment(data, "w", plan, "id-1", "worker", "default", "w", T0);

  std::string foreign = theirs.mint(MintRequest{}, T0).token;
  try {
    plan_enrollment(data, "w", foreign);
    FAIL("re-trusted another daemon");
  } catch (const DaemonKeyMismatch& e) {
    std::string msg = e.what();
    CHECK(msg.find(impostor.public_key) != std::string::npos);
    CHECK(msg.find(daemon.public_key) != std::string::npos);
    CHECK(msg.find("w-identity.json") != std::string::npos);
    CHECK(msg.find(foreign.substr(25, 43)) == std::string::npos);  // no token secret
  }
  CHECK_THROWS_AS(plan_enrollment(data, "w", std::nullopt, impostor.public_key), DaemonKeyMismatch);
  // The saved identity is untouched.
  CHECK(load_local_identity(data, "w")->daemon_public_key == daemon.public_key);

  // Not yet enrolled: a configured daemon key must agree with the token's.
  TempDir d2;
  CHECK_THROWS_AS(plan_enrollment(d2.path, "x", foreign, daemon.public_key), DaemonKeyMismatch);
}

TEST_CASE("keys: an identity file for another key pair is refused") {
  TempDir d;
  KeyPair daemon = generate_key_pair();
  TokenStore tokens(d.path / "t.json", daemon.public_key);
  fs::path data = d.path / "w";
  EnrollmentPlan plan = plan_enrollment(data, "w", tokens.mint(MintRequest{}, T0).token);
  record_enrollment(data, "w", plan, "id-1", "worker", "default", "w", T0);
  write_secret_key_file(data / "w-curve.key", generate_key_pair());
  CHECK_THROWS_WITH_AS(plan_enrollment(data, "w", std::nullopt), doctest::Contains("key file was replaced"),
                       std::runtime_error);
  write_text(data / "w-identity.json", "{}");
  CHECK_THROWS_WITH_AS(plan_enrollment(data, "w", std::nullopt), doctest::Contains("delete it to enroll again"),
                       std::runtime_error);
}

TEST_CASE("keys: token lookup order: env, then --enrollment-token-file, then XDG") {
  TempDir d;
  fs::path flag = d.path / "flag-token";
  fs::path xdg = d.path / "xdg";
  fs::path home = d.path / "home";
  write_text(flag, "FROM-FLAG\n");
  write_text(xdg / "muster" / "enrollment-token", "  FROM-XDG  \n");
  write_text(home / ".config" / "muster" / "enrollment-token", "FROM-HOME\n");

  TokenSourceInputs in;
  in.env_token = "FROM-ENV";
  in.token_file = flag;
  in.xdg_config_home = xdg.string();
  in.home = home.string();
  auto f = find_enrollment_token(in);
  CHECK(f->token == "FROM-ENV");
  CHECK(f->source == "MUSTER_ENROLLMENT_TOKEN");

  in.env_token = "";  // set but empty: ignored
  f = find_enrollment_token(in);
  CHECK(f->token == "FROM-FLAG");
  CHECK(f->source == "file " + flag.string());

  in.token_file.reset();
  CHECK(find_enrollment_token(in)->token == "FROM-XDG");

  in.xdg_config_home = "relative/dir";  // ignored, as the XDG spec says
  CHECK(find_enrollment_token(in)->token == "FROM-HOME");
  in.xdg_config_home.reset();
  CHECK(find_enrollment_token(in)->token == "FROM-HOME");
  CHECK(default_token_file(in) == home / ".config" / "muster" / "enrollment-token");

  fs::remove(home / ".config" / "muster" / "enrollment-token");
  CHECK_FALSE(find_enrollment_token(in).has_value());
  in.home.reset();
  CHECK_FALSE(find_enrollment_token(in).has_value());

  // A named token file must exist and hold something.
  in.token_file = d.path / "missing";
  CHECK_THROWS_WITH_AS(find_enrollment_token(in), doctest::Contains("does not exist"), std::runtime_error);
  write_text(d.path / "empty", "\n");
  in.token_file = d.path / "empty";
  CHECK_THROWS_WITH_AS(find_enrollment_token(in), doctest::Contains("is empty"), std::runtime_error);
}

TEST_CASE("keys: one full enrollment through both sides, without sockets") {
  TempDir d;
  // Daemon side.
  fs::path daemon_dir = d.path / "daemon";
  KeyPair daemon = load_or_create_daemon_keys(daemon_dir);
  TokenStore tokens(TokenStore::default_path(daemon_dir), daemon.public_key);
  IdentityStore identities(IdentityStore::default_path(daemon_dir));
  RateLimiter limiter;
  Enrollment enrollment(tokens, identities, &limiter);
  MintRequest mr;
  mr.role = Role::Client;
  mr.workspace = "team-a";
  std::string tok = tokens.mint(mr, T0).token;

  // Client side: token found in a file, plan, "send" the request.
  fs::path client_dir = d.path / "client";
  write_text(d.path / "tok", tok + "\n");
  TokenSourceInputs in;
  in.token_file = d.path / "tok";
  auto found = find_enrollment_token(in);
  REQUIRE(found);
  EnrollmentPlan plan = plan_enrollment(client_dir, "cli", found->token);
  REQUIRE(plan.needs_enrollment());
  CHECK(plan.daemon_public_key == daemon.public_key);  // would be ZMQ_CURVE_SERVERKEY

  EnrollRequestFields req{*plan.token, plan.keys.public_key, "client", "cli", "laptop"};
  // The daemon gets the connection key from ZAP (user id on the enrollment domain).
  EnrollOutcome out = enrollment.enroll(req, plan.keys.public_key, "192.168.1.20", T0 + 1s);
  REQUIRE(out.ok);
  record_enrollment(client_dir, "cli", plan, out.identity->id, role_name(out.identity->role),
                    out.identity->workspace, out.identity->name, T0 + 1s);

  // Later runs connect with the saved key; the daemon's ZAP check lets it onto the client socket.
  EnrollmentPlan later = plan_enrollment(client_dir, "cli", std::nullopt);
  CHECK_FALSE(later.needs_enrollment());
  auto who = identities.authorize(later.keys.public_key, Role::Client);
  REQUIRE(who);
  CHECK(who->id == later.identity->identity_id);
  CHECK(who->workspace == "team-a");
  CHECK_FALSE(identities.authorize(later.keys.public_key, Role::Worker));
}
