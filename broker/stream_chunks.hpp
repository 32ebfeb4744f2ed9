// stream_chunks.hpp — the forwarding rules of one call's chunked streams (docs/PROTOCOL.md §7.9,
// docs/STREAMS.md §3): which side may send chunks on which stream, the credit the receiving side
// granted (clamped, highest total kept) and the check of every chunk against it: offsets in
// order with no gap or overlap, bytes within the grant forwarded, at most kMaxChunkStreams
// streams per side; and resumption (§7.9 "Resumption", daemon rules R5-R8): a receiver's resume
// Credit sends its stream back, a resumed stream's chunks are forwarded leniently, a worker's
// gap is answered by a resume Credit of the daemon's own, and whether a stream was forwarded
// whole (a Result naming it is held until it was).
// Owns: the per-stream counters (granted, next offset, resumed, resume asked) and the verdicts;
// nothing else.
// Must never: touch a socket, read a clock, hold a chunk's bytes (the daemon forwards each at
// once), check a value's size or sha256 (the receiving SDK does), or decide what a verdict does
// to the call (BrokerCore does: it ends the call, aborts the worker, answers the sender).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace muster::broker {

// Who sent a Chunk or a Credit. The caller sends chunks on odd streams (its inputs) and grants
// credit on even ones; the worker sends chunks on even streams (its outputs) and grants credit
// on odd ones. Stream 0 is the call's items (stream_credit.hpp), never a chunk stream.
enum class ChunkSide { Caller, Worker };

// What the daemon does with one Chunk.
enum class ChunkVerdict {
  Forward,         // the next offset (or, on a resumed stream, one that covers it), within the
                   // grant: pass it to the other side now
  Drop,            // a resumed stream's chunk before the next offset (bytes the receiver has) or
                   // beyond it (after a loss already reported): dropped silently (R6, R7)
  AskResume,       // a worker's chunk beyond the next offset (a gap) and no resume asked since
                   // the last forwarded chunk: dropped, and the worker is sent resume_output (R7)
  Gap,             // a caller's offset beyond the next on a stream never resumed: a violation
  Overlap,         // an offset before the next on a stream never resumed: a duplicate
  Empty,           // no data
  OverCredit,      // the next offset, but offset + size passes the grant
  WrongSide,       // stream 0, or a stream of the other side's parity
  TooManyStreams,  // a new stream beyond kMaxChunkStreams of that side
};

// Streams with chunks per side and call (PROTOCOL.md §7.9).
inline constexpr std::size_t kMaxChunkStreams = 16;

class CallChunks {
 public:
  // The initial grant of each output stream for a caller that asked for `requested` bytes
  // (Submit.chunk_window_bytes), capped at `max_window` (--stream-window-bytes); 0: none.
  static std::uint64_t output_window_for(std::uint64_t requested, std::uint64_t max_window);

  // `output_window`: output_window_for(...) of the call (the WorkRequest carries it);
  // `max_window`: the daemon's cap on any stream's window.
  CallChunks(std::uint64_t output_window, std::uint64_t max_window);

  std::uint64_t output_window() const { return output_window_; }

  // A Credit of `from` (the receiving side) for `stream`: clamped to what the receiver could
  // have consumed (forwarded bytes) plus one window, kept if it raises the total. Returns the
  // total to forward to the sending side, or nullopt: ignored (stale, repeated, a stream of
  // the wrong parity, stream 0, or a new stream beyond kMaxChunkStreams).
  std::optional<std::uint64_t> on_credit(ChunkSide from, std::uint32_t stream, std::uint64_t bytes);

  // A resume Credit of `from` (the stream's receiver, R5): it has the stream's bytes before
  // `offset` and grants `bytes` in all. With `offset` <= the bytes forwarded: the stream goes
  // back to `offset` (next = offset), the grant rises to min(bytes, offset + one window) if
  // that is higher, the stream is marked resumed, and the grant is returned — always, to be
  // forwarded to the sender with resume = true and resume_offset = `offset`. nullopt: ignored
  // (`offset` beyond the bytes forwarded, the wrong parity, stream 0, a 17th stream, or an
  // output stream of a caller that takes none).
  std::optional<std::uint64_t> on_resume_credit(ChunkSide from, std::uint32_t stream, std::uint64_t bytes,
                                                std::uint64_t offset);

  // One Chunk of `from` on `stream` at `offset` with `size` bytes: counted when Forward.
  ChunkVerdict on_chunk(ChunkSide from, std::uint32_t stream, std::uint64_t offset, std::uint64_t size);

  // The resume Credit the daemon itself sends the worker for its output `stream` (R7 on a gap,
  // R8 for a Result naming a stream not forwarded whole): the grant and the offset to go back
  // to (the bytes forwarded). Marks the stream resumed, and a resume asked: later gaps are
  // dropped without another Credit until a chunk is forwarded (also after a resume Credit of
  // the caller, on_resume_credit). nullopt: not an output stream
  // of this call (odd, stream 0, a 17th stream, or a caller that takes no chunked outputs).
  struct ResumeCredit {
    std::uint64_t bytes = 0;   // the grant (Credit.bytes)
    std::uint64_t offset = 0;  // Credit.resume_offset
  };
  std::optional<ResumeCredit> resume_output(std::uint32_t stream);

  // The input stream `stream` goes back to the bytes forwarded (a caller's reconnect, PROTOCOL.md
  // §8.3 C4: chunks on their way on the broken connection were lost): marks it resumed (chunks
  // the caller sent before it goes back are dropped, R6) and returns the grant and that offset
  // for the caller's resume Credit. nullopt: not an input stream of this call.
  std::optional<ResumeCredit> resume_input(std::uint32_t stream);

  // The streams `sender` sends chunks on that chunks were forwarded of: (stream, bytes forwarded).
  std::vector<std::pair<std::uint32_t, std::uint64_t>> forwarded(ChunkSide sender) const;

  // The output streams whose chunks a worker that attached again after a reconnect may have
  // lost, all of them (R12): every one chunks were forwarded of or a resume went to, the even
  // numbers below the highest of those (a worker numbers its streams in order: those were
  // opened too, and none of their chunks came), and the next one (opened just before the break).
  // Empty when the caller takes no chunked outputs.
  std::vector<std::uint32_t> outputs_to_resume() const;

  // Whether `stream` is an output stream this call can carry (even, not 0, the caller takes
  // chunked outputs, not a 17th stream): the ones resume_output answers.
  bool carries_output(std::uint32_t stream) const;

  // Whether `stream`'s chunks forwarded reach `size` bytes (R8); a stream with no chunk yet
  // has 0 bytes.
  bool forwarded_whole(std::uint32_t stream, std::uint64_t size) const;

  // The bytes of `stream` forwarded so far (0: none, or no such stream), for the logs.
  std::uint64_t next_offset(std::uint32_t stream) const;

  // Whether a chunk or a credit of any stream has been forwarded (worker death then ends the
  // call WorkerLost instead of re-queueing it, PROTOCOL.md §7.9 daemon rule 5).
  bool forwarded_any() const { return forwarded_any_; }

  // The grants of output streams to publish to the worker again (a PUB message may be lost):
  // those above the initial window (the WorkRequest carries that one) and not used up.
  std::vector<std::pair<std::uint32_t, std::uint64_t>> republish() const;

  // The call goes to another worker (only when !forwarded_any()): every stream starts again.
  void restart();

  // A sentence naming what the sender did, for the failure message and the logs.
  std::string describe(ChunkVerdict verdict, ChunkSide from, std::uint32_t stream, std::uint64_t offset,
                       std::uint64_t size) const;

 private:
  struct Stream {
    std::uint32_t id = 0;
    std::uint64_t granted = 0;  // forwarded to the sender (clamped, highest total)
    std::uint64_t next = 0;     // bytes received from the sender and forwarded
    bool resumed = false;       // a resume Credit went to its sender: its chunks are taken leniently (R6)
    bool resume_asked = false;  // the daemon sent the worker a resume Credit; no chunk forwarded since (R7)
  };
  static bool is_output(std::uint32_t stream) { return stream % 2 == 0; }
  // The stream, created on first use (nullptr: beyond kMaxChunkStreams of its parity).
  Stream* find_or_add(std::uint32_t stream);
  // Fewer than kMaxChunkStreams streams of `stream`'s direction are open: one more may be.
  bool room_for(std::uint32_t stream) const;
  // The stream `from` grants credit on (the other side's parity, not stream 0, and for an
  // output stream a caller that takes chunked outputs), created on first use; else nullptr.
  Stream* granted_by(ChunkSide from, std::uint32_t stream);
  const Stream* find(std::uint32_t stream) const;

  std::uint64_t output_window_;
  std::uint64_t max_window_;
  std::vector<Stream> streams_;  // few: a linear search
  bool forwarded_any_ = false;
};

}  // namespace muster::broker
