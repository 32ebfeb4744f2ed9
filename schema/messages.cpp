// messages.cpp — verification of received buffers, the WorkerMessage envelope, error-code names.
#include "muster/messages.hpp"

#include <array>

namespace muster {
namespace {

template <class Root>
const Root* verify(std::span<const std::uint8_t> bytes, const char* identifier,
                   bool (*verify_fn)(flatbuffers::Verifier&), bool check_nested = true) {
  if (bytes.size() < 8 || bytes.size() >= FLATBUFFERS_MAX_BUFFER_SIZE) return nullptr;
  flatbuffers::Verifier::Options options;
  options.max_depth = kVerifierMaxDepth;
  options.max_tables = kVerifierMaxTables;
  options.check_nested_flatbuffers = check_nested;
  flatbuffers::Verifier verifier(bytes.data(), bytes.size(), options);
  if (!flatbuffers::BufferHasIdentifier(bytes.data(), identifier)) return nullptr;
  if (!verify_fn(verifier)) return nullptr;
  return flatbuffers::GetRoot<Root>(bytes.data());
}

// The Verifier accepts a union whose type is set but whose table is absent; muster does not
// (PROTOCOL.md §3 rule 4), so every reader below hands out only roots that have a body.
template <class Root>
const Root* with_body(const Root* root) {
  if (!root || static_cast<int>(root->body_type()) == 0 || root->body() == nullptr) return nullptr;
  return root;
}

// PROTOCOL.md §3 rule 3: a nested Values payload starts on an 8-byte boundary of its message.
// The Verifier checks the nested buffer's alignment relative to its own start only, so a
// payload at offset 92 of its message verifies, and then its 8-byte scalars are read from
// misaligned addresses (and a forwarded payload stays misaligned for the next receiver).
bool payload_aligned(std::span<const std::uint8_t> whole, const flatbuffers::Vector<std::uint8_t>* v) {
  return !v || (v->data() - whole.data()) % kPayloadAlignment == 0;
}

}  // namespace

const wire::WorkerMessage* read_worker_message(std::span<const std::uint8_t> b) {
  auto* m = with_body(verify<wire::WorkerMessage>(b, wire::WorkerMessageIdentifier(),
                                     [](flatbuffers::Verifier& v) { return wire::VerifyWorkerMessageBuffer(v); }));
  if (auto* r = m ? m->body_as_Result() : nullptr; r && !payload_aligned(b, r->outputs())) return nullptr;
  return m;
}
const wire::DaemonMessage* read_daemon_message(std::span<const std::uint8_t> b) {
  auto* m = with_body(verify<wire::DaemonMessage>(b, wire::DaemonMessageIdentifier(),
                                     [](flatbuffers::Verifier& v) { return wire::VerifyDaemonMessageBuffer(v); }));
  if (auto* w = m ? m->body_as_WorkRequest() : nullptr;
      w && !(payload_aligned(b, w->inputs()) && payload_aligned(b, w->parameters())))
    return nullptr;
  return m;
}
const wire::WorkRequest* read_work_request_envelope(std::span<const std::uint8_t> b) {
  auto* m = with_body(verify<wire::DaemonMessage>(
      b, wire::DaemonMessageIdentifier(),
      [](flatbuffers::Verifier& v) { return wire::VerifyDaemonMessageBuffer(v); }, /*check_nested=*/false));
  return m ? m->body_as_WorkRequest() : nullptr;
}
const wire::ClientMessage* read_client_message(std::span<const std::uint8_t> b) {
  auto* m = with_body(verify<wire::ClientMessage>(b, wire::ClientMessageIdentifier(),
                                     [](flatbuffers::Verifier& v) { return wire::VerifyClientMessageBuffer(v); }));
  if (auto* s = m ? m->body_as_Submit() : nullptr;
      s && !(payload_aligned(b, s->inputs()) && payload_aligned(b, s->parameters())))
    return nullptr;
  return m;
}
const wire::ClientReply* read_client_reply(std::span<const std::uint8_t> b) {
  auto* m = with_body(verify<wire::ClientReply>(b, wire::ClientReplyIdentifier(),
                                   [](flatbuffers::Verifier& v) { return wire::VerifyClientReplyBuffer(v); }));
  if (auto* r = m ? m->body_as_Result() : nullptr; r && !payload_aligned(b, r->outputs())) return nullptr;
  return m;
}
const wire::EnrollRequest* read_enroll_request(std::span<const std::uint8_t> b) {
  return verify<wire::EnrollRequest>(b, wire::EnrollRequestIdentifier(),
                                     [](flatbuffers::Verifier& v) { return wire::VerifyEnrollRequestBuffer(v); });
}
const wire::EnrollResponse* read_enroll_response(std::span<const std::uint8_t> b) {
  return verify<wire::EnrollResponse>(b, wire::EnrollResponseIdentifier(),
                                      [](flatbuffers::Verifier& v) { return wire::VerifyEnrollResponseBuffer(v); });
}

namespace {
constexpr std::array<std::string_view, 13> kCodeNames = {
    "NONE",          "NO_WORKER",   "TIMEOUT",      "WORKER_LOST", "CANCELLED",
    "INVALID_REQUEST", "PERMISSION_DENIED", "QUEUE_FULL", "WORKER_ERROR", "BAD_MESSAGE",
    "INTERNAL",      "SHUTTING_DOWN", "UNAVAILABLE"};
}

bool worker_may_send(wire::ErrorCode code) {
  using wire::ErrorCode;
  switch (code) {
    case ErrorCode::WorkerError:
    case ErrorCode::InvalidRequest:
    case ErrorCode::NoWorker:
    case ErrorCode::WorkerLost:
    case ErrorCode::Timeout:
    case ErrorCode::ShuttingDown: return true;
    default: return false;
  }
}

std::string_view error_code_name(wire::ErrorCode code) {
  auto i = static_cast<std::size_t>(code);
  return i < kCodeNames.size() ? kCodeNames[i] : "UNKNOWN";
}

std::optional<wire::ErrorCode> error_code_from_name(std::string_view name) {
  for (std::size_t i = 0; i < kCodeNames.size(); ++i)
    if (kCodeNames[i] == name) return static_cast<wire::ErrorCode>(i);
  return std::nullopt;
}

void finish_worker_message(flatbuffers::FlatBufferBuilder& fbb, const std::string& worker_id,
                           wire::WorkerBody type, flatbuffers::Offset<void> body) {
  auto id = fbb.CreateString(worker_id);
  wire::WorkerMessageBuilder b(fbb);
  b.add_worker_id(id);
  b.add_body_type(type);
  b.add_body(body);
  fbb.Finish(b.Finish(), wire::WorkerMessageIdentifier());
}

}  // namespace muster
