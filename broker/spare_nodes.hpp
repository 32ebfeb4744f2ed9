// spare_nodes.hpp — the core's name for muster::SpareNodes (transport/include/muster/spare_nodes.hpp),
// shared with the worker SDK and the client library.
#pragma once

#include "muster/spare_nodes.hpp"

namespace muster::broker {
using muster::SpareNodes;
}  // namespace muster::broker
