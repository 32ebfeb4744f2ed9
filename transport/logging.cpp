// logging.cpp — see logging.hpp.
#include "muster/logging.hpp"

#include <time.h>

#include <algorithm>
#include <cctype>
#include <stdexcept>
#include <utility>
#include <vector>

#include <fmt/format.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

namespace muster {

namespace {

void append(spdlog::memory_buf_t& dest, std::string_view s) { dest.append(s.data(), s.data() + s.size()); }

// 2026-12-06T13:27:21.123+00:00 in the local time zone.
void append_time(spdlog::memory_buf_t& dest, spdlog::log_clock::time_point t) {
  using namespace std::chrono;
  auto secs = time_point_cast<seconds>(t);
  auto ms = duration_cast<milliseconds>(t - secs).count();
  std::time_t tt = system_clock::to_time_t(secs);
  std::tm tm{};
  ::localtime_r(&tt, &tm);
  long off = tm.tm_gmtoff / 60;
  char sign = off < 0 ? '-' : '+';
  if (off < 0) off = -off;
  fmt::format_to(std::back_inserter(dest), "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}{}{:02}:{:02}",
                 tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ms,
                 sign, off / 60, off % 60);
}

std::string_view level_word(spdlog::level::level_enum l) {
  switch (l) {
    case spdlog::level::trace: return "trace";
    case spdlog::level::debug: return "debug";
    case spdlog::level::info: return "info";
    case spdlog::level::warn: return "warn";
    case spdlog::level::err: return "error";
    case spdlog::level::critical: return "critical";
    default: return "off";
  }
}

// The length of the valid UTF-8 sequence at s[i], or 0.
std::size_t utf8_length(std::string_view s, std::size_t i) {
  auto b = [&](std::size_t k) { return static_cast<unsigned char>(s[k]); };
  unsigned char c = b(i);
  std::size_t n = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
  if (n == 0 || i + n > s.size()) return 0;
  for (std::size_t k = 1; k < n; ++k)
    if ((b(i + k) & 0xC0) != 0x80) return 0;
  if (n == 2 && c < 0xC2) return 0;                             // overlong
  if (n == 3 && c == 0xE0 && b(i + 1) < 0xA0) return 0;         // overlong
  if (n == 3 && c == 0xED && b(i + 1) >= 0xA0) return 0;        // surrogate
  if (n == 4 && (c > 0xF4 || (c == 0xF0 && b(i + 1) < 0x90) || (c == 0xF4 && b(i + 1) >= 0x90))) return 0;
  return n;
}

// A JSON string literal; bytes that are not UTF-8 become U+FFFD.
void append_json_string(spdlog::memory_buf_t& dest, std::string_view s) {
  dest.push_back('"');
  for (std::size_t i = 0; i < s.size();) {
    auto c = static_cast<unsigned char>(s[i]);
    if (c == '"' || c == '\\') {
      dest.push_back('\\');
      dest.push_back(static_cast<char>(c));
      ++i;
    } else if (c == '\n') {
      append(dest, "\\n"), ++i;
    } else if (c == '\r') {
      append(dest, "\\r"), ++i;
    } else if (c == '\t') {
      append(dest, "\\t"), ++i;
    } else if (c < 0x20 || c == 0x7F) {
      fmt::format_to(std::back_inserter(dest), "\\u{:04x}", c), ++i;
    } else if (auto n = utf8_length(s, i)) {
      append(dest, s.substr(i, n));
      i += n;
    } else {
      append(dest, "\\ufffd");
      ++i;
    }
  }
  dest.push_back('"');
}

bool is_key(std::string_view k) {
  if (k.empty() || !(std::islower(static_cast<unsigned char>(k[0])) || k[0] == '_')) return false;
  for (char c : k)
    if (!(std::islower(static_cast<unsigned char>(c)) || std::isdigit(static_cast<unsigned char>(c)) || c == '_'))
      return false;
  return true;
}

bool is_integer(std::string_view v) {
  std::size_t i = v.size() > 1 && v[0] == '-' ? 1 : 0;
  if (v.size() - i == 0 || v.size() - i > 15) return false;  // exact in every JSON reader
  if (v[i] == '0' && v.size() - i > 1) return false;
  for (; i < v.size(); ++i)
    if (!std::isdigit(static_cast<unsigned char>(v[i]))) return false;
  return true;
}

struct Split {
  std::string_view message;
  std::vector<std::pair<std::string_view, std::string>> fields;  // in order
};

// Takes the trailing key=value (or key="quoted value") tokens off a message.
Split split_fields(std::string_view text) {
  Split out{text, {}};
  std::vector<std::pair<std::string_view, std::string>> reversed;
  std::size_t end = text.size();
  while (end > 0) {
    std::size_t start;
    std::string value;
    std::string_view key;
    if (text[end - 1] == '"') {  // key="...": find the opening quote after '='
      auto open = text.rfind("=\"", end - 2);
      if (open == std::string_view::npos || end - 1 <= open + 1) break;
      auto key_start = text.rfind(' ', open);
      key_start = key_start == std::string_view::npos ? 0 : key_start + 1;
      key = text.substr(key_start, open - key_start);
      value = std::string(text.substr(open + 2, end - 1 - (open + 2)));
      start = key_start;
    } else {
      auto space = text.rfind(' ', end - 1);
      start = space == std::string_view::npos ? 0 : space + 1;
      auto token = text.substr(start, end - start);
      auto eq = token.find('=');
      if (eq == std::string_view::npos || eq + 1 == token.size()) break;
      key = token.substr(0, eq);
      value = std::string(token.substr(eq + 1));
    }
    if (!is_key(key) || key == "time" || key == "level" || key == "component" || key == "message") break;
    reversed.emplace_back(key, std::move(value));
    end = start;
    while (end > 0 && text[end - 1] == ' ') --end;
  }
  if (reversed.empty()) return out;
  out.message = text.substr(0, end);
  out.fields.assign(std::make_move_iterator(reversed.rbegin()), std::make_move_iterator(reversed.rend()));
  return out;
}

class TextFormatter final : public spdlog::formatter {
 public:
  void format(const spdlog::details::log_msg& msg, spdlog::memory_buf_t& dest) override {
    append_time(dest, msg.time);
    std::string level(level_word(msg.level));
    if (level == "critical") level = "crit";
    for (auto& c : level) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    fmt::format_to(std::back_inserter(dest), " {:<5} [", level);
    append(dest, std::string_view(msg.logger_name.data(), msg.logger_name.size()));
    append(dest, "] ");
    append(dest, std::string_view(msg.payload.data(), msg.payload.size()));
    dest.push_back('\n');
  }
  std::unique_ptr<spdlog::formatter> clone() const override { return std::make_unique<TextFormatter>(); }
};

class JsonFormatter final : public spdlog::formatter {
 public:
  void format(const spdlog::details::log_msg& msg, spdlog::memory_buf_t& dest) override {
    append(dest, "{\"time\":\"");
    append_time(dest, msg.time);
    append(dest, "\",\"level\":\"");
    append(dest, level_word(msg.level));
    append(dest, "\",\"component\":");
    append_json_string(dest, std::string_view(msg.logger_name.data(), msg.logger_name.size()));
    auto split = split_fields(std::string_view(msg.payload.data(), msg.payload.size()));
    append(dest, ",\"message\":");
    append_json_string(dest, split.message);
    for (auto& [key, value] : split.fields) {
      dest.push_back(',');
      append_json_string(dest, key);
      dest.push_back(':');
      if (is_integer(value)) append(dest, value);
      else append_json_string(dest, value);
    }
    append(dest, "}\n");
  }
  std::unique_ptr<spdlog::formatter> clone() const override { return std::make_unique<JsonFormatter>(); }
};

}  // namespace

LogFormat parse_log_format(std::string_view name) {
  if (name == "text") return LogFormat::Text;
  if (name == "json") return LogFormat::Json;
  throw std::invalid_argument(fmt::format("unknown log format '{}' (use text or json)", name));
}

std::string log_value(std::string_view value) {
  auto plain = [](char c) { return static_cast<unsigned char>(c) > 0x20 && c != '"' && c != 0x7f; };
  if (!value.empty() && std::all_of(value.begin(), value.end(), plain)) return std::string(value);
  std::string out = "\"";
  for (char c : value) {
    if (c == '"') out.push_back('\'');
    else if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) out.push_back(' ');
    else out.push_back(c);
  }
  out.push_back('"');
  return out;
}

std::unique_ptr<spdlog::formatter> make_log_formatter(LogFormat format) {
  if (format == LogFormat::Json) return std::make_unique<JsonFormatter>();
  return std::make_unique<TextFormatter>();
}

void setup_logging(const std::string& level, const std::string& component, LogFormat format) {
  auto lvl = spdlog::level::from_str(level);
  if (lvl == spdlog::level::off && level != "off")
    throw std::invalid_argument(fmt::format(
        "unknown log level '{}' (use trace, debug, info, warn, error or off)", level));
  // No colours: a log line is the same bytes on a terminal and in a file or a collector.
  auto logger = spdlog::stderr_logger_mt(component);
  logger->set_formatter(make_log_formatter(format));
  logger->set_level(lvl);
  logger->flush_on(spdlog::level::warn);
  spdlog::set_default_logger(logger);
}

}  // namespace muster
