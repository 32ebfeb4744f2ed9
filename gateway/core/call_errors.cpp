// call_errors.cpp — see call_errors.hpp.
#include "muster/gateway/call_errors.hpp"

namespace muster::gateway {

int http_status_for(wire::ErrorCode code) {
  using E = wire::ErrorCode;
  switch (code) {
    case E::None: return 200;
    case E::NoWorker: return 404;
    case E::Timeout: return 504;
    case E::WorkerLost: return 502;
    case E::Cancelled: return 409;
    case E::InvalidRequest: return 400;
    case E::PermissionDenied: return 403;
    case E::QueueFull: return 429;
    case E::WorkerError: return 422;
    case E::BadMessage: return 400;
    case E::Internal: return 500;
    case E::ShuttingDown: return 503;
    case E::Unavailable: return 503;
  }
  return 500;
}

std::string_view execution_status_for(wire::ErrorCode code) {
  return code == wire::ErrorCode::Cancelled ? "cancelled" : "failed";
}

}  // namespace muster::gateway
