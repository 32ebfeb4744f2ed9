// fuzz_client_reply.cpp — libFuzzer target: what a client receives from the daemon (a
// ClientReply), verified with read_client_reply and read the way the C++ client library reads
// it (worker/cpp/client.cpp Impl::handle and the node/worker/status JSON it builds).
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>

#include "muster/batch.hpp"
#include "muster/messages.hpp"
#include "muster/node_spec.hpp"
#include "muster/value.hpp"
#include "muster/value_json.hpp"

using namespace muster;

namespace {
std::string str(const flatbuffers::String* s) { return s ? s->str() : std::string(); }
}

// One message, or each item of a Batch read as if it had come alone (PROTOCOL.md §2.2), as
// the C++ SDK reads them.
static int read_one(std::span<const std::uint8_t> bytes, bool in_batch) {
  auto* reply = read_client_reply(bytes);
  if (!reply) return 0;
  if (reply->body_type() == wire::ReplyBody::Batch) {
    if (in_batch) return 0;  // a Batch inside a Batch: ignored
    for (auto item : batch_items(*reply->body_as_Batch(), bytes).items) read_one(item, true);
    return 0;
  }
  Json out;
  switch (reply->body_type()) {
    case wire::ReplyBody::Progress: {
      auto* p = reply->body_as_Progress();
      out = Json{{"step", p->step()}, {"total", p->total()}, {"message", str(p->message())}};
      break;
    }
    case wire::ReplyBody::Result:
      try {
        Map m = decode_values(payload_bytes(reply->body_as_Result()->outputs()));
        try {
          out = to_json(m);
        } catch (const std::invalid_argument&) {
        }
      } catch (const std::runtime_error&) {
        // the library turns it into a BAD_MESSAGE failure
      }
      break;
    case wire::ReplyBody::Failure: {
      auto* f = reply->body_as_Failure();
      out = Json{{"code", error_code_name(f->code())}, {"message", str(f->message())}};
      break;
    }
    case wire::ReplyBody::NodeList:
      if (auto* l = reply->body_as_NodeList(); l && l->nodes())
        for (auto* n : *l->nodes()) {
          Json j;
          try {
            j = to_json(decode_node_spec(n->spec()));
          } catch (const std::exception&) {
            continue;  // the client library leaves out a spec with no JSON form, as here
          }
          j["workspace"] = str(n->workspace());
          out.push_back(std::move(j));
        }
      break;
    case wire::ReplyBody::WorkerList:
      if (auto* l = reply->body_as_WorkerList(); l && l->workers())
        for (auto* w : *l->workers()) {
          auto nodes = Json::array();
          if (w->nodes())
            for (auto* n : *w->nodes()) nodes.push_back(n->str());
          out.push_back(Json{{"worker_id", str(w->worker_id())}, {"nodes", nodes}});
        }
      break;
    case wire::ReplyBody::StatusReport: {
      auto* s = reply->body_as_StatusReport();
      auto failures = Json::object();
      if (s->failures())
        for (auto* c : *s->failures()) failures[std::string(error_code_name(c->code()))] = c->count();
      out = Json{{"version", str(s->version())}, {"failures", failures}, {"rate_1m", s->rate_1m()}};
      break;
    }
    default: break;
  }
  try {
    (void)out.dump();
  } catch (const Json::type_error&) {
    // invalid UTF-8 in a string: nlohmann refuses to dump it (the CLI reports it)
  }
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  return read_one(std::span<const std::uint8_t>(data, size), false);
}
