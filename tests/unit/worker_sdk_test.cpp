// worker_sdk_test.cpp — the C++ worker SDK against a real musterd: where handlers run
// (HandlerThread), what reaches the caller from each, and that a handler's inputs can be
// moved out. The example worker's nodes cover the rest of the SDK in tests/integration.
#include <doctest/doctest.h>

#include <atomic>
#include <chrono>
#include <thread>

#include <zmq.hpp>

#include "daemon_process.hpp"
#include "muster/align.hpp"
#include "muster/client.hpp"
#include "muster/frames.hpp"
#include "muster/messages.hpp"
#include "muster/worker.hpp"

using namespace muster;
using namespace std::chrono_literals;
using muster::test::DaemonProcess;

namespace {

// A Worker serving on its own thread; stopped and joined when the test ends, passed or not.
struct RunningWorker {
  Worker worker;
  std::thread thread;
  explicit RunningWorker(WorkerOptions opt) : worker(std::move(opt)) {}
  void start() { thread = std::thread([this] { worker.run(); }); }
  ~RunningWorker() {
    worker.stop();
    if (thread.joinable()) thread.join();
  }
};

// A worker of `daemon`, signals left to the test runner, a short drain.
WorkerOptions options_for(const DaemonProcess& daemon, std::string worker_id) {
  return {.worker_id = std::move(worker_id),
          .request_address = daemon.endpoint("request"),
          .response_address = daemon.endpoint("response"),
          .drain_timeout = 2000ms,
          .handle_signals = false};
}

// Waits (bounded) until the daemon lists `node` as served.
void wait_for_node(Client& client, const std::string& node) {
  for (int i = 0; i < 300; ++i) {
    for (auto& n : client.nodes())
      if (n.value("name", "") == node && n.value("workers", 0) > 0) return;
    std::this_thread::sleep_for(10ms);
  }
  FAIL("node ", node, " never became available");
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
