// chunking.hpp — the two ends of one chunked stream in an SDK (docs/PROTOCOL.md §7.9), without
// sockets: the sender cuts a bytes value into chunks within the receiver's credit; the receiver
// takes them in offset order, grants its window as it goes, and checks the size and the SHA-256
// (sha256.hpp, OpenSSL) at the end.
// Resumption (§7.9 R1-R3, R9, R10): the receiver's rules for a chunk that overlaps what it has,
// or leaves a gap, and for a stall (ResumeRule); the sender going back to a resume Credit's
// offset, reading again from memory or a source that can be read again, else from the last
// kResumeKeepBytes it sent (SentBytesKeep), kept as the chunk messages that carried them, shared
// with the sockets rather than copied.
// Owns: the offsets, the credit arithmetic and the checks of one stream.
// Must never: send past the credit, take a byte twice or out of order, take a chunk beyond the
// declared size, or hand out bytes whose size or sha256 does not match the reference.
// Status: the building block of the SDKs' chunkers; the C++ client sends its chunked inputs with
// ChunkSender, the C++ worker receives them with ChunkReceiver (both delivery modes;
// docs/STREAMS.md §3).
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include <zmq.hpp>

#include "muster/byte_source.hpp"
#include "muster/sha256.hpp"
#include "muster/value.hpp"

namespace muster {

inline constexpr std::size_t kChunkBytes = 1 << 20;           // the SDKs' chunk size
inline constexpr std::uint64_t kChunkWindowBytes = 4u << 20;  // the window the SDKs grant
// How long a receiver waits for a chunk it granted before it asks again (§7.9 R2, R3).
inline constexpr std::chrono::milliseconds kResumeAfter{2000};
// What a sender that cannot read its bytes again keeps of what it sent (§7.9 R10).
inline constexpr std::uint64_t kResumeKeepBytes = 16u << 20;

// The receiver's side of resumption for one stream (§7.9 R1-R3), given R = the bytes it has
// taken, in order. Not thread-safe; the caller brings the time (tests bring their own).
class ResumeRule {
 public:
  using Clock = std::chrono::steady_clock;
  explicit ResumeRule(std::chrono::milliseconds resume_after = kResumeAfter) : after_(resume_after) {}

  struct Verdict {
    bool take = false;        // take data[skip:] (R1); false: drop the chunk
    std::size_t skip = 0;     // bytes of the chunk the receiver has already
    bool resume = false;      // send a resume Credit at R now (R2)
  };
  // R1/R2 for the chunk [offset, offset + n) with R = `received`. After a taken chunk the caller
  // advances R; call taken() then.
  Verdict on_chunk(std::uint64_t received, std::uint64_t offset, std::size_t n, Clock::time_point now);
  // R3: the receiver has `received` bytes of the `expected` it granted (min(granted, size)):
  // true when a resume Credit at R is due now (it then counts as sent).
  bool stalled(std::uint64_t received, std::uint64_t expected, Clock::time_point now);
  // A chunk (or part of one) was taken at `now`.
  void taken(Clock::time_point now) {
    last_chunk_ = now;
    resumed_since_chunk_ = false;
  }

 private:
  std::chrono::milliseconds after_;
  std::optional<Clock::time_point> last_chunk_, last_resume_;
  bool resumed_since_chunk_ = false;
};

// A piece of a stream as sent: `bytes` lie in the content of `message`, the Chunk message that
// carried them.
// A copy of a zmq::message_t shares its content by reference count (zmq_msg_copy), and libzmq
// never writes into the content of a message it sends (it reads it, or encrypts it into a new
// one for CURVE), so a kept piece stays valid and unchanged after the socket released the copy
// it sent.
// The bytes are found from the message each time (a message of up to 33 bytes holds them in
// itself, so they move with it).
struct SentPiece {
  zmq::message_t message;
  std::size_t at = 0, size = 0;  // the bytes are message[at, at + size)
  std::span<const std::uint8_t> bytes() const {
    return {static_cast<const std::uint8_t*>(message.data()) + at, size};
  }
};

// A piece of a stream as received, the same shape: its bytes lie in a message that keeps them,
// the one that brought them (a copy sharing its content) or one of their own (receive_piece).
using ReceivedPiece = SentPiece;
// Received bytes shorter than this are copied (receive_piece): a message libzmq received small
// is a slice of its 8 KiB read buffer (ZMQ_IN_BATCH_SIZE), which one slice kept alive keeps
// whole; a larger one has its own allocation.
inline constexpr std::size_t kShareReceivedMinBytes = 64u << 10;
// `data`, which lies in `message` (received; it stays the caller's), as a piece that keeps the
// bytes without copying them: a copy of `message` sharing its content, when `data` is at least
// kShareReceivedMinBytes and at least half of the message (so a kept piece never holds much
// more memory than its bytes: not a small chunk in a Batch); else a copy of `data` alone. With
// `message` null, a copy.
ReceivedPiece receive_piece(zmq::message_t* message, std::span<const std::uint8_t> data);

// The last bytes a sender sent of a stream it cannot read again (§7.9 R10): at least the last
// `keep` bytes (at most one piece more), in the pieces they were sent in. Keeping a piece given
// with its chunk message costs no copy and no allocation: the keep holds one more reference to
// the message's content.
class SentBytesKeep {
 public:
  explicit SentBytesKeep(std::uint64_t keep = kResumeKeepBytes) : keep_(keep) {}
  // Moved, never copied (it holds messages): said so, so that containers of senders move them.
  SentBytesKeep(SentBytesKeep&&) = default;
  SentBytesKeep& operator=(SentBytesKeep&&) = default;
  SentBytesKeep(const SentBytesKeep&) = delete;
  SentBytesKeep& operator=(const SentBytesKeep&) = delete;
  // The bytes at offset end(), just sent, and the chunk message that carried them; the oldest
  // pieces not needed to keep `keep` go.
  void append(SentPiece piece);
  // The same for bytes sent without a chunk message of their own: copied.
  void append(std::span<const std::uint8_t> data);
  // The first offset still kept, and the end (every byte sent).
  std::uint64_t begin() const { return begin_; }
  std::uint64_t end() const { return end_; }
  // At most `max` bytes from `offset` (begin() <= offset < end()), valid until the next append.
  std::span<const std::uint8_t> view(std::uint64_t offset, std::size_t max) const;
  // The chunk message of the piece that is exactly [offset, offset + n), to send again as it is:
  // a copy that shares its content. Nullopt when no piece kept with its message is that range.
  std::optional<zmq::message_t> message_of(std::uint64_t offset, std::size_t n);

 private:
  struct Piece {
    std::uint64_t offset;
    SentPiece sent;
    bool chunk_message;  // sent.message is the Chunk message (else a copy of the bytes alone)
  };
  void keep(SentPiece piece, bool chunk_message);
  std::uint64_t keep_;
  std::uint64_t begin_ = 0, end_ = 0;
  std::deque<Piece> pieces_;
};

// One chunk to send: `data` is a view into the sender's value (a source's: into the sender's
// buffer, valid until its next call to next()). `message`, when set, is the Chunk message that
// carries exactly `data`, to send as it is (made by the sender's BuildChunk, or kept).
struct ChunkOut {
  std::uint64_t offset = 0;
  std::span<const std::uint8_t> data;
  std::optional<zmq::message_t> message;
};

// Builds the Chunk message of the `n` bytes at `offset`, its data written in place by
// `fill(span)` (which may throw: then nothing is sent), so a source is read straight into the
// message that carries it.
using BuildChunk = std::function<SentPiece(std::uint64_t offset, std::size_t n,
                                           const std::function<void(std::span<std::uint8_t>)>& fill)>;

class ChunkSender {
 public:
  // The value `data` on `stream`; `granted` is the initial credit (0 for an input stream: the
  // worker grants first; the caller's chunk window for an output stream).
  ChunkSender(Bytes data, std::uint32_t stream, std::uint64_t granted = 0, std::size_t chunk_bytes = kChunkBytes);
  // The bytes of `source`, read a chunk at a time as the credit allows (one chunk in memory).
  // Its sha256 is the source's known one, else read in one pass here (sha256_of); a read that
  // fails throws std::runtime_error, here or from next().
  ChunkSender(std::shared_ptr<ByteSource> source, std::uint32_t stream, std::uint64_t granted = 0,
              std::size_t chunk_bytes = kChunkBytes);

  // The reference to put in the message in place of the bytes.
  const ChunkedValue& reference() const { return ref_; }
  // A Credit from the receiver: the highest total counts.
  void on_credit(std::uint64_t bytes);
  // A resume Credit (§7.9 R9): with R <= sent(), raises the grant and sends again from R; one
  // with R beyond what was sent is ignored. An error when the bytes from R cannot be had again
  // (a source that cannot be read again, R before the last kResumeKeepBytes sent): "cannot
  // resume at offset R: ...". The reference does not change.
  std::optional<std::string> on_resume(std::uint64_t resume_offset, std::uint64_t bytes);
  // The next chunk the credit allows (at most chunk_bytes, and never past the grant), or
  // nullopt: all sent, or waiting for credit. From a source: throws std::runtime_error when it
  // cannot be read. With `build`, a source's bytes are read into the message it builds (the
  // ChunkOut's `message`), which a source read once keeps for a resend, shared, not copied; a
  // whole piece kept goes again as its message.
  std::optional<ChunkOut> next(const BuildChunk& build = {});
  bool done() const { return sent_ == ref_.size; }
  std::uint64_t sent() const { return sent_; }

 private:
  Bytes data_;
  std::shared_ptr<ByteSource> source_;  // or, when set, the bytes come from here
  std::vector<std::uint8_t> buffer_;    // the source's current chunk (without a BuildChunk)
  SentPiece current_;                   // ... or the message it was read into (not kept)
  std::optional<SentBytesKeep> keep_;   // a source that cannot be read again: its last pieces sent
  std::uint64_t read_ = 0;              // bytes read from the source (each once, if keep_)
  ChunkedValue ref_;
  std::uint64_t granted_;
  std::uint64_t sent_ = 0;
  std::size_t chunk_bytes_;
};

// What a ChunkReceiver does with the bytes it accepts: Buffer keeps them, to be taken whole
// (take()); Stream keeps none (its reader uses each chunk as on_chunk accepts it), so a value of
// any size passes in the memory of one chunk. Both hash every byte and check() the same way.
enum class ChunkDelivery { Buffer, Stream };

class ChunkReceiver {
 public:
  // Receives the value `ref` refers to, granting `window` bytes ahead of what it has.
  explicit ChunkReceiver(ChunkedValue ref, std::uint64_t window = kChunkWindowBytes,
                         ChunkDelivery delivery = ChunkDelivery::Buffer,
                         std::chrono::milliseconds resume_after = kResumeAfter);

  // The credit total to grant (what it holds plus one window, at most the size).
  std::uint64_t grant() const;
  // One chunk; an error names the stream and what is wrong (beyond the size). Nothing is kept
  // from a refused chunk. Resumption (§7.9 R1, R2): a chunk that overlaps what it has gives only
  // its new bytes; one it has whole is dropped; one past a gap is dropped and sets
  // resume_due(). `now`: for R2's "at most one resume Credit per resume_after".
  std::optional<std::string> on_chunk(std::uint64_t offset, std::span<const std::uint8_t> data,
                                      ResumeRule::Clock::time_point now = ResumeRule::Clock::now());
  // A resume Credit at received() is due (a gap, or stalled()); cleared by taking it.
  bool take_resume_due() { return std::exchange(resume_due_, false); }
  // R3: of the `granted` bytes (the credit total sent) some not received for resume_after:
  // true when a resume Credit at received() is due now.
  bool stalled(std::uint64_t granted, ResumeRule::Clock::time_point now = ResumeRule::Clock::now());
  bool complete() const { return received_ == ref_.size; }
  std::uint64_t received() const { return received_; }
  const ChunkedValue& reference() const { return ref_; }
  // The whole value once complete, checked: an error if the size or the sha256 differs.
  std::optional<std::string> check() const;
  // The bytes (call after check() said nothing; empty with ChunkDelivery::Stream).
  Bytes take() { return Bytes(std::move(buffer_)); }

 private:
  ChunkedValue ref_;
  std::uint64_t window_;
  ChunkDelivery delivery_;
  std::uint64_t received_ = 0;
  std::vector<std::uint8_t> buffer_;  // ChunkDelivery::Buffer only
  Sha256 hash_;  // over the bytes received, in order
  ResumeRule resume_;
  bool resume_due_ = false;
};

}  // namespace muster
