// logging_test.cpp — the common log formats (transport/logging.hpp): text lines match the
// shared pattern, json lines are one object each with time (with its offset), level,
// component, message and the trailing key=value fields.
#include <doctest/doctest.h>

#include <regex>
#include <sstream>

#include <nlohmann/json.hpp>
#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/spdlog.h>

#include "muster/logging.hpp"

namespace {

std::string log_with(muster::LogFormat format, auto&& write) {
  std::ostringstream out;
  auto sink = std::make_shared<spdlog::sinks::ostream_sink_mt>(out);
  spdlog::logger logger("musterd", sink);
  logger.set_formatter(muster::make_log_formatter(format));
  logger.set_level(spdlog::level::trace);
  write(logger);
  return out.str();
}

}  // namespace

TEST_CASE("text log lines: time with offset, level, [component], message with its fields") {
  auto text = log_with(muster::LogFormat::Text, [](spdlog::logger& l) {
    l.info("worker attached worker_id={} nodes={}", "w1", 3);
    l.warn("careful");
    l.error("bad");
  });
  std::regex line(R"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}[+-]\d\d:\d\d (INFO |WARN |ERROR) \[musterd\] .+)");
  std::istringstream in(text);
  std::string l;
  int n = 0;
  while (std::getline(in, l)) {
    CHECK_MESSAGE(std::regex_match(l, line), l);
    ++n;
  }
  CHECK(n == 3);
  CHECK(text.find(" INFO  [musterd] worker attached worker_id=w1 nodes=3\n") != std::string::npos);
}

TEST_CASE("json log lines: one object each, fields lifted out of the message") {
  auto text = log_with(muster::LogFormat::Json, [](spdlog::logger& l) {
    l.info("worker attached worker_id={} hostname=\"{}\" capacity={}", "w1", "my box", 4);
    l.warn("a \"quoted\" word, a tab\tand bytes \xff\xfe that are not UTF-8");
    l.debug("ratio a=b c");  // a=b is not trailing: no field
  });
  std::istringstream in(text);
  std::string line;
  std::vector<nlohmann::json> lines;
  while (std::getline(in, line)) lines.push_back(nlohmann::json::parse(line));
  REQUIRE(lines.size() == 3);
  for (auto& j : lines) {
    CHECK(j.at("component") == "musterd");
    CHECK(std::regex_match(j.at("time").get<std::string>(),
                           std::regex(R"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}[+-]\d\d:\d\d)")));
  }
  CHECK(lines[0].at("level") == "info");
  CHECK(lines[0].at("message") == "worker attached");
  CHECK(lines[0].at("worker_id") == "w1");
  CHECK(lines[0].at("hostname") == "my box");
  CHECK(lines[0].at("capacity") == 4);
  CHECK(lines[1].at("level") == "warn");
  CHECK(lines[1].at("message") == "a \"quoted\" word, a tab\tand bytes \xef\xbf\xbd\xef\xbf\xbd that are not UTF-8");
  CHECK(lines[2].at("level") == "debug");
  CHECK(lines[2].at("message") == "ratio a=b c");
  CHECK(lines[2].size() == 4);
}

TEST_CASE("log formats and levels are checked by name") {
  CHECK(muster::parse_log_format("text") == muster::LogFormat::Text);
  CHECK(muster::parse_log_format("json") == muster::LogFormat::Json);
  CHECK_THROWS_AS(muster::parse_log_format("xml"), std::invalid_argument);
}

TEST_CASE("log_value: outside values split back out of a json line as they were, or quoted safely") {
  CHECK(muster::log_value("u-1") == "u-1");
  CHECK(muster::log_value("") == "\"\"");
  CHECK(muster::log_value("two words") == "\"two words\"");
  CHECK(muster::log_value("say \"hi\"\n") == "\"say 'hi' \"");
  auto text = log_with(muster::LogFormat::Json, [](spdlog::logger& l) {
    l.warn("event failed node={} event={}", muster::log_value("sleep"), muster::log_value("a b\" c=\"d"));
  });
  auto j = nlohmann::json::parse(text);
  CHECK(j.at("message") == "event failed");
  CHECK(j.at("node") == "sleep");
  CHECK(j.at("event") == "a b' c='d");
}
