// duration.hpp — human durations for token lifetimes and the CLI's times: `30s`, `10m`, `24h`,
// `7d`, `2w`, sums of them such as `1h30m`, and (parse_duration_ms) `500ms`.
// Owns: the accepted syntax and its limits.
// Must never: accept a bare number (ambiguous unit), zero, a negative, or a value that
// overflows.
#pragma once

#include <chrono>
#include <string>
#include <string_view>

namespace muster::keys {

// The longest duration accepted: 10 years.
inline constexpr std::chrono::seconds kMaxDuration{10LL * 365 * 24 * 3600};

// Parses one or more `<digits><unit>` groups, unit one of s, m, h, d, w; the total must be in
// (0, kMaxDuration]. Throws std::invalid_argument with a message that quotes the input and
// shows valid examples.
std::chrono::seconds parse_duration(std::string_view text);

// The same syntax with `ms` as a unit too (`500ms`, `2s`, `1m`, `1h30m`, `1s500ms`), in
// milliseconds: every time the `muster` CLI takes. The total must be in (0, kMaxDuration].
// Throws std::invalid_argument as parse_duration does.
std::chrono::milliseconds parse_duration_ms(std::string_view text);

// The shortest form of the same syntax: 90s → "1m30s", 86400s → "1d", 0 → "0s".
std::string format_duration(std::chrono::seconds d);

}  // namespace muster::keys
