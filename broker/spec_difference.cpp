// spec_difference.cpp — see spec_difference.hpp.
#include "spec_difference.hpp"

#include <algorithm>

#include <fmt/format.h>

namespace muster::broker {

namespace {

std::string shown(const std::optional<Value>& v) {
  if (!v) return "none";
  try {
    return to_json(*v).dump();
  } catch (const std::exception&) {
    return std::string(kind_name(v->kind()));
  }
}

template <class T>
std::optional<std::string> field(std::string_view what, const T& served, const T& declared) {
  if (served == declared) return std::nullopt;
  return fmt::format("{} {}, served as {}", what, nlohmann::json(declared).dump(),
                     nlohmann::json(served).dump());
}

std::optional<std::string> ports(std::string_view what, const std::vector<Port>& served,
                                 const std::vector<Port>& declared) {
  auto find = [](const std::vector<Port>& ps, const std::string& name) {
    return std::find_if(ps.begin(), ps.end(), [&](const Port& p) { return p.name == name; });
  };
  for (auto& d : declared) {
    auto s = find(served, d.name);
    if (s == served.end())
      return fmt::format("{} \"{}\": not declared by the workers serving it", what, d.name);
    auto prefix = fmt::format("{} \"{}\": ", what, d.name);
    if (auto diff = field("type", s->type, d.type)) return prefix + *diff;
    if (auto diff = field("required", s->required, d.required)) return prefix + *diff;
    if (!(s->default_value == d.default_value))
      return prefix + fmt::format("default {}, served as {}", shown(d.default_value), shown(s->default_value));
    if (auto diff = field("description", s->description, d.description)) return prefix + *diff;
  }
  for (auto& s : served)
    if (find(declared, s.name) == declared.end())
      return fmt::format("{} \"{}\": declared by the workers serving it, missing here", what, s.name);
  if (!(served == declared)) return fmt::format("{}s declared in a different order", what);
  return std::nullopt;
}

}  // namespace

std::optional<std::string> spec_difference(const NodeSpec& served, const NodeSpec& declared) {
  if (served == declared) return std::nullopt;
  if (auto d = ports("input", served.inputs, declared.inputs)) return d;
  if (auto d = ports("parameter", served.parameters, declared.parameters)) return d;
  if (auto d = ports("output", served.outputs, declared.outputs)) return d;
  if (auto d = field("version", served.version, declared.version)) return d;
  if (auto d = field("idempotent", served.idempotent, declared.idempotent)) return d;
  if (auto d = field("durable", served.durable, declared.durable)) return d;
  if (auto d = field("default_timeout_ms", served.default_timeout_ms, declared.default_timeout_ms)) return d;
  if (auto d = field("category", served.category, declared.category)) return d;
  if (auto d = field("description", served.description, declared.description)) return d;
  return "the declarations differ";  // unreachable while the fields above cover NodeSpec
}

}  // namespace muster::broker
