// envelope.hpp — the WebSocket envelope of the Remote Network Node API: every message is
// {"type": string, "payload": any, "timestamp": unix seconds} (docs/GATEWAY.md).
// Owns: parsing a client's text frame into an Envelope, building the server's messages, the
// gateway's `error` payload {error, code} and its codes.
// Must never: throw on client input (a bad frame is a ProtocolError the session answers).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <variant>

#include "muster/value_json.hpp"

namespace muster::gateway {

// `error` codes the gateway itself sends (calls add muster's own: NO_WORKER, TIMEOUT, ...).
namespace codes {
inline constexpr std::string_view kInvalidMessage = "INVALID_MESSAGE";  // not an envelope
inline constexpr std::string_view kUnknownType = "UNKNOWN_TYPE";        // type not served
inline constexpr std::string_view kInvalidRequest = "INVALID_REQUEST";  // payload unacceptable
inline constexpr std::string_view kPermissionDenied = "PERMISSION_DENIED";
inline constexpr std::string_view kNotFound = "NOT_FOUND";              // unknown execution id
inline constexpr std::string_view kUnavailable = "UNAVAILABLE";         // musterd unreachable
inline constexpr std::string_view kTooManyExecutions = "TOO_MANY_EXECUTIONS";
}  // namespace codes

struct Envelope {
  std::string type;
  Json payload;                // null when absent
  std::int64_t timestamp = 0;  // 0 when absent
};

struct ProtocolError {
  std::string error;  // for the client and the log; never echoes the frame
  std::string code;
};

// A client's text frame. Text nested deeper than kMaxJsonDepth is refused before parsing.
std::variant<Envelope, ProtocolError> parse_envelope(std::string_view text);

// The serialized message {"type", "payload", "timestamp"}.
std::string make_message(std::string_view type, const Json& payload, std::int64_t unix_seconds);
// The same bytes, appended to `out` (a buffer the caller reuses).
void append_message(std::string& out, std::string_view type, const Json& payload, std::int64_t unix_seconds);
// The `error` payload.
Json error_payload(std::string_view error, std::string_view code);

std::int64_t unix_now();

}  // namespace muster::gateway
