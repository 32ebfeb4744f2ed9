// broker_core_chunks_test.cpp — BrokerCore forwarding chunked values under a fake clock
// (PROTOCOL.md §7.9, broker_core_chunks.cpp): input chunks only within the worker's grant,
// output chunks within the caller's, credits clamped and forwarded, violations ending the call
// with the right code, cancel/deadline/worker death mid-stream with exactly one terminal reply;
// resumption (§7.9 R5-R8): resume Credits both ways, the worker's gap, a Result held while a
// stream it names is short.
// The per-stream rules alone are in stream_chunks_test.cpp.
#include <doctest/doctest.h>

#include <map>
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

// ---- resumption (PROTOCOL.md §7.9 "Resumption", daemon rules R5-R8) ------------------------

namespace {
std::vector<Action> client_resume(StreamHarness& h, std::uint64_t rid, std::uint32_t stream, std::uint64_t bytes,
                                  std::uint64_t offset) {
  h.core.on_credit(h.now, peer("c1"), CreditEvent{rid, stream, 0, bytes, true, offset});
  return h.take();
}
std::vector<Action> worker_resume(StreamHarness& h, const std::string& w, std::uint64_t id, std::uint32_t stream,
                                  std::uint64_t bytes, std::uint64_t offset) {
  h.core.on_worker_credit(h.now, peer("wp-" + w), h.local, w, id, stream, bytes, true, offset);
  return h.take();
}
// The worker's Result whose outputs hold a Chunked reference to `stream` of `size` bytes, in a
// list inside a map (R8 looks at any depth).
std::vector<Action> result_naming(StreamHarness& h, const std::string& w, std::uint64_t id, std::uint32_t stream,
                                  std::uint64_t size) {
  Map outputs{{"files", Value(Map{{"all", Value(List{Value(ChunkedValue{stream, size, {}})})}})}};
  h.core.on_result(h.now, peer("wp-" + w), h.local, w, id, Payload::copy_of(encode_values(outputs)));
  return h.take();
}
// A worker that wants an Ack for every answer (no no_answer_acks), serving "n".
void ready_acking(StreamHarness& h, const std::string& id) {
  AttachEvent ev;
  ev.worker_id = id;
  ev.session = "s1";
  NodeSpec spec;
  spec.name = "n";
  ev.nodes = {spec};
  h.core.on_attach(h.now, peer("wp-" + id), h.local, std::move(ev));
  h.take();
  h.pong(id);
}
// The resume Credits sent to the worker, as "<stream> <bytes> @<offset>".
std::vector<std::string> resumes(const std::vector<Action>& actions) {
  std::vector<std::string> out;
  for (auto& c : all<SendCredit>(actions))
    if (c.resume) out.push_back(fmt::format("{} {} @{}", c.stream, c.bytes, c.resume_offset));
  return out;
}
std::size_t terminals(const std::vector<Action>& log) {
  std::size_t n = 0;
  for (auto& got : caller_got(log)) n += got == "result" || got.rfind("failure", 0) == 0;
  return n;
}
}  // namespace

TEST_CASE("core resume: a gap in the worker's chunks asks it to resume, once; the call goes on and completes") {
  StreamHarness h;
  h.ready("w1");
  auto id = dispatched_id(submit_chunked(h, 1, 8 * KiB));
  worker_chunk(h, "w1", id, 2, 0, KiB);
  auto out = worker_chunk(h, "w1", id, 2, 2 * KiB, KiB);  // the chunk at 1 KiB was lost
  CHECK(all<SendAbort>(out).empty());
  REQUIRE(resumes(out) == std::vector<std::string>{"2 8192 @1024"});
  CHECK(all<SendCredit>(out)[0].worker_id == "w1");
  CHECK(all<SendCredit>(out)[0].request_id == id);
  // The chunks that followed the lost one: dropped, no second Credit, nothing to the caller.
  out = worker_chunk(h, "w1", id, 2, 3 * KiB, KiB);
  CHECK(all<SendCredit>(out).empty());
  CHECK(all<ReplyToClient>(out).empty());
  // The worker went back to 1 KiB: the stream reaches the caller whole, each byte once.
  for (std::uint64_t at = KiB; at < 4 * KiB; at += KiB) worker_chunk(h, "w1", id, 2, at, KiB);
  result_naming(h, "w1", id, 2, 4 * KiB);
  CHECK(caller_got(h.log) == std::vector<std::string>{"chunk 2@0+1024", "chunk 2@1024+1024", "chunk 2@2048+1024",
                                                      "chunk 2@3072+1024", "result"});
  CHECK(resumes(h.log).size() == 1);
}

TEST_CASE("core resume: an acking worker's gap chunk is answered Ack, not Rejected") {
  StreamHarness h;
  ready_acking(h, "w1");
  auto id = dispatched_id(submit_chunked(h, 1, 8 * KiB));
  auto out = worker_chunk(h, "w1", id, 2, KiB, KiB);  // the first chunk was lost
  auto replies = all<ReplyToWorker>(out);
  REQUIRE(replies.size() == 1);
  REQUIRE(std::holds_alternative<AckReply>(replies[0].body));
  CHECK_FALSE(std::get<AckReply>(replies[0].body).late);
  CHECK(resumes(out) == std::vector<std::string>{"2 8192 @0"});
}

TEST_CASE("core resume: the caller's resume Credit reaches the worker with its offset, even without a higher total") {
  StreamHarness h;
  h.ready("w1");
  auto id = dispatched_id(submit_chunked(h, 1, 4 * KiB));
  for (std::uint64_t at = 0; at < 3 * KiB; at += KiB) worker_chunk(h, "w1", id, 2, at, KiB);
  auto out = client_resume(h, 1, 2, 4 * KiB, KiB);  // the caller has 1 KiB; same grant as before
  REQUIRE(resumes(out) == std::vector<std::string>{"2 4096 @1024"});
  CHECK(all<SendCredit>(out)[0].request_id == id);
  // Beyond what was forwarded (now 1 KiB): ignored.
  CHECK(all<SendCredit>(client_resume(h, 1, 2, 4 * KiB, 2 * KiB)).empty());
  // A resume Credit on stream 0 (items have no resumption): ignored.
  CHECK(all<SendCredit>(client_resume(h, 1, 0, 4 * KiB, 0)).empty());
  // The worker's chunk sent before it went back: dropped silently; the stream goes on from 1 KiB.
  out = worker_chunk(h, "w1", id, 2, 3 * KiB, KiB);
  CHECK(all<ReplyToClient>(out).empty());
  CHECK(all<SendCredit>(out).empty());
  worker_chunk(h, "w1", id, 2, 0, 2 * KiB);  // it went back to 0, before what the caller has: covers 1 KiB
  worker_chunk(h, "w1", id, 2, 2 * KiB, 2 * KiB);
  result_naming(h, "w1", id, 2, 4 * KiB);
  CHECK(caller_got(h.log) == std::vector<std::string>{"chunk 2@0+1024", "chunk 2@1024+1024", "chunk 2@2048+1024",
                                                      "chunk 2@0+2048", "chunk 2@2048+2048", "result"});
}

TEST_CASE("core resume: the worker's resume Credit of an input stream reaches the caller; its stale chunks are dropped") {
  StreamHarness h;
  h.ready("w1");
  auto id = dispatched_id(submit_chunked(h, 1, 0));
  worker_credit(h, "w1", id, 1, 4 * KiB);
  for (std::uint64_t at = 0; at < 3 * KiB; at += KiB) REQUIRE(all<SendChunk>(client_chunk(h, 1, 1, at, KiB)).size() == 1);
  auto credit = all<ReplyToClient>(worker_resume(h, "w1", id, 1, 4 * KiB, KiB));
  REQUIRE(credit.size() == 1);
  CHECK(credit[0].request_id == 1);
  auto& body = std::get<CreditBody>(credit[0].body);
  CHECK(body.stream == 1);
  CHECK(body.bytes == 4 * KiB);
  CHECK(body.resume);
  CHECK(body.resume_offset == KiB);
  // Beyond what was forwarded (now 1 KiB), or on the caller's own parity: ignored.
  CHECK(all<ReplyToClient>(worker_resume(h, "w1", id, 1, 4 * KiB, 2 * KiB)).empty());
  CHECK(all<ReplyToClient>(worker_resume(h, "w1", id, 2, 4 * KiB, 0)).empty());
  // The caller's chunks from before it went back: dropped, the call not ended.
  auto out = client_chunk(h, 1, 1, 3 * KiB, KiB);
  CHECK(all<SendChunk>(out).empty());
  CHECK(all<SendAbort>(out).empty());
  CHECK(all<ReplyToClient>(out).empty());
  for (std::uint64_t at = KiB; at < 4 * KiB; at += KiB) REQUIRE(all<SendChunk>(client_chunk(h, 1, 1, at, KiB)).size() == 1);
  h.result("w1", id);
  CHECK(caller_got(h.log) == std::vector<std::string>{"credit 1 4096", "credit 1 4096", "result"});
}

TEST_CASE("core resume: a Result naming a short stream is held, unconfirmed, a resume Credit each time it comes") {
  StreamHarness h;
  ready_acking(h, "w1");
  auto id = dispatched_id(submit_chunked(h, 1, 8 * KiB));
  worker_chunk(h, "w1", id, 2, 0, KiB);
  auto out = result_naming(h, "w1", id, 2, 3 * KiB);  // the last two chunks were lost
  // One reply, as to every message of a worker that wants Acks, but Ack{late}: it confirms
  // nothing (§7.6), so the worker keeps its answer.
  auto held_acks = all<ReplyToWorker>(out);
  REQUIRE(held_acks.size() == 1);
  CHECK(std::get<AckReply>(held_acks[0].body).late);
  CHECK(all<ReplyToClient>(out).empty());
  CHECK(resumes(out) == std::vector<std::string>{"2 8192 @1024"});
  // The worker lists it in its Pong: the Ack names it missing; the WorkRequest is not re-sent.
  h.advance(1000ms);
  h.core.on_pong(h.now, peer("wp-w1"), h.local, "w1", h.last_ping_seq("w1"), "inst-1", {}, {id});
  out = h.take();
  auto acks = all<ReplyToWorker>(out);
  REQUIRE(acks.size() == 1);
  CHECK(std::get<AckReply>(acks[0].body).missing == std::vector<std::uint64_t>{id});
  CHECK(all<SendWorkRequest>(out).empty());
  // It sends the Result again: another resume Credit, still not confirmed.
  out = result_naming(h, "w1", id, 2, 3 * KiB);
  CHECK(resumes(out) == std::vector<std::string>{"2 8192 @1024"});
  REQUIRE(all<ReplyToWorker>(out).size() == 1);
  CHECK(std::get<AckReply>(all<ReplyToWorker>(out)[0].body).late);
  // The resent chunks complete the stream: the held Result goes to the caller after them.
  worker_chunk(h, "w1", id, 2, KiB, KiB);
  CHECK(terminals(h.log) == 0);
  worker_chunk(h, "w1", id, 2, 2 * KiB, KiB);
  CHECK(caller_got(h.log) == std::vector<std::string>{"chunk 2@0+1024", "chunk 2@1024+1024", "chunk 2@2048+1024",
                                                      "result"});
  // The worker's slot is free, and a copy of the Result still on the way is late.
  out = result_naming(h, "w1", id, 2, 3 * KiB);
  auto late = all<ReplyToWorker>(out);
  REQUIRE(late.size() == 1);
  CHECK(std::get<AckReply>(late[0].body).late);
  CHECK(terminals(h.log) == 1);
  CHECK(all<SendWorkRequest>(submit_chunked(h, 2, 0)).size() == 1);
}

TEST_CASE("core resume: a Result whose streams came whole is forwarded at once") {
  StreamHarness h;
  ready_acking(h, "w1");
  auto id = dispatched_id(submit_chunked(h, 1, 8 * KiB));
  worker_chunk(h, "w1", id, 2, 0, 3 * KiB);
  auto out = result_naming(h, "w1", id, 2, 3 * KiB);
  CHECK(resumes(out).empty());
  CHECK(caller_got(h.log) == std::vector<std::string>{"chunk 2@0+3072", "result"});
  // A Result naming a stream the call cannot carry (the caller's parity) is forwarded as is: the
  // caller refuses it.
  auto id2 = dispatched_id(submit_chunked(h, 2, 8 * KiB));
  CHECK(resumes(result_naming(h, "w1", id2, 1, KiB)).empty());
  CHECK(terminals(h.log) == 2);
}

TEST_CASE("core resume: the deadline or a cancel ends a held call with one terminal reply; the Result is dropped") {
  for (bool cancel : {false, true}) {
    CAPTURE(cancel);
    StreamHarness h;
    h.ready("w1");
    auto id = dispatched_id(submit_chunked(h, 1, 8 * KiB, 500));
    worker_chunk(h, "w1", id, 2, 0, KiB);
    result_naming(h, "w1", id, 2, 2 * KiB);
    std::vector<Action> out;
    if (cancel) {
      h.core.on_cancel(h.now, peer("c1"), 1);
      out = h.take();
    } else {
      out = h.advance(600ms);
    }
    REQUIRE(all<SendAbort>(out).size() == 1);
    worker_chunk(h, "w1", id, 2, KiB, KiB);  // the stream completes too late
    result_naming(h, "w1", id, 2, 2 * KiB);
    CHECK(caller_got(h.log) ==
          std::vector<std::string>{"chunk 2@0+1024", cancel ? "failure CANCELLED" : "failure TIMEOUT"});
  }
}

TEST_CASE("core resume: a held Result dies with its worker; the call run again waits for the new worker's Result") {
  StreamHarness h;
  h.ready("w1", true);
  auto id = dispatched_id(submit_chunked(h, 1, 8 * KiB));
  result_naming(h, "w1", id, 2, KiB);  // every chunk lost: nothing reached the caller, the call may run again
  h.ready("w2", true);
  std::vector<SendWorkRequest> rerun;
  for (int i = 0; i < 6 && rerun.empty(); ++i) {
    h.advance(1000ms);
    h.pong("w2");
    for (auto& s : all<SendWorkRequest>(h.log))
      if (s.worker_id == "w2") rerun.push_back(s);
  }
  REQUIRE(rerun.size() == 1);
  worker_chunk(h, "w2", id, 2, 0, KiB);  // w2's stream is whole: the dead worker's Result is not sent
  CHECK(caller_got(h.log) == std::vector<std::string>{"chunk 2@0+1024"});
  result_naming(h, "w2", id, 2, KiB);
  CHECK(caller_got(h.log) == std::vector<std::string>{"chunk 2@0+1024", "result"});
}

TEST_CASE("core resume: a worker confirmed after attaching again with its session resumes every output stream (R12)") {
  StreamHarness h;
  // A worker running three calls at once (capacity 3), attached with session "s1".
  auto attach_from = [&](const std::string& connection) {
    AttachEvent ev;
    ev.worker_id = "w1";
    ev.session = "s1";
    ev.capacity = 3;
    ev.no_answer_acks = true;
    NodeSpec spec;
    spec.name = "n";
    ev.nodes = {spec};
    h.core.on_attach(h.now, peer(connection), h.local, std::move(ev));
    return h.take();
  };
  attach_from("wp-w1");
  h.pong("w1");
  // Call 1: 1 KiB of stream 2 came; stream 4's first window was lost whole (no chunk of it came,
  // so no gap shows it). Call 2: no chunk came at all. Call 3 takes no chunked outputs.
  auto id1 = dispatched_id(submit_chunked(h, 1, 8 * KiB));
  worker_chunk(h, "w1", id1, 2, 0, KiB);
  auto id2 = dispatched_id(submit_chunked(h, 2, 8 * KiB));
  auto id3 = dispatched_id(submit_chunked(h, 3, 0));
  REQUIRE(id3 != 0);
  // The worker's connection broke; it attaches again with its session from a new connection.
  CHECK(resumes(attach_from("wp-w1-again")).empty());  // not before its SUB is proven to get them (the confirming Pong)
  h.core.on_pong(h.now, peer("wp-w1-again"), h.local, "w1", h.last_ping_seq("w1"), "inst-1", {id1, id2, id3});
  auto out = h.take();
  std::map<std::uint64_t, std::vector<std::string>> by_call;
  for (auto& c : all<SendCredit>(out))
    if (c.resume) by_call[c.request_id].push_back(fmt::format("{} {} @{}", c.stream, c.bytes, c.resume_offset));
  CHECK(by_call[id1] == std::vector<std::string>{"2 8192 @1024", "4 8192 @0"});
  CHECK(by_call[id2] == std::vector<std::string>{"2 8192 @0"});
  CHECK(by_call[id3].empty());
  // Only once: the next Pong asks nothing again.
  h.advance(1000ms);
  h.core.on_pong(h.now, peer("wp-w1-again"), h.local, "w1", h.last_ping_seq("w1"), "inst-1", {id1, id2, id3});
  CHECK(resumes(h.take()).empty());
  // The resent chunks go on as usual.
  h.core.on_worker_chunk(h.now, peer("wp-w1-again"), h.local, "w1", id1, 2, KiB, bytes_of(KiB));
  CHECK(all<ReplyToClient>(h.take()).size() == 1);
}
