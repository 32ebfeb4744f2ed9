// inbound_test.cpp — musterd's decoding of what peers send (broker/inbound.hpp), and what the
// core makes of it: bytes of one payload frame in, an event or a refusal out.
#include <doctest/doctest.h>

#include <chrono>
#include <optional>
#include <tuple>

#include <fmt/format.h>
#include <memory>
#include <vector>

#include "broker_core.hpp"
#include "inbound.hpp"
#include "muster/messages.hpp"
#include "muster/node_spec.hpp"
#include "muster/value.hpp"

using namespace muster;
using namespace muster::broker;
using namespace std::chrono_literals;

namespace {

using Buf = std::vector<std::uint8_t>;

Buf finished(flatbuffers::FlatBufferBuilder& fbb) {
  return {fbb.GetBufferPointer(), fbb.GetBufferPointer() + fbb.GetSize()};
}

Buf worker_msg(const std::string& worker_id, wire::WorkerBody type, flatbuffers::FlatBufferBuilder& fbb,
                 flatbuffers::Offset<void> body) {
  finish_worker_message(fbb, worker_id, type, body);
  return finished(fbb);
}

Buf attach_msg(const std::string& envelope_id, const std::string& attach_id, std::size_t nodes) {
  flatbuffers::FlatBufferBuilder fbb;
  std::vector<flatbuffers::Offset<wire::NodeSpec>> specs;
  for (std::size_t i = 0; i < nodes; ++i) {
    NodeSpec s;
    s.name = "n" + std::to_string(i);
    specs.push_back(encode_node_spec(fbb, s));
  }
  auto body = wire::CreateAttachDirect(fbb, attach_id.c_str(), "host", "test", 1, "s", 1, &specs);
  return worker_msg(envelope_id, wire::WorkerBody::Attach, fbb, body.Union());
}

Buf result_msg(const std::string& worker_id, std::uint64_t id, std::size_t payload_bytes) {
  flatbuffers::FlatBufferBuilder fbb(payload_bytes + 256);
  auto values = encode_values(Map{{"blob", Value(Bytes(payload_bytes, 0x5a))}});
  fbb.ForceVectorAlignment(values.size(), 1, 8);
  auto out = fbb.CreateVector(values);
  wire::ResultBuilder rb(fbb);
  rb.add_request_id(id);
  rb.add_outputs(out);
  auto body = rb.Finish();
  return worker_msg(worker_id, wire::WorkerBody::Result, fbb, body.Union());
}

Buf failure_msg(const std::string& worker_id, std::uint64_t id, wire::ErrorCode code) {
  flatbuffers::FlatBufferBuilder fbb;
  auto body = wire::CreateFailureDirect(fbb, id, code, "it broke");
  return worker_msg(worker_id, wire::WorkerBody::Failure, fbb, body.Union());
}

Buf submit_msg(std::uint64_t rid, std::size_t payload_bytes) {
  flatbuffers::FlatBufferBuilder fbb(payload_bytes + 256);
  auto values = encode_values(Map{{"blob", Value(Bytes(payload_bytes, 0x11))}});
  fbb.ForceVectorAlignment(values.size(), 1, 8);
  auto in = fbb.CreateVector(values);
  auto node = fbb.CreateString("echo");
  wire::SubmitBuilder s(fbb);
  s.add_node(node);
  s.add_inputs(in);
  auto body = s.Finish();
  wire::ClientMessageBuilder b(fbb);
  b.add_request_id(rid);
  b.add_body_type(wire::ClientBody::Submit);
  b.add_body(body.Union());
  fbb.Finish(b.Finish(), wire::ClientMessageIdentifier());
  return finished(fbb);
}

// Decodes `bytes` as musterd does, counting how often the owner was asked for.
struct Decoded {
  std::shared_ptr<Buf> owner;
  int kept = 0;
};
WorkerEvent decode_worker(const Buf& bytes, const InboundLimits& limits, Decoded& d) {
  d.owner = std::make_shared<Buf>(bytes);
  return decode_worker_message({d.owner->data(), d.owner->size()}, [&] { ++d.kept; return d.owner; }, limits);
}
ClientEvent decode_client(const Buf& bytes, const InboundLimits& limits, Decoded& d) {
  d.owner = std::make_shared<Buf>(bytes);
  return decode_client_message({d.owner->data(), d.owner->size()}, [&] { ++d.kept; return d.owner; }, limits);
}

}  // namespace

TEST_CASE("inbound: every worker message must name its worker, and an Attach the same one") {
  Decoded d;
  auto ev = decode_worker(attach_msg("", "w1", 1), {}, d);
  REQUIRE(std::holds_alternative<Refusal>(ev));
  CHECK(std::get<Refusal>(ev).why.find("worker_id is required") != std::string::npos);

  ev = decode_worker(attach_msg("w2", "w1", 1), {}, d);
  REQUIRE(std::holds_alternative<Refusal>(ev));
  CHECK(std::get<Refusal>(ev).code == ErrorCode::BadMessage);

  ev = decode_worker(attach_msg("w1", "w1", 2), {}, d);
  REQUIRE(std::holds_alternative<AttachEvent>(ev));
  CHECK(std::get<AttachEvent>(ev).nodes.size() == 2);
}

TEST_CASE("inbound: an Attach with more nodes than the limit is refused before its specs are read") {
  Decoded d;
  InboundLimits limits;
  limits.max_attach_nodes = 10;
  auto ev = decode_worker(attach_msg("w1", "w1", 11), limits, d);
  REQUIRE(std::holds_alternative<Refusal>(ev));
  CHECK(std::get<Refusal>(ev).code == ErrorCode::InvalidRequest);
  CHECK(std::get<Refusal>(ev).why.find("11 nodes; the limit is 10") != std::string::npos);
  CHECK(std::holds_alternative<AttachEvent>(decode_worker(attach_msg("w1", "w1", 10), limits, d)));
}

TEST_CASE("inbound: an Attach over max_attach_bytes is refused without being verified") {
  Decoded d;
  InboundLimits limits;
  limits.max_attach_bytes = 64 * 1024;
  auto big = attach_msg("w1", "w1", 5000);
  REQUIRE(big.size() > limits.max_attach_bytes);
  auto ev = decode_worker(big, limits, d);
  REQUIRE(std::holds_alternative<Refusal>(ev));
  CHECK(std::get<Refusal>(ev).code == ErrorCode::InvalidRequest);
  CHECK(std::get<Refusal>(ev).why.find("exceeds the limit of 65536 bytes for an Attach") != std::string::npos);
  // Unverifiable even in its root table: the usual refusal (and no read out of bounds: ASan).
  big.resize(big.size() / 2);
  big[0] = 0xff;
  big[1] = 0xff;
  big[2] = 0xff;
  big[3] = 0x7f;
  ev = decode_worker(big, limits, d);
  REQUIRE(std::holds_alternative<Refusal>(ev));
  CHECK(std::get<Refusal>(ev).code == ErrorCode::BadMessage);
  // A large Result is not an Attach: it is decoded as usual.
  CHECK(std::holds_alternative<ResultEvent>(decode_worker(result_msg("w1", 1, 100 * 1024), limits, d)));
}

TEST_CASE("inbound: a Result over the size limit becomes the worker's WORKER_ERROR for that request") {
  Decoded d;
  InboundLimits limits;
  limits.max_message_bytes = 64 * 1024;
  auto ev = decode_worker(result_msg("w1", 7, 100 * 1024), limits, d);
  REQUIRE(std::holds_alternative<FailureEvent>(ev));
  auto& f = std::get<FailureEvent>(ev);
  CHECK(f.worker_id == "w1");
  CHECK(f.request_id == 7);
  CHECK(f.code == ErrorCode::WorkerError);
  CHECK(f.message.find("exceeds the daemon's limit of 65536 bytes") != std::string::npos);
  CHECK(d.kept == 0);  // nothing of it is kept

  // Beyond twice the limit (the socket's own bound) nothing is read.
  ev = decode_worker(result_msg("w1", 7, 200 * 1024), limits, d);
  REQUIRE(std::holds_alternative<Refusal>(ev));
  // Under the limit it is a Result, its outputs kept in place.
  ev = decode_worker(result_msg("w1", 7, 32 * 1024), limits, d);
  REQUIRE(std::holds_alternative<ResultEvent>(ev));
  CHECK(d.kept == 1);
  CHECK(std::get<ResultEvent>(ev).outputs.bytes.data() >= d.owner->data());
  // An oversize message that is not a Result is refused.
  flatbuffers::FlatBufferBuilder fbb;
  std::string huge(100 * 1024, 'x');
  auto body = wire::CreateProgressDirect(fbb, 7, 1, 2, huge.c_str());
  CHECK(std::holds_alternative<Refusal>(
      decode_worker(worker_msg("w1", wire::WorkerBody::Progress, fbb, body.Union()), limits, d)));
}

TEST_CASE("inbound: a small Submit's payload is copied, a large one's message is kept") {
  InboundLimits limits;
  limits.copy_payloads_below = 8192;
  Decoded d;
  auto ev = decode_client(submit_msg(1, 100), limits, d);
  REQUIRE(std::holds_alternative<SubmitEvent>(ev));
  CHECK(d.kept == 0);
  auto& small = std::get<SubmitEvent>(ev).inputs;
  CHECK((small.bytes.data() < d.owner->data() || small.bytes.data() >= d.owner->data() + d.owner->size()));
  CHECK(reinterpret_cast<std::uintptr_t>(small.bytes.data()) % 8 == 0);

  ev = decode_client(submit_msg(2, 20000), limits, d);
  REQUIRE(std::holds_alternative<SubmitEvent>(ev));
  CHECK(d.kept == 1);
  CHECK(std::get<SubmitEvent>(ev).inputs.owner == d.owner);
}

TEST_CASE("inbound: a Submit's and a Result's values are marked verified (the core reads them without verifying again)") {
  InboundLimits limits;
  Decoded d;
  for (std::size_t size : {100, 20000}) {  // copied out, and kept in the message
    auto submit = decode_client(submit_msg(1, size), limits, d);
    REQUIRE(std::holds_alternative<SubmitEvent>(submit));
    CHECK(std::get<SubmitEvent>(submit).inputs.verified_values);
    auto result = decode_worker(result_msg("w", 1, size), limits, d);
    REQUIRE(std::holds_alternative<ResultEvent>(result));
    CHECK(std::get<ResultEvent>(result).outputs.verified_values);
  }
  CHECK_FALSE(Payload::copy_of(std::vector<std::uint8_t>{1, 2, 3}).verified_values);  // made up: not verified
  // A made-up buffer is verified as ever: bytes that are not Values hold no Chunked value.
  std::vector<std::uint8_t> junk(64, 0xff);
  CHECK(chunked_refs(junk).empty());
}

TEST_CASE("inbound: the client socket's limits copy a small Submit's payload out of its message") {
  // musterd's own limits (the daemon's client socket), not hand-set ones: a queued request
  // must not keep libzmq's shared 8 KiB read buffer alive (~3 KiB per open request when it did).
  auto limits = client_socket_limits(16u << 20, 1000);
  CHECK(limits.copy_payloads_below == 8192);
  Decoded d;
  auto ev = decode_client(submit_msg(1, 100), limits, d);
  REQUIRE(std::holds_alternative<SubmitEvent>(ev));
  CHECK(d.kept == 0);
  auto& small = std::get<SubmitEvent>(ev).inputs;
  CHECK((small.bytes.data() < d.owner->data() || small.bytes.data() >= d.owner->data() + d.owner->size()));
}

TEST_CASE("inbound: garbage and wrong roots are refused with a reason, request id kept when known") {
  Decoded d;
  auto ev = decode_client(Buf{1, 2, 3}, {}, d);
  REQUIRE(std::holds_alternative<Refusal>(ev));
  CHECK(std::get<Refusal>(ev).why.find("too short") != std::string::npos);
  ev = decode_client(attach_msg("w1", "w1", 1), {}, d);
  REQUIRE(std::holds_alternative<Refusal>(ev));
  CHECK(std::get<Refusal>(ev).why.find("WorkerMessage was sent where a ClientMessage") != std::string::npos);
}

TEST_CASE("a worker's failure codes: only those a worker may send pass, any other becomes WORKER_ERROR") {
  CoreConfig config;
  config.instance = "inst";
  TimePoint now{};
  BrokerCore core(config, now);
  Caller local;
  Peer worker{"wp", false, ""};
  Peer client{"c1", false, ""};
  Decoded d;
  deliver(core, now, worker, local, decode_worker(attach_msg("w1", "w1", 1), {}, d));
  std::uint64_t seq = 0;
  for (auto& a : core.actions())
    if (auto* p = std::get_if<SendPing>(&a)) seq = p->seq;
  core.actions().clear();
  core.on_pong(now, worker, local, "w1", seq, "inst", {});
  core.actions().clear();

  auto call = [&](std::uint64_t rid, wire::ErrorCode code) -> FailureBody {
    SubmitEvent ev;
    ev.client_request_id = rid;
    ev.node = "n0";
    core.on_submit(now, client, local, std::move(ev));
    std::uint64_t daemon_id = 0;
    for (auto& a : core.actions())
      if (auto* w = std::get_if<SendWorkRequest>(&a)) daemon_id = w->request_id;
    REQUIRE(daemon_id != 0);
    core.actions().clear();
    deliver(core, now, worker, local, decode_worker(failure_msg("w1", daemon_id, code), {}, d));
    std::optional<FailureBody> out;
    for (auto& a : core.actions())
      if (auto* r = std::get_if<ReplyToClient>(&a))
        if (auto* f = std::get_if<FailureBody>(&r->body)) out = *f;
    core.actions().clear();
    REQUIRE(out);
    return *out;
  };
  CHECK(call(1, wire::ErrorCode::WorkerError).code == ErrorCode::WorkerError);
  CHECK(call(2, wire::ErrorCode::InvalidRequest).code == ErrorCode::InvalidRequest);
  // What a forwarding worker (muster-bridge host) met downstream passes too.
  CHECK(call(3, wire::ErrorCode::WorkerLost).code == ErrorCode::WorkerLost);
  CHECK(call(4, wire::ErrorCode::NoWorker).code == ErrorCode::NoWorker);
  CHECK(call(5, wire::ErrorCode::Timeout).code == ErrorCode::Timeout);
  CHECK(call(6, wire::ErrorCode::ShuttingDown).code == ErrorCode::ShuttingDown);
  for (auto [rid, code, name] : {std::tuple{13, wire::ErrorCode::Internal, "INTERNAL"},
                                 {14, wire::ErrorCode::BadMessage, "BAD_MESSAGE"},
                                 {15, wire::ErrorCode::PermissionDenied, "PERMISSION_DENIED"},
                                 {16, wire::ErrorCode::None, "NONE"},
                                 {17, wire::ErrorCode::Cancelled, "CANCELLED"},
                                 {18, wire::ErrorCode::Unavailable, "UNAVAILABLE"},
                                 {19, wire::ErrorCode::QueueFull, "QUEUE_FULL"},
                                 {20, static_cast<wire::ErrorCode>(200), "200"}}) {
    auto f = call(static_cast<std::uint64_t>(rid), code);
    CHECK(f.code == ErrorCode::WorkerError);
    CHECK(f.message == fmt::format("worker sent code {}: it broke", name));
  }
}

namespace {

Buf client_msg(std::uint64_t rid, wire::ClientBody type, flatbuffers::FlatBufferBuilder& fbb,
               flatbuffers::Offset<void> body) {
  wire::ClientMessageBuilder b(fbb);
  b.add_request_id(rid);
  b.add_body_type(type);
  b.add_body(body);
  fbb.Finish(b.Finish(), wire::ClientMessageIdentifier());
  return finished(fbb);
}

template <class T>
T job_event(const ClientEvent& ev) {
  auto* job = std::get_if<JobEvent>(&ev);
  REQUIRE(job != nullptr);
  auto* e = std::get_if<T>(job);
  REQUIRE(e != nullptr);
  CHECK(request_id_of(*job) == e->request_id);
  return *e;
}

}  // namespace

TEST_CASE("inbound: the durable-job messages decode to their events, with the message's request id") {
  Decoded d;
  {
    flatbuffers::FlatBufferBuilder fbb;
    std::vector<flatbuffers::Offset<wire::JobRef>> offsets{wire::CreateJobRef(fbb, 7, 70), wire::CreateJobRef(fbb, 8, 80)};
    auto body = wire::CreateJobResumeDirect(fbb, &offsets);
    auto ev = job_event<JobResumeEvent>(decode_client(client_msg(5, wire::ClientBody::JobResume, fbb, body.Union()), {}, d));
    CHECK(ev.request_id == 5);
    REQUIRE(ev.jobs.size() == 2);
    CHECK(ev.jobs[1].job_id == 8);
    CHECK(ev.jobs[1].request_id == 80);
  }
  {
    flatbuffers::FlatBufferBuilder fbb;
    auto body = wire::CreateJobResume(fbb);  // no list at all: nothing to resume
    CHECK(job_event<JobResumeEvent>(decode_client(client_msg(6, wire::ClientBody::JobResume, fbb, body.Union()), {}, d))
              .jobs.empty());
  }
  {
    flatbuffers::FlatBufferBuilder fbb;
    std::vector<std::uint64_t> ids{3, 4, 5};
    auto body = wire::CreateJobAckDirect(fbb, &ids);
    CHECK(job_event<JobAckEvent>(decode_client(client_msg(9, wire::ClientBody::JobAck, fbb, body.Union()), {}, d))
              .job_ids == ids);
  }
  {
    flatbuffers::FlatBufferBuilder fbb;
    auto body = wire::CreateJobGet(fbb, 42);
    CHECK(job_event<JobGetEvent>(decode_client(client_msg(10, wire::ClientBody::JobGet, fbb, body.Union()), {}, d))
              .job_id == 42);
  }
  {
    flatbuffers::FlatBufferBuilder fbb;
    auto body = wire::CreateJobList(fbb);
    CHECK(job_event<JobListEvent>(decode_client(client_msg(11, wire::ClientBody::JobList, fbb, body.Union()), {}, d))
              .request_id == 11);
  }
  {
    flatbuffers::FlatBufferBuilder fbb;
    auto body = wire::CreateJobCancel(fbb, 43);
    CHECK(job_event<JobCancelEvent>(decode_client(client_msg(12, wire::ClientBody::JobCancel, fbb, body.Union()), {}, d))
              .job_id == 43);
  }
}
