// config_file_test.cpp — the config file (muster/config_file.hpp) on an app shaped like musterd's
// and on one with subcommands like muster-gateway's: values reach the variables, flags win over
// the file, bad keys/types/values are errors naming the file, line and key, and --print-config's
// text reads back as the same settings.
#include <cstdint>
#include <fstream>
#include <string>
#include <vector>

#include <doctest/doctest.h>

#include "muster/config_file.hpp"
#include "temp_dir.hpp"

using muster::add_config_options;
using muster::effective_config;
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

// The error parsing `args` with a fresh app of type A gives.
template <class A>
std::string error_of(std::vector<std::string> args) {
  A a;
  try {
    a.parse(std::move(args));
  } catch (const CLI::ParseError& e) {
    return e.what();
  }
  return "(no error)";
}

std::string parse_error(const std::string& file) { return error_of<App>({"--config", file}); }

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

namespace {

// A program with subcommands, shaped like muster-gateway: top-level flags, `serve` with its
// own, and `user add` (a nested subcommand); --config and --print-config may follow the
// subcommand (fallthrough).
struct SubApp {
  bool print_config = false;
  std::string log_level = "info", listen = "127.0.0.1:8080", workspace = "default";
  std::vector<std::string> origins;
  double ping_s = 54;
  bool tls_only = false;
  CLI::App app{"test gateway", "testgw"};
  CLI::App* serve = nullptr;
  SubApp() {
    app.set_version_flag("--version", "1.0")->configurable(false);
    add_config_options(app, &print_config);
    app.fallthrough();
    app.add_option("--log-level", log_level, "Level")->capture_default_str();
    app.require_subcommand(1);
    serve = app.add_subcommand("serve", "Serve");
    serve->add_option("--listen", listen, "host:port")->capture_default_str();
    serve->add_option("--allowed-origin", origins, "Origin (repeatable)");
    serve->add_option("--ping-interval", ping_s, "Seconds")->capture_default_str()->check(CLI::PositiveNumber);
    serve->add_flag("--tls-only", tls_only, "TLS only");
    auto* user = app.add_subcommand("user", "Users");
    user->add_subcommand("add", "Add")->add_option("--workspace", workspace, "Workspace")->capture_default_str();
  }
  void parse(std::vector<std::string> args) {
    std::vector<const char*> argv{"testgw"};
    for (auto& a : args) argv.push_back(a.c_str());
    app.parse(static_cast<int>(argv.size()), argv.data());
  }
};

std::string sub_parse_error(std::vector<std::string> args) { return error_of<SubApp>(std::move(args)); }

}  // namespace

TEST_CASE("config with subcommands: a [subcommand] table sets its flags, top-level keys the program's") {
  TempDir d;
  auto file = write(d,
                    "log-level = \"debug\"\n"
                    "[serve]\n"
                    "listen = \"0.0.0.0:9000\"\n"
                    "allowed-origin = [\"https://a.example\"]\n"
                    "ping-interval = 30\n"
                    "[user.add]\n"
                    "workspace = \"alpha\"\n",
                    "gw.toml");
  SubApp a;
  a.parse({"--config", file, "serve", "--ping-interval", "5"});
  CHECK(a.log_level == "debug");
  CHECK(a.listen == "0.0.0.0:9000");
  CHECK(a.origins == std::vector<std::string>{"https://a.example"});
  CHECK(a.ping_s == 5);  // the flag wins
  SubApp b;  // --config after the subcommand
  b.parse({"serve", "--config", file});
  CHECK(b.listen == "0.0.0.0:9000");
  CHECK(b.ping_s == 30);
  SubApp c;
  c.parse({"user", "add", "--config", file});
  CHECK(c.workspace == "alpha");
}

TEST_CASE("config with subcommands: unknown tables and keys are errors naming file, line and key") {
  TempDir d;
  auto key = write(d, "[serve]\nlisten = \"a:1\"\nlisen = \"b:2\"\n", "a.toml");
  CHECK(sub_parse_error({"--config", key, "serve"}) ==
        key + ":3: serve.lisen: unknown setting (testgw serve has no --lisen option; testgw serve --help lists them)");
  auto table = write(d, "log-level = \"warn\"\n[serv]\nlisten = \"a:1\"\n", "b.toml");
  CHECK(sub_parse_error({"--config", table, "serve"}) ==
        table + ":2: serv: a table, and `testgw` has no subcommand 'serv' (testgw --help lists them)");
  auto top = write(d, "listen = \"a:1\"\n", "c.toml");  // serve's flag at the top level
  CHECK(sub_parse_error({"--config", top, "serve"}) ==
        top + ":1: listen: unknown setting (testgw has no --listen option; testgw --help lists them)");
  auto type = write(d, "[serve]\n\nping-interval = \"soon\"\n", "d.toml");
  CHECK(sub_parse_error({"--config", type, "serve"}) ==
        type + ":3: serve.ping-interval: expected a number, got a string");
  auto nested = write(d, "[serve.x]\nlisten = \"a:1\"\n", "e.toml");
  CHECK(sub_parse_error({"--config", nested, "serve"}) ==
        nested + ":1: serve.x: a table; `testgw serve` has no subcommands");
}

TEST_CASE("config with subcommands: --print-config prints the chosen subcommand's table, which reads back") {
  TempDir d;
  SubApp a;
  a.parse({"--log-level", "warn", "serve", "--listen", "0.0.0.0:1", "--allowed-origin", "https://x",
           "--tls-only", "--print-config"});
  CHECK(a.print_config);
  std::string text = effective_config(a.app);
  INFO(text);
  CHECK(text.find("`testgw --config FILE serve`") != std::string::npos);
  CHECK(text.find("log-level = 'warn'\n") != std::string::npos);
  CHECK(text.find("\n[serve]\n") != std::string::npos);
  CHECK(text.find("listen = '0.0.0.0:1'\n") > text.find("[serve]"));
  CHECK(text.find("ping-interval = 54\n") != std::string::npos);
  CHECK(text.find("[user") == std::string::npos);  // only the chosen subcommand

  SubApp b;
  b.parse({"--config", write(d, text, "printed.toml"), "serve"});
  CHECK(b.log_level == "warn");
  CHECK(b.listen == "0.0.0.0:1");
  CHECK(b.origins == std::vector<std::string>{"https://x"});
  CHECK(b.tls_only);
  CHECK(effective_config(b.app) == text);
}
