// exit_codes.hpp — the `muster` CLI's exit status, by class, for scripts (README "Exit codes",
// `muster help exit-codes`, the man page).
// Owns: the table and the mapping of a protocol error code to its class.
// Must never: give two classes one number, or renumber a class (scripts depend on them).
#pragma once

#include <string>
#include <string_view>

#include "muster/wire/common_generated.h"

namespace muster::cli {

enum class Exit : int {
  Ok = 0,
  Failed = 1,            // the call or query failed: the node or the daemon answered a failure
  Usage = 2,             // bad command line or bad input (JSON that does not parse, a bad duration)
  Unavailable = 3,       // no daemon at the endpoint, or the connection was lost
  Timeout = 4,           // the call's deadline passed (TIMEOUT)
  PermissionDenied = 5,  // the identity may not do this, or could not enroll (token refused...)
  Pending = 6,           // `muster job get`: the durable call has not finished yet
  Cancelled = 130,       // interrupted by SIGINT/SIGTERM (the request was cancelled on the daemon)
};

inline int code(Exit e) { return static_cast<int>(e); }

// UNAVAILABLE → Unavailable, TIMEOUT → Timeout, PERMISSION_DENIED → PermissionDenied,
// CANCELLED → Cancelled, every other failure → Failed.
Exit exit_for(wire::ErrorCode code);

// The table as text (for `muster help exit-codes` and the man page): one line per class,
// "<number>  <NAME>  <meaning>".
struct ExitRow {
  Exit exit;
  std::string_view name, meaning;
};
const ExitRow* exit_rows_begin();
const ExitRow* exit_rows_end();
std::string exit_code_table();

}  // namespace muster::cli
