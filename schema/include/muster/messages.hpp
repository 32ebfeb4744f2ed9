// messages.hpp — one place that turns received bytes into verified wire messages, and names
// error codes.
// Owns: the Verifier settings and the error-code names every C++ program prints.
// Must never: hand out a pointer into a buffer that failed verification.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "muster/wire/client_generated.h"
#include "muster/wire/daemon_generated.h"
#include "muster/wire/enroll_generated.h"
#include "muster/wire/enrolled_generated.h"
#include "muster/wire/reply_generated.h"
#include "muster/wire/worker_generated.h"

namespace muster {

// Verifier limits: deep enough for any sane nested value, bounded against hostile input.
inline constexpr unsigned kVerifierMaxDepth = 128;
inline constexpr unsigned kVerifierMaxTables = 10'000'000;

// A nested Values payload (Submit and WorkRequest inputs/parameters, Result outputs) starts at
// a multiple of this from the start of its message (PROTOCOL.md §3 rule 3).
inline constexpr std::ptrdiff_t kPayloadAlignment = 8;

// Each returns the verified root, or nullptr if the bytes are not a valid buffer of that
// root type carrying its file_identifier. For the four roots with a `body` union, nullptr
// also when the body is NONE or its table is absent: a returned root always has a body.
// nullptr also when a nested payload of the body does not start on a kPayloadAlignment
// boundary of `bytes` (the Verifier does not check that).
const wire::WorkerMessage* read_worker_message(std::span<const std::uint8_t> bytes);
const wire::DaemonMessage* read_daemon_message(std::span<const std::uint8_t> bytes);
const wire::ClientMessage* read_client_message(std::span<const std::uint8_t> bytes);

// For a worker to answer a WorkRequest that read_daemon_message refused: the WorkRequest if
// the bytes verify as one when its nested payloads (inputs, parameters) are NOT verified, else
// nullptr. Read only its request_id and node: its payloads may be anything.
const wire::WorkRequest* read_work_request_envelope(std::span<const std::uint8_t> bytes);
const wire::ClientReply* read_client_reply(std::span<const std::uint8_t> bytes);
const wire::EnrollRequest* read_enroll_request(std::span<const std::uint8_t> bytes);
const wire::EnrollResponse* read_enroll_response(std::span<const std::uint8_t> bytes);

// Finishes `fbb` as a WorkerMessage from `worker_id` carrying `body` (built in `fbb`), with
// its file identifier: what every C++ writer of worker messages (the SDK, tests, benchmarks)
// sends.
void finish_worker_message(flatbuffers::FlatBufferBuilder& fbb, const std::string& worker_id,
                           wire::WorkerBody type, flatbuffers::Offset<void> body);

// The codes a worker's Failure may carry (PROTOCOL.md §6): WorkerError (its own code failed),
// InvalidRequest (it cannot accept the inputs), and what a worker that forwards the call to
// others (muster-bridge host) met downstream: NoWorker, WorkerLost, Timeout, ShuttingDown.
// musterd turns any other code into WorkerError, and the C++ SDK never sends one.
bool worker_may_send(wire::ErrorCode code);

// "NO_WORKER", "TIMEOUT", ... as printed by the CLI and used in JSON.
std::string_view error_code_name(wire::ErrorCode code);
std::optional<wire::ErrorCode> error_code_from_name(std::string_view name);

// A view of a nested payload vector (inputs, parameters, outputs) as bytes.
inline std::span<const std::uint8_t> payload_bytes(const flatbuffers::Vector<std::uint8_t>* v) {
  if (!v) return {};
  return {v->data(), v->size()};
}

}  // namespace muster
