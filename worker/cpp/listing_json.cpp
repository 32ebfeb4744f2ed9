// listing_json.cpp — see listing_json.hpp.
#include "listing_json.hpp"

#include <algorithm>
#include <cctype>

#include "muster/messages.hpp"
#include "muster/node_spec.hpp"

namespace muster {

namespace {
std::string str(const flatbuffers::String* s) { return s ? s->str() : std::string(); }
}  // namespace

std::optional<Json> node_info_json(const wire::NodeInfo* n) {
  Json j;
  try {
    j = to_json(decode_node_spec(n->spec()));
  } catch (const std::exception&) {
    return std::nullopt;
  }
  j["workspace"] = str(n->workspace());
  j["workers"] = n->workers();
  j["capacity"] = n->capacity();
  j["in_flight"] = n->in_flight();
  j["queue_depth"] = n->queue_depth();
  return j;
}

Json worker_info_json(const wire::WorkerInfo* w) {
  auto nodes = Json::array();
  if (w->nodes())
    for (auto* n : *w->nodes()) nodes.push_back(n->str());
  return Json{{"worker_id", str(w->worker_id())}, {"hostname", str(w->hostname())},
              {"sdk", str(w->sdk())}, {"pid", w->pid()}, {"state", str(w->state())},
              {"capacity", w->capacity()}, {"in_flight", w->in_flight()},
              {"nodes", nodes}, {"workspace", str(w->workspace())},
              {"identity", str(w->identity())}, {"attached_ms", w->attached_ms()},
              {"last_seen_ms", w->last_seen_ms()}, {"direct", w->direct()}};
}

Json call_info_json(const wire::CallInfo* c) {
  std::string state = wire::EnumNameJobState(c->state());
  std::transform(state.begin(), state.end(), state.begin(), [](unsigned char ch) { return std::tolower(ch); });
  Json out{{"request_id", c->request_id()}, {"node", str(c->node())},
           {"state", state.empty() ? "unknown" : state}, {"attempts", c->attempts()},
           {"trace_id", str(c->trace_id())}};
  if (c->job_id()) out["job_id"] = c->job_id();
  if (c->worker_id()) out["worker_id"] = str(c->worker_id());
  if (c->state() == wire::JobState::Finished) out["code"] = error_code_name(c->code());
  return out;
}

}  // namespace muster
