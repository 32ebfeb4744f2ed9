// inbound.cpp — see inbound.hpp.
#include "inbound.hpp"

#include <fmt/format.h>

#include "muster/messages.hpp"
#include "muster/node_spec.hpp"

namespace muster::broker {

namespace {

std::string str(const flatbuffers::String* s) { return s ? s->str() : std::string(); }

Refusal refuse(std::string why, std::uint64_t request_id = 0, ErrorCode code = ErrorCode::BadMessage) {
  return Refusal{code, std::move(why), request_id};
}

std::string too_big(std::size_t size, std::uint64_t limit) {
  return fmt::format("message of {} bytes exceeds the limit of {} bytes (--max-message-bytes)", size, limit);
}

// The payloads a decoded message leaves behind: copies of the bytes alone when the message is
// small (InboundLimits::copy_payloads_below), else slices of the message, kept whole.
std::pair<Payload, Payload> kept_payloads(std::size_t message_size, const KeepBytes& keep,
                                          const InboundLimits& limits,
                                          std::span<const std::uint8_t> a,
                                          std::span<const std::uint8_t> b) {
  if (a.empty() && b.empty()) return {};
  if (message_size <= limits.copy_payloads_below) return Payload::copy_of_both(a, b);
  auto owner = keep();
  return {Payload{owner, a}, Payload{owner, b}};
}

// The same, for nested `Values` fields, which the message's verification checked whole
// (read_worker_message / read_client_message): marked so that the core does not verify them again.
std::pair<Payload, Payload> kept_values(std::size_t message_size, const KeepBytes& keep,
                                        const InboundLimits& limits,
                                        std::span<const std::uint8_t> a,
                                        std::span<const std::uint8_t> b) {
  auto kept = kept_payloads(message_size, keep, limits, a, b);
  kept.first.verified_values = kept.second.verified_values = true;
  return kept;
}

WorkerEvent decode_attach(const wire::WorkerMessage& msg, const InboundLimits& limits) {
  auto* a = msg.body_as_Attach();
  AttachEvent ev;
  ev.worker_id = str(a->worker_id());
  if (ev.worker_id != str(msg.worker_id()))
    return refuse(fmt::format("Attach: worker_id '{}' differs from the message's worker_id '{}'",
                              ev.worker_id, str(msg.worker_id())));
  ev.hostname = str(a->hostname());
  ev.sdk = str(a->sdk());
  ev.pid = a->pid();
  ev.session = str(a->session());
  ev.capacity = a->capacity();
  ev.payload_frames = a->payload_frames();
  ev.no_answer_acks = a->no_answer_acks();
  ev.batches = a->batches();
  ev.idle_pongs = a->idle_pongs();
  ev.direct = a->direct();
  if (auto* nodes = a->nodes()) {
    // Counted before anything is decoded: a 100,000-node Attach cost ~0.4 s of the only thread.
    if (nodes->size() > limits.max_attach_nodes)
      return refuse(fmt::format("Attach declares {} nodes; the limit is {} (--max-attach-nodes)",
                                nodes->size(), limits.max_attach_nodes),
                    0, ErrorCode::InvalidRequest);
    ev.nodes.reserve(nodes->size());
    try {
      for (auto* n : *nodes) ev.nodes.push_back(decode_node_spec(n));
    } catch (const std::runtime_error& e) {  // a string that is not UTF-8
      return refuse(fmt::format("Attach: {}", e.what()));
    }
  }
  return ev;
}

// The body type of what claims to be a message of a root with file identifier `identifier`
// whose body_type is its field at vtable offset 6 (WorkerMessage, ClientMessage), read with only
// its root table checked (in bounds, with its vtable): cheap on a message of any size. 0 (NONE)
// if even that fails.
std::uint8_t shallow_body_type(std::span<const std::uint8_t> bytes, const char* identifier) {
  if (bytes.size() < 8 || !flatbuffers::BufferHasIdentifier(bytes.data(), identifier)) return 0;
  flatbuffers::Verifier v(bytes.data(), bytes.size());
  auto root_offset = v.VerifyOffset(0);
  if (!root_offset) return 0;
  auto* table = reinterpret_cast<const flatbuffers::Table*>(bytes.data() + root_offset);
  if (!table->VerifyTableStart(v) || !table->VerifyField<std::uint8_t>(v, 6 /*body_type*/, 1)) return 0;
  return table->GetField<std::uint8_t>(6, 0);
}
wire::WorkerBody shallow_worker_body(std::span<const std::uint8_t> bytes) {
  return static_cast<wire::WorkerBody>(shallow_body_type(bytes, wire::WorkerMessageIdentifier()));
}

// The items of a message already known to carry a Batch, verified whole by `read` first.
template <class Root>
BatchItems checked_batch(std::span<const std::uint8_t> bytes, const InboundLimits& limits, const Root* msg,
                         std::string_view root_name) {
  BatchItems out;
  if (bytes.size() > limits.max_message_bytes) out.error = too_big(bytes.size(), limits.max_message_bytes);
  else if (!msg) out.error = describe_wrong_buffer(bytes, root_name);
  if (!out.error.empty()) return out;
  auto* batch = msg->body_as_Batch();
  return batch_items(*batch, bytes);
}

const char* kBatchInBatch = "a Batch inside a Batch (PROTOCOL.md §2.2)";

}  // namespace

bool is_admin_command(wire::ClientBody type) {
  switch (type) {
    case wire::ClientBody::TokenCreate:
    case wire::ClientBody::TokenList:
    case wire::ClientBody::TokenRevoke:
    case wire::ClientBody::KeyList:
    case wire::ClientBody::KeyRevoke: return true;
    default: return false;
  }
}

std::string describe_wrong_buffer(std::span<const std::uint8_t> b, std::string_view expected) {
  if (b.size() < 8) return fmt::format("{} bytes is too short for a {}", b.size(), expected);
  std::string_view id(reinterpret_cast<const char*>(b.data() + 4), 4);
  for (auto [ident, name] : {std::pair{"MSWK", "WorkerMessage"}, {"MSDM", "DaemonMessage"},
                             {"MSCL", "ClientMessage"}, {"MSCR", "ClientReply"},
                             {"MSEQ", "EnrollRequest"}, {"MSER", "EnrollResponse"},
                             {"MSVL", "Values"}})
    if (id == ident) {
      if (name == expected) return fmt::format("a {} that fails verification", expected);
      return fmt::format("a {} was sent where a {} was expected", name, expected);
    }
  return fmt::format("not a {} (file identifier missing or unknown)", expected);
}

// ---- worker messages ------------------------------------------------------------------------

std::optional<BatchItems> worker_batch_items(std::span<const std::uint8_t> bytes, const InboundLimits& limits) {
  if (shallow_worker_body(bytes) != wire::WorkerBody::Batch) return std::nullopt;
  auto* msg = bytes.size() > limits.max_message_bytes ? nullptr : read_worker_message(bytes);
  auto items = checked_batch(bytes, limits, msg, "WorkerMessage");
  if (items.error.empty() && str(msg->worker_id()).empty())
    items = BatchItems{{}, "WorkerMessage.worker_id is required on every message"};
  return items;
}

std::optional<BatchItems> client_batch_items(std::span<const std::uint8_t> bytes, const InboundLimits& limits) {
  if (static_cast<wire::ClientBody>(shallow_body_type(bytes, wire::ClientMessageIdentifier())) !=
      wire::ClientBody::Batch)
    return std::nullopt;
  auto* msg = bytes.size() > limits.max_message_bytes ? nullptr : read_client_message(bytes);
  return checked_batch(bytes, limits, msg, "ClientMessage");
}

WorkerEvent decode_worker_message(std::span<const std::uint8_t> bytes, const KeepBytes& keep,
                                  const InboundLimits& limits, bool in_batch) {
  const bool oversize = bytes.size() > limits.max_message_bytes;
  // The socket admits up to twice the limit (maxmsgsize), so that an oversize Result can still
  // be read for its request id; anything larger never reaches here.
  if (oversize && bytes.size() > 2 * limits.max_message_bytes)
    return refuse(too_big(bytes.size(), limits.max_message_bytes));
  if (limits.max_attach_bytes && bytes.size() > limits.max_attach_bytes &&
      shallow_worker_body(bytes) == wire::WorkerBody::Attach)
    return refuse(fmt::format("Attach of {} bytes exceeds the limit of {} bytes for an Attach "
                              "(twice --max-attach-spec-bytes, plus 64 KiB)",
                              bytes.size(), limits.max_attach_bytes),
                  0, ErrorCode::InvalidRequest);
  const wire::WorkerMessage* msg = read_worker_message(bytes);
  if (!msg) {
    if (oversize) return refuse(too_big(bytes.size(), limits.max_message_bytes));
    return refuse(describe_wrong_buffer(bytes, "WorkerMessage"));
  }
  std::string worker_id = str(msg->worker_id());
  using wire::WorkerBody;
  if (oversize) {
    if (msg->body_type() != WorkerBody::Result || worker_id.empty())
      return refuse(too_big(bytes.size(), limits.max_message_bytes));
    return FailureEvent{std::move(worker_id), msg->body_as_Result()->request_id(), ErrorCode::WorkerError,
                        fmt::format("the worker's result of {} bytes exceeds the daemon's limit of {} "
                                    "bytes (--max-message-bytes)",
                                    bytes.size(), limits.max_message_bytes)};
  }
  if (worker_id.empty()) return refuse("WorkerMessage.worker_id is required on every message");
  switch (msg->body_type()) {
    case WorkerBody::Attach: return decode_attach(*msg, limits);
    case WorkerBody::Pong: {
      auto* p = msg->body_as_Pong();
      PongEvent ev{std::move(worker_id), p->seq(), str(p->instance()), {}, {}};
      if (auto* v = p->in_flight()) ev.in_flight.assign(v->begin(), v->end());
      if (auto* v = p->answered()) ev.answered.assign(v->begin(), v->end());
      return ev;
    }
    case WorkerBody::Progress: {
      auto* p = msg->body_as_Progress();
      return ProgressEvent{std::move(worker_id), p->request_id(), p->step(), p->total(), str(p->message())};
    }
    case WorkerBody::Result: {
      auto* r = msg->body_as_Result();
      if (r->outputs_in_frame())
        return refuse("Result: outputs_in_frame is for the daemon's replies; a worker's Result carries its outputs");
      auto outputs = kept_values(bytes.size(), keep, limits, payload_bytes(r->outputs()), {}).first;
      return ResultEvent{std::move(worker_id), r->request_id(), std::move(outputs)};
    }
    case WorkerBody::Failure: {
      auto* f = msg->body_as_Failure();
      return FailureEvent{std::move(worker_id), f->request_id(), f->code(), str(f->message())};
    }
    case WorkerBody::Detach: return DetachEvent{std::move(worker_id)};
    case WorkerBody::Item: {
      auto* i = msg->body_as_Item();
      auto values = kept_values(bytes.size(), keep, limits, payload_bytes(i->values()), {}).first;
      return ItemEvent{std::move(worker_id), i->request_id(), i->seq(), std::move(values)};
    }
    case WorkerBody::Chunk: {
      auto* c = msg->body_as_Chunk();
      auto data = kept_payloads(bytes.size(), keep, limits, payload_bytes(c->data()), {}).first;
      return WorkerChunkEvent{std::move(worker_id), c->request_id(), c->stream(), c->offset(), std::move(data)};
    }
    case WorkerBody::Credit: {
      auto* c = msg->body_as_Credit();
      return WorkerCreditEvent{std::move(worker_id), c->request_id(), c->stream(), c->bytes(), c->resume(),
                               c->resume_offset()};
    }
    case WorkerBody::Batch:
      return refuse(in_batch ? kBatchInBatch : "a Batch must be opened with for_each_worker_event");
    default: return refuse("WorkerMessage without a known body");
  }
}

void deliver(BrokerCore& core, TimePoint now, const Peer& peer, const Caller& who, WorkerEvent&& ev) {
  std::visit(
      [&](auto& e) {
        using T = std::decay_t<decltype(e)>;
        if constexpr (std::is_same_v<T, Refusal>) {
          core.on_bad_worker_message(peer, std::move(e.why), e.code);
        } else if constexpr (std::is_same_v<T, AttachEvent>) {
          core.on_attach(now, peer, who, std::move(e));
        } else if constexpr (std::is_same_v<T, PongEvent>) {
          core.on_pong(now, peer, who, e.worker_id, e.seq, e.instance, e.in_flight, e.answered);
        } else if constexpr (std::is_same_v<T, ProgressEvent>) {
          core.on_progress(now, peer, who, e.worker_id, e.request_id, e.step, e.total, std::move(e.message));
        } else if constexpr (std::is_same_v<T, ResultEvent>) {
          core.on_result(now, peer, who, e.worker_id, e.request_id, std::move(e.outputs));
        } else if constexpr (std::is_same_v<T, FailureEvent>) {
          core.on_failure(now, peer, who, e.worker_id, e.request_id, e.code, std::move(e.message));
        } else if constexpr (std::is_same_v<T, ItemEvent>) {
          core.on_item(now, peer, who, e.worker_id, e.request_id, e.seq, std::move(e.values));
        } else if constexpr (std::is_same_v<T, WorkerChunkEvent>) {
          core.on_worker_chunk(now, peer, who, e.worker_id, e.request_id, e.stream, e.offset, std::move(e.data));
        } else if constexpr (std::is_same_v<T, WorkerCreditEvent>) {
          core.on_worker_credit(now, peer, who, e.worker_id, e.request_id, e.stream, e.bytes, e.resume,
                                e.resume_offset);
        } else {
          core.on_detach(now, peer, who, e.worker_id);
        }
      },
      ev);
}

// ---- client messages ------------------------------------------------------------------------

void deliver(BrokerCore& core, TimePoint now, const Peer& peer, const Caller& who, const JobEvent& ev) {
  std::visit(
      [&](auto& e) {
        using T = std::decay_t<decltype(e)>;
        if constexpr (std::is_same_v<T, JobResumeEvent>) core.on_job_resume(now, peer, who, e);
        else if constexpr (std::is_same_v<T, JobAckEvent>) core.on_job_ack(now, who, e);
        else if constexpr (std::is_same_v<T, JobGetEvent>) core.on_job_get(now, peer, who, e);
        else if constexpr (std::is_same_v<T, JobListEvent>) core.on_job_list(now, peer, who, e);
        else if constexpr (std::is_same_v<T, CallResumeEvent>) core.on_call_resume(now, peer, who, e);
        else core.on_job_cancel(now, peer, who, e);
      },
      ev);
}

std::uint64_t request_id_of(const JobEvent& ev) {
  return std::visit([](auto& e) { return e.request_id; }, ev);
}

ClientEvent decode_client_message(std::span<const std::uint8_t> bytes, const KeepBytes& keep,
                                  const InboundLimits& limits, std::optional<OnBehalfOf>* on_behalf_of,
                                  bool in_batch) {
  if (bytes.size() > limits.max_message_bytes) return refuse(too_big(bytes.size(), limits.max_message_bytes));
  const wire::ClientMessage* msg = read_client_message(bytes);
  if (!msg) return refuse(describe_wrong_buffer(bytes, "ClientMessage"));
  auto rid = msg->request_id();
  if (on_behalf_of) {
    if (auto* a = msg->on_behalf_of()) *on_behalf_of = OnBehalfOf{str(a->user()), str(a->workspace()), str(a->role())};
    else on_behalf_of->reset();
  }
  if (is_admin_command(msg->body_type())) return AdminEvent{rid, msg};
  using wire::ClientBody;
  switch (msg->body_type()) {
    case ClientBody::Submit: {
      auto* s = msg->body_as_Submit();
      SubmitEvent ev;
      ev.client_request_id = rid;
      ev.node = str(s->node());
      ev.timeout_ms = s->timeout_ms();
      ev.want_progress = s->want_progress();
      ev.want_accepted = s->want_accepted();
      ev.payload_frames = s->payload_frames();
      ev.durable = s->durable();
      ev.batch_replies = s->batch_replies();
      ev.stream_window_items = s->stream_window_items();
      ev.stream_window_bytes = s->stream_window_bytes();
      ev.chunk_window_bytes = s->chunk_window_bytes();
      ev.resumable = s->resumable();
      ev.trace_id = str(s->trace_id());
      std::tie(ev.inputs, ev.parameters) = kept_values(bytes.size(), keep, limits, payload_bytes(s->inputs()),
                                                       payload_bytes(s->parameters()));
      return ev;
    }
    case ClientBody::Cancel: return CancelEvent{rid};
    case ClientBody::Credit: {
      auto* c = msg->body_as_Credit();
      return CreditEvent{rid, c->stream(), c->items(), c->bytes(), c->resume(), c->resume_offset()};
    }
    case ClientBody::Chunk: {
      auto* c = msg->body_as_Chunk();
      auto data = kept_payloads(bytes.size(), keep, limits, payload_bytes(c->data()), {}).first;
      return ChunkEvent{rid, c->stream(), c->offset(), std::move(data)};
    }
    case ClientBody::ListNodes: return QueryEvent{rid, Query::ListNodes};
    case ClientBody::ListWorkers: return QueryEvent{rid, Query::ListWorkers};
    case ClientBody::GetStatus: return QueryEvent{rid, Query::GetStatus};
    case ClientBody::GetNodeStats: return QueryEvent{rid, Query::GetNodeStats};
    case ClientBody::JobResume: {
      JobResumeEvent ev{rid, {}};
      if (auto* jobs = msg->body_as_JobResume()->jobs()) {
        ev.jobs.reserve(jobs->size());
        for (auto* ref : *jobs) ev.jobs.push_back(JobRef{ref->job_id(), ref->request_id()});
      }
      return JobEvent{std::move(ev)};
    }
    case ClientBody::JobAck: {
      JobAckEvent ev{rid, {}};
      if (auto* ids = msg->body_as_JobAck()->job_ids()) ev.job_ids.assign(ids->begin(), ids->end());
      return JobEvent{std::move(ev)};
    }
    case ClientBody::JobGet: return JobEvent{JobGetEvent{rid, msg->body_as_JobGet()->job_id()}};
    case ClientBody::JobList: {
      auto* list = msg->body_as_JobList();
      return JobEvent{JobListEvent{rid, list->limit(), list->after_job_id()}};
    }
    case ClientBody::JobCancel: return JobEvent{JobCancelEvent{rid, msg->body_as_JobCancel()->job_id()}};
    case ClientBody::CallResume: {
      CallResumeEvent ev{rid, {}};
      if (auto* calls = msg->body_as_CallResume()->calls()) {
        ev.calls.reserve(calls->size());
        for (auto* ref : *calls) {
          CallRefEvent call{ref->call_token(), ref->request_id(), ref->items_received(), {}};
          if (auto* outputs = ref->outputs())
            for (auto* o : *outputs) call.outputs.emplace_back(o->stream(), o->offset());
          ev.calls.push_back(std::move(call));
        }
      }
      return JobEvent{std::move(ev)};
    }
    case ClientBody::Watch: {
      auto* w = msg->body_as_Watch();
      return WatchEvent{rid, WatchScope{w->nodes(), w->workers(), w->calls()}};
    }
    case ClientBody::Batch:
      return refuse(in_batch ? kBatchInBatch : "a Batch must be opened with for_each_client_message", rid);
    default: return refuse("ClientMessage without a known body", rid);
  }
}

InboundLimits client_socket_limits(std::uint64_t max_message_bytes, std::uint32_t max_attach_nodes) {
  // Named, not positional: a positional 8192 here once landed in max_attach_bytes after that
  // field was inserted, and every queued request kept its read buffer alive.
  return InboundLimits{.max_message_bytes = max_message_bytes,
                       .max_attach_nodes = max_attach_nodes,
                       .copy_payloads_below = 8192};
}

}  // namespace muster::broker
