// input_check.cpp — see input_check.hpp. The acceptable path reads the verified FlatBuffer in
// place: no Value is decoded, no string built, nothing allocated.
#include "input_check.hpp"

#include <algorithm>
#include <array>

#include <fmt/format.h>

#include "muster/wire/value_generated.h"

namespace muster::broker {

namespace {

using Kind = wire::ValueKind;

// The port types of PROTOCOL.md §5 in the order of PortCheck::Accepts.
constexpr std::array<std::string_view, 9> kTypes = {"any",    "null",  "bool", "int", "float",
                                                    "string", "bytes", "list", "map"};

// Whether a value of wire kind `k` fits a port whose type is kTypes[accepts].
bool fits(int accepts, Kind k) {
  switch (accepts) {
    case 0: return true;                                   // any
    case 1: return k == Kind::Null;                        // null
    case 2: return k == Kind::Bool;
    case 3: return k == Kind::Int;
    case 4: return k == Kind::Float || k == Kind::Int;     // an int is an exact float here
    case 5: return k == Kind::String;
    case 6: return k == Kind::Bytes || k == Kind::Chunked;  // chunked bytes (§7.9)
    case 7: return k == Kind::List;
    case 8: return k == Kind::Map;
  }
  return false;
}

std::string_view got(Kind k) { return kind_name(static_cast<ValueKind>(k)); }

int type_index(std::string_view type) {
  if (type.empty()) return 0;  // no type given: any
  auto it = std::find(kTypes.begin(), kTypes.end(), type);
  return it == kTypes.end() ? -1 : static_cast<int>(it - kTypes.begin());
}

}  // namespace

PortCheck::PortCheck(const std::vector<Port>& ports, std::string_view what) : what_(what) {
  by_name_.reserve(ports.size());
  for (auto& p : ports) {
    int t = type_index(p.type);
    Entry e;
    e.name = p.name;
    e.accepts = static_cast<Accepts>(t < 0 ? 0 : t);  // Attach refuses unknown types (unsound_port)
    e.type = kTypes[static_cast<std::size_t>(t < 0 ? 0 : t)];
    e.must_be_given = p.required && !p.default_value;
    by_name_.push_back(std::move(e));
  }
  std::sort(by_name_.begin(), by_name_.end(),
            [](const Entry& a, const Entry& b) { return a.name < b.name; });
  must_be_given_ = static_cast<std::size_t>(
      std::count_if(by_name_.begin(), by_name_.end(), [](const Entry& e) { return e.must_be_given; }));
  seen_.assign(by_name_.size(), 0);
}

const PortCheck::Entry* PortCheck::find(std::string_view name) const {
  auto it = std::lower_bound(by_name_.begin(), by_name_.end(), name,
                             [](const Entry& e, std::string_view n) { return e.name < n; });
  return it != by_name_.end() && it->name == name ? &*it : nullptr;
}

std::optional<std::string> PortCheck::check(std::span<const std::uint8_t> values) const {
  if (by_name_.empty()) return std::nullopt;  // declares none: nothing to check
  const flatbuffers::Vector<flatbuffers::Offset<wire::Entry>>* entries = nullptr;
  if (!values.empty()) entries = flatbuffers::GetRoot<wire::Values>(values.data())->entries();
  const std::uint64_t generation = ++generation_;
  std::size_t given = 0;  // distinct must-be-given ports present and not null
  if (entries) {
    for (const wire::Entry* entry : *entries) {
      std::string_view key(entry->key()->c_str(), entry->key()->size());
      const Entry* port = find(key);
      if (!port) continue;  // not declared: forwarded as it is (PROTOCOL.md §5.1)
      const wire::Value* v = entry->value();
      const Kind kind = v ? v->kind() : Kind::Null;
      if (kind == Kind::Null && port->accepts != Accepts::Any && port->accepts != Accepts::Null) {
        if (port->must_be_given)
          return fmt::format("missing required {} \"{}\" (null given; expected {})", what_, key,
                             port->type);
        continue;  // null: not given; the worker applies the default if there is one
      }
      if (!fits(static_cast<int>(port->accepts), kind))
        return fmt::format("{} \"{}\": expected {}, got {}", what_, key, port->type, got(kind));
      if (port->must_be_given) {
        auto& mark = seen_[static_cast<std::size_t>(port - by_name_.data())];
        if (mark != generation) {
          mark = generation;
          ++given;
        }
      }
    }
  }
  if (given == must_be_given_) return std::nullopt;
  for (std::size_t i = 0; i < by_name_.size(); ++i)
    if (by_name_[i].must_be_given && seen_[i] != generation)
      return fmt::format("missing required {} \"{}\" ({})", what_, by_name_[i].name, by_name_[i].type);
  return std::nullopt;  // unreachable: `given` counts exactly the marked ports
}

namespace {
// Calls `found(value)` for each Chunked value at any depth of `v`; stops at the first for which
// it returns true, and then returns true.
template <class Found>
bool find_chunked(const wire::Value* v, Found& found) {
  if (!v) return false;
  switch (v->kind()) {
    case Kind::Chunked: return found(*v);
    case Kind::List:
      if (auto* list = v->list_value())
        for (const wire::Value* item : *list)
          if (find_chunked(item, found)) return true;
      return false;
    case Kind::Map:
      if (auto* map = v->map_value())
        for (const wire::Entry* e : *map)
          if (find_chunked(e->value(), found)) return true;
      return false;
    default: return false;
  }
}

// find_chunked over every entry of `values`; false for bytes that are not a valid Values buffer.
// Verified again: the core may be handed bytes no decoder checked (its unit tests), and a buffer
// that is not Values holds no Chunked value.
template <class Found>
bool find_chunked(std::span<const std::uint8_t> values, Found&& found, bool verified = false) {
  if (values.empty()) return false;
  if (!verified) {
    flatbuffers::Verifier verifier(values.data(), values.size());
    if (!verifier.VerifyBuffer<wire::Values>(nullptr)) return false;
  }
  auto* entries = flatbuffers::GetRoot<wire::Values>(values.data())->entries();
  if (!entries) return false;
  for (const wire::Entry* e : *entries)
    if (find_chunked(e->value(), found)) return true;
  return false;
}
}  // namespace

bool holds_chunked(std::span<const std::uint8_t> values) {
  return find_chunked(values, [](const wire::Value&) { return true; });
}

std::vector<ChunkedRef> chunked_refs(std::span<const std::uint8_t> values, bool verified) {
  std::vector<ChunkedRef> refs;
  find_chunked(values, [&](const wire::Value& v) {
    refs.push_back(ChunkedRef{v.chunked_stream(), v.chunked_size()});
    return false;  // all of them
  }, verified);
  return refs;
}

InputCheck::InputCheck(const NodeSpec& spec)
    : node_(spec.name), inputs_(spec.inputs, "input"), parameters_(spec.parameters, "parameter") {}

std::optional<std::string> InputCheck::check(std::span<const std::uint8_t> inputs,
                                             std::span<const std::uint8_t> parameters) const {
  auto problem = inputs_.check(inputs);
  if (!problem) problem = parameters_.check(parameters);
  if (!problem) return std::nullopt;
  return fmt::format("node '{}': {}", node_, *problem);
}

std::optional<std::string> unsound_port(const NodeSpec& spec) {
  auto check = [&](const std::vector<Port>& ports, std::string_view what) -> std::optional<std::string> {
    for (auto& p : ports) {
      int t = type_index(p.type);
      if (t < 0)
        return fmt::format("node '{}': {} \"{}\" has unknown type \"{}\" (one of any, null, bool, "
                           "int, float, string, bytes, list, map)",
                           spec.name, what, p.name, p.type);
      if (p.default_value && !p.default_value->is_null() &&
          !fits(t, static_cast<Kind>(p.default_value->kind())))
        return fmt::format("node '{}': {} \"{}\": the default is {}, the type {}", spec.name,
                           what, p.name, kind_name(p.default_value->kind()), p.type);
    }
    return std::nullopt;
  };
  if (auto p = check(spec.inputs, "input")) return p;
  if (auto p = check(spec.outputs, "output")) return p;
  return check(spec.parameters, "parameter");
}

}  // namespace muster::broker
