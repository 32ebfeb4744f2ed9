// stream_chunks_test.cpp — the chunk forwarding rules of broker/stream_chunks.hpp (PROTOCOL.md
// §7.9): parity, credit (initial, granted, clamped, stale), offsets in order without gap or
// overlap, the stream cap, what worker death may do, and the re-publishing of grants; and
// resumption (§7.9 R5-R8): resume Credits, resumed streams, the worker's gap, whole streams.
#include <doctest/doctest.h>

#include "stream_chunks.hpp"

using muster::broker::CallChunks;
using muster::broker::ChunkSide;
using muster::broker::ChunkVerdict;
using muster::broker::kMaxChunkStreams;

namespace {
constexpr std::uint64_t MiB = 1024 * 1024;
constexpr auto Caller = ChunkSide::Caller;
constexpr auto Worker = ChunkSide::Worker;
}  // namespace

TEST_CASE("chunks: the caller's input stream carries nothing until the worker grants credit") {
  CallChunks c(0, 8 * MiB);
  CHECK(c.on_chunk(Caller, 1, 0, MiB) == ChunkVerdict::OverCredit);
  CHECK(c.describe(ChunkVerdict::OverCredit, Caller, 1, 0, MiB) ==
        "chunk of stream 1 at offset 0 (1048576 bytes) beyond the credit of 0 bytes");
  CHECK_FALSE(c.forwarded_any());
}

TEST_CASE("chunks: within the worker's grant the caller's chunks are forwarded in order; beyond, refused") {
  CallChunks c(0, 8 * MiB);
  REQUIRE(c.on_credit(Worker, 1, 4 * MiB) == 4 * MiB);  // forwarded to the caller
  CHECK(c.forwarded_any());
  for (std::uint64_t i = 0; i < 4; ++i) CHECK(c.on_chunk(Caller, 1, i * MiB, MiB) == ChunkVerdict::Forward);
  // The grant is used up: one byte more is refused, whatever its size.
  CHECK(c.on_chunk(Caller, 1, 4 * MiB, 1) == ChunkVerdict::OverCredit);
  // More credit: the next chunk passes, and a chunk that would pass the grant is refused whole.
  REQUIRE(c.on_credit(Worker, 1, 6 * MiB) == 6 * MiB);
  CHECK(c.on_chunk(Caller, 1, 4 * MiB, 3 * MiB) == ChunkVerdict::OverCredit);
  CHECK(c.on_chunk(Caller, 1, 4 * MiB, 2 * MiB) == ChunkVerdict::Forward);
}

TEST_CASE("chunks: a stale or repeated grant is ignored, a larger one is clamped to one window past what was sent") {
  CallChunks c(0, 8 * MiB);
  REQUIRE(c.on_credit(Worker, 3, 4 * MiB) == 4 * MiB);
  CHECK_FALSE(c.on_credit(Worker, 3, 4 * MiB).has_value());  // repeated
  CHECK_FALSE(c.on_credit(Worker, 3, 2 * MiB).has_value());  // stale (lower total)
  // Nothing forwarded yet: a receiver cannot have consumed anything, so at most one window.
  CHECK(c.on_credit(Worker, 3, 100 * MiB) == 8 * MiB);
  CHECK_FALSE(c.on_credit(Worker, 3, 100 * MiB).has_value());  // clamped to nothing new
  REQUIRE(c.on_chunk(Caller, 3, 0, 2 * MiB) == ChunkVerdict::Forward);
  CHECK(c.on_credit(Worker, 3, 100 * MiB) == 10 * MiB);
  CHECK(c.on_credit(Worker, 3, UINT64_MAX) == std::nullopt);  // still 2 MiB sent: 10 MiB at most
}

TEST_CASE("chunks: out-of-order, duplicate and empty chunks are refused and count nothing") {
  CallChunks c(0, 8 * MiB);
  REQUIRE(c.on_credit(Worker, 1, 4 * MiB));
  REQUIRE(c.on_chunk(Caller, 1, 0, MiB) == ChunkVerdict::Forward);
  CHECK(c.on_chunk(Caller, 1, 0, MiB) == ChunkVerdict::Overlap);          // the same chunk again
  CHECK(c.on_chunk(Caller, 1, MiB - 1, 2) == ChunkVerdict::Overlap);      // overlapping its end
  CHECK(c.on_chunk(Caller, 1, 2 * MiB, MiB) == ChunkVerdict::Gap);        // skips a MiB
  CHECK(c.describe(ChunkVerdict::Gap, Caller, 1, 2 * MiB, MiB) ==
        "chunk of stream 1 at offset 2097152, expected offset 1048576: 1048576 bytes of the stream were lost "
        "between the caller and musterd");
  CHECK(c.on_chunk(Caller, 1, MiB, 0) == ChunkVerdict::Empty);
  CHECK(c.on_chunk(Caller, 1, MiB, MiB) == ChunkVerdict::Forward);  // the refusals counted nothing
}

TEST_CASE("chunks: each side sends on its own parity and grants on the other's; stream 0 is the items") {
  CallChunks c(4 * MiB, 8 * MiB);
  CHECK(c.on_chunk(Caller, 2, 0, 1) == ChunkVerdict::WrongSide);
  CHECK(c.on_chunk(Worker, 1, 0, 1) == ChunkVerdict::WrongSide);
  CHECK(c.on_chunk(Caller, 0, 0, 1) == ChunkVerdict::WrongSide);
  CHECK(c.on_chunk(Worker, 0, 0, 1) == ChunkVerdict::WrongSide);
  CHECK_FALSE(c.on_credit(Caller, 1, MiB).has_value());  // the caller does not grant on its own stream
  CHECK_FALSE(c.on_credit(Worker, 2, MiB).has_value());
  CHECK_FALSE(c.on_credit(Worker, 0, MiB).has_value());
  CHECK_FALSE(c.forwarded_any());
  CHECK(c.describe(ChunkVerdict::WrongSide, Caller, 2, 0, 1) ==
        "a chunk on stream 2, which belongs to the worker (odd streams carry the caller's inputs, even ones the "
        "worker's outputs)");
}

TEST_CASE("chunks: the worker's output streams start with the caller's window, capped by the daemon") {
  CHECK(CallChunks::output_window_for(4 * MiB, 8 * MiB) == 4 * MiB);
  CHECK(CallChunks::output_window_for(64 * MiB, 8 * MiB) == 8 * MiB);
  CHECK(CallChunks::output_window_for(0, 8 * MiB) == 0);

  CallChunks c(4 * MiB, 8 * MiB);
  // Every even stream starts with the window, each on its own.
  for (std::uint32_t s : {2u, 4u}) {
    for (std::uint64_t i = 0; i < 4; ++i) CHECK(c.on_chunk(Worker, s, i * MiB, MiB) == ChunkVerdict::Forward);
    CHECK(c.on_chunk(Worker, s, 4 * MiB, 1) == ChunkVerdict::OverCredit);
  }
  // The caller consumed 2 MiB of stream 2 and grants: total 6 MiB.
  REQUIRE(c.on_credit(Caller, 2, 6 * MiB) == 6 * MiB);
  CHECK(c.on_chunk(Worker, 2, 4 * MiB, 2 * MiB) == ChunkVerdict::Forward);
}

TEST_CASE("chunks: a caller that takes no chunked outputs gives the worker no credit, even by a Credit") {
  CallChunks c(0, 8 * MiB);
  CHECK_FALSE(c.on_credit(Caller, 2, 4 * MiB).has_value());
  CHECK(c.on_chunk(Worker, 2, 0, 1) == ChunkVerdict::OverCredit);
}

TEST_CASE("chunks: at most kMaxChunkStreams streams per side; the other side's count apart") {
  CallChunks c(MiB, 8 * MiB);
  for (std::uint32_t i = 0; i < kMaxChunkStreams; ++i) {
    REQUIRE(c.on_credit(Worker, 2 * i + 1, MiB));                         // caller's streams 1, 3, ...
    REQUIRE(c.on_chunk(Worker, 2 * i + 2, 0, 1) == ChunkVerdict::Forward);  // worker's 2, 4, ...
  }
  const std::uint32_t next_in = 2 * kMaxChunkStreams + 1, next_out = 2 * kMaxChunkStreams + 2;
  CHECK(c.on_chunk(Caller, next_in, 0, 1) == ChunkVerdict::TooManyStreams);
  CHECK_FALSE(c.on_credit(Worker, next_in, MiB).has_value());
  CHECK(c.on_chunk(Worker, next_out, 0, 1) == ChunkVerdict::TooManyStreams);
  CHECK(c.describe(ChunkVerdict::TooManyStreams, Worker, next_out, 0, 1) ==
        "a chunk on stream 34: the worker already has 16 chunked streams in this call");
  // The existing streams go on.
  CHECK(c.on_chunk(Caller, 1, 0, 1) == ChunkVerdict::Forward);
}

TEST_CASE("chunks: forwarded_any decides worker death; restart forgets every stream") {
  CallChunks c(4 * MiB, 8 * MiB);
  CHECK_FALSE(c.forwarded_any());
  CHECK(c.on_chunk(Worker, 2, 0, 0) == ChunkVerdict::Empty);  // a refusal forwards nothing
  CHECK_FALSE(c.forwarded_any());
  REQUIRE(c.on_chunk(Worker, 2, 0, MiB) == ChunkVerdict::Forward);
  CHECK(c.forwarded_any());
  c.restart();
  CHECK_FALSE(c.forwarded_any());
  CHECK(c.on_chunk(Worker, 2, 0, MiB) == ChunkVerdict::Forward);  // offset 0 again, window again
}

TEST_CASE("chunks: grants above the initial window are re-published until the worker used them") {
  CallChunks c(4 * MiB, 8 * MiB);
  CHECK(c.republish().empty());
  REQUIRE(c.on_chunk(Worker, 2, 0, 4 * MiB) == ChunkVerdict::Forward);
  CHECK(c.republish().empty());  // the initial window came with the WorkRequest
  REQUIRE(c.on_credit(Caller, 2, 8 * MiB) == 8 * MiB);
  REQUIRE(c.on_credit(Worker, 1, MiB));  // an input stream's grant goes to the caller: never re-published
  auto again = c.republish();
  REQUIRE(again.size() == 1);
  CHECK(again[0] == std::pair<std::uint32_t, std::uint64_t>{2, 8 * MiB});
  REQUIRE(c.on_chunk(Worker, 2, 4 * MiB, 4 * MiB) == ChunkVerdict::Forward);
  CHECK(c.republish().empty());  // used up
}

// ---- resumption (PROTOCOL.md §7.9 "Resumption", daemon rules R5-R8) ------------------------

TEST_CASE("chunks resume: a receiver's resume Credit sends the stream back and is forwarded even without a higher total") {
  CallChunks c(4 * MiB, 8 * MiB);
  for (std::uint64_t i = 0; i < 3; ++i) REQUIRE(c.on_chunk(Worker, 2, i * MiB, MiB) == ChunkVerdict::Forward);
  // The caller has 1 MiB of stream 2 (two chunks were lost on the way) and grants the same 4 MiB.
  CHECK(c.on_resume_credit(Caller, 2, 4 * MiB, MiB) == 4 * MiB);
  CHECK(c.next_offset(2) == MiB);
  // The same resume Credit again (the receiver's stall timer): forwarded again.
  CHECK(c.on_resume_credit(Caller, 2, 4 * MiB, MiB) == 4 * MiB);
  // A higher grant rises as far as one window past the offset.
  CHECK(c.on_resume_credit(Caller, 2, 100 * MiB, MiB) == 9 * MiB);
  // The stream goes on from 1 MiB: the next chunk there is forwarded.
  CHECK(c.on_chunk(Worker, 2, MiB, MiB) == ChunkVerdict::Forward);
  CHECK(c.next_offset(2) == 2 * MiB);
}

TEST_CASE("chunks resume: a resume Credit beyond the bytes forwarded, of the wrong side or on stream 0 is ignored") {
  CallChunks c(4 * MiB, 8 * MiB);
  REQUIRE(c.on_credit(Worker, 1, 4 * MiB) == 4 * MiB);
  REQUIRE(c.on_chunk(Caller, 1, 0, MiB) == ChunkVerdict::Forward);
  CHECK_FALSE(c.on_resume_credit(Worker, 1, 4 * MiB, 2 * MiB).has_value());  // 2 MiB were never forwarded
  CHECK(c.next_offset(1) == MiB);
  CHECK_FALSE(c.on_resume_credit(Caller, 1, 4 * MiB, 0).has_value());  // the caller does not receive stream 1
  CHECK_FALSE(c.on_resume_credit(Worker, 2, 4 * MiB, 0).has_value());
  CHECK_FALSE(c.on_resume_credit(Worker, 0, 4 * MiB, 0).has_value());
  CallChunks none(0, 8 * MiB);  // a caller that takes no chunked outputs
  CHECK_FALSE(none.on_resume_credit(Caller, 2, 4 * MiB, 0).has_value());
  // The stream was not sent back: the chunk at 1 MiB is still the next one, and not lenient.
  CHECK(c.on_chunk(Caller, 1, 0, MiB) == ChunkVerdict::Overlap);
  CHECK(c.on_chunk(Caller, 1, MiB, MiB) == ChunkVerdict::Forward);
}

TEST_CASE("chunks resume: a resumed stream forwards a chunk that covers the next offset and drops stale ones") {
  CallChunks c(0, 8 * MiB);
  REQUIRE(c.on_credit(Worker, 1, 4 * MiB) == 4 * MiB);
  for (std::uint64_t i = 0; i < 3; ++i) REQUIRE(c.on_chunk(Caller, 1, i * MiB, MiB) == ChunkVerdict::Forward);
  // The worker has 1.5 MiB (it lost the chunk at 1 MiB... after half of it was taken).
  REQUIRE(c.on_resume_credit(Worker, 1, 4 * MiB, MiB + MiB / 2) == 4 * MiB);
  // Still on the way from before the caller went back: beyond the next offset: dropped, silently.
  CHECK(c.on_chunk(Caller, 1, 3 * MiB, MiB) == ChunkVerdict::Drop);
  CHECK(c.describe(ChunkVerdict::Drop, Caller, 1, 3 * MiB, MiB) ==
        "chunk of stream 1 at offset 3145728 (1048576 bytes) dropped: the stream was resumed at offset 1572864");
  // The caller went back to a chunk boundary before it: bytes the worker has: dropped.
  CHECK(c.on_chunk(Caller, 1, 0, MiB) == ChunkVerdict::Drop);
  // One that covers the next offset: forwarded (the worker trims it), the stream goes on after it.
  CHECK(c.on_chunk(Caller, 1, MiB, MiB) == ChunkVerdict::Forward);
  CHECK(c.next_offset(1) == 2 * MiB);
  CHECK(c.on_chunk(Caller, 1, 2 * MiB, MiB) == ChunkVerdict::Forward);
  // Beyond the grant, empty, the wrong side are still refused.
  CHECK(c.on_chunk(Caller, 1, 3 * MiB, 2 * MiB) == ChunkVerdict::OverCredit);
  CHECK(c.on_chunk(Caller, 1, 3 * MiB, 0) == ChunkVerdict::Empty);
  CHECK(c.on_chunk(Worker, 1, 3 * MiB, 1) == ChunkVerdict::WrongSide);
}

TEST_CASE("chunks resume: a caller's gap on a stream never resumed is still a violation") {
  CallChunks c(0, 8 * MiB);
  REQUIRE(c.on_credit(Worker, 1, 4 * MiB));
  REQUIRE(c.on_chunk(Caller, 1, 0, MiB) == ChunkVerdict::Forward);
  CHECK(c.on_chunk(Caller, 1, 2 * MiB, MiB) == ChunkVerdict::Gap);
}

TEST_CASE("chunks resume: a worker's gap asks for a resume once, until a chunk comes at the next offset") {
  CallChunks c(4 * MiB, 8 * MiB);
  REQUIRE(c.on_chunk(Worker, 2, 0, MiB) == ChunkVerdict::Forward);
  CHECK(c.on_chunk(Worker, 2, 2 * MiB, MiB) == ChunkVerdict::AskResume);
  auto credit = c.resume_output(2);
  REQUIRE(credit.has_value());
  CHECK(credit->bytes == 4 * MiB);
  CHECK(credit->offset == MiB);
  // The chunks after the lost one: dropped, no second resume.
  CHECK(c.on_chunk(Worker, 2, 3 * MiB, MiB) == ChunkVerdict::Drop);
  // The worker went back: the chunk at the next offset is forwarded; a later loss asks again.
  CHECK(c.on_chunk(Worker, 2, MiB, MiB) == ChunkVerdict::Forward);
  CHECK(c.on_chunk(Worker, 2, 3 * MiB, MiB) == ChunkVerdict::AskResume);
  // A gap towards a caller that takes no chunked outputs is beyond its (zero) credit.
  CallChunks none(0, 8 * MiB);
  CHECK(none.on_chunk(Worker, 2, MiB, 1) == ChunkVerdict::OverCredit);
  CHECK_FALSE(none.resume_output(2).has_value());
}

TEST_CASE("chunks resume: after the caller's resume Credit the worker's stale chunks do not ask again") {
  CallChunks c(4 * MiB, 8 * MiB);
  for (std::uint64_t i = 0; i < 3; ++i) REQUIRE(c.on_chunk(Worker, 2, i * MiB, MiB) == ChunkVerdict::Forward);
  REQUIRE(c.on_resume_credit(Caller, 2, 4 * MiB, MiB));
  CHECK(c.on_chunk(Worker, 2, 3 * MiB, MiB) == ChunkVerdict::Drop);  // sent before it went back
  CHECK(c.on_chunk(Worker, 2, MiB, MiB) == ChunkVerdict::Forward);
}

TEST_CASE("chunks resume: which output streams were forwarded whole, and which the call can carry") {
  CallChunks c(4 * MiB, 8 * MiB);
  REQUIRE(c.on_chunk(Worker, 2, 0, MiB) == ChunkVerdict::Forward);
  CHECK(c.forwarded_whole(2, MiB));
  CHECK_FALSE(c.forwarded_whole(2, MiB + 1));
  CHECK(c.forwarded_whole(4, 0));  // an empty value needs no chunk
  CHECK_FALSE(c.forwarded_whole(4, 1));
  CHECK(c.carries_output(2));
  CHECK(c.carries_output(4));
  CHECK_FALSE(c.carries_output(1));
  CHECK_FALSE(c.carries_output(0));
  for (std::uint32_t i = 2; i <= kMaxChunkStreams; ++i) REQUIRE(c.on_chunk(Worker, 2 * i, 0, 1) == ChunkVerdict::Forward);
  CHECK_FALSE(c.carries_output(2 * kMaxChunkStreams + 2));  // a 17th
  CHECK_FALSE(CallChunks(0, 8 * MiB).carries_output(2));
}
