// node_spec.hpp — muster::NodeSpec, the C++ form of a node declaration (schema/common.fbs),
// its FlatBuffers encoding and its JSON form for listings.
// Owns: name rules for nodes and worker ids.
// Must never: accept a name the protocol forbids (PROTOCOL.md §5).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <flatbuffers/flatbuffers.h>
#include <nlohmann/json.hpp>

#include "muster/value.hpp"
#include "muster/value_json.hpp"

namespace muster {

namespace wire {
struct NodeSpec;
}

struct Port {
  std::string name;
  std::string type = "any";
  std::string description;
  bool required = false;
  std::optional<Value> default_value;
  friend bool operator==(const Port&, const Port&) = default;
};

struct NodeSpec {
  std::string name;
  std::string description;
  std::string category;
  std::string version;
  std::vector<Port> inputs;
  std::vector<Port> outputs;
  std::vector<Port> parameters;
  bool idempotent = false;
  std::uint64_t default_timeout_ms = 0;
  bool durable = false;  // every call to the node is durable (docs/DURABILITY.md)
  friend bool operator==(const NodeSpec&, const NodeSpec&) = default;
};

bool valid_node_name(std::string_view name);   // [A-Za-z0-9_.:-]{1,128}
bool valid_worker_id(std::string_view id);     // [A-Za-z0-9_.-]{1,64}
bool valid_port_type(std::string_view type);

flatbuffers::Offset<wire::NodeSpec> encode_node_spec(flatbuffers::FlatBufferBuilder& fbb,
                                                     const NodeSpec& spec);
// Throws std::runtime_error if a string in the spec is not valid UTF-8 (see decode_value).
NodeSpec decode_node_spec(const wire::NodeSpec* spec);

// Throw std::invalid_argument if a port default has no JSON form (a non-finite float, see
// value_json.hpp), naming the port. The daemon refuses such specs at attach, so listings of
// what it accepted always convert.
Json to_json(const Port& p);
Json to_json(const NodeSpec& spec);

}  // namespace muster
