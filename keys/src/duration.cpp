// duration.cpp — parse and format token lifetimes.
// Must never: silently wrap on overflow.
#include "muster/duration.hpp"

#include <cstdint>
#include <stdexcept>

#include <fmt/format.h>

namespace muster::keys {

namespace {
std::invalid_argument bad(std::string_view text, std::string_view why) {
  return std::invalid_argument(fmt::format(
      "invalid duration '{}': {} (examples: 30s, 10m, 24h, 7d, 2w, 1h30m)", text, why));
}
}  // namespace

std::chrono::seconds parse_duration(std::string_view text) {
  if (text.empty()) throw bad(text, "empty");
  if (text.size() > 64) throw bad(text.substr(0, 64), "too long");
  std::int64_t total = 0;
  std::size_t i = 0;
  while (i < text.size()) {
    std::size_t start = i;
    std::int64_t n = 0;
    while (i < text.size() && text[i] >= '0' && text[i] <= '9') {
      n = n * 10 + (text[i] - '0');
      if (n > kMaxDuration.count()) throw bad(text, "too long (at most 10 years)");
      ++i;
    }
    if (i == start) throw bad(text, fmt::format("expected a number at position {}", start + 1));
    if (i == text.size()) throw bad(text, "missing unit after the last number (s, m, h, d or w)");
    std::int64_t unit = 0;
    switch (text[i]) {
      case 's': unit = 1; break;
      case 'm': unit = 60; break;
      case 'h': unit = 3600; break;
      case 'd': unit = 86400; break;
      case 'w': unit = 7 * 86400; break;
      default: throw bad(text, fmt::format("unknown unit '{}' (use s, m, h, d or w)", text[i]));
    }
    ++i;
    if (n > kMaxDuration.count() / unit) throw bad(text, "too long (at most 10 years)");
    total += n * unit;
    if (total > kMaxDuration.count()) throw bad(text, "too long (at most 10 years)");
  }
  if (total == 0) throw bad(text, "must be longer than zero");
  return std::chrono::seconds(total);
}

std::string format_duration(std::chrono::seconds d) {
  std::int64_t s = d.count();
  if (s == 0) return "0s";
  std::string out;
  if (s < 0) {
    out = "-";
    s = -s;
  }
  static constexpr struct { std::int64_t secs; char unit; } units[] = {
      {7 * 86400, 'w'}, {86400, 'd'}, {3600, 'h'}, {60, 'm'}, {1, 's'}};
  for (auto [secs, unit] : units) {
    if (s >= secs) {
      out += fmt::format("{}{}", s / secs, unit);
      s %= secs;
    }
  }
  return out;
}

}  // namespace muster::keys
