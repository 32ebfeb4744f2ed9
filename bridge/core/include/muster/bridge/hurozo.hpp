// hurozo.hpp — the Hurozo remote-node contract as data: register requests and replies, the
// node listing, error bodies, and the WebSocket `remote_node` event and its reply
// (shared/reference/hurozo-remote-nodes.md).
// Owns: validation order and exact error strings of POST /api/remote_nodes/register, how
// outputs are mapped by name (a missing or misnamed key gives null), the uuid format.
// Must never: throw on hostile input (bad JSON, wrong types); everything parses to a result
// or a reason.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "muster/bridge/registration_store.hpp"
#include "muster/value.hpp"
#include "muster/value_json.hpp"

namespace muster::bridge {

inline constexpr std::string_view kMissingOrInvalidName = "Missing or invalid name";
inline constexpr std::string_view kAtLeastOneOutput = "At least one output required";
inline constexpr std::string_view kInvalidInputs = "inputs must be a list of strings";
inline constexpr std::string_view kInvalidOutputs = "outputs must be a list of strings";

struct RegisterRequest {
  std::string name;
  std::vector<std::string> inputs;
  std::vector<std::string> outputs;
};

struct ApiError {
  int status = 400;
  std::string error;
};

// Body of POST /api/remote_nodes/register. Checks, in order: name (a non-empty string
// without "/"), then outputs (at least one), then that inputs/outputs hold strings. A body
// that is not a JSON object counts as a missing name. Duplicate port names are dropped.
std::variant<RegisterRequest, ApiError> parse_register_request(std::string_view body);

// JSON text from the network (HTTP bodies, WebSocket messages): discarded (is_discarded())
// if it is not JSON or nests deeper than kMaxJsonDepth (value_json.hpp), never an exception.
Json parse_json(std::string_view text);

// JSON text; invalid UTF-8 in strings (possible in muster values) becomes U+FFFD instead of
// throwing.
std::string dump_json(const Json& j);

// {"error": message}
Json error_body(std::string_view message);
// {"status": "registered", "websocket_url", "token", "inputs", "outputs"}
Json register_response(const Registration& r, const std::string& websocket_url, const std::string& token);
// {"nodes": [{"name", "inputs", "outputs"}...]}
Json list_response(const std::vector<Registration>& regs);
// {"name", "inputs", "outputs"} — also the uplink's registration payload.
Json register_payload(const RegisterRequest& r);

// ---- WebSocket messages -----------------------------------------------------------------

// The event the backend sends: {"node", "inputs", "uuid"}.
struct RemoteEvent {
  std::string node;
  Json inputs;  // an object (a missing or non-object "inputs" reads as {})
  std::string uuid;
};
// The worker's answer: {"node", "outputs", "uuid"}.
struct RemoteReply {
  std::string node;  // may be empty: only the uuid correlates
  Json outputs;      // an object, or null when missing / not an object
  std::string uuid;
};

Json event_message(const RemoteEvent& e);
Json reply_message(const RemoteReply& r);

// A message is an event if it is a JSON object with a string "node" and a string (or
// number) "uuid". Otherwise the string says why it is not (for the log).
std::variant<RemoteEvent, std::string> parse_event(std::string_view text);
// A message is a reply if it is a JSON object with a string (or number) "uuid".
std::variant<RemoteReply, std::string> parse_reply(std::string_view text);

// Host side: the outputs a caller gets, one entry per registered output in registration
// order; a key the worker did not send (or misnamed) is null, extra keys are dropped. A value
// that does not map onto a muster Value (e.g. a malformed {"$bytes": ...}) is kept as its
// JSON text. `missing` (if given) receives the registered names the worker did not send.
Map outputs_from_reply(const std::vector<std::string>& registered, const Json& outputs,
                       std::vector<std::string>* missing = nullptr);

// Uplink side: the outputs object sent back, with exactly the registered keys in order; a
// key the muster node did not return is null.
Json outputs_for_reply(const std::vector<std::string>& registered, const Map& outputs);
// {key: null, ...} for every registered output (the uplink's answer to a failed call).
Json null_outputs(const std::vector<std::string>& registered);

// Host side: the inputs sent to the worker: the registered inputs in order (null when the
// caller gave none), then any other inputs the caller gave.
Json inputs_for_event(const std::vector<std::string>& registered, const Map& inputs);

// A random RFC 4122 version 4 uuid, lower-case hex with dashes.
std::string new_uuid();

// Glob match with '*' and '?' (for the uplink's --node selection).
bool glob_match(std::string_view pattern, std::string_view text);

}  // namespace muster::bridge
