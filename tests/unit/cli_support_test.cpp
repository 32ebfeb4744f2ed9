// cli_support_test.cpp — the `muster` CLI's socket-free parts: the duration parser every time
// option uses (keys::parse_duration_ms), exit codes by class, aligned tables, contexts files.
#include <doctest/doctest.h>

#include <cstdlib>
#include <fstream>
#include <set>

#include "contexts.hpp"
#include "exit_codes.hpp"
#include "muster/duration.hpp"
#include "table.hpp"
#include "temp_dir.hpp"

using namespace muster;
using namespace std::chrono;

TEST_CASE("cli durations: ms, s, m, h, d, w and sums, in milliseconds") {
  using keys::parse_duration_ms;
  CHECK(parse_duration_ms("500ms") == milliseconds(500));
  CHECK(parse_duration_ms("2s") == milliseconds(2000));
  CHECK(parse_duration_ms("1m") == milliseconds(60000));
  CHECK(parse_duration_ms("1h30m") == milliseconds(5'400'000));
  CHECK(parse_duration_ms("1s500ms") == milliseconds(1500));
  CHECK(parse_duration_ms("7d") == hours(24 * 7));
  CHECK(parse_duration_ms("2w") == hours(24 * 14));
  for (const char* bad : {"", "10", "ms", "5 s", "5S", "0ms", "0s", "1.5s", "-1s", "10y", "5mss",
                          "99999999999999999999ms", "3651d", "s1"}) {
    CAPTURE(bad);
    CHECK_THROWS_AS(parse_duration_ms(bad), std::invalid_argument);
  }
  try {
    parse_duration_ms("10");
    FAIL("no exception");
  } catch (const std::invalid_argument& e) {
    CHECK(std::string(e.what()) ==
          "invalid duration '10': missing unit after the last number (ms, s, m, h, d or w) "
          "(examples: 500ms, 2s, 1m, 1h30m, 7d)");
  }
  // token lifetimes keep their whole-second syntax: no ms there
  CHECK(keys::parse_duration("90s") == seconds(90));
  CHECK_THROWS_AS(keys::parse_duration("500ms"), std::invalid_argument);
}

TEST_CASE("cli exit codes: one per class") {
  using cli::Exit;
  CHECK(cli::exit_for(wire::ErrorCode::Unavailable) == Exit::Unavailable);
  CHECK(cli::exit_for(wire::ErrorCode::Timeout) == Exit::Timeout);
  CHECK(cli::exit_for(wire::ErrorCode::PermissionDenied) == Exit::PermissionDenied);
  CHECK(cli::exit_for(wire::ErrorCode::Cancelled) == Exit::Cancelled);
  for (auto c : {wire::ErrorCode::WorkerError, wire::ErrorCode::InvalidRequest, wire::ErrorCode::NoWorker,
                 wire::ErrorCode::QueueFull, wire::ErrorCode::WorkerLost, wire::ErrorCode::Internal,
                 wire::ErrorCode::BadMessage, wire::ErrorCode::ShuttingDown})
    CHECK(cli::exit_for(c) == Exit::Failed);
  std::set<int> numbers;
  for (auto* r = cli::exit_rows_begin(); r != cli::exit_rows_end(); ++r) CHECK(numbers.insert(cli::code(r->exit)).second);
  CHECK(numbers == std::set<int>{0, 1, 2, 3, 4, 5, 6, 130});
}

TEST_CASE("cli tables: columns as wide as their widest cell, numbers right-aligned") {
  cli::Table t({"NODE", ">WORKERS", "INPUTS"});
  t.row({"echo", "1", "-"}).row({"a-much-longer-name", "12", "héllo"});
  CHECK(t.str() ==
        "NODE                WORKERS  INPUTS\n"
        "echo                      1  -\n"
        "a-much-longer-name       12  héllo\n");
}

TEST_CASE("cli contexts: saved, reloaded, selected by flag, env or current") {
  test::TempDir dir;
  auto path = dir.path / "muster" / "contexts.json";
  cli::ContextFile f;
  f.contexts["prod"] = {.description = "p", .client_address = "tcp://10.0.0.1:7802", .data_dir = "/k",
                        .name = "me", .insecure = false, .admin = true};
  f.contexts["dev"] = {.client_address = "ipc:///tmp/x.sock"};
  f.current = "dev";
  cli::save_contexts(f, path);
  auto back = cli::load_contexts(path);
  CHECK(back.current == "dev");
  REQUIRE(back.contexts.size() == 2);
  CHECK(back.contexts["prod"].client_address == "tcp://10.0.0.1:7802");
  CHECK(back.contexts["prod"].admin);
  CHECK(back.contexts["prod"].name == "me");
  ::unsetenv("MUSTER_CONTEXT");
  CHECK(cli::selected_context(back, "")->first == "dev");
  CHECK(cli::selected_context(back, "prod")->first == "prod");
  ::setenv("MUSTER_CONTEXT", "prod", 1);
  CHECK(cli::selected_context(back, "")->first == "prod");
  ::unsetenv("MUSTER_CONTEXT");
  CHECK_THROWS_AS(cli::selected_context(back, "nope"), std::invalid_argument);
  back.current.clear();
  CHECK_FALSE(cli::selected_context(back, ""));
  CHECK_THROWS_AS(cli::check_context_name("a b"), std::invalid_argument);
  CHECK_NOTHROW(cli::check_context_name("prod-1.eu_west"));
  std::ofstream(path) << "{not json";
  CHECK_THROWS_AS(cli::load_contexts(path), std::runtime_error);
  CHECK(cli::load_contexts(dir.path / "absent.json").contexts.empty());
}
