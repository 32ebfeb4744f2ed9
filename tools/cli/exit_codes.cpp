// exit_codes.cpp — see exit_codes.hpp.
#include "exit_codes.hpp"

#include <array>

#include <fmt/format.h>

namespace muster::cli {

namespace {
constexpr std::array<ExitRow, 8> kRows = {{
    {Exit::Ok, "ok", "the command succeeded"},
    {Exit::Failed, "failed", "the call or query failed: the node or the daemon answered a failure "
                             "(WORKER_ERROR, INVALID_REQUEST, NO_WORKER, QUEUE_FULL, ...); "
                             "`muster check`: a check failed"},
    {Exit::Usage, "usage", "bad command line or bad input (unknown option, JSON that does not "
                           "parse, a bad duration)"},
    {Exit::Unavailable, "unavailable", "no daemon answers at the endpoint, or the connection was lost (UNAVAILABLE)"},
    {Exit::Timeout, "timeout", "the call's deadline passed (TIMEOUT)"},
    {Exit::PermissionDenied, "permission", "the identity may not do this, or could not enroll (PERMISSION_DENIED)"},
    {Exit::Pending, "pending", "`muster job get`: the durable call has not finished yet (its state is on stderr)"},
    {Exit::Cancelled, "cancelled", "interrupted by Ctrl-C or SIGTERM; the request was cancelled on the daemon "
                                   "(a durable call is left running: `muster job get ID`)"},
}};
}  // namespace

Exit exit_for(wire::ErrorCode c) {
  switch (c) {
    case wire::ErrorCode::None: return Exit::Ok;
    case wire::ErrorCode::Unavailable: return Exit::Unavailable;
    case wire::ErrorCode::Timeout: return Exit::Timeout;
    case wire::ErrorCode::PermissionDenied: return Exit::PermissionDenied;
    case wire::ErrorCode::Cancelled: return Exit::Cancelled;
    default: return Exit::Failed;
  }
}

const ExitRow* exit_rows_begin() { return kRows.data(); }
const ExitRow* exit_rows_end() { return kRows.data() + kRows.size(); }

std::string exit_code_table() {
  std::string out;
  for (auto& r : kRows) out += fmt::format("{:>3}  {:<12} {}\n", code(r.exit), r.name, r.meaning);
  return out;
}

}  // namespace muster::cli
