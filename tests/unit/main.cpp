// main.cpp — the doctest runner for every unit test in tests/unit. Logs are off unless
// MUSTER_TEST_LOG names a level (e.g. MUSTER_TEST_LOG=debug).
#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>

#include <cstdlib>

#include <spdlog/spdlog.h>

int main(int argc, char** argv) {
  const char* level = std::getenv("MUSTER_TEST_LOG");
  spdlog::set_level(level ? spdlog::level::from_str(level) : spdlog::level::off);
  doctest::Context context(argc, argv);
  return context.run();
}
