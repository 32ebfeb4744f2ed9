// fuzz_daemon_message.cpp — libFuzzer target: what a worker receives (a DaemonMessage on its
// SUB socket or as a reply on its DEALER), verified with read_daemon_message and read the way
// the C++ worker SDK reads it (worker/cpp/worker.cpp on_published and on_reply), including
// the nested inputs and parameters of a WorkRequest.
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>

#include "muster/batch.hpp"
#include "muster/messages.hpp"
#include "muster/value.hpp"

using namespace muster;

namespace {
std::string str(const flatbuffers::String* s) { return s ? s->str() : std::string(); }
}

// One message, or each item of a Batch read as if it had come alone (PROTOCOL.md §2.2), as
// the C++ SDK reads them.
static int read_one(std::span<const std::uint8_t> bytes, bool in_batch) {
  auto* msg = read_daemon_message(bytes);
  if (!msg) return 0;
  if (msg->body_type() == wire::DaemonBody::Batch) {
    if (in_batch) return 0;  // a Batch inside a Batch: ignored
    for (auto item : batch_items(*msg->body_as_Batch(), bytes).items) read_one(item, true);
    return 0;
  }
  volatile std::size_t sink = 0;
  switch (msg->body_type()) {
    case wire::DaemonBody::Ping: {
      auto* p = msg->body_as_Ping();
      sink = p->seq() + str(p->instance()).size();
      break;
    }
    case wire::DaemonBody::WorkRequest: {
      auto* w = msg->body_as_WorkRequest();
      sink = w->request_id() + str(w->node()).size() + w->timeout_ms() + w->attempt();
      try {
        sink = sink + decode_values(payload_bytes(w->inputs())).size();
        sink = sink + decode_values(payload_bytes(w->parameters())).size();
      } catch (const std::runtime_error&) {
        // the SDK answers BAD_MESSAGE
      }
      if (auto* c = w->caller())
        sink = sink + str(c->identity()).size() + str(c->name()).size() +
               str(c->workspace()).size() + str(c->role()).size() + str(c->trace_id()).size();
      break;
    }
    case wire::DaemonBody::Abort: {
      auto* a = msg->body_as_Abort();
      sink = a->request_id() + static_cast<std::size_t>(a->code()) + str(a->reason()).size();
      break;
    }
    case wire::DaemonBody::Attached: {
      auto* a = msg->body_as_Attached();
      sink = str(a->worker_id()).size() + str(a->instance()).size() + str(a->topic()).size() +
             str(a->broadcast_topic()).size() + a->ping_interval_ms() + a->liveness() +
             a->max_message_bytes();
      break;
    }
    case wire::DaemonBody::Ack: sink = msg->body_as_Ack()->late(); break;
    case wire::DaemonBody::Rejected: {
      auto* r = msg->body_as_Rejected();
      sink = static_cast<std::size_t>(r->code()) + str(r->message()).size() + r->reattach();
      break;
    }
    default: break;
  }
  (void)sink;
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  return read_one(std::span<const std::uint8_t>(data, size), false);
}
