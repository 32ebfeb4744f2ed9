// openapi.hpp — the OpenAPI 3.0 document of the gateway's REST routes (GET /api/openapi.json).
// Owns: the machine-readable form of docs/GATEWAY.md's "REST routes"; keep both in step.
#pragma once

#include <string>

#include "muster/value_json.hpp"

namespace muster::gateway {

Json openapi_document(const std::string& version);

}  // namespace muster::gateway
