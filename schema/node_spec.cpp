// node_spec.cpp — NodeSpec <-> FlatBuffers and JSON; name rules.
#include "muster/node_spec.hpp"

#include <algorithm>
#include <array>

#include <stdexcept>

#include <fmt/format.h>

#include "muster/utf8.hpp"
#include "muster/wire/common_generated.h"

namespace muster {

namespace {
bool all_of_charset(std::string_view s, std::string_view extra) {
  return std::all_of(s.begin(), s.end(), [&](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           extra.find(c) != std::string_view::npos;
  });
}
// Every string of a spec ends up in listings (JSON): it must be UTF-8 (PROTOCOL.md §4).
std::string str(const flatbuffers::String* s) {
  if (!s) return std::string();
  std::string_view text(s->c_str(), s->size());
  if (!valid_utf8(text)) throw std::runtime_error("a string in the node spec is not valid UTF-8");
  return std::string(text);
}
}  // namespace

bool valid_node_name(std::string_view n) {
  return !n.empty() && n.size() <= 128 && all_of_charset(n, "_.:-");
}
bool valid_worker_id(std::string_view id) {
  return !id.empty() && id.size() <= 64 && all_of_charset(id, "_.-");
}
bool valid_port_type(std::string_view t) {
  static constexpr std::array<std::string_view, 9> types = {
      "any", "null", "bool", "int", "float", "string", "bytes", "list", "map"};
  return std::find(types.begin(), types.end(), t) != types.end();
}

namespace {
flatbuffers::Offset<flatbuffers::Vector<flatbuffers::Offset<wire::Port>>> encode_ports(
    flatbuffers::FlatBufferBuilder& fbb, const std::vector<Port>& ports) {
  std::vector<flatbuffers::Offset<wire::Port>> out;
  out.reserve(ports.size());
  for (auto& p : ports) {
    auto name = fbb.CreateString(p.name);
    auto type = fbb.CreateString(p.type);
    auto desc = fbb.CreateString(p.description);
    flatbuffers::Offset<wire::Value> def;
    if (p.default_value) def = encode_value(fbb, *p.default_value);
    wire::PortBuilder b(fbb);
    b.add_name(name);
    b.add_type(type);
    b.add_description(desc);
    b.add_required(p.required);
    if (p.default_value) b.add_default_value(def);
    out.push_back(b.Finish());
  }
  return fbb.CreateVector(out);
}

std::vector<Port> decode_ports(const flatbuffers::Vector<flatbuffers::Offset<wire::Port>>* ports) {
  std::vector<Port> out;
  if (!ports) return out;
  out.reserve(ports->size());
  for (auto* p : *ports) {
    Port port;
    port.name = str(p->name());
    port.type = p->type() ? str(p->type()) : "any";
    port.description = str(p->description());
    port.required = p->required();
    if (p->default_value()) port.default_value = decode_value(p->default_value());
    out.push_back(std::move(port));
  }
  return out;
}
}  // namespace

flatbuffers::Offset<wire::NodeSpec> encode_node_spec(flatbuffers::FlatBufferBuilder& fbb,
                                                     const NodeSpec& s) {
  auto name = fbb.CreateString(s.name);
  auto desc = fbb.CreateString(s.description);
  auto cat = fbb.CreateString(s.category);
  auto ver = fbb.CreateString(s.version);
  auto in = encode_ports(fbb, s.inputs);
  auto out = encode_ports(fbb, s.outputs);
  auto params = encode_ports(fbb, s.parameters);
  wire::NodeSpecBuilder b(fbb);
  b.add_name(name);
  b.add_description(desc);
  b.add_category(cat);
  b.add_version(ver);
  b.add_inputs(in);
  b.add_outputs(out);
  b.add_parameters(params);
  b.add_idempotent(s.idempotent);
  b.add_default_timeout_ms(s.default_timeout_ms);
  b.add_durable(s.durable);
  return b.Finish();
}

NodeSpec decode_node_spec(const wire::NodeSpec* s) {
  NodeSpec spec;
  if (!s) return spec;
  spec.name = str(s->name());
  spec.description = str(s->description());
  spec.category = str(s->category());
  spec.version = str(s->version());
  spec.inputs = decode_ports(s->inputs());
  spec.outputs = decode_ports(s->outputs());
  spec.parameters = decode_ports(s->parameters());
  spec.idempotent = s->idempotent();
  spec.default_timeout_ms = s->default_timeout_ms();
  spec.durable = s->durable();
  return spec;
}

Json to_json(const Port& p) {
  Json j = {{"name", p.name}, {"type", p.type}};
  if (!p.description.empty()) j["description"] = p.description;
  if (p.required) j["required"] = true;
  if (p.default_value) {
    try {
      j["default"] = to_json(*p.default_value);
    } catch (const std::invalid_argument& e) {
      throw std::invalid_argument(fmt::format("port '{}': default: {}", p.name, e.what()));
    }
  }
  return j;
}

Json to_json(const NodeSpec& s) {
  auto ports = [](const std::vector<Port>& ps) {
    auto a = Json::array();
    for (auto& p : ps) a.push_back(to_json(p));
    return a;
  };
  Json j = {{"name", s.name}};
  if (!s.description.empty()) j["description"] = s.description;
  if (!s.category.empty()) j["category"] = s.category;
  if (!s.version.empty()) j["version"] = s.version;
  j["inputs"] = ports(s.inputs);
  j["outputs"] = ports(s.outputs);
  j["parameters"] = ports(s.parameters);
  j["idempotent"] = s.idempotent;
  j["default_timeout_ms"] = s.default_timeout_ms;
  if (s.durable) j["durable"] = true;  // only when set: listings of other nodes are unchanged
  return j;
}

}  // namespace muster
