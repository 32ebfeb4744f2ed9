// duration.cpp — parse and format token lifetimes.
// Must never: silently wrap on overflow.
#include "muster/duration.hpp"

#include <cstdint>
#include <stdexcept>

#include <fmt/format.h>

namespace muster::keys {

namespace {

// The one parser: `<digits><unit>` groups summed in milliseconds; `ms` only if allowed.
std::int64_t parse_ms(std::string_view text, bool allow_ms) {
  const std::string_view examples =
      allow_ms ? "examples: 500ms, 2s, 1m, 1h30m, 7d" : "examples: 30s, 10m, 24h, 7d, 2w, 1h30m";
  auto bad = [&](std::string_view shown, std::string_view why) {
    return std::invalid_argument(fmt::format("invalid duration '{}': {} ({})", shown, why, examples));
  };
  const std::string_view units = allow_ms ? "ms, s, m, h, d or w" : "s, m, h, d or w";
  const std::int64_t max_ms = kMaxDuration.count() * 1000;
  if (text.empty()) throw bad(text, "empty");
  if (text.size() > 64) throw bad(text.substr(0, 64), "too long");
  std::int64_t total = 0;
  std::size_t i = 0;
  while (i < text.size()) {
    std::size_t start = i;
    std::int64_t n = 0;
    while (i < text.size() && text[i] >= '0' && text[i] <= '9') {
      n = n * 10 + (text[i] - '0');
      if (n > max_ms) throw bad(text, "too long (at most 10 years)");
      ++i;
    }
    if (i == start) throw bad(text, fmt::format("expected a number at position {}", start + 1));
    if (i == text.size()) throw bad(text, fmt::format("missing unit after the last number ({})", units));
    std::int64_t unit = 0;
    if (allow_ms && text.substr(i, 2) == "ms") {
      unit = 1;
      ++i;
    } else {
      switch (text[i]) {
        case 's': unit = 1000; break;
        case 'm': unit = 60'000; break;
        case 'h': unit = 3'600'000; break;
        case 'd': unit = 86'400'000; break;
        case 'w': unit = 7 * 86'400'000LL; break;
        default: throw bad(text, fmt::format("unknown unit '{}' (use {})", text[i], units));
      }
    }
    ++i;
    if (n > max_ms / unit) throw bad(text, "too long (at most 10 years)");
    total += n * unit;
    if (total > max_ms) throw bad(text, "too long (at most 10 years)");
  }
  if (total == 0) throw bad(text, "must be longer than zero");
  return total;
}
}  // namespace

std::chrono::seconds parse_duration(std::string_view text) {
  return std::chrono::seconds(parse_ms(text, false) / 1000);
}

std::chrono::milliseconds parse_duration_ms(std::string_view text) {
  return std::chrono::milliseconds(parse_ms(text, true));
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
