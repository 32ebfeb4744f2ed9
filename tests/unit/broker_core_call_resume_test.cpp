// broker_core_call_resume_test.cpp — a caller's reconnect under a fake clock (PROTOCOL.md §8.3,
// broker_core_resume.cpp, resumable_calls.cpp): C1 the token, C2 CallResume binding a call to the
// caller's new connection (only the same caller's), C3 items lost, C4 chunked streams going back
// to what each side has, C5 terminal replies kept for a while and in a bounded number of bytes;
// a call that is not resumable gets no token and nothing is kept for it.
#include <doctest/doctest.h>

#include <deque>

#include <fmt/format.h>

#include "stream_harness.hpp"

using namespace stream_test;

namespace {

constexpr std::uint64_t KiB = 1024;

Payload bytes_of(std::size_t n) { return Payload::copy_of(std::vector<std::uint8_t>(n, 5)); }

struct Call {
  std::uint64_t id = 0;     // the WorkRequest's
  std::uint64_t token = 0;  // Accepted.call_token
  std::string worker;       // the worker it went to
};

// A Submit from `from` (c1 by default) of `who`: resumable unless told, with items and chunked
// outputs as asked. Returns the dispatched id and the token of its Accepted (0: none came).
Call submit(StreamHarness& h, std::uint64_t rid, bool resumable = true, std::uint32_t items = 0,
            std::uint64_t chunk_window = 0, const std::string& from = "c1", const Caller* who = nullptr) {
  SubmitEvent ev;
  ev.client_request_id = rid;
  ev.node = "n";
  ev.resumable = resumable;
  ev.stream_window_items = items;
  ev.chunk_window_bytes = chunk_window;
  h.core.on_submit(h.now, peer(from), who ? *who : h.local, std::move(ev));
  auto out = h.take();
  Call call;
  auto sent = all<SendWorkRequest>(out);
  if (!sent.empty()) call.id = sent[0].request_id, call.worker = sent[0].worker_id;
  for (auto& r : all<ReplyToClient>(out))
    if (auto* a = std::get_if<AcceptedBody>(&r.body)) call.token = a->call_token;
  return call;
}

CallRefEvent ref(std::uint64_t token, std::uint64_t rid, std::uint64_t items = 0,
                 std::vector<std::pair<std::uint32_t, std::uint64_t>> outputs = {}) {
  return CallRefEvent{token, rid, items, std::move(outputs)};
}

std::vector<Action> resume(StreamHarness& h, std::vector<CallRefEvent> refs, const std::string& from = "c2",
                           const Caller* who = nullptr) {
  h.core.on_call_resume(h.now, peer(from), who ? *who : h.local, CallResumeEvent{99, std::move(refs)});
  return h.take();
}

// What each connection received: "<peer> <rid> accepted <token>|item <seq>|chunk ...|credit ...|result|failure CODE: msg".
std::vector<std::string> replies(const std::vector<Action>& actions) {
  std::vector<std::string> out;
  for (auto& r : all<ReplyToClient>(actions)) {
    std::string head = fmt::format("{} {} ", r.peer->routing_id, r.request_id);
    if (auto* a = std::get_if<AcceptedBody>(&r.body)) out.push_back(head + fmt::format("accepted {}", a->call_token));
    else if (auto* i = std::get_if<ItemBody>(&r.body)) out.push_back(head + fmt::format("item {}", i->seq));
    else if (auto* c = std::get_if<ChunkBody>(&r.body))
      out.push_back(head + fmt::format("chunk {}@{}+{}", c->stream, c->offset, c->data.bytes.size()));
    else if (auto* g = std::get_if<CreditBody>(&r.body))
      out.push_back(head + fmt::format("credit {} {}{}", g->stream, g->bytes,
                                       g->resume ? fmt::format(" resume@{}", g->resume_offset) : ""));
    else if (std::holds_alternative<ResultBody>(r.body)) out.push_back(head + "result");
    else if (auto* f = std::get_if<FailureBody>(&r.body))
      out.push_back(head + fmt::format("failure {}: {}", error_code_name(f->code), f->message));
  }
  return out;
}

std::vector<std::string> resumes_to_worker(const std::vector<Action>& actions) {
  std::vector<std::string> out;
  for (auto& c : all<SendCredit>(actions))
    if (c.resume) out.push_back(fmt::format("{} {} {} @{}", c.request_id, c.stream, c.bytes, c.resume_offset));
  return out;
}

const std::string kNoSuchCall =
    "failure UNAVAILABLE: no such call (it ended more than --resume-keep-ms ago, or another daemon instance "
    "accepted it)";

}  // namespace

TEST_CASE("call resume C1: a resumable Submit is answered Accepted{call_token} first; a plain one gets no token") {
  StreamHarness h;
  h.ready("w1", false);
  auto a = submit(h, 1);
  CHECK(a.token != 0);
  auto first = all<ReplyToClient>(h.log);
  REQUIRE(!first.empty());
  CHECK(std::holds_alternative<AcceptedBody>(first.front().body));  // without want_accepted
  h.ready("w2");
  auto b = submit(h, 2);
  CHECK(b.token != 0);
  CHECK(b.token != a.token);
  CHECK(h.core.resumable().open_calls() == 2);
  // Not resumable: no Accepted (it did not ask), no token held, nothing kept after its reply.
  h.ready("w3");
  auto before = h.log.size();
  auto plain = submit(h, 3, false);
  CHECK(plain.token == 0);
  for (std::size_t i = before; i < h.log.size(); ++i)
    if (auto* r = std::get_if<ReplyToClient>(&h.log[i])) CHECK_FALSE(std::holds_alternative<AcceptedBody>(r->body));
  h.result("w3", plain.id);
  CHECK(h.core.resumable().open_calls() == 2);
  CHECK(h.core.resumable().kept_replies() == 0);
}

TEST_CASE("call resume C1: --resume-keep-ms 0 makes no call resumable; a durable call's Accepted has no token") {
  auto config = stream_config();
  config.resume_keep = Millis{0};
  StreamHarness h(config);
  h.ready("w1");
  auto call = submit(h, 1);
  CHECK(call.id != 0);
  CHECK(call.token == 0);
  CHECK(all<ReplyToClient>(h.log).empty());  // not even an Accepted: it asked for none
  h.result("w1", call.id);
  CHECK(h.core.resumable().kept_replies() == 0);
}

TEST_CASE("call resume C1: tokens are never 0 and unique among open calls and kept replies") {
  std::deque<std::uint64_t> draws{0, 5, 5, 0, 7, 5, 7, 9};
  ResumableCalls calls(Millis{1000}, 1 << 20, [&] {
    auto v = draws.front();
    draws.pop_front();
    return v;
  });
  CHECK(calls.open(1) == 5);
  CHECK(calls.open(2) == 7);  // 5 is open, 0 never
  KeptCallReply kept;
  kept.caller = std::make_shared<Caller>();
  kept.reply = FailureBody{ErrorCode::Timeout, "late"};
  calls.keep(5, kept, TimePoint{});
  CHECK(calls.open(3) == 9);  // 5 is kept, 7 open
  CHECK(calls.request_of(7) == 2u);
  CHECK_FALSE(calls.request_of(5));
}

TEST_CASE("call resume C2: an open call goes on on the caller's new connection; the old one gets nothing more") {
  StreamHarness h;
  h.ready("w1");
  auto call = submit(h, 1);
  auto out = resume(h, {ref(call.token, 7)});
  CHECK(replies(out) == std::vector<std::string>{fmt::format("c2 7 accepted {}", call.token)});
  // A Cancel from the old connection is for a request not open there: ignored.
  h.core.on_cancel(h.now, peer("c1"), 1);
  CHECK(all<SendAbort>(h.take()).empty());
  out = h.result("w1", call.id);
  CHECK(replies(out) == std::vector<std::string>{"c2 7 result"});
  // Its reply is kept (C5): a second break that lost it gets it again, once.
  CHECK(replies(resume(h, {ref(call.token, 8)}, "c3")) == std::vector<std::string>{"c3 8 result"});
  CHECK(replies(resume(h, {ref(call.token, 9)}, "c3")) == std::vector<std::string>{"c3 9 " + kNoSuchCall});
}

TEST_CASE("call resume C2: the new connection's Cancel ends the call; the deadline is unchanged") {
  StreamHarness h;
  h.ready("w1");
  auto call = submit(h, 1);
  resume(h, {ref(call.token, 7)});
  h.core.on_cancel(h.now, peer("c2"), 7);
  auto out = h.take();
  REQUIRE(all<SendAbort>(out).size() == 1);
  CHECK(replies(out) == std::vector<std::string>{"c2 7 failure CANCELLED: cancelled by the client"});
}

TEST_CASE("call resume C2: another caller's call, an unknown token, an id already open, too many refs") {
  StreamHarness h;
  h.ready("w1");
  h.ready("w2");
  auto call = submit(h, 1);
  Caller other = h.local;
  other.name = "someone-else";
  CHECK(replies(resume(h, {ref(call.token, 7)}, "c2", &other)) == std::vector<std::string>{"c2 7 " + kNoSuchCall});
  other = h.local;
  other.workspace = "elsewhere";
  CHECK(replies(resume(h, {ref(call.token, 7)}, "c2", &other)) == std::vector<std::string>{"c2 7 " + kNoSuchCall});
  CHECK(replies(resume(h, {ref(12345, 7)})) == std::vector<std::string>{"c2 7 " + kNoSuchCall});
  // A request id open on the new connection: refused, the open request untouched.
  auto mine = submit(h, 7, false, 0, 0, "c2");
  CHECK(replies(resume(h, {ref(call.token, 7)})) ==
        std::vector<std::string>{"c2 7 failure INVALID_REQUEST: request id 7 is already open on this connection; "
                                 "resume the call under a new one"});
  CHECK(replies(h.result(mine.worker, mine.id)) == std::vector<std::string>{"c2 7 result"});
  // The refused call itself still goes to its caller.
  CHECK(replies(h.result(call.worker, call.id)) == std::vector<std::string>{"c1 1 result"});
  // More refs than --max-client-outstanding: refused under the message's own id.
  auto config = stream_config();
  config.max_client_outstanding = 2;
  StreamHarness small(config);
  CHECK(replies(resume(small, {ref(1, 1), ref(2, 2), ref(3, 3)})) ==
        std::vector<std::string>{"c2 99 failure INVALID_REQUEST: CallResume of 3 calls: at most 2 in one message "
                                 "(--max-client-outstanding)"});
}

TEST_CASE("call resume C3: items the caller never received end the call UNAVAILABLE, its worker aborted") {
  StreamHarness h;
  h.ready("w1");
  auto call = submit(h, 1, true, 8);
  for (std::uint64_t seq = 0; seq < 3; ++seq) h.item("w1", call.id, seq);
  auto out = resume(h, {ref(call.token, 7, 1)});  // items 1 and 2 were lost on the way
  CHECK(replies(out) == std::vector<std::string>{fmt::format("c2 7 accepted {}", call.token),
                                                 "c2 7 failure UNAVAILABLE: 2 item(s) were lost in the reconnect"});
  auto aborts = all<SendAbort>(out);
  REQUIRE(aborts.size() == 1);
  CHECK(aborts[0].request_id == call.id);
  CHECK(aborts[0].code == ErrorCode::Cancelled);
}

TEST_CASE("call resume C3: a caller that has every item forwarded goes on: seq continues on the new connection") {
  StreamHarness h;
  h.ready("w1");
  auto call = submit(h, 1, true, 8);
  for (std::uint64_t seq = 0; seq < 3; ++seq) h.item("w1", call.id, seq);
  resume(h, {ref(call.token, 7, 3)});
  h.item("w1", call.id, 3);
  h.result("w1", call.id);
  std::vector<std::string> after;
  for (auto& s : replies(h.log))
    if (s.rfind("c2", 0) == 0) after.push_back(s);
  CHECK(after == std::vector<std::string>{fmt::format("c2 7 accepted {}", call.token), "c2 7 item 3", "c2 7 result"});
}

TEST_CASE("call resume C4: output streams go back to what the caller has (a stream not listed: 0)") {
  StreamHarness h;
  h.ready("w1");
  auto call = submit(h, 1, true, 0, 8 * KiB);
  for (std::uint64_t at = 0; at < 3 * KiB; at += KiB) h.core.on_worker_chunk(h.now, peer("wp-w1"), h.local, "w1", call.id, 2, at, bytes_of(KiB));
  h.core.on_worker_chunk(h.now, peer("wp-w1"), h.local, "w1", call.id, 4, 0, bytes_of(KiB));
  h.take();
  auto out = resume(h, {ref(call.token, 7, 0, {{2, KiB}, {6, 5 * KiB}})});
  CHECK(resumes_to_worker(out) == std::vector<std::string>{fmt::format("{} 2 {} @1024", call.id, 9 * KiB),
                                                           fmt::format("{} 4 {} @0", call.id, 8 * KiB)});
  // The worker goes back: its chunks reach the new connection from what the caller has.
  h.core.on_worker_chunk(h.now, peer("wp-w1"), h.local, "w1", call.id, 2, KiB, bytes_of(2 * KiB));
  CHECK(replies(h.take()) == std::vector<std::string>{"c2 7 chunk 2@1024+2048"});
}

TEST_CASE("call resume C4: input streams go back to what musterd forwarded, by a resume Credit to the caller") {
  StreamHarness h;
  h.ready("w1");
  auto call = submit(h, 1);
  h.core.on_worker_credit(h.now, peer("wp-w1"), h.local, "w1", call.id, 1, 4 * KiB);
  for (std::uint64_t at = 0; at < 3 * KiB; at += KiB) h.core.on_client_chunk(h.now, peer("c1"), ChunkEvent{1, 1, at, bytes_of(KiB)});
  h.take();
  auto out = resume(h, {ref(call.token, 7)});
  CHECK(replies(out) == std::vector<std::string>{fmt::format("c2 7 accepted {}", call.token),
                                                 "c2 7 credit 1 4096 resume@3072"});
  // A chunk the caller sent on the old connection after the last one musterd had: from the old
  // connection, dropped (not open there); the caller's own, sent before it went back: dropped.
  h.core.on_client_chunk(h.now, peer("c1"), ChunkEvent{1, 1, 3 * KiB, bytes_of(KiB)});
  CHECK(all<SendChunk>(h.take()).empty());
  h.core.on_client_chunk(h.now, peer("c2"), ChunkEvent{7, 1, 3 * KiB + 512, bytes_of(512)});
  out = h.take();
  CHECK(all<SendChunk>(out).empty());
  CHECK(all<SendAbort>(out).empty());
  h.core.on_client_chunk(h.now, peer("c2"), ChunkEvent{7, 1, 3 * KiB, bytes_of(KiB)});
  auto sent = all<SendChunk>(h.take());
  REQUIRE(sent.size() == 1);
  CHECK(sent[0].offset == 3 * KiB);
}

TEST_CASE("call resume C5: a kept reply is given once, only to a CallResume, and forgotten after --resume-keep-ms") {
  StreamHarness h;
  h.ready("w1");
  h.ready("w2");
  auto a = submit(h, 1);
  auto b = submit(h, 2);
  h.result(a.worker, a.id);
  h.core.on_failure(h.now, peer("wp-" + b.worker), h.local, b.worker, b.id, ErrorCode::WorkerError, "boom");
  h.take();
  CHECK(h.core.resumable().kept_replies() == 2);
  CHECK(h.core.resumable().open_calls() == 0);
  // Never sent on its own.
  CHECK(all<ReplyToClient>(h.advance(Millis{9000})).empty());
  // Another caller cannot take it, and leaves it kept.
  Caller other = h.local;
  other.identity = "intruder";
  CHECK(replies(resume(h, {ref(b.token, 5)}, "c2", &other)) == std::vector<std::string>{"c2 5 " + kNoSuchCall});
  CHECK(replies(resume(h, {ref(b.token, 5)})) == std::vector<std::string>{"c2 5 failure WORKER_ERROR: boom"});
  h.advance(Millis{1000});  // 10 s after the reply: forgotten
  CHECK(h.core.resumable().kept_replies() == 0);
  CHECK(replies(resume(h, {ref(a.token, 6)})) == std::vector<std::string>{"c2 6 " + kNoSuchCall});
}

TEST_CASE("call resume C5: kept replies past --resume-keep-bytes: the oldest are forgotten first") {
  auto config = stream_config();
  config.resume_keep_bytes = 3 * sizeof(KeptCallReply) + 8;  // two failures of "aaaa" fit, not three
  StreamHarness h(config);
  std::vector<Call> calls;
  for (std::uint64_t i = 1; i <= 3; ++i) {
    h.ready(fmt::format("w{}", i));
    calls.push_back(submit(h, i));
  }
  for (std::uint64_t i = 0; i < 3; ++i)
    h.core.on_failure(h.now, peer(fmt::format("wp-w{}", i + 1)), h.local, fmt::format("w{}", i + 1), calls[i].id,
                      ErrorCode::WorkerError, "aaaa");
  h.take();
  CHECK(h.core.resumable().kept_replies() == 2);
  CHECK(h.core.resumable().kept_bytes() <= config.resume_keep_bytes);
  CHECK(replies(resume(h, {ref(calls[0].token, 5), ref(calls[1].token, 6), ref(calls[2].token, 7)})) ==
        std::vector<std::string>{"c2 5 " + kNoSuchCall, "c2 6 failure WORKER_ERROR: aaaa",
                                 "c2 7 failure WORKER_ERROR: aaaa"});
}

TEST_CASE("call resume C5: a kept reply whose items or output bytes the caller lacks is UNAVAILABLE instead") {
  StreamHarness h;
  h.ready("w1");
  h.ready("w2");
  auto items = submit(h, 1, true, 8);
  h.item(items.worker, items.id, 0);
  h.item(items.worker, items.id, 1);
  h.result(items.worker, items.id);
  auto chunks = submit(h, 2, true, 0, 8 * KiB);
  h.core.on_worker_chunk(h.now, peer("wp-" + chunks.worker), h.local, chunks.worker, chunks.id, 2, 0, bytes_of(2 * KiB));
  h.result(chunks.worker, chunks.id);
  CHECK(replies(resume(h, {ref(items.token, 5, 1), ref(chunks.token, 6, 0, {{2, KiB}})})) ==
        std::vector<std::string>{"c2 5 failure UNAVAILABLE: 1 item(s) were lost in the reconnect",
                                 "c2 6 failure UNAVAILABLE: 1024 byte(s) of output stream 2 were lost in the reconnect"});
}

TEST_CASE("call resume C2: a queued call moves to the new connection's lane and is answered there once dispatched") {
  StreamHarness h;
  h.ready("w1");
  auto busy = submit(h, 1, false);  // takes the only slot
  auto queued = submit(h, 2);
  REQUIRE(queued.id == 0);  // not dispatched: queued
  REQUIRE(queued.token != 0);
  auto out = resume(h, {ref(queued.token, 7)});
  CHECK(replies(out) == std::vector<std::string>{fmt::format("c2 7 accepted {}", queued.token)});
  auto first = all<ReplyToClient>(out);
  REQUIRE(first.size() == 1);
  CHECK(std::get<AcceptedBody>(first[0].body).queued);
  // The slot frees: the call goes to the worker, and its reply to the new connection.
  out = h.result("w1", busy.id);
  auto sent = all<SendWorkRequest>(out);
  REQUIRE(sent.size() == 1);
  CHECK(replies(h.result("w1", sent[0].request_id)) == std::vector<std::string>{"c2 7 result"});
  CHECK(h.core.client_connections() <= 1);
}
