// call_errors.hpp — how a call's muster error code shows through the gateway: the HTTP status of
// POST /api/nodes/{name}/call, and the execution status of execution.updated.
// Owns: the table in docs/GATEWAY.md ("Errors of a call"); keep both in step.
#pragma once

#include <string_view>

#include "muster/wire/common_generated.h"

namespace muster::gateway {

// NO_WORKER 404, TIMEOUT 504, WORKER_LOST 502, CANCELLED 409, INVALID_REQUEST 400,
// PERMISSION_DENIED 403, QUEUE_FULL 429, WORKER_ERROR 422, BAD_MESSAGE 400, INTERNAL 500,
// SHUTTING_DOWN 503, UNAVAILABLE 503.
int http_status_for(wire::ErrorCode code);

// "cancelled" for CANCELLED, else "failed".
std::string_view execution_status_for(wire::ErrorCode code);

}  // namespace muster::gateway
