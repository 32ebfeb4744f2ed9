// broker_config_test.cpp — the config file (broker/config.hpp) on an app shaped like musterd's:
// values reach the variables, flags win over the file, bad keys/types/values are errors naming
// the file, line and key, and --print-config's text reads back as the same settings.
#include <cstdint>
#include <fstream>
#include <string>
#include <vector>

#include <doctest/doctest.h>

#include "config.hpp"
#include "temp_dir.hpp"

using muster::broker::add_config_options;
using muster::broker::effective_config;
using muster::test::TempDir;

namespace {

// The kinds of option musterd has: integers with ranges, a uint64, a string with a default,
// a string without one, a repeatable endpoint, a bool flag, and a command-line-only flag.
struct Settings {
  std::uint64_t ping_ms = 1000;
  std::uint32_t liveness = 3;
  std::uint64_t max_open_bytes = 512ull << 20;
  std::string log_level = "info";
  std::string listen;
  std::vector<std::string> request_addresses;
  bool insecure = false;
  bool print_config = false;
};

struct App {
  Settings s;
  CLI::App app{"test daemon", "testd"};
  App() {
    app.set_version_flag("--version", "1.0")->configurable(false);
    add_config_options(app, &s.print_config);
    app.add_option("--ping-interval-ms", s.ping_ms, "Heartbeat interval")
        ->capture_default_str()->check(CLI::Range(10, 3600000));
    app.add_option("--liveness", s.liveness, "Intervals")->capture_default_str()->check(CLI::Range(1, 1000));
    app.add_option("--max-open-bytes", s.max_open_bytes, "Bytes")->capture_default_str();
    app.add_option("--request-address", s.request_addresses, "Endpoint")->allow_extra_args(false);
    app.add_option("--listen", s.listen, "Host");
    app.add_flag("--insecure", s.insecure, "Clear text");
    app.add_option("--log-level", s.log_level, "Level")->capture_default_str();
  }
  void parse(std::vector<std::string> args) {
    std::vector<const char*> argv{"testd"};
    for (auto& a : args) argv.push_back(a.c_str());
    app.parse(static_cast<int>(argv.size()), argv.data());
  }
};

std::string write(const TempDir& d, const std::string& text, const char* name = "testd.toml") {
  auto path = (d.path / name).string();
  std::ofstream(path) << text;
  return path;
}

std::string parse_error(const std::string& file) {
  App a;
  try {
    a.parse({"--config", file});
  } catch (const CLI::ParseError& e) {
    return e.what();
  }
  return "(no error)";
}

}  // namespace

TEST_CASE("config: the file's values reach the options, and flags win over the file") {
  TempDir d;
  auto file = write(d,
                    "# comment\n"
                    "ping-interval-ms = 250\n"
                    "liveness = 5\n"
                    "log-level = \"debug\"\n"
                    "request-address = [\"ipc:///tmp/a.sock\", \"tcp://127.0.0.1:5555\"]\n"
                    "insecure = true\n");
  App a;
  a.parse({"--config", file, "--liveness", "7", "--request-address", "ipc:///tmp/b.sock"});
  CHECK(a.s.ping_ms == 250);
  CHECK(a.s.liveness == 7);  // the flag, not the file
  CHECK(a.s.log_level == "debug");
  CHECK(a.s.insecure);
  // A repeatable option given on the command line replaces the file's list, it does not add.
  CHECK(a.s.request_addresses == std::vector<std::string>{"ipc:///tmp/b.sock"});

  App b;
  b.parse({"--config", file});
  CHECK(b.s.request_addresses == std::vector<std::string>{"ipc:///tmp/a.sock", "tcp://127.0.0.1:5555"});
  CHECK(b.s.liveness == 5);
  CHECK(b.s.insecure);

  App c;  // a flag the file turns on is turned off on the command line with =false
  c.parse({"--config", file, "--insecure=false"});
  CHECK_FALSE(c.s.insecure);
}

TEST_CASE("config: a single value is accepted for a repeatable option") {
  TempDir d;
  App a;
  a.parse({"--config", write(d, "request-address = \"ipc:///tmp/one.sock\"\n")});
  CHECK(a.s.request_addresses == std::vector<std::string>{"ipc:///tmp/one.sock"});
}

TEST_CASE("config: an unknown key is an error naming the file, line and key") {
  TempDir d;
  auto file = write(d, "liveness = 4\n\nqueue-limt = 10\n");
  CHECK(parse_error(file) == file + ":3: queue-limt: unknown setting (testd has no --queue-limt option; "
                                    "testd --help lists them)");
}

TEST_CASE("config: a command-line-only option and a [section] are refused") {
  TempDir d;
  auto version = write(d, "version = true\n", "a.toml");
  CHECK(parse_error(version) == version + ":1: version: --version is a command-line option only, not a setting");
  auto print = write(d, "liveness = 2\nprint-config = true\n", "b.toml");
  CHECK(parse_error(print) == print + ":2: print-config: --print-config is a command-line option only, not a setting");
  auto config = write(d, "config = \"/etc/x.toml\"\n", "c.toml");
  CHECK(parse_error(config).find(config + ":1: config: ") == 0);
  auto table = write(d, "[limits]\nliveness = 2\n", "d.toml");
  CHECK(parse_error(table) == table + ":1: limits: a table; settings are top-level keys, with no [sections]");
}

TEST_CASE("config: a wrong type is an error naming the file, line, key and both types") {
  TempDir d;
  std::vector<std::pair<std::string, std::string>> cases = {
      {"liveness = \"three\"\n", ":1: liveness: expected a non-negative integer, got a string"},
      {"\nliveness = -1\n", ":2: liveness: expected a non-negative integer, got -1"},
      {"liveness = 2.5\n", ":1: liveness: expected a non-negative integer, got a floating-point number"},
      {"insecure = 1\n", ":1: insecure: expected a boolean (true or false), got an integer"},
      {"log-level = 3\n", ":1: log-level: expected a string, got an integer"},
      {"listen = [\"a\", \"b\"]\n", ":1: listen: expected a string, got an array (--listen takes one value)"},
      {"request-address = [\"ipc:///a\", 3]\n", ":1: request-address: expected a string, got an integer"},
      {"request-address = []\n", ":1: request-address: an empty array; leave the key out for the default"},
  };
  for (auto& [text, error] : cases) {
    auto file = write(d, text);
    CHECK(parse_error(file) == file + error);
  }
}

TEST_CASE("config: a value the flag's check refuses is an error naming the file and line") {
  TempDir d;
  auto file = write(d, "liveness = 4\nping-interval-ms = 5\n");
  CHECK(parse_error(file) == file + ":2: ping-interval-ms: Value 5 not in range 10 to 3600000");
}

TEST_CASE("config: a file TOML cannot parse is an error with its line and column") {
  TempDir d;
  auto file = write(d, "liveness = 4\nping-interval-ms = \n");
  CHECK(parse_error(file).find(file + ":2:") == 0);
  INFO(parse_error(file));
}

TEST_CASE("config: a missing --config file is an error") {
  App a;
  CHECK_THROWS_AS(a.parse({"--config", "/nonexistent/testd.toml"}), CLI::FileError);
}

TEST_CASE("config: --print-config's text reads back as the same settings") {
  TempDir d;
  App a;
  a.parse({"--liveness", "9", "--listen", "127.0.0.1", "--insecure", "--request-address", "ipc:///tmp/q 'x\".sock",
           "--log-level", "warn", "--max-open-bytes", "0", "--print-config"});
  CHECK(a.s.print_config);
  std::string text = effective_config(a.app);
  INFO(text);
  CHECK(text.find("liveness = 9\n") != std::string::npos);
  CHECK(text.find("ping-interval-ms = 1000\n") != std::string::npos);  // defaults are printed too
  CHECK(text.find("insecure = true\n") != std::string::npos);
  CHECK(text.find("# Heartbeat interval\n") != std::string::npos);    // the help as a comment
  CHECK(text.find("print-config =") == std::string::npos);
  CHECK(text.find("version =") == std::string::npos);

  App b;
  b.parse({"--config", write(d, text)});
  CHECK(b.s.liveness == 9);
  CHECK(b.s.listen == "127.0.0.1");
  CHECK(b.s.insecure);
  CHECK(b.s.request_addresses == std::vector<std::string>{"ipc:///tmp/q 'x\".sock"});
  CHECK(b.s.log_level == "warn");
  CHECK(b.s.max_open_bytes == 0);
  CHECK(b.s.ping_ms == 1000);
  CHECK(effective_config(b.app) == text);
}

TEST_CASE("config: an option with neither value nor default is printed commented out and reads back unset") {
  TempDir d;
  App a;
  a.parse({});
  std::string text = effective_config(a.app);
  CHECK(text.find("# listen = \"\"  (not set)\n") != std::string::npos);
  CHECK(text.find("# request-address = []  (not set)\n") != std::string::npos);
  CHECK(text.find("insecure = false\n") != std::string::npos);
  App b;
  b.parse({"--config", write(d, text)});
  CHECK(b.s.listen.empty());
  CHECK(b.s.request_addresses.empty());
  CHECK_FALSE(b.s.insecure);
}
