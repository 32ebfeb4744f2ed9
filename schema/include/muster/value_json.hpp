// value_json.hpp — the one-to-one mapping between muster::Value and JSON (docs/PROTOCOL.md §4).
// Owns: how bytes ({"$bytes": base64}), errors ({"$error": {...}}) and chunked values
// ({"$chunked": {"stream", "size", "sha256": hex}}) look in JSON, and how
// numbers keep their int/float kind.
// Must never: accept JSON it cannot map back exactly; non-finite floats are refused.
#pragma once

#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "muster/value.hpp"

namespace muster {

// JSON with insertion order kept, so maps keep their order through JSON too.
using Json = nlohmann::ordered_json;

// JSON may nest arrays and objects at most this deep (the outermost counts as 1): deeper than
// any value a Values buffer carries (verified at depth 128, one table per list level), shallow
// enough that no parser or converter runs out of stack (PROTOCOL.md §10).
inline constexpr std::size_t kMaxJsonDepth = 128;

// True if `text` nests arrays and objects deeper than `max_depth` (strings skipped; the text
// need not be valid JSON). Text from outside is checked with this before it is parsed.
bool json_too_deep(std::string_view text, std::size_t max_depth = kMaxJsonDepth);

Json to_json(const Value& v);
Json to_json(const Map& m);
// Throws std::invalid_argument with a message naming the offending path (also for JSON nested
// deeper than kMaxJsonDepth).
Value from_json(const Json& j);
// Parses text; throws std::invalid_argument on bad JSON, JSON nested deeper than
// kMaxJsonDepth, or a top level that is not an object.
Map map_from_json_text(std::string_view text);

std::string base64_encode(const Bytes& b);
// Throws std::invalid_argument on bad input.
Bytes base64_decode(std::string_view s);

}  // namespace muster
