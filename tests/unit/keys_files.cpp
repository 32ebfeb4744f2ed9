// keys_files.cpp — tests for keys/: atomic writes, private reads, key files, the daemon's key
// pair, encodings, durations and timestamps.
#include <doctest/doctest.h>

#include "daemon_process.hpp"
#include "temp_dir.hpp"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "muster/curve_keys.hpp"
#include "muster/duration.hpp"
#include "muster/encoding.hpp"
#include "muster/key_file.hpp"
#include "muster/secure_file.hpp"
#include "muster/timestamp.hpp"


namespace fs = std::filesystem;
using namespace muster::keys;

namespace {

using muster::test::TempDir;

mode_t mode_of(const fs::path& p) {
  struct stat st {};
  REQUIRE(::stat(p.c_str(), &st) == 0);
  return st.st_mode & 07777;
}

void write_plain(const fs::path& p, const std::string& text, mode_t mode) {
  { std::ofstream(p) << text; }
  REQUIRE(::chmod(p.c_str(), mode) == 0);
}

std::size_t count_entries(const fs::path& dir) {
  std::size_t n = 0;
  for ([[maybe_unused]] auto& e : fs::directory_iterator(dir)) ++n;
  return n;
}

}  // namespace

TEST_CASE("keys: write_file_atomic writes, replaces, sets the mode and leaves no temp file") {
  TempDir d;
  fs::path f = d.path / "store.json";
  write_file_atomic(f, "first", 0600);
  CHECK(read_file(f).value() == "first");
  CHECK(mode_of(f) == 0600);
  write_file_atomic(f, "second, longer content", 0644);
  CHECK(read_file(f).value() == "second, longer content");
  CHECK(mode_of(f) == 0644);
  CHECK(count_entries(d.path) == 1);
  CHECK_FALSE(read_file(d.path / "missing").has_value());
}

TEST_CASE("keys: a failed atomic write leaves the target alone and no partial or temp file") {
  TempDir d;
  // The target is a non-empty directory: the final rename fails after the temp file was written.
  fs::path target = d.path / "store.json";
  fs::create_directory(target);
  write_plain(target / "keep", "x", 0600);
  CHECK_THROWS_AS(write_file_atomic(target, std::string(100000, 'a')), std::runtime_error);
  CHECK(count_entries(d.path) == 1);  // only the directory: the temp file was removed
  CHECK(fs::is_directory(target));
  CHECK(read_file(target / "keep").value() == "x");

  // A directory that does not exist: nothing is created.
  CHECK_THROWS_AS(write_file_atomic(d.path / "nope" / "f", "x"), std::runtime_error);
  CHECK_FALSE(fs::exists(d.path / "nope"));
}

TEST_CASE("keys: a writer killed at random moments never leaves a half-written file") {
  TempDir d;
  fs::path f = d.path / "tokens.json";
  const std::string a(256 * 1024, 'a'), b(300 * 1024, 'b');
  write_file_atomic(f, a);
  for (int round = 0; round < 12; ++round) {
    pid_t pid = ::fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {  // the child only writes, forever, until killed; never returns into doctest
      try {
        for (int i = 0;; ++i) write_file_atomic(f, i % 2 ? a : b);
      } catch (...) {
      }
      ::_exit(1);
    }
    ::usleep(2000 + (round * 3137) % 20000);
    ::kill(pid, SIGKILL);
    int status = 0;
    ::waitpid(pid, &status, 0);
    auto text = read_file(f);
    REQUIRE(text.has_value());
    CHECK((*text == a || *text == b));
  }
  // Temp files of killed writers may remain (named .tokens.json.tmp-*), never the target.
  for (auto& e : fs::directory_iterator(d.path)) {
    auto name = e.path().filename().string();
    CHECK((name == "tokens.json" || name.rfind(".tokens.json.tmp-", 0) == 0));
  }
}

TEST_CASE("keys: read_private_file refuses group/other-readable files, naming the file and the fix") {
  TempDir d;
  fs::path f = d.path / "secret";
  write_plain(f, "s", 0600);
  CHECK(read_private_file(f).value() == "s");
  for (mode_t m : {0640, 0604, 0644, 0660, 0602}) {
    REQUIRE(::chmod(f.c_str(), m) == 0);
    try {
      read_private_file(f);
      FAIL("read a file with mode ", m);
    } catch (const PermissionError& e) {
      std::string msg = e.what();
      CHECK(msg.find(f.string()) != std::string::npos);
      CHECK(msg.find("chmod 600 " + f.string()) != std::string::npos);
    }
  }
  CHECK_FALSE(read_private_file(d.path / "missing").has_value());
}

TEST_CASE("keys: CURVE key pairs are 40-character Z85, matching, distinct") {
  KeyPair a = generate_key_pair(), b = generate_key_pair();
  CHECK(a.public_key.size() == 40);
  CHECK(a.secret_key.size() == 40);
  CHECK(is_z85_key(a.public_key));
  CHECK(key_pair_matches(a));
  CHECK(a.public_key != b.public_key);
  CHECK(derive_public_key(a.secret_key) == a.public_key);
  CHECK_FALSE(key_pair_matches(KeyPair(a.public_key, b.secret_key)));
  CHECK(z85_encode_key(a.public_bytes()) == a.public_key);
}

TEST_CASE("keys: key files round-trip; a secret file readable by others is refused") {
  TempDir d;
  KeyPair kp = generate_key_pair();
  fs::path sec = d.path / "w-curve.key", pub = d.path / "w-curve.pub";
  write_secret_key_file(sec, kp);
  write_public_key_file(pub, kp.public_key);
  CHECK(mode_of(sec) == 0600);
  CHECK(mode_of(pub) == 0644);
  auto pub_text = read_file(pub).value();
  CHECK(pub_text.find("public=" + kp.public_key + "\n") != std::string::npos);
  CHECK(pub_text.find("secret") == std::string::npos);
  auto sec_text = read_file(sec).value();
  CHECK(sec_text.find("secret=" + kp.secret_key + "\n") != std::string::npos);

  KeyPair back = load_secret_key_file(sec);
  CHECK(back.public_key == kp.public_key);
  CHECK(back.secret_key == kp.secret_key);
  CHECK(load_public_key_file(pub) == kp.public_key);

  REQUIRE(::chmod(sec.c_str(), 0644) == 0);
  try {
    load_secret_key_file(sec);
    FAIL("loaded a world-readable secret key");
  } catch (const PermissionError& e) {
    std::string msg = e.what();
    CHECK(msg.find("chmod 600 " + sec.string()) != std::string::npos);
    CHECK(msg.find(kp.secret_key) == std::string::npos);
  }
  CHECK_THROWS_AS(load_secret_key_file(d.path / "missing.key"), KeyFileError);
}

TEST_CASE("keys: key file parsing is strict") {
  KeyPair a = generate_key_pair(), b = generate_key_pair();
  fs::path src = "/x/k";
  CHECK(parse_secret_key_file("# c\n\npublic=" + a.public_key + "\r\nsecret=" + a.secret_key + "\n", src)
            .public_key == a.public_key);
  CHECK_THROWS_AS(parse_secret_key_file("public=" + a.public_key + "\nsecret=" + b.secret_key, src), KeyFileError);
  CHECK_THROWS_AS(parse_secret_key_file("public=" + a.public_key + "\n", src), KeyFileError);
  CHECK_THROWS_AS(parse_secret_key_file("secret=" + a.secret_key + "\nsecret=" + a.secret_key, src), KeyFileError);
  CHECK_THROWS_AS(parse_secret_key_file("colour=blue\n", src), KeyFileError);
  CHECK_THROWS_AS(parse_secret_key_file("public=short\nsecret=" + a.secret_key, src), KeyFileError);
  CHECK_THROWS_AS(parse_public_key_file("public=" + a.public_key + "\nsecret=" + a.secret_key, src), KeyFileError);
  CHECK_THROWS_AS(parse_public_key_file("", src), KeyFileError);
  try {
    parse_secret_key_file("public=" + a.public_key + "\nsecret=" + b.secret_key, src);
  } catch (const KeyFileError& e) {
    CHECK(std::string(e.what()).find(b.secret_key) == std::string::npos);
    CHECK(std::string(e.what()).find("/x/k") != std::string::npos);
  }
}

TEST_CASE("keys: load_or_create_daemon_keys creates the pair once, then loads it") {
  TempDir d;
  fs::path data = d.path / "data";
  bool created = false;
  KeyPair first = load_or_create_daemon_keys(data, &created);
  CHECK(created);
  CHECK(mode_of(data) == 0700);
  CHECK(mode_of(data / "daemon-curve.key") == 0600);
  CHECK(load_public_key_file(data / "daemon-curve.pub") == first.public_key);

  KeyPair again = load_or_create_daemon_keys(data, &created);
  CHECK_FALSE(created);
  CHECK(again.public_key == first.public_key);

  // A stale or missing public file is rewritten from the secret file.
  write_public_key_file(data / "daemon-curve.pub", generate_key_pair().public_key);
  CHECK(load_or_create_daemon_keys(data).public_key == first.public_key);
  CHECK(load_public_key_file(data / "daemon-curve.pub") == first.public_key);
  fs::remove(data / "daemon-curve.pub");
  load_or_create_daemon_keys(data);
  CHECK(load_public_key_file(data / "daemon-curve.pub") == first.public_key);

  // A secret key file opened up to others stops the daemon.
  REQUIRE(::chmod((data / "daemon-curve.key").c_str(), 0640) == 0);
  CHECK_THROWS_AS(load_or_create_daemon_keys(data), PermissionError);
}

TEST_CASE("keys: a data directory others can write is refused") {
  TempDir d;
  fs::path data = d.path / "shared";
  fs::create_directory(data);
  REQUIRE(::chmod(data.c_str(), 0777) == 0);
  try {
    load_or_create_daemon_keys(data);
    FAIL("used a world-writable data dir");
  } catch (const PermissionError& e) {
    CHECK(std::string(e.what()).find("chmod 700 " + data.string()) != std::string::npos);
  }
  CHECK_FALSE(fs::exists(data / "daemon-curve.key"));
  REQUIRE(::chmod(data.c_str(), 0755) == 0);  // readable is fine, files inside are 0600
  CHECK_NOTHROW(load_or_create_daemon_keys(data));
}

TEST_CASE("keys: a group-writable data directory is refused, named, and left unchanged") {
  TempDir d;
  fs::path data = d.path / "group";
  fs::create_directory(data);
  REQUIRE(::chmod(data.c_str(), 0770) == 0);
  try {
    load_or_create_daemon_keys(data);
    FAIL("used a group-writable data dir");
  } catch (const PermissionError& e) {
    std::string msg = e.what();
    CHECK(msg.find("data directory " + data.string()) != std::string::npos);
    CHECK(msg.find("mode 0770") != std::string::npos);
    CHECK(msg.find("Fix: chmod 700 " + data.string()) != std::string::npos);
  }
  CHECK(mode_of(data) == 0770);
  CHECK(count_entries(data) == 0);
}

TEST_CASE("keys: musterd refuses a group-writable data directory and exits non-zero") {
  // Before: musterd chmod-ed the directory to 0700 and trusted whatever it held.
  TempDir d;
  fs::path data = d.path / "data", run = d.path / "run", err = d.path / "stderr.txt";
  fs::create_directory(data);
  REQUIRE(::chmod(data.c_str(), 0770) == 0);
  pid_t pid = muster::test::spawn_musterd(run, {"--data-dir", data.string(), "--log-level", "warn"}, err);
  int status = 0;
  bool exited = false;
  for (int i = 0; i < 1000 && !exited; ++i) {  // at most 10 s; it should exit at once
    exited = ::waitpid(pid, &status, WNOHANG) == pid;
    if (!exited) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  if (!exited) {
    ::kill(pid, SIGKILL);
    ::waitpid(pid, nullptr, 0);
  }
  REQUIRE_MESSAGE(exited, "musterd kept running with a group-writable data dir");
  CHECK(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) != 0);
  std::string text;
  {
    std::ifstream in(err);
    text.assign(std::istreambuf_iterator<char>(in), {});
  }
  INFO("stderr: " << text);
  CHECK(text.find("data directory " + data.string()) != std::string::npos);
  CHECK(text.find("mode 0770") != std::string::npos);
  CHECK(text.find("Fix: chmod 700 " + data.string()) != std::string::npos);
  CHECK(mode_of(data) == 0770);  // not silently repaired
  CHECK_FALSE(fs::exists(data / "daemon-curve.key"));
}

TEST_CASE("keys: rotate_daemon_keys retires the old pair and makes a new one") {
  TempDir d;
  KeyPair old = load_or_create_daemon_keys(d.path);
  auto now = Clock::now();
  KeyPair fresh = rotate_daemon_keys(d.path, now);
  CHECK(fresh.public_key != old.public_key);
  CHECK(load_or_create_daemon_keys(d.path).public_key == fresh.public_key);
  int retired = 0;
  for (auto& e : fs::directory_iterator(d.path))
    if (e.path().filename().string().find(".retired-") != std::string::npos) ++retired;
  CHECK(retired == 2);
}

TEST_CASE("keys: encodings decode only canonical text") {
  std::array<std::uint8_t, 32> bytes{};
  random_bytes(bytes);
  auto b64 = base64url_encode(bytes);
  CHECK(b64.size() == 43);
  auto back = base64url_decode(b64, 32);
  REQUIRE(back.has_value());
  CHECK(std::equal(back->begin(), back->end(), bytes.begin()));
  CHECK_FALSE(base64url_decode(b64 + "A", 32));
  CHECK_FALSE(base64url_decode(b64.substr(1), 32));
  CHECK_FALSE(base64url_decode(b64.substr(0, 42) + "+", 32));
  // The last character carries 2 padding bits that must be zero: 'B' (000001) is not canonical
  // where 'A' is.
  std::string zeros = base64url_encode(std::array<std::uint8_t, 32>{});
  CHECK(zeros.back() == 'A');
  CHECK_FALSE(base64url_decode(zeros.substr(0, 42) + "B", 32));
  CHECK(hex_decode("00ff") == std::vector<std::uint8_t>{0, 255});
  CHECK_FALSE(hex_decode("0F"));
  CHECK_FALSE(hex_decode("abc"));
  CHECK_FALSE(z85_decode_key(std::string(40, '\x01')));
  CHECK_FALSE(z85_decode_key(std::string(39, 'a')));
  CHECK_FALSE(z85_decode_key(std::string("%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%")));  // > 2^32
  CHECK(constant_time_equal(bytes, bytes));
}

TEST_CASE("keys: durations") {
  using std::chrono::seconds;
  CHECK(parse_duration("30s") == seconds(30));
  CHECK(parse_duration("10m") == seconds(600));
  CHECK(parse_duration("24h") == seconds(86400));
  CHECK(parse_duration("7d") == seconds(7 * 86400));
  CHECK(parse_duration("2w") == seconds(14 * 86400));
  CHECK(parse_duration("1h30m") == seconds(5400));
  for (const char* bad : {"", "10", "m", "-5m", "5 m", "5M", "0s", "1.5h", "10y", "99999999999999999999s",
                          "3651d", "h1"})
    CHECK_THROWS_AS(parse_duration(bad), std::invalid_argument);
  try {
    parse_duration("10");
  } catch (const std::invalid_argument& e) {
    CHECK(std::string(e.what()).find("missing unit") != std::string::npos);
  }
  CHECK(format_duration(seconds(90)) == "1m30s");
  CHECK(format_duration(seconds(86400)) == "1d");
  CHECK(format_duration(seconds(0)) == "0s");
}

TEST_CASE("keys: timestamps round-trip in UTC with milliseconds") {
  TimePoint t = TimePoint(std::chrono::milliseconds(1'700'000'000'123));
  CHECK(format_timestamp(t) == "2023-11-14T22:13:20.123Z");
  CHECK(parse_timestamp("2023-11-14T22:13:20.123Z") == t);
  CHECK(parse_timestamp("2023-11-14T22:13:20Z") == TimePoint(std::chrono::seconds(1'700'000'000)));
  CHECK_FALSE(parse_timestamp("2023-11-14 22:13:20Z"));
  CHECK_FALSE(parse_timestamp("2023-13-14T22:13:20Z"));
  CHECK_FALSE(parse_timestamp(""));
  // fuzz finding: years system_clock (int64 nanoseconds) cannot hold overflowed (UB); now refused
  CHECK_FALSE(parse_timestamp("2725-01-01T00:00:00Z"));
  CHECK_FALSE(parse_timestamp("1012-06-01T00:00:00.000Z"));
  CHECK_FALSE(parse_timestamp("9999-12-31T23:59:59.999Z"));
  CHECK_FALSE(parse_timestamp("0000-01-01T00:00:00Z"));
  CHECK_FALSE(parse_timestamp("2262-04-12T00:00:00Z"));
  CHECK_FALSE(parse_timestamp("1677-09-20T00:00:00Z"));
  for (auto text : {"2262-04-10T00:00:00.000Z", "1677-09-22T00:00:00.000Z", "1969-12-31T23:59:59.999Z"}) {
    auto t = parse_timestamp(text);
    REQUIRE(t);
    CHECK(format_timestamp(*t) == text);
  }
}
