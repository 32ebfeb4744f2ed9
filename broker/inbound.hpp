// inbound.hpp — what peers send musterd, decoded: the bytes of one received payload frame in,
// a broker event (or a refusal saying why not) out. Socket-free, so the fuzz targets run the
// daemon's own decoding (tests/fuzz) and unit tests need no sockets.
// Owns: the size bound of a message, FlatBuffers verification (schema's read_*_message), the
// checks a message must pass before the core sees it (worker_id present, fields only the
// daemon may set, UTF-8 node specs, the node count of an Attach), an oversize Result turned
// into the worker's failure of that request, and which payload bytes are copied or kept.
// Must never: decide a broker rule (BrokerCore does), ask who sent the message (the socket loop
// asks Security between decoding and delivering), or point into `bytes` beyond what `keep`
// returned the owner of.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <variant>
#include <vector>

#include "broker_core.hpp"
#include "events.hpp"
#include "muster/batch.hpp"
#include "muster/wire/client_generated.h"
#include "on_behalf_of.hpp"

namespace muster::broker {

struct InboundLimits {
  std::uint64_t max_message_bytes = 16ull << 20;  // --max-message-bytes
  // Nodes one Attach may declare; the specs past it are not even decoded (--max-attach-nodes).
  std::uint32_t max_attach_nodes = 1000;
  // Bytes one Attach message may have. A larger one is refused before the FlatBuffers Verifier
  // walks it (verifying a 7 MB, 100,000-node Attach took ~4.5 ms of the only thread). 0: none.
  std::uint64_t max_attach_bytes = 0;
  // Payloads of a message up to this size are copied out of it, so the message (a slice of
  // libzmq's shared 8 KiB read buffer when small) is not kept alive; larger messages are kept
  // whole, uncopied, as the owner of their payloads. 0: always keep.
  std::size_t copy_payloads_below = 0;
};

// The limits of the client socket's decoder: small Submits leave a copy of their payload bytes
// alone (copy_payloads_below = 8 KiB, libzmq's read buffer; docs/PERFORMANCE.md, "An open
// request's memory"), not the message, whose shared read buffer would stay alive with them.
InboundLimits client_socket_limits(std::uint64_t max_message_bytes, std::uint32_t max_attach_nodes);

// Why a message is not acted on. `request_id` is the client's, when it could be read.
struct Refusal {
  ErrorCode code = ErrorCode::BadMessage;
  std::string why;
  std::uint64_t request_id = 0;
};

// ---- worker messages (response socket) ------------------------------------------------------

struct PongEvent {
  std::string worker_id;
  std::uint64_t seq = 0;
  std::string instance;
  std::vector<std::uint64_t> in_flight;
  std::vector<std::uint64_t> answered;  // answers kept unconfirmed (no_answer_acks)
};
struct ProgressEvent {
  std::string worker_id;
  std::uint64_t request_id = 0, step = 0, total = 0;
  std::string message;
};
struct ResultEvent {
  std::string worker_id;
  std::uint64_t request_id = 0;
  Payload outputs;
};
struct FailureEvent {
  std::string worker_id;
  std::uint64_t request_id = 0;
  ErrorCode code = ErrorCode::WorkerError;
  std::string message;
};
struct DetachEvent {
  std::string worker_id;
};
struct ItemEvent {  // one item of a call's stream (PROTOCOL.md §7.8)
  std::string worker_id;
  std::uint64_t request_id = 0, seq = 0;
  Payload values;
};
struct WorkerChunkEvent {  // a chunk of the worker's output stream (PROTOCOL.md §7.9)
  std::string worker_id;
  std::uint64_t request_id = 0;
  std::uint32_t stream = 0;
  std::uint64_t offset = 0;
  Payload data;
};
struct WorkerCreditEvent {  // the worker's credit for the caller's input stream (§7.9)
  std::string worker_id;
  std::uint64_t request_id = 0;
  std::uint32_t stream = 0;
  std::uint64_t bytes = 0;
  bool resume = false;              // a resume Credit (§7.9 Resumption): back to resume_offset
  std::uint64_t resume_offset = 0;
};
using WorkerEvent = std::variant<Refusal, AttachEvent, PongEvent, ProgressEvent, ResultEvent, FailureEvent, DetachEvent,
                                 ItemEvent, WorkerChunkEvent, WorkerCreditEvent>;

// The owner of the bytes being decoded, asked for (at most once) only when a payload slice is
// kept uncopied.
using KeepBytes = std::function<std::shared_ptr<const void>()>;

// Decodes one WorkerMessage (`in_batch`: an item of a Batch, which may not be a Batch itself;
// a Batch that is not an item is refused here: for_each_worker_event opens it). An Attach larger than max_attach_bytes is refused after reading
// only its root table's body type (checked in bounds), not the whole message. A Result larger than max_message_bytes (the socket admits up to
// twice that) becomes the worker's FailureEvent{WorkerError} for that request, so the caller
// learns at once and the worker, acknowledged, stops sending it.
WorkerEvent decode_worker_message(std::span<const std::uint8_t> bytes, const KeepBytes& keep,
                                  const InboundLimits& limits, bool in_batch = false);

// The items of `bytes` if it is a message of that root whose body is a Batch (PROTOCOL.md §2.2),
// with BatchItems::error set when the envelope breaks a rule (it fails verification, is larger
// than max_message_bytes, has no worker_id, no items or a misaligned one); nullopt when it is not
// a Batch. Reads only the root table to tell, so any other message costs next to nothing here.
std::optional<BatchItems> worker_batch_items(std::span<const std::uint8_t> bytes, const InboundLimits& limits);
std::optional<BatchItems> client_batch_items(std::span<const std::uint8_t> bytes, const InboundLimits& limits);

// Calls `each(WorkerEvent&&)` for every message `bytes` carries: the message itself, or each item
// of a Batch in order, decoded as if it had come alone (its own refusal, its own reply). A Batch
// that breaks a rule of §2.2 is one Refusal. `keep` owns every item (they are slices of `bytes`).
template <class Each>
void for_each_worker_event(std::span<const std::uint8_t> bytes, const KeepBytes& keep,
                           const InboundLimits& limits, Each&& each) {
  auto batch = worker_batch_items(bytes, limits);
  if (!batch) return each(decode_worker_message(bytes, keep, limits));
  if (!batch->error.empty()) return each(WorkerEvent{Refusal{ErrorCode::BadMessage, std::move(batch->error), 0}});
  for (auto item : batch->items) each(decode_worker_message(item, keep, limits, /*in_batch=*/true));
}

// Hands a decoded worker event to the core: exactly one core call, hence exactly one
// ReplyToWorker (a Refusal becomes on_bad_worker_message).
void deliver(BrokerCore& core, TimePoint now, const Peer& peer, const Caller& who, WorkerEvent&& ev);

// ---- client messages (client socket) ----------------------------------------------------------

struct CancelEvent {
  std::uint64_t request_id = 0;
};
enum class Query { ListNodes, ListWorkers, GetStatus, GetNodeStats };
struct QueryEvent {
  std::uint64_t request_id = 0;
  Query query = Query::GetStatus;
};
// An admin command, run by run_admin (admin.hpp). `message` points into the decoded bytes: it
// is valid only while they are.
struct AdminEvent {
  std::uint64_t request_id = 0;
  const wire::ClientMessage* message = nullptr;
};
// A durable-job message (events.hpp; BrokerCore::on_job_*), or a CallResume (on_call_resume):
// each acts for the caller, under requests ids of its own.
using JobEvent = std::variant<JobResumeEvent, JobAckEvent, JobGetEvent, JobListEvent, JobCancelEvent, CallResumeEvent>;
// A Watch (BrokerCore::on_watch).
struct WatchEvent {
  std::uint64_t request_id = 0;
  WatchScope scope;
};
using ClientEvent = std::variant<Refusal, SubmitEvent, CancelEvent, QueryEvent, AdminEvent, JobEvent, WatchEvent,
                                 CreditEvent, ChunkEvent>;

// `on_behalf_of`, if given, receives ClientMessage.on_behalf_of when the message carries one
// (broker/on_behalf_of decides whether it is honoured). `in_batch` as for decode_worker_message.
ClientEvent decode_client_message(std::span<const std::uint8_t> bytes, const KeepBytes& keep,
                                  const InboundLimits& limits, std::optional<OnBehalfOf>* on_behalf_of = nullptr,
                                  bool in_batch = false);

// Calls `each(std::span<const std::uint8_t> message, bool in_batch)` for every ClientMessage
// `bytes` carries (itself, or each item of a Batch, in order), or `refused(Refusal&&)` once for a
// Batch that breaks a rule of §2.2. The caller decodes each with decode_client_message.
template <class Each, class Refused>
void for_each_client_message(std::span<const std::uint8_t> bytes, const InboundLimits& limits, Each&& each,
                             Refused&& refused) {
  auto batch = client_batch_items(bytes, limits);
  if (!batch) return each(bytes, false);
  if (!batch->error.empty()) return refused(Refusal{ErrorCode::BadMessage, std::move(batch->error), 0});
  for (auto item : batch->items) each(item, true);
}

// Hands a decoded job message to the core: exactly one core call (BrokerCore::on_job_*).
void deliver(BrokerCore& core, TimePoint now, const Peer& peer, const Caller& who, const JobEvent& ev);
// The ClientMessage.request_id a job message came with.
std::uint64_t request_id_of(const JobEvent& ev);

// True for the admin members of ClientBody (TokenCreate ... KeyRevoke).
bool is_admin_command(wire::ClientBody type);

// Names what a buffer that is not the expected root type is, for a clearer refusal.
std::string describe_wrong_buffer(std::span<const std::uint8_t> b, std::string_view expected);

}  // namespace muster::broker
