// fuzz_values.cpp — libFuzzer target: a nested `Values` payload (the inputs, parameters and
// outputs every worker SDK and the client library decode) through decode_values, then the
// properties PROTOCOL.md §4 promises: re-encoding is stable (decode∘encode is the identity on
// what was decoded) and the JSON form reads back to the same value.
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <span>
#include <string>

#include "muster/value.hpp"
#include "muster/value_json.hpp"

using namespace muster;

namespace {
[[noreturn]] void violation(const char* what) {
  std::fprintf(stderr, "PROPERTY VIOLATED: %s\n", what);
  std::abort();
}

// True if the value has no JSON form: a non-finite float (documented in value_json.hpp). A
// string that is not UTF-8 never gets here: decode_values refuses it (PROTOCOL.md §4), so the
// JSON text of everything decoded must dump without nlohmann's type_error.
bool has_no_json_form(const Value& v) {
  switch (v.kind()) {
    case ValueKind::Float: return !std::isfinite(std::get<double>(v.v));
    case ValueKind::List:
      for (auto& x : v.as_list())
        if (has_no_json_form(x)) return true;
      return false;
    case ValueKind::Map: {
      auto& m = v.as_map();
      // A map whose only entry is "$bytes" with a string or "$error" with a map reads back from
      // JSON as Bytes / Error (PROTOCOL.md §4): it has no faithful JSON form (finding in
      // RELIABILITY.md, "JSON is not one to one for {$bytes}/{$error} maps").
      if (m.size() == 1) {
        auto& [k, x] = *m.begin();
        if ((k == "$bytes" && x.kind() == ValueKind::String) || (k == "$error" && x.kind() == ValueKind::Map))
          return true;
      }
      for (auto& [k, x] : m)
        if (has_no_json_form(x)) return true;
      return false;
    }
    default: return false;
  }
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  Map m;
  try {
    m = decode_values(std::span<const std::uint8_t>(data, size));
  } catch (const std::runtime_error&) {
    return 0;  // refused, as documented
  }
  auto once = encode_values(m);
  Map again = decode_values(std::span<const std::uint8_t>(once));
  if (encode_values(again) != once) violation("Values re-encoding is not stable");
  if (!has_no_json_form(Value(m))) {
    Json j = to_json(m);
    Map back = map_from_json_text(j.dump());
    if (encode_values(back) != once) violation("Values -> JSON -> Values changed the value");
  }
  return 0;
}
