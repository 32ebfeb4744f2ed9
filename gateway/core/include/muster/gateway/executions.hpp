// executions.hpp — node calls through the gateway as the reference's executions: what
// execution.start and execution.cancel carry, what execution.updated reports, and the
// latency window behind node.status' percentiles.
// Owns: validation of a call request from a client (WebSocket or REST), the execution.updated
// payload shape.
// Must never: touch a socket or a clock.
#pragma once

#include <array>
#include <cstdint>
#include <deque>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <variant>

#include "muster/value.hpp"
#include "muster/value_json.hpp"

namespace muster::gateway {

// A top-level input read from an uploaded file as the call runs, sent chunked (PROTOCOL.md
// §7.9) straight from the file on disk: never held whole by the gateway or musterd.
struct FileInput {
  std::string port;
  std::filesystem::path path;
  std::uint64_t size = 0;
  std::array<std::uint8_t, 32> sha256{};  // the upload's: the worker checks the bytes against it
};

struct CallRequest {
  std::string node;
  Map inputs, parameters;
  std::vector<FileInput> file_inputs;  // bytes inputs besides `inputs`, read from files
  std::uint64_t timeout_ms = 0;  // 0: the node's default
  Json client_ref;               // echoed back as given (null when absent)
};

// Rewrites a call's inputs (as JSON) before they become muster values, e.g. file references
// into bytes, or (taken out of the JSON) into `streamed` file inputs; returns the error to
// refuse the call with.
using InputsRewriter = std::function<std::optional<std::string>(Json& inputs, std::vector<FileInput>& streamed)>;

// execution.start's payload {node, inputs, parameters, timeout_ms, client_ref}; or the error.
std::variant<CallRequest, std::string> parse_execution_start(const Json& payload, const InputsRewriter& rewrite = {});
// The body of POST /api/nodes/{node}/call: {inputs, parameters, timeout_ms} (all optional).
std::variant<CallRequest, std::string> parse_rest_call(const std::string& node, std::string_view body,
                                                       const InputsRewriter& rewrite = {});
// execution.cancel's payload {execution_id}.
std::variant<std::uint64_t, std::string> parse_execution_cancel(const Json& payload);

// One execution's state as execution.updated reports it.
struct ExecutionState {
  std::uint64_t execution_id = 0;
  std::string node;
  Json client_ref;
  std::string status = "pending";  // pending, running, completed, failed, cancelled
  std::uint64_t step = 0, total = 0;
  std::string message;
  Json outputs;                   // null until completed
  std::string error_code, error_message;
  std::int64_t started_at = 0, completed_at = 0;  // unix seconds; completed_at 0 until terminal
};
// `take_outputs`: move the outputs into the payload (the state is not reported again).
Json execution_payload(ExecutionState& s, bool take_outputs = false);
// The whole execution.updated message for `s`, appended to `out`: the same bytes as
// make_message("execution.updated", execution_payload(s), unix_seconds), written directly
// (one or more per call: no Json tree, no new string).
void append_execution_updated(std::string& out, const ExecutionState& s, std::int64_t unix_seconds);

// The last `capacity` call durations (µs) and the count of calls; percentiles over the window.
class LatencyWindow {
 public:
  explicit LatencyWindow(std::size_t capacity = 4096) : capacity_(capacity) {}
  void add(std::uint64_t micros);
  // {"count", "p50_us", "p90_us", "p99_us"} (0 when empty).
  Json summary() const;

 private:
  std::size_t capacity_;
  std::deque<std::uint64_t> window_;
  std::uint64_t count_ = 0;
};

}  // namespace muster::gateway
