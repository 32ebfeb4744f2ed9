// worker_chunk_resume_test.cpp — the C++ worker SDK's resumption of chunked streams
// (PROTOCOL.md §7.9 R1-R4, R9-R11) against a scripted fake daemon (fake_worker_daemon.hpp):
// as the receiver of an input stream it asks once for a gap and takes the chunks sent again,
// asks after resume_after when the last chunk never comes, and asks for every incomplete input
// after attaching again to the same daemon instance (another instance: the call is aborted);
// as the sender of an output stream it sends again from a resume Credit's offset the same bytes
// (while sending, and once answered, while the answer is kept), the Chunked reference unchanged,
// and an OutputSource asked to go back more than kResumeKeepBytes fails the call WorkerError.
#include <doctest/doctest.h>

#include <atomic>
#include <chrono>
#include <thread>

#include <fmt/format.h>

#include "fake_worker_daemon.hpp"
#include "running_worker.hpp"
#include "muster/chunking.hpp"
#include "muster/sha256.hpp"
#include "muster/worker.hpp"

using namespace muster;
using namespace std::chrono_literals;
using muster::test::FakeDaemon;
using muster::test::RunningWorker;

namespace {

constexpr std::uint64_t MiB = 1 << 20;

Bytes pattern(std::size_t n, std::uint8_t seed = 0) {
  std::vector<std::uint8_t> v(n);
  for (std::size_t i = 0; i < n; ++i) v[i] = static_cast<std::uint8_t>(i * 131 + (i >> 20) + seed);
  return Bytes(std::move(v));
}

std::span<const std::uint8_t> slice(const Bytes& b, std::uint64_t from, std::uint64_t to) {
  return b.span().subspan(static_cast<std::size_t>(from), static_cast<std::size_t>(to - from));
}

// A node "check" whose bytes input "data" must equal `expected`: returns {"same": bool}.
void serve_check(RunningWorker& w, const Bytes& expected) {
  w.worker.node({.name = "check", .inputs = {{.name = "data", .type = "bytes", .required = true}}},
                [expected](Context& ctx) { return Map{{"same", Value(ctx.input("data").as_bytes() == expected)}}; });
}

WorkerOptions options(FakeDaemon& fake, const std::string& id, std::chrono::milliseconds resume_after) {
  auto o = fake.options(id);
  o.resume_after = resume_after;
  o.chunk_threshold = 1024;
  return o;
}

// The next message that is not a Pong (Pongs are answered).
FakeDaemon::Received next_not_pong(FakeDaemon& fake) {
  for (;;) {
    auto r = fake.recv(10000ms);
    REQUIRE_MESSAGE(r.has_value(), "nothing from the worker");
    if (r->type() == wire::WorkerBody::Pong) {
      fake.reply(r->peer, FakeDaemon::ack());
      continue;
    }
    return std::move(*r);
  }
}

const wire::Credit& credit_of(const FakeDaemon::Received& r) {
  REQUIRE_MESSAGE(r.type() == wire::WorkerBody::Credit, "got ", wire::EnumNameWorkerBody(r.type()));
  return *r.msg->body_as_Credit();
}

bool same_result(const FakeDaemon::Received& r) {
  REQUIRE_MESSAGE(r.type() == wire::WorkerBody::Result, "got ", wire::EnumNameWorkerBody(r.type()));
  return decode_values(payload_bytes(r.msg->body_as_Result()->outputs())).find("same")->as_bool();
}

}  // namespace

TEST_CASE("C++ worker resume (§7.9 R1, R2): an input gap gets exactly one resume Credit; the chunks sent again are taken") {
  FakeDaemon fake;
  const auto data = pattern(5000, 1);
  RunningWorker w(options(fake, "cpp-gap", 30000ms));
  serve_check(w, data);
  w.start();
  fake.attach("cpp-gap", 16u << 20, 60000, /*no_answer_acks=*/true);
  const std::string topic = "w:cpp-gap:";
  ChunkedValue ref{1, data.size(), sha256(data.span())};
  fake.publish(topic, FakeDaemon::work_request(11, "check", {{"data", Value(ref)}}));
  auto first_msg = next_not_pong(fake);
  auto& first = credit_of(first_msg);
  CHECK(first.stream() == 1);
  CHECK(first.bytes() == 5000);
  CHECK_FALSE(first.resume());
  fake.publish(topic, FakeDaemon::chunk(11, 1, 0, slice(data, 0, 1000)));
  fake.publish(topic, FakeDaemon::chunk(11, 1, 2000, slice(data, 2000, 3000)));  // [1000, 2000) lost
  fake.publish(topic, FakeDaemon::chunk(11, 1, 3000, slice(data, 3000, 4000)));
  auto resume = next_not_pong(fake);
  auto& c = credit_of(resume);
  CHECK(c.stream() == 1);
  CHECK(c.resume());
  CHECK(c.resume_offset() == 1000);
  CHECK(c.bytes() == 5000);
  // Sent again from 500 (trimmed to what is new), then the rest; the next message is the Result,
  // not a second resume Credit for the chunks after the gap.
  fake.publish(topic, FakeDaemon::chunk(11, 1, 500, slice(data, 500, 2000)));
  fake.publish(topic, FakeDaemon::chunk(11, 1, 2000, slice(data, 2000, 3000)));
  fake.publish(topic, FakeDaemon::chunk(11, 1, 1000, slice(data, 1000, 2000)));  // had it: dropped
  fake.publish(topic, FakeDaemon::chunk(11, 1, 3000, slice(data, 3000, 5000)));
  CHECK(same_result(next_not_pong(fake)));
}

TEST_CASE("C++ worker resume (§7.9 R3): the last input chunk lost, a resume Credit comes after resume_after") {
  FakeDaemon fake;
  const auto data = pattern(5000, 2);
  RunningWorker w(options(fake, "cpp-stall", 200ms));
  serve_check(w, data);
  w.start();
  fake.attach("cpp-stall", 16u << 20, 60000, /*no_answer_acks=*/true);
  const std::string topic = "w:cpp-stall:";
  fake.publish(topic, FakeDaemon::work_request(12, "check", {{"data", Value(ChunkedValue{1, data.size(), sha256(data.span())})}}));
  CHECK_FALSE(credit_of(next_not_pong(fake)).resume());
  fake.publish(topic, FakeDaemon::chunk(12, 1, 0, slice(data, 0, 4000)));  // [4000, 5000) never comes
  // (Under load the chunk may come later than resume_after: then a resume Credit at 0 first.)
  auto resume_at_4000 = [&] {
    for (;;) {
      auto r = next_not_pong(fake);
      auto& c = credit_of(r);
      REQUIRE(c.resume());
      if (c.resume_offset() == 4000) return;
      REQUIRE(c.resume_offset() == 0);
    }
  };
  resume_at_4000();
  resume_at_4000();  // and again after each further resume_after
  fake.publish(topic, FakeDaemon::chunk(12, 1, 4000, slice(data, 4000, 5000)));
  for (;;) {  // a resume Credit may have crossed the chunk
    auto r = next_not_pong(fake);
    if (r.type() == wire::WorkerBody::Credit) continue;
    CHECK(same_result(r));
    break;
  }
}

TEST_CASE("C++ worker resume (§7.9 R4): attached again to the same instance it asks for its incomplete inputs; to another it aborts") {
  for (bool same : {true, false}) {
    CAPTURE(same);
    FakeDaemon fake;
    const auto data = pattern(6 * MiB, 3);
    RunningWorker w(options(fake, "cpp-reattach", 30000ms));
    serve_check(w, data);
    w.start();
    auto peer = fake.attach("cpp-reattach", 16u << 20, 60000, /*no_answer_acks=*/true);
    const std::string topic = "w:cpp-reattach:";
    fake.publish(topic, FakeDaemon::work_request(13, "check", {{"data", Value(ChunkedValue{1, data.size(), sha256(data.span())})}}));
    CHECK(credit_of(next_not_pong(fake)).bytes() == 4 * MiB);
    fake.publish(topic, FakeDaemon::chunk(13, 1, 0, slice(data, 0, MiB)));
    auto more_msg = next_not_pong(fake);  // the handler took the first MiB
    auto& more = credit_of(more_msg);
    CHECK(more.bytes() == 5 * MiB);
    CHECK_FALSE(more.resume());
    // The daemon no longer knows the worker (missed pings): it attaches again, same session.
    fake.reply(peer, FakeDaemon::forgotten());
    auto a = fake.expect(wire::WorkerBody::Attach, true);
    const std::string instance = same ? "inst-1" : "inst-2";
    fake.reply(a.peer, FakeDaemon::message(wire::DaemonBody::Attached, [&](auto& fbb) {
                 return wire::CreateAttachedDirect(fbb, "cpp-reattach", instance.c_str(), topic.c_str(), "b:", 60000, 3,
                                                   16u << 20, true);
               }));
    auto next = next_not_pong(fake);
    if (same) {
      auto& c = credit_of(next);
      CHECK(c.stream() == 1);
      CHECK(c.resume());
      CHECK(c.resume_offset() == MiB);
      CHECK(c.bytes() == 5 * MiB);
      for (std::uint64_t at = MiB; at < data.size(); at += MiB) {
        fake.publish(topic, FakeDaemon::chunk(13, 1, at, slice(data, at, at + MiB)));
        if (at + MiB == 5 * MiB) fake.expect(wire::WorkerBody::Credit, true);  // up to the size
      }
      auto r = next_not_pong(fake);
      while (r.type() == wire::WorkerBody::Credit) r = next_not_pong(fake);
      CHECK(same_result(r));
    } else {
      REQUIRE(next.type() == wire::WorkerBody::Failure);  // aborted: the new instance does not know it
      CHECK(next.msg->body_as_Failure()->message()->str() ==
            "the request was aborted while input data was read (1048576 of 6291456 bytes)");
    }
  }
}

TEST_CASE("C++ worker resume: a call whose input stream is still open past its deadline is aborted, not left waiting") {
  FakeDaemon fake;
  const auto data = pattern(5000, 6);
  RunningWorker w(options(fake, "cpp-late", 100ms));
  serve_check(w, data);
  w.start();
  fake.attach("cpp-late", 16u << 20, 60000, /*no_answer_acks=*/true);
  const std::string topic = "w:cpp-late:";
  fake.publish(topic, FakeDaemon::work_request(16, "check", {{"data", Value(ChunkedValue{1, data.size(), sha256(data.span())})}},
                                               false, 0, /*timeout_ms=*/300));
  fake.publish(topic, FakeDaemon::chunk(16, 1, 0, slice(data, 0, 1000)));
  for (;;) {  // its Credits (the first grant, then resume Credits: nothing more comes), then the end
    auto r = next_not_pong(fake);
    if (r.type() == wire::WorkerBody::Credit) continue;
    REQUIRE_MESSAGE(r.type() == wire::WorkerBody::Failure, "got ", std::string(wire::EnumNameWorkerBody(r.type())));
    CHECK(r.msg->body_as_Failure()->message()->str() ==
          "the request was aborted while input data was read (1000 of 5000 bytes)");
    break;
  }
}

namespace {

// The chunks of stream `stream` the worker sends until one ends at `end`: checked against
// `expected` from `from` on, in order.
void expect_chunks(FakeDaemon& fake, std::uint32_t stream, const Bytes& expected, std::uint64_t from, std::uint64_t end) {
  std::uint64_t at = from;
  while (at < end) {
    auto r = next_not_pong(fake);
    REQUIRE_MESSAGE(r.type() == wire::WorkerBody::Chunk, "got ", wire::EnumNameWorkerBody(r.type()));
    auto* c = r.msg->body_as_Chunk();
    REQUIRE(c->stream() == stream);
    REQUIRE(c->offset() == at);
    CHECK(Bytes(c->data()->begin(), c->data()->end()) == Bytes(slice(expected, at, at + c->data()->size()).begin(),
                                                               slice(expected, at, at + c->data()->size()).end()));
    at += c->data()->size();
  }
  CHECK(at == end);
}

ChunkedValue result_ref(const FakeDaemon::Received& r, const std::string& port) {
  REQUIRE_MESSAGE(r.type() == wire::WorkerBody::Result, "got ", wire::EnumNameWorkerBody(r.type()));
  return decode_values(payload_bytes(r.msg->body_as_Result()->outputs())).find(port)->as_chunked();
}

// An OutputSource of `size` pattern bytes, generated as read.
struct PatternSource final : OutputSource {
  std::uint64_t size, at = 0;
  std::uint8_t seed;
  PatternSource(std::uint64_t n, std::uint8_t s) : size(n), seed(s) {}
  std::size_t read(std::span<std::uint8_t> out) override {
    auto n = static_cast<std::size_t>(std::min<std::uint64_t>(out.size(), size - at));
    for (std::size_t k = 0; k < n; ++k, ++at) out[k] = static_cast<std::uint8_t>(at * 131 + (at >> 20) + seed);
    return n;
  }
};

}  // namespace

TEST_CASE("C++ worker resume (§7.9 R9-R11): an output goes again from the resume Credit's offset, while sent and once answered") {
  FakeDaemon fake;
  const auto out = pattern(3 * MiB + 5, 4);
  RunningWorker w(options(fake, "cpp-out", 30000ms));
  w.worker.node({.name = "big"}, [out](Context&) { return Map{{"data", Value(out)}}; });
  w.start();
  fake.attach("cpp-out", 16u << 20, 60000, /*no_answer_acks=*/true);
  const std::string topic = "w:cpp-out:";
  fake.publish(topic, FakeDaemon::work_request(14, "big", {}, false, /*chunk_window_bytes=*/MiB));
  expect_chunks(fake, 2, out, 0, MiB);  // the first window
  // While the handler thread sends: back to 100, with more credit.
  fake.publish(topic, FakeDaemon::credit(14, 2, 2 * MiB, 100));
  expect_chunks(fake, 2, out, 100, 2 * MiB);
  fake.publish(topic, FakeDaemon::credit(14, 2, 8 * MiB));
  expect_chunks(fake, 2, out, 2 * MiB, out.size());
  auto result = next_not_pong(fake);
  auto ref = result_ref(result, "data");
  CHECK(ref.stream == 2);
  CHECK(ref.size == out.size());
  CHECK(ref.sha256 == sha256(out.span()));  // each byte hashed once
  // Answered, not confirmed (R11): the socket thread sends again what a resume Credit asks.
  fake.publish(topic, FakeDaemon::credit(14, 2, 8 * MiB, 2 * MiB + 7));
  expect_chunks(fake, 2, out, 2 * MiB + 7, out.size());
  // The Result sent again on the Pong's Ack (musterd held it, R8), and the stream after it.
  fake.publish("b:", FakeDaemon::ping(100, "inst-1"));
  auto pong = fake.expect(wire::WorkerBody::Pong);
  fake.reply(pong.peer, FakeDaemon::pong_ack(100, {14}));
  CHECK(result_ref(fake.expect(wire::WorkerBody::Result), "data") == ref);
  fake.publish(topic, FakeDaemon::credit(14, 2, 8 * MiB, 0));
  expect_chunks(fake, 2, out, 0, out.size());
  // Confirmed: nothing is sent again any more. (The Ack is read on a later turn of the worker
  // than the next Ping may be: ping until a Pong no longer lists 14.)
  for (std::uint64_t seq = 101;; ++seq) {
    REQUIRE(seq < 150);
    fake.publish("b:", FakeDaemon::ping(seq, "inst-1"));
    pong = fake.expect(wire::WorkerBody::Pong);
    fake.reply(pong.peer, FakeDaemon::pong_ack(seq, {}));
    auto* answered = pong.msg->body_as_Pong()->answered();
    if (!answered || answered->size() == 0) break;
    std::this_thread::sleep_for(150ms);
  }
  fake.publish(topic, FakeDaemon::credit(14, 2, 8 * MiB, 0));
  CHECK_FALSE(fake.recv(300ms).has_value());
}

TEST_CASE("C++ worker resume (§7.9 R10): an OutputSource asked to go back more than kResumeKeepBytes fails WorkerError") {
  FakeDaemon fake;
  const std::uint64_t size = kResumeKeepBytes + 2 * MiB;
  RunningWorker w(options(fake, "cpp-far", 30000ms));
  w.worker.node({.name = "stream"}, [size](Context& ctx) {
    ctx.output_stream("data", std::make_unique<PatternSource>(size, 5));
    return Map{};
  });
  w.start();
  fake.attach("cpp-far", 16u << 20, 60000, /*no_answer_acks=*/true);
  const std::string topic = "w:cpp-far:";
  fake.publish(topic, FakeDaemon::work_request(15, "stream", {}, false, /*chunk_window_bytes=*/64 * MiB));
  const auto expected = pattern(size, 5);
  expect_chunks(fake, 2, expected, 0, size);
  auto ref = result_ref(next_not_pong(fake), "data");
  CHECK(ref.sha256 == sha256(expected.span()));
  fake.publish(topic, FakeDaemon::credit(15, 2, 64 * MiB, 3 * MiB));  // within the last 16 MiB
  expect_chunks(fake, 2, expected, 3 * MiB, size);
  fake.publish(topic, FakeDaemon::credit(15, 2, 64 * MiB, MiB));  // before them
  auto failure = next_not_pong(fake);
  REQUIRE(failure.type() == wire::WorkerBody::Failure);
  CHECK(failure.msg->body_as_Failure()->code() == ErrorCode::WorkerError);
  CHECK(failure.msg->body_as_Failure()->message()->str() ==
        fmt::format("output data: chunked stream 2: cannot resume at offset {}: its source cannot be read again and "
                    "only its bytes from offset {} are kept (the last {} read)",
                    MiB, 2 * MiB, kResumeKeepBytes));
}

TEST_CASE("C++ worker resume (§7.9 R10): an OutputSource's kept pieces are the chunk messages it sent: once the "
          "sockets released them, a resume sends the same bytes again, whole pieces and cut ones") {
  FakeDaemon fake;
  const std::uint64_t size = 5 * MiB + 123;  // a short last piece too (built at its size)
  RunningWorker w(options(fake, "cpp-kept", 30000ms));
  w.worker.node({.name = "stream"}, [size](Context& ctx) {
    ctx.output_stream("data", std::make_unique<PatternSource>(size, 9));
    return Map{};
  });
  w.start();
  fake.attach("cpp-kept", 16u << 20, 60000, /*no_answer_acks=*/true);
  const std::string topic = "w:cpp-kept:";
  fake.publish(topic, FakeDaemon::work_request(17, "stream", {}, false, /*chunk_window_bytes=*/64 * MiB));
  const auto expected = pattern(size, 9);
  // Every chunk received by the fake daemon and dropped: the worker's sockets released them.
  expect_chunks(fake, 2, expected, 0, size);
  auto ref = result_ref(next_not_pong(fake), "data");
  CHECK(ref.size == size);
  CHECK(ref.sha256 == sha256(expected.span()));
  // A caller that has the first R bytes asks again from R: the bytes it gets, after its own
  // R, make the stream whose sha256 the reference gives. At a piece's start (the kept message
  // sent as it is), inside a piece (built anew from the kept bytes), and at the short last one.
  for (std::uint64_t r : {2 * MiB, 3 * MiB + 7, 5 * MiB, std::uint64_t{0}}) {
    CAPTURE(r);
    fake.publish(topic, FakeDaemon::credit(17, 2, 64 * MiB, r));
    Sha256 hash;
    hash.update(slice(expected, 0, r));
    std::uint64_t at = r;
    while (at < size) {
      auto m = next_not_pong(fake);
      REQUIRE_MESSAGE(m.type() == wire::WorkerBody::Chunk, "got ", wire::EnumNameWorkerBody(m.type()));
      auto* c = m.msg->body_as_Chunk();
      REQUIRE(c->offset() == at);
      std::span<const std::uint8_t> data(c->data()->data(), c->data()->size());
      CHECK(std::equal(data.begin(), data.end(), slice(expected, at, at + data.size()).begin()));
      hash.update(data);
      at += data.size();
    }
    CHECK(at == size);
    CHECK(hash.finish() == ref.sha256);
  }
}
