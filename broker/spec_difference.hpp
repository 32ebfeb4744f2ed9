// spec_difference.hpp — how two declarations of the same node differ, in words, for the
// refusal of an Attach that declares a node differently from the workers already serving it
// (docs/PROTOCOL.md §5.1).
// Owns: the order in which fields are compared and how a difference is worded.
// Must never: decide whether a difference is allowed (BrokerCore::on_attach does).
#pragma once

#include <optional>
#include <string>

#include "muster/node_spec.hpp"

namespace muster::broker {

// nullopt if `served` and `declared` are equal; else the first difference, worded from the
// point of view of the new declaration, e.g.
//   input "name": type int, served as string
//   input "extra": not declared by the workers serving it
//   version "2.0.0", served as "1.0.0"
std::optional<std::string> spec_difference(const NodeSpec& served, const NodeSpec& declared);

}  // namespace muster::broker
