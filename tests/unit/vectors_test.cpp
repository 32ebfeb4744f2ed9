// vectors_test.cpp — the golden vectors of tests/vectors (format: tests/vectors/README.md)
// against the C++ readers and builders: every valid vector is verified with the muster readers
// (messages.hpp, decode_values), turned into its JSON description and compared with NAME.json;
// every description is built again with FlatBufferBuilder, read back and compared; every
// invalid vector is refused by the reader of its root type.
// The vectors directory comes from the compile definition MUSTER_VECTORS_DIR.
#include <doctest/doctest.h>

#include <algorithm>
#include <bit>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include <zmq.hpp>

#include "daemon_process.hpp"
#include "muster/align.hpp"
#include "muster/frames.hpp"
#include "muster/messages.hpp"
#include "muster/value.hpp"
#include "muster/value_json.hpp"

#ifndef MUSTER_VECTORS_DIR
#error "MUSTER_VECTORS_DIR must name the tests/vectors directory"
#endif

namespace {

namespace fs = std::filesystem;
namespace w = muster::wire;
using muster::Json;
using Bytes = std::vector<std::uint8_t>;
using flatbuffers::FlatBufferBuilder;
using flatbuffers::Offset;

// ---- buffer -> description -----------------------------------------------------------------

void put(Json& j, const char* key, const flatbuffers::String* s) {
  if (s) j[key] = s->str();
}

std::string code_name(w::ErrorCode c) { return std::string(muster::error_code_name(c)); }

// JobState as the descriptions spell it (tests/vectors/README.md): the enumerator in capitals.
constexpr std::pair<w::JobState, const char*> kJobStateNames[] = {
    {w::JobState::Queued, "QUEUED"},
    {w::JobState::Running, "RUNNING"},
    {w::JobState::Recovering, "RECOVERING"},
    {w::JobState::Finished, "FINISHED"},
};

// EventKind as the descriptions spell it: the Python SDK's enumerator names.
constexpr std::pair<w::EventKind, const char*> kEventKindNames[] = {
    {w::EventKind::Snapshot, "SNAPSHOT"},         {w::EventKind::NodeAdded, "NODE_ADDED"},
    {w::EventKind::NodeChanged, "NODE_CHANGED"},  {w::EventKind::NodeRemoved, "NODE_REMOVED"},
    {w::EventKind::WorkerJoined, "WORKER_JOINED"}, {w::EventKind::WorkerChanged, "WORKER_CHANGED"},
    {w::EventKind::WorkerLeft, "WORKER_LEFT"},    {w::EventKind::CallState, "CALL_STATE"},
    {w::EventKind::Overflow, "OVERFLOW"},
};

Json event_kind_name(w::EventKind k) {
  for (auto& [kind, name] : kEventKindNames)
    if (kind == k) return name;
  return static_cast<int>(k);
}

Json job_state_name(w::JobState s) {
  for (auto& [state, name] : kJobStateNames)
    if (state == s) return name;
  return static_cast<int>(s);  // a state from a newer schema
}

Json values_json(const flatbuffers::Vector<std::uint8_t>* v) {
  // Verified already, as part of the message; decode_values verifies once more.
  return muster::to_json(muster::decode_values(muster::payload_bytes(v)));
}

// Every table's description (forward-declared so describe_vector finds them all).
Json describe(const w::Port* p);
Json describe(const w::NodeSpec* s);
Json describe(const w::NodeInfo* n);
Json describe(const w::WorkerInfo* i);
Json describe(const w::CallInfo* c);
Json describe(const w::CodeCount* c);
Json describe(const w::NodeStats* n);
Json describe(const w::RecentFailure* f);
Json describe(const w::JobRef* r);
Json describe(const w::CallRef* r);
Json describe(const w::StreamOffset* o);
Json describe(const w::JobInfo* i);

Json describe(const w::Port* p) {
  Json j = Json::object();
  put(j, "name", p->name());
  put(j, "type", p->type());
  put(j, "description", p->description());
  j["required"] = p->required();
  if (p->default_value()) j["default_value"] = muster::to_json(muster::decode_value(p->default_value()));
  return j;
}

template <class T>
Json describe_vector(const flatbuffers::Vector<Offset<T>>* v) {
  Json a = Json::array();
  for (auto* item : *v) a.push_back(describe(item));
  return a;
}

Json describe(const w::NodeSpec* s) {
  Json j = Json::object();
  put(j, "name", s->name());
  put(j, "description", s->description());
  put(j, "category", s->category());
  put(j, "version", s->version());
  if (s->inputs()) j["inputs"] = describe_vector(s->inputs());
  if (s->outputs()) j["outputs"] = describe_vector(s->outputs());
  if (s->parameters()) j["parameters"] = describe_vector(s->parameters());
  j["idempotent"] = s->idempotent();
  j["default_timeout_ms"] = s->default_timeout_ms();
  j["durable"] = s->durable();
  return j;
}

Json describe(const w::CallerContext* c) {
  Json j = Json::object();
  put(j, "identity", c->identity());
  put(j, "name", c->name());
  put(j, "workspace", c->workspace());
  put(j, "role", c->role());
  put(j, "trace_id", c->trace_id());
  return j;
}

Json describe(const w::OnBehalfOf* o) {
  Json j = Json::object();
  put(j, "user", o->user());
  put(j, "workspace", o->workspace());
  put(j, "role", o->role());
  return j;
}

Json describe(const w::Progress* p) {
  Json j = Json::object();
  j["request_id"] = p->request_id();
  j["step"] = p->step();
  j["total"] = p->total();
  put(j, "message", p->message());
  return j;
}

Json describe(const w::Result* r) {
  Json j = Json::object();
  j["request_id"] = r->request_id();
  if (r->outputs()) j["outputs"] = values_json(r->outputs());
  j["outputs_in_frame"] = r->outputs_in_frame();
  j["job_id"] = r->job_id();
  return j;
}

Json describe(const w::Failure* f) {
  Json j = Json::object();
  j["request_id"] = f->request_id();
  j["code"] = code_name(f->code());
  put(j, "message", f->message());
  j["job_id"] = f->job_id();
  return j;
}

Json describe(const w::Item* i) {
  Json j = Json::object();
  j["request_id"] = i->request_id();
  j["seq"] = i->seq();
  if (i->values()) j["values"] = values_json(i->values());
  return j;
}

Json describe(const w::Credit* c) {
  Json j = Json::object();
  j["request_id"] = c->request_id();
  j["stream"] = c->stream();
  j["items"] = c->items();
  j["bytes"] = c->bytes();
  j["resume_offset"] = c->resume_offset();
  j["resume"] = c->resume();
  return j;
}

Json describe(const w::Chunk* c) {
  Json j = Json::object();
  j["request_id"] = c->request_id();
  j["stream"] = c->stream();
  j["offset"] = c->offset();
  if (c->data()) j["data"] = muster::base64_encode(muster::Bytes(c->data()->begin(), c->data()->end()));
  return j;
}

Json describe(const w::Ping* p) {
  Json j = Json::object();
  j["seq"] = p->seq();
  put(j, "instance", p->instance());
  return j;
}

Json describe(const w::WorkRequest* r) {
  Json j = Json::object();
  j["request_id"] = r->request_id();
  put(j, "node", r->node());
  if (r->inputs()) j["inputs"] = values_json(r->inputs());
  if (r->parameters()) j["parameters"] = values_json(r->parameters());
  j["timeout_ms"] = r->timeout_ms();
  j["attempt"] = r->attempt();
  if (r->caller()) j["caller"] = describe(r->caller());
  j["inputs_in_frame"] = r->inputs_in_frame();
  j["stream_window_items"] = r->stream_window_items();
  j["stream_window_bytes"] = r->stream_window_bytes();
  j["chunk_window_bytes"] = r->chunk_window_bytes();
  return j;
}

Json describe(const w::Abort* a) {
  Json j = Json::object();
  j["request_id"] = a->request_id();
  j["code"] = code_name(a->code());
  put(j, "reason", a->reason());
  return j;
}

Json describe(const w::Attached* a) {
  Json j = Json::object();
  put(j, "worker_id", a->worker_id());
  put(j, "instance", a->instance());
  put(j, "topic", a->topic());
  put(j, "broadcast_topic", a->broadcast_topic());
  j["ping_interval_ms"] = a->ping_interval_ms();
  j["liveness"] = a->liveness();
  j["max_message_bytes"] = a->max_message_bytes();
  j["no_answer_acks"] = a->no_answer_acks();
  j["batches"] = a->batches();
  j["idle_pong_every"] = a->idle_pong_every();
  j["direct"] = a->direct();
  return j;
}

Json id_list(const flatbuffers::Vector<std::uint64_t>& ids) {
  Json a = Json::array();
  for (auto id : ids) a.push_back(id);
  return a;
}

// A Batch (PROTOCOL.md §2.2): each item's bytes as standard base64 (tests/vectors/README.md).
Json describe(const w::Batch* b) {
  Json j = Json::object();
  if (auto* items = b->items()) {
    Json list = Json::array();
    for (auto* item : *items) {
      Json i = Json::object();
      if (auto* m = item->message())
        i["message"] = muster::base64_encode(muster::Bytes(std::vector<std::uint8_t>(m->begin(), m->end())));
      list.push_back(std::move(i));
    }
    j["items"] = std::move(list);
  }
  return j;
}

Json describe(const w::Ack* a) {
  Json j = Json::object();
  j["late"] = a->late();
  j["pong_seq"] = a->pong_seq();
  if (a->missing()) j["missing"] = id_list(*a->missing());
  return j;
}

Json describe(const w::Rejected* r) {
  Json j = Json::object();
  j["code"] = code_name(r->code());
  put(j, "message", r->message());
  j["reattach"] = r->reattach();
  return j;
}

Json describe(const w::Attach* a) {
  Json j = Json::object();
  put(j, "worker_id", a->worker_id());
  put(j, "hostname", a->hostname());
  put(j, "sdk", a->sdk());
  j["pid"] = a->pid();
  put(j, "session", a->session());
  j["capacity"] = a->capacity();
  if (a->nodes()) j["nodes"] = describe_vector(a->nodes());
  j["payload_frames"] = a->payload_frames();
  j["no_answer_acks"] = a->no_answer_acks();
  j["batches"] = a->batches();
  j["idle_pongs"] = a->idle_pongs();
  j["direct"] = a->direct();
  return j;
}

Json describe(const w::Pong* p) {
  Json j = Json::object();
  j["seq"] = p->seq();
  put(j, "instance", p->instance());
  if (p->in_flight()) j["in_flight"] = id_list(*p->in_flight());
  if (p->answered()) j["answered"] = id_list(*p->answered());
  return j;
}

Json describe(const w::Detach* d) {
  Json j = Json::object();
  put(j, "reason", d->reason());
  return j;
}

Json describe(const w::Submit* s) {
  Json j = Json::object();
  put(j, "node", s->node());
  if (s->inputs()) j["inputs"] = values_json(s->inputs());
  if (s->parameters()) j["parameters"] = values_json(s->parameters());
  j["timeout_ms"] = s->timeout_ms();
  j["want_progress"] = s->want_progress();
  j["want_accepted"] = s->want_accepted();
  put(j, "trace_id", s->trace_id());
  j["payload_frames"] = s->payload_frames();
  j["durable"] = s->durable();
  j["batch_replies"] = s->batch_replies();
  j["stream_window_items"] = s->stream_window_items();
  j["stream_window_bytes"] = s->stream_window_bytes();
  j["chunk_window_bytes"] = s->chunk_window_bytes();
  j["resumable"] = s->resumable();
  return j;
}

Json describe(const w::StreamOffset* o) { return Json{{"stream", o->stream()}, {"offset", o->offset()}}; }

Json describe(const w::CallRef* r) {
  Json j = Json::object();
  j["call_token"] = r->call_token();
  j["request_id"] = r->request_id();
  j["items_received"] = r->items_received();
  if (r->outputs()) j["outputs"] = describe_vector(r->outputs());
  return j;
}

Json describe(const w::CallResume* r) {
  Json j = Json::object();
  if (r->calls()) j["calls"] = describe_vector(r->calls());
  return j;
}

Json describe(const w::JobRef* r) {
  Json j = Json::object();
  j["job_id"] = r->job_id();
  j["request_id"] = r->request_id();
  return j;
}

Json describe(const w::JobResume* r) {
  Json j = Json::object();
  if (r->jobs()) j["jobs"] = describe_vector(r->jobs());
  return j;
}

Json describe(const w::JobAck* a) {
  Json j = Json::object();
  if (a->job_ids()) j["job_ids"] = id_list(*a->job_ids());
  return j;
}

Json describe(const w::JobGet* g) { return Json{{"job_id", g->job_id()}}; }

Json describe(const w::JobCancel* c) { return Json{{"job_id", c->job_id()}}; }

Json describe(const w::JobInfo* i) {
  Json j = Json::object();
  j["job_id"] = i->job_id();
  j["state"] = job_state_name(i->state());
  put(j, "node", i->node());
  put(j, "workspace", i->workspace());
  j["submitted_ms"] = i->submitted_ms();
  put(j, "worker_id", i->worker_id());
  j["attempts"] = i->attempts();
  j["code"] = code_name(i->code());
  j["finished_ms"] = i->finished_ms();
  return j;
}

Json describe(const w::Watch* x) {
  return Json{{"nodes", x->nodes()}, {"workers", x->workers()}, {"calls", x->calls()}};
}

Json describe(const w::CallInfo* c) {
  Json j = Json::object();
  j["request_id"] = c->request_id();
  j["job_id"] = c->job_id();
  put(j, "node", c->node());
  j["state"] = job_state_name(c->state());
  put(j, "worker_id", c->worker_id());
  j["attempts"] = c->attempts();
  j["code"] = code_name(c->code());
  put(j, "trace_id", c->trace_id());
  return j;
}

Json describe(const w::Event* e) {
  Json j = Json::object();
  j["seq"] = e->seq();
  j["kind"] = event_kind_name(e->kind());
  if (e->nodes()) j["nodes"] = describe_vector(e->nodes());
  if (e->workers()) j["workers"] = describe_vector(e->workers());
  if (e->calls()) j["calls"] = describe_vector(e->calls());
  if (e->node()) j["node"] = describe(e->node());
  if (e->worker()) j["worker"] = describe(e->worker());
  if (e->call()) j["call"] = describe(e->call());
  return j;
}

Json describe(const w::JobInfoList* l) {
  Json j = Json::object();
  if (l->jobs()) j["jobs"] = describe_vector(l->jobs());
  j["more"] = l->more();
  return j;
}

Json describe(const w::JobList* l) { return Json{{"limit", l->limit()}, {"after_job_id", l->after_job_id()}}; }

Json describe(const w::Accepted* a) {
  Json j = Json::object();
  j["queued"] = a->queued();
  j["job_id"] = a->job_id();
  j["call_token"] = a->call_token();
  return j;
}

Json describe(const w::NodeInfo* n) {
  Json j = Json::object();
  if (n->spec()) j["spec"] = describe(n->spec());
  put(j, "workspace", n->workspace());
  j["workers"] = n->workers();
  j["capacity"] = n->capacity();
  j["in_flight"] = n->in_flight();
  j["queue_depth"] = n->queue_depth();
  return j;
}

Json describe(const w::NodeList* l) {
  Json j = Json::object();
  if (l->nodes()) j["nodes"] = describe_vector(l->nodes());
  return j;
}

Json describe(const w::WorkerInfo* i) {
  Json j = Json::object();
  put(j, "worker_id", i->worker_id());
  put(j, "hostname", i->hostname());
  put(j, "sdk", i->sdk());
  j["pid"] = i->pid();
  put(j, "state", i->state());
  j["capacity"] = i->capacity();
  j["in_flight"] = i->in_flight();
  if (i->nodes()) {
    Json a = Json::array();
    for (auto* s : *i->nodes()) a.push_back(s->str());
    j["nodes"] = a;
  }
  put(j, "workspace", i->workspace());
  put(j, "identity", i->identity());
  j["attached_ms"] = i->attached_ms();
  j["last_seen_ms"] = i->last_seen_ms();
  j["direct"] = i->direct();
  return j;
}

Json describe(const w::WorkerList* l) {
  Json j = Json::object();
  if (l->workers()) j["workers"] = describe_vector(l->workers());
  return j;
}

Json describe(const w::CodeCount* c) {
  Json j = Json::object();
  j["code"] = code_name(c->code());
  j["count"] = c->count();
  return j;
}

Json describe(const w::StatusReport* s) {
  Json j = Json::object();
  put(j, "version", s->version());
  put(j, "instance", s->instance());
  j["uptime_ms"] = s->uptime_ms();
  j["workers"] = s->workers();
  j["nodes"] = s->nodes();
  j["queued"] = s->queued();
  j["in_flight"] = s->in_flight();
  j["submitted"] = s->submitted();
  j["completed"] = s->completed();
  j["failed"] = s->failed();
  if (s->failures()) j["failures"] = describe_vector(s->failures());
  j["redispatched"] = s->redispatched();
  j["rate_1m"] = s->rate_1m();
  j["recovering"] = s->recovering();
  return j;
}

Json u64_array(const flatbuffers::Vector<std::uint64_t>* v) {
  Json a = Json::array();
  for (auto x : *v) a.push_back(x);
  return a;
}

Json describe(const w::LatencyHistogram* h) {
  Json j = Json::object();
  if (h->upper_bounds_us()) j["upper_bounds_us"] = u64_array(h->upper_bounds_us());
  if (h->counts()) j["counts"] = u64_array(h->counts());
  j["count"] = h->count();
  j["sum_us"] = h->sum_us();
  j["p50_us"] = h->p50_us();
  j["p90_us"] = h->p90_us();
  j["p99_us"] = h->p99_us();
  return j;
}

Json describe(const w::NodeStats* n) {
  Json j = Json::object();
  put(j, "workspace", n->workspace());
  put(j, "node", n->node());
  j["workers"] = n->workers();
  j["in_flight"] = n->in_flight();
  j["queue_depth"] = n->queue_depth();
  j["completed"] = n->completed();
  j["failed"] = n->failed();
  if (n->failures()) j["failures"] = describe_vector(n->failures());
  j["rate_1m"] = n->rate_1m();
  if (n->queue_wait()) j["queue_wait"] = describe(n->queue_wait());
  if (n->service()) j["service"] = describe(n->service());
  return j;
}

Json describe(const w::RecentFailure* f) {
  Json j = Json::object();
  put(j, "workspace", f->workspace());
  put(j, "node", f->node());
  j["code"] = code_name(f->code());
  put(j, "message", f->message());
  j["age_ms"] = f->age_ms();
  return j;
}

Json describe(const w::NodeStatsReport* r) {
  Json j = Json::object();
  if (r->nodes()) j["nodes"] = describe_vector(r->nodes());
  if (r->recent_failures()) j["recent_failures"] = describe_vector(r->recent_failures());
  return j;
}

Json describe(const w::TokenCreate* t) {
  Json j = Json::object();
  put(j, "role", t->role());
  j["ttl_ms"] = t->ttl_ms();
  j["uses"] = t->uses();
  put(j, "workspace", t->workspace());
  put(j, "name", t->name());
  return j;
}

Json describe(const w::TokenRevoke* t) {
  Json j = Json::object();
  put(j, "id", t->id());
  return j;
}

Json describe(const w::KeyRevoke* k) {
  Json j = Json::object();
  put(j, "id", k->id());
  return j;
}

Json describe(const w::TokenCreated* t) {
  Json j = Json::object();
  put(j, "token", t->token());
  put(j, "id", t->id());
  put(j, "expires_at", t->expires_at());
  return j;
}

Json describe(const w::AdminReport* r) {
  Json j = Json::object();
  put(j, "json", r->json());
  return j;
}

Json describe(const w::EnrollRequest* r) {
  Json j = Json::object();
  put(j, "token", r->token());
  put(j, "public_key", r->public_key());
  put(j, "role", r->role());
  put(j, "name", r->name());
  put(j, "hostname", r->hostname());
  return j;
}

Json describe(const w::EnrollResponse* r) {
  Json j = Json::object();
  j["ok"] = r->ok();
  put(j, "identity_id", r->identity_id());
  put(j, "role", r->role());
  put(j, "workspace", r->workspace());
  put(j, "name", r->name());
  j["code"] = code_name(r->code());
  put(j, "error", r->error());
  return j;
}

template <class T>
Json with_type(const char* type, const T* table) {
  Json j = Json::object();
  j["type"] = type;
  Json fields = describe(table);
  for (auto& [k, v] : fields.items()) j[k] = v;
  return j;
}

// A NONE or unknown union member is a BadMessage (PROTOCOL.md §3 rule 4).
struct NoBody {};

Json body(const w::WorkerMessage* m) {
  switch (m->body_type()) {
    case w::WorkerBody::Attach: return with_type("Attach", m->body_as_Attach());
    case w::WorkerBody::Pong: return with_type("Pong", m->body_as_Pong());
    case w::WorkerBody::Progress: return with_type("Progress", m->body_as_Progress());
    case w::WorkerBody::Result: return with_type("Result", m->body_as_Result());
    case w::WorkerBody::Failure: return with_type("Failure", m->body_as_Failure());
    case w::WorkerBody::Detach: return with_type("Detach", m->body_as_Detach());
    case w::WorkerBody::Batch: return with_type("Batch", m->body_as_Batch());
    case w::WorkerBody::Item: return with_type("Item", m->body_as_Item());
    case w::WorkerBody::Chunk: return with_type("Chunk", m->body_as_Chunk());
    case w::WorkerBody::Credit: return with_type("Credit", m->body_as_Credit());
    default: throw NoBody{};
  }
}

Json body(const w::DaemonMessage* m) {
  switch (m->body_type()) {
    case w::DaemonBody::Ping: return with_type("Ping", m->body_as_Ping());
    case w::DaemonBody::WorkRequest: return with_type("WorkRequest", m->body_as_WorkRequest());
    case w::DaemonBody::Abort: return with_type("Abort", m->body_as_Abort());
    case w::DaemonBody::Attached: return with_type("Attached", m->body_as_Attached());
    case w::DaemonBody::Ack: return with_type("Ack", m->body_as_Ack());
    case w::DaemonBody::Rejected: return with_type("Rejected", m->body_as_Rejected());
    case w::DaemonBody::Batch: return with_type("Batch", m->body_as_Batch());
    case w::DaemonBody::Credit: return with_type("Credit", m->body_as_Credit());
    case w::DaemonBody::Chunk: return with_type("Chunk", m->body_as_Chunk());
    default: throw NoBody{};
  }
}

Json body(const w::ClientMessage* m) {
  auto empty = [](const char* type) { return Json{{"type", type}}; };
  switch (m->body_type()) {
    case w::ClientBody::Submit: return with_type("Submit", m->body_as_Submit());
    case w::ClientBody::Cancel: return empty("Cancel");
    case w::ClientBody::ListNodes: return empty("ListNodes");
    case w::ClientBody::ListWorkers: return empty("ListWorkers");
    case w::ClientBody::GetStatus: return empty("GetStatus");
    case w::ClientBody::TokenCreate: return with_type("TokenCreate", m->body_as_TokenCreate());
    case w::ClientBody::TokenList: return empty("TokenList");
    case w::ClientBody::TokenRevoke: return with_type("TokenRevoke", m->body_as_TokenRevoke());
    case w::ClientBody::KeyList: return empty("KeyList");
    case w::ClientBody::KeyRevoke: return with_type("KeyRevoke", m->body_as_KeyRevoke());
    case w::ClientBody::GetNodeStats: return empty("GetNodeStats");
    case w::ClientBody::JobResume: return with_type("JobResume", m->body_as_JobResume());
    case w::ClientBody::CallResume: return with_type("CallResume", m->body_as_CallResume());
    case w::ClientBody::JobAck: return with_type("JobAck", m->body_as_JobAck());
    case w::ClientBody::JobGet: return with_type("JobGet", m->body_as_JobGet());
    case w::ClientBody::JobList: return with_type("JobList", m->body_as_JobList());
    case w::ClientBody::JobCancel: return with_type("JobCancel", m->body_as_JobCancel());
    case w::ClientBody::Batch: return with_type("Batch", m->body_as_Batch());
    case w::ClientBody::Watch: return with_type("Watch", m->body_as_Watch());
    case w::ClientBody::Credit: return with_type("Credit", m->body_as_Credit());
    case w::ClientBody::Chunk: return with_type("Chunk", m->body_as_Chunk());
    default: throw NoBody{};
  }
}

Json body(const w::ClientReply* m) {
  switch (m->body_type()) {
    case w::ReplyBody::Accepted: return with_type("Accepted", m->body_as_Accepted());
    case w::ReplyBody::Progress: return with_type("Progress", m->body_as_Progress());
    case w::ReplyBody::Result: return with_type("Result", m->body_as_Result());
    case w::ReplyBody::Failure: return with_type("Failure", m->body_as_Failure());
    case w::ReplyBody::NodeList: return with_type("NodeList", m->body_as_NodeList());
    case w::ReplyBody::WorkerList: return with_type("WorkerList", m->body_as_WorkerList());
    case w::ReplyBody::StatusReport: return with_type("StatusReport", m->body_as_StatusReport());
    case w::ReplyBody::TokenCreated: return with_type("TokenCreated", m->body_as_TokenCreated());
    case w::ReplyBody::AdminReport: return with_type("AdminReport", m->body_as_AdminReport());
    case w::ReplyBody::NodeStatsReport: return with_type("NodeStatsReport", m->body_as_NodeStatsReport());
    case w::ReplyBody::JobInfo: return with_type("JobInfo", m->body_as_JobInfo());
    case w::ReplyBody::JobInfoList: return with_type("JobInfoList", m->body_as_JobInfoList());
    case w::ReplyBody::Batch: return with_type("Batch", m->body_as_Batch());
    case w::ReplyBody::Event: return with_type("Event", m->body_as_Event());
    case w::ReplyBody::Item: return with_type("Item", m->body_as_Item());
    case w::ReplyBody::Chunk: return with_type("Chunk", m->body_as_Chunk());
    case w::ReplyBody::Credit: return with_type("Credit", m->body_as_Credit());
    default: throw NoBody{};
  }
}

std::span<const std::uint8_t> span_of(const Bytes& b) { return {b.data(), b.size()}; }

// Verifies `bytes` as `root` with the muster readers and describes it; nullopt if the reader
// refuses the buffer (or its union body is NONE/unknown).
std::optional<Json> read_description(const std::string& root, const Bytes& bytes) {
  auto s = span_of(bytes);
  try {
    if (root == "WorkerMessage") {
      auto* m = muster::read_worker_message(s);
      if (!m) return std::nullopt;
      Json j = Json::object();
      put(j, "worker_id", m->worker_id());
      j["body"] = body(m);
      return j;
    }
    if (root == "DaemonMessage") {
      auto* m = muster::read_daemon_message(s);
      if (!m) return std::nullopt;
      return Json{{"body", body(m)}};
    }
    if (root == "ClientMessage") {
      auto* m = muster::read_client_message(s);
      if (!m) return std::nullopt;
      Json j = Json::object();
      j["request_id"] = m->request_id();
      j["body"] = body(m);
      if (m->on_behalf_of()) j["on_behalf_of"] = describe(m->on_behalf_of());
      return j;
    }
    if (root == "ClientReply") {
      auto* m = muster::read_client_reply(s);
      if (!m) return std::nullopt;
      Json j = Json::object();
      j["request_id"] = m->request_id();
      j["body"] = body(m);
      return j;
    }
    if (root == "EnrollRequest") {
      auto* m = muster::read_enroll_request(s);
      if (!m) return std::nullopt;
      return describe(m);
    }
    if (root == "EnrollResponse") {
      auto* m = muster::read_enroll_response(s);
      if (!m) return std::nullopt;
      return describe(m);
    }
    if (root == "Values") {
      if (bytes.size() < 8 || !flatbuffers::BufferHasIdentifier(bytes.data(), w::ValuesIdentifier()))
        return std::nullopt;
      return muster::to_json(muster::decode_values(s));
    }
  } catch (const NoBody&) {
    return std::nullopt;
  } catch (const std::runtime_error&) {  // decode_values: not a valid Values buffer
    return std::nullopt;
  }
  FAIL("unknown root " << root);
  return std::nullopt;
}

// ---- description -> buffer -----------------------------------------------------------------

Offset<flatbuffers::String> str(FlatBufferBuilder& fbb, const Json& j, const char* key) {
  return j.contains(key) ? fbb.CreateString(j.at(key).get<std::string>()) : 0;
}

template <class T>
T num(const Json& j, const char* key, T def) {
  return j.contains(key) ? j.at(key).get<T>() : def;
}

w::ErrorCode code(const Json& j, const char* key, w::ErrorCode def) {
  if (!j.contains(key)) return def;
  auto c = muster::error_code_from_name(j.at(key).get<std::string>());
  REQUIRE_MESSAGE(c.has_value(), "unknown error code " << j.at(key));
  return *c;
}

Offset<flatbuffers::Vector<std::uint8_t>> nested(FlatBufferBuilder& fbb, const Json& j, const char* key) {
  if (!j.contains(key)) return 0;
  muster::Map m;
  for (auto& [k, v] : j.at(key).items()) m.set(k, muster::from_json(v));
  auto bytes = muster::encode_values(m);
  fbb.ForceVectorAlignment(bytes.size(), 1, muster::kPayloadAlignment);  // PROTOCOL.md §3 rule 3
  return fbb.CreateVector(bytes);
}

Offset<w::Port> build_port(FlatBufferBuilder& fbb, const Json& j) {
  auto name = str(fbb, j, "name");
  auto type = str(fbb, j, "type");
  auto desc = str(fbb, j, "description");
  Offset<w::Value> def;
  if (j.contains("default_value")) def = muster::encode_value(fbb, muster::from_json(j.at("default_value")));
  w::PortBuilder b(fbb);
  b.add_name(name);
  b.add_type(type);
  b.add_description(desc);
  b.add_required(num<bool>(j, "required", false));
  if (!def.IsNull()) b.add_default_value(def);
  return b.Finish();
}

template <class T, class F>
Offset<flatbuffers::Vector<Offset<T>>> table_vector(FlatBufferBuilder& fbb, const Json& j, const char* key, F build) {
  if (!j.contains(key)) return 0;
  std::vector<Offset<T>> items;
  for (auto& item : j.at(key)) items.push_back(build(fbb, item));
  return fbb.CreateVector(items);
}

Offset<w::NodeSpec> build_spec(FlatBufferBuilder& fbb, const Json& j) {
  auto name = str(fbb, j, "name");
  auto desc = str(fbb, j, "description");
  auto cat = str(fbb, j, "category");
  auto ver = str(fbb, j, "version");
  auto in = table_vector<w::Port>(fbb, j, "inputs", build_port);
  auto out = table_vector<w::Port>(fbb, j, "outputs", build_port);
  auto params = table_vector<w::Port>(fbb, j, "parameters", build_port);
  w::NodeSpecBuilder b(fbb);
  b.add_name(name);
  b.add_description(desc);
  b.add_category(cat);
  b.add_version(ver);
  b.add_inputs(in);
  b.add_outputs(out);
  b.add_parameters(params);
  b.add_idempotent(num<bool>(j, "idempotent", false));
  b.add_default_timeout_ms(num<std::uint64_t>(j, "default_timeout_ms", 0));
  b.add_durable(num<bool>(j, "durable", false));
  return b.Finish();
}

Offset<w::CallerContext> build_caller(FlatBufferBuilder& fbb, const Json& j) {
  auto identity = str(fbb, j, "identity");
  auto name = str(fbb, j, "name");
  auto workspace = str(fbb, j, "workspace");
  auto role = str(fbb, j, "role");
  auto trace = str(fbb, j, "trace_id");
  return w::CreateCallerContext(fbb, identity, name, workspace, role, trace);
}

Offset<w::Progress> build_progress(FlatBufferBuilder& fbb, const Json& j) {
  auto msg = str(fbb, j, "message");
  return w::CreateProgress(fbb, num<std::uint64_t>(j, "request_id", 0), num<std::uint64_t>(j, "step", 0),
                           num<std::uint64_t>(j, "total", 0), msg);
}

Offset<w::Result> build_result(FlatBufferBuilder& fbb, const Json& j) {
  auto outputs = nested(fbb, j, "outputs");
  return w::CreateResult(fbb, num<std::uint64_t>(j, "request_id", 0), outputs,
                         num<bool>(j, "outputs_in_frame", false), num<std::uint64_t>(j, "job_id", 0));
}

Offset<w::Failure> build_failure(FlatBufferBuilder& fbb, const Json& j) {
  auto msg = str(fbb, j, "message");
  return w::CreateFailure(fbb, num<std::uint64_t>(j, "request_id", 0), code(j, "code", w::ErrorCode::Internal), msg,
                          num<std::uint64_t>(j, "job_id", 0));
}

Offset<w::Item> build_item(FlatBufferBuilder& fbb, const Json& j) {
  auto values = nested(fbb, j, "values");
  return w::CreateItem(fbb, num<std::uint64_t>(j, "request_id", 0), num<std::uint64_t>(j, "seq", 0), values);
}

Offset<w::Credit> build_credit(FlatBufferBuilder& fbb, const Json& j) {
  return w::CreateCredit(fbb, num<std::uint64_t>(j, "request_id", 0), num<std::uint32_t>(j, "stream", 0),
                         num<std::uint64_t>(j, "items", 0), num<std::uint64_t>(j, "bytes", 0),
                         num<std::uint64_t>(j, "resume_offset", 0), j.value("resume", false));
}

// A Chunk from its description: the data 8-byte aligned, as the SDKs write it.
Offset<w::Chunk> build_chunk(FlatBufferBuilder& fbb, const Json& j) {
  Offset<flatbuffers::Vector<std::uint8_t>> data;
  if (j.contains("data")) {
    auto b = muster::base64_decode(j.at("data").get<std::string>());
    fbb.ForceVectorAlignment(b.size(), 1, 8);
    data = fbb.CreateVector(b.data(), b.size());
  }
  return w::CreateChunk(fbb, num<std::uint64_t>(j, "request_id", 0), num<std::uint32_t>(j, "stream", 0),
                        num<std::uint64_t>(j, "offset", 0), data);
}

// A Batch from its description: each item's message 8-byte aligned (PROTOCOL.md §2.2).
Offset<w::Batch> build_batch(FlatBufferBuilder& fbb, const Json& j) {
  Offset<flatbuffers::Vector<Offset<w::BatchItem>>> items;
  if (j.contains("items")) {
    std::vector<Offset<w::BatchItem>> list;
    for (auto& i : j.at("items")) {
      Offset<flatbuffers::Vector<std::uint8_t>> bytes;
      if (i.contains("message")) {
        auto b = muster::base64_decode(i.at("message").get<std::string>());
        fbb.ForceVectorAlignment(b.size(), 1, 8);
        bytes = fbb.CreateVector(b.data(), b.size());
      }
      list.push_back(w::CreateBatchItem(fbb, bytes));
    }
    items = fbb.CreateVector(list);
  }
  return w::CreateBatch(fbb, items);
}

Offset<void> build_worker_body(FlatBufferBuilder& fbb, const Json& j, w::WorkerBody& type) {
  auto t = j.at("type").get<std::string>();
  if (t == "Attach") {
    type = w::WorkerBody::Attach;
    auto id = str(fbb, j, "worker_id");
    auto host = str(fbb, j, "hostname");
    auto sdk = str(fbb, j, "sdk");
    auto session = str(fbb, j, "session");
    auto nodes = table_vector<w::NodeSpec>(fbb, j, "nodes", build_spec);
    w::AttachBuilder b(fbb);
    b.add_worker_id(id);
    b.add_hostname(host);
    b.add_sdk(sdk);
    b.add_pid(num<std::uint32_t>(j, "pid", 0));
    b.add_session(session);
    b.add_capacity(num<std::uint32_t>(j, "capacity", 1));
    b.add_nodes(nodes);
    b.add_payload_frames(num<bool>(j, "payload_frames", false));
    b.add_no_answer_acks(num<bool>(j, "no_answer_acks", false));
    b.add_batches(num<bool>(j, "batches", false));
    b.add_idle_pongs(num<bool>(j, "idle_pongs", false));
    b.add_direct(num<bool>(j, "direct", false));
    return b.Finish().Union();
  }
  if (t == "Pong") {
    type = w::WorkerBody::Pong;
    auto inst = str(fbb, j, "instance");
    Offset<flatbuffers::Vector<std::uint64_t>> ids, answered;
    if (j.contains("in_flight")) ids = fbb.CreateVector(j.at("in_flight").get<std::vector<std::uint64_t>>());
    if (j.contains("answered")) answered = fbb.CreateVector(j.at("answered").get<std::vector<std::uint64_t>>());
    return w::CreatePong(fbb, num<std::uint64_t>(j, "seq", 0), inst, ids, answered).Union();
  }
  if (t == "Progress") return type = w::WorkerBody::Progress, build_progress(fbb, j).Union();
  if (t == "Result") return type = w::WorkerBody::Result, build_result(fbb, j).Union();
  if (t == "Failure") return type = w::WorkerBody::Failure, build_failure(fbb, j).Union();
  if (t == "Detach") {
    type = w::WorkerBody::Detach;
    auto reason = str(fbb, j, "reason");
    return w::CreateDetach(fbb, reason).Union();
  }
  if (t == "Batch") return type = w::WorkerBody::Batch, build_batch(fbb, j).Union();
  if (t == "Item") return type = w::WorkerBody::Item, build_item(fbb, j).Union();
  if (t == "Chunk") return type = w::WorkerBody::Chunk, build_chunk(fbb, j).Union();
  if (t == "Credit") return type = w::WorkerBody::Credit, build_credit(fbb, j).Union();
  FAIL("unknown WorkerBody member " << t);
  return 0;
}

Offset<void> build_daemon_body(FlatBufferBuilder& fbb, const Json& j, w::DaemonBody& type) {
  auto t = j.at("type").get<std::string>();
  if (t == "Ping") {
    type = w::DaemonBody::Ping;
    auto inst = str(fbb, j, "instance");
    return w::CreatePing(fbb, num<std::uint64_t>(j, "seq", 0), inst).Union();
  }
  if (t == "WorkRequest") {
    type = w::DaemonBody::WorkRequest;
    auto node = str(fbb, j, "node");
    auto inputs = nested(fbb, j, "inputs");
    auto params = nested(fbb, j, "parameters");
    Offset<w::CallerContext> caller;
    if (j.contains("caller")) caller = build_caller(fbb, j.at("caller"));
    w::WorkRequestBuilder b(fbb);
    b.add_request_id(num<std::uint64_t>(j, "request_id", 0));
    b.add_node(node);
    b.add_inputs(inputs);
    b.add_parameters(params);
    b.add_timeout_ms(num<std::uint64_t>(j, "timeout_ms", 0));
    b.add_attempt(num<std::uint32_t>(j, "attempt", 1));
    b.add_caller(caller);
    b.add_inputs_in_frame(num<bool>(j, "inputs_in_frame", false));
    b.add_stream_window_items(num<std::uint32_t>(j, "stream_window_items", 0));
    b.add_stream_window_bytes(num<std::uint64_t>(j, "stream_window_bytes", 0));
    b.add_chunk_window_bytes(num<std::uint64_t>(j, "chunk_window_bytes", 0));
    return b.Finish().Union();
  }
  if (t == "Abort") {
    type = w::DaemonBody::Abort;
    auto reason = str(fbb, j, "reason");
    return w::CreateAbort(fbb, num<std::uint64_t>(j, "request_id", 0), code(j, "code", w::ErrorCode::Cancelled), reason)
        .Union();
  }
  if (t == "Attached") {
    type = w::DaemonBody::Attached;
    auto id = str(fbb, j, "worker_id");
    auto inst = str(fbb, j, "instance");
    auto topic = str(fbb, j, "topic");
    auto bcast = str(fbb, j, "broadcast_topic");
    return w::CreateAttached(fbb, id, inst, topic, bcast, num<std::uint64_t>(j, "ping_interval_ms", 0),
                             num<std::uint32_t>(j, "liveness", 0), num<std::uint64_t>(j, "max_message_bytes", 0),
                             num<bool>(j, "no_answer_acks", false), num<bool>(j, "batches", false),
                             num<std::uint32_t>(j, "idle_pong_every", 0), num<bool>(j, "direct", false))
        .Union();
  }
  if (t == "Ack") {
    type = w::DaemonBody::Ack;
    Offset<flatbuffers::Vector<std::uint64_t>> missing;
    if (j.contains("missing")) missing = fbb.CreateVector(j.at("missing").get<std::vector<std::uint64_t>>());
    return w::CreateAck(fbb, num<bool>(j, "late", false), num<std::uint64_t>(j, "pong_seq", 0), missing).Union();
  }
  if (t == "Rejected") {
    type = w::DaemonBody::Rejected;
    auto msg = str(fbb, j, "message");
    return w::CreateRejected(fbb, code(j, "code", w::ErrorCode::BadMessage), msg, num<bool>(j, "reattach", false))
        .Union();
  }
  if (t == "Batch") return type = w::DaemonBody::Batch, build_batch(fbb, j).Union();
  if (t == "Credit") return type = w::DaemonBody::Credit, build_credit(fbb, j).Union();
  if (t == "Chunk") return type = w::DaemonBody::Chunk, build_chunk(fbb, j).Union();
  FAIL("unknown DaemonBody member " << t);
  return 0;
}

Offset<flatbuffers::Vector<std::uint64_t>> u64_vector(FlatBufferBuilder& fbb, const Json& j, const char* key);

Offset<void> build_client_body(FlatBufferBuilder& fbb, const Json& j, w::ClientBody& type) {
  auto t = j.at("type").get<std::string>();
  if (t == "Submit") {
    type = w::ClientBody::Submit;
    auto node = str(fbb, j, "node");
    auto inputs = nested(fbb, j, "inputs");
    auto params = nested(fbb, j, "parameters");
    auto trace = str(fbb, j, "trace_id");
    return w::CreateSubmit(fbb, node, inputs, params, num<std::uint64_t>(j, "timeout_ms", 0),
                           num<bool>(j, "want_progress", false), num<bool>(j, "want_accepted", false), trace,
                           num<bool>(j, "payload_frames", false), num<bool>(j, "durable", false),
                           num<bool>(j, "batch_replies", false), num<std::uint32_t>(j, "stream_window_items", 0),
                           num<std::uint64_t>(j, "stream_window_bytes", 0),
                           num<std::uint64_t>(j, "chunk_window_bytes", 0), num<bool>(j, "resumable", false))
        .Union();
  }
  if (t == "Cancel") return type = w::ClientBody::Cancel, w::CreateCancel(fbb).Union();
  if (t == "ListNodes") return type = w::ClientBody::ListNodes, w::CreateListNodes(fbb).Union();
  if (t == "ListWorkers") return type = w::ClientBody::ListWorkers, w::CreateListWorkers(fbb).Union();
  if (t == "GetStatus") return type = w::ClientBody::GetStatus, w::CreateGetStatus(fbb).Union();
  if (t == "GetNodeStats") return type = w::ClientBody::GetNodeStats, w::CreateGetNodeStats(fbb).Union();
  if (t == "TokenCreate") {
    type = w::ClientBody::TokenCreate;
    auto role = str(fbb, j, "role");
    auto ws = str(fbb, j, "workspace");
    auto name = str(fbb, j, "name");
    return w::CreateTokenCreate(fbb, role, num<std::uint64_t>(j, "ttl_ms", 0), num<std::uint32_t>(j, "uses", 1), ws, name)
        .Union();
  }
  if (t == "TokenList") return type = w::ClientBody::TokenList, w::CreateTokenList(fbb).Union();
  if (t == "TokenRevoke") {
    type = w::ClientBody::TokenRevoke;
    auto id = str(fbb, j, "id");
    return w::CreateTokenRevoke(fbb, id).Union();
  }
  if (t == "KeyList") return type = w::ClientBody::KeyList, w::CreateKeyList(fbb).Union();
  if (t == "JobResume") {
    type = w::ClientBody::JobResume;
    auto jobs = table_vector<w::JobRef>(fbb, j, "jobs", [](FlatBufferBuilder& f, const Json& r) {
      return w::CreateJobRef(f, num<std::uint64_t>(r, "job_id", 0), num<std::uint64_t>(r, "request_id", 0));
    });
    return w::CreateJobResume(fbb, jobs).Union();
  }
  if (t == "CallResume") {
    type = w::ClientBody::CallResume;
    auto calls = table_vector<w::CallRef>(fbb, j, "calls", [](FlatBufferBuilder& f, const Json& r) {
      auto outputs = table_vector<w::StreamOffset>(f, r, "outputs", [](FlatBufferBuilder& g, const Json& o) {
        return w::CreateStreamOffset(g, num<std::uint32_t>(o, "stream", 0), num<std::uint64_t>(o, "offset", 0));
      });
      return w::CreateCallRef(f, num<std::uint64_t>(r, "call_token", 0), num<std::uint64_t>(r, "request_id", 0),
                              num<std::uint64_t>(r, "items_received", 0), outputs);
    });
    return w::CreateCallResume(fbb, calls).Union();
  }
  if (t == "JobAck") return type = w::ClientBody::JobAck, w::CreateJobAck(fbb, u64_vector(fbb, j, "job_ids")).Union();
  if (t == "JobGet") return type = w::ClientBody::JobGet, w::CreateJobGet(fbb, num<std::uint64_t>(j, "job_id", 0)).Union();
  if (t == "JobList")
    return type = w::ClientBody::JobList,
           w::CreateJobList(fbb, num<std::uint32_t>(j, "limit", 0), num<std::uint64_t>(j, "after_job_id", 0)).Union();
  if (t == "JobCancel")
    return type = w::ClientBody::JobCancel, w::CreateJobCancel(fbb, num<std::uint64_t>(j, "job_id", 0)).Union();
  if (t == "KeyRevoke") {
    type = w::ClientBody::KeyRevoke;
    auto id = str(fbb, j, "id");
    return w::CreateKeyRevoke(fbb, id).Union();
  }
  if (t == "Batch") return type = w::ClientBody::Batch, build_batch(fbb, j).Union();
  if (t == "Watch")
    return type = w::ClientBody::Watch,
           w::CreateWatch(fbb, j.value("nodes", false), j.value("workers", false), j.value("calls", false)).Union();
  if (t == "Credit") return type = w::ClientBody::Credit, build_credit(fbb, j).Union();
  if (t == "Chunk") return type = w::ClientBody::Chunk, build_chunk(fbb, j).Union();
  FAIL("unknown ClientBody member " << t);
  return 0;
}

Offset<w::NodeInfo> build_node_info(FlatBufferBuilder& fbb, const Json& j) {
  Offset<w::NodeSpec> spec;
  if (j.contains("spec")) spec = build_spec(fbb, j.at("spec"));
  auto ws = str(fbb, j, "workspace");
  return w::CreateNodeInfo(fbb, spec, ws, num<std::uint32_t>(j, "workers", 0), num<std::uint32_t>(j, "capacity", 0),
                           num<std::uint32_t>(j, "in_flight", 0), num<std::uint32_t>(j, "queue_depth", 0));
}

Offset<w::WorkerInfo> build_worker_info(FlatBufferBuilder& fbb, const Json& j) {
  auto id = str(fbb, j, "worker_id");
  auto host = str(fbb, j, "hostname");
  auto sdk = str(fbb, j, "sdk");
  auto state = str(fbb, j, "state");
  Offset<flatbuffers::Vector<Offset<flatbuffers::String>>> nodes;
  if (j.contains("nodes")) nodes = fbb.CreateVectorOfStrings(j.at("nodes").get<std::vector<std::string>>());
  auto ws = str(fbb, j, "workspace");
  auto identity = str(fbb, j, "identity");
  w::WorkerInfoBuilder b(fbb);
  b.add_worker_id(id);
  b.add_hostname(host);
  b.add_sdk(sdk);
  b.add_pid(num<std::uint32_t>(j, "pid", 0));
  b.add_state(state);
  b.add_capacity(num<std::uint32_t>(j, "capacity", 0));
  b.add_in_flight(num<std::uint32_t>(j, "in_flight", 0));
  b.add_nodes(nodes);
  b.add_workspace(ws);
  b.add_identity(identity);
  b.add_attached_ms(num<std::uint64_t>(j, "attached_ms", 0));
  b.add_last_seen_ms(num<std::uint64_t>(j, "last_seen_ms", 0));
  b.add_direct(num<bool>(j, "direct", false));
  return b.Finish();
}

Offset<w::CodeCount> build_code_count(FlatBufferBuilder& fbb, const Json& j) {
  return w::CreateCodeCount(fbb, code(j, "code", w::ErrorCode::None), num<std::uint64_t>(j, "count", 0));
}

Offset<flatbuffers::Vector<std::uint64_t>> u64_vector(FlatBufferBuilder& fbb, const Json& j, const char* key) {
  if (!j.contains(key)) return 0;
  return fbb.CreateVector(j.at(key).get<std::vector<std::uint64_t>>());
}

Offset<w::LatencyHistogram> build_histogram(FlatBufferBuilder& fbb, const Json& j, const char* key) {
  if (!j.contains(key)) return 0;
  const Json& h = j.at(key);
  auto bounds = u64_vector(fbb, h, "upper_bounds_us");
  auto counts = u64_vector(fbb, h, "counts");
  return w::CreateLatencyHistogram(fbb, bounds, counts, num<std::uint64_t>(h, "count", 0),
                                   num<std::uint64_t>(h, "sum_us", 0), num<std::uint64_t>(h, "p50_us", 0),
                                   num<std::uint64_t>(h, "p90_us", 0), num<std::uint64_t>(h, "p99_us", 0));
}

Offset<w::NodeStats> build_node_stats(FlatBufferBuilder& fbb, const Json& j) {
  auto ws = str(fbb, j, "workspace");
  auto node = str(fbb, j, "node");
  auto failures = table_vector<w::CodeCount>(fbb, j, "failures", build_code_count);
  auto wait = build_histogram(fbb, j, "queue_wait");
  auto service = build_histogram(fbb, j, "service");
  return w::CreateNodeStats(fbb, ws, node, num<std::uint32_t>(j, "workers", 0),
                            num<std::uint32_t>(j, "in_flight", 0), num<std::uint32_t>(j, "queue_depth", 0),
                            num<std::uint64_t>(j, "completed", 0), num<std::uint64_t>(j, "failed", 0),
                            failures, num<double>(j, "rate_1m", 0.0), wait, service);
}

w::JobState job_state(const Json& j, const char* key) {
  if (!j.contains(key)) return w::JobState::Queued;
  const Json& v = j.at(key);
  if (v.is_number()) return static_cast<w::JobState>(v.get<int>());
  for (auto& [state, name] : kJobStateNames)
    if (v.get<std::string>() == name) return state;
  FAIL("unknown job state " << v);
  return w::JobState::Queued;
}

Offset<w::JobInfo> build_job_info(FlatBufferBuilder& fbb, const Json& j) {
  auto node = str(fbb, j, "node");
  auto ws = str(fbb, j, "workspace");
  auto worker = str(fbb, j, "worker_id");
  return w::CreateJobInfo(fbb, num<std::uint64_t>(j, "job_id", 0), job_state(j, "state"), node, ws,
                          num<std::uint64_t>(j, "submitted_ms", 0), worker, num<std::uint32_t>(j, "attempts", 0),
                          code(j, "code", w::ErrorCode::None), num<std::uint64_t>(j, "finished_ms", 0));
}

Offset<w::CallInfo> build_call_info(FlatBufferBuilder& fbb, const Json& j) {
  auto node = str(fbb, j, "node");
  auto worker = str(fbb, j, "worker_id");
  auto trace = str(fbb, j, "trace_id");
  return w::CreateCallInfo(fbb, num<std::uint64_t>(j, "request_id", 0), num<std::uint64_t>(j, "job_id", 0), node,
                           job_state(j, "state"), worker, num<std::uint32_t>(j, "attempts", 0),
                           code(j, "code", w::ErrorCode::None), trace);
}

w::EventKind event_kind(const Json& j) {
  if (!j.contains("kind")) return w::EventKind::Snapshot;
  const Json& v = j.at("kind");
  if (v.is_number()) return static_cast<w::EventKind>(v.get<int>());
  for (auto& [kind, name] : kEventKindNames)
    if (v.get<std::string>() == name) return kind;
  FAIL("unknown event kind " << v);
  return w::EventKind::Snapshot;
}

Offset<w::Event> build_event(FlatBufferBuilder& fbb, const Json& j) {
  auto nodes = table_vector<w::NodeInfo>(fbb, j, "nodes", build_node_info);
  auto workers = table_vector<w::WorkerInfo>(fbb, j, "workers", build_worker_info);
  auto calls = table_vector<w::CallInfo>(fbb, j, "calls", build_call_info);
  Offset<w::NodeInfo> node;
  Offset<w::WorkerInfo> worker;
  Offset<w::CallInfo> call;
  if (j.contains("node")) node = build_node_info(fbb, j.at("node"));
  if (j.contains("worker")) worker = build_worker_info(fbb, j.at("worker"));
  if (j.contains("call")) call = build_call_info(fbb, j.at("call"));
  return w::CreateEvent(fbb, num<std::uint64_t>(j, "seq", 0), event_kind(j), nodes, workers, calls, node, worker,
                        call);
}

Offset<w::RecentFailure> build_recent_failure(FlatBufferBuilder& fbb, const Json& j) {
  auto ws = str(fbb, j, "workspace");
  auto node = str(fbb, j, "node");
  auto msg = str(fbb, j, "message");
  return w::CreateRecentFailure(fbb, ws, node, code(j, "code", w::ErrorCode::None), msg,
                                num<std::uint64_t>(j, "age_ms", 0));
}

Offset<void> build_reply_body(FlatBufferBuilder& fbb, const Json& j, w::ReplyBody& type) {
  auto t = j.at("type").get<std::string>();
  if (t == "Accepted") return type = w::ReplyBody::Accepted, w::CreateAccepted(fbb, num<bool>(j, "queued", false), num<std::uint64_t>(j, "job_id", 0), num<std::uint64_t>(j, "call_token", 0)).Union();
  if (t == "Progress") return type = w::ReplyBody::Progress, build_progress(fbb, j).Union();
  if (t == "Result") return type = w::ReplyBody::Result, build_result(fbb, j).Union();
  if (t == "Failure") return type = w::ReplyBody::Failure, build_failure(fbb, j).Union();
  if (t == "NodeList") {
    type = w::ReplyBody::NodeList;
    auto nodes = table_vector<w::NodeInfo>(fbb, j, "nodes", build_node_info);
    return w::CreateNodeList(fbb, nodes).Union();
  }
  if (t == "WorkerList") {
    type = w::ReplyBody::WorkerList;
    auto workers = table_vector<w::WorkerInfo>(fbb, j, "workers", build_worker_info);
    return w::CreateWorkerList(fbb, workers).Union();
  }
  if (t == "StatusReport") {
    type = w::ReplyBody::StatusReport;
    auto version = str(fbb, j, "version");
    auto inst = str(fbb, j, "instance");
    auto failures = table_vector<w::CodeCount>(fbb, j, "failures", build_code_count);
    w::StatusReportBuilder b(fbb);
    b.add_version(version);
    b.add_instance(inst);
    b.add_uptime_ms(num<std::uint64_t>(j, "uptime_ms", 0));
    b.add_workers(num<std::uint32_t>(j, "workers", 0));
    b.add_nodes(num<std::uint32_t>(j, "nodes", 0));
    b.add_queued(num<std::uint32_t>(j, "queued", 0));
    b.add_in_flight(num<std::uint32_t>(j, "in_flight", 0));
    b.add_submitted(num<std::uint64_t>(j, "submitted", 0));
    b.add_completed(num<std::uint64_t>(j, "completed", 0));
    b.add_failed(num<std::uint64_t>(j, "failed", 0));
    b.add_failures(failures);
    b.add_redispatched(num<std::uint64_t>(j, "redispatched", 0));
    b.add_rate_1m(num<double>(j, "rate_1m", 0.0));
    b.add_recovering(num<std::uint32_t>(j, "recovering", 0));
    return b.Finish().Union();
  }
  if (t == "TokenCreated") {
    type = w::ReplyBody::TokenCreated;
    auto token = str(fbb, j, "token");
    auto id = str(fbb, j, "id");
    auto expires = str(fbb, j, "expires_at");
    return w::CreateTokenCreated(fbb, token, id, expires).Union();
  }
  if (t == "AdminReport") {
    type = w::ReplyBody::AdminReport;
    auto json = str(fbb, j, "json");
    return w::CreateAdminReport(fbb, json).Union();
  }
  if (t == "NodeStatsReport") {
    type = w::ReplyBody::NodeStatsReport;
    auto nodes = table_vector<w::NodeStats>(fbb, j, "nodes", build_node_stats);
    auto failures = table_vector<w::RecentFailure>(fbb, j, "recent_failures", build_recent_failure);
    return w::CreateNodeStatsReport(fbb, nodes, failures).Union();
  }
  if (t == "JobInfo") return type = w::ReplyBody::JobInfo, build_job_info(fbb, j).Union();
  if (t == "JobInfoList") {
    type = w::ReplyBody::JobInfoList;
    return w::CreateJobInfoList(fbb, table_vector<w::JobInfo>(fbb, j, "jobs", build_job_info),
                                j.value("more", false)).Union();
  }
  if (t == "Batch") return type = w::ReplyBody::Batch, build_batch(fbb, j).Union();
  if (t == "Event") return type = w::ReplyBody::Event, build_event(fbb, j).Union();
  if (t == "Item") return type = w::ReplyBody::Item, build_item(fbb, j).Union();
  if (t == "Chunk") return type = w::ReplyBody::Chunk, build_chunk(fbb, j).Union();
  if (t == "Credit") return type = w::ReplyBody::Credit, build_credit(fbb, j).Union();
  FAIL("unknown ReplyBody member " << t);
  return 0;
}

Bytes finish(FlatBufferBuilder& fbb) { return {fbb.GetBufferPointer(), fbb.GetBufferPointer() + fbb.GetSize()}; }

Bytes build(const std::string& root, const Json& j) {
  FlatBufferBuilder fbb(1024);
  if (root == "WorkerMessage") {
    auto id = str(fbb, j, "worker_id");
    w::WorkerBody type = w::WorkerBody::NONE;
    auto body = build_worker_body(fbb, j.at("body"), type);
    w::WorkerMessageBuilder b(fbb);
    b.add_worker_id(id);
    b.add_body_type(type);
    b.add_body(body);
    fbb.Finish(b.Finish(), w::WorkerMessageIdentifier());
  } else if (root == "DaemonMessage") {
    w::DaemonBody type = w::DaemonBody::NONE;
    auto body = build_daemon_body(fbb, j.at("body"), type);
    fbb.Finish(w::CreateDaemonMessage(fbb, type, body), w::DaemonMessageIdentifier());
  } else if (root == "ClientMessage") {
    w::ClientBody type = w::ClientBody::NONE;
    auto body = build_client_body(fbb, j.at("body"), type);
    Offset<w::OnBehalfOf> asserted;
    if (j.contains("on_behalf_of")) {
      auto& o = j.at("on_behalf_of");
      asserted = w::CreateOnBehalfOf(fbb, fbb.CreateString(o.value("user", "")), fbb.CreateString(o.value("workspace", "")),
                                     o.contains("role") ? fbb.CreateString(o.value("role", "")) : 0);
    }
    fbb.Finish(w::CreateClientMessage(fbb, num<std::uint64_t>(j, "request_id", 0), type, body, asserted),
               w::ClientMessageIdentifier());
  } else if (root == "ClientReply") {
    w::ReplyBody type = w::ReplyBody::NONE;
    auto body = build_reply_body(fbb, j.at("body"), type);
    fbb.Finish(w::CreateClientReply(fbb, num<std::uint64_t>(j, "request_id", 0), type, body),
               w::ClientReplyIdentifier());
  } else if (root == "EnrollRequest") {
    auto token = str(fbb, j, "token");
    auto key = str(fbb, j, "public_key");
    auto role = str(fbb, j, "role");
    auto name = str(fbb, j, "name");
    auto host = str(fbb, j, "hostname");
    fbb.Finish(w::CreateEnrollRequest(fbb, token, key, role, name, host), w::EnrollRequestIdentifier());
  } else if (root == "EnrollResponse") {
    auto id = str(fbb, j, "identity_id");
    auto role = str(fbb, j, "role");
    auto ws = str(fbb, j, "workspace");
    auto name = str(fbb, j, "name");
    auto error = str(fbb, j, "error");
    fbb.Finish(w::CreateEnrollResponse(fbb, num<bool>(j, "ok", false), id, role, ws, name,
                                       code(j, "code", w::ErrorCode::None), error),
               w::EnrollResponseIdentifier());
  } else if (root == "Values") {
    muster::Map m;
    for (auto& [k, v] : j.items()) m.set(k, muster::from_json(v));
    return muster::encode_values(m);
  } else {
    FAIL("unknown root " << root);
  }
  return finish(fbb);
}

// ---- comparing -----------------------------------------------------------------------------

// Strict JSON equality (tests/vectors/README.md): same types (signed and unsigned integers are
// one type), objects in order, doubles bit for bit unless `zero_sign_lenient`. Returns the
// path of the first difference, or nullopt.
std::optional<std::string> differ(const Json& a, const Json& b, bool zero_sign_lenient, const std::string& path = "$") {
  auto integral = [](const Json& x) { return x.is_number_integer(); };  // integer or unsigned
  if (integral(a) && integral(b)) {
    bool an = a.is_number_unsigned() ? false : a.get<std::int64_t>() < 0;
    bool bn = b.is_number_unsigned() ? false : b.get<std::int64_t>() < 0;
    if (an != bn) return path;
    if (an) return a.get<std::int64_t>() == b.get<std::int64_t>() ? std::nullopt : std::optional(path);
    return a.get<std::uint64_t>() == b.get<std::uint64_t>() ? std::nullopt : std::optional(path);
  }
  if (a.type() != b.type()) return path + " (type)";
  if (a.is_number_float()) {
    double x = a.get<double>(), y = b.get<double>();
    if (zero_sign_lenient ? x == y : std::bit_cast<std::uint64_t>(x) == std::bit_cast<std::uint64_t>(y))
      return std::nullopt;
    return path;
  }
  if (a.is_object()) {
    if (a.size() != b.size()) return path + " (keys)";
    auto ia = a.begin();
    auto ib = b.begin();
    for (; ia != a.end(); ++ia, ++ib) {
      if (ia.key() != ib.key()) return path + " (key order: " + ia.key() + " vs " + ib.key() + ")";
      if (auto d = differ(ia.value(), ib.value(), zero_sign_lenient, path + "." + ia.key())) return d;
    }
    return std::nullopt;
  }
  if (a.is_array()) {
    if (a.size() != b.size()) return path + " (length)";
    for (std::size_t i = 0; i < a.size(); ++i)
      if (auto d = differ(a[i], b[i], zero_sign_lenient, path + "[" + std::to_string(i) + "]")) return d;
    return std::nullopt;
  }
  return a == b ? std::nullopt : std::optional(path);
}

Bytes read_file(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  REQUIRE_MESSAGE(f.good(), "cannot read " << p);
  return Bytes(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
}

std::vector<std::string> vector_names() {
  std::vector<std::string> names;
  for (auto& e : fs::directory_iterator(MUSTER_VECTORS_DIR))
    if (e.path().extension() == ".bin") names.push_back(e.path().stem().string());
  std::sort(names.begin(), names.end());
  return names;
}

}  // namespace

TEST_CASE("golden vectors: decode, describe, re-encode (tests/vectors)") {
  auto names = vector_names();
  REQUIRE_MESSAGE(names.size() >= 40, "expected the golden vectors in " << MUSTER_VECTORS_DIR);
  int valid = 0, invalid = 0;
  std::vector<std::string> zero_sign_lost;
  for (auto& name : names) {
    CAPTURE(name);
    fs::path dir(MUSTER_VECTORS_DIR);
    Bytes bytes = read_file(dir / (name + ".bin"));
    std::ifstream jf(dir / (name + ".json"));
    REQUIRE_MESSAGE(jf.good(), "missing " << name << ".json");
    Json desc = Json::parse(jf);
    auto root = desc.at("root").get<std::string>();

    auto got = read_description(root, bytes);
    if (desc.contains("valid") && !desc.at("valid").get<bool>()) {
      ++invalid;
      CHECK_MESSAGE(!got.has_value(), name << " must be refused: " << desc.value("why", std::string()));
      continue;
    }
    ++valid;
    REQUIRE_MESSAGE(got.has_value(), name << " was refused by the C++ reader");
    const Json& want = desc.at("message");
    auto d1 = differ(*got, want, false);
    CHECK_MESSAGE(!d1, name << ": decoded description differs at " << d1.value_or("") << "\n got: " << got->dump()
                            << "\nwant: " << want.dump());

    // description -> FlatBufferBuilder -> reader -> description
    Bytes again = build(root, want);
    auto back = read_description(root, again);
    REQUIRE_MESSAGE(back.has_value(), name << ": the rebuilt buffer was refused");
    if (auto d2 = differ(*back, want, false)) {
      // muster::encode_value writes Float through ValueBuilder::add_float_value, which (like
      // every FlatBuffers scalar) is skipped when equal to the default 0.0 — and -0.0 == 0.0,
      // so -0.0 reads back as +0.0. Tolerated here (and reported); everything else is exact.
      auto d3 = differ(*back, want, true);
      CHECK_MESSAGE(!d3, name << ": rebuilt description differs at " << d3.value_or("") << "\n got: " << back->dump()
                              << "\nwant: " << want.dump());
      if (!d3) zero_sign_lost.push_back(name + " at " + *d2);
    }
  }
  if (!zero_sign_lost.empty()) {
    std::string list;
    for (auto& n : zero_sign_lost) list += "\n  " + n;
    MESSAGE("muster::encode_value loses the sign of -0.0 (a FlatBuffers default-skip) in:" << list);
  }
  CHECK(valid > 0);
  CHECK(invalid > 0);
}

namespace {

// The nested payload vectors of a buffer, found with the plain FlatBuffers Verifier (not the
// muster readers, which refuse a misaligned payload): name -> offset of the vector's data.
std::vector<std::pair<std::string, std::ptrdiff_t>> payload_offsets(const std::string& root, const Bytes& b) {
  std::vector<std::pair<std::string, std::ptrdiff_t>> out;
  auto at = [&](const char* field, const flatbuffers::Vector<std::uint8_t>* v) {
    if (v) out.emplace_back(field, v->data() - b.data());
  };
  flatbuffers::Verifier v(b.data(), b.size(), muster::kVerifierMaxDepth, muster::kVerifierMaxTables);
  if (root == "WorkerMessage" && w::VerifyWorkerMessageBuffer(v)) {
    if (auto* r = w::GetWorkerMessage(b.data())->body_as_Result()) at("Result.outputs", r->outputs());
  } else if (root == "DaemonMessage" && w::VerifyDaemonMessageBuffer(v)) {
    if (auto* r = w::GetDaemonMessage(b.data())->body_as_WorkRequest()) {
      at("WorkRequest.inputs", r->inputs());
      at("WorkRequest.parameters", r->parameters());
    }
  } else if (root == "ClientMessage" && w::VerifyClientMessageBuffer(v)) {
    if (auto* s = w::GetClientMessage(b.data())->body_as_Submit()) {
      at("Submit.inputs", s->inputs());
      at("Submit.parameters", s->parameters());
    }
  } else if (root == "ClientReply" && w::VerifyClientReplyBuffer(v)) {
    if (auto* r = w::GetClientReply(b.data())->body_as_Result()) at("Result.outputs", r->outputs());
  }
  return out;
}

// A WorkerMessage Result whose outputs (a valid Values buffer) start off an 8-byte boundary:
// what a writer using a plain CreateVector (4-byte alignment) produces half of the time.
Bytes misaligned_result(std::string& worker_id) {
  auto nested = muster::encode_values(muster::Map{{"ok", true}});
  for (worker_id = "w"; worker_id.size() < 16; worker_id += "x") {
    FlatBufferBuilder fbb;
    auto vec = fbb.CreateVector(nested);
    auto body = w::CreateResult(fbb, 1, vec);
    muster::finish_worker_message(fbb, worker_id, w::WorkerBody::Result, body.Union());
    Bytes b(fbb.GetBufferPointer(), fbb.GetBufferPointer() + fbb.GetSize());
    auto offs = payload_offsets("WorkerMessage", b);
    REQUIRE(offs.size() == 1);
    if (offs[0].second % 8 != 0) return b;
  }
  FAIL("could not lay out a misaligned Result");
  return {};
}

}  // namespace

TEST_CASE("golden vectors: every nested payload of a valid vector starts on an 8-byte boundary") {
  // PROTOCOL.md §3 rule 3. Five vectors marked valid broke it (written with the generated
  // Make*VectorFromBytes / a 1-aligned vector), so a reader that checks the rule refused them.
  int with_payload = 0;
  std::vector<std::string> misaligned;
  for (auto& name : vector_names()) {
    std::ifstream jf(fs::path(MUSTER_VECTORS_DIR) / (name + ".json"));
    Json desc = Json::parse(jf);
    if (desc.contains("valid")) continue;
    auto offs = payload_offsets(desc.at("root").get<std::string>(), read_file(fs::path(MUSTER_VECTORS_DIR) / (name + ".bin")));
    if (!offs.empty()) ++with_payload;
    for (auto& [field, off] : offs)
      if (off % 8 != 0) misaligned.push_back(name + " " + field + " at offset " + std::to_string(off));
  }
  std::string list;
  for (auto& m : misaligned) list += "\n  " + m;
  CHECK_MESSAGE(misaligned.empty(), "nested payloads off an 8-byte boundary:" << list);
  CHECK(with_payload >= 10);
}

TEST_CASE("readers refuse a nested payload that starts off an 8-byte boundary") {
  std::string worker_id;
  Bytes bad = misaligned_result(worker_id);
  CHECK(muster::read_worker_message(bad) == nullptr);
  // The same message with the payload aligned is read.
  FlatBufferBuilder fbb;
  auto nested = muster::encode_values(muster::Map{{"ok", true}});
  fbb.ForceVectorAlignment(nested.size(), 1, muster::kPayloadAlignment);
  auto vec = fbb.CreateVector(nested);
  muster::finish_worker_message(fbb, worker_id, w::WorkerBody::Result, w::CreateResult(fbb, 1, vec).Union());
  CHECK(muster::read_worker_message({fbb.GetBufferPointer(), fbb.GetSize()}) != nullptr);

  // Every root that carries payloads, laid out with a plain 4-aligned CreateVector built after
  // a string of 1..8 bytes (which moves the payload by 4 bytes now and then): each reader
  // accepts exactly the aligned layouts, and both layouts occur.
  using Build = Bytes (*)(const Bytes& nested, const std::string& pad);
  struct Case {
    const char* root;
    Build build;
    bool (*read)(const Bytes&);
  };
  const Case cases[] = {
      {"ClientMessage",
       [](const Bytes& nested, const std::string& pad) {
         FlatBufferBuilder f;
         auto node = f.CreateString(pad);
         auto params = f.CreateVector(nested);
         w::SubmitBuilder sb(f);
         sb.add_node(node);
         sb.add_parameters(params);
         auto body = sb.Finish();
         f.Finish(w::CreateClientMessage(f, 1, w::ClientBody::Submit, body.Union()), w::ClientMessageIdentifier());
         return Bytes(f.GetBufferPointer(), f.GetBufferPointer() + f.GetSize());
       },
       [](const Bytes& b) { return muster::read_client_message(b) != nullptr; }},
      {"DaemonMessage",
       [](const Bytes& nested, const std::string& pad) {
         FlatBufferBuilder f;
         auto node = f.CreateString(pad);
         auto inputs = f.CreateVector(nested);
         w::WorkRequestBuilder wb(f);
         wb.add_request_id(1);
         wb.add_node(node);
         wb.add_inputs(inputs);
         auto body = wb.Finish();
         f.Finish(w::CreateDaemonMessage(f, w::DaemonBody::WorkRequest, body.Union()), w::DaemonMessageIdentifier());
         return Bytes(f.GetBufferPointer(), f.GetBufferPointer() + f.GetSize());
       },
       [](const Bytes& b) { return muster::read_daemon_message(b) != nullptr; }},
      {"ClientReply",
       [](const Bytes& nested, const std::string& pad) {
         FlatBufferBuilder f;
         f.CreateString(pad);
         auto outputs = f.CreateVector(nested);
         auto body = w::CreateResult(f, 1, outputs);
         f.Finish(w::CreateClientReply(f, 1, w::ReplyBody::Result, body.Union()), w::ClientReplyIdentifier());
         return Bytes(f.GetBufferPointer(), f.GetBufferPointer() + f.GetSize());
       },
       [](const Bytes& b) { return muster::read_client_reply(b) != nullptr; }},
      {"WorkerMessage",
       [](const Bytes& nested, const std::string& pad) {
         FlatBufferBuilder f;
         f.CreateString(pad);  // filler before the payload: moves it by 4 bytes now and then
         auto outputs = f.CreateVector(nested);
         muster::finish_worker_message(f, "w", w::WorkerBody::Result, w::CreateResult(f, 1, outputs).Union());
         return Bytes(f.GetBufferPointer(), f.GetBufferPointer() + f.GetSize());
       },
       [](const Bytes& b) { return muster::read_worker_message(b) != nullptr; }},
  };
  for (const Case& c : cases) {
    INFO("root " << c.root);
    bool saw_aligned = false, saw_misaligned = false;
    for (std::string pad = "p"; pad.size() <= 8; pad += "p") {
      Bytes b = c.build(nested, pad);
      auto offs = payload_offsets(c.root, b);
      REQUIRE(offs.size() == 1);
      bool aligned = offs[0].second % 8 == 0;
      (aligned ? saw_aligned : saw_misaligned) = true;
      CHECK(c.read(b) == aligned);
    }
    CHECK(saw_aligned);
    CHECK(saw_misaligned);
  }
}

TEST_CASE("musterd refuses a Result whose outputs start off an 8-byte boundary") {
  // Before: musterd read it (outputs at offset 92 were accepted) and forwarded them.
  muster::test::DaemonProcess daemon;
  zmq::context_t ctx;
  zmq::socket_t dealer(ctx, zmq::socket_type::dealer);
  dealer.set(zmq::sockopt::linger, 0);
  dealer.connect(daemon.endpoint("response"));
  auto answer = [&](const Bytes& bytes) {
    dealer.send(zmq::message_t(bytes.data(), bytes.size()), zmq::send_flags::none);
    zmq::pollitem_t item{dealer.handle(), 0, ZMQ_POLLIN, 0};
    zmq::poll(&item, 1, std::chrono::milliseconds(5000));
    REQUIRE((item.revents & ZMQ_POLLIN));
    zmq::message_t m;
    REQUIRE(dealer.recv(m));
    muster::align_payload(m);
    auto* msg = muster::read_daemon_message(muster::bytes_of(m));
    REQUIRE(msg != nullptr);
    REQUIRE(msg->body_type() == w::DaemonBody::Rejected);
    auto* r = msg->body_as_Rejected();
    return std::pair{r->code(), r->message() ? r->message()->str() : std::string()};
  };
  std::string worker_id;
  Bytes bad = misaligned_result(worker_id);
  auto [code, message] = answer(bad);
  CHECK(code == w::ErrorCode::BadMessage);
  CHECK(message.find("fails verification") != std::string::npos);

  // The same Result with its outputs aligned is read: refused only because no such worker is
  // attached (whatever code that gets, not BadMessage).
  FlatBufferBuilder fbb;
  auto nested = muster::encode_values(muster::Map{{"ok", true}});
  fbb.ForceVectorAlignment(nested.size(), 1, muster::kPayloadAlignment);
  auto vec = fbb.CreateVector(nested);
  muster::finish_worker_message(fbb, worker_id, w::WorkerBody::Result, w::CreateResult(fbb, 1, vec).Union());
  auto [code2, message2] = answer(Bytes(fbb.GetBufferPointer(), fbb.GetBufferPointer() + fbb.GetSize()));
  CHECK(code2 != w::ErrorCode::BadMessage);
}

TEST_CASE("golden vectors: every root and union member is covered") {
  std::set<std::string> seen;
  for (auto& name : vector_names()) {
    std::ifstream jf(fs::path(MUSTER_VECTORS_DIR) / (name + ".json"));
    Json desc = Json::parse(jf);
    if (desc.contains("valid")) continue;
    auto root = desc.at("root").get<std::string>();
    seen.insert(root);
    const Json& m = desc.at("message");
    if (root != "Values" && m.contains("body")) seen.insert(root + "." + m.at("body").at("type").get<std::string>());
  }
  for (const char* want :
       {"WorkerMessage", "DaemonMessage", "ClientMessage", "ClientReply", "EnrollRequest", "EnrollResponse", "Values",
        "WorkerMessage.Attach", "WorkerMessage.Pong", "WorkerMessage.Progress", "WorkerMessage.Result",
        "WorkerMessage.Failure", "WorkerMessage.Detach", "DaemonMessage.Ping", "DaemonMessage.WorkRequest",
        "DaemonMessage.Abort", "DaemonMessage.Attached", "DaemonMessage.Ack", "DaemonMessage.Rejected",
        "ClientMessage.Submit", "ClientMessage.Cancel", "ClientMessage.ListNodes", "ClientMessage.ListWorkers",
        "ClientMessage.GetStatus", "ClientMessage.TokenCreate", "ClientMessage.TokenList",
        "ClientMessage.TokenRevoke", "ClientMessage.KeyList", "ClientMessage.KeyRevoke", "ClientReply.Accepted",
        "ClientReply.Progress", "ClientReply.Result", "ClientReply.Failure", "ClientReply.NodeList",
        "ClientReply.WorkerList", "ClientReply.StatusReport", "ClientReply.TokenCreated",
        "ClientReply.AdminReport", "ClientMessage.GetNodeStats", "ClientReply.NodeStatsReport",
        "ClientMessage.JobResume", "ClientMessage.JobAck", "ClientMessage.JobGet", "ClientMessage.JobList",
        "ClientMessage.JobCancel", "ClientReply.JobInfo", "ClientReply.JobInfoList",
        "WorkerMessage.Batch", "DaemonMessage.Batch", "ClientMessage.Batch", "ClientReply.Batch",
        "ClientMessage.Watch", "ClientReply.Event",
        "WorkerMessage.Item", "ClientReply.Item", "ClientMessage.Credit", "DaemonMessage.Credit",
        "ClientMessage.Chunk", "DaemonMessage.Chunk", "WorkerMessage.Chunk", "ClientReply.Chunk",
        "WorkerMessage.Credit", "ClientReply.Credit", "ClientMessage.CallResume"}) {
    CHECK_MESSAGE(seen.count(want) == 1, "no vector for " << want);
  }
}

// ---- keys fixtures (tests/vectors/keys): tokens and peer identity files -----------------------
// The C++ keys library writes them (MUSTER_WRITE_KEY_FIXTURES=1 muster_unit_tests -tc='*keys
// fixtures*') and checks them on every run; the Python and TypeScript SDKs check the same files,
// so a token parses, and a peer's key files and identity file read, identically everywhere.
#if __has_include("muster/local_identity.hpp")
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>

#include "muster/key_file.hpp"
#include "muster/local_identity.hpp"
#include "muster/secure_file.hpp"
#include "muster/token.hpp"

namespace {

namespace k = muster::keys;

const char* token_error_name(k::TokenFormatError e) {
  switch (e) {
    case k::TokenFormatError::None: return "None";
    case k::TokenFormatError::Empty: return "Empty";
    case k::TokenFormatError::Whitespace: return "Whitespace";
    case k::TokenFormatError::BadCharacters: return "BadCharacters";
    case k::TokenFormatError::WrongLength: return "WrongLength";
    case k::TokenFormatError::WrongTag: return "WrongTag";
    case k::TokenFormatError::WrongPartCount: return "WrongPartCount";
    case k::TokenFormatError::BadId: return "BadId";
    case k::TokenFormatError::BadSecret: return "BadSecret";
    case k::TokenFormatError::BadDaemonKey: return "BadDaemonKey";
  }
  return "?";
}

fs::path keys_fixture_dir() { return fs::path(MUSTER_VECTORS_DIR) / "keys"; }

std::string read_text(const fs::path& p) {
  auto b = read_file(p);
  return std::string(b.begin(), b.end());
}

// Malformed spellings of a valid token `t` (112 characters), each breaking one rule.
std::vector<std::pair<std::string, std::string>> malformed_tokens(const std::string& t) {
  auto with = [&](std::size_t at, char c) {
    std::string s = t;
    s[at] = c;
    return s;
  };
  const std::size_t id_at = 8, secret_at = 25, key_at = 69;  // first character of each part
  // The last character of a 43-character base64url part carries 2 unused bits: 'B' sets one.
  auto noncanonical = [&](std::size_t last) {
    std::string s = t;
    s[last] = s[last] == 'A' ? 'B' : 'A';
    if (k::parse_token(s)) s[last] = 'B';  // 'A' was canonical: any other low-bit value is not
    return s;
  };
  std::string upper_id = t;
  for (std::size_t i = id_at; i < id_at + 16; ++i) upper_id[i] = 'F';
  std::string shifted = t;  // id of 15 digits, secret of 44 characters
  shifted[id_at + 15] = '.';
  shifted[secret_at - 1] = 'A';
  std::string short_secret = t;  // secret of 42 characters, key of 44
  short_secret[key_at - 2] = '.';
  short_secret[key_at - 1] = 'A';
  return {
      {"empty", ""},
      {"leading space", " " + t},
      {"trailing newline", t + "\n"},
      {"inner tab", with(40, '\t')},
      {"plus sign", with(40, '+')},
      {"non-ASCII", t.substr(0, 100) + "\xc3\xa9" + t.substr(102)},
      {"wrong tag", "muster2" + t.substr(7)},
      {"upper-case tag", "MUSTER1" + t.substr(7)},
      {"short tag", "muster." + t.substr(7)},
      {"truncated", t.substr(0, 111)},
      {"extended", t + "A"},
      {"tag only", "muster1."},
      {"five parts", with(50, '.')},
      {"three parts", with(key_at - 1, 'A')},
      {"upper-case id", upper_id},
      {"id not hex", with(id_at + 3, 'g')},
      {"id of 15 digits", shifted},
      {"secret not canonical", noncanonical(key_at - 2)},
      {"secret of 42 characters", short_secret},
      {"daemon key not canonical", noncanonical(t.size() - 1)},
  };
}

void write_keys_fixtures(const fs::path& dir) {
  fs::create_directories(dir / "data");
  fs::permissions(dir / "data", fs::perms::owner_all, fs::perm_options::replace);
  // A daemon key pair for the tokens, and a token with a fixed id.
  k::KeyPair daemon = k::generate_key_pair();
  k::Token tok = k::generate_token(daemon.public_bytes());
  Json valid = Json::array();
  valid.push_back({{"text", tok.to_string()},
                   {"id", tok.id},
                   {"secret_hex", k::hex_encode(tok.secret)},
                   {"daemon_public_key", tok.daemon_public_key_z85()}});
  Json invalid = Json::array();
  for (auto& [what, text] : malformed_tokens(tok.to_string())) {
    auto r = k::parse_token(text);
    REQUIRE_MESSAGE(!r, what << " parsed");
    invalid.push_back({{"what", what}, {"text", text}, {"error", token_error_name(r.error)}, {"message", r.message}});
  }
  Json doc = {{"comment", "written by tests/unit/vectors_test.cpp from the C++ keys library (keys/src/token.cpp)"},
              {"valid", valid},
              {"invalid", invalid}};
  k::write_file_atomic(dir / "tokens.json", doc.dump(2) + "\n", 0644);

  // A peer data directory: worker-curve.key/.pub and worker-identity.json, enrolled with the
  // daemon above.
  for (const char* f : {"worker-curve.key", "worker-curve.pub", "worker-identity.json"}) fs::remove(dir / "data" / f);
  auto plan = k::plan_enrollment(dir / "data", "worker", tok.to_string());
  k::record_enrollment(dir / "data", "worker", plan, "3f1c9b2e-8d4a-4b6e-9f10-2a3b4c5d6e7f", "worker", "research",
                       "gpu-box ✓", *k::parse_timestamp("2026-11-21T23:30:01.042Z"));
  // git does not keep 0600: readers copy the files and chmod 600 before loading.
  fs::permissions(dir / "data" / "worker-curve.key", fs::perms::owner_read | fs::perms::owner_write |
                                                         fs::perms::group_read | fs::perms::others_read,
                  fs::perm_options::replace);
  fs::permissions(dir / "data" / "worker-identity.json", fs::perms::owner_read | fs::perms::owner_write |
                                                             fs::perms::group_read | fs::perms::others_read,
                  fs::perm_options::replace);
  fs::permissions(dir / "data", fs::perms::owner_all | fs::perms::group_read | fs::perms::group_exec |
                                    fs::perms::others_read | fs::perms::others_exec,
                  fs::perm_options::replace);
}

}  // namespace

TEST_CASE("golden vectors: keys fixtures (tokens, peer key and identity files) read as the C++ library reads them") {
  const fs::path dir = keys_fixture_dir();
  if (const char* w = std::getenv("MUSTER_WRITE_KEY_FIXTURES"); w && *w) write_keys_fixtures(dir);
  REQUIRE_MESSAGE(fs::exists(dir / "tokens.json"), "missing " << (dir / "tokens.json"));
  Json doc = Json::parse(read_text(dir / "tokens.json"));
  for (auto& v : doc.at("valid")) {
    auto r = k::parse_token(v.at("text").get<std::string>());
    REQUIRE(r);
    CHECK(r.token->id == v.at("id").get<std::string>());
    CHECK(k::hex_encode(r.token->secret) == v.at("secret_hex").get<std::string>());
    CHECK(r.token->daemon_public_key_z85() == v.at("daemon_public_key").get<std::string>());
    CHECK(r.token->to_string() == v.at("text").get<std::string>());
  }
  REQUIRE(doc.at("invalid").size() >= 15);
  for (auto& v : doc.at("invalid")) {
    CAPTURE(v.at("what").get<std::string>());
    auto r = k::parse_token(v.at("text").get<std::string>());
    CHECK(!r);
    CHECK(std::string(token_error_name(r.error)) == v.at("error").get<std::string>());
    CHECK(r.message == v.at("message").get<std::string>());
  }

  // Copy the peer data directory with the modes it must have, then read it with keys/.
  const fs::path tmp = fs::temp_directory_path() / ("muster-keys-fixture-" + std::to_string(::getpid()));
  fs::remove_all(tmp);
  fs::create_directories(tmp);
  fs::permissions(tmp, fs::perms::owner_all, fs::perm_options::replace);
  for (const char* f : {"worker-curve.key", "worker-curve.pub", "worker-identity.json"}) {
    fs::copy_file(dir / "data" / f, tmp / f);
    fs::permissions(tmp / f, fs::perms::owner_read | fs::perms::owner_write, fs::perm_options::replace);
  }
  const std::string token = doc.at("valid").at(0).at("text").get<std::string>();
  auto plan = k::plan_enrollment(tmp, "worker", token);
  CHECK_FALSE(plan.needs_enrollment());
  CHECK(plan.daemon_public_key == doc.at("valid").at(0).at("daemon_public_key").get<std::string>());
  REQUIRE(plan.identity);
  CHECK(plan.identity->identity_id == "3f1c9b2e-8d4a-4b6e-9f10-2a3b4c5d6e7f");
  CHECK(plan.identity->name == "gpu-box ✓");
  CHECK(k::format_timestamp(plan.identity->enrolled_at) == "2026-11-21T23:30:01.042Z");
  CHECK(k::format_secret_key_file(plan.keys) == read_text(dir / "data" / "worker-curve.key"));
  CHECK(k::format_public_key_file(plan.keys.public_key) == read_text(dir / "data" / "worker-curve.pub"));
  // Saving what was loaded writes the very same bytes.
  k::save_local_identity(tmp, "copy", *plan.identity);
  CHECK(read_text(tmp / "copy-identity.json") == read_text(dir / "data" / "worker-identity.json"));
  fs::remove_all(tmp);
}
#endif
