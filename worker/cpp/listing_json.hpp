// listing_json.hpp — (private to the C++ client library) the JSON shapes of the tables musterd
// lists and pushes: NodeInfo, WorkerInfo, CallInfo (`muster nodes|workers --json`, `muster watch
// --json`, docs/PROTOCOL.md §8).
// Must never: throw on a table from a newer or foreign daemon (absent fields read as defaults).
#pragma once

#include <optional>

#include "muster/value_json.hpp"
#include "muster/wire/reply_generated.h"

namespace muster {

// nullopt: a spec with no JSON form (a string not UTF-8, a non-finite default), left out so one
// worker cannot break the listing for everyone; musterd refuses such specs at attach.
std::optional<Json> node_info_json(const wire::NodeInfo* n);
Json worker_info_json(const wire::WorkerInfo* w);
Json call_info_json(const wire::CallInfo* c);

}  // namespace muster
