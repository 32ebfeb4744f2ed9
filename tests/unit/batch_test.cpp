// batch_test.cpp — the Batch envelope (PROTOCOL.md §2.2): its codec (schema/batch.hpp),
// musterd's decoding of batches (broker/inbound.hpp), and a real musterd batching on the wire
// for peers that asked and never for peers that did not, with the C++ SDK worker and client.
#include <doctest/doctest.h>

#include <chrono>
#include <map>
#include <optional>
#include <thread>
#include <vector>

#include <zmq.hpp>

#include "daemon_process.hpp"
#include "inbound.hpp"
#include "muster/align.hpp"
#include "muster/batch.hpp"
#include "muster/batch_message.hpp"
#include "muster/client.hpp"
#include "muster/frames.hpp"
#include "muster/messages.hpp"
#include "muster/node_spec.hpp"
#include "muster/value.hpp"
#include "muster/worker.hpp"

using namespace muster;
using namespace muster::broker;
using namespace std::chrono_literals;
using muster::test::DaemonProcess;

namespace {

using Buf = std::vector<std::uint8_t>;

Buf finished(flatbuffers::FlatBufferBuilder& fbb) {
  return {fbb.GetBufferPointer(), fbb.GetBufferPointer() + fbb.GetSize()};
}
std::span<const std::uint8_t> span_of(const Buf& b) { return {b.data(), b.size()}; }

flatbuffers::Offset<flatbuffers::Vector<std::uint8_t>> values_vector(flatbuffers::FlatBufferBuilder& fbb,
                                                                      const Map& m) {
  auto v = encode_values(m);
  fbb.ForceVectorAlignment(v.size(), 1, 8);
  return fbb.CreateVector(v);
}

Buf result_msg(const std::string& worker_id, std::uint64_t id, const Map& outputs) {
  flatbuffers::FlatBufferBuilder fbb;
  auto out = values_vector(fbb, outputs);
  auto body = wire::CreateResult(fbb, id, out);
  finish_worker_message(fbb, worker_id, wire::WorkerBody::Result, body.Union());
  return finished(fbb);
}

Buf failure_msg(const std::string& worker_id, std::uint64_t id) {
  flatbuffers::FlatBufferBuilder fbb;
  auto body = wire::CreateFailureDirect(fbb, id, wire::ErrorCode::WorkerError, "it broke");
  finish_worker_message(fbb, worker_id, wire::WorkerBody::Failure, body.Union());
  return finished(fbb);
}

Buf submit_msg(std::uint64_t rid, const Map& inputs, bool batch_replies) {
  flatbuffers::FlatBufferBuilder fbb;
  auto in = values_vector(fbb, inputs);
  auto node = fbb.CreateString("echo");
  wire::SubmitBuilder s(fbb);
  s.add_node(node);
  s.add_inputs(in);
  s.add_timeout_ms(20000);
  s.add_batch_replies(batch_replies);
  auto body = s.Finish();
  fbb.Finish(wire::CreateClientMessage(fbb, rid, wire::ClientBody::Submit, body.Union()),
             wire::ClientMessageIdentifier());
  return finished(fbb);
}

Buf batch_of(BatchRoot root, const std::vector<Buf>& items, std::string_view worker_id = {}) {
  BatchWriter w;
  for (auto& i : items) w.add(span_of(i));
  auto& fbb = w.finish(root, worker_id);
  return finished(fbb);
}

// A Batch whose one item does not start on an 8-byte boundary (built without
// ForceVectorAlignment, with a string before it moved until the item lands off the boundary).
Buf misaligned_worker_batch(const Buf& item) {
  for (std::size_t pad = 0; pad < 16; ++pad) {
    flatbuffers::FlatBufferBuilder fbb;
    auto bytes = fbb.CreateVector(item.data(), item.size());
    auto items = fbb.CreateVector(std::vector{wire::CreateBatchItem(fbb, bytes)});
    auto batch = wire::CreateBatch(fbb, items);
    finish_worker_message(fbb, std::string(pad + 1, 'w'), wire::WorkerBody::Batch, batch.Union());
    Buf out = finished(fbb);
    auto* msg = read_worker_message(span_of(out));
    REQUIRE(msg != nullptr);
    auto* data = msg->body_as_Batch()->items()->Get(0)->message()->data();
    if ((data - out.data()) % 8 != 0) return out;
  }
  FAIL("could not build a misaligned batch");
  return {};
}

std::vector<WorkerEvent> worker_events(const Buf& bytes) {
  auto owner = std::make_shared<Buf>(bytes);
  std::vector<WorkerEvent> out;
  for_each_worker_event(span_of(*owner), [&] { return owner; }, InboundLimits{},
                        [&](WorkerEvent&& ev) { out.push_back(std::move(ev)); });
  return out;
}

}  // namespace

TEST_CASE("batch codec: items come back in order, byte for byte, each on an 8-byte boundary") {
  std::vector<Buf> items = {result_msg("w1", 1, {{"x", Value(1LL)}}), failure_msg("w1", 2),
                            result_msg("w1", 3, {{"s", Value(std::string(13, 'z'))}})};
  BatchWriter w;
  w.add(span_of(items[0]));
  CHECK(w.count() == 1);
  CHECK(std::equal(w.only().begin(), w.only().end(), items[0].begin(), items[0].end()));
  for (std::size_t round = 0; round < 2; ++round) {  // reused after clear()
    w.clear();
    for (auto& i : items) w.add(span_of(i));
    Buf whole = finished(w.finish(BatchRoot::Worker, "w1"));
    auto* msg = read_worker_message(span_of(whole));
    REQUIRE(msg != nullptr);
    CHECK(msg->worker_id()->str() == "w1");
    REQUIRE(msg->body_type() == wire::WorkerBody::Batch);
    auto got = batch_items(*msg->body_as_Batch(), span_of(whole));
    CHECK(got.error.empty());
    REQUIRE(got.items.size() == items.size());
    for (std::size_t i = 0; i < items.size(); ++i) {
      CHECK((got.items[i].data() - whole.data()) % 8 == 0);
      CHECK(std::equal(got.items[i].begin(), got.items[i].end(), items[i].begin(), items[i].end()));
    }
  }
  for (auto root : {BatchRoot::Daemon, BatchRoot::Client, BatchRoot::Reply}) {
    w.clear();
    w.add(span_of(items[0]));
    w.add(span_of(items[1]));
    Buf whole = finished(w.finish(root));
    if (root == BatchRoot::Daemon) CHECK(read_daemon_message(span_of(whole))->body_type() == wire::DaemonBody::Batch);
    if (root == BatchRoot::Client) CHECK(read_client_message(span_of(whole))->body_type() == wire::ClientBody::Batch);
    if (root == BatchRoot::Reply) CHECK(read_client_reply(span_of(whole))->body_type() == wire::ReplyBody::Batch);
  }
}

// BatchWriter writes every item after a buffer's first without FlatBuffers' EndTable (it points
// the item at the first item's vtable itself): the Batch must be byte for byte the one the
// generated code builds (CreateBatchItem for each item, the vtable shared by dedup), for any
// number of items of odd sizes, in a fresh writer, after clear() and after release().
TEST_CASE("batch codec: a Batch is byte for byte what the generated builders make of the same items") {
  std::vector<Buf> pool = {result_msg("w1", 1, {{"x", Value(1LL)}}), failure_msg("w1", 2),
                           result_msg("w1", 3, {{"s", Value(std::string(13, 'z'))}}),
                           result_msg("w7", 4, {{"b", Value(Bytes(std::size_t{5}, std::uint8_t{9}))}})};
  auto reference = [](const std::vector<Buf>& items) {
    flatbuffers::FlatBufferBuilder fbb;
    std::vector<flatbuffers::Offset<wire::BatchItem>> offsets;
    for (auto& i : items) {
      fbb.ForceVectorAlignment(i.size(), 1, 8);
      offsets.push_back(wire::CreateBatchItem(fbb, fbb.CreateVector(i.data(), i.size())));
    }
    auto batch = wire::CreateBatch(fbb, fbb.CreateVector(offsets)).Union();
    fbb.Finish(wire::CreateDaemonMessage(fbb, wire::DaemonBody::Batch, batch), wire::DaemonMessageIdentifier());
    return finished(fbb);
  };
  BatchWriter w;
  for (std::size_t n = 2; n <= 9; ++n) {
    std::vector<Buf> items;
    for (std::size_t i = 0; i < n; ++i) items.push_back(pool[(i * 3 + n) % pool.size()]);
    Buf expected = reference(items);
    for (auto& i : items) w.add(span_of(i));
    if (n % 2) {  // released (the writer's next buffer is a new one)
      auto released = w.release(BatchRoot::Daemon);
      Buf got(released.bytes.begin(), released.bytes.end());
      delete[] released.raw;
      CHECK(got == expected);
    } else {  // finished in place, then cleared (the writer keeps its buffer)
      CHECK(finished(w.finish(BatchRoot::Daemon)) == expected);
      w.clear();
    }
  }
}

// The send path of musterd, the worker SDK and the client library (take_batch,
// muster/batch_message.hpp): a finished Batch's buffer goes to libzmq uncopied (message_owning) and libzmq frees it after the send has returned, while the writer
// already writes the next batches. Here four batches are sent before any is read: each must
// arrive as released (the same bytes, in the same buffer), untouched by the writer's later use,
// and none may hold a buffer of more than 4x its bytes (one small after big ones is copied).
TEST_CASE("batch codec: a released Batch goes to libzmq uncopied and stays intact while the writer goes on") {
  std::vector<Buf> items = {result_msg("w1", 1, {{"x", Value(1LL)}}), failure_msg("w1", 2)};
  std::vector<Buf> more;  // a second batch several times as big: the writer's next buffer must grow
  for (std::uint64_t id = 3; id < 40; ++id) more.push_back(result_msg("w1", id, {{"s", Value(std::string(200, 'q'))}}));
  zmq::context_t ctx;
  zmq::socket_t out(ctx, zmq::socket_type::pair), in(ctx, zmq::socket_type::pair);
  out.bind("inproc://released-batches");
  in.connect("inproc://released-batches");
  BatchWriter w;
  std::vector<Buf> expected;
  std::vector<const void*> sent_at;
  for (const auto* batch : {&items, &more, &more, &items}) {  // small after big: copied to size
    expected.push_back(batch_of(BatchRoot::Daemon, *batch));
    for (auto& i : *batch) w.add(span_of(i));
    auto released = w.release(BatchRoot::Daemon);
    CHECK(w.count() == 0);  // cleared
    CHECK(w.bytes() == 0);
    REQUIRE(released.raw != nullptr);
    CHECK(released.bytes.data() >= released.raw);
    CHECK(released.bytes.data() + released.bytes.size() <= released.raw + released.reserved);
    CHECK(released.reserved <= 4 * released.bytes.size());  // a waiting batch holds at most 4x
    sent_at.push_back(released.bytes.data());
    REQUIRE(out.send(message_owning(released.raw, released.bytes), zmq::send_flags::none));
  }
  for (std::size_t i = 0; i < expected.size(); ++i) {
    zmq::message_t got;
    REQUIRE(in.recv(got, zmq::recv_flags::none));
    CHECK(got.data() == sent_at[i]);  // handed over, not copied (inproc passes the buffer through)
    auto bytes = bytes_of(got);
    CHECK(std::equal(bytes.begin(), bytes.end(), expected[i].begin(), expected[i].end()));
  }  // each buffer is freed (delete[]) with its received message
}

TEST_CASE("take_batch: one waiting message goes alone, two or more as the Batch of their root; the writer is emptied") {
  zmq::context_t ctx;
  zmq::socket_t out(ctx, zmq::socket_type::pair), in(ctx, zmq::socket_type::pair);
  out.bind("inproc://taken-batches");
  in.connect("inproc://taken-batches");
  BatchWriter w;
  auto one = failure_msg("w1", 1);
  w.add(span_of(one));
  REQUIRE(out.send(take_batch(w, BatchRoot::Worker, "w1"), zmq::send_flags::none));
  CHECK(w.count() == 0);
  std::vector<Buf> two = {result_msg("w1", 2, {{"x", Value(2LL)}}), failure_msg("w1", 3)};
  for (auto& i : two) w.add(span_of(i));
  REQUIRE(out.send(take_batch(w, BatchRoot::Worker, "w1"), zmq::send_flags::none));
  CHECK(w.count() == 0);
  CHECK(w.bytes() == 0);
  zmq::message_t got;
  REQUIRE(in.recv(got, zmq::recv_flags::none));
  auto alone = bytes_of(got);
  CHECK(std::equal(alone.begin(), alone.end(), one.begin(), one.end()));  // no envelope
  REQUIRE(in.recv(got, zmq::recv_flags::none));
  auto expected = batch_of(BatchRoot::Worker, two, "w1");
  auto whole = bytes_of(got);
  CHECK(std::equal(whole.begin(), whole.end(), expected.begin(), expected.end()));
  auto events = worker_events(Buf(whole.begin(), whole.end()));  // read back as its two items
  REQUIRE(events.size() == 2);
  CHECK(std::get<broker::ResultEvent>(events[0]).request_id == 2);
  CHECK(std::get<broker::FailureEvent>(events[1]).request_id == 3);
}

TEST_CASE("inbound: a worker's Batch is its items, each decoded as if it came alone") {
  auto events = worker_events(batch_of(BatchRoot::Worker, {result_msg("w1", 7, {{"x", Value(1LL)}}),
                                                           failure_msg("w1", 8), Buf{1, 2, 3}},
                                       "w1"));
  REQUIRE(events.size() == 3);
  REQUIRE(std::holds_alternative<broker::ResultEvent>(events[0]));
  CHECK(std::get<broker::ResultEvent>(events[0]).request_id == 7);
  CHECK(decode_values(std::get<broker::ResultEvent>(events[0]).outputs.bytes).find("x")->as_int() == 1);
  REQUIRE(std::holds_alternative<broker::FailureEvent>(events[1]));
  CHECK(std::get<broker::FailureEvent>(events[1]).request_id == 8);
  REQUIRE(std::holds_alternative<Refusal>(events[2]));  // only the bad item is refused
  CHECK(std::get<Refusal>(events[2]).why.find("too short") != std::string::npos);

  SUBCASE("a Batch inside a Batch is refused as that item") {
    auto inner = batch_of(BatchRoot::Worker, {failure_msg("w1", 1), failure_msg("w1", 2)}, "w1");
    auto evs = worker_events(batch_of(BatchRoot::Worker, {inner, failure_msg("w1", 3)}, "w1"));
    REQUIRE(evs.size() == 2);
    REQUIRE(std::holds_alternative<Refusal>(evs[0]));
    CHECK(std::get<Refusal>(evs[0]).why == "a Batch inside a Batch (PROTOCOL.md §2.2)");
    CHECK(std::holds_alternative<broker::FailureEvent>(evs[1]));
  }
  SUBCASE("an envelope that breaks a rule is one refusal: no items, no worker_id, misaligned") {
    flatbuffers::FlatBufferBuilder fbb;
    auto empty = wire::CreateBatch(fbb, fbb.CreateVector(std::vector<flatbuffers::Offset<wire::BatchItem>>{}));
    finish_worker_message(fbb, "w1", wire::WorkerBody::Batch, empty.Union());
    auto evs = worker_events(finished(fbb));
    REQUIRE(evs.size() == 1);
    CHECK(std::get<Refusal>(evs[0]).why == "Batch without items");

    evs = worker_events(batch_of(BatchRoot::Worker, {failure_msg("w1", 1), failure_msg("w1", 2)}, ""));
    REQUIRE(evs.size() == 1);
    CHECK(std::get<Refusal>(evs[0]).why == "WorkerMessage.worker_id is required on every message");

    evs = worker_events(misaligned_worker_batch(failure_msg("w1", 1)));
    REQUIRE(evs.size() == 1);
    CHECK(std::get<Refusal>(evs[0]).why == "Batch item 0 does not start on an 8-byte boundary of the batch");
  }
  SUBCASE("a Batch larger than --max-message-bytes is refused whole") {
    InboundLimits small{};
    small.max_message_bytes = 200;
    auto bytes = batch_of(BatchRoot::Worker, {failure_msg("w1", 1), failure_msg("w1", 2), failure_msg("w1", 3)}, "w1");
    REQUIRE(bytes.size() > 200);
    int n = 0;
    for_each_worker_event(span_of(bytes), [] { return std::shared_ptr<const void>(); }, small, [&](WorkerEvent&& ev) {
      ++n;
      CHECK(std::get<Refusal>(ev).why.find("exceeds the limit of 200 bytes") != std::string::npos);
    });
    CHECK(n == 1);
  }
}

TEST_CASE("inbound: a client's Batch is its ClientMessages in order; anything else is itself") {
  auto a = submit_msg(1, {{"x", Value(1LL)}}, true), b = submit_msg(2, {{"x", Value(2LL)}}, true);
  std::vector<std::pair<std::uint64_t, bool>> seen;
  auto each = [&](std::span<const std::uint8_t> bytes, bool in_batch) {
    auto ev = decode_client_message(bytes, [] { return std::shared_ptr<const void>(); }, InboundLimits{}, nullptr,
                                    in_batch);
    if (auto* s = std::get_if<SubmitEvent>(&ev)) {
      CHECK(s->batch_replies);
      seen.emplace_back(s->client_request_id, in_batch);
    } else {
      seen.emplace_back(0, in_batch);
    }
  };
  auto refused = [&](Refusal&&) { FAIL("refused"); };
  for_each_client_message(span_of(batch_of(BatchRoot::Client, {a, b})), InboundLimits{}, each, refused);
  for_each_client_message(span_of(a), InboundLimits{}, each, refused);
  CHECK(seen == std::vector<std::pair<std::uint64_t, bool>>{{1, true}, {2, true}, {1, false}});
  // A nested Batch is that item's refusal (decode_client_message with in_batch).
  auto nested = decode_client_message(span_of(batch_of(BatchRoot::Client, {a, b})),
                                      [] { return std::shared_ptr<const void>(); }, InboundLimits{}, nullptr, true);
  CHECK(std::get<Refusal>(nested).why == "a Batch inside a Batch (PROTOCOL.md §2.2)");
}

// ---- a real musterd ---------------------------------------------------------------------------

namespace {

// A worker written against the wire, to see exactly what musterd sends it and in how many
// ZeroMQ messages: DEALER + SUB, serving "echo".
struct RawWorker {
  zmq::context_t& ctx;
  zmq::socket_t sub{ctx, zmq::socket_type::sub}, dealer{ctx, zmq::socket_type::dealer};
  std::string id, topic, instance;
  bool attached_batches = false;

  RawWorker(zmq::context_t& c, const DaemonProcess& d, std::string worker_id) : ctx(c), id(std::move(worker_id)) {
    for (auto* s : {&sub, &dealer}) s->set(zmq::sockopt::linger, 0);
    sub.set(zmq::sockopt::subscribe, "b:");
    sub.connect(d.endpoint("request"));
    dealer.connect(d.endpoint("response"));
  }

  void send(const Buf& b) { dealer.send(zmq::buffer(b), zmq::send_flags::none); }

  const wire::DaemonMessage* reply(zmq::message_t& m) {
    zmq::pollitem_t item{dealer.handle(), 0, ZMQ_POLLIN, 0};
    REQUIRE(zmq::poll(&item, 1, 5000ms) == 1);
    REQUIRE(dealer.recv(m));
    align_payload(m);
    auto* msg = read_daemon_message(bytes_of(m));
    REQUIRE(msg != nullptr);
    return msg;
  }

  void attach(bool batches) {
    flatbuffers::FlatBufferBuilder fbb;
    NodeSpec spec;
    spec.name = "echo";
    std::vector<flatbuffers::Offset<wire::NodeSpec>> specs{encode_node_spec(fbb, spec)};
    auto body = wire::CreateAttachDirect(fbb, id.c_str(), "host", "raw-test", 1, "session-1", 16, &specs,
                                         false, false, batches);
    finish_worker_message(fbb, id, wire::WorkerBody::Attach, body.Union());
    send(finished(fbb));
    zmq::message_t m;
    auto* msg = reply(m);
    REQUIRE(msg->body_type() == wire::DaemonBody::Attached);
    topic = msg->body_as_Attached()->topic()->str();
    instance = msg->body_as_Attached()->instance()->str();
    attached_batches = msg->body_as_Attached()->batches();
    sub.set(zmq::sockopt::subscribe, topic);
  }

  // The next published message on its topic or the broadcast topic, its bytes kept in `m`.
  const wire::DaemonMessage* published(zmq::message_t& m) {
    zmq::pollitem_t item{sub.handle(), 0, ZMQ_POLLIN, 0};
    REQUIRE(zmq::poll(&item, 1, 5000ms) == 1);
    zmq::message_t t;
    REQUIRE(sub.recv(t));
    REQUIRE(t.more());
    REQUIRE(sub.recv(m));
    CHECK_FALSE(m.more());
    align_payload(m);
    auto* msg = read_daemon_message(bytes_of(m));
    REQUIRE(msg != nullptr);
    return msg;
  }

  // Answers Pings until the daemon lists the worker ready (the confirming Ping, §7.1).
  void confirm(Client& client) {
    for (int i = 0; i < 100; ++i) {
      for (auto& w : client.workers())
        if (w.value("worker_id", "") == id && w.value("state", "") == "ready") return;
      zmq::pollitem_t item{sub.handle(), 0, ZMQ_POLLIN, 0};
      if (zmq::poll(&item, 1, 50ms) != 1) continue;
      zmq::message_t m;
      auto* msg = published(m);
      REQUIRE(msg->body_type() == wire::DaemonBody::Ping);
      flatbuffers::FlatBufferBuilder fbb;
      std::vector<std::uint64_t> none;
      auto body = wire::CreatePongDirect(fbb, msg->body_as_Ping()->seq(), instance.c_str(), &none);
      finish_worker_message(fbb, id, wire::WorkerBody::Pong, body.Union());
      send(finished(fbb));
      zmq::message_t ack;
      CHECK(reply(ack)->body_type() == wire::DaemonBody::Ack);
    }
    FAIL("worker ", id, " never became ready");
  }
};

// The WorkRequests in one published message: its items if it is a Batch, else itself.
std::vector<std::pair<std::uint64_t, Map>> work_in(const wire::DaemonMessage* msg, const zmq::message_t& m) {
  std::vector<std::pair<std::uint64_t, Map>> out;
  auto take = [&](const wire::DaemonMessage* d) {
    REQUIRE(d->body_type() == wire::DaemonBody::WorkRequest);
    auto* w = d->body_as_WorkRequest();
    out.emplace_back(w->request_id(), decode_values(payload_bytes(w->inputs())));
  };
  if (msg->body_type() != wire::DaemonBody::Batch) {
    take(msg);
    return out;
  }
  auto items = batch_items(*msg->body_as_Batch(), bytes_of(m));
  REQUIRE(items.error.empty());
  for (auto item : items.items) {
    auto* d = read_daemon_message(item);
    REQUIRE(d != nullptr);
    take(d);
  }
  return out;
}

// A client written against the wire: the replies in one ZeroMQ message (its items if a Batch).
struct RawClient {
  zmq::socket_t socket;
  RawClient(zmq::context_t& ctx, const DaemonProcess& d) : socket(ctx, zmq::socket_type::dealer) {
    socket.set(zmq::sockopt::linger, 0);
    socket.connect(d.endpoint("client"));
  }
  void send(const Buf& b) { socket.send(zmq::buffer(b), zmq::send_flags::none); }
  // (request id, echoed x or -1 for a non-Result) of each reply in the next message; `batched`
  // says whether it was a Batch.
  std::vector<std::pair<std::uint64_t, long long>> next(bool& batched) {
    zmq::pollitem_t item{socket.handle(), 0, ZMQ_POLLIN, 0};
    REQUIRE(zmq::poll(&item, 1, 10000ms) == 1);
    zmq::message_t m;
    REQUIRE(socket.recv(m));
    align_payload(m);
    auto* reply = read_client_reply(bytes_of(m));
    REQUIRE(reply != nullptr);
    std::vector<std::pair<std::uint64_t, long long>> out;
    auto take = [&](const wire::ClientReply* r) {
      if (r->body_type() == wire::ReplyBody::Result)
        out.emplace_back(r->request_id(), decode_values(payload_bytes(r->body_as_Result()->outputs())).find("x")->as_int());
      else
        out.emplace_back(r->request_id(), -1);
    };
    batched = reply->body_type() == wire::ReplyBody::Batch;
    if (!batched) {
      take(reply);
      return out;
    }
    auto items = batch_items(*reply->body_as_Batch(), bytes_of(m));
    REQUIRE(items.error.empty());
    for (auto i : items.items) {
      auto* r = read_client_reply(i);
      REQUIRE(r != nullptr);
      CHECK(r->body_type() != wire::ReplyBody::Batch);
      take(r);
    }
    return out;
  }
};

Buf echo_result(const std::string& worker_id, std::uint64_t id, const Map& inputs) {
  return result_msg(worker_id, id, inputs);
}

}  // namespace

TEST_CASE("musterd batches for a worker and a client that asked: one message each way per turn, each item answered alone") {
  DaemonProcess daemon;
  zmq::context_t ctx;
  Client admin({.client_address = daemon.endpoint("client")});
  RawWorker worker(ctx, daemon, "raw-batch");
  worker.attach(/*batches=*/true);
  CHECK(worker.attached_batches);  // musterd honours it
  worker.confirm(admin);

  RawClient client(ctx, daemon);
  // Three Submits in one ClientMessage Batch: musterd reads them in one turn...
  client.send(batch_of(BatchRoot::Client, {submit_msg(1, {{"x", Value(10LL)}}, true),
                                           submit_msg(2, {{"x", Value(20LL)}}, true),
                                           submit_msg(3, {{"x", Value(30LL)}}, true)}));
  // ...and publishes their three WorkRequests to the worker as one Batch.
  zmq::message_t m;
  auto* published = worker.published(m);
  CHECK(published->body_type() == wire::DaemonBody::Batch);
  auto work = work_in(published, m);
  REQUIRE(work.size() == 3);
  // The answers go back as one WorkerMessage Batch; each gets its Ack, as if sent alone.
  std::vector<Buf> answers;
  for (auto& [id, inputs] : work) answers.push_back(echo_result(worker.id, id, inputs));
  answers.push_back(echo_result(worker.id, work[0].first, work[0].second));  // a duplicate: dropped, Acked late
  worker.send(batch_of(BatchRoot::Worker, answers, worker.id));
  int acks = 0, late = 0;
  for (; acks < 4; ++acks) {
    zmq::message_t a;
    auto* ack = worker.reply(a);
    REQUIRE(ack->body_type() == wire::DaemonBody::Ack);
    late += ack->body_as_Ack()->late();
  }
  CHECK(late == 1);
  // The client's three Results come as one Batch, each request answered exactly once.
  bool batched = false;
  auto replies = client.next(batched);
  CHECK(batched);
  std::map<std::uint64_t, long long> got(replies.begin(), replies.end());
  CHECK(replies.size() == 3);
  CHECK(got == std::map<std::uint64_t, long long>{{1, 10}, {2, 20}, {3, 30}});
  zmq::pollitem_t item{client.socket.handle(), 0, ZMQ_POLLIN, 0};
  CHECK(zmq::poll(&item, 1, 300ms) == 0);  // nothing more: the duplicate was not forwarded
}

TEST_CASE("musterd never batches for a worker or a client that did not ask (older peers)") {
  DaemonProcess daemon;
  zmq::context_t ctx;
  Client admin({.client_address = daemon.endpoint("client")});
  RawWorker worker(ctx, daemon, "raw-old");
  worker.attach(/*batches=*/false);
  CHECK_FALSE(worker.attached_batches);
  worker.confirm(admin);
  RawClient client(ctx, daemon);
  // Three Submits in one Batch (a new client) but without batch_replies...
  client.send(batch_of(BatchRoot::Client, {submit_msg(1, {{"x", Value(1LL)}}, false),
                                           submit_msg(2, {{"x", Value(2LL)}}, false),
                                           submit_msg(3, {{"x", Value(3LL)}}, false)}));
  std::vector<Buf> answers;
  for (int i = 0; i < 3; ++i) {  // ...reach the old worker as three messages
    zmq::message_t m;
    auto* msg = worker.published(m);
    CHECK(msg->body_type() == wire::DaemonBody::WorkRequest);
    auto w = work_in(msg, m);
    // No trace id in the Submit: the default, "<instance>-<request id>", the socket loop writes.
    auto* caller = msg->body_as_WorkRequest()->caller();
    REQUIRE(caller != nullptr);
    CHECK(caller->trace_id()->str() == worker.instance + "-" + std::to_string(w[0].first));
    CHECK(caller->identity()->str() == "local");
    answers.push_back(echo_result(worker.id, w[0].first, w[0].second));
  }
  for (auto& a : answers) worker.send(a);  // answered one by one, in one burst
  std::map<std::uint64_t, long long> got;
  while (got.size() < 3) {
    bool batched = true;
    for (auto& [id, x] : client.next(batched)) CHECK(got.emplace(id, x).second);
    CHECK_FALSE(batched);  // the client never asked
  }
  CHECK(got == std::map<std::uint64_t, long long>{{1, 1}, {2, 2}, {3, 3}});
}

TEST_CASE("the C++ SDK worker and client library batch both ways: every pipelined call answered once, with its own value") {
  DaemonProcess daemon;
  WorkerOptions wo{.worker_id = "cpp-batch",
                   .request_address = daemon.endpoint("request"),
                   .response_address = daemon.endpoint("response"),
                   .capacity = 64,
                   .drain_timeout = 2000ms,
                   .handle_signals = false};
  Worker worker(wo);
  worker.node({.name = "echo"}, [](Context& ctx) { return ctx.take_inputs(); }, HandlerThread::Socket);
  worker.node({.name = "echo.pool"}, [](Context& ctx) { return ctx.take_inputs(); });
  std::thread t([&] { worker.run(); });
  struct Join {
    Worker& w;
    std::thread& t;
    ~Join() {
      w.stop();
      t.join();
    }
  } join{worker, t};
  Client client({.client_address = daemon.endpoint("client"), .coalesce_submits = true});
  for (int i = 0; i < 300; ++i) {
    auto nodes = client.nodes();
    if (nodes.size() == 2 && nodes[0].value("workers", 0) > 0 && nodes[1].value("workers", 0) > 0) break;
    std::this_thread::sleep_for(10ms);
  }
  constexpr long long kCalls = 3000;
  std::map<std::uint64_t, long long> expect;
  long long sent = 0, done = 0;
  CallOptions opts;
  opts.timeout_ms = 30000;
  while (done < kCalls) {
    while (sent < kCalls && sent - done < 128) {
      auto id = client.submit(sent % 2 ? "echo" : "echo.pool", {{"x", Value(sent)}}, opts);
      expect.emplace(id, sent++);
    }
    for (auto& ev : client.poll(2000ms)) {
      REQUIRE(ev.terminal());
      auto* r = std::get_if<muster::ResultEvent>(&ev.body);
      REQUIRE(r != nullptr);
      auto it = expect.find(ev.request_id);
      REQUIRE(it != expect.end());  // each request answered once
      CHECK(r->outputs.find("x")->as_int() == it->second);
      expect.erase(it);
      ++done;
    }
  }
  CHECK(expect.empty());
  CHECK(client.open_requests() == 0);
}
