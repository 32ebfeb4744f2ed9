// fuzz_value_json.cpp — libFuzzer target: JSON text (the CLI's inputs, the bridge's inputs and
// outputs) through map_from_json_text, then the round trips PROTOCOL.md §4 promises:
// JSON -> Value -> JSON -> Value is the identity on values, and Value -> Values buffer ->
// Value too.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <span>
#include <string_view>

#include "muster/messages.hpp"
#include "muster/value.hpp"
#include "muster/value_json.hpp"

using namespace muster;

namespace {
[[noreturn]] void violation(const char* what) {
  std::fprintf(stderr, "PROPERTY VIOLATED: %s\n", what);
  std::abort();
}

// How deep the Verifier counts the tables of a value: one for the Value, one more per Entry.
std::size_t tables(const Value& v) {
  std::size_t deepest = 0;
  if (v.kind() == ValueKind::List)
    for (auto& x : v.as_list()) deepest = std::max(deepest, tables(x));
  if (v.kind() == ValueKind::Map)
    for (auto& [k, x] : v.as_map()) deepest = std::max(deepest, 1 + tables(x));
  return 1 + deepest;
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  Map m;
  try {
    m = map_from_json_text(text);
  } catch (const std::invalid_argument&) {
    return 0;  // refused with a message, as documented
  }
  // JSON numbers are finite, so every value read from JSON has a JSON form.
  std::string dumped = to_json(m).dump();
  Map again = map_from_json_text(dumped);
  if (!(again == m)) violation("JSON -> Value -> JSON -> Value changed the value");
  // JSON may nest deeper (kMaxJsonDepth levels) than a Values buffer (kVerifierMaxDepth
  // tables, two per map level): the reader refuses exactly those.
  auto bytes = encode_values(m);
  Map decoded;
  try {
    decoded = decode_values(std::span<const std::uint8_t>(bytes));
  } catch (const std::runtime_error&) {
    if (tables(Value(m)) <= kVerifierMaxDepth) violation("a Values buffer of a JSON value was refused");
    return 0;
  }
  if (tables(Value(m)) > kVerifierMaxDepth) violation("a Values buffer deeper than the limit was read");
  if (!(decoded == m)) violation("Value -> Values buffer -> Value changed the value");
  return 0;
}
