// worker_sdk_test.cpp — the C++ worker SDK against a real musterd: where handlers run
// (HandlerThread), what reaches the caller from each, and that a handler's inputs can be
// moved out; and against a scripted fake daemon (a PUB and a ROUTER) for the sequences a real
// one cannot be made to produce on cue: a stopping worker the daemon forgot, a stop during a
// reconnect, "not attached" for several messages in a row, the failure codes a worker may send
// and the daemon's message size limit.
// The example worker's nodes cover the rest of the SDK in tests/integration.
#include <doctest/doctest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <thread>
#include <vector>

#include <spdlog/sinks/ringbuffer_sink.h>
#include <spdlog/spdlog.h>
#include <zmq.hpp>

#include "daemon_process.hpp"
#include "running_worker.hpp"
#include "fake_worker_daemon.hpp"
#include "temp_dir.hpp"
#include "../../worker/cpp/buffer_pool.hpp"  // the worker SDK's internal header (muster_worker)
#include "muster/align.hpp"
#include "muster/client.hpp"
#include "muster/frames.hpp"
#include "muster/messages.hpp"
#include "muster/worker.hpp"

using namespace muster;
using namespace std::chrono_literals;
using muster::test::DaemonProcess;
using muster::test::FakeDaemon;

using muster::test::options_for;
using muster::test::RunningWorker;
using muster::test::wait_for_node;

namespace {

// Pings (seq `first`, `first + 1`, ...) and Acks each Pong with nothing missing until a Pong
// lists no kept answer, at most 8 rounds; returns the last Pong's `answered`. An Ack (response
// socket) and the next Ping (request socket) race inside the worker: a Ping read first is
// answered from before the Ack. A worker without answer Acks does not poll its response
// socket; it reads it when a Ping wakes it, or every 100 ms: an Ack still in the kernel when
// the Ping is read waits for the next turn (under load that was every round of 8). So each
// round leaves the worker a periodic read before the next Ping.
std::vector<std::uint64_t> pong_until_none_kept(FakeDaemon& fake, std::uint64_t first) {
  std::vector<std::uint64_t> answered;
  std::this_thread::sleep_for(150ms);
  for (std::uint64_t seq = first; seq < first + 8; ++seq) {
    fake.publish("b:", FakeDaemon::ping(seq, "inst-1"));
    auto pong = fake.expect(wire::WorkerBody::Pong);
    fake.reply(pong.peer, FakeDaemon::pong_ack(seq, {}));
    auto* a = pong.msg->body_as_Pong()->answered();
    answered = a ? std::vector<std::uint64_t>(a->begin(), a->end()) : std::vector<std::uint64_t>{};
    if (answered.empty()) break;
    std::this_thread::sleep_for(150ms);
  }
  return answered;
}

}  // namespace

TEST_CASE("C++ SDK: a socket-thread handler runs on the run() thread, a pool handler does not") {
  DaemonProcess daemon;
  auto opt = options_for(daemon, "sdk-threads");
  opt.capacity = 2;
  RunningWorker w(opt);
  std::atomic<bool> release{false};
  std::atomic<std::thread::id> pool_thread{}, socket_thread{};
  w.worker.node({.name = "block"}, [&](Context&) {
    pool_thread = std::this_thread::get_id();
    for (int i = 0; i < 1000 && !release; ++i) std::this_thread::sleep_for(5ms);
    return Map{{"released", Value(release.load())}};
  });
  w.worker.node(
      {.name = "quick"},
      [&](Context& ctx) {
        socket_thread = std::this_thread::get_id();
        ctx.progress(1, 2, "half way");
        if (ctx.input_or("fail", false) == Value(true))
          throw WorkError("asked to fail", ErrorCode::InvalidRequest);
        return ctx.take_inputs();
      },
      HandlerThread::Socket);
  w.start();

  Client client({.client_address = daemon.endpoint("client")});
  wait_for_node(client, "quick");
  auto blocked = client.submit("block", {}, {.timeout_ms = 10000});

  // Answered while the pool thread is held, with its progress first and its inputs moved out.
  std::vector<std::string> progress;
  Map inputs{{"text", Value("abc")}, {"blob", Value(Bytes(100000, 0x42))}};
  Map out = client.call("quick", inputs,
                        {.timeout_ms = 5000,
                         .on_progress = [&](std::uint64_t, std::uint64_t, const std::string& m) {
                           progress.push_back(m);
                         }});
  CHECK(out == inputs);
  CHECK(progress == std::vector<std::string>{"half way"});
  CHECK(socket_thread.load() == w.thread.get_id());

  // An exception on the socket thread is a Failure with its code, and the worker serves on.
  try {
    client.call("quick", {{"fail", Value(true)}}, {.timeout_ms = 5000});
    FAIL("the call should have failed");
  } catch (const CallError& e) {
    CHECK(e.code() == ErrorCode::InvalidRequest);
    CHECK(std::string(e.what()).find("asked to fail") != std::string::npos);
  }
  CHECK(client.call("quick", {{"again", Value(1LL)}}, {.timeout_ms = 5000}) == Map{{"again", Value(1LL)}});

  release = true;
  bool done = false;
  for (int i = 0; i < 100 && !done; ++i)
    for (auto& e : client.poll(50ms))
      if (e.request_id == blocked && e.terminal()) {
        REQUIRE(std::holds_alternative<ResultEvent>(e.body));
        CHECK(std::get<ResultEvent>(e.body).outputs == Map{{"released", Value(true)}});
        done = true;
      }
  CHECK(done);
  CHECK(pool_thread.load() != std::thread::id{});
  CHECK(pool_thread.load() != w.thread.get_id());
}

namespace {

// One Submit of `inputs` to `node` from a raw DEALER; returns the frames of the terminal reply.
std::vector<zmq::message_t> raw_call(zmq::socket_t& client, std::uint64_t rid, const Map& inputs,
                                     bool payload_frames) {
  flatbuffers::FlatBufferBuilder fbb;
  auto in = create_nested_values(fbb, inputs);
  auto node = fbb.CreateString("echo");
  wire::SubmitBuilder s(fbb);
  s.add_node(node);
  s.add_inputs(in);
  s.add_timeout_ms(5000);
  s.add_payload_frames(payload_frames);
  auto body = s.Finish();
  fbb.Finish(wire::CreateClientMessage(fbb, rid, wire::ClientBody::Submit, body.Union()),
             wire::ClientMessageIdentifier());
  client.send(zmq::message_t(fbb.GetBufferPointer(), fbb.GetSize()), zmq::send_flags::none);
  std::vector<zmq::message_t> frames;
  zmq::pollitem_t item{client.handle(), 0, ZMQ_POLLIN, 0};
  zmq::poll(&item, 1, 5000ms);
  REQUIRE((item.revents & ZMQ_POLLIN));
  do {
    frames.emplace_back();
    REQUIRE(client.recv(frames.back()));
  } while (frames.back().more());
  for (auto& f : frames) align_payload(f);
  return frames;
}

}  // namespace

TEST_CASE("payload frames: large outputs reach a client that asked as a frame of their own") {
  DaemonProcess daemon;
  RunningWorker w(options_for(daemon, "sdk-frames"));
  w.worker.node({.name = "echo"}, [](Context& ctx) { return ctx.take_inputs(); }, HandlerThread::Socket);
  w.start();
  Client sdk_client({.client_address = daemon.endpoint("client")});
  wait_for_node(sdk_client, "echo");

  zmq::context_t ctx;
  zmq::socket_t client(ctx, zmq::socket_type::dealer);
  client.set(zmq::sockopt::linger, 0);
  client.connect(daemon.endpoint("client"));
  Map big{{"blob", Value(Bytes(200000, 0x17))}}, small{{"n", Value(3LL)}};

  // Asked for, large: [Values frame, ClientReply{Result, outputs_in_frame}], no outputs field.
  auto frames = raw_call(client, 1, big, true);
  REQUIRE(frames.size() == 2);
  auto* reply = read_client_reply(bytes_of(frames[1]));
  REQUIRE(reply != nullptr);
  REQUIRE(reply->body_type() == wire::ReplyBody::Result);
  CHECK(reply->body_as_Result()->outputs_in_frame());
  CHECK(reply->body_as_Result()->outputs() == nullptr);
  CHECK(decode_values(bytes_of(frames[0])) == big);

  // Asked for, small: inline (a frame costs more than copying a few bytes).
  frames = raw_call(client, 2, small, true);
  REQUIRE(frames.size() == 1);
  reply = read_client_reply(bytes_of(frames[0]));
  REQUIRE(reply != nullptr);
  CHECK_FALSE(reply->body_as_Result()->outputs_in_frame());
  CHECK(decode_values(payload_bytes(reply->body_as_Result()->outputs())) == small);

  // Not asked for: one frame whatever the size, as before payload frames existed.
  frames = raw_call(client, 3, big, false);
  REQUIRE(frames.size() == 1);
  reply = read_client_reply(bytes_of(frames[0]));
  REQUIRE(reply != nullptr);
  CHECK_FALSE(reply->body_as_Result()->outputs_in_frame());
  CHECK(decode_values(payload_bytes(reply->body_as_Result()->outputs())) == big);

  // The client library asks for them and reads either form.
  CHECK(sdk_client.call("echo", big, {.timeout_ms = 5000}) == big);
  CHECK(sdk_client.call("echo", small, {.timeout_ms = 5000}) == small);
}

// ---- against a scripted fake daemon ----------------------------------------------------------

namespace {

const wire::Failure& failure_of(const FakeDaemon::Received& r) {
  REQUIRE(r.type() == wire::WorkerBody::Failure);
  return *r.msg->body_as_Failure();
}

// Holds until aborted (at most 5 s), then fails with the abort.
Map hold_until_aborted(Context& ctx) {
  for (int i = 0; i < 500 && ctx.sleep_for(10ms); ++i) {
  }
  throw WorkError("aborted", ErrorCode::Cancelled);
}

}  // namespace

TEST_CASE("a stopping C++ worker the daemon forgot never attaches again: it aborts what runs and stops") {
  // PROTOCOL.md §7.5. Before: Rejected{reattach} or a new instance's Ping made the draining
  // worker send Attach, and a ghost worker stayed behind when it exited.
  for (std::string how : {"Rejected{reattach} to its Pong", "a Ping of a new daemon instance"}) {
    CAPTURE(how);
    FakeDaemon fake;
    {
      RunningWorker w(fake.options("cpp-forgot"));
      w.worker.node({.name = "hold"}, hold_until_aborted);
      w.start();
      fake.attach("cpp-forgot");
      fake.publish("w:cpp-forgot:", FakeDaemon::work_request(7, "hold", {}));
      fake.publish("b:", FakeDaemon::ping(100, "inst-1"));
      auto pong = fake.expect(wire::WorkerBody::Pong);  // the request arrived before this ping
      REQUIRE(pong.msg->body_as_Pong()->in_flight()->size() == 1);
      fake.reply(pong.peer, FakeDaemon::ack());

      w.worker.stop();
      auto detach = fake.expect(wire::WorkerBody::Detach);
      fake.reply(detach.peer, FakeDaemon::ack());  // ... and the daemon forgets it
      if (how.starts_with("Rejected")) {
        fake.publish("b:", FakeDaemon::ping(101, "inst-1"));
        auto late = fake.expect(wire::WorkerBody::Pong);  // draining, it still answers pings
        CHECK(late.msg->body_as_Pong()->in_flight()->size() == 1);
        fake.reply(late.peer, FakeDaemon::forgotten());
      } else {
        fake.publish("b:", FakeDaemon::ping(101, "inst-2"));
      }
      auto answer = fake.expect(wire::WorkerBody::Failure);  // not an Attach: the request, aborted
      CHECK(failure_of(answer).request_id() == 7);
      fake.reply(answer.peer, FakeDaemon::forgotten());
    }  // run() returned and the worker's sockets are closed: whatever it sent has arrived
    CHECK_FALSE(fake.recv(100ms).has_value());
  }
}

TEST_CASE("a C++ worker stopped while it reconnects still sends Detach after its Attach") {
  FakeDaemon fake;
  std::string second_peer;
  {
    RunningWorker w(fake.options("cpp-recon"));
    w.worker.node({.name = "n"}, [](Context&) { return Map{}; });
    w.start();
    auto first_peer = fake.attach("cpp-recon", 16u << 20, /*ping_interval_ms=*/50);
    // No pings: after 150 ms of silence the worker reconnects and attaches again, unanswered.
    auto again = fake.expect(wire::WorkerBody::Attach, /*skip_pongs=*/true);
    CHECK(again.peer != first_peer);
    second_peer = again.peer;
    w.worker.stop();
  }
  auto detach = fake.expect(wire::WorkerBody::Detach);
  CHECK(detach.peer == second_peer);
}

TEST_CASE("a C++ worker sends only WorkerError or InvalidRequest, and nothing over the daemon's limit") {
  FakeDaemon fake;
  RunningWorker w(fake.options("cpp-codes"));
  auto big = [](Context& ctx) {
    auto n = static_cast<std::size_t>(ctx.input("n").as_int());
    ctx.progress(1, 2, std::string(n, 'x'));  // too large as well: not sent
    return Map{{"blob", Value(Bytes(n, 0x42))}};
  };
  w.worker.node({.name = "big"}, big);
  w.worker.node({.name = "big.socket"}, big, HandlerThread::Socket);
  w.worker.node({.name = "denied"}, [](Context&) -> Map { throw WorkError("not yours", ErrorCode::PermissionDenied); });
  w.worker.node({.name = "hold"}, hold_until_aborted);
  w.worker.node({.name = "echo"}, [](Context& ctx) { return ctx.take_inputs(); }, HandlerThread::Socket);
  w.start();
  fake.attach("cpp-codes", /*max_message_bytes=*/4096);
  auto topic = std::string("w:cpp-codes:");
  auto next_failure = [&](std::uint64_t id) {
    auto r = fake.expect(wire::WorkerBody::Failure);
    fake.reply(r.peer, FakeDaemon::ack());
    auto& f = failure_of(r);
    CHECK(f.request_id() == id);
    return std::pair{f.code(), f.message()->str()};
  };

  SUBCASE("an answer over --max-message-bytes fails fast, with both sizes named") {
    fake.publish(topic, FakeDaemon::work_request(1, "big", {{"n", Value(100LL)}}));
    auto progress = fake.expect(wire::WorkerBody::Progress);
    fake.reply(progress.peer, FakeDaemon::ack());
    auto result = fake.expect(wire::WorkerBody::Result);
    fake.reply(result.peer, FakeDaemon::ack());
    for (std::string node : {"big", "big.socket"}) {
      CAPTURE(node);
      fake.publish(topic, FakeDaemon::work_request(2, node, {{"n", Value(10000LL)}}));
      auto [code, message] = next_failure(2);  // neither the Progress nor the Result went out
      CHECK(code == ErrorCode::WorkerError);
      // A bytes output the caller cannot take in chunks (chunk_window_bytes 0) is named with its size.
      CHECK(message.starts_with("output blob of 10000 bytes does not fit the daemon's message limit of 4096 bytes "
                                "(--max-message-bytes), and the caller takes no chunked outputs"));
    }
  }
  SUBCASE("a handler's other codes become WorkerError, with their message") {
    fake.publish(topic, FakeDaemon::work_request(3, "denied", {}));
    CHECK(next_failure(3) == std::pair{ErrorCode::WorkerError, std::string("not yours")});
    fake.publish(topic, FakeDaemon::work_request(4, "hold", {}));
    fake.publish(topic, FakeDaemon::message(wire::DaemonBody::Abort, [](auto& fbb) {
                   return wire::CreateAbortDirect(fbb, 4, ErrorCode::Timeout, "deadline passed");
                 }));
    CHECK(next_failure(4).first == ErrorCode::WorkerError);  // the handler threw Cancelled
  }
  SUBCASE("inputs that are not a valid payload are InvalidRequest") {
    auto bad = FakeDaemon::work_request(5, "echo", {{"s", Value("abc")}});
    auto* at = static_cast<std::uint8_t*>(bad.data());
    auto* end = at + bad.size();
    auto* hit = std::search(at, end, std::begin("abc"), std::end("abc") - 1);
    REQUIRE(hit != end);
    *hit = 0xff;  // no longer UTF-8
    fake.publish(topic, std::move(bad));
    auto [code, message] = next_failure(5);
    CHECK(code == ErrorCode::InvalidRequest);
    CHECK(message.find("UTF-8") != std::string::npos);
    fake.publish(topic, FakeDaemon::work_request(6, "echo", {}, /*inputs_in_frame=*/true));
    CHECK(next_failure(6).first == ErrorCode::InvalidRequest);
    // A payload that is not a Values buffer at all fails the whole message's verification:
    // the worker still answers, from the request id alone.
    auto broken = FakeDaemon::work_request(7, "echo", {{"s", Value("abc")}});
    auto* root = read_daemon_message({static_cast<const std::uint8_t*>(broken.data()), broken.size()});
    REQUIRE(root != nullptr);
    auto* inputs = root->body_as_WorkRequest()->inputs();
    auto* nested = const_cast<std::uint8_t*>(inputs->data());
    std::fill(nested, nested + 4, 0xff);  // the nested root offset points far outside
    fake.publish(topic, std::move(broken));
    auto [broken_code, broken_message] = next_failure(7);
    CHECK(broken_code == ErrorCode::InvalidRequest);
    CHECK(broken_message == "inputs or parameters are not a valid Values payload");
  }
}

namespace {
// The ids a Pong lists in `answered`, in ascending order.
std::vector<std::uint64_t> answered_of(const FakeDaemon::Received& pong) {
  auto* a = pong.msg->body_as_Pong()->answered();
  std::vector<std::uint64_t> ids = a ? std::vector<std::uint64_t>(a->begin(), a->end()) : std::vector<std::uint64_t>{};
  std::sort(ids.begin(), ids.end());
  return ids;
}
}  // namespace

TEST_CASE("C++ SDK without answer Acks (§7.7): a lost Result goes again when the Pong's Ack names it, never runs twice") {
  FakeDaemon fake;
  std::atomic<int> runs{0};
  RunningWorker w(fake.options("cpp-noack"));
  w.worker.node({.name = "count"}, [&](Context&) { return Map{{"n", Value(static_cast<long long>(++runs))}}; },
                HandlerThread::Socket);
  w.start();
  fake.attach("cpp-noack", 16u << 20, 60000, /*no_answer_acks=*/true);
  CHECK(fake.asked_no_answer_acks);
  auto topic = std::string("w:cpp-noack:");
  fake.publish(topic, FakeDaemon::work_request(11, "count", {}));
  auto first = fake.expect(wire::WorkerBody::Result);  // no Ack: the daemon "lost" it
  CHECK(first.msg->body_as_Result()->request_id() == 11);

  fake.publish("b:", FakeDaemon::ping(100, "inst-1"));
  auto pong = fake.expect(wire::WorkerBody::Pong);
  CHECK(pong.msg->body_as_Pong()->in_flight()->size() == 0);  // answered, no longer running
  CHECK(answered_of(pong) == std::vector<std::uint64_t>{11});
  fake.reply(pong.peer, FakeDaemon::pong_ack(100, {11}));
  auto again = fake.expect(wire::WorkerBody::Result);  // the kept answer, byte for byte
  CHECK(std::string_view(static_cast<const char*>(again.bytes.data()), again.bytes.size()) ==
        std::string_view(static_cast<const char*>(first.bytes.data()), first.bytes.size()));

  // A WorkRequest re-sent for it is answered from what was kept: the handler does not run again.
  fake.publish(topic, FakeDaemon::work_request(11, "count", {}));
  CHECK(fake.expect(wire::WorkerBody::Result).msg->body_as_Result()->request_id() == 11);
  CHECK(runs == 1);

  // Confirmed (not missing): forgotten, no longer listed.
  fake.publish("b:", FakeDaemon::ping(101, "inst-1"));
  pong = fake.expect(wire::WorkerBody::Pong);
  CHECK(answered_of(pong) == std::vector<std::uint64_t>{11});
  fake.reply(pong.peer, FakeDaemon::pong_ack(101, {}));
  // Ping until a Pong no longer lists 11 (it stays listed forever without the rule, so a few
  // rounds prove it).
  CHECK(pong_until_none_kept(fake, 102).empty());
  CHECK_FALSE(fake.recv(100ms).has_value());  // nothing more was sent
}

TEST_CASE("C++ SDK without answer Acks: the Ack to a Pong is read before the next Ping, also inside one batch of the request socket") {
  // §7.6 "replies first", message by message: an Ack that reached the response socket while the
  // worker was reading a batch of its request socket confirms what its Pong listed before the
  // next Ping of that batch is answered. Forced here: a socket-thread handler holds the worker
  // inside such a batch until the Ack to Pong 100 and Ping 101 have both reached its sockets.
  // Before: the response socket was read once per turn, so Pong 101 listed 21 again.
  FakeDaemon fake;
  std::atomic<bool> holding{false}, release{false};
  RunningWorker w(fake.options("cpp-first"));
  w.worker.node({.name = "echo"}, [](Context& ctx) { return ctx.take_inputs(); }, HandlerThread::Socket);
  w.worker.node(
      {.name = "hold"},
      [&](Context&) {
        holding = true;
        for (int i = 0; i < 2000 && !release; ++i) std::this_thread::sleep_for(5ms);
        return Map{};
      },
      HandlerThread::Socket);
  w.start();
  fake.attach("cpp-first", 16u << 20, 60000, /*no_answer_acks=*/true);
  const std::string topic = "w:cpp-first:";
  fake.publish(topic, FakeDaemon::work_request(21, "echo", {}));
  CHECK(fake.expect(wire::WorkerBody::Result).msg->body_as_Result()->request_id() == 21);  // kept: no Ack
  fake.publish("b:", FakeDaemon::ping(100, "inst-1"));
  auto pong = fake.expect(wire::WorkerBody::Pong);
  CHECK(answered_of(pong) == std::vector<std::uint64_t>{21});

  fake.publish(topic, FakeDaemon::work_request(20, "hold", {}));
  for (int i = 0; i < 2000 && !holding; ++i) std::this_thread::sleep_for(5ms);
  REQUIRE(holding);
  fake.reply(pong.peer, FakeDaemon::pong_ack(100, {}));  // confirms 21
  fake.publish("b:", FakeDaemon::ping(101, "inst-1"));
  std::this_thread::sleep_for(300ms);  // lets both reach the worker's sockets (ipc), nothing more
  release = true;
  CHECK(fake.expect(wire::WorkerBody::Result).msg->body_as_Result()->request_id() == 20);
  pong = fake.expect(wire::WorkerBody::Pong);
  CHECK(pong.msg->body_as_Pong()->seq() == 101);
  CHECK(answered_of(pong) == std::vector<std::uint64_t>{20});  // 21 no longer listed
  fake.reply(pong.peer, FakeDaemon::pong_ack(101, {}));
}

TEST_CASE("C++ SDK: a large answer is built in a buffer of the answers' pool, which gets it back once confirmed") {
  auto& pool = detail::BufferPool::answers();
  pool.release_idle(detail::BufferPool::Clock::now() + 1h);  // empty: what other tests left
  REQUIRE(pool.pooled_bytes() == 0);
  FakeDaemon fake;
  RunningWorker w(fake.options("cpp-pool"));
  w.worker.node({.name = "echo"}, [](Context& ctx) { return ctx.take_inputs(); }, HandlerThread::Socket);
  w.start();
  fake.attach("cpp-pool", 16u << 20, 60000, /*no_answer_acks=*/true);
  const std::size_t payload = 256u << 10;  // over kCopyMessageMax: the answer is not copied out of its builder
  fake.publish("w:cpp-pool:", FakeDaemon::work_request(31, "echo", Map{{"data", Value(Bytes(payload, 0x17))}}));
  auto result = fake.expect(wire::WorkerBody::Result);
  CHECK(result.msg->body_as_Result()->outputs()->size() > payload);
  CHECK(pool.pooled_bytes() == 0);  // sent, and kept until confirmed (§7.7)
  fake.publish("b:", FakeDaemon::ping(200, "inst-1"));
  auto pong = fake.expect(wire::WorkerBody::Pong);
  fake.reply(pong.peer, FakeDaemon::pong_ack(200, {}));
  REQUIRE(pong_until_none_kept(fake, 201).empty());  // confirmed and forgotten
  // Its buffer, and no other, waits for the next large answer.
  CHECK(pool.pooled_bytes() >= result.bytes.size());
  CHECK(pool.pooled_bytes() <= detail::BufferPool::size_class(result.bytes.size() + 4096));
}

TEST_CASE("C++ SDK: answers kept past confirm_kept_bytes are confirmed at once, by a Pong repeating the last ping's seq") {
  // §7.7 "Early confirmation": without it a worker answering 1 MiB at 500/s keeps ~500 MiB until
  // the next ping (docs/PERFORMANCE.md, "Kept answers confirmed early"). Before the option the
  // worker sent nothing between pings: the first expect(Pong) below timed out.
  FakeDaemon fake;
  auto options = fake.options("cpp-early");
  options.confirm_kept_bytes = 600u << 10;
  RunningWorker w(options);
  w.worker.node({.name = "echo"}, [](Context& ctx) { return ctx.take_inputs(); }, HandlerThread::Socket);
  w.start();
  fake.attach("cpp-early", 16u << 20, 60000, /*no_answer_acks=*/true);
  const std::string topic = "w:cpp-early:";
  // Publishes a 256 KiB echo and checks that its Result (only) comes back.
  auto answer = [&](std::uint64_t id) {
    fake.publish(topic, FakeDaemon::work_request(id, "echo", Map{{"data", Value(Bytes(256u << 10, 0x2a))}}));
    CHECK(fake.expect(wire::WorkerBody::Result).msg->body_as_Result()->request_id() == id);
  };
  // The Pong to the Attach's confirming ping listed no answers (a daemon Acks such a Pong only
  // sometimes, §7.7), so it is not repeated: 768 KiB kept, still no Pong before a ping.
  for (std::uint64_t id : {1, 2, 3}) answer(id);
  fake.publish("b:", FakeDaemon::ping(100, "inst-1"));
  auto pong = fake.expect(wire::WorkerBody::Pong);
  CHECK(pong.msg->body_as_Pong()->seq() == 100);
  CHECK(answered_of(pong) == std::vector<std::uint64_t>{1, 2, 3});
  fake.reply(pong.peer, FakeDaemon::pong_ack(100, {}));
  std::this_thread::sleep_for(150ms);  // the Ack is read (while one is due, the worker polls for it)

  // 256 KiB kept: under the bound, no Pong; 512 KiB: still under; 768 KiB: a Pong at once,
  // repeating the last ping's seq; 1-3 were confirmed by the Ack to Pong 100.
  answer(4);
  answer(5);
  answer(6);
  auto early = fake.expect(wire::WorkerBody::Pong);
  const auto seq = early.msg->body_as_Pong()->seq();
  CHECK(seq == 100);
  CHECK(answered_of(early) == std::vector<std::uint64_t>{4, 5, 6});

  // While its Ack is due, more answers past the bound ask nothing more (one Pong awaiting an
  // Ack per seq); the Ack confirms 4-6, and the next answer past the bound asks again.
  answer(7);
  answer(8);
  answer(9);
  fake.reply(early.peer, FakeDaemon::pong_ack(seq, {}));
  std::this_thread::sleep_for(150ms);  // the worker reads its response socket at least every 100 ms
  answer(10);
  auto second = fake.expect(wire::WorkerBody::Pong);
  CHECK(second.msg->body_as_Pong()->seq() == seq);
  CHECK(answered_of(second) == std::vector<std::uint64_t>{7, 8, 9, 10});  // 4-6 confirmed and forgotten
  fake.reply(second.peer, FakeDaemon::pong_ack(seq, {}));
  CHECK(pong_until_none_kept(fake, 101).empty());
}

TEST_CASE("C++ SDK with a daemon that does not know §7.7: every answer is Acked, nothing is kept") {
  FakeDaemon fake;
  RunningWorker w(fake.options("cpp-oldd"));
  w.worker.node({.name = "n"}, [](Context&) { return Map{}; }, HandlerThread::Socket);
  w.start();
  fake.attach("cpp-oldd");  // Attached without no_answer_acks, as an older musterd sends it
  CHECK(fake.asked_no_answer_acks);
  fake.publish("w:cpp-oldd:", FakeDaemon::work_request(12, "n", {}));
  auto result = fake.expect(wire::WorkerBody::Result);
  fake.reply(result.peer, FakeDaemon::ack());
  fake.publish("b:", FakeDaemon::ping(100, "inst-1"));
  auto pong = fake.expect(wire::WorkerBody::Pong);
  auto* answered = pong.msg->body_as_Pong()->answered();
  CHECK((answered == nullptr || answered->size() == 0));
  fake.reply(pong.peer, FakeDaemon::ack());
}

// Starts `w` (worker `worker_id`, attached with no_answer_acks) serving "slow", which runs until `release`, and
// "fast"; sends it request 11 (slow: left running) and 12 (fast), and returns 12's Result,
// which the fake daemon does not confirm (the worker keeps it). `runs` counts executions.
FakeDaemon::Received run_11_and_keep_12(FakeDaemon& fake, RunningWorker& w, const std::string& worker_id,
                                        std::atomic<bool>& release, std::atomic<int>& runs) {
  w.worker.node({.name = "slow"}, [&](Context& ctx) {
    ++runs;
    while (!release && ctx.sleep_for(10ms)) {
    }
    return Map{};
  });
  w.worker.node({.name = "fast"}, [&](Context&) { ++runs; return Map{}; }, HandlerThread::Socket);
  w.start();
  fake.attach(worker_id, 16u << 20, 60000, /*no_answer_acks=*/true);
  const std::string topic = "w:" + worker_id + ":";
  fake.publish(topic, FakeDaemon::work_request(11, "slow", {}));
  fake.publish(topic, FakeDaemon::work_request(12, "fast", {}));
  auto first = fake.expect(wire::WorkerBody::Result);
  CHECK(first.msg->body_as_Result()->request_id() == 12);
  return first;
}

TEST_CASE("C++ SDK across a daemon restart (§7.6): what runs and the unconfirmed answers are listed to the new instance; a missing one goes again") {
  FakeDaemon fake;
  std::atomic<bool> release{false};
  std::atomic<int> runs{0};
  RunningWorker w(fake.options("cpp-restart"));
  const std::string topic = "w:cpp-restart:";
  auto first = run_11_and_keep_12(fake, w, "cpp-restart", release, runs);  // the daemon dies before confirming 12

  // The new instance's Ping: the worker attaches again, same worker id and session.
  fake.publish("b:", FakeDaemon::ping(1, "inst-2"));
  auto a = fake.expect(wire::WorkerBody::Attach, true);
  fake.reply(a.peer, FakeDaemon::message(wire::DaemonBody::Attached, [&](auto& fbb) {
               return wire::CreateAttachedDirect(fbb, "cpp-restart", "inst-2", topic.c_str(), "b:", 60000, 3,
                                                 16u << 20, true);
             }));
  std::optional<FakeDaemon::Received> pong;
  for (std::uint64_t seq = 2; !pong; ++seq) {
    REQUIRE(seq < 200);
    fake.publish(topic, FakeDaemon::ping(seq, "inst-2"));
    pong = fake.recv(50ms);
  }
  REQUIRE(pong->type() == wire::WorkerBody::Pong);
  auto* p = pong->msg->body_as_Pong();
  CHECK(p->instance()->str() == "inst-2");
  REQUIRE(p->in_flight() != nullptr);
  CHECK(std::vector<std::uint64_t>(p->in_flight()->begin(), p->in_flight()->end()) == std::vector<std::uint64_t>{11});
  REQUIRE(p->answered() != nullptr);
  CHECK(std::vector<std::uint64_t>(p->answered()->begin(), p->answered()->end()) == std::vector<std::uint64_t>{12});
  // The new instance adopted 12 and asks for its answer: the kept one goes, byte for byte.
  fake.reply(pong->peer, FakeDaemon::pong_ack(p->seq(), {12}));
  auto again = fake.expect(wire::WorkerBody::Result, true);
  CHECK(std::string_view(static_cast<const char*>(again.bytes.data()), again.bytes.size()) ==
        std::string_view(static_cast<const char*>(first.bytes.data()), first.bytes.size()));
  // 11 ran on through the restart and answers now; nothing ran twice.
  release = true;
  CHECK(fake.expect(wire::WorkerBody::Result, true).msg->body_as_Result()->request_id() == 11);
  CHECK(runs == 2);
}

TEST_CASE("C++ SDK idle pongs (§7.3): idle, it answers every k-th broadcast ping; running or keeping an answer, every one") {
  FakeDaemon fake;
  std::atomic<bool> release{false};
  RunningWorker w(fake.options("cpp-idle"));
  w.worker.node({.name = "hold"}, [&](Context& ctx) {
    while (!release && ctx.sleep_for(5ms)) {
    }
    return Map{};
  });
  w.start();
  fake.attach("cpp-idle", 16u << 20, 60000, /*no_answer_acks=*/true, /*idle_pong_every=*/3);
  CHECK(fake.asked_idle_pongs);
  const std::string topic = "w:cpp-idle:";
  // Publishes pings [from, to) on `on` and returns the seqs of the Pongs that came back: the
  // first `expected` of them however long they take (on a loaded machine a fixed 500 ms of
  // silence once ended the wait before the last Pong came), then any more within 300 ms.
  auto pongs_for = [&](std::uint64_t from, std::uint64_t to, std::size_t expected, const std::string& on = "b:") {
    for (auto seq = from; seq < to; ++seq) {
      fake.publish(on, FakeDaemon::ping(seq, "inst-1"));
      std::this_thread::sleep_for(20ms);
    }
    std::vector<std::uint64_t> seqs;
    while (auto r = fake.recv(seqs.size() < expected ? 10s : 300ms)) {
      REQUIRE(r->type() == wire::WorkerBody::Pong);
      seqs.push_back(r->msg->body_as_Pong()->seq());
    }
    return seqs;
  };
  CHECK(pongs_for(100, 106, 2) == std::vector<std::uint64_t>{102, 105});  // idle: every third
  // A ping on its own topic (a confirming ping) is always answered, even right after a Pong.
  CHECK(pongs_for(106, 107, 1, topic) == std::vector<std::uint64_t>{106});
  // Running a request: every ping.
  fake.publish(topic, FakeDaemon::work_request(7, "hold", {}));
  std::this_thread::sleep_for(100ms);
  CHECK(pongs_for(107, 110, 3) == std::vector<std::uint64_t>{107, 108, 109});
  // Answered, kept until a Pong's Ack confirms it: every ping, listing it.
  release = true;
  CHECK(fake.expect(wire::WorkerBody::Result).msg->body_as_Result()->request_id() == 7);
  fake.publish("b:", FakeDaemon::ping(110, "inst-1"));
  auto pong = fake.expect(wire::WorkerBody::Pong);
  REQUIRE(pong.msg->body_as_Pong()->answered() != nullptr);
  CHECK(pong.msg->body_as_Pong()->answered()->size() == 1);
  fake.reply(pong.peer, FakeDaemon::pong_ack(110, {}));
  // Until the worker read that Ack (a fixed 100 ms was not always enough under load): confirming
  // pings, always answered, until one's Pong lists nothing kept; a Pong restarts the idle count.
  for (std::uint64_t seq = 200;; ++seq) {
    REQUIRE(seq < 300);
    fake.publish(topic, FakeDaemon::ping(seq, "inst-1"));
    auto confirming = fake.expect(wire::WorkerBody::Pong);
    auto* kept = confirming.msg->body_as_Pong()->answered();
    if (!kept || kept->size() == 0) break;
    std::this_thread::sleep_for(50ms);
  }
  // Confirmed and idle again: every third once more.
  CHECK(pongs_for(111, 117, 2) == std::vector<std::uint64_t>{113, 116});
}

TEST_CASE("C++ SDK idle pongs: a daemon that grants none (Attached.idle_pong_every 0) gets every ping answered") {
  FakeDaemon fake;
  RunningWorker w(fake.options("cpp-every"));
  w.worker.node({.name = "n"}, [](Context&) { return Map{}; }, HandlerThread::Socket);
  w.start();
  fake.attach("cpp-every", 16u << 20, 60000, /*no_answer_acks=*/true);
  for (std::uint64_t seq = 100; seq < 104; ++seq) {
    fake.publish("b:", FakeDaemon::ping(seq, "inst-1"));
    CHECK(fake.expect(wire::WorkerBody::Pong).msg->body_as_Pong()->seq() == seq);
  }
}

TEST_CASE("C++ SDK direct (§7.10): asked by default; granted, pings and work come on the DEALER, every ping answered until a Pong's Ack") {
  FakeDaemon fake;
  RunningWorker w(fake.options("cpp-direct"));
  w.worker.node({.name = "echo"}, [](Context& ctx) { return ctx.inputs(); }, HandlerThread::Socket);
  w.start();
  auto peer = fake.attach_direct("cpp-direct", /*idle_pong_every=*/3);
  CHECK(fake.asked_direct);
  // Before the Ack of a Pong, a ping may be the confirming one: every one is answered, in order.
  for (std::uint64_t seq = 1; seq <= 3; ++seq) {
    fake.reply(peer, FakeDaemon::ping(seq, "inst-1"));
    CHECK(fake.expect(wire::WorkerBody::Pong).msg->body_as_Pong()->seq() == seq);
  }
  fake.reply(peer, FakeDaemon::pong_ack(3, {}));  // the confirmation
  // Work on the same connection, a payload frame before it included (§2.1).
  fake.reply(peer, FakeDaemon::work_request(7, "echo", Map{{"x", Value(5LL)}}));
  auto result = fake.expect(wire::WorkerBody::Result);
  CHECK(result.msg->body_as_Result()->request_id() == 7);
  auto inputs = encode_values(Map{{"y", Value(std::string("framed"))}});
  fake.router.send(zmq::buffer(peer), zmq::send_flags::sndmore);
  fake.router.send(zmq::message_t(inputs.data(), inputs.size()), zmq::send_flags::sndmore);
  fake.router.send(FakeDaemon::work_request(8, "echo", {}, /*inputs_in_frame=*/true), zmq::send_flags::none);
  result = fake.expect(wire::WorkerBody::Result);
  REQUIRE(result.msg->body_as_Result()->request_id() == 8);
  auto outputs = decode_values(payload_bytes(result.msg->body_as_Result()->outputs()));
  CHECK(outputs == Map{{"y", Value(std::string("framed"))}});
  // Kept answers listed at the next ping, confirmed by its Ack; then idle: every third ping.
  fake.reply(peer, FakeDaemon::ping(4, "inst-1"));
  auto pong = fake.expect(wire::WorkerBody::Pong);
  REQUIRE(pong.msg->body_as_Pong()->answered() != nullptr);
  fake.reply(peer, FakeDaemon::pong_ack(4, {}));
  std::vector<std::uint64_t> answered_pings;
  for (std::uint64_t seq = 10; seq < 16; ++seq) fake.reply(peer, FakeDaemon::ping(seq, "inst-1"));
  while (auto r = fake.recv(answered_pings.size() < 2 ? 10000ms : 300ms)) {
    REQUIRE(r->type() == wire::WorkerBody::Pong);
    answered_pings.push_back(r->msg->body_as_Pong()->seq());
  }
  CHECK(answered_pings == std::vector<std::uint64_t>{12, 15});
}

TEST_CASE("C++ SDK asking for direct from a daemon that does not grant it: the SUB connects after Attached, work comes there") {
  FakeDaemon fake;
  RunningWorker w(fake.options("cpp-old-daemon"));
  w.worker.node({.name = "echo"}, [](Context& ctx) { return ctx.inputs(); }, HandlerThread::Socket);
  w.start();
  fake.attach("cpp-old-daemon", 16u << 20, 60000, /*no_answer_acks=*/true);  // confirmed through the PUB
  CHECK(fake.asked_direct);
  fake.publish("w:cpp-old-daemon:", FakeDaemon::work_request(9, "echo", Map{{"x", Value(1LL)}}));
  CHECK(fake.expect(wire::WorkerBody::Result).msg->body_as_Result()->request_id() == 9);
}

TEST_CASE("C++ SDK with direct off asks for nothing and works as before") {
  FakeDaemon fake;
  auto opt = fake.options("cpp-no-direct");
  opt.direct = false;
  RunningWorker w(opt);
  w.worker.node({.name = "echo"}, [](Context& ctx) { return ctx.inputs(); }, HandlerThread::Socket);
  w.start();
  fake.attach("cpp-no-direct", 16u << 20, 60000, /*no_answer_acks=*/true);
  CHECK_FALSE(fake.asked_direct);
  fake.publish("w:cpp-no-direct:", FakeDaemon::work_request(9, "echo", {}));
  CHECK(fake.expect(wire::WorkerBody::Result).msg->body_as_Result()->request_id() == 9);
}

TEST_CASE("C++ SDK told 'not attached' for several messages in a row attaches once, and reports what runs and what it kept") {
  // PROTOCOL.md §7.3, DURABILITY.md §13. Before: one Attach per Rejected{reattach} (and one for
  // the new instance's Ping): a restarted musterd saw the worker attach four times in a row.
  for (std::string how : {"three messages rejected", "a new instance's Ping, then three messages rejected"}) {
    CAPTURE(how);
    FakeDaemon fake;
    std::atomic<bool> release{false};
    std::atomic<int> runs{0};
    RunningWorker w(fake.options("cpp-once"));
    const std::string topic = "w:cpp-once:";
    auto first = run_11_and_keep_12(fake, w, "cpp-once", release, runs);  // 12's Result, kept: never confirmed

    // Three messages of the worker, unanswered yet: Pongs to three broadcast pings.
    std::vector<FakeDaemon::Received> pongs;
    for (std::uint64_t seq = 100; seq < 103; ++seq) {
      fake.publish("b:", FakeDaemon::ping(seq, "inst-1"));
      pongs.push_back(fake.expect(wire::WorkerBody::Pong));
    }
    int attaches = 0;
    std::string attach_peer;
    if (how.starts_with("a new instance")) {  // the restarted daemon's Ping comes first
      fake.publish("b:", FakeDaemon::ping(1, "inst-2"));
      attach_peer = fake.expect(wire::WorkerBody::Attach).peer;
      ++attaches;
    }
    // The daemon restarted and does not know the worker: each of the three is "not attached".
    for (auto& p : pongs) fake.reply(p.peer, FakeDaemon::forgotten());
    auto send_attached = [&] {
      fake.reply(attach_peer, FakeDaemon::message(wire::DaemonBody::Attached, [&](auto& fbb) {
                   return wire::CreateAttachedDirect(fbb, "cpp-once", "inst-2", topic.c_str(), "b:", 60000, 3,
                                                     16u << 20, true);
                 }));
    };
    if (!attach_peer.empty()) send_attached();
    // Everything the worker sends until it sends 12's kept answer again, which it does only
    // after the Ack to a Pong sent after Attached: its replies come in order, so every Attach
    // the three rejections caused arrives before that answer.
    bool ponged = false;
    std::optional<FakeDaemon::Received> again;
    for (std::uint64_t seq = 2; !again; ++seq) {
      REQUIRE(seq < 400);
      if (!attach_peer.empty() && !ponged) fake.publish(topic, FakeDaemon::ping(seq, "inst-2"));
      auto r = fake.recv(ponged ? 10000ms : 50ms);
      if (!r) {
        REQUIRE_FALSE(ponged);
        continue;
      }
      switch (r->type()) {
        case wire::WorkerBody::Attach:
          ++attaches;
          if (attach_peer.empty()) {
            attach_peer = r->peer;
            send_attached();
          }
          break;
        case wire::WorkerBody::Pong: {
          auto* p = r->msg->body_as_Pong();
          if (ponged || attach_peer.empty() || p->instance()->str() != "inst-2") break;
          // The new instance hears what still runs and the answer it has not confirmed.
          REQUIRE(p->in_flight() != nullptr);
          CHECK(std::vector<std::uint64_t>(p->in_flight()->begin(), p->in_flight()->end()) ==
                std::vector<std::uint64_t>{11});
          REQUIRE(p->answered() != nullptr);
          CHECK(std::vector<std::uint64_t>(p->answered()->begin(), p->answered()->end()) ==
                std::vector<std::uint64_t>{12});
          fake.reply(r->peer, FakeDaemon::pong_ack(p->seq(), {12}));  // it adopted 12: the answer, please
          ponged = true;
          break;
        }
        case wire::WorkerBody::Result:
          REQUIRE(r->msg->body_as_Result()->request_id() == 12);
          again = std::move(r);
          break;
        default:
          FAIL("unexpected ", wire::EnumNameWorkerBody(r->type()));
      }
    }
    CHECK(attaches == 1);
    CHECK(std::string_view(static_cast<const char*>(again->bytes.data()), again->bytes.size()) ==
          std::string_view(static_cast<const char*>(first.bytes.data()), first.bytes.size()));
    // 11 ran on through it all and answers now; nothing ran twice.
    release = true;
    CHECK(fake.expect(wire::WorkerBody::Result, true).msg->body_as_Result()->request_id() == 11);
    CHECK(runs == 2);
  }
}

TEST_CASE("C++ SDK whose Attach a stopping daemon refused attaches at once when the next one says 'not attached'") {
  // The refusal (ShuttingDown) answers the Attach: none is on its way any more, so the next
  // daemon's Rejected{reattach} is not taken for the answer to a message sent before it.
  FakeDaemon fake;
  RunningWorker w(fake.options("cpp-refused"));
  w.worker.node({.name = "n"}, [](Context&) { return Map{}; }, HandlerThread::Socket);
  w.start();
  fake.attach("cpp-refused", 16u << 20, /*ping_interval_ms=*/60000);  // no retry for 180 s
  fake.publish("b:", FakeDaemon::ping(1, "inst-2"));
  auto refused = fake.expect(wire::WorkerBody::Attach);
  fake.reply(refused.peer, FakeDaemon::message(wire::DaemonBody::Rejected, [](auto& fbb) {
               return wire::CreateRejectedDirect(fbb, ErrorCode::ShuttingDown, "the daemon is shutting down", false);
             }));
  // The daemon after it: each Pong is "not attached". A ping whenever the worker is quiet
  // (so at least 10 s in all).
  std::uint64_t seq = 2;
  for (int turn = 0, quiet = 1;; ++turn) {
    REQUIRE(turn < 400);
    if (quiet) fake.publish("b:", FakeDaemon::ping(seq++, "inst-3"));
    auto r = fake.recv(50ms);
    quiet = !r;
    if (!r) continue;
    if (r->type() == wire::WorkerBody::Pong) {
      fake.reply(r->peer, FakeDaemon::forgotten());
      continue;
    }
    REQUIRE(r->type() == wire::WorkerBody::Attach);
    CHECK(r->peer == refused.peer);  // sent for the rejection, not by a reconnect
    break;
  }
}

TEST_CASE("C++ SDK whose Attach no connection took (a failover pair, neither bound) attaches at once on 'not attached'") {
  // connect(): with two endpoints the dealer queues only on completed connections, so the
  // Attach sent while neither daemon is bound is dropped. It is not on its way: the first
  // Rejected{reattach} sends it again on the same connection, without waiting for the retry.
  FakeDaemon fake;  // its own endpoints stay unused; it binds the worker's late
  auto late = [&](const char* name) { return "ipc://" + (fake.dir.path / name).string(); };
  auto opt = fake.options("cpp-dropped");
  opt.direct = false;  // the SUB path: a worker asking for direct has no SUB before Attached
  opt.request_address = late("req-a.sock") + "," + late("req-b.sock");
  opt.response_address = late("resp-a.sock") + "," + late("resp-b.sock");
  fake.pub.bind(late("req-a.sock"));  // pings and requests reach it; its replies go nowhere yet
  std::atomic<bool> served{false};
  RunningWorker w(std::move(opt));
  w.worker.node({.name = "mark"}, [&](Context&) { served = true; return Map{}; }, HandlerThread::Socket);
  w.start();
  // The worker serves requests only from its loop, i.e. after connect() sent (and dropped) the Attach.
  for (std::uint64_t id = 1; !served; ++id) {
    REQUIRE(id < 400);
    fake.publish("b:", FakeDaemon::work_request(id, "mark", {}));
    std::this_thread::sleep_for(50ms);
  }
  fake.router.bind(late("resp-a.sock"));
  std::string pong_peer;
  std::uint64_t seq = 1;
  for (int turn = 0, quiet = 1;; ++turn) {  // a ping whenever the worker is quiet (at least 10 s in all)
    REQUIRE(turn < 400);
    if (quiet) fake.publish("b:", FakeDaemon::ping(seq++, "inst-1"));
    auto r = fake.recv(50ms);
    quiet = !r;
    if (!r) continue;
    if (r->type() == wire::WorkerBody::Pong) {
      pong_peer = r->peer;
      fake.reply(r->peer, FakeDaemon::forgotten());
      continue;
    }
    if (r->type() == wire::WorkerBody::Result) continue;  // of a "mark" sent after the bind
    REQUIRE(r->type() == wire::WorkerBody::Attach);
    CHECK(r->peer == pong_peer);  // sent for the rejection, not by a reconnect ("no answer to attach")
    break;
  }
}

TEST_CASE("C++ SDK started before its daemon, that reconnected before the daemon bound, attaches and hears it") {
  // libzmq sends a socket's monitor events from its I/O thread with a blocking send. reconnect()
  // closed the dealer's monitor reader, then the dealer, which lingered with its undelivered
  // Attach: once the daemon bound, that dealer's connection event blocked the I/O thread for
  // good, and with it every socket of the worker's context. Seen as tools/bench/cost.sh's "only
  // 0 of 2 echo workers attached" (musterd slow to start under callgrind): a worker started over
  // 3 s before musterd never attached. The worker's warning says when it reconnected.
  auto ring = std::make_shared<spdlog::sinks::ringbuffer_sink_mt>(64);
  auto logger = spdlog::default_logger();
  const auto level = logger->level();
  logger->sinks().push_back(ring);
  logger->set_level(spdlog::level::warn);
  struct Restore {
    std::shared_ptr<spdlog::logger> logger;
    spdlog::level::level_enum level;
    ~Restore() {
      logger->sinks().pop_back();
      logger->set_level(level);
    }
  } restore{logger, level};
  auto logged = [&](std::string_view what) {
    auto lines = ring->last_formatted();
    return std::any_of(lines.begin(), lines.end(), [&](const std::string& l) { return l.find(what) != std::string::npos; });
  };

  FakeDaemon fake;  // its own endpoints stay unused; it binds the worker's once the worker reconnected
  auto late = [&](const char* name) { return "ipc://" + (fake.dir.path / name).string(); };
  auto opt = fake.options("cpp-early");
  opt.request_address = late("req-late.sock");
  opt.response_address = late("resp-late.sock");
  RunningWorker w(std::move(opt));
  w.worker.node({.name = "n"}, [](Context&) { return Map{}; });
  w.start();
  for (int i = 0; !logged("reconnecting to the daemon: no answer to attach"); ++i) {
    REQUIRE(i < 400);  // 20 s; the worker gives up on its Attach after 3 s
    std::this_thread::sleep_for(50ms);
  }
  fake.pub.bind(late("req-late.sock"));
  fake.router.bind(late("resp-late.sock"));
  // Every Attach is answered: the lingering dealer's may come too, before or after the new
  // one's, and only the new connection is read. Every connection that attached is pinged until
  // a Pong comes back on one of them (at least 10 s in all).
  std::vector<std::string> peers;
  std::uint64_t seq = 1;
  for (int turn = 0;; ++turn) {
    REQUIRE_MESSAGE(turn < 200, "the worker never answered: Attaches received ", peers.size());
    auto r = fake.recv(50ms);
    if (!r) {
      for (auto& p : peers) fake.reply(p, FakeDaemon::ping(seq++, "inst-1"));
      continue;
    }
    if (r->type() == wire::WorkerBody::Attach) {
      peers.push_back(r->peer);
      fake.reply(r->peer, FakeDaemon::attached_direct("cpp-early"));
      continue;
    }
    REQUIRE(r->type() == wire::WorkerBody::Pong);
    CHECK(std::find(peers.begin(), peers.end(), r->peer) != peers.end());
    break;
  }
}
