// input_check.hpp — musterd's check of a Submit's inputs and parameters against the ports the
// node declares (docs/PROTOCOL.md §5.1): types and required ports.
// Owns: the rules "what a node's ports accept" and the wording of the refusal, which every
// client sees the same whatever language the worker is written in.
// Must never: allocate, copy or decode values when the payload is acceptable (it runs on every
// Submit, before dispatch); touch a socket; fill defaults (the worker SDKs do, §5.1).
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "muster/node_spec.hpp"

namespace muster::broker {

// The ports of one kind (a node's inputs, or its parameters), indexed for checking a payload
// in O(entries · log ports) without allocating.
class PortCheck {
 public:
  PortCheck() = default;
  // `what` names the kind in messages: "input" or "parameter".
  PortCheck(const std::vector<Port>& ports, std::string_view what);

  // `values`: a verified nested `Values` buffer (as read_client_message hands it out), or
  // empty for none. nullopt when acceptable, else why not, naming the port:
  //   input "name": expected string, got int
  //   missing required input "name" (string)
  // Rules: a port of type "any" takes every kind; "float" also takes int; null counts as not
  // given (fine for an optional port or one with a default, refused for a required one
  // without a default). Names the node does not declare are not checked: they are forwarded.
  std::optional<std::string> check(std::span<const std::uint8_t> values) const;

 private:
  enum class Accepts : std::uint8_t { Any, Null, Bool, Int, Float, String, Bytes, List, Map };
  struct Entry {
    std::string name;
    Accepts accepts = Accepts::Any;
    bool must_be_given = false;  // required and without a default
    std::string_view type;       // the declared type, for messages (static storage)
  };
  const Entry* find(std::string_view name) const;

  std::string what_;
  std::vector<Entry> by_name_;               // sorted by name
  std::size_t must_be_given_ = 0;            // entries with must_be_given
  // seen_[i] == generation_: port i was given in the payload being checked. Sized once here,
  // so a check marks ports without allocating (the core is single-threaded).
  mutable std::vector<std::uint64_t> seen_;
  mutable std::uint64_t generation_ = 0;
};

// A node's inputs and parameters.
class InputCheck {
 public:
  InputCheck() = default;
  explicit InputCheck(const NodeSpec& spec);
  // nullopt when both are acceptable; else `node 'NAME': <PortCheck's message>`.
  std::optional<std::string> check(std::span<const std::uint8_t> inputs,
                                   std::span<const std::uint8_t> parameters) const;

 private:
  std::string node_;
  PortCheck inputs_, parameters_;
};

// Whether `values` (a nested `Values` buffer, or empty) holds a Chunked value (PROTOCOL.md
// §7.9), at any depth of its lists and maps; false for bytes that are not a valid Values
// buffer. Verifies and reads in place, allocates nothing.
bool holds_chunked(std::span<const std::uint8_t> values);

// The stream and size of every Chunked value in `values` at any depth, in the order met; none
// for bytes that are not a valid Values buffer (a worker's Result naming its output streams,
// PROTOCOL.md §7.9 daemon rule R8). `verified`: the caller knows `values` is a verified Values
// buffer (Payload::verified_values), so it is read without verifying it again (a Result's
// outputs are scanned on every answer: verifying them twice was ~500 instructions per call).
struct ChunkedRef {
  std::uint32_t stream = 0;
  std::uint64_t size = 0;
};
std::vector<ChunkedRef> chunked_refs(std::span<const std::uint8_t> values, bool verified = false);

// Why a declared port cannot work (checked at Attach): a type that is not a port type, or a
// default of a kind its type does not take. nullopt if every port of `spec` is sound.
std::optional<std::string> unsound_port(const NodeSpec& spec);

}  // namespace muster::broker
