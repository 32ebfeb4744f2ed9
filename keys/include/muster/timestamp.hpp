// timestamp.hpp — how the stores write points in time: ISO 8601 UTC with milliseconds,
// e.g. "2025-03-01T12:00:00.250Z".
// Owns: the one text form of a time in tokens.json, identities.json and <name>-identity.json.
// Must never: read a clock itself (callers pass `now`), or depend on the local time zone.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <string_view>

namespace muster::keys {

using Clock = std::chrono::system_clock;
using TimePoint = Clock::time_point;

// Milliseconds precision, UTC, trailing 'Z'.
std::string format_timestamp(TimePoint t);
// Accepts exactly the form format_timestamp writes (the ".mmm" part optional), for the times
// a TimePoint can hold (1677-09-22 to 2262-04-10: int64 nanoseconds); nullopt otherwise.
std::optional<TimePoint> parse_timestamp(std::string_view text);

}  // namespace muster::keys
