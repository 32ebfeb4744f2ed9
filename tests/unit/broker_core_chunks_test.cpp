// broker_core_chunks_test.cpp — BrokerCore forwarding chunked values under a fake clock
// (PROTOCOL.md §7.9, broker_core_chunks.cpp): input chunks only within the worker's grant,
// output chunks within the caller's, credits clamped and forwarded, violations ending the call
// with the right code, cancel/deadline/worker death mid-stream with exactly one terminal reply.
// The per-stream rules alone are in stream_chunks_test.cpp.
#include <doctest/doctest.h>

#include <tuple>

#include <fmt/format.h>

#include "stream_harness.hpp"

using namespace stream_test;

namespace {

constexpr std::uint64_t KiB = 1024;

Payload bytes_of(std::size_t n) { return Payload::copy_of(std::vector<std::uint8_t>(n, 5)); }

// A Submit from "c1" whose caller takes chunked outputs with `window` (0: none).
std::vector<Action> submit_chunked(StreamHarness& h, std::uint64_t rid, std::uint64_t window,
                                   std::uint64_t timeout_ms = 0) {
  SubmitEvent ev;
  ev.client_request_id = rid;
  ev.node = "n";
  ev.timeout_ms = timeout_ms;
  ev.chunk_window_bytes = window;
  h.core.on_submit(h.now, peer("c1"), h.local, std::move(ev));
  return h.take();
}
std::vector<Action> client_chunk(StreamHarness& h, std::uint64_t rid, std::uint32_t stream, std::uint64_t offset,
                                 std::size_t size) {
  h.core.on_client_chunk(h.now, peer("c1"), ChunkEvent{rid, stream, offset, bytes_of(size)});
  return h.take();
}
std::vector<Action> client_credit(StreamHarness& h, std::uint64_t rid, std::uint32_t stream, std::uint64_t bytes) {
  h.core.on_credit(h.now, peer("c1"), CreditEvent{rid, stream, 0, bytes});
  return h.take();
}
std::vector<Action> worker_chunk(StreamHarness& h, const std::string& w, std::uint64_t id, std::uint32_t stream,
                                 std::uint64_t offset, std::size_t size) {
  h.core.on_worker_chunk(h.now, peer("wp-" + w), h.local, w, id, stream, offset, bytes_of(size));
  return h.take();
}
std::vector<Action> worker_credit(StreamHarness& h, const std::string& w, std::uint64_t id, std::uint32_t stream,
                                  std::uint64_t bytes) {
  h.core.on_worker_credit(h.now, peer("wp-" + w), h.local, w, id, stream, bytes);
  return h.take();
}

// What the caller received, in order: "chunk <stream>@<offset>+<size>", "credit <stream> <bytes>",
// "result", "failure <CODE>".
std::vector<std::string> caller_got(const std::vector<Action>& log) {
  std::vector<std::string> out;
  for (auto& r : all<ReplyToClient>(log)) {
    if (auto* c = std::get_if<ChunkBody>(&r.body))
      out.push_back(fmt::format("chunk {}@{}+{}", c->stream, c->offset, c->data.bytes.size()));
    else if (auto* g = std::get_if<CreditBody>(&r.body)) out.push_back(fmt::format("credit {} {}", g->stream, g->bytes));
    else if (std::holds_alternative<ResultBody>(r.body)) out.push_back("result");
    else if (auto* f = std::get_if<FailureBody>(&r.body)) out.push_back("failure " + std::string(error_code_name(f->code)));
  }
  return out;
}
FailureBody last_failure(const std::vector<Action>& log) {
  auto replies = all<ReplyToClient>(log);
  REQUIRE(!replies.empty());
  return std::get<FailureBody>(replies.back().body);
}

TEST_CASE("core chunks: the WorkRequest carries the output window, capped by --stream-window-bytes") {
  StreamHarness h;  // max_bytes 8 MiB
  h.ready("w1");
  auto out = all<SendWorkRequest>(submit_chunked(h, 1, 64 << 20));
  REQUIRE(out.size() == 1);
  CHECK(out[0].chunk_window_bytes == (8u << 20));
  h.result("w1", out[0].request_id);
  auto plain = all<SendWorkRequest>(submit_chunked(h, 2, 0));
  REQUIRE(plain.size() == 1);
  CHECK(plain[0].chunk_window_bytes == 0);
}

TEST_CASE("core chunks: input chunks go to the worker within its grant, in order, then one terminal reply") {
  StreamHarness h;
  h.ready("w1");
  auto id = dispatched_id(submit_chunked(h, 1, 0));
  // The worker grants 4 KiB on the caller's stream 1: the caller hears it under its own id.
  auto out = worker_credit(h, "w1", id, 1, 4 * KiB);
  auto credit = all<ReplyToClient>(out);
  REQUIRE(credit.size() == 1);
  CHECK(credit[0].request_id == 1);
  for (std::uint64_t i = 0; i < 4; ++i) {
    auto sent = all<SendChunk>(client_chunk(h, 1, 1, i * KiB, KiB));
    REQUIRE(sent.size() == 1);
    CHECK(sent[0].worker_id == "w1");
    CHECK(sent[0].request_id == id);
    CHECK(sent[0].offset == i * KiB);
    CHECK(sent[0].data.bytes.size() == KiB);
  }
  worker_credit(h, "w1", id, 1, 6 * KiB);
  CHECK(all<SendChunk>(client_chunk(h, 1, 1, 4 * KiB, 2 * KiB)).size() == 1);
  h.result("w1", id);
  CHECK(caller_got(h.log) == std::vector<std::string>{"credit 1 4096", "credit 1 6144", "result"});
  // After the terminal reply a chunk is dropped: nothing to the worker, no second reply.
  auto late = client_chunk(h, 1, 1, 6 * KiB, KiB);
  CHECK(all<SendChunk>(late).empty());
  CHECK(all<ReplyToClient>(late).empty());
}

TEST_CASE("core chunks: a caller's chunk beyond the worker's grant ends the call BAD_MESSAGE, the worker aborted") {
  StreamHarness h;
  h.ready("w1");
  auto id = dispatched_id(submit_chunked(h, 1, 0));
  auto out = client_chunk(h, 1, 1, 0, KiB);  // no credit yet
  CHECK(all<SendChunk>(out).empty());
  auto aborts = all<SendAbort>(out);
  REQUIRE(aborts.size() == 1);
  CHECK(aborts[0].request_id == id);
  CHECK(aborts[0].code == ErrorCode::BadMessage);
  CHECK(caller_got(h.log) == std::vector<std::string>{"failure BAD_MESSAGE"});
  CHECK(last_failure(h.log).message == "chunk of stream 1 at offset 0 (1024 bytes) beyond the credit of 0 bytes");
  client_chunk(h, 1, 1, KiB, KiB);  // the call is over: nothing more
  h.result("w1", id);
  CHECK(caller_got(h.log).size() == 1);
}

TEST_CASE("core chunks: out-of-order, duplicate and wrong-stream chunks from the caller are refused") {
  for (auto [offset, stream, why] :
       {std::tuple<std::uint64_t, std::uint32_t, const char*>{2 * KiB, 1, "expected offset 1024"},
        {0, 1, "overlaps the 1024 bytes already received"},
        {0, 2, "which belongs to the worker"}}) {
    CAPTURE(why);
    StreamHarness h;
    h.ready("w1");
    auto id = dispatched_id(submit_chunked(h, 1, 0));
    worker_credit(h, "w1", id, 1, 8 * KiB);
    REQUIRE(all<SendChunk>(client_chunk(h, 1, 1, 0, KiB)).size() == 1);
    auto out = client_chunk(h, 1, stream, offset, KiB);
    CHECK(all<SendChunk>(out).empty());
    CHECK(all<SendAbort>(out).size() == 1);
    CHECK(caller_got(h.log) == std::vector<std::string>{"credit 1 8192", "failure BAD_MESSAGE"});
    CHECK(last_failure(h.log).message.find(why) != std::string::npos);
  }
}

TEST_CASE("core chunks: a queued call's chunk (no worker, no credit) ends it BAD_MESSAGE off its queue") {
  StreamHarness h;  // no worker: the call waits (the grace for a node nobody serves)
  h.ready("w1");
  auto first = dispatched_id(submit_chunked(h, 1, 0));  // w1 (capacity 1) is busy with it
  CHECK(all<SendWorkRequest>(submit_chunked(h, 2, 0)).empty());
  client_chunk(h, 2, 1, 0, KiB);
  CHECK(caller_got(h.log) == std::vector<std::string>{"failure BAD_MESSAGE"});
  // Call 2 left the queue: when w1 is free it gets nothing more.
  h.result("w1", first);
  CHECK(all<SendWorkRequest>(h.log).size() == 1);
}

TEST_CASE("core chunks: output chunks go to the caller within its window; its credit reaches the worker") {
  StreamHarness h;
  h.ready("w1");
  auto id = dispatched_id(submit_chunked(h, 7, 4 * KiB));
  for (std::uint64_t i = 0; i < 4; ++i) {
    auto out = worker_chunk(h, "w1", id, 2, i * KiB, KiB);
    CHECK(all<ReplyToWorker>(out).empty());  // a no_answer_acks worker: nothing per chunk
  }
  auto credit = all<SendCredit>(client_credit(h, 7, 2, 100ull << 20));
  REQUIRE(credit.size() == 1);
  CHECK(credit[0].worker_id == "w1");
  CHECK(credit[0].request_id == id);
  CHECK(credit[0].stream == 2);
  CHECK(credit[0].bytes == 4 * KiB + (8u << 20));  // clamped: forwarded + one window (8 MiB cap)
  worker_chunk(h, "w1", id, 2, 4 * KiB, KiB);
  h.result("w1", id);
  CHECK(caller_got(h.log) == std::vector<std::string>{"chunk 2@0+1024", "chunk 2@1024+1024", "chunk 2@2048+1024",
                                                      "chunk 2@3072+1024", "chunk 2@4096+1024", "result"});
}

TEST_CASE("core chunks: a worker's chunk beyond the window ends the call WORKER_ERROR; Rejected and Abort") {
  StreamHarness h;
  h.ready("w1");
  auto id = dispatched_id(submit_chunked(h, 1, 2 * KiB));
  worker_chunk(h, "w1", id, 2, 0, 2 * KiB);
  auto out = worker_chunk(h, "w1", id, 2, 2 * KiB, 1);
  auto rejected = all<ReplyToWorker>(out);
  REQUIRE(rejected.size() == 1);
  CHECK(std::get<RejectedReply>(rejected[0].body).code == ErrorCode::BadMessage);
  REQUIRE(all<SendAbort>(out).size() == 1);
  CHECK(all<SendAbort>(out)[0].code == ErrorCode::BadMessage);
  CHECK(caller_got(h.log) == std::vector<std::string>{"chunk 2@0+2048", "failure WORKER_ERROR"});
  CHECK(last_failure(h.log).message ==
        "worker 'w1' broke the chunk protocol: chunk of stream 2 at offset 2048 (1 bytes) beyond the credit of "
        "2048 bytes");
  h.result("w1", id);  // late: dropped
  CHECK(caller_got(h.log).size() == 2);
}

TEST_CASE("core chunks: output chunks to a caller that takes none are a violation") {
  StreamHarness h;
  h.ready("w1");
  auto id = dispatched_id(submit_chunked(h, 1, 0));
  worker_chunk(h, "w1", id, 2, 0, 1);
  CHECK(caller_got(h.log) == std::vector<std::string>{"failure WORKER_ERROR"});
}

TEST_CASE("core chunks: a gap in the worker's chunks (lost on the way) ends the call WORKER_LOST") {
  StreamHarness h;
  h.ready("w1");
  auto id = dispatched_id(submit_chunked(h, 1, 8 * KiB));
  worker_chunk(h, "w1", id, 2, 0, KiB);
  auto out = worker_chunk(h, "w1", id, 2, 3 * KiB, KiB);
  REQUIRE(all<SendAbort>(out).size() == 1);
  CHECK(all<SendAbort>(out)[0].code == ErrorCode::WorkerLost);
  CHECK(caller_got(h.log) == std::vector<std::string>{"chunk 2@0+1024", "failure WORKER_LOST"});
}

TEST_CASE("core chunks: cancel mid-upload: CANCELLED once, Abort to the worker, later chunks dropped") {
  StreamHarness h;
  h.ready("w1");
  auto id = dispatched_id(submit_chunked(h, 1, 0));
  worker_credit(h, "w1", id, 1, 8 * KiB);
  client_chunk(h, 1, 1, 0, KiB);
  h.core.on_cancel(h.now, peer("c1"), 1);
  auto out = h.take();
  REQUIRE(all<SendAbort>(out).size() == 1);
  CHECK(all<SendAbort>(out)[0].code == ErrorCode::Cancelled);
  CHECK(all<SendChunk>(client_chunk(h, 1, 1, KiB, KiB)).empty());
  CHECK(all<ReplyToClient>(worker_credit(h, "w1", id, 1, 16 * KiB)).empty());  // over: not forwarded
  h.result("w1", id);
  CHECK(caller_got(h.log) == std::vector<std::string>{"credit 1 8192", "failure CANCELLED"});
  CHECK(all<SendChunk>(h.log).size() == 1);
}

TEST_CASE("core chunks: deadline mid-download: TIMEOUT once, Abort to the worker, later chunks late") {
  StreamHarness h;
  h.ready("w1");
  auto id = dispatched_id(submit_chunked(h, 1, 8 * KiB, 500));
  worker_chunk(h, "w1", id, 2, 0, KiB);
  auto out = h.advance(600ms);
  REQUIRE(all<SendAbort>(out).size() == 1);
  CHECK(all<SendAbort>(out)[0].code == ErrorCode::Timeout);
  worker_chunk(h, "w1", id, 2, KiB, KiB);
  CHECK(caller_got(h.log) == std::vector<std::string>{"chunk 2@0+1024", "failure TIMEOUT"});
}

TEST_CASE("core chunks: worker death before any chunk or credit: an idempotent call runs again") {
  StreamHarness h;
  h.ready("w1", true);
  auto id = dispatched_id(submit_chunked(h, 1, 4 * KiB));
  h.ready("w2", true);
  std::vector<SendWorkRequest> rerun;
  for (int i = 0; i < 4 && rerun.empty(); ++i) {
    h.advance(1000ms);
    h.pong("w2");
    for (auto& s : all<SendWorkRequest>(h.log))
      if (s.worker_id == "w2") rerun.push_back(s);
  }
  REQUIRE(rerun.size() == 1);
  CHECK(rerun[0].request_id == id);
  CHECK(rerun[0].chunk_window_bytes == 4 * KiB);
}

TEST_CASE("core chunks: worker death after a chunk went through: WORKER_LOST even when idempotent") {
  for (bool upload : {true, false}) {
    CAPTURE(upload);
    StreamHarness h;
    h.ready("w1", true);
    auto id = dispatched_id(submit_chunked(h, 1, 4 * KiB));
    h.ready("w2", true);
    if (upload) worker_credit(h, "w1", id, 1, 4 * KiB);  // the worker started reading the input
    else worker_chunk(h, "w1", id, 2, 0, KiB);
    for (int i = 0; i < 4; ++i) {
      h.advance(1000ms);
      h.pong("w2");
    }
    for (auto& s : all<SendWorkRequest>(h.log)) CHECK(s.worker_id == "w1");
    CHECK(caller_got(h.log).back() == "failure WORKER_LOST");
    CHECK(last_failure(h.log).message.find("chunked streams") != std::string::npos);
  }
}

TEST_CASE("core chunks: an output grant the worker has not used is published again on its pong") {
  StreamHarness h;
  h.ready("w1");
  auto id = dispatched_id(submit_chunked(h, 1, 4 * KiB));
  worker_chunk(h, "w1", id, 2, 0, 4 * KiB);
  REQUIRE(all<SendCredit>(client_credit(h, 1, 2, 8 * KiB)).size() == 1);
  h.advance(1000ms);
  auto again = all<SendCredit>(h.pong("w1", {id}));
  REQUIRE(again.size() == 1);
  CHECK(again[0].stream == 2);
  CHECK(again[0].bytes == 8 * KiB);
  worker_chunk(h, "w1", id, 2, 4 * KiB, 4 * KiB);
  h.advance(1000ms);
  CHECK(all<SendCredit>(h.pong("w1", {id})).empty());  // used up
}

}  // namespace

// ---- durable calls and chunked values (PROTOCOL.md §7.9, docs/DURABILITY.md §1) --------------

namespace {
// A durable Submit from "c1" whose inputs are `inputs`, taking chunked outputs with `window`.
std::vector<Action> submit_durable_with(StreamHarness& h, std::uint64_t rid, const Map& inputs,
                                        std::uint64_t window = 0) {
  SubmitEvent ev;
  ev.client_request_id = rid;
  ev.node = "n";
  ev.durable = true;
  ev.chunk_window_bytes = window;
  ev.inputs = Payload::copy_of(encode_values(inputs));
  h.core.on_submit(h.now, peer("c1"), h.local, std::move(ev));
  return h.take();
}
}  // namespace

TEST_CASE("core chunks: a durable Submit whose inputs hold a Chunked value is refused, nothing journaled") {
  StreamHarness h;
  h.ready("w1");
  ChunkedValue ref{1, 64 << 20, {}};
  for (const Map& inputs : {Map{{"image", Value(ref)}},
                            Map{{"pages", Value(List{Value(std::string("a")), Value(ref)})}},
                            Map{{"doc", Value(Map{{"body", Value(ref)}})}}}) {
    auto out = submit_durable_with(h, 1, inputs);
    CHECK(all<SendWorkRequest>(out).empty());
    auto f = last_failure(out);
    CHECK(f.code == ErrorCode::InvalidRequest);
    CHECK(f.message.find("a durable call carries its values inline (at most the message limit); "
                         "chunked values are for non-durable calls") == 0);
    CHECK(f.job_id == 0);
    CHECK(h.core.journal_ops().empty());
  }
  // The same inputs inline are accepted.
  auto ok = submit_durable_with(h, 2, Map{{"image", Value(std::string("small"))}});
  CHECK(all<SendWorkRequest>(ok).size() == 1);
  CHECK_FALSE(h.core.journal_ops().empty());
}

TEST_CASE("core chunks: a durable call's worker gets no chunk window, whatever its caller asked") {
  StreamHarness h;
  h.ready("w1");
  auto out = all<SendWorkRequest>(submit_durable_with(h, 1, Map{{"x", Value(std::int64_t{1})}}, 4 << 20));
  REQUIRE(out.size() == 1);
  CHECK(out[0].chunk_window_bytes == 0);  // its outputs must fit a message: they are journaled
}
